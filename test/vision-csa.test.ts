/** Class-semantics attention (Sridhar et al. 2021) and squeeze-and-excitation: outputs and gradients against the float64 references, the action videos, proposals and mAP, the experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { actionVideos } from '../lib/data/action-video.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import {
  averagePrecision,
  classSemanticsAttention,
  classSemanticsAttentionReference,
  csaLocalisation,
  decodeProposals,
  Localiser,
  squeezeExcitation,
  squeezeExcitationReference,
  temporalIoU,
  temporalMap,
} from '../lib/papers/vision/csa/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const f32 = (x: ArrayLike<number>) => Float32Array.from(x);
const [b, T, C, K1, H, w] = [2, 7, 5, 3, 4, 1];

const csaP = (seed: number) => ({
  K1,
  H,
  C,
  w,
  w1: randomArray(2 * K1 * H, seed),
  b1: randomArray(H, seed + 1),
  w2: randomArray(H * C, seed + 2),
  b2: randomArray(C, seed + 3),
  u: randomArray((2 * w + 1) * K1, seed + 4),
  bu: 0.3,
});
const csaTensors = (p: ReturnType<typeof csaP>) => ({
  w1: tf.tensor2d(f32(p.w1), [2 * K1, H]),
  b1: tf.tensor1d(f32(p.b1)),
  w2: tf.tensor2d(f32(p.w2), [H, C]),
  b2: tf.tensor1d(f32(p.b2)),
  u: tf.tensor3d(f32(p.u), [2 * w + 1, K1, 1]),
  bu: tf.tensor1d([p.bu]),
});
const seP = (seed: number) => ({
  C,
  H,
  w1: randomArray(C * H, seed),
  b1: randomArray(H, seed + 1),
  w2: randomArray(H * C, seed + 2),
  b2: randomArray(C, seed + 3),
});
const seTensors = (p: ReturnType<typeof seP>) => ({
  w1: tf.tensor2d(f32(p.w1), [C, H]),
  b1: tf.tensor1d(f32(p.b1)),
  w2: tf.tensor2d(f32(p.w2), [H, C]),
  b2: tf.tensor1d(f32(p.b2)),
});

describe.each(BACKENDS)('CSA and SE on %s', (name) => {
  it('CSA matches its reference: output, channel and temporal weights (window zero-padded at the ends)', async () => {
    await useBackend(name);
    const f = randomArray(b * T * C, 1);
    const r = randomArray(b * T * K1, 2);
    const p = csaP(3);
    const ref = classSemanticsAttentionReference(f, r, b, T, p);
    const [out, ch, tw] = tf.tidy(() => {
      const o = classSemanticsAttention(tf.tensor3d(f32(f), [b, T, C]), tf.tensor3d(f32(r), [b, T, K1]), csaTensors(p));
      return [o.out.dataSync(), o.channel.dataSync(), o.temporal.dataSync()];
    });
    expectClose(out, ref.out, {}, 'out');
    expectClose(ch, ref.channel, {}, 'channel');
    expectClose(tw, ref.temporal, {}, 'temporal');
  });

  it('SE matches its reference', async () => {
    await useBackend(name);
    const f = randomArray(b * T * C, 4);
    const p = seP(5);
    const ref = squeezeExcitationReference(f, b, T, p);
    const [out, wts] = tf.tidy(() => {
      const o = squeezeExcitation(tf.tensor3d(f32(f), [b, T, C]), seTensors(p));
      return [o.out.dataSync(), o.weights.dataSync()];
    });
    expectClose(out, ref.out, {}, 'out');
    expectClose(wts, ref.weights, {}, 'weights');
  });

  it('gradients (CSA w.r.t. F, R, W1, U; SE w.r.t. F, W1) match central differences of the references', async () => {
    await useBackend(name);
    const f = randomArray(b * T * C, 6);
    const r = randomArray(b * T * K1, 7);
    const g = randomArray(b * T * C, 8);
    const p = csaP(9);
    const dot = (o: ArrayLike<number>) => {
      let s = 0;
      for (let i = 0; i < o.length; i++) s += o[i] * g[i];
      return s;
    };
    const csaLoss = () => dot(classSemanticsAttentionReference(f, r, b, T, p).out);
    const want = [
      numericGrad(csaLoss, f),
      numericGrad(csaLoss, r),
      numericGrad(csaLoss, p.w1 as Float64Array),
      numericGrad(csaLoss, p.u as Float64Array),
    ];
    const got = tf.tidy(() => {
      const t = csaTensors(p);
      const gt = tf.tensor3d(f32(g), [b, T, C]);
      return tf
        .grads((ft: tf.Tensor, rt: tf.Tensor, w1: tf.Tensor, u: tf.Tensor) =>
          classSemanticsAttention(ft as tf.Tensor3D, rt as tf.Tensor3D, {
            ...t,
            w1: w1 as tf.Tensor2D,
            u: u as tf.Tensor3D,
          })
            .out.mul(gt)
            .sum(),
        )([tf.tensor3d(f32(f), [b, T, C]), tf.tensor3d(f32(r), [b, T, K1]), t.w1, t.u])
        .map((x) => x.dataSync());
    });
    ['dF', 'dR', 'dW1', 'dU'].forEach((label, i) =>
      expectClose(got[i], want[i], { rtol: 2e-3, atol: 5e-4 }, `csa ${label}`),
    );
    const sp = seP(10);
    const seLoss = () => dot(squeezeExcitationReference(f, b, T, sp).out);
    const seWant = [numericGrad(seLoss, f), numericGrad(seLoss, sp.w1 as Float64Array)];
    const seGot = tf.tidy(() => {
      const t = seTensors(sp);
      const gt = tf.tensor3d(f32(g), [b, T, C]);
      return tf
        .grads((ft: tf.Tensor, w1: tf.Tensor) =>
          squeezeExcitation(ft as tf.Tensor3D, { ...t, w1: w1 as tf.Tensor2D })
            .out.mul(gt)
            .sum(),
        )([tf.tensor3d(f32(f), [b, T, C]), t.w1])
        .map((x) => x.dataSync());
    });
    ['dF', 'dW1'].forEach((label, i) => expectClose(seGot[i], seWant[i], { rtol: 2e-3, atol: 5e-4 }, `se ${label}`));
  });

  it('names bad arguments and leaks no tensors', async () => {
    await useBackend(name);
    const p = csaTensors(csaP(11));
    const f = tf.zeros([b, T, C]) as tf.Tensor3D;
    const r = tf.zeros([b, T, K1]) as tf.Tensor3D;
    expect(() => classSemanticsAttention(f, tf.zeros([b, T + 1, K1]) as tf.Tensor3D, p)).toThrow(
      /classSemanticsAttention: r must share f's batch and time \[2, 7, K1\], got shape \[2, 8, 3\]/,
    );
    expect(() => squeezeExcitation(f, seTensors({ ...seP(1), C: 4 }) as never)).not.toThrow();
    expect(() => squeezeExcitation(tf.zeros([b, T, C + 1]) as tf.Tensor3D, seTensors(seP(1)))).toThrow(
      /squeezeExcitation: p.w1 must be \[C = 6, H\]/,
    );
    expectNoLeak(() => {
      const o = classSemanticsAttention(f, r, p);
      tf.dispose([o.out, o.channel, o.temporal]);
    });
    const m = new Localiser({
      channels: C,
      recognition: K1,
      hidden: 4,
      attentionHidden: 3,
      window: 1,
      variant: 'se+csa',
      seed: 1,
    });
    expectNoLeak(() => {
      const o = m.forward(f, r);
      tf.dispose(Object.values(o) as tf.Tensor[]);
    });
    expect(
      () =>
        new Localiser({
          channels: C,
          recognition: K1,
          hidden: 4,
          attentionHidden: 3,
          window: 1,
          variant: 'x' as never,
          seed: 1,
        }),
    ).toThrow(/Localiser: config.variant must be one of none, se, csa, se\+csa, got "x"/);
    m.dispose();
    tf.dispose([f, r, ...Object.values(p)]);
  });
});

describe('action videos, proposals, mAP', () => {
  it('follows the worked example; splits differ; segments are disjoint', () => {
    const v = actionVideos({
      count: 1,
      T: 8,
      classes: 1,
      groupSize: 1,
      nuisance: 0,
      minSegments: 1,
      maxSegments: 1,
      minLen: 3,
      maxLen: 3,
      beta: 0,
      rNoise: 0,
      fNoise: 0,
      signal: 1,
      edge: 0,
      seed: 3,
    });
    const [s] = v.segments[0];
    expect(s.end - s.start).toBe(3);
    expect(s.start).toBeGreaterThanOrEqual(1);
    expect(s.end).toBeLessThanOrEqual(7);
    for (let t = 0; t < 8; t++) {
      expect(Math.abs(v.localisation[t])).toBeCloseTo(t >= s.start && t < s.end ? 1 : 0, 5);
      expect(v.recognition[2 * t]).toBeCloseTo(0.5, 6);
    }
    const tr = actionVideos({ count: 50, seed: 1, split: 'train' });
    const te = actionVideos({ count: 50, seed: 1, split: 'test' });
    expect(tr.localisation.slice(0, 20)).not.toEqual(te.localisation.slice(0, 20));
    for (const segs of tr.segments)
      for (let i = 1; i < segs.length; i++) expect(segs[i].start).toBeGreaterThanOrEqual(segs[i - 1].end + 2);
    expect(() => actionVideos({ count: 1, T: 20, seed: 1 })).toThrow(/actionVideos: T must be an integer >= /);
  });

  it('IoU, AP and mAP on hand-made cases; perfect probabilities decode to the true segments', () => {
    expect(temporalIoU(0, 10, 5, 15)).toBeCloseTo(5 / 15, 10);
    expect(averagePrecision([true, false, true], 2)).toBeCloseTo(0.5 * 1 + 0.5 * (2 / 3), 10);
    const truth = [[{ start: 2, end: 6, label: 0 }], [{ start: 1, end: 4, label: 1 }]];
    const perfect = [
      { video: 0, start: 2, end: 6, label: 0, score: 0.9 },
      { video: 1, start: 1, end: 4, label: 1, score: 0.8 },
    ];
    expect(temporalMap(perfect, truth, 2, 0.7)).toBe(1);
    expect(temporalMap([{ ...perfect[0], start: 0 }, perfect[1]], truth, 2, 0.7)).toBe(0.5);
    expect(temporalMap(perfect, truth, 2, 0.5, [1, 1])).toBe(1);
    const Tn = 12;
    const start = Array.from({ length: Tn }, (_, t) => (t === 3 ? 0.9 : 0.05));
    const end = Array.from({ length: Tn }, (_, t) => (t === 7 ? 0.9 : 0.05));
    const act = Array.from({ length: Tn }, (_, t) => (t >= 3 && t <= 7 ? 0.9 : 0.1));
    const r = new Float32Array(Tn * 3);
    for (let t = 0; t < Tn; t++) r[t * 3 + (t >= 3 && t <= 7 ? 1 : 2)] = 1;
    const dets = decodeProposals(start, end, act, r, 2, 0, 10, 5);
    expect(dets[0]).toMatchObject({ start: 3, end: 8, label: 1 });
  });
});

describe('csa-localisation experiment', () => {
  it('runs a tiny config for every variant', async () => {
    const r = await runExperimentWith(csaLocalisation, {
      quick: true,
      keep: true,
      progress: false,
      overrides: { trainVideos: 20, testVideos: 12, steps: 4, batch: 4, hidden: 8, bootstrap: 5 },
    });
    try {
      for (const v of ['none', 'se', 'csa', 'se+csa']) {
        const m = r.metrics[`${v}.test_map_avg`];
        expect(m).toBeGreaterThanOrEqual(0);
        expect(m).toBeLessThanOrEqual(1);
      }
      expect(r.tables?.localisation).toHaveLength(4);
      expect(r.references?.length).toBe(2);
      expect(r.artifacts?.models.csa?.temporal?.[0]).toHaveLength(64);
      expect(r.artifacts?.models.none?.temporal).toBeUndefined();
    } finally {
      r.artifacts?.dispose();
    }
  });
});

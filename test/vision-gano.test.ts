/** GANO (Thakur et al. 2023): guided cross-attention against its float64 reference (outputs, gradients, leaks), the egocentric clips, the model and the experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { boxIoU, egoClips } from '../lib/data/ego-clips.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { ganoExperiment } from '../lib/papers/vision/gano/experiment.js';
import { GanoModel, guidedAttention, guidedAttentionReference } from '../lib/papers/vision/gano/model.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const [B, N, P, D, H] = [2, 3, 5, 4, 2];

const nest3 = (a: ArrayLike<number>, x: number, y: number, z: number) =>
  Array.from({ length: x }, (_, i) =>
    Array.from({ length: y }, (_, j) => Array.from(a).slice((i * y + j) * z, (i * y + j + 1) * z)),
  );
const nest2 = (a: ArrayLike<number>, x: number, y: number) =>
  Array.from({ length: x }, (_, i) => Array.from(a).slice(i * y, (i + 1) * y));

function inputs(seed: number) {
  return {
    q: randomArray(B * N * D, seed),
    x: randomArray(B * P * D, seed + 1),
    wq: randomArray(D * D, seed + 2),
    wk: randomArray(D * D, seed + 3),
    wv: randomArray(D * D, seed + 4),
    wo: randomArray(D * D, seed + 5),
  };
}
type Inputs = ReturnType<typeof inputs>;

function reference(v: Inputs) {
  return guidedAttentionReference(
    nest3(v.q, B, N, D),
    nest3(v.x, B, P, D),
    { wq: nest2(v.wq, D, D), wk: nest2(v.wk, D, D), wv: nest2(v.wv, D, D), wo: nest2(v.wo, D, D) },
    H,
  );
}

function tensors(v: Inputs) {
  return {
    q: tf.tensor3d(Float32Array.from(v.q), [B, N, D]),
    x: tf.tensor3d(Float32Array.from(v.x), [B, P, D]),
    p: {
      wq: tf.tensor2d(Float32Array.from(v.wq), [D, D]),
      wk: tf.tensor2d(Float32Array.from(v.wk), [D, D]),
      wv: tf.tensor2d(Float32Array.from(v.wv), [D, D]),
      wo: tf.tensor2d(Float32Array.from(v.wo), [D, D]),
    },
  };
}

describe.each(BACKENDS)('guidedAttention on %s', (name) => {
  it('matches the float64 reference (outputs and attention weights)', async () => {
    await useBackend(name);
    const v = inputs(11);
    const ref = reference(v);
    const t = tensors(v);
    const { out, weights } = guidedAttention(t.q, t.x, t.p, H);
    expect(out.shape).toEqual([B, N, D]);
    expect(weights.shape).toEqual([B, H, N, P]);
    expectClose(out, ref.out.flat(2), { rtol: 1e-4, atol: 1e-5 }, 'out');
    expectClose(weights, ref.weights.flat(3), { rtol: 1e-4, atol: 1e-6 }, 'weights');
    const rowSums = weights.sum(3);
    expectClose(rowSums, new Array(B * H * N).fill(1), { atol: 1e-5 }, 'rows sum to 1');
    tf.dispose([out, weights, rowSums, t.q, t.x, ...Object.values(t.p)]);
  });

  it('gradients match central differences of the reference', async () => {
    await useBackend(name);
    const v = inputs(23);
    const r = randomArray(B * N * D, 99);
    const objective = () =>
      reference(v)
        .out.flat(2)
        .reduce((s, o, i) => s + o * r[i], 0);
    const t = tensors(v);
    const rt = tf.tensor3d(Float32Array.from(r), [B, N, D]);
    const keys = ['q', 'x', 'wq', 'wk', 'wv', 'wo'] as const;
    const grads = tf.grads((q, x, wq, wk, wv, wo) => guidedAttention(q, x, { wq, wk, wv, wo }, H).out.mul(rt).sum())([
      t.q,
      t.x,
      t.p.wq,
      t.p.wk,
      t.p.wv,
      t.p.wo,
    ]);
    keys.forEach((k, i) => {
      expectClose(grads[i], numericGrad(objective, v[k]), { rtol: 2e-3, atol: 2e-4 }, `d/d${k}`);
    });
    tf.dispose([...grads, rt, t.q, t.x, ...Object.values(t.p)]);
  });

  it('leaks no tensors', async () => {
    await useBackend(name);
    const t = tensors(inputs(5));
    expectNoLeak(() => {
      const { out, weights } = guidedAttention(t.q, t.x, t.p, H);
      tf.dispose([out, weights]);
    });
    tf.dispose([t.q, t.x, ...Object.values(t.p)]);
  });
});

describe('guidedAttention arguments', () => {
  it('names the function, the argument, the expected and the actual value', () => {
    const t = tensors(inputs(1));
    const x2 = tf.zeros([B, P, D + 1]);
    expect(() => guidedAttention(t.q, x2, t.p, H)).toThrow(/guidedAttention: queries \[2,3,4\] and tokens \[2,5,5\]/);
    expect(() => guidedAttention(t.q, t.x, t.p, 3)).toThrow(/guidedAttention: heads must be .* dividing d = 4, got 3/);
    const bad = { ...t.p, wk: tf.zeros([D, 2]) };
    expect(() => guidedAttention(t.q, t.x, bad, H)).toThrow(/guidedAttention: wk must be \[4, 4\], got shape \[4,2\]/);
    expect(() => guidedAttention(t.q.reshape([B * N, D]), t.x, t.p, H)).toThrow(/queries must be \[b, n, d\]/);
    tf.dispose([x2, bad.wk, t.q, t.x, ...Object.values(t.p)]);
  });
});

describe('egoClips', () => {
  const cfg = { count: 40, frames: 4, size: 16, objects: 3, nouns: 4, patch: 4 };

  it('is seeded, and its splits are different draws', () => {
    const a = egoClips(cfg, 'train', 3);
    const b = egoClips(cfg, 'train', 3);
    const c = egoClips(cfg, 'test', 3);
    expect(Array.from(a.pixels.slice(0, 500))).toEqual(Array.from(b.pixels.slice(0, 500)));
    expect(Array.from(a.boxes)).not.toEqual(Array.from(c.boxes));
    expect(a.hand[0][0]).not.toEqual(c.hand[0][0]);
  });

  it('labels the target detection, and the hand moves toward it', () => {
    const c = egoClips({ ...cfg, noise: 0, curvature: 0 }, 'validation', 1);
    for (let i = 0; i < c.count; i++) {
      const t = c.target[i];
      expect(t).toBeGreaterThanOrEqual(0);
      expect(t).toBeLessThan(c.objects);
      expect(Array.from(c.box.subarray(i * 4, i * 4 + 4))).toEqual(
        Array.from(c.boxes.subarray((i * 3 + t) * 4, (i * 3 + t + 1) * 4)),
      );
      expect(c.noun[i]).toBe(c.classes[i * 3 + t]);
      expect(c.ttc[i]).toBeGreaterThan(0);
      const [bx0, by0, bx1, by1] = Array.from(c.box.subarray(i * 4, i * 4 + 4)).map((v) => v * c.size);
      const centre = [(bx0 + bx1) / 2, (by0 + by1) / 2];
      const dist = ([x, y]: [number, number]) => Math.hypot(x - centre[0], y - centre[1]);
      expect(dist(c.hand[i][c.frames - 1])).toBeLessThan(dist(c.hand[i][0]));
    }
  });

  it('cuts patches in (frame, row, column) order from the pixels', () => {
    const c = egoClips({ ...cfg, count: 2 }, 'train', 0);
    const grid = c.size / c.patch;
    const tokenDim = c.patch * c.patch * 4;
    // clip 1, frame 2, patch row 1, column 3, pixel (y 2, x 1) of the patch, channel 3 (the hand).
    const [i, f, r, col, py, px, ch] = [1, 2, 1, 3, 2, 1, 3];
    const token = (i * c.frames + f) * grid * grid + r * grid + col;
    const fromPatch = c.patches[token * tokenDim + (py * c.patch + px) * 4 + ch];
    const fromPixels =
      c.pixels[(((i * c.frames + f) * c.size + r * c.patch + py) * c.size + col * c.patch + px) * 4 + ch];
    expect(fromPatch).toBe(fromPixels);
    expect(c.patches.length).toBe(2 * c.frames * grid * grid * tokenDim);
  });

  it('rejects bad settings by name', () => {
    expect(() => egoClips({ ...cfg, size: 18 }, 'train', 0)).toThrow(/egoClips: size must be a multiple of patch/);
    expect(() => egoClips({ ...cfg, nouns: 99 }, 'train', 0)).toThrow(
      /egoClips: nouns must be an integer in \[1, 8\], got 99/,
    );
    expect(() => egoClips(cfg, 'dev' as 'train', 0)).toThrow(/egoClips: split must be/);
  });

  it('boxIoU', () => {
    expect(boxIoU([0, 0, 1, 1], [0, 0, 1, 1])).toBe(1);
    expect(boxIoU([0, 0, 1, 1], [2, 2, 3, 3])).toBe(0);
    expect(boxIoU([0, 0, 2, 1], [1, 0, 3, 1])).toBeCloseTo(1 / 3, 12);
  });
});

describe('GanoModel', () => {
  it('gives every head its shape for each fusion, attention only for guided, and leaks nothing', async () => {
    await useBackend('cpu');
    const c = egoClips({ count: 3, frames: 2, size: 8, objects: 2, nouns: 3, patch: 4, objectSize: 2 }, 'train', 0);
    const tokenDim = 4 * 4 * 4;
    const tokens = 2 * 2 * 2;
    const x = {
      patches: tf.tensor3d(c.patches, [3, tokens, tokenDim]),
      boxes: tf.tensor3d(c.boxes, [3, 2, 4]),
      classes: tf.tensor2d(c.classes, [3, 2], 'int32'),
    };
    for (const fusion of ['guided', 'concat', 'video'] as const) {
      const m = new GanoModel({
        fusion,
        tokenDim,
        tokens,
        frames: 2,
        objects: 2,
        nouns: 3,
        dModel: 8,
        heads: 2,
        seed: 1,
      });
      const out = m.forward(x);
      expect(out.nounLogits.shape).toEqual([3, 3]);
      expect(out.box.shape).toEqual([3, 4]);
      expect(out.ttc.shape).toEqual([3]);
      expect(out.attention?.shape).toEqual(fusion === 'guided' ? [3, 2, 2, tokens] : undefined);
      expect(out.objectLogits?.shape).toEqual(fusion === 'video' ? undefined : [3, 2]);
      expect(Math.min(...out.ttc.dataSync())).toBeGreaterThanOrEqual(0);
      tf.dispose(Object.values(out));
      expectNoLeak(() => tf.dispose(Object.values(m.forward(x))));
      m.dispose();
    }
    expect(
      () =>
        new GanoModel({
          fusion: 'sum' as 'guided',
          tokenDim,
          tokens,
          frames: 2,
          objects: 2,
          nouns: 3,
          dModel: 8,
          heads: 2,
          seed: 1,
        }),
    ).toThrow(/GanoModel: fusion must be 'guided', 'concat' or 'video', got "sum"/);
    tf.dispose(Object.values(x));
  });
});

describe('gano experiment', () => {
  it('runs end to end with tiny settings and reports test metrics with intervals', async () => {
    await useBackend('cpu');
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(ganoExperiment, {
      quick: true,
      overrides: {
        trainClips: 64,
        validationClips: 32,
        testClips: 40,
        steps: 6,
        evalEvery: 3,
        batch: 8,
        dModel: 8,
        shown: 2,
      },
      keep: true,
    });
    for (const f of ['guided', 'concat', 'video']) {
      for (const k of ['test_noun_top1', 'test_box_iou', 'test_ttc_mae']) {
        expect(Number.isFinite(r.metrics[`${f}.${k}`]), `${f}.${k}`).toBe(true);
        expect(r.metrics[`${f}.${k}_ci95`]).toBeGreaterThanOrEqual(0);
      }
      expect(r.tables?.fusions.find((row) => row.fusion === f)?.step).toBeGreaterThan(0);
    }
    expect(r.metrics['guided_minus_concat.test_noun_top1']).toBeCloseTo(
      r.metrics['guided.test_noun_top1'] - r.metrics['concat.test_noun_top1'],
      10,
    );
    const a = r.artifacts;
    expect(a?.clips.count).toBe(2);
    expect(a?.predictions.guided?.attention?.[0]).toHaveLength(a?.clips.objects as number);
    expect(a?.predictions.concat?.attention).toBeUndefined();
    a?.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expect(runExperimentWith(ganoExperiment, { quick: true, overrides: { patch: 5 } })).rejects.toThrow(
      /size must be a multiple of patch/,
    );
  });
});

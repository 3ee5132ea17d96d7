/** Zoology (Arora et al. 2024): causal convolutions against the float64 loop, BaseConv, the MQAR models' step form, power-law MQAR, and the mqar-frontier experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { ConfigError } from '../lib/experiments/schema.js';
import {
  baseConv,
  causalConv,
  causalConvInit,
  causalConvReference,
  causalConvStep,
  MODEL_NAMES,
  MqarModel,
  mixerStack,
  mqarFrontier,
  mqarPowerLaw,
  mqarSplitOf,
  powerLawGaps,
  runRecurrent,
} from '../lib/papers/recurrent/zoology/index.js';
import {
  BASED_FIG2,
  paperFigureRows,
  ZOOLOGY_FIG2,
  ZOOLOGY_FIG2_BY_EYE,
  zoologyReferences,
} from '../lib/papers/recurrent/zoology/paper-figures.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const [B, T, C] = [2, 12, 3];

for (const name of BACKENDS) {
  describe(`causal convolution (${name})`, () => {
    for (const k of [1, 3, 12]) {
      it(`K = ${k}: parallel and step forms equal the float64 loop; gradients match finite differences`, async () => {
        await useBackend(name);
        const x64 = randomArray(B * T * C, 7);
        const h64 = randomArray(k * C, 8);
        const ref = causalConvReference(x64, h64, { b: B, t: T, c: C, k });
        const x = tf.tensor3d(Float32Array.from(x64), [B, T, C]);
        const h = tf.tensor2d(Float32Array.from(h64), [k, C]);
        const y = causalConv(x, h);
        expectClose(y.dataSync(), ref, {}, 'parallel');
        let state = causalConvInit(B, C);
        const ys: tf.Tensor[] = [];
        for (let i = 0; i < T; i++) {
          const xt = x.slice([0, i, 0], [B, 1, C]).reshape([B, C]);
          const r = causalConvStep(state, xt, h);
          tf.dispose([xt, state.past]);
          state = r.state;
          ys.push(r.y);
        }
        const rec = tf.stack(ys, 1);
        expectClose(rec.dataSync(), ref, {}, 'step');
        expect(state.past.shape).toEqual([B, Math.min(k - 1, T), C]);
        const w = randomArray(B * T * C, 9);
        const loss64 = () =>
          causalConvReference(x64, h64, { b: B, t: T, c: C, k }).reduce((a, v, i) => a + v * w[i], 0);
        const gx = numericGrad(loss64, x64);
        const gh = numericGrad(loss64, h64);
        const wt = tf.tensor3d(Float32Array.from(w), [B, T, C]);
        const [dx, dh] = tf.grads((a: tf.Tensor, b: tf.Tensor) => causalConv(a, b).mul(wt).sum())([x, h]);
        expectClose(dx.dataSync(), gx, { rtol: 1e-3, atol: 1e-4 }, 'dx');
        expectClose(dh.dataSync(), gh, { rtol: 1e-3, atol: 1e-4 }, 'dh');
        tf.dispose([x, h, y, rec, ...ys, state.past, wt, dx, dh]);
      });
    }

    it('is causal, leaks nothing, and names bad arguments', async () => {
      await useBackend(name);
      const x = tf.tensor3d(Float32Array.from(randomArray(B * T * C, 1)), [B, T, C]);
      const h = tf.tensor2d(Float32Array.from(randomArray(T * C, 2)), [T, C]);
      const x2 = tf.tidy(() =>
        x.add(
          tf
            .oneHot([T - 1], T)
            .reshape([1, T, 1])
            .mul(5),
        ),
      );
      const [y1, y2] = [causalConv(x, h), causalConv(x2, h)].map((y) => y.arraySync());
      expect(y2[0].slice(0, T - 1)).toEqual(y1[0].slice(0, T - 1));
      expect(y2[0][T - 1]).not.toEqual(y1[0][T - 1]);
      expectNoLeak(() => tf.dispose(causalConv(x, h)));
      const bad = tf.zeros([4, C + 1]);
      expect(() => causalConv(x, bad)).toThrow(/causalConv: kernel must be \[K, 3\] .* got \[4,4\]/);
      tf.dispose([x, h, x2, bad]);
    });

    it('BaseConv is (x W1 + b1) ⊙ (h ∗ (x W2) + b2)', async () => {
      await useBackend(name);
      const m = 3;
      const [w1, w2] = [1, 2].map((s) => randomArray(m * m, s));
      const [b1, b2] = [3, 4].map((s) => randomArray(m, s));
      const k = randomArray(T * m, 5);
      const x64 = randomArray(B * T * m, 6);
      const lin = (w: Float64Array, bias?: Float64Array) => {
        const out = new Float64Array(B * T * m);
        for (let r = 0; r < B * T; r++)
          for (let j = 0; j < m; j++) {
            let s = bias ? bias[j] : 0;
            for (let i = 0; i < m; i++) s += x64[r * m + i] * w[i * m + j];
            out[r * m + j] = s;
          }
        return out;
      };
      const u = lin(w1, b1);
      const conv = causalConvReference(lin(w2), k, { b: B, t: T, c: m, k: T });
      const ref = u.map((v, i) => v * (conv[i] + b2[i % m]));
      const t = (a: Float64Array, s: number[]) => tf.tensor(Float32Array.from(a), s);
      const p = { w1: t(w1, [m, m]), w2: t(w2, [m, m]), b1: t(b1, [m]), b2: t(b2, [m]), kernel: t(k, [T, m]) };
      const x = t(x64, [B, T, m]);
      const y = baseConv(x, p);
      expectClose(y.dataSync(), ref, {}, 'baseConv');
      tf.dispose([x, y, ...Object.values(p)]);
    });
  });
}

describe('MQAR models (cpu)', () => {
  for (const model of MODEL_NAMES) {
    it(`${model}: the step form equals the parallel form; state bytes are measured`, async () => {
      await useBackend('cpu');
      const t = 10;
      const net = new MqarModel({
        vocabSize: 20,
        seqLen: t,
        dModel: 8,
        seed: 3,
        ...mixerStack(model, { featureDim: 2, window: 3, heads: 2 }),
      });
      const inputs = tf.tensor2d(
        Array.from({ length: 2 * t }, (_, i) => (i * 7 + 3) % 20),
        [2, t],
        'int32',
      );
      const par = net.forward(inputs);
      const before = tf.memory().numTensors;
      const rec = runRecurrent(net, inputs);
      expect(tf.memory().numTensors).toBe(before + 1);
      expectClose(rec.logits.dataSync(), par.dataSync(), { rtol: 1e-4, atol: 1e-4 }, model);
      const grows = ['attention', 'attention-pe', 'baseconv', 'hybrid'].includes(model);
      // Fixed-state models stop growing once the window and the short kernel are full; attention and the long
      // convolution keep every token.
      if (grows) expect(rec.bytes[t - 2]).toBeGreaterThan(rec.bytes[4]);
      else expect(rec.bytes[t - 1]).toBe(rec.bytes[4]);
      tf.dispose([inputs, par, rec.logits]);
      net.dispose();
    });
  }

  it('the Taylor state of BASED is 4 · (1 + d′ + d′²) · (m + 1) bytes plus the window cache', async () => {
    await useBackend('cpu');
    const [t, m, f, w] = [12, 8, 3, 4];
    const net = new MqarModel({
      vocabSize: 20,
      seqLen: t,
      dModel: m,
      seed: 1,
      ...mixerStack('based', { featureDim: f, window: w }),
    });
    const inputs = tf.tensor2d(
      Array.from({ length: t }, (_, i) => 4 + i),
      [1, t],
      'int32',
    );
    const rec = runRecurrent(net, inputs);
    const conv = 4 * 2 * m; // K = 3: the last two inputs
    expect(rec.bytes[t - 1]).toBe(4 * (1 + f + f * f) * (m + 1) + 4 * 2 * w * m + conv);
    tf.dispose([inputs, rec.logits]);
    net.dispose();
  });

  it('names bad configs', () => {
    expect(
      () =>
        new MqarModel({
          vocabSize: 20,
          seqLen: 8,
          dModel: 6,
          seed: 0,
          layers: [{ kind: 'attention', heads: 4, window: 0 }],
          positions: false,
        }),
    ).toThrow(/MqarModel: layer .*heads must divide dModel 6/);
    expect(() => mixerStack('mamba' as never, { featureDim: 2, window: 2 })).toThrow(/mixerStack: name must be one of/);
  });
});

describe('power-law MQAR', () => {
  it('rows hold the pairs, then each key once with its value; the mask grades the values', () => {
    const d = mqarPowerLaw({ batch: 16, seqLen: 32, vocabSize: 40, numPairs: 4, seed: 1 });
    for (let b = 0; b < d.batch; b++) {
      const r = d.row(b);
      const pairs = new Map<number, number>();
      for (let i = 0; i < 4; i++) pairs.set(r.inputs[2 * i], r.inputs[2 * i + 1]);
      const graded = r.lossMask.flatMap((m, t) => (m ? [t] : []));
      expect(graded.length).toBe(4);
      expect(new Set(graded.map((t) => r.inputs[t]))).toEqual(new Set(pairs.keys()));
      for (const t of graded) {
        expect(t).toBeGreaterThanOrEqual(8);
        expect(r.targets[t]).toBe(pairs.get(r.inputs[t]));
        expect((t - 8) % 2).toBe(0);
      }
    }
  });

  it('query gaps follow the power law: most queries sit right after the pairs', () => {
    const p = powerLawGaps(20, 0.01);
    expect(p.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 12);
    expect(p[0] / p[1]).toBeCloseTo(2 ** 0.99, 10);
    const d = mqarPowerLaw({ batch: 400, seqLen: 64, vocabSize: 100, numPairs: 2, seed: 2 });
    const gaps: number[] = [];
    for (let i = 0; i < d.lossMask.length; i++) if (d.lossMask[i]) gaps.push(((i % 64) - 4) / 2);
    const early = gaps.filter((g) => g < 4).length / gaps.length;
    const late = gaps.filter((g) => g >= 26).length / gaps.length;
    expect(early).toBeGreaterThan(late * 2); // uniform spacing would give ≈ equal shares (4 vs 4 slots)
  });

  it('train, validation and test rows are disjoint and each in its own hash class', () => {
    const rows = (split: 'train' | 'validation' | 'test') => {
      const d = mqarPowerLaw({ batch: 200, seqLen: 16, vocabSize: 12, numPairs: 2, seed: 5, split });
      return Array.from({ length: d.batch }, (_, b) => {
        const r = d.row(b);
        const full = [...r.inputs, r.targets[r.targets.length - 1]];
        expect(mqarSplitOf(full)).toBe(split);
        return full.join(',');
      });
    };
    const train = new Set(rows('train'));
    for (const s of ['validation', 'test'] as const) for (const r of rows(s)) expect(train.has(r)).toBe(false);
  });

  it('names bad arguments', () => {
    expect(() => mqarPowerLaw({ batch: 1, seqLen: 10, vocabSize: 20, numPairs: 4, seed: 0 })).toThrow(
      /mqarPowerLaw: seqLen \(10\) leaves 1 query slots after the 4 pairs/,
    );
    expect(() =>
      mqarPowerLaw({ batch: 1, seqLen: 32, vocabSize: 20, numPairs: 2, seed: 0, split: 'dev' as never }),
    ).toThrow(/mqarPowerLaw: split must be 'train', 'validation' or 'test', got dev/);
  });
});

describe('mqar-frontier experiment', () => {
  it('runs tiny, reports split-named metrics, state bytes and the paper reference beside attention', async () => {
    await useBackend('cpu');
    const r = await runExperimentWith(mqarFrontier, {
      quick: true,
      overrides: {
        models: ['attention', 'based'],
        widths: [8],
        stateFeatureDims: [2],
        stateWindows: [2],
        steps: 3,
        batch: 4,
        validationRows: 8,
        testRows: 8,
      },
    });
    const rows = r.tables?.frontier ?? [];
    expect(rows.map((x) => `${x.sweep}:${x.model}`)).toEqual([
      'width:attention',
      'width:based',
      'state:sliding',
      'state:based',
    ]);
    for (const x of rows) {
      expect(x.test_accuracy).toBeGreaterThanOrEqual(0);
      expect(x.test_accuracy).toBeLessThanOrEqual(1);
      expect(x.stateBytes).toBeGreaterThan(0);
    }
    // Attention's KV cache holds every token: more than the sliding window's two.
    const attn = rows.find((x) => x.model === 'attention');
    const slide = rows.find((x) => x.model === 'sliding');
    expect(Number(attn?.stateBytes)).toBeGreaterThan(Number(slide?.stateBytes));
    expect(r.references?.map((x) => x.metric)).toEqual(['attention.d8.test_accuracy']);
    expect(r.metrics['attention.d8.test_accuracy']).toBe(attn?.test_accuracy);
  });

  it('rejects a bad config before any work', async () => {
    await expect(runExperimentWith(mqarFrontier, { quick: true, overrides: { models: ['mamba'] } })).rejects.toThrow(
      ConfigError,
    );
  });
});

describe("mqar-frontier: the papers' figure values", () => {
  it('gives a BaseConv reference only at a width the paper trained, from the seq-64 panel', () => {
    const refs = zoologyReferences([
      { model: 'baseconv', dModel: 16 },
      { model: 'baseconv', dModel: 64 },
    ]);
    expect(refs.map((r) => r.metric)).toEqual(['baseconv.d64.test_accuracy']);
    expect(refs[0].paper).toBe(ZOOLOGY_FIG2.baseconv[64][0]);
    expect(refs[0].setting).toMatch(/ours: seq 32/);
  });

  it("holds every digitised point as a plottable row in [0, 1], with the figures' shapes", () => {
    const rows = paperFigureRows();
    for (const r of rows) {
      expect(r.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.accuracy).toBeLessThanOrEqual(1);
    }
    const zoo = rows.filter((r) => r.figure === 'zoology-fig2');
    expect(zoo.length).toBe(80 - 3); // 3 markers hidden under another model's marker: null
    for (const k of ZOOLOGY_FIG2_BY_EYE) {
      const [m, seq, d] = k.split('/');
      expect(zoo.some((r) => r.model === m && r.seqLen === Number(seq) && r.x === Number(d))).toBe(true);
    }
    // Zoology: BaseConv needs width that grows with the sequence; attention is flat at ~1.0.
    const bc = (seq: 64 | 512) => ZOOLOGY_FIG2.baseconv[seq];
    expect(bc(512)[0] as number).toBeLessThan(bc(64)[0] as number);
    // BASED: sliding window's accuracy rises with its state bytes.
    const sl = BASED_FIG2.sliding;
    for (let i = 1; i < sl.length; i++) expect(sl[i][1]).toBeGreaterThan(sl[i - 1][1]);
  });
});

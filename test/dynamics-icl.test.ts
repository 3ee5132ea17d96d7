/** icl-regression (He, Pan, Chen, Yang 2025): prompts, the one-layer multi-head attention against its float64 reference, baselines, pattern scores, experiment. */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { type LinearRegressionBatch, linearRegressionTask } from '../lib/data/linear-regression.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { ConfigError } from '../lib/experiments/schema.js';
import {
  fitGdStep,
  gdPredict,
  type IclAttentionKind,
  IclAttentionModel,
  type IclWeights64,
  iclAttention,
  iclAttentionReference,
  iclAttentionWeights,
  iclRegression,
  kqPattern,
  mseWithCi,
  ovPattern,
  ridgePredict,
} from '../lib/papers/dynamics/icl-regression/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const KINDS: IclAttentionKind[] = ['softmax', 'linear', 'linear-mean'];

/** Random weights for H heads over e features, as float64 arrays and as tensors. */
function randomWeights(H: number, e: number, seed: number, scale = 0.6): IclWeights64 {
  return {
    heads: H,
    e,
    wq: randomArray(H * e * e, seed, scale),
    wk: randomArray(H * e * e, seed + 1, scale),
    wv: randomArray(H * e * e, seed + 2, scale),
    wo: randomArray(H * e, seed + 3, scale),
  };
}

function tensors(w: IclWeights64) {
  const { heads: H, e } = w;
  return {
    wq: tf.tensor3d(Float32Array.from(w.wq), [H, e, e]),
    wk: tf.tensor3d(Float32Array.from(w.wk), [H, e, e]),
    wv: tf.tensor3d(Float32Array.from(w.wv), [H, e, e]),
    wo: tf.tensor2d(Float32Array.from(w.wo), [H, e]),
  };
}

/** Tokens of a batch as float64 arrays (z [b·n·e], zq [b·e]), the layout the reference takes. */
function tokens64(t: LinearRegressionBatch): { z: Float64Array; zq: Float64Array } {
  const { batch: b, n, d } = t;
  const e = d + 1;
  const z = new Float64Array(b * n * e);
  const zq = new Float64Array(b * e);
  for (let r = 0; r < b; r++) {
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < d; k++) z[(r * n + i) * e + k] = t.x[(r * n + i) * d + k];
      z[(r * n + i) * e + d] = t.y[r * n + i];
    }
    for (let k = 0; k < d; k++) zq[r * e + k] = t.xq[r * d + k];
  }
  return { z, zq };
}

describe('linearRegressionTask', () => {
  it('draws y = βᵀx (+ noise) with the documented layout, reproducibly per seed and split', async () => {
    await useBackend('cpu');
    const t = linearRegressionTask({ batch: 3, n: 5, d: 4, noiseStd: 0, seed: 7 });
    expect(t.x.length).toBe(60);
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < 5; i++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s += t.beta[r * 4 + k] * t.x[(r * 5 + i) * 4 + k];
        expect(t.y[r * 5 + i]).toBeCloseTo(s, 12);
      }
      let s = 0;
      for (let k = 0; k < 4; k++) s += t.beta[r * 4 + k] * t.xq[r * 4 + k];
      expect(t.yq[r]).toBeCloseTo(s, 12);
    }
    const again = linearRegressionTask({ batch: 3, n: 5, d: 4, noiseStd: 0, seed: 7 });
    expect(Array.from(again.x)).toEqual(Array.from(t.x));
    const test = linearRegressionTask({ batch: 3, n: 5, d: 4, noiseStd: 0, seed: 7, split: 'test' });
    const val = linearRegressionTask({ batch: 3, n: 5, d: 4, noiseStd: 0, seed: 7, split: 'validation' });
    expect(test.x[0]).not.toBe(t.x[0]);
    expect(val.x[0]).not.toBe(test.x[0]);
    const { z, zq, yq } = t.toTensors();
    expect(z.shape).toEqual([3, 5, 5]);
    expect(zq.shape).toEqual([3, 1, 5]);
    const zqv = zq.dataSync();
    for (let r = 0; r < 3; r++) expect(zqv[r * 5 + 4]).toBe(0);
    expect(z.dataSync()[4]).toBeCloseTo(t.y[0], 5);
    expect(yq.dataSync()[2]).toBeCloseTo(t.yq[2], 5);
    tf.dispose([z, zq, yq]);
  });

  it('has the prior scale E[y²] = 1 + σ² and label noise of the given σ', () => {
    const t = linearRegressionTask({ batch: 4000, n: 1, d: 6, noiseStd: 0.5, seed: 1 });
    const ey2 = t.yq.reduce((a, v) => a + v * v, 0) / 4000;
    expect(ey2).toBeGreaterThan(1.25 * 0.9);
    expect(ey2).toBeLessThan(1.25 * 1.1);
  });

  it('rejects bad arguments, naming them', () => {
    expect(() => linearRegressionTask({ batch: 0, n: 5, d: 4, noiseStd: 0, seed: 1 })).toThrow(
      /linearRegressionTask: batch must be an integer >= 1, got 0/,
    );
    expect(() => linearRegressionTask({ batch: 1, n: 5, d: 4, noiseStd: -1, seed: 1 })).toThrow(
      /linearRegressionTask: noiseStd must be a finite number >= 0, got -1/,
    );
    expect(() => linearRegressionTask({ batch: 1, n: 5, d: 4, noiseStd: 0, seed: 1, split: 'dev' as 'test' })).toThrow(
      /split must be one of train, validation, test, got dev/,
    );
  });
});

describe.each(BACKENDS)('iclAttention on %s', (backendName) => {
  it('matches the float64 reference: outputs for every kind', async () => {
    await useBackend(backendName);
    const task = linearRegressionTask({ batch: 4, n: 7, d: 3, noiseStd: 0.3, seed: 2 });
    const w = randomWeights(3, 4, 11);
    const { z: z64, zq: zq64 } = tokens64(task);
    const { z, zq } = task.toTensors();
    const wt = tensors(w);
    for (const kind of KINDS) {
      const out = iclAttention(zq, z, wt, kind);
      expect(out.shape).toEqual([4]);
      expectClose(out, iclAttentionReference(zq64, z64, 4, 7, w, kind), { rtol: 1e-4, atol: 1e-5 }, kind);
      out.dispose();
    }
    const a = iclAttentionWeights(zq, z, wt, 'softmax');
    const sums = a.sum(-1);
    expectClose(sums, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], {}, 'softmax rows sum to 1');
    tf.dispose([z, zq, a, sums, ...Object.values(wt)]);
  });

  it('matches the float64 reference: gradients of every weight', async () => {
    await useBackend(backendName);
    const task = linearRegressionTask({ batch: 3, n: 5, d: 2, noiseStd: 0.3, seed: 4 });
    const { z: z64, zq: zq64 } = tokens64(task);
    const cot = randomArray(3, 99, 1);
    for (const kind of KINDS) {
      const w = randomWeights(2, 3, 21);
      const { z, zq } = task.toTensors();
      const wt = tensors(w);
      const names = ['wq', 'wk', 'wv', 'wo'] as const;
      const grads = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o: tf.Tensor) =>
        tf.sum(tf.mul(iclAttention(zq, z, { wq: q, wk: k, wv: v, wo: o }, kind), tf.tensor1d(Float32Array.from(cot)))),
      )([wt.wq, wt.wk, wt.wv, wt.wo]);
      names.forEach((name, i) => {
        const arr = w[name] as Float64Array;
        const f = () => {
          const p = iclAttentionReference(zq64, z64, 3, 5, w, kind);
          return p.reduce((a, v, r) => a + v * cot[r], 0);
        };
        expectClose(grads[i], numericGrad(f, arr, 1e-6), { rtol: 2e-3, atol: 2e-4 }, `${kind} d/d${name}`);
      });
      tf.dispose([z, zq, ...grads, ...Object.values(wt)]);
    }
  });

  it('is invariant to the order of the context and leaks no tensors', async () => {
    await useBackend(backendName);
    const task = linearRegressionTask({ batch: 2, n: 6, d: 3, noiseStd: 0.1, seed: 5 });
    const w = tensors(randomWeights(2, 4, 31));
    const { z, zq } = task.toTensors();
    const perm = tf.tensor1d([5, 2, 0, 4, 1, 3], 'int32');
    const zp = tf.gather(z, perm, 1);
    const a = iclAttention(zq, z, w);
    const b = iclAttention(zq, zp, w);
    expectClose(b, a, {}, 'permuted context');
    expectNoLeak(() => {
      iclAttention(zq, z, w, 'softmax').dispose();
      tf.grads((q: tf.Tensor) => iclAttention(zq, z, { ...w, wq: q }).sum())([w.wq]).forEach((g) => g.dispose());
    });
    tf.dispose([z, zq, perm, zp, a, b, ...Object.values(w)]);
  });
});

describe('iclAttention arguments', () => {
  it('names the function, the argument, the expected and the actual shape', async () => {
    await useBackend('cpu');
    const z = tf.zeros([2, 5, 4]);
    const zq = tf.zeros([2, 1, 4]);
    const w = tensors(randomWeights(2, 4, 1));
    expect(() => iclAttention(tf.zeros([2, 1, 3]), z, w)).toThrow(
      /iclAttention: zq must be \[2, 1, 4\].*got \[2,1,3\]/,
    );
    expect(() => iclAttention(zq, z, { ...w, wv: tf.zeros([3, 4, 4]) })).toThrow(
      /iclAttention: wv must be \[2, 4, 4\], got \[3,4,4\]/,
    );
    expect(() => iclAttention(zq, z, w, 'relu' as IclAttentionKind)).toThrow(
      /iclAttention: kind must be one of 'softmax', 'linear', 'linear-mean', got "relu"/,
    );
    expect(() => new IclAttentionModel({ d: 0, heads: 1, seed: 0 })).toThrow(
      /IclAttentionModel: d must be an integer >= 1, got 0/,
    );
    tf.disposeVariables();
    tf.dispose([z, zq, ...Object.values(w)]);
  });
});

describe('the paper’s pattern is debiased GD', () => {
  /** Two heads, KQ x-block ±ω·I, OV (0, …, 0, ±μ): the pattern the paper finds after training. */
  function patternWeights(d: number, omega: number, mu: number): IclWeights64 {
    const e = d + 1;
    const H = 2;
    const w = {
      heads: H,
      e,
      wq: new Float64Array(H * e * e),
      wk: new Float64Array(H * e * e),
      wv: new Float64Array(H * e * e),
      wo: new Float64Array(H * e),
    };
    [1, -1].forEach((sign, h) => {
      for (let k = 0; k < d; k++) w.wq[(h * e + k) * e + k] = sign * omega * Math.sqrt(e);
      for (let k = 0; k < e; k++) {
        w.wk[(h * e + k) * e + k] = 1;
        w.wv[(h * e + k) * e + k] = 1;
      }
      w.wo[h * e + d] = sign * mu;
    });
    return w;
  }

  it('approximates (2μω/n) Σ y_i (x_i − x̄)ᵀ x_q for small ω, and not the undebiased GD', () => {
    const task = linearRegressionTask({ batch: 200, n: 20, d: 4, noiseStd: 0.3, seed: 8 });
    const { z, zq } = tokens64(task);
    const [omega, mu] = [1e-3, 100];
    const pred = iclAttentionReference(zq, z, 200, 20, patternWeights(4, omega, mu));
    const dgd = gdPredict(task, 2 * mu * omega, true);
    const gd = gdPredict(task, 2 * mu * omega, false);
    const gap = (p: Float64Array) =>
      p.reduce((a, v, i) => a + (v - dgd[i]) ** 2, 0) / dgd.reduce((a, v) => a + v * v, 0);
    expect(gap(pred)).toBeLessThan(1e-4);
    expect(gap(gd)).toBeGreaterThan(1e-3);
  });

  it('scores the pattern as diagonal, homogeneous, last-entry-only and zero-sum, read back from a model', async () => {
    await useBackend('cpu');
    const d = 3;
    const w = patternWeights(d, 0.4, 2);
    const model = new IclAttentionModel({ d, heads: 2, seed: 0 });
    const values = {
      wq: tf.tensor3d(Float32Array.from(w.wq), [2, 4, 4]),
      wk: tf.tensor3d(Float32Array.from(w.wk), [2, 4, 4]),
      wv: tf.tensor3d(Float32Array.from(w.wv), [2, 4, 4]),
      wo: tf.tensor2d(Float32Array.from(w.wo), [2, 4]),
    };
    for (const k of ['wq', 'wk', 'wv', 'wo'] as const) (model.weights[k] as tf.Variable).assign(values[k]);
    tf.dispose(Object.values(values));
    const kq = model.kq();
    const ov = model.ov();
    expect(kq[0][1][1]).toBeCloseTo(0.4, 5);
    expect(kq[1][2][2]).toBeCloseTo(-0.4, 5);
    const p = kqPattern(kq[0], d);
    expect(p.omega).toBeCloseTo(0.4, 5);
    expect(p.offDiagonalRatio).toBeLessThan(1e-6);
    expect(p.diagonalSpread).toBeLessThan(1e-6);
    const o = ovPattern(ov);
    expect(o.mu.map((m) => +m.toFixed(5))).toEqual([2, -2]);
    expect(o.lastEntryShare.map((s) => +s.toFixed(5))).toEqual([1, 1]);
    expect(o.zeroSum).toBeCloseTo(0, 6);
    // A random head is neither diagonal nor zero-sum.
    const r = kqPattern(
      [
        [0.3, 0.5, -0.2],
        [0.1, 0.9, 0.4],
        [-0.6, 0.2, 0.1],
      ],
      3,
    );
    expect(r.offDiagonalRatio).toBeGreaterThan(0.5);
    expect(
      ovPattern([
        [0.5, 1],
        [0.2, 1],
      ]).zeroSum,
    ).toBe(1);
    model.dispose();
  });
});

describe('baselines', () => {
  it('least squares recovers noiseless labels; ridge at λ = σ²d beats it at n = d + 1 (Bayes-optimal)', () => {
    const clean = linearRegressionTask({ batch: 20, n: 6, d: 4, noiseStd: 0, seed: 3, split: 'test' });
    expectClose(ridgePredict(clean, 0), clean.yq, { rtol: 1e-8, atol: 1e-8 }, 'OLS, noiseless');
    const under = linearRegressionTask({ batch: 5, n: 2, d: 4, noiseStd: 0, seed: 3, split: 'test' });
    // n < d: the minimum-norm interpolant fits the context exactly; its prediction is finite.
    expect(ridgePredict(under, 0).every(Number.isFinite)).toBe(true);
    const noisy = linearRegressionTask({ batch: 3000, n: 5, d: 4, noiseStd: 0.5, seed: 4, split: 'test' });
    const bayes = mseWithCi(ridgePredict(noisy, 0.25 * 4), noisy.yq);
    const ols = mseWithCi(ridgePredict(noisy, 0), noisy.yq);
    expect(bayes.mse + bayes.ci95).toBeLessThan(ols.mse - ols.ci95);
    expect(() => ridgePredict(noisy, -1)).toThrow(/ridgePredict: lambda must be a finite number >= 0, got -1/);
  });

  it('one-step GD is (η/n) Σ y_i x_iᵀ x_q and its fitted step minimises the squared error', () => {
    const t = linearRegressionTask({ batch: 1, n: 2, d: 2, noiseStd: 0, seed: 1 });
    const byHand =
      (0.7 / 2) * (t.y[0] * (t.x[0] * t.xq[0] + t.x[1] * t.xq[1]) + t.y[1] * (t.x[2] * t.xq[0] + t.x[3] * t.xq[1]));
    expect(gdPredict(t, 0.7)[0]).toBeCloseTo(byHand, 12);
    const val = linearRegressionTask({ batch: 500, n: 10, d: 3, noiseStd: 0.3, seed: 2, split: 'validation' });
    const eta = fitGdStep(val, true);
    const at = (s: number) => mseWithCi(gdPredict(val, s, true), val.yq).mse;
    expect(at(eta)).toBeLessThan(at(eta * 1.05));
    expect(at(eta)).toBeLessThan(at(eta * 0.95));
  });
});

describe('icl-regression experiment', () => {
  afterAll(() => tf.disposeVariables());

  it('runs a tiny config: every model and baseline at every n, pattern scores, artifacts disposed', async () => {
    await useBackend('cpu');
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(iclRegression, {
      quick: true,
      progress: false,
      overrides: {
        steps: 40,
        batch: 16,
        heads: [1, 2],
        linear: ['linear'],
        evalN: [8, 64],
        validationRows: 100,
        testRows: 200,
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    for (const m of ['softmax-h1', 'softmax-h2', 'linear-h1', 'ridge', 'ols', 'gd', 'debiased-gd'])
      for (const n of [8, 40, 64]) expect(Number.isFinite(r.metrics[`test_mse_${m}_n${n}`]), `${m} n${n}`).toBe(true);
    expect(r.metrics['train_ov_zero_sum_softmax-h1']).toBe(1);
    expect(r.metrics['test_mse_diff_softmax-h2_minus_softmax-h1_n40_ci95']).toBeGreaterThan(0);
    expect(r.tables?.heads).toHaveLength(4);
    expect(r.references?.map((x) => x.metric)).toEqual(['test_mse_softmax-h1_n40', 'test_mse_softmax-h2_n40']);
    expect(r.artifacts).toBeUndefined();
  });

  it('keeps trained models and KQ/OV matrices when asked; rejects a bad config before any work', async () => {
    await useBackend('cpu');
    const r = await runExperimentWith(iclRegression, {
      quick: true,
      keep: true,
      progress: false,
      overrides: {
        d: 3,
        trainN: 8,
        steps: 20,
        batch: 8,
        heads: [2],
        linear: [],
        evalN: [8],
        validationRows: 50,
        testRows: 50,
      },
    });
    const a = r.artifacts;
    expect(a?.models).toHaveLength(1);
    expect(a?.models[0].kq).toHaveLength(2);
    expect(a?.models[0].kq[0]).toHaveLength(4);
    expect(a?.models[0].ov[1]).toHaveLength(4);
    const dyn = a?.models[0].dynamics ?? [];
    expect(dyn[0].step).toBe(0);
    expect(dyn[dyn.length - 1].step).toBe(20);
    expect(dyn[dyn.length - 1].omega).toEqual(a?.models[0].kqPatterns.map((k) => k.omega));
    expect(dyn[dyn.length - 1].mu).toEqual(a?.models[0].ovPattern.mu);
    expect(r.references).toEqual([]);
    a?.dispose();
    await expect(
      runExperimentWith(iclRegression, { quick: true, overrides: { linear: ['relu'], lrs: [] } }),
    ).rejects.toThrow(ConfigError);
  });
});

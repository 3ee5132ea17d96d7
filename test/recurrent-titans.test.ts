/** Titans (Behrouz, Zhong, Mirrokni 2025): the MAG layer's parallel and recurrent forms against the float64 reference, gradients, state bytes, the test-time-memory experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { memoryRecallTask } from '../lib/data/memory-recall.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { mag, magRecurrent, magReference, testTimeMemory, titansMemory } from '../lib/papers/recurrent/titans/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const b = 2;
const T = 12;
const dk = 3;
const dv = 4;
const dims = { b, T, dk, dv };
const q = Array.from(randomArray(b * T * dk, 11, 0.8));
const k = Array.from(randomArray(b * T * dk, 12, 0.8));
const v = Array.from(randomArray(b * T * dv, 13, 0.8));
const g = Array.from(randomArray(b * T, 14, 2));
const gates64 = { lr: 0.4, decay: 0.05, momentum: 0.6 };

for (const backendName of BACKENDS) {
  describe(`titans MAG on ${backendName}`, () => {
    for (const [label, opts] of [
      ['full', {}],
      ['no momentum', { momentum: false }],
      ['no forgetting', { forgetting: false }],
    ] as const) {
      it(`${label}: parallel = recurrent = float64 reference; state bytes = window + memory`, async () => {
        await useBackend(backendName);
        const window = 5;
        const ref = magReference(q, k, v, dims, gates64, { ...opts, chunk: 4, window, gateLogits: g });
        const Q = tf.tensor3d(q, [b, T, dk]);
        const K = tf.tensor3d(k, [b, T, dk]);
        const V = tf.tensor3d(v, [b, T, dv]);
        const G = tf.tensor2d(g, [b, T]);
        const par = mag(Q, K, V, gates64, { ...opts, chunk: 4, window, gateLogits: G });
        const rec = magRecurrent(Q, K, V, gates64, { ...opts, chunk: 4, window, gateLogits: G });
        expectClose(par, ref, {}, `${label} parallel`);
        expectClose(rec.y, ref, {}, `${label} recurrent`);
        const mem = b * dk * dv * 4 * (1 + ('momentum' in opts ? 0 : 1) + 1);
        expect(rec.maxStateBytes).toBe(mem + (window - 1) * b * (dk + dv) * 4);
        tf.dispose([Q, K, V, G, par, rec.y]);
      });
    }

    it('gradients of the MAG output (q, k, v, gate logits) match the float64 reference', async () => {
      await useBackend(backendName);
      const w = Array.from(randomArray(b * T * dv, 15));
      const args = [Float64Array.from(q), Float64Array.from(k), Float64Array.from(v), Float64Array.from(g)];
      const loss = () =>
        magReference(args[0], args[1], args[2], dims, gates64, { chunk: 4, window: 5, gateLogits: args[3] }).reduce(
          (a, x, i) => a + x * w[i],
          0,
        );
      const numeric = args.map((x) => numericGrad(loss, x));
      const W = tf.tensor3d(w, [b, T, dv]);
      const f = (a: tf.Tensor, bb: tf.Tensor, c: tf.Tensor, gg: tf.Tensor) =>
        tf.sum(tf.mul(mag(a, bb, c, gates64, { chunk: 4, window: 5, gateLogits: gg }), W));
      const inputs = [
        tf.tensor3d(q, [b, T, dk]),
        tf.tensor3d(k, [b, T, dk]),
        tf.tensor3d(v, [b, T, dv]),
        tf.tensor2d(g, [b, T]),
      ];
      const grads = tf.grads(f)(inputs);
      grads.forEach((gr, i) => expectClose(gr, numeric[i], { rtol: 2e-3, atol: 2e-3 }, ['q', 'k', 'v', 'gate'][i]));
      tf.dispose([W, ...inputs, ...grads]);
    });

    it('leaks no tensors and names the bad argument', async () => {
      await useBackend(backendName);
      const Q = tf.tensor3d(q, [b, T, dk]);
      const K = tf.tensor3d(k, [b, T, dk]);
      const V = tf.tensor3d(v, [b, T, dv]);
      const G = tf.tensor2d(g, [b, T]);
      expectNoLeak(() => {
        tf.dispose(mag(Q, K, V, gates64, { window: 4, gateLogits: G }));
        tf.dispose(magRecurrent(Q, K, V, gates64, { chunk: 4, window: 4, gateLogits: G }).y);
        const m = titansMemory(Q, K, V, gates64);
        tf.dispose([m.y, m.state.w, m.state.s as tf.Tensor]);
      });
      expect(() => mag(Q, K, V, gates64, { window: 0, gateLogits: G })).toThrow(
        /slidingWindowAttention: window must be an integer >= 1, got 0/,
      );
      expect(() => mag(Q, K, V, gates64, { window: 4, gateLogits: G.slice([0, 0], [b, 3]) })).toThrow(
        /magCombine: gateLogits must be \[2,12\], got \[2,3\]/,
      );
      expect(() => titansMemory(Q, K, V, gates64, { chunk: 0 })).toThrow(
        /titansSpec: chunk must be an integer >= 1, got 0/,
      );
      tf.dispose([Q, K, V, G]);
    });
  });
}

describe('memory-recall data and the test-time-memory experiment', () => {
  it('places every pair before the window, splits differ, flags the asked fraction of writes', () => {
    const cfg = {
      seqLen: 96,
      pairs: 4,
      keys: 16,
      values: 16,
      filler: 3,
      window: 16,
      repeats: 3,
      outlierFraction: 0.25,
    };
    const val = memoryRecallTask(cfg, 8, 0, 'validation');
    const test = memoryRecallTask(cfg, 8, 0, 'test');
    expect(Array.from(val.tokens)).not.toEqual(Array.from(test.tokens));
    for (let i = 0; i < val.distances.length; i++) expect(val.distances[i]).toBeGreaterThan(cfg.window);
    const flagged = val.outlier.reduce((a, x) => a + x, 0);
    expect(flagged).toBe(8 * Math.round(0.25 * 4 * 3));
    expect(() => memoryRecallTask({ ...cfg, seqLen: 30 }, 1, 0, 'test')).toThrow(/memoryRecallTask: seqLen \(30\)/);
  });

  it('runs tiny: memories beat the window alone beyond it, and every metric has its split', async () => {
    const r = await runExperimentWith(testTimeMemory, {
      quick: true,
      overrides: {
        lengths: [96],
        pairs: 4,
        window: 16,
        validationRows: 4,
        testRows: 24,
        models: ['swa', 'titans', 'deltanet', 'yaad'],
        lrGrid: [0.4],
        outlierLength: 96,
      },
    });
    expect(r.metrics.test_accuracy_swa_T96).toBeLessThan(0.3);
    expect(r.metrics.test_accuracy_deltanet_T96).toBeGreaterThan(r.metrics.test_accuracy_swa_T96 + 0.3);
    expect(r.tables?.recall).toHaveLength(4);
    expect(r.tables?.outliers).toHaveLength(3);
    expect(r.metrics.test_accuracy_outliers_yaad).toBeGreaterThanOrEqual(0);
    await expect(runExperimentWith(testTimeMemory, { quick: true, overrides: { models: ['nope'] } })).rejects.toThrow(
      /models/,
    );
  });
});

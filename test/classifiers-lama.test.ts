/** LAMA (Mehta et al. 2019) and structured self-attention (Lin et al. 2017): outputs and gradients against the float64 references, masking, penalty, parameter counts, the experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { runExperimentWith } from '../lib/experiments/contract.js';
import {
  type LamaParams64,
  lama,
  lamaAttention,
  lamaAttentionReference,
  lamaParamCount,
  redundancyPenalty,
  redundancyPenaltyReference,
  type StructuredParams64,
  structuredParamCount,
  structuredSelfAttention,
  structuredSelfAttentionReference,
} from '../lib/papers/classifiers/lama/index.js';
import { TextClassifier } from '../lib/papers/classifiers/text-attention/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const f32 = (x: ArrayLike<number>) => Float32Array.from(x);
const [b, T, d, r, m, da] = [3, 5, 4, 3, 2, 3];

function maskOf(): Float64Array {
  const mask = new Float64Array(b * T);
  for (let i = 0; i < b; i++) for (let t = 0; t < T - i; t++) mask[i * T + t] = 1;
  return mask;
}

const lamaP = (seed: number): LamaParams64 => ({
  d,
  r,
  m,
  u: randomArray(d * r, seed),
  v: randomArray(d * r, seed + 1),
  p: randomArray(r * m, seed + 2),
});
const structP = (seed: number): StructuredParams64 => ({
  d,
  da,
  m,
  w1: randomArray(d * da, seed),
  w2: randomArray(da * m, seed + 1),
});

describe.each(BACKENDS)('multi-head poolings on %s', (name) => {
  it('LAMA matches its reference (scores, weights, sentence matrix), 0 weight on padding', async () => {
    await useBackend(name);
    const h = randomArray(b * T * d, 1);
    const mask = maskOf();
    const p = lamaP(2);
    const ref = lamaAttentionReference(h, mask, b, T, p);
    const out = tf.tidy(() => {
      const o = lamaAttention(tf.tensor3d(f32(h), [b, T, d]), tf.tensor2d(f32(mask), [b, T]), {
        u: tf.tensor2d(f32(p.u), [d, r]),
        v: tf.tensor2d(f32(p.v), [d, r]),
        p: tf.tensor2d(f32(p.p), [r, m]),
      });
      return [o.scores, o.weights, o.matrix];
    });
    expectClose(out[0], ref.scores, {}, 'scores');
    expectClose(out[1], ref.weights, {}, 'weights');
    expectClose(out[2], ref.matrix, {}, 'matrix');
    const w = out[1].dataSync();
    for (let i = 0; i < b; i++)
      for (let j = 0; j < m; j++)
        for (let t = 0; t < T; t++) if (mask[i * T + t] === 0) expect(w[(i * m + j) * T + t]).toBe(0);
    tf.dispose(out);
  });

  it('LAMA has the gradients of its reference (h, U, V, P)', async () => {
    await useBackend(name);
    const h = randomArray(b * T * d, 3);
    const mask = maskOf();
    const p = lamaP(4);
    const probe = randomArray(b * m * d, 5);
    const f = () => lamaAttentionReference(h, mask, b, T, p).matrix.reduce((s, x, i) => s + x * probe[i], 0);
    const expected = [h, p.u, p.v, p.p].map((x) => numericGrad(f, x as Float64Array));
    const grads = tf.tidy(() => {
      const mk = tf.tensor2d(f32(mask), [b, T]);
      const pr = tf.tensor3d(f32(probe), [b, m, d]);
      return tf.grads((ht, u, v, pp) => tf.sum(tf.mul(lamaAttention(ht, mk, { u, v, p: pp }).matrix, pr)))([
        tf.tensor3d(f32(h), [b, T, d]),
        tf.tensor2d(f32(p.u), [d, r]),
        tf.tensor2d(f32(p.v), [d, r]),
        tf.tensor2d(f32(p.p), [r, m]),
      ]);
    });
    ['h', 'u', 'v', 'p'].forEach((l, i) => expectClose(grads[i], expected[i], { rtol: 2e-3, atol: 2e-4 }, `grad ${l}`));
    tf.dispose(grads);
  });

  it('structured self-attention and its penalty match the reference, with gradients', async () => {
    await useBackend(name);
    const h = randomArray(b * T * d, 6);
    const mask = maskOf();
    const p = structP(7);
    const ref = structuredSelfAttentionReference(h, mask, b, T, p);
    const probe = randomArray(b * m * d, 8);
    const f = () => {
      const o = structuredSelfAttentionReference(h, mask, b, T, p);
      return o.matrix.reduce((s, x, i) => s + x * probe[i], 0) + redundancyPenaltyReference(o.weights, b, m, T);
    };
    const expected = [h, p.w1, p.w2].map((x) => numericGrad(f, x as Float64Array));
    const out = tf.tidy(() => {
      const o = structuredSelfAttention(tf.tensor3d(f32(h), [b, T, d]), tf.tensor2d(f32(mask), [b, T]), {
        w1: tf.tensor2d(f32(p.w1), [d, da]),
        w2: tf.tensor2d(f32(p.w2), [da, m]),
      });
      return [o.weights, o.matrix, redundancyPenalty(o.weights)];
    });
    expectClose(out[0], ref.weights, {}, 'weights');
    expectClose(out[1], ref.matrix, {}, 'matrix');
    expectClose(out[2], [redundancyPenaltyReference(ref.weights, b, m, T)], {}, 'penalty');
    const grads = tf.tidy(() => {
      const mk = tf.tensor2d(f32(mask), [b, T]);
      const pr = tf.tensor3d(f32(probe), [b, m, d]);
      return tf.grads((ht, w1, w2) => {
        const o = structuredSelfAttention(ht, mk, { w1, w2 });
        return tf.add(tf.sum(tf.mul(o.matrix, pr)), redundancyPenalty(o.weights));
      })([tf.tensor3d(f32(h), [b, T, d]), tf.tensor2d(f32(p.w1), [d, da]), tf.tensor2d(f32(p.w2), [da, m])]);
    });
    ['h', 'w1', 'w2'].forEach((l, i) => expectClose(grads[i], expected[i], { rtol: 2e-3, atol: 2e-4 }, `grad ${l}`));
    tf.dispose([...out, ...grads]);
  });

  it('leak no tensor', async () => {
    await useBackend(name);
    const h = tf.tensor3d(f32(randomArray(b * T * d, 9)), [b, T, d]);
    const mk = tf.tensor2d(f32(maskOf()), [b, T]);
    const lp = { u: tf.ones([d, r]), v: tf.ones([d, r]), p: tf.ones([r, m]) };
    const sp = { w1: tf.ones([d, da]), w2: tf.ones([da, m]) };
    expectNoLeak(() => {
      const a = lamaAttention(h, mk, lp);
      const s = structuredSelfAttention(h, mk, sp);
      const pen = redundancyPenalty(s.weights);
      tf.dispose([a.scores, a.weights, a.matrix, s.scores, s.weights, s.matrix, pen]);
    });
    tf.dispose([h, mk, ...Object.values(lp), ...Object.values(sp)]);
  });
});

describe('argument errors and parameter counts', () => {
  it('name the function, argument and shapes', async () => {
    await useBackend('cpu');
    const h = tf.zeros([2, 3, 4]);
    const mk = tf.ones([2, 3]);
    expect(() => lamaAttention(h, mk, { u: tf.zeros([5, 2]), v: tf.zeros([4, 2]), p: tf.zeros([2, 2]) })).toThrow(
      /lamaAttention: u must be \[4, n\], got \[5,2\]/,
    );
    expect(() => lamaAttention(h, mk, { u: tf.zeros([4, 2]), v: tf.zeros([4, 3]), p: tf.zeros([2, 2]) })).toThrow(
      /lamaAttention: v must be \[4, 2\], got \[4,3\]/,
    );
    expect(() => structuredSelfAttention(h, tf.ones([2, 2]), { w1: tf.zeros([4, 2]), w2: tf.zeros([2, 2]) })).toThrow(
      /structuredSelfAttention: mask must be \[2, 3\] to match h \[2,3,4\], got \[2,2\]/,
    );
    expect(() => redundancyPenalty(tf.zeros([2, 3]))).toThrow(
      /redundancyPenalty: weights must be \[b, m, T\], got \[2,3\]/,
    );
    tf.dispose([h, mk]);
  });

  it('count what the model holds', () => {
    expect(lamaParamCount(32, 8, 4)).toBe(2 * 32 * 8 + 8 * 4);
    expect(structuredParamCount(32, 16, 4)).toBe(32 * 16 + 16 * 4);
    const model = new TextClassifier({
      vocabSize: 20,
      embedDim: 4,
      hidden: 8,
      classes: 4,
      pooling: { kind: 'lama', heads: 4, rank: 8 },
      seed: 0,
    });
    const attn = Object.entries(model.variables())
      .filter(([k]) => k.startsWith('attn.'))
      .reduce((s, [, v]) => s + v.size, 0);
    expect(model.attentionParams()).toBe(attn);
    expect(attn).toBe(lamaParamCount(16, 8, 4));
    model.dispose();
  });
});

describe('lama experiment', () => {
  it('trains every pooling and reports accuracy, parameters, time and per-head aspect mass', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(lama, {
      quick: true,
      keep: true,
      overrides: {
        trainSize: 200,
        validationSize: 50,
        testSize: 80,
        embedDim: 4,
        hidden: 4,
        steps: 5,
        batch: 16,
        heads: 2,
        attentionDim: 4,
        ranks: [2, 3],
      },
    });
    const names = ['single-head', 'structured', 'lama-r2', 'lama-r3'];
    expect(r.tables?.results.map((row) => row.model)).toEqual(names);
    for (const n of names) {
      expect(Number.isFinite(r.metrics[`${n}.test_accuracy`])).toBe(true);
      expect(r.metrics[`${n}.params_attention`]).toBeGreaterThan(0);
    }
    expect(r.metrics['lama-r2.params_attention']).toBe(lamaParamCount(8, 2, 2));
    expect(r.tables?.heads).toHaveLength(1 + 2 + 2 + 2);
    for (const row of r.tables?.heads ?? []) {
      const s = (row.test_mass_sentiment as number) + (row.test_mass_topic as number);
      expect(s).toBeGreaterThan(0);
      expect(s).toBeLessThanOrEqual(1 + 1e-6);
    }
    for (const row of r.tables?.results ?? []) {
      const heads = (r.tables?.heads ?? []).filter((h) => h.model === row.model);
      const senti = heads.map((h) => h.test_mass_sentiment as number);
      const topic = heads.map((h) => h.test_mass_topic as number);
      const split = senti.some((x, h) => x > topic[h]) && topic.some((x, h) => x > senti[h]);
      expect(row.heads_split_aspects, String(row.model)).toBe(split);
      if (row.model === 'single-head') expect(row.heads_split_aspects).toBe(false);
    }
    r.artifacts?.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }, 60_000);
});

/**
 * Fidelity of the sparse evaluations (issue #17): LongHeads' official chunk summary (the chunk's queries over its keys
 * and values) against its float64 reference, outputs and gradients, with the 'keys' variant beside it; the passkey
 * evaluation halves (validation and test never share a passkey, neither was trained on); Seer's gate in sparse-approx
 * is fitted on inputs other than the ones it is scored on.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdpa } from '../lib/attention/sdpa.js';
import { splitOf } from '../lib/data/batch.js';
import * as masks from '../lib/masks/index.js';
import { plantedSource } from '../lib/papers/sparse/experiments/approx.js';
import { evalSet, evalSplitOf, wilson95 } from '../lib/papers/sparse/experiments/passkey.js';
import { chunkKeys, longHeadsAttention, longHeadsAttentionNaive } from '../lib/papers/sparse/longheads/index.js';
import { rope } from '../lib/positional/rope.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomTensor4d, useBackend } from './helpers.js';

const rand = randomTensor4d;

function inputs(shape: number[], kvHeads: number, seed: number): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
  const [b, h, n, d] = shape;
  return [rand([b, h, n, d], seed, 1.5), rand([b, kvHeads, n, d], seed + 1, 1.5), rand([b, kvHeads, n, d], seed + 2)];
}

const positions = (m: number) => Array.from({ length: m }, (_, i) => i);

describe.each(BACKENDS)('LongHeads chunk summaries on %s', (backendName) => {
  beforeAll(async () => {
    await useBackend(backendName);
  });

  // 44 keys in chunks of 4 with a budget of 3 chunks: every query past the third chunk is choosing.
  const settings = [
    { label: "'qkv' (official), grouped kv heads", kv: 2, o: { chunkSize: 4, chunks: 3 } },
    { label: "'qkv', query blocks", kv: 1, o: { chunkSize: 4, chunks: 3, queryBlock: 4 } },
    { label: "'qkv', compact rope", kv: 2, o: { chunkSize: 4, chunks: 3, rope: { base: 100 } } },
    { label: "'keys', grouped kv heads", kv: 2, o: { chunkSize: 4, chunks: 3, summary: 'keys' as const } },
    { label: "'keys', compact rope", kv: 1, o: { chunkSize: 4, chunks: 3, summary: 'keys' as const, rope: {} } },
  ];

  it.each(settings)('$label: output and chunk choice match the float64 reference', ({ kv, o }) => {
    const [q, k, v] = inputs([2, 4, 44, 8], kv, 11);
    const r = longHeadsAttention(q, k, v, o);
    const ref = longHeadsAttentionNaive(q, k, v, o);
    expect(r.chunks).toEqual(ref.chunks);
    expectClose(r.output, ref.output, { rtol: 1e-4, atol: 1e-5 }, 'longheads vs naive');
    expect(r.stats.pairs).toBeLessThan(r.stats.densePairs);
    tf.dispose([q, k, v, r.output]);
  });

  it.each(settings)('$label: gradients match central differences of the reference', ({ kv, o }) => {
    const shape = [1, 2, 20, 4];
    // The chunk choice is piecewise constant: inputs whose choice is not within the step (2^-10) of a tie.
    const [q, k, v] = inputs(shape, Math.min(kv, 2), 23);
    const R = rand(shape, 77);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      longHeadsAttention(a, b, c, o).output.mul(R).sum(),
    )([q, k, v]);
    const arrays = [q, k, v].map((t) => Float64Array.from(t.dataSync()));
    const Rd = R.dataSync();
    const f = () => {
      const ts = arrays.map((a, i) => tf.tensor(Float32Array.from(a), [q, k, v][i].shape));
      const out = longHeadsAttentionNaive(ts[0], ts[1], ts[2], o).output;
      tf.dispose(ts);
      let acc = 0;
      for (let i = 0; i < out.length; i++) acc += out[i] * Rd[i];
      return acc;
    };
    arrays.forEach((a, i) => {
      expectClose(grads[i], numericGrad(f, a, 2 ** -10), { rtol: 5e-3, atol: 5e-4 }, `grad of ${'qkv'[i]}`);
    });
    tf.dispose([q, k, v, R, ...grads]);
  });

  it('with every chunk in budget, both summaries equal dense causal attention (with rope: at absolute positions)', () => {
    const [q, k, v] = inputs([1, 4, 36, 8], 2, 31);
    const dense = sdpa(q, k, v, { mask: masks.causal() });
    const [qr, kr] = [rope(q, positions(36)), rope(k, positions(36))];
    const denseRope = sdpa(qr, kr, v, { mask: masks.causal() });
    for (const summary of ['qkv', 'keys'] as const) {
      const r = longHeadsAttention(q, k, v, { chunkSize: 4, chunks: 64, summary });
      expectClose(r.output, dense, { rtol: 1e-4, atol: 1e-5 }, `${summary} full budget`);
      expect(r.stats.pairs).toBe(r.stats.densePairs);
      const c = longHeadsAttention(q, k, v, { chunkSize: 4, chunks: 64, summary, rope: {} });
      expectClose(c.output, denseRope, { rtol: 1e-4, atol: 1e-5 }, `${summary} full budget, rope`);
      tf.dispose([r.output, c.output]);
    }
    tf.dispose([q, k, v, dense, qr, kr, denseRope]);
  });

  it("'qkv' reads the chunk's queries and values, 'keys' does not; a lone query with chunkQueries is the full call's last row", () => {
    const [q, k, v] = inputs([1, 2, 40, 8], 1, 41);
    const q2 = rand([1, 2, 40, 8], 99, 1.5);
    const v2 = rand([1, 1, 40, 8], 98);
    // Summaries: 'qkv' changes with the queries and the values, 'keys' with neither.
    const kq = chunkKeys(k, 4, undefined, undefined, { q, v });
    const kq2 = chunkKeys(k, 4, undefined, undefined, { q: q2, v });
    const kv2 = chunkKeys(k, 4, undefined, undefined, { q, v: v2 });
    expect(kq.shape).toEqual([1, 2, 10, 8]);
    for (const other of [kq2, kv2])
      expect(tf.tidy(() => kq.sub(other).abs().max().dataSync()[0])).toBeGreaterThan(1e-3);
    const kk = chunkKeys(k, 4);
    expect(kk.shape).toEqual([1, 1, 10, 8]);
    // Decoding: the last query alone, given every position's query for the summaries, is the full call's last row.
    for (const rope of [undefined, { base: 100 }]) {
      const full = longHeadsAttention(q, k, v, { chunkSize: 4, chunks: 3, rope });
      const last = q.slice([0, 0, 39, 0], [1, 2, 1, 8]);
      const lone = longHeadsAttention(last, k, v, { chunkSize: 4, chunks: 3, rope, chunkQueries: q });
      const fullLast = full.output.slice([0, 0, 39, 0], [1, 2, 1, 8]);
      expectClose(lone.output, fullLast, { rtol: 1e-5, atol: 1e-6 }, 'lone query vs last row');
      tf.dispose([full.output, last, lone.output, fullLast]);
    }
    tf.dispose([q, k, v, q2, v2, kq, kq2, kv2, kk]);
  });

  it('never lets a future token change an earlier output, and leaks no tensors', () => {
    const [q, k, v] = inputs([1, 2, 44, 8], 1, 51);
    const o = { chunkSize: 4, chunks: 3 };
    const t = 30;
    const bump = (y: tf.Tensor4D) =>
      tf.tidy(() => {
        const m = tf.tensor1d(positions(44).map((i) => (i === t ? 1 : 0))).reshape([1, 1, 44, 1]);
        return y.add(m.mul(rand(y.shape, 60, 3))) as tf.Tensor4D;
      });
    const [q2, k2, v2] = [bump(q), bump(k), bump(v)];
    const a = longHeadsAttention(q, k, v, o).output;
    const b = longHeadsAttention(q2, k2, v2, o).output;
    const early = (x: tf.Tensor) => x.slice([0, 0, 0, 0], [1, 2, t, 8]);
    const [ea, eb] = [early(a), early(b)];
    expectClose(eb, ea, { rtol: 1e-6, atol: 1e-6 }, 'a future token changed an earlier output');
    expectNoLeak(() => {
      longHeadsAttention(q, k, v, o).output.dispose();
      longHeadsAttention(q, k, v, { ...o, summary: 'keys' }).output.dispose();
    });
    tf.dispose([q, k, v, q2, k2, v2, a, b, ea, eb]);
  });

  it('errors name the function, the option, the expected and the actual value', () => {
    const [q, k, v] = inputs([1, 2, 40, 8], 1, 71);
    const last = q.slice([0, 0, 39, 0], [1, 2, 1, 8]);
    expect(() => longHeadsAttention(last, k, v, { chunkSize: 4, chunks: 3 })).toThrow(
      /longHeadsAttention: the 'qkv' chunk summary reads the chunk's queries: q covers 1 of 40 positions, so pass options.chunkQueries with shape \[1,2,40,8\]/,
    );
    expect(() => longHeadsAttention(last, k, v, { chunkSize: 4, chunks: 3, chunkQueries: last })).toThrow(
      /longHeadsAttention: options.chunkQueries must have shape \[1,2,40,8\], but has \[1,2,1,8\]/,
    );
    expect(() =>
      longHeadsAttention(q, k, v, { chunkSize: 4, chunks: 3, summary: 'values' as unknown as 'keys' }),
    ).toThrow(/longHeadsAttention: options.summary must be one of 'qkv', 'keys', got "values"/);
    const v6 = rand([1, 1, 40, 6], 72);
    expect(() => longHeadsAttention(q, k, v6, { chunkSize: 4, chunks: 3 })).toThrow(
      /longHeadsAttention: the 'qkv' chunk summary .* v's last dim \(6\) must equal q's \(8\)/,
    );
    expect(() => longHeadsAttentionNaive(last, k, v, { chunkSize: 4, chunks: 3 })).toThrow(
      /longHeadsAttentionNaive: the 'qkv' chunk summary reads the chunk's queries/,
    );
    // The 'keys' summary needs no queries and no value dim.
    const ok = longHeadsAttention(last, k, v6, { chunkSize: 4, chunks: 3, summary: 'keys' });
    expect(ok.output.shape).toEqual([1, 2, 1, 6]);
    tf.dispose([q, k, v, last, v6, ok.output]);
  });
});

describe('passkey-long evaluation halves', () => {
  const cfg = { digits: 5, distinct: true, fillerVocab: 16 };

  it('validation and test rows share no passkey, and every one is outside the training share', () => {
    const seen: Record<string, Set<string>> = { validation: new Set(), test: new Set() };
    for (const split of ['validation', 'test'] as const) {
      for (const len of [64, 256]) {
        const { prompts, answers } = evalSet(cfg, len, 3, split, 40);
        expect(prompts).toHaveLength(40);
        for (const [i, a] of answers.entries()) {
          expect(a).toHaveLength(5);
          expect(evalSplitOf(a)).toBe(split);
          expect(splitOf(a)).toBe('test'); // the task's train share never holds it
          expect(prompts[i]).toHaveLength(len + 1 - 5); // the row and its last target, less the 5 answer digits
          seen[split].add(a.join(','));
        }
      }
    }
    for (const key of seen.validation) expect(seen.test.has(key)).toBe(false);
    expect(seen.validation.size).toBeGreaterThan(40);
    // The same seed gives the same rows; another seed other rows.
    expect(evalSet(cfg, 64, 3, 'test', 8)).toEqual(evalSet(cfg, 64, 3, 'test', 8));
    expect(evalSet(cfg, 64, 4, 'test', 8).answers).not.toEqual(evalSet(cfg, 64, 3, 'test', 8).answers);
  });

  it('the Wilson interval: 0 of 8 is [0, 0.32], 50 of 100 is about ±0.10, and it never leaves [0, 1]', () => {
    const [lo0, hi0] = wilson95(0, 8);
    expect(lo0).toBe(0);
    expect(hi0).toBeCloseTo(3.8416 / 11.8416, 6);
    const [lo, hi] = wilson95(0.5, 100);
    expect(lo).toBeCloseTo(0.4038, 3);
    expect(hi).toBeCloseTo(0.5962, 3);
    const [lo1, hi1] = wilson95(1, 16);
    expect(hi1).toBe(1);
    expect(lo1).toBeCloseTo(16 / (16 + 3.8416), 6);
  });

  it('landmark prompts carry a landmark token after every block - 1 tokens', () => {
    const { prompts } = evalSet(cfg, 64, 3, 'validation', 4, { id: 99, block: 8 });
    for (const p of prompts) p.forEach((t, i) => expect(t === 99).toBe((i + 1) % 8 === 0));
  });
});

describe('sparse-approx: Seer is fitted on training inputs, scored on test inputs', () => {
  beforeAll(async () => {
    await useBackend(BACKENDS[0]);
  });
  afterAll(() => undefined);

  it('the planted training draw differs from the test draw at the same length, and each is reproducible', () => {
    const src = plantedSource({ planted: { heads: 2, dim: 8, plantedScore: 10 } }, 0);
    const [qt, kt, vt] = src.make(128, 'train');
    const [qs, ks, vs] = src.make(128, 'test');
    const [qs2] = src.make(128, 'test');
    for (const [a, b] of [
      [qt, qs],
      [kt, ks],
      [vt, vs],
    ])
      expect(tf.tidy(() => a.sub(b).abs().max().dataSync()[0])).toBeGreaterThan(0.1);
    expectClose(qs2, qs, { rtol: 0, atol: 0 }, 'same test draw');
    tf.dispose([qt, kt, vt, qs, ks, vs, qs2]);
  });
});

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { sdpa } from '../lib/attention/sdpa.js';
import { ToyLM } from '../lib/layers/toylm.js';
import { PolicyCache } from '../lib/papers/inference/kv/cache.js';
import { decodeWithPolicy } from '../lib/papers/inference/kv/decode.js';
import { H2OPolicy } from '../lib/papers/inference/kv/h2o.js';
import {
  FullPolicy,
  type HeadView,
  PerHeadPolicy,
  SinkPolicy,
  WindowPolicy,
} from '../lib/papers/inference/kv/policy.js';
import { LazyEvictionPolicy } from '../lib/papers/inference/lazy-eviction/index.js';
import {
  echoInductionScores,
  RazorPolicy,
  razorAttentionReference,
  razorRetrievalHeads,
} from '../lib/papers/inference/razor/index.js';
import { expectClose, useBackend } from './helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

function model(extra: Partial<ConstructorParameters<typeof ToyLM>[0]> = {}): ToyLM {
  const lm = new ToyLM({ vocab: 13, dModel: 16, heads: 4, layers: 2, maxLen: 40, seed: 3, ...extra });
  lm.build();
  return lm;
}

function prompt(b: number, s: number, seed = 1): tf.Tensor2D {
  let x = seed;
  const data = Array.from({ length: b * s }, () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % 13;
  });
  return tf.tensor2d(data, [b, s], 'int32');
}

/** The uncached forward's logits at the positions decoding predicts from, teacher-forced on `fed`. */
function uncachedLogits(lm: ToyLM, p: tf.Tensor2D, fed: number[][]): number[][][] {
  const [b, s] = p.shape;
  const all = tf.tidy(() => tf.concat([p, tf.tensor2d(fed.flat(), [b, fed[0].length], 'int32')], 1));
  const logits = lm.forward(all);
  const arr = logits.arraySync() as number[][][];
  tf.dispose([all, logits]);
  return arr.map((row) => row.slice(s - 1));
}

describe('KV-cache policies: decodeWithPolicy', () => {
  for (const positional of ['learned', 'rope'] as const) {
    it(`keep-everything gives the uncached forward's logits (${positional}, GQA)`, () => {
      const lm = model({ positional, kvHeads: 2 });
      const p = prompt(2, 9);
      const fed = [
        [1, 2, 3, 4, 5],
        [6, 7, 8, 9, 10],
      ];
      const before = tf.memory().numTensors;
      const r = decodeWithPolicy(lm, p, 6, new FullPolicy(), { teacher: fed, keepLogits: true });
      expect(tf.memory().numTensors).toBe(before);
      const ref = uncachedLogits(lm, p, fed);
      for (let row = 0; row < 2; row++)
        expectClose(r.logits![row].flat(), ref[row].flat(), { atol: 1e-5 }, `row ${row}`);
      // generate() agrees on greedy tokens
      const g = lm.generate(p, 6);
      const greedy = decodeWithPolicy(lm, p, 6, new FullPolicy());
      expect(greedy.tokens).toEqual(g.arraySync());
      g.dispose();
      p.dispose();
      lm.dispose();
    });
  }

  it('measures bytes from the stored tensors, and each policy keeps exactly its budget', () => {
    const lm = model({ positional: 'rope' });
    const p = prompt(1, 20);
    const d = 4; // headDim
    const perToken = 2 * d * 4; // k and v, float32
    const full = decodeWithPolicy(lm, p, 5, new FullPolicy());
    expect(full.bytes).toEqual([20, 21, 22, 23, 24].map((n) => n * perToken * 4 * 2));
    expect(full.headBytes).toEqual([
      [24, 24, 24, 24].map((n) => n * perToken),
      [24, 24, 24, 24].map((n) => n * perToken),
    ]);
    const win = decodeWithPolicy(lm, p, 5, new WindowPolicy(7), {
      inspect: (c, pass) => {
        expect(c.positions(1, 2)).toEqual([13, 14, 15, 16, 17, 18, 19].map((x) => x + pass));
      },
    });
    expect(win.bytes).toEqual(Array(5).fill(7 * perToken * 8));
    expect(win.peakBytes).toBe(20 * perToken * 8);
    const sinks = decodeWithPolicy(lm, p, 5, new SinkPolicy({ sinks: 2, recent: 5 }), {
      inspect: (c, pass) =>
        expect(c.positions(0, 0)).toEqual([0, 1, 15, 16, 17, 18, 19].map((x, i) => (i < 2 ? x : x + pass))),
    });
    expect(sinks.stored).toEqual([Array(4).fill(7), Array(4).fill(7)]);
    p.dispose();
    lm.dispose();
  });

  it('per-head policies: heads of different lengths are padded and masked, and a full head sees what the uncached model sees', () => {
    const lm = model();
    const p = prompt(1, 12);
    // Every head full except none: equal to Full.
    const allFull = PerHeadPolicy.of(2, 4, () => new FullPolicy());
    const fed = [[3, 4, 5]];
    const a = decodeWithPolicy(lm, p, 4, allFull, { teacher: fed, keepLogits: true });
    expectClose(a.logits![0].flat(), uncachedLogits(lm, p, fed)[0].flat(), { atol: 1e-5 }, 'all full');
    // Mixed: the streaming heads' pad must be masked, so the result equals a dense reference with the same keep sets.
    const mixed = PerHeadPolicy.of(2, 4, (_l, h) =>
      h === 1 ? new FullPolicy() : new SinkPolicy({ sinks: 1, recent: 3 }),
    );
    const before = tf.memory().numTensors;
    const m = decodeWithPolicy(lm, p, 4, mixed, {
      teacher: fed,
      keepLogits: true,
      inspect: (c) => {
        expect(c.stored(0, 1)).toBeGreaterThan(c.stored(0, 0));
        expect(c.bytes(0, 1)).toBe(c.stored(0, 1) * 2 * 4 * 4);
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(m.stored).toEqual([
      [4, 15, 4, 4],
      [4, 15, 4, 4],
    ]);
    // Reference: the uncached model with a hand-built per-head mask equal to what the policy keeps at each step.
    const ref = maskedReference(lm, p, fed[0], (h, q, k) => h === 1 || k < 1 || k >= q - 3);
    expectClose(m.logits![0].flat(), ref.flat(), { atol: 1e-5 }, 'mixed heads');
    p.dispose();
    lm.dispose();
  });

  it('rejects bad arguments, naming them', () => {
    const lm = model();
    const p = prompt(1, 5);
    expect(() => decodeWithPolicy(lm, p, 0, new FullPolicy())).toThrow(
      /decodeWithPolicy: steps must be an integer >= 1, got 0/,
    );
    expect(() => decodeWithPolicy(lm, p, 40, new FullPolicy())).toThrow(/exceed the model's maxLen 40/);
    expect(() => new WindowPolicy(0)).toThrow(/WindowPolicy: window must be an integer >= 1, got 0/);
    expect(() => new SinkPolicy({ sinks: -1, recent: 2 })).toThrow(
      /SinkPolicy: opts.sinks must be an integer >= 0, got -1/,
    );
    expect(() => new PolicyCache({ layers: 1, heads: 3, kvHeads: 2, headDim: 4, maxLen: 8 }, new FullPolicy())).toThrow(
      /PolicyCache: shape.kvHeads \(2\) must divide shape.heads \(3\)/,
    );
    const bad = {
      name: 'bad',
      needsAttention: false,
      reset() {},
      observe() {},
      select: (v: HeadView) => ({ keep: [v.positions.length] }),
    };
    expect(() => decodeWithPolicy(lm, p, 2, bad)).toThrow(
      /PolicyCache.compress: policy 'bad' must keep strictly ascending indices in \[0, 5\)/,
    );
    p.dispose();
    lm.dispose();
  });
});

/**
 * Teacher-forced logits of the uncached model where query head h at absolute position q may see key k only when
 * visible(h, q, k) (and k <= q), via a hook that replaces the attention pattern's computation: run the full sequence with
 * a [1, heads, n, n] mask.
 */
function maskedReference(
  lm: ToyLM,
  p: tf.Tensor2D,
  fed: number[],
  visible: (h: number, q: number, k: number) => boolean,
): number[][] {
  const s = p.shape[1];
  const n = s + fed.length;
  const heads = lm.config.heads;
  const data = new Uint8Array(heads * n * n);
  for (let h = 0; h < heads; h++)
    for (let q = 0; q < n; q++)
      for (let k = 0; k <= q; k++) data[(h * n + q) * n + k] = q < s || visible(h, q, k) ? 1 : 0;
  // Prompt positions: the prefill attends fully (selection happens after the prefill pass).
  const mask = tf.tensor4d(data, [1, heads, n, n], 'bool');
  const all = tf.tidy(() => tf.concat([p, tf.tensor2d([fed], [1, fed.length], 'int32')], 1));
  const logits = lm.forward(all, { mask });
  const arr = (logits.arraySync() as number[][][])[0].slice(s - 1);
  tf.dispose([mask, all, logits]);
  return arr;
}

/** Float64 causal softmax attention a[h][i][j] from recorded q, k [1, h, s, d]. */
function attention64(q: number[][][], k: number[][][]): number[][][] {
  return q.map((qh, h) =>
    qh.map((qi, i) => {
      const logits = k[h].slice(0, i + 1).map((kj) => qi.reduce((a, x, t) => a + x * kj[t], 0) / Math.sqrt(qi.length));
      const m = Math.max(...logits);
      const e = logits.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / z);
    }),
  );
}

describe('H2O', () => {
  it('cumulative attention scores match a float64 reference, and it keeps the heavy hitters plus the recent tokens', () => {
    const lm = model({ positional: 'rope' });
    const p = prompt(1, 14, 5);
    const { logits, cache } = lm.runWithCache(p, /attn\.hook_[qk]$/);
    const ref = [0, 1].map((l) =>
      attention64(
        (cache.get(`blocks.${l}.attn.hook_q`).arraySync() as number[][][][])[0],
        (cache.get(`blocks.${l}.attn.hook_k`).arraySync() as number[][][][])[0],
      ),
    );
    tf.dispose(logits);
    cache.dispose();
    // Budget above the prompt: no eviction, so the prefill scores stay whole.
    const big = new H2OPolicy({ heavy: 20, recent: 4 });
    decodeWithPolicy(lm, p, 1, big, {
      inspect: () => {
        for (let l = 0; l < 2; l++)
          for (let h = 0; h < 4; h++) {
            const got = big.scores({ layer: l, head: h, row: 0 });
            const want = Array.from({ length: 14 }, (_, j) => ref[l][h].reduce((a, row) => a + (row[j] ?? 0), 0));
            expectClose([...got.values()], want, { atol: 1e-5 }, `layer ${l} head ${h}`);
          }
      },
    });
    // heavy 3 + recent 4 after the prefill: the 3 highest-scoring of positions 0..9, then 10..13.
    const small = new H2OPolicy({ heavy: 3, recent: 4 });
    const before = tf.memory().numTensors;
    const r = decodeWithPolicy(lm, p, 4, small, {
      inspect: (c, pass) => {
        expect(c.stored(0, 0)).toBe(7);
        if (pass > 0) return;
        for (let h = 0; h < 4; h++) {
          const want = Array.from({ length: 14 }, (_, j) => [ref[1][h].reduce((a, row) => a + (row[j] ?? 0), 0), j])
            .slice(0, 10)
            .sort((a, b) => b[0] - a[0] || a[1] - b[1])
            .slice(0, 3)
            .map(([, j]) => j)
            .sort((a, b) => a - b);
          expect(c.positions(1, h)).toEqual([...want, 10, 11, 12, 13]);
        }
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.bytes).toEqual(Array(4).fill(7 * 2 * 4 * 4 * 8));
    expect(() => new H2OPolicy({ heavy: 1, recent: 0 })).toThrow(
      /H2OPolicy: opts.recent must be an integer >= 1, got 0/,
    );
    p.dispose();
    lm.dispose();
  });
});

describe('LazyEviction', () => {
  const view = (positions: number[], seen: number, added: number): HeadView => ({
    layer: 0,
    head: 0,
    row: 0,
    positions,
    seen,
    added,
    folded: 0,
  });

  it('tracks the maximum recurrence interval and protects tokens still inside it', () => {
    const pol = new LazyEvictionPolicy({ budget: 4, window: 4, recent: 2 });
    // Prefill of 6 tokens: token 1 spikes at steps 2 and 5 (MRI 3), token 3 spikes at 4 (MRI 1).
    const positions = [0, 1, 2, 3, 4, 5];
    const w = positions.map((t) => positions.map((j) => (j > t ? 0 : 1 / (t + 1))));
    w[2] = [0.1, 0.8, 0.1, 0, 0, 0];
    w[4] = [0.05, 0.05, 0.05, 0.8, 0.05, 0];
    w[5] = [0.02, 0.9, 0.02, 0.02, 0.02, 0.02];
    pol.observe(view(positions, 6, 6), w);
    const st = pol.stats({ layer: 0, head: 0, row: 0 });
    expect(st.get(1)).toEqual({ last: 5, mri: 3 });
    expect(st.get(3)).toEqual({ last: 4, mri: 1 });
    expect(st.get(2)).toEqual({ last: 2, mri: 0 });
    // now = 5: priorities token0 -5, token1 3, token2 -3, token3 0 -> keep 1 and 3, plus the recent 4 and 5.
    expect(pol.select(view(positions, 6, 6))).toEqual({ keep: [1, 3, 4, 5] });
    // Lazy: the next 3 steps do not evict although over budget; the 4th does.
    expect(pol.select(view([1, 3, 4, 5, 6], 7, 1))).toBeNull();
    expect(pol.select(view([1, 3, 4, 5, 6, 7, 8], 9, 1))).toBeNull();
    expect(pol.select(view([1, 3, 4, 5, 6, 7, 8, 9], 10, 1))?.keep).toHaveLength(4);
  });

  it('keeps its budget after each eviction inside decoding, growing by less than a window in between', () => {
    const lm = model();
    const p = prompt(2, 16, 9);
    const sizes: number[] = [];
    const before = tf.memory().numTensors;
    decodeWithPolicy(lm, p, 9, new LazyEvictionPolicy({ budget: 8, window: 4 }), {
      inspect: (c) => sizes.push(c.stored(1, 2)),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(sizes).toEqual([8, 9, 10, 11, 8, 9, 10, 11, 8]);
    expect(() => new LazyEvictionPolicy({ budget: 2, window: 4, recent: 3 })).toThrow(
      /LazyEvictionPolicy: opts.recent must be <= opts.budget \(2\), got 3/,
    );
    p.dispose();
    lm.dispose();
  });
});

describe('RazorAttention', () => {
  it("the compensation token matches the float64 reference of the paper's attention (N_d-weighted and single)", () => {
    for (const weighting of ['count', 'one'] as const) {
      const d = 4;
      const cache = new PolicyCache(
        { layers: 1, heads: 1, kvHeads: 1, headDim: d, maxLen: 16 },
        new RazorPolicy({ retrieval: [[false]], sinks: 1, recent: 2, compensation: weighting }),
      );
      const rand = (n: number, seed: number) => tf.randomNormal([1, 1, n, d], 0, 1, 'float32', seed) as tf.Tensor4D;
      const [k0, v0, k1, v1, q] = [rand(6, 1), rand(6, 2), rand(1, 3), rand(1, 4), rand(1, 5)];
      tf.tidy(() => {
        cache.append(0, k0, v0);
      });
      cache.compress(); // keeps 0, 4, 5; folds 1, 2, 3
      expect(cache.positions(0, 0)).toEqual([0, 4, 5]);
      expect(cache.folded(0, 0)).toBe(3);
      expect(cache.bytes()).toBe((3 + 1) * 2 * d * 4);
      const before = tf.memory().numTensors;
      const out = tf.tidy(() => {
        const [kv, vv] = cache.append(0, k1, v1);
        expect(kv.shape[2]).toBe(weighting === 'count' ? 3 + 4 : 1 + 4);
        return sdpa(q, kv, vv).arraySync() as number[][][][];
      });
      expect(tf.memory().numTensors).toBe(before);
      const K = (k0.arraySync() as number[][][][])[0][0];
      const V = (v0.arraySync() as number[][][][])[0][0];
      const kept = [0, 4, 5].map((i) => ({ k: K[i], v: V[i] }));
      kept.push({ k: (k1.arraySync() as number[][][][])[0][0][0], v: (v1.arraySync() as number[][][][])[0][0][0] });
      const dropped = [1, 2, 3].map((i) => ({ k: K[i], v: V[i] }));
      const want = razorAttentionReference((q.arraySync() as number[][][][])[0][0][0], kept, dropped, weighting);
      expectClose(out[0][0][0], want, { atol: 1e-5 }, weighting);
      tf.dispose([k0, v0, k1, v1, q]);
      cache.dispose();
    }
  });

  it('keeps retrieval heads whole and the others at sinks + recent (+1 compensation token) in decoding', () => {
    const lm = model({ kvHeads: 2 });
    const p = prompt(1, 15, 4);
    const retrieval = [
      [true, false],
      [false, false],
    ];
    for (const compensation of ['count', 'one', 'none'] as const) {
      const before = tf.memory().numTensors;
      const r = decodeWithPolicy(lm, p, 3, new RazorPolicy({ retrieval, sinks: 2, recent: 4, compensation }));
      expect(tf.memory().numTensors).toBe(before);
      expect(r.stored).toEqual([
        [17, 6],
        [6, 6],
      ]);
      const comp = compensation === 'none' ? 0 : 1;
      expect(r.headBytes).toEqual([
        [17 * 32, (6 + comp) * 32],
        [(6 + comp) * 32, (6 + comp) * 32],
      ]);
    }
    p.dispose();
    lm.dispose();
  });

  it('echo and induction scores read the right positions; the head choice takes the top of each', () => {
    const L = 3;
    const s = 2 * L + 1;
    // Layer 0: head 0 echo (L + i -> i), head 1 induction (L + i -> i + 1).
    const data = new Float32Array(2 * s * s);
    for (let i = 1; i < L; i++) {
      data[(0 * s + L + i) * s + i] = 1;
      data[(1 * s + L + i) * s + i + 1] = 1;
    }
    const sc = echoInductionScores([{ data, shape: [1, 2, s, s] }], L);
    expect(sc.echo).toEqual([[1, 0]]);
    expect(sc.induction).toEqual([[0, 1]]);
    expect(razorRetrievalHeads(sc, { echoHeads: 0, inductionHeads: 1 })).toEqual([[false, true]]);
    expect(razorRetrievalHeads(sc, { echoHeads: 1, inductionHeads: 1, kvHeads: 1 })).toEqual([[true]]);
    expect(() => echoInductionScores([{ data, shape: [1, 2, s, s] }], 4)).toThrow(
      /echoInductionScores: patterns must be/,
    );
    expect(() => new RazorPolicy({ retrieval: [[false]], sinks: 1, recent: 2, compensation: 'x' as never })).toThrow(
      /RazorPolicy: opts.compensation must be 'count', 'one' or 'none', got x/,
    );
  });
});

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ToyLM } from '../lib/layers/toylm.js';
import { PolicyCache } from '../lib/papers/inference/kv/cache.js';
import { decodeWithPolicy } from '../lib/papers/inference/kv/decode.js';
import {
  FullPolicy,
  type HeadView,
  PerHeadPolicy,
  SinkPolicy,
  WindowPolicy,
} from '../lib/papers/inference/kv/policy.js';
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

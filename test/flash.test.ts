/**
 * Fused attention (`flash`) against its references: outputs against the float64 loop reference `naiveAttention`,
 * gradients against `flashReference` (dense sdpa) on the cpu backend. Sizes cross the 64-wide blocks (1, 7, 63, 65, 129)
 * so partial blocks, skipped blocks and masked blocks are all exercised.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { flash, flashReference, flashSupports, maskIntervals } from '../lib/attention/flash.js';
import { dense, naiveAttention, sdpa } from '../lib/attention/index.js';
import * as backend from '../lib/backend/index.js';
import { nativeAvailable } from '../lib/backend/native.js';
import * as masks from '../lib/masks/index.js';
import { expectClose, expectNoLeak, randomArray } from './helpers.js';

const unavailable = await nativeAvailable();

interface Case {
  name: string;
  b: number;
  h: number;
  g: number;
  q: number;
  k: number;
  d: number;
  e?: number;
  mask?: masks.Mask;
}

const CASES: Case[] = [
  { name: 'no mask, 1 query 1 key', b: 1, h: 1, g: 1, q: 1, k: 1, d: 1 },
  { name: 'no mask, odd sizes', b: 2, h: 2, g: 2, q: 7, k: 129, d: 7 },
  { name: 'causal 129 (partial blocks)', b: 1, h: 2, g: 2, q: 129, k: 129, d: 16 },
  { name: 'causal, queries < keys (KV cache)', b: 1, h: 2, g: 2, q: 7, k: 130, d: 8 },
  { name: 'causal, head dim 129, value dim 65', b: 1, h: 1, g: 1, q: 65, k: 65, d: 129, e: 65 },
  { name: 'sliding window 70 across blocks', b: 1, h: 2, g: 1, q: 200, k: 200, d: 16, mask: masks.slidingWindow(70) },
  { name: 'sink + window', b: 1, h: 2, g: 2, q: 150, k: 150, d: 8, mask: masks.sinkWindow(4, 40) },
  { name: 'padding (one row fully masked)', b: 3, h: 2, g: 2, q: 63, k: 70, d: 8, mask: masks.padding([70, 9, 0]) },
  { name: 'block diagonal', b: 1, h: 2, g: 2, q: 100, k: 100, d: 8, mask: masks.blockDiagonal([30, 70]) },
  { name: 'causal & padding', b: 2, h: 2, g: 2, q: 90, k: 90, d: 8, mask: masks.causal().and(masks.padding([90, 33])) },
  { name: 'GQA 4 heads on 2 kv heads, causal', b: 2, h: 4, g: 2, q: 65, k: 65, d: 8, mask: masks.causal() },
  { name: 'MQA 3 heads on 1 kv head, sliding', b: 1, h: 3, g: 1, q: 80, k: 80, d: 8, mask: masks.slidingWindow(5) },
];
CASES.forEach((c) => {
  if (
    ['causal 129 (partial blocks)', 'causal, queries < keys (KV cache)', 'causal, head dim 129, value dim 65'].includes(
      c.name,
    )
  )
    c.mask = masks.causal();
});

const f32 = (a: Float64Array, shape: number[]) => tf.tensor(Float32Array.from(a), shape);

function data(c: Case, seed: number) {
  const e = c.e ?? c.d;
  const shapes = { q: [c.b, c.h, c.q, c.d], k: [c.b, c.g, c.k, c.d], v: [c.b, c.g, c.k, e], o: [c.b, c.h, c.q, e] };
  const n = (s: number[]) => s.reduce((x, y) => x * y, 1);
  return {
    shapes,
    q: randomArray(n(shapes.q), seed + 1, 2),
    k: randomArray(n(shapes.k), seed + 2, 2),
    v: randomArray(n(shapes.v), seed + 3),
    r: randomArray(n(shapes.o), seed + 4),
  };
}

/** Output and gradients of sum(attn(q, k, v) * r) for q, k, v. */
function run(fn: typeof flash, c: Case, d: ReturnType<typeof data>): Float32Array[] {
  return tf.tidy(() => {
    const r = f32(d.r, d.shapes.o);
    const f = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => fn(q, k, v, { mask: c.mask }).mul(r).sum() as tf.Scalar;
    const inputs = [f32(d.q, d.shapes.q), f32(d.k, d.shapes.k), f32(d.v, d.shapes.v)];
    const out = fn(inputs[0], inputs[1], inputs[2], { mask: c.mask });
    return [out, ...tf.grads(f)(inputs)].map((t) => Float32Array.from(t.dataSync()));
  });
}

it('the interval table encodes each mask kind', () => {
  const iv = (m: masks.Mask, b: number, q: number, k: number) => {
    const r = maskIntervals(m, b, q, k);
    if (typeof r === 'string') throw new Error(r);
    return Array.from(r.intervals!);
  };
  expect(iv(masks.causal(), 1, 2, 4)).toEqual([0, 3, 0, 0, 0, 4, 0, 0]);
  expect(iv(masks.slidingWindow(2), 1, 2, 4)).toEqual([1, 3, 0, 0, 2, 4, 0, 0]);
  expect(iv(masks.sinkWindow(1, 2), 1, 1, 5)).toEqual([0, 1, 3, 5]);
  expect(iv(masks.padding([2, 0]), 2, 1, 3)).toEqual([0, 2, 0, 0, 0, 0, 0, 0]);
  expect(iv(masks.blockDiagonal([2, 3]), 1, 5, 5).slice(8, 12)).toEqual([2, 5, 0, 0]);
  // Two sink windows intersected can leave three ranges: reported, not mis-computed.
  const r = maskIntervals(masks.sinkWindow(2, 2).and(masks.blockDiagonal([1, 9])), 1, 10, 10);
  expect(typeof r === 'string' ? r : 'supported').toBe('supported');
});

describe('flash on cpu (reference fallback)', () => {
  it('equals the naive reference and lists why the fused kernel was not used', async () => {
    await backend.setBackend('cpu');
    const c = CASES[3];
    const d = data(c, 5);
    const q = f32(d.q, d.shapes.q);
    const k = f32(d.k, d.shapes.k);
    const v = f32(d.v, d.shapes.v);
    expect(flashSupports(q, k, v, { mask: c.mask })).toEqual([
      'needs the wasm-native backend (active tfjs backend: cpu)',
    ]);
    const ref = naiveAttention(
      { data: d.q, shape: d.shapes.q },
      { data: d.k, shape: d.shapes.k },
      { data: d.v, shape: d.shapes.v },
      { mask: c.mask },
    );
    expectClose(flash(q, k, v, { mask: c.mask }), ref.output, {}, 'cpu fallback');
    tf.dispose([q, k, v]);
  });
});

describe.skipIf(unavailable !== null)(`flash on wasm-native${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  afterAll(async () => {
    await backend.setBackend('cpu');
  });

  for (const c of CASES) {
    it(`${c.name}: output equals the naive reference, gradients equal dense sdpa's`, async () => {
      const d = data(c, 17);
      await backend.setBackend('cpu');
      const want = run(flashReference, c, d);
      await backend.setBackend('wasm-native');
      const q = f32(d.q, d.shapes.q);
      expect(flashSupports(q, f32(d.k, d.shapes.k), f32(d.v, d.shapes.v), { mask: c.mask })).toEqual([]);
      const got = run(flash, c, d);
      const ref = naiveAttention(
        { data: d.q, shape: d.shapes.q },
        { data: d.k, shape: d.shapes.k },
        { data: d.v, shape: d.shapes.v },
        { mask: c.mask },
      );
      expectClose(got[0], ref.output, { rtol: 1e-4, atol: 2e-5 }, `${c.name} output vs naive`);
      ['output', 'dq', 'dk', 'dv'].forEach((n, i) =>
        expectClose(got[i], want[i], { rtol: 1e-3, atol: 1e-4 }, `${c.name} ${n} vs sdpa`),
      );
      expect(got.every((a) => a.every(Number.isFinite))).toBe(true);
    });
  }

  it('lists every reason it cannot run', async () => {
    await backend.setBackend('wasm-native');
    const q = tf.zeros([1, 2, 4, 8]);
    const k = tf.zeros([1, 2, 4, 8]);
    const reasons = flashSupports(q, k, k, {
      mask: tf.ones([4, 4]),
      bias: tf.zeros([4, 4]),
      returnWeights: true,
      scoring: 'sigmoid',
    });
    expect(reasons).toEqual([
      'does not return attention weights',
      'does not take an additive bias',
      "supports softmax scoring only, got 'sigmoid'",
      'needs a typed mask (lib/masks), got a tensor',
    ]);
    expect(() => flash(q, tf.zeros([1, 2, 4, 7]), k)).toThrow(/flash: cannot run .*head dims must match/);
    expect(() => flash(q, k, k, { mask: masks.padding([4, 4]) })).toThrow(
      /mask padding\(\[4,4\]\) is for batch 2, but q has batch 1/,
    );
    const empty = tf.zeros([0, 2, 4, 8]);
    expect(() => flash(empty, empty, empty)).toThrow(/flash: cannot run q \[0,2,4,8\].*q .*empty/);
    empty.dispose();
    tf.dispose([q, k]);
  });

  it("sdpa's path option: 'auto' and 'flash' run the fused kernel, 'dense' the composed path, each equal to the reference", async () => {
    await backend.setBackend('wasm-native');
    const c = CASES[10];
    const d = data(c, 7);
    const [q, k, v] = [f32(d.q, d.shapes.q), f32(d.k, d.shapes.k), f32(d.v, d.shapes.v)];
    const ref = naiveAttention(
      { data: d.q, shape: d.shapes.q },
      { data: d.k, shape: d.shapes.k },
      { data: d.v, shape: d.shapes.v },
      { mask: c.mask },
    );
    for (const path of ['auto', 'dense', 'flash'] as const) {
      const out = sdpa(q, k, v, { mask: c.mask, path });
      expectClose(out, ref.output, {}, `path ${path}`);
      out.dispose();
    }
    const dw = dense(q, k, v, { mask: c.mask, returnWeights: true });
    expect(dw.weights.shape).toEqual([c.b, c.h, c.q, c.k]);
    tf.dispose([dw.output, dw.weights]);
    expect(() => sdpa(q, k, v, { mask: c.mask, path: 'flash', returnWeights: true })).toThrow(
      /sdpa: path 'flash' cannot run .*does not return attention weights/,
    );
    expect(() => sdpa(q, k, v, { path: 'fast' as never })).toThrow(
      /sdpa: options\.path must be 'auto', 'dense' or 'flash', got 'fast'/,
    );
    tf.dispose([q, k, v]);
  });

  it('leaks no tensors, forward or backward', async () => {
    await backend.setBackend('wasm-native');
    const q = tf.randomNormal([1, 4, 70, 16]);
    const k = tf.randomNormal([1, 2, 70, 16]);
    const v = tf.randomNormal([1, 2, 70, 16]);
    const mask = masks.causal();
    expectNoLeak(() => flash(q, k, v, { mask }).dispose());
    expectNoLeak(() =>
      tf
        .grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => flash(a, b, c, { mask }).sum())([q, k, v])
        .forEach((g) => g.dispose()),
    );
    tf.dispose([q, k, v]);
  });

  it('a large causal case (BH=8, seq 512, dim 64) matches dense sdpa', async () => {
    await backend.setBackend('wasm-native');
    const c: Case = { name: 'large', b: 1, h: 8, g: 8, q: 512, k: 512, d: 64, mask: masks.causal() };
    const d = data(c, 3);
    const got = run(flash, c, d);
    const want = run(flashReference, c, d);
    ['output', 'dq', 'dk', 'dv'].forEach((n, i) =>
      expectClose(got[i], want[i], { rtol: 1e-3, atol: 1e-4 }, `large ${n}`),
    );
  });
});

import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { naiveAttention } from '../lib/attention/naive.js';
import { sdpa } from '../lib/attention/sdpa.js';
import * as masks from '../lib/masks/index.js';
import {
  ATTENTION_KINDS,
  commitmentLoss,
  compactPositions,
  hipAttention,
  hipAttentionNaive,
  hyperAttention,
  hyperAttentionNaive,
  initSeerGate,
  kmeansUpdate,
  landmarkAttention,
  landmarkAttentionNaive,
  longHeadsAttention,
  normaliseShared,
  routingAttention,
  routingAttentionNaive,
  SPARSE_METHODS,
  type SparseCase,
  type SparseMethod,
  seerAttention,
  seerAttentionNaive,
  seerDistillLoss,
  seerGateLogProbs,
  seerGroundTruth,
  sinkWindowAttention,
  sparseMethod,
} from '../lib/papers/sparse/index.js';
import { blocksToKeys } from '../lib/papers/sparse/selection.js';
import { rope } from '../lib/positional/rope.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

// Some callers pass other ranks; the cast only spares them the Tensor4D annotation.
const t4 = (data: ArrayLike<number>, shape: number[]) =>
  tf.tensor(Float32Array.from(data), shape) as tf.Tensor as tf.Tensor4D;
const rand = (shape: number[], seed: number, scale = 1) =>
  t4(
    randomArray(
      shape.reduce((a, b) => a * b, 1),
      seed,
      scale,
    ),
    shape,
  );
const dense = (t: tf.Tensor) => ({ data: t.dataSync(), shape: t.shape });
const positions = (n: number) => Array.from({ length: n }, (_, i) => i);

/** One configuration of one table entry (lib/papers/sparse/methods.ts), easy to hard as each method lists them. */
interface Case {
  name: string;
  method: SparseMethod;
  c: SparseCase<Record<string, unknown>>;
}

const cases: Case[] = SPARSE_METHODS.flatMap((method) =>
  method.cases.map((c) => ({ name: `${method.name} (${c.label})`, method, c })),
);

const gate = { heads: 2, dim: 8 };
let seerGate: { wq: tf.Variable; wk: tf.Variable };
let centroids: tf.Tensor3D;
let oneCentroid: tf.Tensor3D;

function inputs(shape: number[], kvHeads: number, seed: number): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
  const [b, h, n, d] = shape;
  return [rand([b, h, n, d], seed, 1.5), rand([b, kvHeads, n, d], seed + 1, 1.5), rand([b, kvHeads, n, d], seed + 2)];
}

/** The method's state for these options and head count (random, seed 7), or undefined for a stateless method. */
async function stateFor(x: Case, options: unknown, heads: number): Promise<unknown> {
  return x.method.state ? x.method.state.create(options, { heads, dim: x.c.shape[3], seed: 7 }) : undefined;
}

/** attend and reference with the case's keys (q itself when it shares queries and keys). */
const attend = (x: Case, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o: unknown, state: unknown) =>
  x.method.attend(q, x.c.sharedQK ? q : k, v, o, state);
const reference = (x: Case, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o: unknown, state: unknown) =>
  x.method.reference(q, x.c.sharedQK ? q : k, v, o, state);

describe('the method table', () => {
  beforeAll(async () => {
    await useBackend(BACKENDS[0]);
  });

  it('names each entry once, cites its paper, lists cases, and gives every SparseLM attention kind to exactly one entry', () => {
    const names = SPARSE_METHODS.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const m of SPARSE_METHODS) {
      expect(m.paper.url).toMatch(/^https:\/\/arxiv\.org\/abs\/\d{4}\.\d{5}$/);
      expect(m.cases.length).toBeGreaterThan(0);
      if (m.budgets.extend) {
        // A training-free long-context method takes compact positions.
        const [q, k, v] = inputs([1, 1, 4, 8], 1, 1);
        expect(m.supports(q, k, v, { ...m.budgets.extend(64, 8), rope: {} })).toEqual([]);
        tf.dispose([q, k, v]);
      }
    }
    for (const kind of ATTENTION_KINDS)
      expect(SPARSE_METHODS.filter((m) => m.lm?.kind === kind).map((m) => m.name)).toEqual([kind]);
    expect(() => sparseMethod('nosuch')).toThrow(
      /sparseMethod: name must be one of dense, local, sink-window, routing, .*, got 'nosuch'/,
    );
  });

  it('supports() gives the reasons a method refuses inputs, and the method then throws', () => {
    const [q, k, v] = inputs([1, 2, 16, 8], 2, 61);
    const qShort = q.slice([0, 0, 0, 0], [1, 2, 8, 8]);
    const cases: [string, tf.Tensor, Record<string, unknown>, RegExp][] = [
      ['hyper', qShort, {}, /q has 8 queries and k has 16 keys; HyperAttention needs as many queries as keys/],
      ['seer-oracle', q, { blockSize: 5 }, /16 positions are not a multiple of options.blockSize \(5\)/],
      ['routing', q, { clusters: 2, rope: {} }, /options.rope \(compact rotary positions\) is not supported/],
      ['landmark', q, { blockSize: 4, queryBlock: 3 }, /options.queryBlock \(3\) must divide options.blockSize \(4\)/],
      ['hip', rand([1, 2, 16, 7], 62), { rope: {} }, /options.rope needs an even head dim/],
    ];
    for (const [name, qq, o, reason] of cases) {
      const m = sparseMethod(name);
      const kk = qq.shape[3] === 8 ? k : rand([1, 2, 16, 7], 63);
      const vv = qq.shape[3] === 8 ? v : kk;
      expect(m.supports(qq, kk, vv, o).join('; ')).toMatch(reason);
      const state = m.state ? m.state.create(o, { heads: 2, dim: qq.shape[3] as number, seed: 0 }) : undefined;
      expect(() => m.attend(qq, kk, vv, o, state)).toThrow();
      if (m.state) m.state.dispose(state);
      if (kk !== k) tf.dispose([kk]);
    }
    tf.dispose([q, k, v, qShort]);
  });
});

describe.each(BACKENDS)('sparse attention on %s', (backendName) => {
  beforeAll(async () => {
    await useBackend(backendName);
    seerGate = initSeerGate(gate.heads, gate.dim, 4, 7);
    centroids = tf.tidy(() => {
      const r = rand([2, 3, 8], 99);
      return r.div(r.square().sum(-1, true).sqrt()) as tf.Tensor3D;
    });
    oneCentroid = tf.tidy(() => tf.ones([2, 1, 8]).div(Math.sqrt(8)) as tf.Tensor3D);
  });
  afterAll(() => {
    tf.dispose([seerGate.wq, seerGate.wk, centroids, oneCentroid]);
  });

  describe.each(cases)('$name', (x) => {
    const { c } = x;
    const small = c.sparse ?? c.exact;

    it('equals its exact target when the budget covers every key', async () => {
      const [q, k, v] = inputs(c.shape, c.kvHeads, 1);
      const state = await stateFor(x, c.exact, c.shape[1]);
      const r = attend(x, q, k, v, c.exact, state);
      const ref = c.equals
        ? c.equals(q, c.sharedQK ? q : k, v)
        : naiveAttention(dense(q), dense(k), dense(v), { mask: masks.causal() }).output;
      expectClose(r.output, ref, { rtol: 1e-4, atol: 1e-5 }, `${x.name} full budget`);
      if (!c.equals) {
        const viaSdpa = sdpa(q, k, v, { mask: masks.causal() });
        expectClose(r.output, viaSdpa, { rtol: 1e-4, atol: 1e-5 }, `${x.name} vs sdpa`);
        viaSdpa.dispose();
        if (!c.pairsDiffer) expect(r.stats.pairs).toBe(r.stats.densePairs);
      }
      expect(x.method.supports(q, k, v, c.exact)).toEqual([]);
      x.method.state?.dispose(state);
      tf.dispose([q, k, v, r.output]);
    });

    it(`matches its float64 naive reference${c.sparse ? ' with a small budget, and computes fewer pairs' : ''}`, async () => {
      const [q, k, v] = inputs(c.shape, c.kvHeads, 2);
      const state = await stateFor(x, small, c.shape[1]);
      const r = attend(x, q, k, v, small, state);
      expectClose(r.output, reference(x, q, k, v, small, state), { rtol: 1e-4, atol: 1e-5 }, `${x.name} sparse`);
      if (c.sparse) expect(r.stats.pairs).toBeLessThan(r.stats.densePairs);
      expect(Number.isFinite(r.stats.selectionPairs)).toBe(true);
      expect(x.method.supports(q, k, v, small)).toEqual([]);
      x.method.state?.dispose(state);
      tf.dispose([q, k, v, r.output]);
    });

    it(`is causal: changing a future token never changes an earlier output${c.reach ? ' (outside its query block)' : ''}`, async () => {
      const [q, k, v] = inputs(c.shape, c.kvHeads, 3);
      const state = await stateFor(x, small, c.shape[1]);
      const n = c.shape[2];
      for (const t of [n - 1, n - 6, Math.floor(n / 2) + 1]) {
        const bump = (y: tf.Tensor4D) =>
          tf.tidy(() => {
            const m = tf.tensor1d(Array.from({ length: n }, (_, i) => (i === t ? 1 : 0))).reshape([1, 1, n, 1]);
            return y.add(m.mul(rand(y.shape, 50 + t, 3))) as tf.Tensor4D;
          });
        const [q2, k2, v2] = [bump(q), bump(k), bump(v)];
        const a = attend(x, q, k, v, small, state);
        const b = attend(x, q2, k2, v2, small, state);
        const E = c.shape[3];
        const upTo = t - (t % (c.reach ?? 1));
        const early = (o: tf.Tensor4D) => tf.tidy(() => o.slice([0, 0, 0, 0], [-1, -1, upTo, E]));
        const [ea, eb] = [early(a.output), early(b.output)];
        expectClose(eb, ea, { rtol: 1e-6, atol: 1e-6 }, `${x.name}: position ${t} changed an earlier output`);
        tf.dispose([q2, k2, v2, a.output, b.output, ea, eb]);
      }
      x.method.state?.dispose(state);
      tf.dispose([q, k, v]);
    });

    it('has gradients matching central differences of the naive reference', async () => {
      const [b, h, n, d] = c.shape;
      const shape = [Math.min(b, 1), Math.min(h, 2), Math.min(n, 24), d];
      const [q, k, v] = inputs(shape, Math.min(c.kvHeads, shape[1]), 4);
      const state = await stateFor(x, small, shape[1]);
      const R = rand([shape[0], shape[1], shape[2], d], 77);
      const grads = tf.grads((a: tf.Tensor, bb: tf.Tensor, cc: tf.Tensor) => {
        const r = attend(x, a, bb, cc, small, state);
        // Shared queries and keys read no k: a zero term keeps every input connected.
        return r.output.mul(R).sum().add(bb.sum().mul(0));
      })([q, k, v]);
      const arrays = [q, k, v].map((t) => Float64Array.from(t.dataSync()));
      const Rd = R.dataSync();
      const f = () => {
        const ts = arrays.map((a, i) => tf.tensor(Float32Array.from(a), [q, k, v][i].shape));
        // Float32 inputs round the perturbation: use float64 naive on float32-representable steps (h = 2^-10).
        const out = reference(x, ts[0], ts[1], ts[2], small, state);
        tf.dispose(ts);
        let acc = 0;
        for (let i = 0; i < out.length; i++) acc += out[i] * Rd[i];
        return acc;
      };
      arrays.forEach((a, i) => {
        if (c.sharedQK && i === 1) return; // k is unused
        const g = numericGrad(f, a, 2 ** -10);
        expectClose(grads[i], g, { rtol: 5e-3, atol: 5e-4 }, `${x.name} grad of ${'qkv'[i]}`);
      });
      x.method.state?.dispose(state);
      tf.dispose([q, k, v, R, ...grads]);
    });

    it('leaks no tensors', async () => {
      const [q, k, v] = inputs(c.shape, c.kvHeads, 5);
      const state = await stateFor(x, small, c.shape[1]);
      expectNoLeak(() => {
        attend(x, q, k, v, small, state).output.dispose();
      });
      x.method.state?.dispose(state);
      tf.dispose([q, k, v]);
    });
  });

  it('sink + window: the sinks and the blocks of the window, nothing between; a wider window is dense', () => {
    const [q, k, v] = inputs([1, 1, 48, 8], 1, 64);
    const r = sinkWindowAttention(q, k, v, { window: 8, blockSize: 4 });
    // Query block 11 (queries 44..47): sink block 0 and blocks 9..11 (8 keys of window rounded to 2 blocks, plus its own).
    expect(r.blocks[11]).toEqual([0, 9, 10, 11]);
    expect(r.covers(0, 0, 45, 2)).toBe(true);
    expect(r.covers(0, 0, 45, 20)).toBe(false);
    const two = sinkWindowAttention(q, k, v, { window: 4, blockSize: 8, sinkBlocks: 2 });
    expect(two.blocks[5]).toEqual([0, 1, 4, 5]);
    expect(() => sinkWindowAttention(q, k, v, { window: 8, blockSize: 0 })).toThrow(
      /sinkWindowAttention: options.blockSize must be a positive integer, got 0/,
    );
    tf.dispose([q, k, v, r.output, two.output]);
  });

  it('landmark: retrieving every block equals the full grouped softmax; per-block retrieval reports its blocks', () => {
    const [q, k, v] = inputs([1, 2, 32, 8], 1, 6);
    const all = landmarkAttention(q, k, v, { blockSize: 4 });
    const many = landmarkAttention(q, k, v, { blockSize: 4, topk: 100, queryBlock: 4 });
    expectClose(many.output, all.output, {}, 'topk >= blocks');
    const few = landmarkAttention(q, k, v, { blockSize: 4, topk: 1, queryBlock: 2 });
    expectClose(
      few.output,
      landmarkAttentionNaive(q, k, v, { blockSize: 4, topk: 1, queryBlock: 2 }).output,
      {},
      'query blocks',
    );
    expect(few.retrieved.every((r) => r.length <= 1)).toBe(true);
    expect(few.stats.blocksKept).toBeLessThan(few.stats.blocksTotal!);
    tf.dispose([q, k, v, all.output, many.output, few.output]);
  });

  it('landmark without topk: the dense grouped softmax (training path) equals the per-query gather, outputs and gradients', () => {
    const [q, k, v] = inputs([1, 2, 32, 8], 1, 7);
    const denseWay = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => landmarkAttention(a, b, d, { blockSize: 4 }).output;
    const perQuery = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) =>
      landmarkAttention(a, b, d, { blockSize: 4, queryBlock: 1 }).output;
    const [o1, o2] = [denseWay(q, k, v), perQuery(q, k, v)];
    expectClose(o1, o2, {}, 'outputs');
    const w = rand(o1.shape, 8);
    const grads = (f: typeof denseWay) =>
      tf.grads((a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => f(a, b, d).mul(w).sum())([q, k, v]);
    const [g1, g2] = [grads(denseWay), grads(perQuery)];
    g1.forEach((g, i) => expectClose(g, g2[i], {}, `gradient ${'qkv'[i]}`));
    // Cached keys before the queries, key count not a multiple of the block: against the float64 definition.
    const [qc, kc, vc] = [rand([1, 2, 6, 8], 9, 1.5), rand([1, 1, 18, 8], 10, 1.5), rand([1, 1, 18, 8], 11)];
    const cached = landmarkAttention(qc, kc, vc, { blockSize: 4 });
    expectClose(cached.output, landmarkAttentionNaive(qc, kc, vc, { blockSize: 4 }).output, {}, 'cached keys');
    expect(cached.covers(0, 0, 0, 3)).toBe(false); // a landmark is never read
    expect(cached.covers(0, 0, 0, 12)).toBe(true); // own block, <= position 12
    tf.dispose([q, k, v, o1, o2, w, ...g1, ...g2, qc, kc, vc, cached.output]);
  });

  it('landmark rope: without retrieval it is RoPE at absolute positions; with retrieval distances stay within (topk + 1) blocks', () => {
    const [q, k, v] = [rand([1, 2, 40, 8], 21, 1.5), rand([1, 1, 40, 8], 22, 1.5), rand([1, 1, 40, 8], 23)];
    const pos = Array.from({ length: 40 }, (_, i) => i);
    const [qr, kr] = [rope(q, pos), rope(k, pos)];
    const absolute = landmarkAttention(qr, kr, v, { blockSize: 4 });
    for (const o of [
      landmarkAttention(q, k, v, { blockSize: 4, rope: {} }),
      landmarkAttention(q, k, v, { blockSize: 4, queryBlock: 1, rope: {} }),
    ]) {
      expectClose(o.output, absolute.output, {}, 'no retrieval = absolute');
      o.output.dispose();
    }
    // Distance invariance: a target block, then F filler blocks that are never retrieved (zero keys), then the query's
    // block. With compact positions the query's output does not depend on F; at absolute positions it does.
    const lastOutput = (fillers: number, compact: boolean) => {
      const D = 8;
      const rows: number[][] = [];
      const qv = Array.from({ length: D }, (_, i) => (i % 3) - 1);
      for (let t = 0; t < 3; t++) rows.push(Array.from({ length: D }, (_, i) => Math.sin(7 * t + i)));
      rows.push(qv.map((x) => 3 * x)); // the target block's landmark: aligned with the query
      for (let f = 0; f < 4 * fillers; f++) rows.push(new Array(D).fill(0));
      rows.push(
        Array.from({ length: D }, (_, i) => Math.cos(i)),
        Array.from({ length: D }, (_, i) => Math.cos(2 * i)),
      );
      const m = rows.length;
      const kk = tf.tensor4d(rows.flat(), [1, 1, m, D]);
      // Values depend on the row's content only (a filler row's value is 0), not on its index.
      const vv = tf.tensor4d(
        rows.flatMap((r, j) => r.map((x, i) => x + (r.some((y) => y !== 0) ? Math.sin(i + (j < 4 ? j : m - j)) : 0))),
        [1, 1, m, D],
      );
      const qq = tf.tensor4d(qv, [1, 1, 1, D]);
      const r = compact
        ? landmarkAttention(qq, kk, vv, { blockSize: 4, topk: 1, rope: {} })
        : landmarkAttention(
            rope(qq, [m - 1]),
            rope(
              kk,
              Array.from({ length: m }, (_, i) => i),
            ),
            vv,
            { blockSize: 4, topk: 1 },
          );
      expect(r.retrieved[0]).toEqual([0]);
      const out = Array.from(r.output.dataSync());
      tf.dispose([kk, vv, qq, r.output]);
      return out;
    };
    expectClose(lastOutput(1, true), lastOutput(6, true), {}, 'compact: 1 vs 6 filler blocks');
    expect(Math.max(...lastOutput(1, false).map((x, i) => Math.abs(x - lastOutput(6, false)[i])))).toBeGreaterThan(
      1e-3,
    );
    const few = landmarkAttention(q, k, v, { blockSize: 4, topk: 1, rope: {} });
    const naive = landmarkAttentionNaive(q, k, v, { blockSize: 4, topk: 1, rope: {} });
    expectClose(few.output, naive.output, {}, 'topk 1 vs naive');
    // localBlocks: the blocks just before the query's are always kept, on top of topk retrieved ones.
    const withLocal = landmarkAttention(q, k, v, { blockSize: 4, topk: 1, localBlocks: 2, rope: {} });
    withLocal.retrieved.forEach((r, x) => {
      const cb = Math.floor((x % 40) / 4); // per token: (b·h)·n + i, own block of query i
      expect(r.length).toBe(Math.min(cb, 3));
      if (cb > 3) expect(r.slice(1)).toEqual([cb - 2, cb - 1]);
    });
    expectClose(
      withLocal.output,
      landmarkAttentionNaive(q, k, v, { blockSize: 4, topk: 1, localBlocks: 2, rope: {} }).output,
      {},
      'localBlocks vs naive',
    );
    expect(() => landmarkAttention(q, k, v, { blockSize: 4, topk: 1, localBlocks: -1 })).toThrow(
      /landmarkAttention: options.localBlocks must be a non-negative integer, got -1/,
    );
    withLocal.output.dispose();
    expect(() => landmarkAttention(q, k, v, { blockSize: 4, rope: { base: 0 } })).toThrow(
      /landmarkAttention: options.rope.base must be a positive finite number, got 0/,
    );
    tf.dispose([q, k, v, qr, kr, absolute.output, few.output]);
  });

  it('longheads/hip rope: compact distances stay within the selection, far chunks are placed next to each other, bad options name options.rope', () => {
    // At 16x the selection's length, every visible (query, key) distance is below chunks·C = 32.
    const [q, k, v] = [rand([1, 2, 512, 8], 31, 1.5), rand([1, 1, 512, 8], 32, 1.5), rand([1, 1, 512, 8], 33)];
    const r = longHeadsAttention(q, k, v, { chunkSize: 8, chunks: 4, rope: {} });
    const slots = 32;
    const keys = new Int32Array(r.chunks.length * slots).fill(-1);
    r.chunks.forEach((c, blk) => blocksToKeys(c, 8, 512, keys, blk * slots));
    const { keyPos, queryPos } = compactPositions({ queryBlock: 1, slots, keys }, 512, 512);
    let maxCompact = 0;
    let maxAbsolute = 0;
    for (let blk = 0; blk < r.chunks.length; blk++) {
      const i = blk % 512;
      expect(queryPos[blk]).toBeGreaterThanOrEqual(0);
      for (let t = 0; t < slots; t++) {
        const j = keys[blk * slots + t];
        if (j < 0 || j > i) continue;
        if (j === i) expect(keyPos[blk * slots + t]).toBe(queryPos[blk]);
        maxCompact = Math.max(maxCompact, queryPos[blk] - keyPos[blk * slots + t]);
        maxAbsolute = Math.max(maxAbsolute, i - j);
      }
    }
    expect(maxCompact).toBeLessThan(32);
    expect(maxAbsolute).toBeGreaterThan(400);
    const hip = hipAttention(q, k, v, { keyBlock: 8, topk: 2, rope: {} });
    expect(hip.stats.pairs).toBeLessThan(hip.stats.densePairs);
    tf.dispose([r.output, hip.output]);

    // Shift invariance: a sink chunk, a target chunk aligned with the query, F chunks of zero keys (never chosen), then
    // the query's chunk. With compact positions the query's output does not depend on F; at absolute positions it does.
    const lastOutput = (fillers: number, compact: boolean) => {
      const D = 8;
      const qv = Array.from({ length: D }, (_, i) => (i % 3) - 1);
      const rows: number[][] = [];
      for (let t = 0; t < 4; t++) rows.push(Array.from({ length: D }, (_, i) => Math.sin(7 * t + i)));
      for (let t = 0; t < 4; t++) rows.push(qv.map((x) => 2 * x));
      for (let f = 0; f < 4 * fillers; f++) rows.push(new Array(D).fill(0));
      for (let t = 0; t < 4; t++) rows.push(Array.from({ length: D }, (_, i) => Math.cos((t + 1) * i)));
      const m = rows.length;
      // A row's value depends on its content and its index within the chunk, not on where the chunk sits.
      const vals = rows.map((row, j) => row.map((x, i) => x + Math.sin(i + (j % 4))));
      const [kk, vv, qq] = [
        tf.tensor4d(rows.flat(), [1, 1, m, D]),
        tf.tensor4d(vals.flat(), [1, 1, m, D]),
        tf.tensor4d(qv, [1, 1, 1, D]),
      ];
      const o = compact
        ? longHeadsAttention(qq, kk, vv, { chunkSize: 4, chunks: 3, rope: {}, summary: 'keys' })
        : longHeadsAttention(rope(qq, [m - 1]), rope(kk, positions(m)), vv, {
            chunkSize: 4,
            chunks: 3,
            summary: 'keys',
          });
      if (compact) expect(o.chunks[0]).toEqual([0, 1, m / 4 - 1]);
      const out = Array.from(o.output.dataSync());
      tf.dispose([kk, vv, qq, o.output]);
      return out;
    };
    expectClose(lastOutput(1, true), lastOutput(6, true), { rtol: 1e-5, atol: 1e-6 }, 'compact: 1 vs 6 filler chunks');
    const [a1, a6] = [lastOutput(1, false), lastOutput(6, false)];
    expect(Math.max(...a1.map((x, i) => Math.abs(x - a6[i])))).toBeGreaterThan(1e-3);

    const [qs, ks, vs] = [
      q.slice([0, 0, 0, 0], [1, 2, 16, 8]),
      k.slice([0, 0, 0, 0], [1, 1, 16, 8]),
      v.slice([0, 0, 0, 0], [1, 1, 16, 8]),
    ];
    expect(() => longHeadsAttention(qs, ks, vs, { rope: { base: 0 } })).toThrow(
      /longHeadsAttention: options.rope.base must be a positive finite number, got 0/,
    );
    expect(() => hipAttentionNaive(qs, ks, vs, { rope: { base: -2 } })).toThrow(
      /hipAttentionNaive: options.rope.base must be a positive finite number, got -2/,
    );
    expect(() => hyperAttention(qs, ks, vs, { rope: {} })).toThrow(/hyperAttention: options.rope/);
    expect(() => seerAttention(qs, ks, vs, seerGate, { blockSize: 4, rope: {} })).toThrow(
      /seerAttention: options.rope/,
    );
    expect(() => routingAttention(qs, ks, vs, centroids, { rope: {} })).toThrow(/routingAttention: options.rope/);
    tf.dispose([q, k, v, qs, ks, vs]);
  });

  it('hyper: non-causal is exact with one block or with every column sampled', () => {
    const [q, k, v] = [rand([1, 2, 16, 8], 11, 1.5), rand([1, 2, 16, 8], 12, 1.5), rand([1, 2, 16, 8], 13)];
    const ref = naiveAttention(dense(q), dense(k), dense(v)).output;
    const oneBlock = hyperAttention(q, k, v, { causal: false, blockSize: 16 });
    const allSampled = hyperAttention(q, k, v, { causal: false, blockSize: 4, sampleSize: 16, lshProjections: 2 });
    expectClose(oneBlock.output, ref, {}, 'one block');
    expectClose(allSampled.output, ref, {}, 'all sampled');
    const approx = hyperAttention(q, k, v, { causal: false, blockSize: 4, sampleSize: 4, lshProjections: 2, seed: 5 });
    expectClose(
      approx.output,
      hyperAttentionNaive(q, k, v, { causal: false, blockSize: 4, sampleSize: 4, lshProjections: 2, seed: 5 }),
      {},
      'non-causal naive',
    );
    tf.dispose([q, k, v, oneBlock.output, allSampled.output, approx.output]);
  });

  it("hyper: both pairings match the reference; the paper's rank pairing leaks under a causal mask, ours does not", () => {
    const [q, k, v] = [rand([1, 2, 16, 8], 31, 1.5), rand([1, 2, 16, 8], 32, 1.5), rand([1, 2, 16, 8], 33)];
    const base = { blockSize: 2, sampleSize: 2, lshProjections: 3, seed: 7 };
    for (const pairing of ['rank', 'bucket'] as const) {
      for (const causal of [false, true]) {
        const o = { ...base, pairing, causal, minSeqLen: 4 };
        const out = hyperAttention(q, k, v, o);
        expectClose(out.output, hyperAttentionNaive(q, k, v, o), {}, `${pairing}, causal ${causal}`);
        out.output.dispose();
      }
    }
    // Change the last token's query/key/value: under a causal mask no earlier output may move.
    const last = (x: tf.Tensor4D, seed: number) =>
      tf.concat([x.slice([0, 0, 0, 0], [1, 2, 15, 8]), rand([1, 2, 1, 8], seed, 3)], 2) as tf.Tensor4D;
    const [q2, k2, v2] = [last(q, 41), last(k, 42), last(v, 43)];
    const moved = (pairing: 'rank' | 'bucket') => {
      const o = { ...base, pairing, causal: true, minSeqLen: 4 };
      const a = hyperAttention(q, k, v, o).output;
      const b = hyperAttention(q2, k2, v2, o).output;
      const diff = tf.tidy(() => a.sub(b).slice([0, 0, 0, 0], [1, 2, 15, 8]).abs().max().dataSync()[0]!);
      tf.dispose([a, b]);
      return diff;
    };
    expect(moved('bucket')).toBe(0);
    expect(moved('rank')).toBeGreaterThan(1e-4);
    expect(() => hyperAttention(q, k, v, { pairing: 'sorted' as 'rank' })).toThrow(
      /hyperAttention: options.pairing must be 'rank' or 'bucket', got "sorted"/,
    );
    tf.dispose([q, k, v, q2, k2, v2]);
  });

  it('routing: balanced top-w routing without a mask matches its reference and is exact with w = n', () => {
    const [x, v] = [rand([1, 2, 16, 8], 21, 1.5), rand([1, 2, 16, 8], 22)];
    const bal = routingAttention(x, x, v, centroids, { causal: false, assignment: 'balanced', window: 6 });
    expectClose(
      bal.output,
      routingAttentionNaive(x, x, v, centroids, { causal: false, assignment: 'balanced', window: 6 }).output,
      {},
      'balanced',
    );
    expect(bal.clusters.every((m) => m.length === 6)).toBe(true);
    const full = routingAttention(x, x, v, oneCentroid, { causal: false, assignment: 'balanced', window: 16 });
    const xh = normaliseShared(x);
    expectClose(full.output, naiveAttention(dense(xh), dense(xh), dense(v)).output, {}, 'w = n');
    tf.dispose([x, v, xh, bal.output, full.output]);
  });

  it('routing: separate queries and keys are routed separately; one cluster is exact', () => {
    const [q, k, v] = [rand([1, 2, 20, 8], 23, 1.5), rand([1, 2, 20, 8], 24, 1.5), rand([1, 2, 20, 8], 25)];
    const r = routingAttention(q, k, v, centroids);
    expectClose(r.output, routingAttentionNaive(q, k, v, centroids).output, {}, 'separate q, k');
    expect(r.keyClusters).not.toBe(r.clusters);
    const plain = routingAttention(q, k, v, centroids, { normalise: 'none' });
    expectClose(
      plain.output,
      routingAttentionNaive(q, k, v, centroids, { normalise: 'none' }).output,
      {},
      "normalise 'none'",
    );
    const plainOne = routingAttention(q, k, v, oneCentroid, { normalise: 'none' });
    expectClose(
      plainOne.output,
      naiveAttention(dense(q), dense(k), dense(v), { mask: masks.causal() }).output,
      {},
      "one cluster, normalise 'none'",
    );
    tf.dispose([plain.output, plainOne.output]);
    const one = routingAttention(q, k, v, oneCentroid);
    const [qh, kh] = [normaliseShared(q), normaliseShared(k)];
    expectClose(
      one.output,
      naiveAttention(dense(qh), dense(kh), dense(v), { mask: masks.causal() }).output,
      {},
      'one cluster',
    );
    tf.dispose([q, k, v, qh, kh, r.output, one.output]);
  });

  it('routing: Reformer-style scores (raw queries, unit keys) and self-exclusion match the reference, outputs and gradients', () => {
    const [x, v] = [rand([1, 2, 20, 8], 26, 1.5), rand([1, 2, 20, 8], 27)];
    const opts = { normalise: 'keys', excludeSelf: true } as const;
    const r = routingAttention(x, x, v, centroids, opts);
    expectClose(r.output, routingAttentionNaive(x, x, v, centroids, opts).output, {}, 'keys + excludeSelf');
    // One cluster: plain causal attention of x against the unit keys √d·x/‖x‖, each token skipping itself unless it is first.
    const one = routingAttention(x, x, v, oneCentroid, opts);
    const xh = normaliseShared(x);
    const noSelf = tf.tidy(() =>
      tf.linalg
        .bandPart(tf.ones([20, 20]), -1, 0)
        .sub(tf.eye(20))
        .add(
          tf.oneHot([0], 20).pad([
            [0, 19],
            [0, 0],
          ]),
        ),
    );
    const bias = tf.tidy(() => tf.onesLike(noSelf).sub(noSelf).mul(-1e9));
    const ref = tf.tidy(() => tf.softmax(tf.matMul(x, xh, false, true).div(Math.sqrt(8)).add(bias)).matMul(v));
    expectClose(one.output, ref, {}, 'one cluster');
    const R = rand([1, 2, 20, 8], 28);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => routingAttention(a, a, b, centroids, opts).output.mul(R).sum())([
      x,
      v,
    ]);
    const xs = Float64Array.from(x.dataSync());
    const f = () => {
      const t = tf.tensor(Float32Array.from(xs), x.shape);
      const out = routingAttentionNaive(t, t, v, centroids, opts).output;
      t.dispose();
      const Rd = R.dataSync();
      return out.reduce((a, o, i) => a + o * Rd[i], 0);
    };
    expectClose(g[0], numericGrad(f, xs, 2 ** -10), { rtol: 5e-3, atol: 5e-4 }, 'grad of x');
    tf.dispose([x, v, xh, noSelf, bias, ref, R, r.output, one.output, ...g]);
  });

  it('k-means: one update matches a hand-computed step, and the commitment loss too', () => {
    // One head, three centroids in 2-D; tokens point along (1,0), (0,1) and (0.6,0.8) (any length).
    const mu = tf.tensor3d([1, 0, 0, 1, -1, 0], [1, 3, 2]);
    const xh = tf.tensor4d([2, 0, 0, 3, 0.6 * 5, 0.8 * 5], [1, 1, 3, 2]);
    const next = kmeansUpdate(mu, xh, 0.5);
    // c0 <- norm(0.5 (1,0) + 0.5 (1,0)) = (1,0); c1 <- norm(0.5 (0,1) + 0.5 mean((0,1),(0.6,0.8))) = norm(0.15, 0.95);
    // c2 got no token: unchanged.
    const z = Math.hypot(0.15, 0.95);
    expectClose(next, [1, 0, 0.15 / z, 0.95 / z, -1, 0], {}, 'kmeans step');
    const loss = commitmentLoss(xh, mu);
    // Only the third token is off its centroid (0,1): |(0.6, -0.2)|² = 0.4, mean over three tokens.
    expectClose(loss, [0.4 / 3], {}, 'commitment');
    // Separate keys: each side weighs (1 − λ)/2; a side with no member keeps μ. Keys all point along (0,1):
    // c0 <- norm(0.5 (1,0) + 0.25 (1,0) + 0.25 (1,0)) = (1,0); c1 <- norm(0.5 (0,1) + 0.25 (0.3,0.9) + 0.25 (0,1)).
    const kh = tf.tensor4d([0, 1, 0, 2, 0, 3], [1, 1, 3, 2]);
    const next2 = kmeansUpdate(mu, xh, 0.5, kh);
    const z2 = Math.hypot(0.075, 0.975);
    expectClose(next2, [1, 0, 0.075 / z2, 0.975 / z2, -1, 0], {}, 'kmeans step with keys');
    tf.dispose([mu, xh, kh, next, next2, loss]);
  });

  it('seer: gate probabilities match loops, and the distillation gradient matches central differences', () => {
    const [q, k] = [rand([1, 2, 16, 8], 31, 1.5), rand([1, 1, 16, 8], 32, 1.5)];
    const v = rand([1, 1, 16, 8], 33);
    for (const queryBlock of [1, 4]) {
      const lp = seerGateLogProbs(q, k, seerGate, { blockSize: 4, queryBlock });
      const naive = seerAttentionNaive(q, k, v, seerGate, { blockSize: 4, queryBlock });
      const p = tf.exp(lp);
      expectClose(p, naive.probs, {}, `gate probs, queryBlock ${queryBlock}`);
      tf.dispose([lp, p]);
    }
    const gt = seerGroundTruth(q, k, { blockSize: 4, queryBlock: 4 });
    const rows = gt.sum(-1).dataSync();
    rows.forEach((r) => expect(r).toBeCloseTo(1, 5));
    const { grads } = tf.variableGrads(
      () => seerDistillLoss(q, k, seerGate, { blockSize: 4, queryBlock: 4 }),
      [seerGate.wq, seerGate.wk],
    );
    const gtd = gt.dataSync();
    const wq = Float64Array.from(seerGate.wq.dataSync());
    const wk = Float64Array.from(seerGate.wk.dataSync());
    const loss = () => {
      const g = {
        wq: tf.tensor(Float32Array.from(wq), seerGate.wq.shape),
        wk: tf.tensor(Float32Array.from(wk), seerGate.wk.shape),
      };
      const pr = seerAttentionNaive(q, k, v, g, { blockSize: 4, queryBlock: 4 }).probs;
      tf.dispose([g.wq, g.wk]);
      let kl = 0;
      for (let i = 0; i < pr.length; i++) if (gtd[i] > 0) kl += gtd[i] * (Math.log(gtd[i] + 1e-12) - Math.log(pr[i]));
      return kl / (pr.length / 4);
    };
    expectClose(grads[seerGate.wq.name], numericGrad(loss, wq, 2 ** -10), { rtol: 5e-3, atol: 5e-4 }, 'd loss / d wq');
    expectClose(grads[seerGate.wk.name], numericGrad(loss, wk, 2 ** -10), { rtol: 5e-3, atol: 5e-4 }, 'd loss / d wk');
    tf.dispose([q, k, v, gt, ...Object.values(grads)]);
  });

  it('errors name the function, the argument and the shapes', () => {
    const q = rand([1, 2, 16, 8], 41);
    const k = rand([1, 2, 16, 8], 42);
    const bad = rand([1, 2, 16, 4], 43);
    expect(() => hipAttention(q.reshape([2, 16, 8]), k, k)).toThrow(/hipAttention: q must have rank 4 .*\[2,16,8\]/);
    expect(() => longHeadsAttention(q, bad, bad)).toThrow(
      /longHeadsAttention: q has shape \[1,2,16,8\] but k has \[1,2,16,4\]; head dims must match/,
    );
    expect(() => routingAttention(q, k, k, tf.zeros([2, 3, 4]))).toThrow(
      /routingAttention: centroids must have shape \[heads=2, clusters, dim=8\], but has \[2,3,4\]/,
    );
    expect(() => routingAttention(q, q, k, centroids, { causal: true, assignment: 'balanced' })).toThrow(
      /routingAttention: options.assignment 'balanced'/,
    );
    expect(() => seerAttention(q, k, k, seerGate, { blockSize: 5 })).toThrow(
      /seerAttention: 16 positions are not a multiple of options.blockSize \(5\)/,
    );
    expect(() => seerAttention(q, k, k, { wq: tf.zeros([2, 4, 4]), wk: seerGate.wk })).toThrow(
      /seerAttention: gate.wq must have shape \[heads=2, dim=8, gateDim\], but has \[2,4,4\]/,
    );
    expect(() => landmarkAttention(q, k, k, { blockSize: 4, queryBlock: 3 })).toThrow(
      /landmarkAttention: options.queryBlock \(3\) must divide options.blockSize \(4\)/,
    );
    expect(() => hyperAttention(q.slice([0, 0, 0, 0], [1, 2, 8, 8]), k, k)).toThrow(
      /hyperAttention: q has shape \[1,2,8,8\] and k has \[1,2,16,8\]; HyperAttention needs as many queries as keys/,
    );
    expect(() => hipAttention(q, k, k, { topk: 0 })).toThrow(
      /hipAttention: options.topk must be a positive integer, got 0/,
    );
    tf.dispose([q, k, bad]);
  });
});

/**
 * HiP: hierarchically pruned attention (training-free top-k key estimation).
 *
 * Paper: Lee et al., ICLR 2025, "A Training-Free Sub-quadratic Cost Transformer Model Serving Framework With
 * Hierarchically Pruned Attention", https://arxiv.org/abs/2406.09827
 *
 * Attention locality: keys next to a high-scoring key tend to score high too, so a chunk of keys can be judged by one
 * representative key. For each query (or block of bq queries sharing the search), the visible key blocks (size bk) between the sink and the local
 * blocks are cut into `topk` chunks; then, each round, every kept chunk is split in two, each half is scored by its
 * centre key,
 *
 *   score(chunk) = max_{i in query block} q_i · k_centre(chunk) · scale,
 *
 * and the `topk` best halves are kept, until every chunk is a single key block (~log2(m / (bk·topk)) rounds). The
 * queries then attend (exact softmax) to the kept blocks plus `sinkBlocks` first and `localBlocks` last blocks:
 * O(n log n) selection scores and O(n · topk · bk) attention scores instead of O(n²).
 *
 * Compact positions (`rope`): to run a RoPE model past its trained length without training (as LongHeads does,
 * Lu et al. 2024, https://arxiv.org/abs/2402.10685), pass q and k WITHOUT rotary embedding and set `options.rope`.
 * The search then scores the un-rotated q and k (position-free representative scores), and the attention rotates the
 * kept keys and the queries at compact positions: the kept blocks laid out consecutively in their original order (the
 * local block last), a key's position its rank among its query block's kept keys, a query's the rank of the last kept
 * key at or before it (see `compactPositions` in ../common.ts). No query then sees a distance beyond
 * (sinkBlocks + topk + localBlocks)·bk, however long the sequence; with every block kept they are the absolute positions.
 *
 * Shape legend: b batch, h query heads, g kv heads, n queries, m keys, d head dim, e value dim.
 *   q [b, h, n, d], k [b, g, m, d], v [b, g, m, e] -> output [b, h, n, e]
 * With topk·bk covering every visible key the result equals dense attention (with `rope`: dense attention on q, k
 * rotated at their absolute positions).
 */
import * as tf from '@tensorflow/tfjs';
import { type AttentionShapes, checkQkv } from '../../../attention/dense.js';
import { matmul } from '../../../backend/ops.js';
import { blockCovers, densePairs, type SparseResult } from '../cost.js';
import { gatherRows, readTidy } from '../gather.js';
import { ropeReasons, type SparseMethod } from '../method.js';
import { denseAtAbsolutePositions, naiveAttendBlocks, qkvRows } from '../naive.js';
import { checkBlock, checkRope, checkScale, type SparseBaseOptions } from '../options.js';
import { attendSelected, blockSelection, visibleBlocks } from '../selection.js';

export interface HipOptions extends SparseBaseOptions {
  /**
   * Queries sharing one selection (default 1). The paper shares it over a block of queries for speed; the block's
   * later queries then steer its earlier queries' choice (never their visible keys), so only 1 is strictly causal.
   */
  queryBlock?: number;
  /** Keys per block, the unit of selection (default 16). */
  keyBlock?: number;
  /** Key blocks kept by the hierarchical search (default 8). */
  topk?: number;
  /** First key blocks always kept (attention sinks; default 1). */
  sinkBlocks?: number;
  /** Last visible key blocks always kept (local context; default 1). */
  localBlocks?: number;
}

interface Resolved {
  bq: number;
  bk: number;
  topk: number;
  sinks: number;
  local: number;
  scale: number;
  causal: boolean;
  rope?: { base: number };
}

function resolve(fn: string, s: AttentionShapes, o: HipOptions): Resolved {
  for (const a of ['queryBlock', 'keyBlock', 'topk'] as const) checkBlock(fn, a, o[a]);
  for (const a of ['sinkBlocks', 'localBlocks'] as const) {
    if (o[a] !== undefined) checkBlock(fn, a, o[a]! + 1);
  }
  return {
    bq: o.queryBlock ?? 1,
    bk: o.keyBlock ?? 16,
    topk: o.topk ?? 8,
    sinks: o.sinkBlocks ?? 1,
    local: o.localBlocks ?? 1,
    scale: checkScale(fn, o.scale, s.dim),
    causal: o.causal ?? true,
    rope: checkRope(fn, o.rope, s.dim),
  };
}

/** Scores representatives: reps[(blk * width) + c] is a key index or -1; returns max-over-queries scores. */
type RepScorer = (reps: Int32Array, width: number) => Float64Array;

interface Chunk {
  lo: number;
  hi: number; // key blocks [lo, hi)
}

/**
 * The hierarchical search for every (batch, head, query block); returns the kept key blocks per query block and the
 * number of representative scores computed per query.
 */
function hipSelectBlocks(
  s: AttentionShapes,
  r: Resolved,
  score: RepScorer,
): { blocks: number[][]; repScores: number[] } {
  const nb = Math.ceil(s.queries / r.bq);
  const total = s.batch * s.heads * nb;
  const forced: number[][] = [];
  let chunks: Chunk[][] = [];
  const repScores = new Array<number>(total).fill(0);
  for (let blk = 0; blk < total; blk++) {
    const nk = visibleBlocks(s, blk % nb, r.bq, r.bk, r.causal);
    const sinkEnd = Math.min(r.sinks, nk);
    const localStart = Math.max(sinkEnd, nk - r.local);
    const f: number[] = [];
    for (let i = 0; i < sinkEnd; i++) f.push(i);
    for (let i = localStart; i < nk; i++) f.push(i);
    forced.push(f);
    const cand = localStart - sinkEnd;
    const cs: Chunk[] = [];
    if (cand > 0) {
      // topk chunks of near-equal size over the candidate blocks (each split later).
      const parts = Math.min(r.topk, cand);
      for (let p = 0; p < parts; p++) {
        cs.push({ lo: sinkEnd + Math.floor((p * cand) / parts), hi: sinkEnd + Math.floor(((p + 1) * cand) / parts) });
      }
    }
    chunks.push(cs);
  }
  for (;;) {
    const next = chunks.map((cs) =>
      cs.flatMap((c) =>
        c.hi - c.lo > 1
          ? [
              { lo: c.lo, hi: c.lo + ((c.hi - c.lo) >> 1) },
              { lo: c.lo + ((c.hi - c.lo) >> 1), hi: c.hi },
            ]
          : [c],
      ),
    );
    if (next.every((cs, i) => cs.length === chunks[i].length)) break;
    if (next.every((cs) => cs.length <= r.topk)) {
      chunks = next;
      continue;
    }
    const width = Math.max(1, ...next.map((cs) => cs.length));
    const reps = new Int32Array(total * width).fill(-1);
    next.forEach((cs, blk) => {
      if (cs.length <= r.topk) return;
      cs.forEach((c, i) => {
        const loKey = c.lo * r.bk;
        const hiKey = Math.min(s.keys, c.hi * r.bk);
        reps[blk * width + i] = (loKey + hiKey - 1) >> 1;
      });
      repScores[blk] += cs.length;
    });
    const sc = score(reps, width);
    chunks = next.map((cs, blk) => {
      if (cs.length <= r.topk) return cs;
      const order = cs.map((_, i) => i).sort((a, b) => sc[blk * width + b] - sc[blk * width + a] || a - b);
      return order
        .slice(0, r.topk)
        .sort((a, b) => a - b)
        .map((i) => cs[i]);
    });
  }
  const blocks = chunks.map((cs, blk) => {
    const kept = new Set(forced[blk]);
    for (const c of cs) for (let x = c.lo; x < c.hi; x++) kept.add(x);
    return [...kept].sort((a, b) => a - b);
  });
  return { blocks, repScores };
}

function stats(s: AttentionShapes, r: Resolved, blocks: number[][], repScores: number[], pairs: number) {
  const nb = Math.ceil(s.queries / r.bq);
  let blocksTotal = 0;
  let selectionPairs = 0;
  blocks.forEach((_, blk) => {
    const qb = blk % nb;
    const nq = Math.min(s.queries, (qb + 1) * r.bq) - qb * r.bq;
    blocksTotal += visibleBlocks(s, qb, r.bq, r.bk, r.causal);
    selectionPairs += repScores[blk] * nq;
  });
  return {
    method: 'hip',
    pairs,
    densePairs: densePairs(s, r.causal),
    selectionPairs,
    blocksKept: blocks.reduce((a, bl) => a + bl.length, 0),
    blocksTotal,
  };
}

/** HiP attention; see the module header. Returns the output and what was computed. */
export function hipAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: HipOptions = {}): SparseResult {
  const fn = 'hipAttention';
  const s = checkQkv(fn, q, k, v);
  const r = resolve(fn, s, options);
  const nb = Math.ceil(s.queries / r.bq);
  const groups = s.heads / s.kvHeads;
  const scorer: RepScorer = (reps, width) => {
    const rows = new Int32Array(reps.length);
    reps.forEach((j, i) => {
      const blk = Math.floor(i / width);
      const h = Math.floor(blk / nb) % s.heads;
      const b = Math.floor(blk / (nb * s.heads));
      rows[i] = (b * s.kvHeads + Math.floor(h / groups)) * s.keys + Math.max(0, j);
    });
    const out = readTidy(() => {
      const pad = nb * r.bq - s.queries;
      // Padded query rows are zeros; the max is taken over real rows only by masking them to -inf below.
      const qp =
        pad > 0
          ? tf.pad(q, [
              [0, 0],
              [0, 0],
              [0, pad],
              [0, 0],
            ])
          : q;
      const kr = gatherRows(k.reshape([-1, s.dim]) as tf.Tensor2D, rows).reshape([
        s.batch * s.heads * nb,
        width,
        s.dim,
      ]);
      let sc = matmul(qp.reshape([s.batch * s.heads * nb, r.bq, s.dim]), kr, false, true); // [blocks, bq, width]
      if (pad > 0) {
        const valid = new Float32Array(nb * r.bq).map((_, i) => (i < s.queries ? 0 : -Infinity));
        sc = sc
          .reshape([s.batch * s.heads, nb * r.bq, width])
          .add(tf.tensor3d(valid, [1, nb * r.bq, 1]))
          .reshape([s.batch * s.heads * nb, r.bq, width]);
      }
      return sc.max(1);
    });
    return Float64Array.from(out);
  };
  const { blocks, repScores } = hipSelectBlocks(s, r, scorer);
  const { output, pairs } = attendSelected(fn, q, k, v, blockSelection(blocks, r.bk, s.keys, r.bq), {
    scale: r.scale,
    causal: r.causal,
    rope: r.rope,
  });
  return {
    output,
    stats: stats(s, r, blocks, repScores, pairs),
    covers: blockCovers(blocks, s.heads, s.queries, r.bq, r.bk),
  };
}

/** Float64 loop reference of `hipAttention` (its own scores, search and softmax). Output [b, h, n, e] flattened. */
export function hipAttentionNaive(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: HipOptions = {},
): { output: Float64Array; blocks: number[][] } {
  const fn = 'hipAttentionNaive';
  const s = checkQkv(fn, q, k, v);
  const r = resolve(fn, s, options);
  const nb = Math.ceil(s.queries / r.bq);
  const groups = s.heads / s.kvHeads;
  const { q: qr, k: kr, v: vr } = qkvRows(q, k, v);
  const scorer: RepScorer = (reps, width) => {
    const out = new Float64Array(reps.length);
    for (let i = 0; i < reps.length; i++) {
      const blk = Math.floor(i / width);
      const qb = blk % nb;
      const h = Math.floor(blk / nb) % s.heads;
      const b = Math.floor(blk / (nb * s.heads));
      let best = -Infinity;
      for (let qi = qb * r.bq; qi < Math.min(s.queries, (qb + 1) * r.bq); qi++) {
        const a = qr(b, h, qi);
        const kk = kr(b, Math.floor(h / groups), Math.max(0, reps[i]));
        let dot = 0;
        for (let d = 0; d < s.dim; d++) dot += a[d] * kk[d];
        best = Math.max(best, dot);
      }
      out[i] = best;
    }
    return out;
  };
  const { blocks } = hipSelectBlocks(s, r, scorer);
  const output = naiveAttendBlocks(
    s,
    { q: qr, k: kr, v: vr },
    (b, h, i) => blocks[(b * s.heads + h) * nb + Math.floor(i / r.bq)],
    r.bk,
    r.scale,
    r.causal,
    r.rope,
  );
  return { output, blocks };
}

/** HiP as a `SparseMethod` (see ../method.ts). */
export const hipMethod: SparseMethod<HipOptions> = {
  name: 'hip',
  kind: 'paper',
  paper: {
    citation:
      'Lee et al. 2025, A Training-Free Sub-quadratic Cost Transformer Model Serving Framework With Hierarchically Pruned Attention',
    url: 'https://arxiv.org/abs/2406.09827',
  },
  attend: (q, k, v, o) => hipAttention(q, k, v, o),
  reference: (q, k, v, o) => hipAttentionNaive(q, k, v, o).output,
  supports: (q, _k, _v, o) => ropeReasons(o, q.shape[3] as number, true),
  budgets: {
    timing: () => ({ queryBlock: 64, keyBlock: 32, topk: 8 }),
    // Sink and local block besides the searched ones.
    keys: (_n, keys) => ({ queryBlock: 16, keyBlock: 16, topk: Math.max(1, Math.round(keys / 16) - 2) }),
    // Half-chunk blocks: two sink, two local and the searched ones fill the trained length.
    extend: (trainLen, chunk) => ({
      keyBlock: chunk / 2,
      queryBlock: chunk,
      topk: 2 * Math.max(2, Math.floor(trainLen / chunk)) - 4,
      sinkBlocks: 2,
      localBlocks: 2,
    }),
  },
  cases: [
    {
      label: 'per query',
      shape: [2, 4, 40, 8],
      kvHeads: 2,
      exact: { keyBlock: 4, topk: 64 },
      sparse: { keyBlock: 4, topk: 2 },
    },
    {
      label: 'query blocks',
      shape: [1, 2, 40, 8],
      kvHeads: 2,
      exact: { keyBlock: 4, queryBlock: 8, topk: 64 },
      sparse: { keyBlock: 4, queryBlock: 8, topk: 2 },
      reach: 8,
    },
    {
      label: 'compact rope',
      shape: [1, 4, 40, 8],
      kvHeads: 2,
      exact: { keyBlock: 4, topk: 64, rope: {} },
      sparse: { keyBlock: 4, topk: 2, rope: { base: 100 } },
      equals: (q, k, v) => denseAtAbsolutePositions(q, k, v),
    },
  ],
};

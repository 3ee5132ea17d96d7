/**
 * LongHeads: every head attends to its own few chunks, so each stays within its trained length while together the
 * heads cover the whole context (training-free).
 *
 * Paper: Lu, Zhou, He, Zhao, Ji, Gui, Zhang & Huang, 2024, "LongHeads: Multi-Head Attention is Secretly a Long Context
 * Processor", https://arxiv.org/abs/2402.10685
 *
 * The keys are cut into chunks of C. A chunk is summarised by one key, as the official code does (LuLuLuyi/LongHeads,
 * modeling_llama.py, `summary: 'qkv'`, the default): the chunk's queries attend to the chunk's keys and values (no
 * mask inside the chunk), the mean of those outputs is c_v, and c_v pools the chunk's keys once more,
 *
 *   a_t = softmax_{t'}(q_t · k_t' · scale) V_chunk,   c_v = mean_t a_t,   k_c = softmax_t(c_v · k_t · scale) K_chunk,
 *
 * so k_c lives in key space (c_v lives in value space and is used as a query, as in the official code; this needs the
 * value dim to equal the key dim). The chunk's queries are those at the key positions: q itself when it covers every
 * key (n = m), else `options.chunkQueries` [b, h, m, d] (decoding: the official code keeps past queries for this).
 * With grouped kv heads the summary is per query head. `summary: 'keys'` is this project's earlier variant: the
 * chunk's keys stand in for its queries and values in the first pooling (a_t = softmax(k_t · k_t' · scale) K_chunk),
 * which needs no queries and gives one k_c per kv head.
 * For each head and query (or block of queryBlock queries) the score of chunk c is max_i q_i · k_c; the first chunk
 * and the `localChunks` chunks holding the queries are always kept, and the best other chunks fill the budget of
 * `chunks` chunks, so every query attends to at most chunks·C keys (within the trained window) with exact softmax
 * over them.
 *
 * Compact positions (`rope`): the paper's point is that a model trained at length L runs on far longer inputs without
 * training, which needs every query to see only query-key distances below L. With `options.rope` set, q and k are
 * passed WITHOUT rotary embedding. The chunks are chosen as above, then the chosen chunks are laid out consecutively
 * in their original order (the local chunk last) and rotated at those compact positions: a key's position is its rank
 * among its query block's selected keys, a query's the rank of the last selected key at or before it (its own key at
 * distance 0), so no distance reaches chunks·C (see `compactPositions` in ../common.ts); with every chunk chosen they
 * are the absolute positions. The chunk scores follow the official code: the chunk key k_c is built from the chunk's
 * queries and keys rotated at chunk-local positions 0..C-1 (every chunk alike, so k_c does not depend on where the
 * chunk sits), and is scored against the un-rotated query, max_i q_i · k_c; the selection is thus position-free.
 *
 * Shape legend: b batch, h query heads, g kv heads, n queries, m keys, d head dim, e value dim, C chunk length.
 *   q [b, h, n, d], k [b, g, m, d], v [b, g, m, e] -> output [b, h, n, e]
 * With `chunks` covering every visible chunk the result equals dense attention (with `rope`: dense attention on q, k
 * rotated at their absolute positions).
 */
import * as tf from '@tensorflow/tfjs';
import { type AttentionShapes, checkQkv, repeatKv } from '../../../attention/dense.js';
import { matmul } from '../../../backend/ops.js';
import { rope as applyRopeAt } from '../../../positional/rope.js';
import { fmt, ShapeError } from '../../../util/shapes.js';
import { ropeRow } from '../compact-positions.js';
import { blockCovers, densePairs, type SparseResult } from '../cost.js';
import { readTidy } from '../gather.js';
import { ropeReasons, type SparseMethod } from '../method.js';
import { denseAtAbsolutePositions, naiveAttendBlocks, naiveAttendRow, qkvRows } from '../naive.js';
import { checkBlock, checkRope, checkScale, type SparseBaseOptions } from '../options.js';
import { attendSelected, blockSelection, topIndices, visibleBlocks } from '../selection.js';

export interface LongHeadsOptions extends SparseBaseOptions {
  /** Keys per chunk (default 32). */
  chunkSize?: number;
  /** Chunks each query attends to, first and local included (default 8). */
  chunks?: number;
  /** Chunks ending at the queries' own position, always kept (default 1). */
  localChunks?: number;
  /** Queries sharing one choice (default 1; a larger block lets its later queries steer earlier ones' choice). */
  queryBlock?: number;
  /**
   * How a chunk is summarised into its chunk key (see the header): 'qkv' (default) as the official code, from the
   * chunk's queries, keys and values; 'keys' from its keys alone (this project's earlier variant).
   */
  summary?: LongHeadsSummary;
  /**
   * The queries at every key position [b, h, m, d] (like q: un-rotated with `rope`) for the 'qkv' summary when q does
   * not cover every key (n < m, e.g. decoding one token); unset: q itself, which then must have n = m.
   */
  chunkQueries?: tf.Tensor;
}

/** The chunk summaries `longHeadsAttention` offers (see its header). */
export const LONGHEADS_SUMMARIES = ['qkv', 'keys'] as const;
export type LongHeadsSummary = (typeof LONGHEADS_SUMMARIES)[number];

function resolve(fn: string, s: AttentionShapes, o: LongHeadsOptions) {
  for (const a of ['chunkSize', 'chunks', 'localChunks', 'queryBlock'] as const) checkBlock(fn, a, o[a]);
  const C = o.chunkSize ?? 32;
  const budget = o.chunks ?? 8;
  const local = o.localChunks ?? 1;
  if (budget < local + 1)
    throw new ShapeError(
      `${fn}: options.chunks (${budget}) must leave room for the first chunk and ${local} local chunk(s)`,
    );
  const summary = o.summary ?? 'qkv';
  if (!LONGHEADS_SUMMARIES.includes(summary))
    throw new ShapeError(
      `${fn}: options.summary must be one of ${LONGHEADS_SUMMARIES.map((x) => `'${x}'`).join(', ')}, got ${JSON.stringify(summary)}`,
    );
  return {
    C,
    budget,
    local,
    summary,
    bq: o.queryBlock ?? 1,
    scale: checkScale(fn, o.scale, s.dim),
    causal: o.causal ?? true,
    rope: checkRope(fn, o.rope, s.dim),
  };
}

/** Chosen chunks per (b, h, query block), given max-over-queries chunk scores `score(blk, c)`. */
function chooseChunks(
  s: AttentionShapes,
  r: ReturnType<typeof resolve>,
  score: (blk: number, cands: number[]) => number[],
): number[][] {
  const nb = Math.ceil(s.queries / r.bq);
  const off = s.keys - s.queries;
  return Array.from({ length: s.batch * s.heads * nb }, (_, blk) => {
    const qb = blk % nb;
    const nc = visibleBlocks(s, qb, r.bq, r.C, r.causal);
    const firstQChunk = r.causal ? Math.floor((off + qb * r.bq) / r.C) : nc;
    const localStart = Math.max(1, Math.min(firstQChunk, nc - r.local));
    const kept = new Set<number>([0]);
    for (let c = localStart; c < nc; c++) kept.add(c);
    const cands = Array.from({ length: Math.max(0, localStart - 1) }, (_, i) => i + 1);
    const room = r.budget - kept.size;
    if (room > 0 && cands.length) {
      const chosen = cands.length <= room ? cands : topIndices(score(blk, cands), room).map((i) => cands[i]);
      chosen.forEach((c) => kept.add(c));
    }
    return [...kept].sort((a, b) => a - b);
  });
}

/**
 * Chunk keys of the complete chunks (see the header): [b, h, chunks, d] from the chunk's queries, keys and values when
 * `from` is given (the official 'qkv' summary; k and v are shared by the query heads of a kv head), else [b, g, chunks,
 * d] from its keys alone ('keys'). With `rope`, q and k are un-rotated and each chunk's queries and keys are first
 * rotated at chunk-local positions 0..C-1, as the official code does.
 */
export function chunkKeys(
  k: tf.Tensor,
  chunkSize: number,
  scale?: number,
  rope?: { base: number },
  from?: { q: tf.Tensor; v: tf.Tensor },
): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, G, M, D] = k.shape as [number, number, number, number];
    const H = from ? (from.q.shape[1] as number) : G;
    const nc = Math.floor(M / chunkSize);
    if (nc === 0) return tf.zeros([B, H, 0, D]) as tf.Tensor4D;
    const sc = scale ?? 1 / Math.sqrt(D);
    const local = (x: tf.Tensor) => {
      const [b, h, , d] = x.shape as number[];
      const cut = x.slice([0, 0, 0, 0], [b, h, nc * chunkSize, d]);
      return rope
        ? applyRopeAt(
            cut,
            Array.from({ length: nc * chunkSize }, (_, j) => j % chunkSize),
            rope,
          )
        : cut;
    };
    const perChunk = (x: tf.Tensor) => x.reshape([B * H * nc, chunkSize, x.shape[3] as number]);
    const kc = perChunk(repeatKv(local(k) as tf.Tensor4D, H / G)); // [x, C, d]
    let cv: tf.Tensor; // [x, 1, d]
    if (from) {
      const qc = perChunk(local(from.q));
      const vc = perChunk(repeatKv(from.v.slice([0, 0, 0, 0], [B, G, nc * chunkSize, -1]) as tf.Tensor4D, H / G));
      cv = matmul(tf.softmax(matmul(qc, kc, false, true).mul(sc)), vc).mean(1, true);
    } else {
      cv = matmul(tf.softmax(matmul(kc, kc, false, true).mul(sc)), kc).mean(1, true);
    }
    return matmul(tf.softmax(matmul(cv, kc, false, true).mul(sc)), kc).reshape([B, H, nc, D]) as tf.Tensor4D;
  });
}

/**
 * The queries at the key positions the 'qkv' summary reads: `options.chunkQueries` [b, h, m, d], or q when it covers
 * every key. Errors name the function and the option.
 */
function summaryQueries(fn: string, s: AttentionShapes, q: tf.Tensor, o: LongHeadsOptions): tf.Tensor {
  const want = [s.batch, s.heads, s.keys, s.dim];
  if (s.valueDim !== s.dim)
    throw new ShapeError(
      `${fn}: the 'qkv' chunk summary uses the pooled values as a query over the keys, so v's last dim (${s.valueDim}) must equal q's (${s.dim}); use options.summary 'keys'`,
    );
  if (o.chunkQueries) {
    const cq = o.chunkQueries;
    if (cq.rank !== 4 || cq.shape.some((x, i) => x !== want[i]))
      throw new ShapeError(`${fn}: options.chunkQueries must have shape ${fmt(want)}, but has ${fmt(cq.shape)}`);
    return cq;
  }
  if (s.queries !== s.keys)
    throw new ShapeError(
      `${fn}: the 'qkv' chunk summary reads the chunk's queries: q covers ${s.queries} of ${s.keys} positions, so pass options.chunkQueries with shape ${fmt(want)} (or options.summary 'keys')`,
    );
  return q;
}

/** LongHeads attention; see the module header. */
export function longHeadsAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: LongHeadsOptions = {},
): SparseResult & { chunks: number[][] } {
  const fn = 'longHeadsAttention';
  const s = checkQkv(fn, q, k, v);
  const r = resolve(fn, s, options);
  const nb = Math.ceil(s.queries / r.bq);
  const ncAll = Math.floor(s.keys / r.C);
  let scores: Float32Array = new Float32Array(0);
  let selectionPairs = 0;
  // Scores are needed only when some query block sees more chunks than the budget.
  const needsScores = Math.ceil(s.keys / r.C) > r.budget;
  if (options.chunkQueries) summaryQueries(fn, s, q, options); // a wrong shape is an error even when unused
  if (needsScores) {
    const from = r.summary === 'qkv' ? { q: summaryQueries(fn, s, q, options), v } : undefined;
    scores = readTidy(() => {
      const kc = repeatKv(chunkKeys(k, r.C, r.scale, r.rope, from), from ? 1 : s.heads / s.kvHeads); // [b, h, nc, d]
      const pad = nb * r.bq - s.queries;
      const qp =
        pad > 0
          ? tf.pad(q, [
              [0, 0],
              [0, 0],
              [0, pad],
              [0, 0],
            ])
          : q;
      let sc = matmul(
        qp.reshape([s.batch * s.heads, nb * r.bq, s.dim]),
        kc.reshape([s.batch * s.heads, ncAll, s.dim]),
        false,
        true,
      );
      if (pad > 0)
        sc = sc.add(
          tf.tensor3d(
            Float32Array.from({ length: nb * r.bq }, (_, i) => (i < s.queries ? 0 : -Infinity)),
            [1, nb * r.bq, 1],
          ),
        );
      return sc.reshape([s.batch * s.heads, nb, r.bq, ncAll]).max(2);
    });
    // Chunk summaries (C² + C per chunk and kv head, or query head for 'qkv') plus one score per query and chunk.
    const summaries = s.batch * (from ? s.heads : s.kvHeads) * ncAll;
    selectionPairs = summaries * (r.C * r.C + r.C) + s.batch * s.heads * s.queries * ncAll;
  }
  const chunks = chooseChunks(s, r, (blk, cands) => cands.map((c) => scores[blk * ncAll + c]));
  const { output, pairs } = attendSelected(fn, q, k, v, blockSelection(chunks, r.C, s.keys, r.bq), {
    scale: r.scale,
    causal: r.causal,
    rope: r.rope,
  });
  const blocksTotal = chunks.reduce((a, _, blk) => a + visibleBlocks(s, blk % nb, r.bq, r.C, r.causal), 0);
  return {
    output,
    chunks,
    covers: blockCovers(chunks, s.heads, s.queries, r.bq, r.C),
    stats: {
      method: 'longheads',
      pairs,
      densePairs: densePairs(s, r.causal),
      selectionPairs,
      blocksKept: chunks.reduce((a, c) => a + c.length, 0),
      blocksTotal,
    },
  };
}

/** Float64 loop reference of `longHeadsAttention`: its own chunk keys, scores, choice and softmax. */
export function longHeadsAttentionNaive(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: LongHeadsOptions = {},
): { output: Float64Array; chunks: number[][] } {
  const fn = 'longHeadsAttentionNaive';
  const s = checkQkv(fn, q, k, v);
  const r = resolve(fn, s, options);
  const nb = Math.ceil(s.queries / r.bq);
  const groups = s.heads / s.kvHeads;
  const { q: qr, k: kr, v: vr } = qkvRows(q, k, v);
  const ncAll = Math.floor(s.keys / r.C);
  if (options.chunkQueries) summaryQueries(fn, s, q, options);
  // Chunk keys per (batch, query head), only where some query block sees more chunks than the budget (as the fast path).
  const kc: Float64Array[][] = [];
  if (Math.ceil(s.keys / r.C) > r.budget) {
    const cq = r.summary === 'qkv' ? qkvRows(summaryQueries(fn, s, q, options), k, v).q : undefined;
    const at = (x: Float64Array, t: number) => (r.rope ? ropeRow(x, t, r.rope.base) : x);
    for (let b = 0; b < s.batch; b++) {
      for (let h = 0; h < s.heads; h++) {
        const g = Math.floor(h / groups);
        const row: Float64Array[] = [];
        for (let c = 0; c < ncAll; c++) {
          const pos = Array.from({ length: r.C }, (_, t) => c * r.C + t);
          const ks = pos.map((j, t) => at(kr(b, g, j), t));
          // First pooling: 'qkv' the chunk's queries over its keys and values, 'keys' its keys over its keys.
          const [qs, vs] = cq ? [pos.map((j, t) => at(cq(b, h, j), t)), pos.map((j) => vr(b, g, j))] : [ks, ks];
          const cv = new Float64Array(s.dim);
          for (const qt of qs) {
            const { out } = naiveAttendRow(qt, ks, vs, r.scale);
            for (let d = 0; d < s.dim; d++) cv[d] += out[d] / r.C;
          }
          row.push(naiveAttendRow(cv, ks, ks, r.scale).out);
        }
        kc.push(row);
      }
    }
  }
  const chunks = chooseChunks(s, r, (blk, cands) => {
    const qb = blk % nb;
    const bh = Math.floor(blk / nb);
    return cands.map((c) => {
      let best = -Infinity;
      for (let i = qb * r.bq; i < Math.min(s.queries, (qb + 1) * r.bq); i++) {
        const a = qr(Math.floor(bh / s.heads), bh % s.heads, i);
        const kk = kc[bh][c];
        best = Math.max(
          best,
          a.reduce((x, ai, d) => x + ai * kk[d], 0),
        );
      }
      return best;
    });
  });
  const output = naiveAttendBlocks(
    s,
    { q: qr, k: kr, v: vr },
    (b, h, i) => chunks[(b * s.heads + h) * nb + Math.floor(i / r.bq)],
    r.C,
    r.scale,
    r.causal,
    r.rope,
  );
  return { output, chunks };
}

/** LongHeads as a `SparseMethod` (see ../method.ts). */
export const longHeadsMethod: SparseMethod<LongHeadsOptions> = {
  name: 'longheads',
  kind: 'paper',
  paper: {
    citation: 'Lu et al. 2024, LongHeads: Multi-Head Attention is Secretly a Long Context Processor',
    url: 'https://arxiv.org/abs/2402.10685',
  },
  attend: (q, k, v, o) => longHeadsAttention(q, k, v, o),
  reference: (q, k, v, o) => longHeadsAttentionNaive(q, k, v, o).output,
  supports: (q, _k, _v, o) => ropeReasons(o, q.shape[3] as number, true),
  budgets: {
    timing: () => ({ chunkSize: 64, chunks: 8, queryBlock: 64 }),
    // The first and the local chunk besides the chosen ones.
    keys: (_n, keys) => ({ chunkSize: 16, chunks: Math.max(1, Math.round(keys / 16) - 2) + 2 }),
    extend: (trainLen, chunk) => ({
      chunkSize: chunk,
      chunks: Math.max(2, Math.floor(trainLen / chunk)),
      queryBlock: chunk,
    }),
  },
  cases: [
    {
      label: 'per query',
      shape: [2, 4, 36, 8],
      kvHeads: 2,
      exact: { chunkSize: 4, chunks: 64 },
      sparse: { chunkSize: 4, chunks: 3 },
    },
    {
      label: "per query, 'keys' summary",
      shape: [2, 4, 36, 8],
      kvHeads: 2,
      exact: { chunkSize: 4, chunks: 64, summary: 'keys' },
      sparse: { chunkSize: 4, chunks: 3, summary: 'keys' },
    },
    {
      label: 'compact rope',
      shape: [1, 4, 36, 8],
      kvHeads: 2,
      exact: { chunkSize: 4, chunks: 64, rope: {} },
      sparse: { chunkSize: 4, chunks: 3, rope: { base: 100 } },
      equals: (q, k, v) => denseAtAbsolutePositions(q, k, v),
    },
    {
      label: 'compact rope, query blocks',
      shape: [1, 2, 36, 8],
      kvHeads: 1,
      exact: { chunkSize: 4, chunks: 64, queryBlock: 4, rope: {} },
      sparse: { chunkSize: 4, chunks: 3, queryBlock: 4, rope: { base: 100 } },
      reach: 4,
      equals: (q, k, v) => denseAtAbsolutePositions(q, k, v),
    },
  ],
};

/**
 * HyperAttention: long-context attention in near-linear time.
 *
 * Paper: Han, Jayaram, Karbasi, Mirrokni, Woodruff & Zandieh, ICLR 2024, "HyperAttention: Long-context Attention in
 * Near-Linear Time", https://arxiv.org/abs/2310.05869
 *
 * Approximates D⁻¹ A V (A = exp(Q Kᵀ · scale), D = diag(A 1)) without forming A:
 *   1. sortLSH: hash queries and keys with r random hyperplanes (angular LSH), order the buckets along a Gray code so
 *      neighbouring buckets differ in one bit, sort the keys by bucket and cut them into blocks of b; each query gets
 *      exact scores against one block of sorted keys (see `HyperPlan`). These capture the heavy entries. Which block:
 *      `pairing: 'rank'` (the paper's and the official code's): sort the queries by bucket too, and pair the i-th block
 *      of sorted queries with the i-th block of sorted keys; `pairing: 'bucket'` (ours): the block where the query's
 *      own bucket falls among the sorted keys. Under a causal mask the paper's pairing leaks: a query's rank, hence its
 *      block, depends on the later queries of its piece, so changing a future token can change an earlier output
 *      (tested); 'bucket' depends only on the query itself and the (past) keys. Default: 'rank' without a causal mask,
 *      'bucket' with one.
 *   2. The rest of each row, for D and for A V alike, is estimated from m uniformly sampled key columns, each scaled by
 *      n / m; a sampled key already inside the query's block is skipped, so nothing is counted twice:
 *        num_i = Σ_{j ∈ block(i)} A_ij v_j + (n/m) Σ_{j ∈ S \ block(i)} A_ij v_j,   den_i likewise with v_j = 1.
 *   The two parts are merged in log space (log-sum-exp), which also merges the pieces of the causal case:
 *   causal(Q, K, V) splits the sequence in halves: causal(top) ; causal(bottom) ⊕ non-causal(bottom queries, top keys),
 *   recursively, with exact causal attention once a piece is no longer than `minSeqLen`.
 * Cost O(n (b + m) d) per level instead of O(n² d); the causal recursion adds a log n factor.
 *
 * Shape legend: b batch, h query heads, g kv heads, n positions (queries = keys), d head dim, e value dim.
 *   q [b, h, n, d], k [b, g, n, d], v [b, g, n, e] -> output [b, h, n, e]
 * Exact (equals dense attention) when the block covers every key (blockSize >= n) or, causal, when n <= minSeqLen.
 */
import * as tf from '@tensorflow/tfjs';
import { checkQkv, MASKED_SCORE, repeatKv } from '../../../attention/dense.js';
import { matmul } from '../../../backend/ops.js';
import { Rng } from '../../../util/random.js';
import { fmt, ShapeError } from '../../../util/shapes.js';
import { densePairs, type SparseResult } from '../cost.js';
import { gatherRows } from '../gather.js';
import { ropeReasons, type SparseMethod, selfAttentionReasons } from '../method.js';
import { f64 } from '../naive.js';
import { checkBlock, checkScale, rejectRope, type SparseBaseOptions } from '../options.js';
import { attendSelected } from '../selection.js';

export interface HyperOptions extends SparseBaseOptions {
  /** Random hyperplanes per hash (default 7, as the official code). */
  lshProjections?: number;
  /** Sorted queries/keys per diagonal block (default 256). */
  blockSize?: number;
  /** Uniformly sampled key columns (default 256). */
  sampleSize?: number;
  /** Causal pieces this short or shorter are computed exactly (default 4096). */
  minSeqLen?: number;
  /** Seeds the hyperplanes and the column samples. */
  seed?: number;
  /**
   * How queries meet blocks of sorted keys: 'rank' pairs the i-th block of bucket-sorted queries with the i-th block of
   * sorted keys (the paper); 'bucket' puts a query in the block where its bucket falls (strictly causal). Default
   * 'rank' when not causal, 'bucket' when causal.
   */
  pairing?: 'rank' | 'bucket';
}

interface Resolved {
  r: number;
  b: number;
  m: number;
  minSeqLen: number;
  scale: number;
  causal: boolean;
  seed: number;
  pairing: 'rank' | 'bucket';
}

function resolve(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o: HyperOptions) {
  const s = checkQkv(fn, q, k, v);
  if (s.queries !== s.keys)
    throw new ShapeError(
      `${fn}: q has shape ${fmt(q.shape)} and k has ${fmt(k.shape)}; HyperAttention needs as many queries as keys`,
    );
  for (const a of ['lshProjections', 'blockSize', 'sampleSize', 'minSeqLen'] as const) checkBlock(fn, a, o[a]);
  if (o.pairing !== undefined && o.pairing !== 'rank' && o.pairing !== 'bucket')
    throw new ShapeError(`${fn}: options.pairing must be 'rank' or 'bucket', got ${JSON.stringify(o.pairing)}`);
  const causal = o.causal ?? true;
  const r: Resolved = {
    r: o.lshProjections ?? 7,
    b: o.blockSize ?? 256,
    m: o.sampleSize ?? 256,
    minSeqLen: o.minSeqLen ?? 4096,
    scale: checkScale(fn, o.scale, s.dim),
    causal,
    seed: o.seed ?? 0,
    pairing: o.pairing ?? (causal ? 'bucket' : 'rank'),
  };
  return { s, r };
}

/** Gaussian hyperplanes [d, r] from a seed (float64, shared by the fast path and the reference). */
export function hyperplanes(dim: number, r: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  return Float64Array.from({ length: dim * r }, () => rng.normal());
}

/** Rank of a sign pattern along the reflected Gray code: neighbouring ranks differ in one hyperplane. */
export function grayRank(bits: number): number {
  let x = bits;
  for (let shift = 1; shift < 32; shift <<= 1) x ^= x >> shift;
  return x;
}

/** Positions sorted by bucket rank (ties by position): perm[t] = position at sorted slot t. */
function sortByBucket(ranks: ArrayLike<number>, start: number, n: number): Int32Array {
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => ranks[start + a] - ranks[start + b] || a - b);
  return Int32Array.from(idx);
}

/**
 * The choices of one non-causal piece: keys sorted by bucket, each query's block of sorted keys, the sampled columns.
 * 'rank': the query at slot t of the bucket-sorted queries joins key block floor(t / b) (the paper). 'bucket': a query
 * joins the block of sorted keys where its own bucket rank falls; then a query's keys depend only on itself and the
 * keys, which keeps the causal recursion strictly causal.
 */
export interface HyperPlan {
  kPerm: Int32Array[];
  /** blockOfQuery[bh * n + i], blockOfKey[bh * n + j]: index of the sorted-key block. */
  blockOfQuery: Int32Array;
  blockOfKey: Int32Array;
  samples: Int32Array;
}

function plan(
  qRanks: ArrayLike<number>,
  kRanks: ArrayLike<number>,
  bh: number,
  n: number,
  b: number,
  m: number,
  rng: Rng,
  pairing: 'rank' | 'bucket',
): HyperPlan {
  const kPerm: Int32Array[] = [];
  const blockOfQuery = new Int32Array(bh * n);
  const blockOfKey = new Int32Array(bh * n);
  for (let i = 0; i < bh; i++) {
    const perm = sortByBucket(kRanks, i * n, n);
    kPerm.push(perm);
    perm.forEach((pos, t) => (blockOfKey[i * n + pos] = Math.floor(t / b)));
    if (pairing === 'rank') {
      sortByBucket(qRanks, i * n, n).forEach((pos, t) => (blockOfQuery[i * n + pos] = Math.floor(t / b)));
      continue;
    }
    for (let qi = 0; qi < n; qi++) {
      // Lower bound of the query's rank among the sorted key ranks.
      let lo = 0;
      let hi = n;
      const rq = qRanks[i * n + qi];
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (kRanks[i * n + perm[mid]] < rq) lo = mid + 1;
        else hi = mid;
      }
      blockOfQuery[i * n + qi] = Math.floor(Math.min(lo, n - 1) / b);
    }
  }
  return {
    kPerm,
    blockOfQuery,
    blockOfKey,
    samples: Int32Array.from(rng.sample(n, Math.min(m, n)).sort((x, y) => x - y)),
  };
}

/** Bucket ranks of x [bh, n, d] (float32 data) under hyperplanes P [d, r]. */
function ranksOf(x: ArrayLike<number>, rows: number, dim: number, P: Float64Array, r: number): Int32Array {
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    let bits = 0;
    for (let p = 0; p < r; p++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += x[i * dim + d] * P[d * r + p];
      if (dot > 0) bits |= 1 << p;
    }
    out[i] = grayRank(bits);
  }
  return out;
}

interface Part {
  out: tf.Tensor3D; // [bh, n, e]
  lse: tf.Tensor3D; // [bh, n, 1]
}

function merge(a: Part, b: Part): Part {
  const lse = tf.maximum(a.lse, b.lse).add(tf.exp(a.lse.sub(b.lse).abs().neg()).log1p()) as tf.Tensor3D;
  const out = a.out.mul(tf.exp(a.lse.sub(lse))).add(b.out.mul(tf.exp(b.lse.sub(lse)))) as tf.Tensor3D;
  return { out, lse };
}

function softmaxPart(scores: tf.Tensor, values: tf.Tensor): Part {
  const lse = scores.logSumExp(-1, true) as tf.Tensor3D;
  return { out: matmul(tf.exp(scores.sub(lse)), values) as tf.Tensor3D, lse };
}

/** Pieces of the computation, kept to answer `covers`. */
type Piece =
  | { kind: 'exact'; off: number; len: number }
  | {
      kind: 'lsh';
      qOff: number;
      kOff: number;
      len: number;
      qBlock: Int32Array;
      kBlock: Int32Array;
      samples: Set<number>;
    };

interface Counter {
  pairs: number;
  pieces: Piece[];
}

/** Exact causal attention of a piece: q, k [bh, n, d], v [bh, n, e]. */
function exactCausal(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, scale: number, cnt: Counter, off: number): Part {
  const n = q.shape[1];
  cnt.pieces.push({ kind: 'exact', off, len: n });
  const bias = new Float32Array(n * n);
  for (let i = 0; i < n; i++) bias.fill(MASKED_SCORE, i * n + i + 1, (i + 1) * n);
  cnt.pairs += q.shape[0] * ((n * (n + 1)) / 2);
  return softmaxPart(
    matmul(q, k, false, true)
      .mul(scale)
      .add(tf.tensor3d(bias, [1, n, n])),
    v,
  );
}

/** Non-causal sortLSH + sampled columns on a piece: q, k [bh, n, d], v [bh, n, e]. */
function nonCausal(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  r: Resolved,
  P: Float64Array,
  rng: Rng,
  cnt: Counter,
  qOff = 0,
  kOff = 0,
): Part {
  const [BH, n, D] = q.shape;
  const E = v.shape[2];
  const b = Math.min(r.b, n);
  const p = plan(
    ranksOf(q.dataSync(), BH * n, D, P, r.r),
    ranksOf(k.dataSync(), BH * n, D, P, r.r),
    BH,
    n,
    b,
    r.m,
    rng,
    r.pairing,
  );
  cnt.pieces.push({
    kind: 'lsh',
    qOff,
    kOff,
    len: n,
    qBlock: p.blockOfQuery,
    kBlock: p.blockOfKey,
    samples: new Set(p.samples),
  });
  const m = p.samples.length;
  // Queries sorted by their key block, in groups of g: a group's keys are the few consecutive key blocks its queries
  // fall in, and each query keeps only its own block (plus the samples outside it). Small groups keep that span short.
  const gq = Math.max(1, b >> 2);
  const order = new Int32Array(BH * n);
  const groups = Math.ceil(n / gq);
  const ranges: [number, number][] = [];
  for (let i = 0; i < BH; i++) {
    const idx = Array.from({ length: n }, (_, t) => t).sort(
      (x, y) => p.blockOfQuery[i * n + x] - p.blockOfQuery[i * n + y] || x - y,
    );
    idx.forEach((qi, t) => (order[i * n + t] = i * n + qi));
    for (let g = 0; g < groups; g++) {
      const last = Math.min(n, (g + 1) * gq) - 1;
      ranges.push([p.blockOfQuery[i * n + idx[g * gq]], p.blockOfQuery[i * n + idx[last]]]);
    }
  }
  const width = Math.max(...ranges.map(([lo, hi]) => hi - lo + 1)) * b;
  const S = width + m;
  const keys = new Int32Array(BH * groups * S).fill(-1);
  const keyBlock = new Int32Array(BH * groups * S).fill(-1);
  const logWeight = new Float32Array(BH * groups * S);
  const lw = Math.log(n / m);
  ranges.forEach(([lo, hi], blk) => {
    const i = Math.floor(blk / groups);
    let t = 0;
    for (let kb = lo; kb <= hi; kb++) {
      for (let u = kb * b; u < Math.min(n, (kb + 1) * b); u++, t++) {
        keys[blk * S + t] = p.kPerm[i][u];
        keyBlock[blk * S + t] = kb;
      }
    }
    p.samples.forEach((j, u) => {
      keys[blk * S + width + u] = j;
      keyBlock[blk * S + width + u] = -2 - p.blockOfKey[i * n + j];
      logWeight[blk * S + width + u] = lw;
    });
  });
  const allow = (blk: number, qi: number, t: number): boolean => {
    const i = Math.floor(blk / groups);
    const sorted = (blk % groups) * gq + qi;
    if (sorted >= n) return false;
    const own = p.blockOfQuery[order[i * n + sorted]];
    const kb = keyBlock[blk * S + t];
    return kb >= 0 ? kb === own : -2 - kb !== own;
  };
  const unorder = new Int32Array(BH * n);
  order.forEach((row, t) => (unorder[row] = t));
  const qs = gatherRows(q.reshape([BH * n, D]) as tf.Tensor2D, order).reshape([1, BH, n, D]);
  const r4 = (x: tf.Tensor, w: number) => x.reshape([1, BH, n, w]);
  const res = attendSelected(
    'hyperAttention',
    qs,
    r4(k, D),
    r4(v, E),
    { queryBlock: gq, slots: S, keys, logWeight, allow },
    { scale: r.scale, causal: false, lse: true },
  );
  cnt.pairs += res.pairs;
  const back = (x: tf.Tensor, w: number) =>
    gatherRows(x.reshape([BH * n, w]) as tf.Tensor2D, unorder).reshape([BH, n, w]) as tf.Tensor3D;
  return { out: back(res.output, E), lse: back(res.lse!, 1) };
}

function causalRec(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  r: Resolved,
  P: Float64Array,
  rng: Rng,
  cnt: Counter,
  off = 0,
): Part {
  const n = q.shape[1];
  // Odd pieces are not split (halves must match for the off-diagonal part).
  if (n <= r.minSeqLen || n % 2 === 1) return exactCausal(q, k, v, r.scale, cnt, off);
  const h = n >> 1;
  const sl = (x: tf.Tensor3D, a: number, len: number) => x.slice([0, a, 0], [-1, len, -1]) as tf.Tensor3D;
  const top = causalRec(sl(q, 0, h), sl(k, 0, h), sl(v, 0, h), r, P, rng.fork('top'), cnt, off);
  const diag = causalRec(sl(q, h, n - h), sl(k, h, n - h), sl(v, h, n - h), r, P, rng.fork('bottom'), cnt, off + h);
  const bottom = merge(
    diag,
    nonCausal(sl(q, h, h), sl(k, 0, h), sl(v, 0, h), r, P, rng.fork('off'), cnt, off + h, off),
  );
  return {
    out: tf.concat([top.out, bottom.out], 1) as tf.Tensor3D,
    lse: tf.concat([top.lse, bottom.lse], 1) as tf.Tensor3D,
  };
}

/** HyperAttention; see the module header. */
export function hyperAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: HyperOptions = {}): SparseResult {
  const fn = 'hyperAttention';
  rejectRope(fn, options);
  const { s, r } = resolve(fn, q, k, v, options);
  const P = hyperplanes(s.dim, r.r, r.seed);
  const rng = new Rng(r.seed + 1);
  const cnt: Counter = { pairs: 0, pieces: [] };
  const { batch: B, heads: H, queries: n, dim: D, valueDim: E } = s;
  const output = tf.tidy(() => {
    const groups = H / s.kvHeads;
    const q3 = q.reshape([B * H, n, D]) as tf.Tensor3D;
    const k3 = repeatKv(k as tf.Tensor4D, groups).reshape([B * H, n, D]) as tf.Tensor3D;
    const v3 = repeatKv(v as tf.Tensor4D, groups).reshape([B * H, n, E]) as tf.Tensor3D;
    const part = r.causal ? causalRec(q3, k3, v3, r, P, rng, cnt) : nonCausal(q3, k3, v3, r, P, rng, cnt);
    return part.out.reshape([B, H, n, E]) as tf.Tensor4D;
  });
  const hashes = 2 * B * H * n * r.r;
  const covers = (b: number, h: number, i: number, j: number): boolean => {
    const bh = b * H + h;
    return cnt.pieces.some((p) => {
      if (p.kind === 'exact') return i >= p.off && i < p.off + p.len && j >= p.off && j < p.off + p.len;
      const [qi, kj] = [i - p.qOff, j - p.kOff];
      if (qi < 0 || qi >= p.len || kj < 0 || kj >= p.len) return false;
      return p.kBlock[bh * p.len + kj] === p.qBlock[bh * p.len + qi] || p.samples.has(kj);
    });
  };
  return {
    output,
    covers,
    stats: { method: 'hyper', pairs: cnt.pairs, densePairs: densePairs(s, r.causal), selectionPairs: hashes },
  };
}

/**
 * Float64 loop reference of `hyperAttention`: the same hyperplanes and samples (same seed), its own hashing, sorting,
 * block and sampled sums, and the same causal recursion, written as explicit sums.
 */
export function hyperAttentionNaive(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: HyperOptions = {},
): Float64Array {
  const fn = 'hyperAttentionNaive';
  rejectRope(fn, options);
  const { s, r } = resolve(fn, q, k, v, options);
  const P = hyperplanes(s.dim, r.r, r.seed);
  const { batch: B, heads: H, queries: n, dim: D, valueDim: E } = s;
  const groups = H / s.kvHeads;
  const qd = f64(q);
  const kd = f64(k);
  const vd = f64(v);
  const output = new Float64Array(B * H * n * E);
  // Per (b, h) piece: rows as float64 subarrays by absolute position.
  type Rows = (i: number) => Float64Array;
  type Acc = { out: Float64Array; lse: number }[];
  const dotS = (a: Float64Array, b: Float64Array) => {
    let x = 0;
    for (let d = 0; d < D; d++) x += a[d] * b[d];
    return x * r.scale;
  };
  const combine = (terms: { s: number; v: Float64Array }[]): { out: Float64Array; lse: number } => {
    const out = new Float64Array(E);
    if (!terms.length) return { out, lse: -Infinity };
    const mx = Math.max(...terms.map((t) => t.s));
    let z = 0;
    for (const t of terms) z += Math.exp(t.s - mx);
    for (const t of terms) for (let e = 0; e < E; e++) out[e] += (Math.exp(t.s - mx) / z) * t.v[e];
    return { out, lse: mx + Math.log(z) };
  };
  const mergeRow = (a: { out: Float64Array; lse: number }, b: { out: Float64Array; lse: number }) => {
    const lse = Math.max(a.lse, b.lse) + Math.log1p(Math.exp(-Math.abs(a.lse - b.lse)));
    const out = new Float64Array(E);
    for (let e = 0; e < E; e++) out[e] = a.out[e] * Math.exp(a.lse - lse) + b.out[e] * Math.exp(b.lse - lse);
    return { out, lse };
  };
  // The hashing of the fast path runs on float32 data; do the same so bucket ties resolve identically.
  const rankRows = (rows: Rows, len: number) => {
    const buf = new Float32Array(len * D);
    for (let i = 0; i < len; i++) buf.set(rows(i), i * D);
    return ranksOf(buf, len, D, P, r.r);
  };
  const nonCausalNaive = (
    bhCount: number,
    qRows: Rows[],
    kRows: Rows[],
    vRows: Rows[],
    len: number,
    rng: Rng,
  ): Acc[] => {
    const qR = new Int32Array(bhCount * len);
    const kR = new Int32Array(bhCount * len);
    for (let i = 0; i < bhCount; i++) {
      qR.set(rankRows(qRows[i], len), i * len);
      kR.set(rankRows(kRows[i], len), i * len);
    }
    const b = Math.min(r.b, len);
    const p = plan(qR, kR, bhCount, len, b, r.m, rng, r.pairing);
    const m = p.samples.length;
    return Array.from({ length: bhCount }, (_, i) => {
      return Array.from({ length: len }, (_, qi) => {
        const blk = p.blockOfQuery[i * len + qi];
        const terms: { s: number; v: Float64Array }[] = [];
        for (let j = 0; j < len; j++)
          if (p.blockOfKey[i * len + j] === blk) terms.push({ s: dotS(qRows[i](qi), kRows[i](j)), v: vRows[i](j) });
        for (const j of p.samples)
          if (p.blockOfKey[i * len + j] !== blk)
            terms.push({ s: dotS(qRows[i](qi), kRows[i](j)) + Math.log(len / m), v: vRows[i](j) });
        return combine(terms);
      });
    });
  };
  const causalNaive = (bhCount: number, qRows: Rows[], kRows: Rows[], vRows: Rows[], len: number, rng: Rng): Acc[] => {
    if (len <= r.minSeqLen || len % 2 === 1) {
      return Array.from({ length: bhCount }, (_, i) =>
        Array.from({ length: len }, (_, qi) => {
          const terms = Array.from({ length: qi + 1 }, (_, j) => ({
            s: dotS(qRows[i](qi), kRows[i](j)),
            v: vRows[i](j),
          }));
          return combine(terms);
        }),
      );
    }
    const h = len >> 1;
    const shift = (rows: Rows[], a: number): Rows[] => rows.map((f) => (i: number) => f(i + a));
    const top = causalNaive(bhCount, qRows, kRows, vRows, h, rng.fork('top'));
    const diag = causalNaive(bhCount, shift(qRows, h), shift(kRows, h), shift(vRows, h), len - h, rng.fork('bottom'));
    const off = nonCausalNaive(bhCount, shift(qRows, h), kRows, vRows, h, rng.fork('off'));
    return Array.from({ length: bhCount }, (_, i) => [...top[i], ...diag[i].map((row, t) => mergeRow(row, off[i][t]))]);
  };
  const qRows: Rows[] = [];
  const kRows: Rows[] = [];
  const vRows: Rows[] = [];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / groups);
      qRows.push((i) => qd.subarray(((b * H + h) * n + i) * D, ((b * H + h) * n + i + 1) * D));
      kRows.push((i) => kd.subarray(((b * s.kvHeads + g) * n + i) * D, ((b * s.kvHeads + g) * n + i + 1) * D));
      vRows.push((i) => vd.subarray(((b * s.kvHeads + g) * n + i) * E, ((b * s.kvHeads + g) * n + i + 1) * E));
    }
  }
  const rng = new Rng(r.seed + 1);
  const res = r.causal
    ? causalNaive(B * H, qRows, kRows, vRows, n, rng)
    : nonCausalNaive(B * H, qRows, kRows, vRows, n, rng);
  res.forEach((rows, i) => rows.forEach((row, t) => output.set(row.out, (i * n + t) * E)));
  return output;
}

/** HyperAttention as a `SparseMethod` (see ../method.ts). */
export const hyperMethod: SparseMethod<HyperOptions> = {
  name: 'hyper',
  kind: 'paper',
  paper: {
    citation: 'Han et al. 2024, HyperAttention: Long-context Attention in Near-Linear Time',
    url: 'https://arxiv.org/abs/2310.05869',
  },
  attend: (q, k, v, o) => hyperAttention(q, k, v, o),
  reference: (q, k, v, o) => hyperAttentionNaive(q, k, v, o),
  supports: (q, k, _v, o) => [
    ...selfAttentionReasons(q, k, 'HyperAttention'),
    ...ropeReasons(o, q.shape[3] as number, false),
  ],
  budgets: {
    timing: (_n, seed) => ({ blockSize: 256, sampleSize: 256, minSeqLen: 1024, seed }),
    // Half the keys in the sorted blocks, half sampled; pieces up to `keys` long are exact.
    keys: (_n, keys, seed) => ({ blockSize: keys / 2, sampleSize: keys / 2, minSeqLen: keys, seed }),
  },
  cases: [
    {
      label: 'causal recursion',
      shape: [1, 2, 32, 8],
      kvHeads: 1,
      exact: { blockSize: 32, sampleSize: 4, minSeqLen: 4, lshProjections: 3 },
      sparse: { blockSize: 4, sampleSize: 4, minSeqLen: 8, lshProjections: 3, seed: 3 },
      pairsDiffer: true,
    },
  ],
};

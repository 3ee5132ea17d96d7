/**
 * Machinery shared by the content-based sparse attention methods: a selection of keys per query block, the attention
 * restricted to it, and the cost report every method returns.
 *
 * Shape legend: b = batch, h = query heads, g = kv heads, n = queries, m = keys, d = head dim, e = value dim,
 * nb = query blocks (ceil(n / bq)), s = key slots per query block.
 *   q [b, h, n, d], k [b, g, m, d], v [b, g, m, e] -> output [b, h, n, e]
 *
 * Queries are end-aligned with keys (query i sits at position m - n + i), as in `sdpa`.
 *
 * Compact positions (`rope`): the training-free methods (LongHeads, HiP) can take q and k without rotary embedding and
 * rotate them themselves after choosing keys, as LongHeads does (Lu et al. 2024, https://arxiv.org/abs/2402.10685) to
 * run past the trained length. Within one query block's selection, a selected key's position is its rank among the
 * block's selected keys sorted by key index (the chosen chunks laid out consecutively in their original order, the
 * local chunk last); a query's position is the rank of the last selected key at or before it, so its own key, when
 * selected, sits at distance 0 and no query sees a distance beyond its selection's size. Causality is unchanged.
 * With every key selected, compact positions are the absolute positions 0..m-1 (queries at m - n + i).
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../backend/ops.js';
import { MASKED_SCORE, checkQkv, type AttentionShapes } from '../../attention/dense.js';
import { ShapeError } from '../../util/shapes.js';
import { applyRope, ropeCosSin } from '../../positional/rope.js';

/** What a sparse method computed, so cost is measured rather than assumed. */
export interface SparseStats {
  method: string;
  /** Query-key scores computed for the attention itself (visible pairs only). */
  pairs: number;
  /** Scores dense attention computes under the same mask (causal: n(n+1)/2 per head and batch row). */
  densePairs: number;
  /** Dot products spent deciding what to keep (centroid distances, representative or landmark scores, gate logits). */
  selectionPairs: number;
  /** Key blocks kept and available, summed over batch, heads and query blocks (block methods only). */
  blocksKept?: number;
  blocksTotal?: number;
}

export interface SparseResult {
  output: tf.Tensor4D;
  stats: SparseStats;
  /** Whether query i of (batch b, head h) scored key j (for recall and mass metrics; causality not included). */
  covers: (b: number, h: number, i: number, j: number) => boolean;
}

/** `covers` for methods that keep key blocks per query block: blocks[(b * heads + h) * nb + qb]. */
export function blockCovers(blocks: number[][], heads: number, queries: number, queryBlock: number, keyBlock: number): SparseResult['covers'] {
  const nb = Math.ceil(queries / queryBlock);
  const sets = blocks.map((bl) => new Set(bl));
  return (b, h, i, j) => sets[(b * heads + h) * nb + Math.floor(i / queryBlock)].has(Math.floor(j / keyBlock));
}

/** Options every method accepts. */
export interface SparseBaseOptions {
  /** Multiplies the scores; default 1/sqrt(d). */
  scale?: number;
  /** Decoder attention: query at position p sees keys <= p. Default true. */
  causal?: boolean;
  /**
   * Compact rotary positions (LongHeads, HiP only; the other methods reject it). When set, q and k are given WITHOUT
   * rotary embedding: the method picks its keys from the un-rotated q and k (position-free scores), then rotates the
   * selected keys and the queries (rotate-half RoPE, `base` default 10000) by their compact positions (see the module
   * header), so every query sees query-key distances smaller than its selection's size, i.e. within the trained
   * length, however long the sequence.
   */
  rope?: { base?: number };
}

/** Resolved `options.rope`: undefined when unset; throws, naming `options.rope`, on a bad base or an odd head dim. */
export function checkRope(fn: string, rope: SparseBaseOptions['rope'], dim: number): { base: number } | undefined {
  if (rope === undefined) return undefined;
  const base = rope.base ?? 10000;
  if (!(Number.isFinite(base) && base > 0)) throw new ShapeError(`${fn}: options.rope.base must be a positive finite number, got ${base}`);
  if (dim % 2 !== 0) throw new ShapeError(`${fn}: options.rope needs an even head dim (rotate-half pairs), got ${dim}`);
  return { base };
}

/** For methods without compact positions: throws, naming `options.rope`, when it is set. */
export function rejectRope(fn: string, options: { rope?: unknown }): void {
  if (options.rope !== undefined) {
    throw new ShapeError(`${fn}: options.rope (compact rotary positions) is supported by longHeadsAttention and hipAttention only; rotate q and k before calling`);
  }
}

/**
 * Compact positions of a selection (see the module header): keyPos[blk * slots + t] for each slot (0 for an empty
 * one) and queryPos[blk * queryBlock + i] for each query of the block (-1 when no selected key is at or before it;
 * 0 for padding queries past `queries`). Queries are end-aligned: query qi sits at absolute position keys - queries + qi.
 */
export function compactPositions(sel: KeySelection, queries: number, keys: number): { keyPos: Int32Array; queryPos: Int32Array } {
  const S = sel.slots;
  const bq = sel.queryBlock;
  const X = sel.keys.length / S;
  const nb = Math.ceil(queries / bq);
  const off = keys - queries;
  const keyPos = new Int32Array(X * S);
  const queryPos = new Int32Array(X * bq);
  for (let blk = 0; blk < X; blk++) {
    const slots = Array.from({ length: S }, (_, t) => t).filter((t) => sel.keys[blk * S + t] >= 0);
    slots.sort((a, b) => sel.keys[blk * S + a] - sel.keys[blk * S + b]);
    const sorted = slots.map((t) => sel.keys[blk * S + t]);
    slots.forEach((t, rank) => (keyPos[blk * S + t] = rank));
    const qb = blk % nb;
    for (let i = 0; i < bq; i++) {
      const qi = qb * bq + i;
      if (qi >= queries) continue;
      // Number of selected keys at or before the query, minus one (binary search over the sorted keys).
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sorted[mid] <= off + qi) lo = mid + 1;
        else hi = mid;
      }
      queryPos[blk * bq + i] = lo - 1;
    }
  }
  return { keyPos, queryPos };
}

/**
 * Rotate-half RoPE of rows x [a, rows, d] (not rotated yet), row r of slab i at positions[i·rows + r] (angles in
 * float64: positional/rope's ropeCosSin and applyRope on an [a, 1, rows, d] view). Differentiable in x.
 */
export function rotateRows(x: tf.Tensor, positions: Int32Array | Float32Array, base: number): tf.Tensor3D {
  const [a, r, d] = x.shape;
  return tf.tidy(() => {
    const { cos, sin } = ropeCosSin(positions, d, { base });
    const four = (t: tf.Tensor) => t.reshape([a, 1, r, d / 2]);
    return applyRope(x.reshape([a, 1, r, d]), four(cos), four(sin)).reshape([a, r, d]) as tf.Tensor3D;
  });
}

/** Float64 cos and sin of p·θ_i for positions -1 <= p < maxPos, to speed up {@link ropeRow}. */
export function ropeTable(maxPos: number, dim: number, base: number): { cos: Float64Array; sin: Float64Array } {
  const half = dim / 2;
  const cos = new Float64Array((maxPos + 1) * half);
  const sin = new Float64Array((maxPos + 1) * half);
  for (let p = -1; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * base ** (-(2 * i) / dim);
      cos[(p + 1) * half + i] = Math.cos(a);
      sin[(p + 1) * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/**
 * Float64 rotate-half RoPE of one row at position p (for the naive references): [x1·cos - x2·sin, x2·cos + x1·sin]
 * with angles p·base^(-2i/d); `table` ({@link ropeTable}) supplies them for -1 <= p < its maxPos.
 */
export function ropeRow(row: ArrayLike<number>, p: number, base: number, table?: { cos: Float64Array; sin: Float64Array }): Float64Array {
  const D = row.length;
  const half = D / 2;
  const out = new Float64Array(D);
  const at = (p + 1) * half;
  const tabled = table !== undefined && p >= -1 && at + half <= table.cos.length;
  for (let i = 0; i < half; i++) {
    let c: number;
    let sn: number;
    if (tabled) {
      c = table.cos[at + i];
      sn = table.sin[at + i];
    } else {
      const a = p * base ** (-(2 * i) / D);
      c = Math.cos(a);
      sn = Math.sin(a);
    }
    out[i] = row[i] * c - row[i + half] * sn;
    out[i + half] = row[i + half] * c + row[i] * sn;
  }
  return out;
}

export function densePairs(s: AttentionShapes, causal: boolean): number {
  if (!causal) return s.batch * s.heads * s.queries * s.keys;
  const off = s.keys - s.queries;
  let per = 0;
  for (let i = 0; i < s.queries; i++) per += Math.min(s.keys, off + i + 1);
  return s.batch * s.heads * per;
}

export function checkScale(fn: string, scale: number | undefined, dim: number): number {
  const sc = scale ?? 1 / Math.sqrt(dim);
  if (!Number.isFinite(sc)) throw new ShapeError(`${fn}: options.scale must be a finite number, got ${sc}`);
  return sc;
}

export function checkBlock(fn: string, arg: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v <= 0)) throw new ShapeError(`${fn}: options.${arg} must be a positive integer, got ${v}`);
}

/**
 * Differentiable row gather: rows `idx` of x [rows, d] -> [idx.length, d]; the gradient scatter-adds back. `data` may
 * pass x's values already read (one read serves many gathers). Plain loops: tfjs's gather has no gradient on wasm.
 */
export function gatherRows(x: tf.Tensor2D, idx: Int32Array, data?: Float32Array): tf.Tensor2D {
  const [rows, d] = x.shape;
  for (let i = 0; i < idx.length; i++) {
    if (!(idx[i] >= 0 && idx[i] < rows)) throw new ShapeError(`gatherRows: idx[${i}] = ${idx[i]} is outside the ${rows} rows of x`);
  }
  const f = tf.customGrad(((t: tf.Tensor) => {
    const src = data ?? (t.dataSync() as Float32Array);
    const out = new Float32Array(idx.length * d);
    for (let i = 0; i < idx.length; i++) {
      const from = idx[i] * d;
      const to = i * d;
      for (let e = 0; e < d; e++) out[to + e] = src[from + e];
    }
    return {
      value: tf.tensor2d(out, [idx.length, d]),
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync();
        const acc = new Float32Array(rows * d);
        for (let i = 0; i < idx.length; i++) {
          const to = idx[i] * d;
          const from = i * d;
          for (let e = 0; e < d; e++) acc[to + e] += g[from + e];
        }
        return tf.tensor2d(acc, [rows, d]);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor2D;
}

/**
 * Keys chosen per (batch row, head, query block): every query in block `qb` may attend to
 * `keys[((b * h + head) * nb + qb) * slots + t]` for t < slots (-1 = empty slot). Indices must be distinct per block.
 * `logWeight` (same layout) is added to a slot's score: log of the weight an estimator gives that key (sampling).
 */
export interface KeySelection {
  queryBlock: number;
  slots: number;
  keys: Int32Array;
  logWeight?: Float32Array;
  /** Per query: whether query i (within the block) may use slot t of block `blk`; default every slot. */
  allow?: (blk: number, i: number, t: number) => boolean;
}

/** Gathered floats per piece of `attendSelected`: bounds memory however long the sequence. */
const PIECE_FLOATS = 1 << 22;

/**
 * Attention of each query block over its selected keys: softmax over the selected, visible keys only.
 * Returns the output [b, h, n, e], with `opts.lse` each query's log-sum-exp of its scores [b, h, n, 1] (for merging),
 * and the number of visible pairs scored. Query blocks are processed in pieces so gathered keys stay bounded.
 * Differentiable in q, k and v. With `opts.rope`, q and k are un-rotated: the gathered keys and the queries are rotated
 * (rotate-half RoPE) by their compact positions within each query block's selection (see the module header).
 */
export function attendSelected(
  fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, sel: KeySelection, opts: { scale: number; causal: boolean; lse?: boolean; rope?: { base: number } },
): { output: tf.Tensor4D; lse?: tf.Tensor4D; pairs: number } {
  const s = checkQkv(fn, q, k, v);
  const { batch: B, heads: H, kvHeads: G, queries: N, keys: M, dim: D, valueDim: E } = s;
  const bq = sel.queryBlock;
  const nb = Math.ceil(N / bq);
  const S = sel.slots;
  const X = B * H * nb;
  if (sel.keys.length !== X * S) {
    throw new ShapeError(`${fn}: selection has ${sel.keys.length} entries, expected batch*heads*queryBlocks*slots = ${B}*${H}*${nb}*${S}`);
  }
  const groups = H / G;
  const off = M - N;
  const rows = new Int32Array(X * S);
  const bias = new Float32Array(X * bq * S);
  const allowed = new Float32Array(X * bq * S);
  let pairs = 0;
  for (let blk = 0; blk < X; blk++) {
    const bh = Math.floor(blk / nb);
    const qb = blk % nb;
    const base = (Math.floor(bh / H) * G + Math.floor((bh % H) / groups)) * M;
    for (let t = 0; t < S; t++) {
      const j = sel.keys[blk * S + t];
      if (j >= M) throw new ShapeError(`${fn}: selection names key ${j}, but k has ${M} keys`);
      rows[blk * S + t] = j < 0 ? base : base + j;
      const lw = sel.logWeight ? sel.logWeight[blk * S + t] : 0;
      for (let i = 0; i < bq; i++) {
        const qi = qb * bq + i;
        const ok = j >= 0 && qi < N && (!opts.causal || j <= off + qi) && (!sel.allow || sel.allow(blk, i, t));
        const at = (blk * bq + i) * S + t;
        bias[at] = ok ? lw : MASKED_SCORE;
        allowed[at] = ok ? 1 : 0;
        if (ok) pairs++;
      }
    }
  }
  const per = Math.max(1, Math.floor(PIECE_FLOATS / (S * Math.max(D, E, bq))));
  const pos = opts.rope ? compactPositions(sel, N, M) : undefined;
  const result = tf.tidy(() => {
    const pad = nb * bq - N;
    const qp = pad > 0 ? tf.pad(q, [[0, 0], [0, 0], [0, pad], [0, 0]]) : q;
    const q3 = qp.reshape([X, bq, D]);
    const kFlat = k.reshape([B * G * M, D]) as tf.Tensor2D;
    const vFlat = v.reshape([B * G * M, E]) as tf.Tensor2D;
    const kData = kFlat.dataSync() as Float32Array;
    const vData = vFlat.dataSync() as Float32Array;
    const outs: tf.Tensor[] = [];
    const lses: tf.Tensor[] = [];
    for (let x0 = 0; x0 < X; x0 += per) {
      const x = Math.min(per, X - x0);
      // Each piece in its own scope: without a gradient tape its intermediates are freed before the next piece.
      const [o, lse] = tf.tidy(() => {
        const r = rows.subarray(x0 * S, (x0 + x) * S);
        let kSel = gatherRows(kFlat, r, kData).reshape([x, S, D]) as tf.Tensor3D;
        const vSel = gatherRows(vFlat, r, vData).reshape([x, S, E]);
        let qx = (x === X ? q3 : q3.slice([x0, 0, 0], [x, bq, D])) as tf.Tensor3D;
        if (opts.rope && pos) {
          kSel = rotateRows(kSel, pos.keyPos.subarray(x0 * S, (x0 + x) * S), opts.rope.base);
          qx = rotateRows(qx, pos.queryPos.subarray(x0 * bq, (x0 + x) * bq), opts.rope.base);
        }
        const scores = matmul(qx, kSel, false, true).mul(opts.scale).add(tf.tensor3d(bias.subarray(x0 * bq * S, (x0 + x) * bq * S), [x, bq, S]));
        const l = scores.logSumExp(-1, true);
        const w = tf.exp(scores.sub(l)).mul(tf.tensor3d(allowed.subarray(x0 * bq * S, (x0 + x) * bq * S), [x, bq, S]));
        return [matmul(w, vSel), l];
      });
      outs.push(o);
      lses.push(lse);
    }
    const cat = (ts: tf.Tensor[], w: number) => {
      const o = (ts.length === 1 ? ts[0] : tf.concat(ts, 0)).reshape([B, H, nb * bq, w]);
      return (pad > 0 ? o.slice([0, 0, 0, 0], [B, H, N, w]) : o) as tf.Tensor4D;
    };
    return opts.lse ? [cat(outs, E), cat(lses, 1)] : [cat(outs, E)];
  });
  return { output: result[0] as tf.Tensor4D, lse: result[1] as tf.Tensor4D | undefined, pairs };
}

/** Expand chosen key blocks (indices into blocks of `blockSize` keys) into key indices, clipped at `keys`. */
export function blocksToKeys(blocks: ArrayLike<number>, blockSize: number, keys: number, out: Int32Array, at: number): number {
  let t = at;
  for (let i = 0; i < blocks.length; i++) {
    const kb = blocks[i];
    if (kb < 0) continue;
    for (let j = kb * blockSize; j < Math.min(keys, (kb + 1) * blockSize); j++) out[t++] = j;
  }
  return t;
}

/** Indices of the `k` largest values (ties to the lower index), in descending value order. */
export function topIndices(values: ArrayLike<number>, k: number, candidates?: ArrayLike<number>): number[] {
  const idx = candidates ? Array.from(candidates) : Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b] - values[a] || a - b);
  return idx.slice(0, k);
}

/**
 * Run `f` in a tidy scope and read its tensor's values. (Returning a typed array from tf.tidy itself would make tfjs
 * walk every element of it looking for tensors.)
 */
export function readTidy(f: () => tf.Tensor): Float32Array {
  const t = tf.tidy(f);
  const data = t.dataSync() as Float32Array;
  t.dispose();
  return data;
}

/** A copy of `t` that gradients do not flow through (tfjs has no stopGradient). */
export function constant<T extends tf.Tensor>(t: T): T {
  return tf.tensor(t.dataSync(), t.shape, t.dtype) as T;
}

/** Float64 copy of a tensor's data, for the naive references. */
export function f64(t: tf.Tensor): Float64Array {
  return Float64Array.from(t.dataSync());
}

/**
 * Naive float64 attention of one query over an explicit key list (used by every method's naive reference):
 * returns the output row (zeros when no key is given) and the scores' log-sum-exp.
 */
export function naiveAttendRow(qRow: ArrayLike<number>, keyRows: ArrayLike<number>[], valueRows: ArrayLike<number>[], scale: number, valueDim?: number): { out: Float64Array; lse: number } {
  const E = valueDim ?? (valueRows.length ? valueRows[0].length : 0);
  const out = new Float64Array(E);
  if (!keyRows.length) return { out, lse: -Infinity };
  const sc = keyRows.map((kr) => {
    let dot = 0;
    for (let d = 0; d < qRow.length; d++) dot += qRow[d] * kr[d];
    return dot * scale;
  });
  const mx = Math.max(...sc);
  let z = 0;
  for (const x of sc) z += Math.exp(x - mx);
  sc.forEach((x, j) => {
    const w = Math.exp(x - mx) / z;
    for (let e = 0; e < E; e++) out[e] += w * valueRows[j][e];
  });
  return { out, lse: mx + Math.log(z) };
}

/** Row accessor for a float64 copy of a [b, heads, len, dim] tensor. */
export function rowsOf(data: Float64Array, shape: readonly number[]): (b: number, h: number, i: number) => Float64Array {
  const [, H, L, D] = shape;
  return (b, h, i) => data.subarray(((b * H + h) * L + i) * D, ((b * H + h) * L + i + 1) * D);
}

type Rows = (b: number, h: number, i: number) => Float64Array;

/** Float64 row accessors for q, k and v [b, heads, len, dim], the start of every naive reference. */
export function qkvRows(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): { q: Rows; k: Rows; v: Rows } {
  return { q: rowsOf(f64(q), q.shape), k: rowsOf(f64(k), k.shape), v: rowsOf(f64(v), v.shape) };
}

/**
 * Naive block-sparse attention (the reference HiP and LongHeads share): query i of head h attends, with an exact
 * float64 softmax, to the keys of the blocks `blocksOf(b, h, i)` picks (block c holds keys [c·size, (c+1)·size)),
 * only to keys at or before its own position when `causal`. With `rope`, q and k are un-rotated and are rotated in
 * float64 by their compact positions: a key's rank among all the keys of the query's blocks, the query's the rank of
 * the last of those keys at or before it. Returns the output [b, h, q, e].
 */
export function naiveAttendBlocks(
  s: AttentionShapes,
  rows: { q: Rows; k: Rows; v: Rows },
  blocksOf: (b: number, h: number, i: number) => Iterable<number>,
  blockSize: number,
  scale: number,
  causal: boolean,
  rope?: { base: number },
): Float64Array {
  const groups = s.heads / s.kvHeads;
  const off = s.keys - s.queries;
  const output = new Float64Array(s.batch * s.heads * s.queries * s.valueDim);
  const table = rope ? ropeTable(s.keys, s.dim, rope.base) : undefined;
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      const g = Math.floor(h / groups);
      for (let i = 0; i < s.queries; i++) {
        const all: number[] = [];
        for (const c of blocksOf(b, h, i)) {
          for (let j = c * blockSize; j < Math.min(s.keys, (c + 1) * blockSize); j++) all.push(j);
        }
        all.sort((x, y) => x - y);
        const keys = all.filter((j) => !causal || j <= off + i);
        let qRow: ArrayLike<number> = rows.q(b, h, i);
        let keyRows: ArrayLike<number>[] = keys.map((j) => rows.k(b, g, j));
        if (rope) {
          const rank = new Map(all.map((j, r) => [j, r]));
          let qPos = -1;
          all.forEach((j, r) => {
            if (j <= off + i) qPos = r;
          });
          qRow = ropeRow(qRow, qPos, rope.base, table);
          keyRows = keys.map((j) => ropeRow(rows.k(b, g, j), rank.get(j)!, rope.base, table));
        }
        const { out } = naiveAttendRow(qRow, keyRows, keys.map((j) => rows.v(b, g, j)), scale);
        output.set(out, ((b * s.heads + h) * s.queries + i) * s.valueDim);
      }
    }
  }
  return output;
}

/**
 * Float64 building blocks of the naive references every sparse method has beside its fast path: row accessors, exact
 * softmax attention of one query over an explicit key list, and block-sparse attention over chosen key blocks.
 *
 * Shape legend: b = batch, h = query heads, g = kv heads, n = queries, m = keys, d = head dim, e = value dim,
 * nb = query blocks (ceil(n / bq)), s = key slots per query block.
 *   q [b, h, n, d], k [b, g, m, d], v [b, g, m, e] -> output [b, h, n, e]
 * Queries are end-aligned with keys (query i sits at position m - n + i), as in `sdpa`.
 */
import * as tf from '@tensorflow/tfjs';
import type { AttentionShapes } from '../../attention/dense.js';
import { naiveAttention } from '../../attention/naive.js';
import * as masks from '../../masks/index.js';
import { positionRange, rope } from '../../positional/rope.js';
import { ropeRow, ropeTable } from './compact-positions.js';

/** Float64 copy of a tensor's data, for the naive references. */
export function f64(t: tf.Tensor): Float64Array {
  return Float64Array.from(t.dataSync());
}

/**
 * Naive float64 attention of one query over an explicit key list (used by every method's naive reference):
 * returns the output row (zeros when no key is given) and the scores' log-sum-exp.
 */
export function naiveAttendRow(
  qRow: ArrayLike<number>,
  keyRows: ArrayLike<number>[],
  valueRows: ArrayLike<number>[],
  scale: number,
  valueDim?: number,
): { out: Float64Array; lse: number } {
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
export function rowsOf(
  data: Float64Array,
  shape: readonly number[],
): (b: number, h: number, i: number) => Float64Array {
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
        const { out } = naiveAttendRow(
          qRow,
          keyRows,
          keys.map((j) => rows.v(b, g, j)),
          scale,
        );
        output.set(out, ((b * s.heads + h) * s.queries + i) * s.valueDim);
      }
    }
  }
  return output;
}

/**
 * Float64 dense causal attention on q and k rotated (RoPE, `base`) at their absolute positions: what compact positions
 * reduce to when every key is selected.
 */
export function denseAtAbsolutePositions(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, base = 10000): Float64Array {
  const [n, m] = [q.shape[2] as number, k.shape[2] as number];
  const [qr, kr] = tf.tidy(() => [rope(q, positionRange(m - n, n), { base }), rope(k, positionRange(0, m), { base })]);
  const dense = (t: tf.Tensor) => ({ data: t.dataSync(), shape: t.shape });
  const out = naiveAttention(dense(qr), dense(kr), dense(v), { mask: masks.causal() }).output;
  tf.dispose([qr, kr]);
  return out;
}

/**
 * Compact rotary positions for a key selection.
 *
 * The training-free methods (LongHeads, HiP, and Landmark at inference) can take q and k without rotary embedding and
 * rotate them themselves after choosing keys, as LongHeads does (Lu et al. 2024, https://arxiv.org/abs/2402.10685) to
 * run past the trained length. Within one query block's selection, a selected key's position is its rank among the
 * block's selected keys sorted by key index (the chosen chunks laid out consecutively in their original order, the
 * local chunk last); a query's position is the rank of the last selected key at or before it, so its own key, when
 * selected, sits at distance 0 and no query sees a distance beyond its selection's size. Causality is unchanged.
 * With every key selected, compact positions are the absolute positions 0..m-1 (queries at m - n + i).
 *
 * Fast path: `compactPositions` + `rotateRows` (float32 tensors, float64 angles); naive references: `ropeRow` (float64,
 * one row) with `ropeTable`.
 */
import * as tf from '@tensorflow/tfjs';
import { applyRope, ropeCosSin } from '../../positional/rope.js';

/**
 * Compact positions of a selection (see the module header): keyPos[blk * slots + t] for each slot (0 for an empty
 * one) and queryPos[blk * queryBlock + i] for each query of the block (-1 when no selected key is at or before it;
 * 0 for padding queries past `queries`). Queries are end-aligned: query qi sits at absolute position keys - queries + qi.
 */
export function compactPositions(
  sel: { queryBlock: number; slots: number; keys: Int32Array },
  queries: number,
  keys: number,
): { keyPos: Int32Array; queryPos: Int32Array } {
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
export function ropeRow(
  row: ArrayLike<number>,
  p: number,
  base: number,
  table?: { cos: Float64Array; sin: Float64Array },
): Float64Array {
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

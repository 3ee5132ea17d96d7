/**
 * Attention restricted to a key selection: the step every block-selecting method (HiP, Seer, LongHeads, sink + window,
 * HyperAttention's sorted blocks) ends with, plus the helpers that turn chosen key blocks into a selection.
 *
 * Shape legend: b = batch, h = query heads, g = kv heads, n = queries, m = keys, d = head dim, e = value dim,
 * nb = query blocks (ceil(n / bq)), s = key slots per query block.
 *   q [b, h, n, d], k [b, g, m, d], v [b, g, m, e] -> output [b, h, n, e]
 * Queries are end-aligned with keys (query i sits at position m - n + i), as in `sdpa`.
 */
import * as tf from '@tensorflow/tfjs';
import { checkQkv, MASKED_SCORE } from '../../attention/dense.js';
import { matmul } from '../../backend/ops.js';
import { ShapeError } from '../../util/shapes.js';
import { compactPositions, rotateRows } from './compact-positions.js';
import { gatherRows } from './gather.js';

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
  fn: string,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  sel: KeySelection,
  opts: { scale: number; causal: boolean; lse?: boolean; rope?: { base: number } },
): { output: tf.Tensor4D; lse?: tf.Tensor4D; pairs: number } {
  const s = checkQkv(fn, q, k, v);
  const { batch: B, heads: H, kvHeads: G, queries: N, keys: M, dim: D, valueDim: E } = s;
  const bq = sel.queryBlock;
  const nb = Math.ceil(N / bq);
  const S = sel.slots;
  const X = B * H * nb;
  if (sel.keys.length !== X * S) {
    throw new ShapeError(
      `${fn}: selection has ${sel.keys.length} entries, expected batch*heads*queryBlocks*slots = ${B}*${H}*${nb}*${S}`,
    );
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
    const qp =
      pad > 0
        ? tf.pad(q, [
            [0, 0],
            [0, 0],
            [0, pad],
            [0, 0],
          ])
        : q;
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
        const scores = matmul(qx, kSel, false, true)
          .mul(opts.scale)
          .add(tf.tensor3d(bias.subarray(x0 * bq * S, (x0 + x) * bq * S), [x, bq, S]));
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
export function blocksToKeys(
  blocks: ArrayLike<number>,
  blockSize: number,
  keys: number,
  out: Int32Array,
  at: number,
): number {
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
 * The selection that keeps key blocks: `blocks[x]` (indices of blocks of `blockSize` keys, clipped at `keys`) for
 * each (b, h, query block) x, with as many slots as the largest choice needs.
 */
export function blockSelection(blocks: number[][], blockSize: number, keys: number, queryBlock: number): KeySelection {
  const slots = Math.max(1, ...blocks.map((bl) => bl.length)) * blockSize;
  const out = new Int32Array(blocks.length * slots).fill(-1);
  blocks.forEach((bl, x) => blocksToKeys(bl, blockSize, keys, out, x * slots));
  return { queryBlock, slots, keys: out };
}

/**
 * Blocks of `blockSize` keys visible to query block qb (queries [qb·bq, (qb+1)·bq) end-aligned with the keys): all of
 * them without a causal mask, else those up to the block's last query.
 */
export function visibleBlocks(
  s: { queries: number; keys: number },
  qb: number,
  queryBlock: number,
  blockSize: number,
  causal: boolean,
): number {
  const lastQ = Math.min(s.queries - 1, (qb + 1) * queryBlock - 1);
  return Math.ceil((causal ? Math.min(s.keys, s.keys - s.queries + lastQ + 1) : s.keys) / blockSize);
}

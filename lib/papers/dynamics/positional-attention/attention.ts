/**
 * Positional attention: attention weights that depend on positional encodings only.
 *
 * Paper: Back de Luca, Giapitzakis, Yang, Veličković, Fountoulakis, ICML 2025, "Positional Attention: Expressivity
 * and Learnability of Algorithmic Computation", https://arxiv.org/abs/2410.01686
 *
 * One layer ℓ, head h, with the SAME positional encodings P in every layer:
 *
 *   A^(ℓ,h)  = softmax( (P W_Q^(ℓ,h) + b_Q) (P W_K^(ℓ,h) + b_K)ᵀ / √e )        [n, n], no input in it
 *   attn(X)  = concat_h( A^(ℓ,h) (X W_V^(ℓ,h) + b_V) ) W_O + b_O                the values come from the data
 *
 * A standard layer computes its queries and keys from X instead, so its weights move when the values do; these do not,
 * which is what lets a positional transformer carry a computation learnt on small values to large ones.
 *
 * Shape legend: b batch, n positions, p positional-encoding width, m model width, h heads, e query/key head dim,
 * d value head dim (m / h).
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../backend/ops.js';
import { linear, mergeHeads, splitHeads } from '../../../layers/functional.js';

export interface PositionalAttentionParams {
  wq: tf.Tensor; // [p, h*e]
  wk: tf.Tensor; // [p, h*e]
  bq?: tf.Tensor; // [h*e]
  bk?: tf.Tensor; // [h*e]
  wv: tf.Tensor; // [m, h*d]
  bv?: tf.Tensor; // [h*d]
  wo: tf.Tensor; // [h*d, m]
  bo?: tf.Tensor; // [m]
}

function headDims(fn: string, p: PositionalAttentionParams, P: tf.Tensor, heads: number): { e: number; d: number } {
  if (!Number.isInteger(heads) || heads < 1) throw new RangeError(`${fn}: heads must be an integer >= 1, got ${heads}`);
  if (P.rank !== 2) throw new RangeError(`${fn}: positions P must be [n, p], got shape [${P.shape}]`);
  if (p.wq.rank !== 2 || p.wq.shape[0] !== P.shape[1])
    throw new RangeError(`${fn}: wq must be [p, h*e] with p = ${P.shape[1]} (P's width), got [${p.wq.shape}]`);
  if (p.wk.rank !== 2 || p.wk.shape[0] !== p.wq.shape[0] || p.wk.shape[1] !== p.wq.shape[1])
    throw new RangeError(`${fn}: wk must have wq's shape [${p.wq.shape}], got [${p.wk.shape}]`);
  const qkWidth = p.wq.shape[1] as number;
  const vWidth = p.wv.shape[p.wv.rank - 1] as number;
  if (qkWidth % heads !== 0) throw new RangeError(`${fn}: wq's width ${qkWidth} must be divisible by heads (${heads})`);
  if (vWidth % heads !== 0) throw new RangeError(`${fn}: wv's width ${vWidth} must be divisible by heads (${heads})`);
  return { e: qkWidth / heads, d: vWidth / heads };
}

/** The attention weights A [h, n, n] from P [n, p] alone (rows sum to 1). */
export function positionalWeights(
  P: tf.Tensor2D,
  params: Pick<PositionalAttentionParams, 'wq' | 'wk' | 'bq' | 'bk' | 'wv'>,
  heads: number,
): tf.Tensor3D {
  const { e } = headDims('positionalWeights', params as PositionalAttentionParams, P, heads);
  return tf.tidy(() => {
    const n = P.shape[0];
    const q = linear(P, params.wq, params.bq).reshape([n, heads, e]).transpose([1, 0, 2]); // [h, n, e]
    const k = linear(P, params.wk, params.bk).reshape([n, heads, e]).transpose([1, 0, 2]); // [h, n, e]
    return tf.softmax(matmul(q, k, false, true).mul(1 / Math.sqrt(e)), -1) as tf.Tensor3D; // [h, n, n]
  });
}

/**
 * Positional multi-head attention: x [b, n, m] -> [b, n, m]; the weights come from P [n, p] (see the header), the
 * values from x. `weights` gives them back too ([h, n, n], shared by every row of the batch).
 */
export function positionalAttention(
  x: tf.Tensor3D,
  P: tf.Tensor2D,
  params: PositionalAttentionParams,
  heads: number,
): { output: tf.Tensor3D; weights: tf.Tensor3D } {
  const fn = 'positionalAttention';
  const { d } = headDims(fn, params, P, heads);
  if (x.rank !== 3) throw new RangeError(`${fn}: x must be [b, n, m], got shape [${x.shape}]`);
  const [b, n, m] = x.shape;
  if (n !== P.shape[0]) throw new RangeError(`${fn}: x has ${n} positions but P has ${P.shape[0]} rows`);
  if (params.wv.shape[0] !== m) throw new RangeError(`${fn}: wv must be [m = ${m}, h*d], got [${params.wv.shape}]`);
  return tf.tidy(() => {
    const weights = positionalWeights(P, params, heads); // [h, n, n]
    const v = splitHeads(linear(x, params.wv, params.bv), heads, d); // [b, h, n, d]
    // A is the same for every row: one batched matmul over heads, the batch folded into the value columns.
    const vh = v.transpose([1, 2, 0, 3]).reshape([heads, n, b * d]); // [h, n, b*d]
    const z = matmul(weights, vh).reshape([heads, n, b, d]).transpose([2, 0, 1, 3]); // [b, h, n, d]
    const output = linear(mergeHeads(z), params.wo, params.bo) as tf.Tensor3D; // [b, n, m]
    return { output, weights };
  });
}

/** Float64 arrays (row-major) of a {@link PositionalAttentionParams}; biases may be left out. */
export interface PositionalAttentionArrays {
  wq: ArrayLike<number>;
  wk: ArrayLike<number>;
  bq?: ArrayLike<number>;
  bk?: ArrayLike<number>;
  wv: ArrayLike<number>;
  bv?: ArrayLike<number>;
  wo: ArrayLike<number>;
  bo?: ArrayLike<number>;
}

/**
 * The naive float64 reference of {@link positionalAttention}: plain loops over row-major arrays. x is [b, n, m],
 * P is [n, p]; e and d follow from the weights' sizes. Returns output [b, n, m] and weights [h, n, n].
 */
export function positionalAttentionReference(
  x: ArrayLike<number>,
  [b, n, m]: [number, number, number],
  P: ArrayLike<number>,
  p: number,
  w: PositionalAttentionArrays,
  heads: number,
): { output: Float64Array; weights: Float64Array } {
  const e = w.wq.length / p / heads;
  const d = w.wv.length / m / heads;
  const he = heads * e;
  const hd = heads * d;
  const proj = (W: ArrayLike<number>, bias: ArrayLike<number> | undefined, i: number, c: number) => {
    let s = bias ? bias[c] : 0;
    for (let j = 0; j < p; j++) s += P[i * p + j] * W[j * he + c];
    return s;
  };
  const weights = new Float64Array(heads * n * n);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < n; i++) {
      const scores = new Float64Array(n);
      let max = -Infinity;
      for (let k = 0; k < n; k++) {
        let s = 0;
        for (let c = h * e; c < (h + 1) * e; c++) s += proj(w.wq, w.bq, i, c) * proj(w.wk, w.bk, k, c);
        scores[k] = s / Math.sqrt(e);
        max = Math.max(max, scores[k]);
      }
      let total = 0;
      for (let k = 0; k < n; k++) total += scores[k] = Math.exp(scores[k] - max);
      for (let k = 0; k < n; k++) weights[(h * n + i) * n + k] = scores[k] / total;
    }
  }
  const output = new Float64Array(b * n * m);
  for (let r = 0; r < b; r++) {
    const v = new Float64Array(n * hd);
    for (let k = 0; k < n; k++)
      for (let c = 0; c < hd; c++) {
        let s = w.bv ? w.bv[c] : 0;
        for (let a = 0; a < m; a++) s += x[(r * n + k) * m + a] * w.wv[a * hd + c];
        v[k * hd + c] = s;
      }
    for (let i = 0; i < n; i++) {
      const z = new Float64Array(hd);
      for (let c = 0; c < hd; c++) {
        const h = Math.floor(c / d);
        for (let k = 0; k < n; k++) z[c] += weights[(h * n + i) * n + k] * v[k * hd + c];
      }
      for (let o = 0; o < m; o++) {
        let s = w.bo ? w.bo[o] : 0;
        for (let c = 0; c < hd; c++) s += z[c] * w.wo[c * m + o];
        output[(r * n + i) * m + o] = s;
      }
    }
  }
  return { output, weights };
}

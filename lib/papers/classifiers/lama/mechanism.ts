/**
 * Multi-head attention pooling of encoder states into a sentence matrix: LAMA's low-rank bilinear attention against a
 * global context vector, and Lin et al.'s structured self-attention (one parameter set for all m heads, but full
 * rank) as its baseline, each with a float64 reference.
 *
 * LAMA (Mehta, Rangwala, Ramakrishnan 2019, "Low Rank Factorization for Compact Multi-Head Self-Attention",
 * https://arxiv.org/abs/1912.00835; no official code found). The m attention distributions come from one low-rank
 * bilinear pooling between each state h_t and a global context vector g:
 *
 *   g       = (1 / n) Σ_t h_t                          (mean over the sentence's words; our reading of "global
 *                                                       context vector": the paper's exact g is not verified here)
 *   s_{t,j} = P_jᵀ ( (Uᵀ h_t) ∘ (Vᵀ g) )               U, V [d, r], P [r, m], r the rank
 *   A_{j,·} = softmax_t(s_{·,j}) over the words,       M = A H [m, d]
 *
 * Structured self-attention (Lin et al. 2017, "A Structured Self-attentive Sentence Embedding",
 * https://arxiv.org/abs/1703.03130): A = softmax(W₂ tanh(W₁ Hᵀ)), W₁ [d_a, d], W₂ [m, d_a], M = A H, and the penalty
 * ‖A Aᵀ − I‖²_F that pushes the heads apart. Stored here as w1 [d, d_a], w2 [d_a, m] (x · w convention).
 *
 * Attention parameters: LAMA 2·d·r + r·m; structured d·d_a + d_a·m (plus nothing per head in either: the heads share
 * U, V or W₁; per head only P_j or a row of W₂).
 *
 * Shape legend: b sentences, T words (padded), d state size, m heads.
 *   h [b, T, d], mask [b, T], weights [b, m, T], sentence matrix [b, m, d], penalty [] (mean over the batch).
 */
import * as tf from '@tensorflow/tfjs';
import { checkStates, maskedSoftmax, maskedSoftmax64 } from '../text-attention/attention.js';

export interface LamaParams {
  u: tf.Tensor;
  v: tf.Tensor;
  p: tf.Tensor;
}

export interface LamaParams64 {
  d: number;
  r: number;
  m: number;
  u: ArrayLike<number>;
  v: ArrayLike<number>;
  p: ArrayLike<number>;
}

export interface StructuredParams {
  w1: tf.Tensor;
  w2: tf.Tensor;
}

export interface StructuredParams64 {
  d: number;
  da: number;
  m: number;
  w1: ArrayLike<number>;
  w2: ArrayLike<number>;
}

export type MultiHeadPooling = {
  /** Pre-softmax scores [b, m, T]. */
  scores: tf.Tensor3D;
  /** Attention weights [b, m, T] (0 on padding). */
  weights: tf.Tensor3D;
  /** Sentence matrix M = A H [b, m, d]. */
  matrix: tf.Tensor3D;
};

export interface MultiHeadPooling64 {
  scores: Float64Array;
  weights: Float64Array;
  matrix: Float64Array;
}

function checkMatrix(fn: string, arg: string, t: tf.Tensor, rows: number, cols?: number): number {
  if (t.rank !== 2 || t.shape[0] !== rows || (cols !== undefined && t.shape[1] !== cols))
    throw new Error(`${fn}: ${arg} must be [${rows}, ${cols ?? 'n'}], got [${t.shape}]`);
  return t.shape[1] as number;
}

/** Masked softmax over T of scores [b, m, T] with mask [b, T], then M = A H. */
function pool(h: tf.Tensor, mask: tf.Tensor, scores: tf.Tensor3D): MultiHeadPooling {
  const [b, m, T] = scores.shape;
  const weights = maskedSoftmax(scores, tf.tile(mask.reshape([b, 1, T]), [1, m, 1])) as tf.Tensor3D;
  return { scores, weights, matrix: tf.matMul(weights, h) as tf.Tensor3D };
}

/** LAMA: m attention distributions from one rank-r bilinear pooling against the sentence's mean state. */
export function lamaAttention(h: tf.Tensor, mask: tf.Tensor, p: LamaParams): MultiHeadPooling {
  const fn = 'lamaAttention';
  const [b, T, d] = checkStates(fn, h, mask);
  const r = checkMatrix(fn, 'u', p.u, d);
  checkMatrix(fn, 'v', p.v, d, r);
  const m = checkMatrix(fn, 'p', p.p, r);
  return tf.tidy(() => {
    const n = tf.sum(mask, 1, true); // [b, 1]
    const g = tf.div(tf.sum(tf.mul(h, mask.reshape([b, T, 1])), 1), n); // [b, d]
    const gv = tf.matMul(g, p.v); // [b, r]
    const hu = tf.matMul(h.reshape([b * T, d]), p.u).reshape([b, T, r]);
    const joint = tf.mul(hu, gv.reshape([b, 1, r])); // [b, T, r]
    const s = tf.matMul(joint.reshape([b * T, r]), p.p).reshape([b, T, m]);
    return pool(h, mask, tf.transpose(s, [0, 2, 1]) as tf.Tensor3D);
  });
}

/** Lin et al.'s structured self-attention: A = softmax(W₂ tanh(W₁ Hᵀ)) per head, M = A H. */
export function structuredSelfAttention(h: tf.Tensor, mask: tf.Tensor, p: StructuredParams): MultiHeadPooling {
  const fn = 'structuredSelfAttention';
  const [b, T, d] = checkStates(fn, h, mask);
  const da = checkMatrix(fn, 'w1', p.w1, d);
  const m = checkMatrix(fn, 'w2', p.w2, da);
  return tf.tidy(() => {
    const u = tf.tanh(tf.matMul(h.reshape([b * T, d]), p.w1)); // [bT, da]
    const s = tf.matMul(u, p.w2).reshape([b, T, m]);
    return pool(h, mask, tf.transpose(s, [0, 2, 1]) as tf.Tensor3D);
  });
}

/** Lin et al.'s penalty ‖A Aᵀ − I‖²_F, averaged over the batch; weights [b, m, T]. */
export function redundancyPenalty(weights: tf.Tensor): tf.Scalar {
  if (weights.rank !== 3) throw new Error(`redundancyPenalty: weights must be [b, m, T], got [${weights.shape}]`);
  const [b, m] = weights.shape;
  return tf.tidy(() => {
    const aat = tf.matMul(weights, weights, false, true); // [b, m, m]
    const diff = tf.sub(aat, tf.eye(m).reshape([1, m, m]));
    return tf.div(tf.sum(tf.square(diff)), b) as tf.Scalar;
  });
}

function pool64(
  h: ArrayLike<number>,
  mask: ArrayLike<number>,
  b: number,
  T: number,
  d: number,
  m: number,
  scores: Float64Array,
): MultiHeadPooling64 {
  const weights = new Float64Array(b * m * T);
  const matrix = new Float64Array(b * m * d);
  const rowMask = new Float64Array(T);
  for (let i = 0; i < b; i++) {
    for (let t = 0; t < T; t++) rowMask[t] = mask[i * T + t];
    for (let j = 0; j < m; j++) {
      const a = maskedSoftmax64(scores.subarray((i * m + j) * T, (i * m + j + 1) * T), rowMask, 0, T);
      weights.set(a, (i * m + j) * T);
      for (let t = 0; t < T; t++)
        for (let f = 0; f < d; f++) matrix[(i * m + j) * d + f] += a[t] * h[(i * T + t) * d + f];
    }
  }
  return { scores, weights, matrix };
}

function checkRef(fn: string, h: ArrayLike<number>, mask: ArrayLike<number>, b: number, T: number, d: number): void {
  if (h.length !== b * T * d) throw new Error(`${fn}: h must have b·T·d = ${b * T * d} entries, got ${h.length}`);
  if (mask.length !== b * T) throw new Error(`${fn}: mask must have b·T = ${b * T} entries, got ${mask.length}`);
}

/** Float64 reference of `lamaAttention`: h [b·T·d], mask [b·T]; scores / weights [b·m·T], matrix [b·m·d]. */
export function lamaAttentionReference(
  h: ArrayLike<number>,
  mask: ArrayLike<number>,
  b: number,
  T: number,
  p: LamaParams64,
): MultiHeadPooling64 {
  const { d, r, m } = p;
  checkRef('lamaAttentionReference', h, mask, b, T, d);
  const scores = new Float64Array(b * m * T);
  for (let i = 0; i < b; i++) {
    const g = new Float64Array(d);
    let n = 0;
    for (let t = 0; t < T; t++) {
      if (!(mask[i * T + t] > 0)) continue;
      n++;
      for (let f = 0; f < d; f++) g[f] += h[(i * T + t) * d + f];
    }
    for (let f = 0; f < d; f++) g[f] /= n;
    const gv = new Float64Array(r);
    for (let k = 0; k < r; k++) for (let f = 0; f < d; f++) gv[k] += g[f] * p.v[f * r + k];
    for (let t = 0; t < T; t++) {
      const joint = new Float64Array(r);
      for (let k = 0; k < r; k++) {
        let hu = 0;
        for (let f = 0; f < d; f++) hu += h[(i * T + t) * d + f] * p.u[f * r + k];
        joint[k] = hu * gv[k];
      }
      for (let j = 0; j < m; j++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += joint[k] * p.p[k * m + j];
        scores[(i * m + j) * T + t] = s;
      }
    }
  }
  return pool64(h, mask, b, T, d, m, scores);
}

/** Float64 reference of `structuredSelfAttention` (same layout as `lamaAttentionReference`). */
export function structuredSelfAttentionReference(
  h: ArrayLike<number>,
  mask: ArrayLike<number>,
  b: number,
  T: number,
  p: StructuredParams64,
): MultiHeadPooling64 {
  const { d, da, m } = p;
  checkRef('structuredSelfAttentionReference', h, mask, b, T, d);
  const scores = new Float64Array(b * m * T);
  for (let i = 0; i < b; i++) {
    for (let t = 0; t < T; t++) {
      const u = new Float64Array(da);
      for (let k = 0; k < da; k++) {
        let x = 0;
        for (let f = 0; f < d; f++) x += h[(i * T + t) * d + f] * p.w1[f * da + k];
        u[k] = Math.tanh(x);
      }
      for (let j = 0; j < m; j++) {
        let s = 0;
        for (let k = 0; k < da; k++) s += u[k] * p.w2[k * m + j];
        scores[(i * m + j) * T + t] = s;
      }
    }
  }
  return pool64(h, mask, b, T, d, m, scores);
}

/** Float64 reference of `redundancyPenalty`: weights [b·m·T]. */
export function redundancyPenaltyReference(weights: ArrayLike<number>, b: number, m: number, T: number): number {
  let tot = 0;
  for (let i = 0; i < b; i++)
    for (let j = 0; j < m; j++)
      for (let k = 0; k < m; k++) {
        let dot = 0;
        for (let t = 0; t < T; t++) dot += weights[(i * m + j) * T + t] * weights[(i * m + k) * T + t];
        tot += (dot - (j === k ? 1 : 0)) ** 2;
      }
  return tot / b;
}

/** Attention parameters of each pooling (see the module header). */
export function lamaParamCount(d: number, r: number, m: number): number {
  return 2 * d * r + r * m;
}

export function structuredParamCount(d: number, da: number, m: number): number {
  return d * da + da * m;
}

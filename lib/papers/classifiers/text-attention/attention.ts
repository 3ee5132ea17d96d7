/**
 * Additive (tanh) attention over the states of a text encoder, with padding masked, and its float64 reference.
 *
 * Bahdanau et al. 2015 / Jain & Wallace 2019's text-classification form, the attention of Kitada & Iyatomi 2021
 * (https://arxiv.org/abs/2009.12064, official code shunk031/attention-meets-perturbation, `TanhBCATBase`):
 *
 *   s_t = vᵀ tanh(W h_t + c)          (pre-softmax score; Attention AT perturbs it: s + r)
 *   a   = softmax_t(s + δ) over the words (padding gets weight 0)
 *   z   = Σ_t a_t h_t                 (the sentence vector the classifier reads)
 *
 * Shape legend: b sentences, T words (padded), d state size, k attention size.
 *   h [b, T, d], mask [b, T] (1 word, 0 padding), w [d, k], c [k], v [k], scores / delta / weights [b, T], z [b, d].
 */
import * as tf from '@tensorflow/tfjs';

export interface AdditiveParams {
  w: tf.Tensor;
  c: tf.Tensor;
  v: tf.Tensor;
}

/** The same parameters as float64 arrays (w row-major [d, k]). */
export interface AdditiveParams64 {
  d: number;
  k: number;
  w: ArrayLike<number>;
  c: ArrayLike<number>;
  v: ArrayLike<number>;
}

export type AdditiveOutput = {
  scores: tf.Tensor2D;
  weights: tf.Tensor2D;
  context: tf.Tensor2D;
};

/** A score that exp() sends to 0 in float32, used for padding. */
const MASKED = -1e9;

/** Checks `h` [b, T, d] and `mask` [b, T]; returns [b, T, d]. */
export function checkStates(fn: string, h: tf.Tensor, mask: tf.Tensor): [number, number, number] {
  if (h.rank !== 3) throw new Error(`${fn}: h must be [b, T, d], got shape [${h.shape}]`);
  const [b, T, d] = h.shape;
  if (mask.rank !== 2 || mask.shape[0] !== b || mask.shape[1] !== T)
    throw new Error(`${fn}: mask must be [${b}, ${T}] to match h [${h.shape}], got [${mask.shape}]`);
  return [b, T, d];
}

/**
 * Softmax over the last axis where `mask` is 1; masked entries get weight 0. A row with no word at all is an error of
 * the caller (it would be uniform over padding), so it is not special-cased.
 */
export function maskedSoftmax(scores: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  if (scores.shape.join() !== mask.shape.join())
    throw new Error(`maskedSoftmax: mask must have the shape of scores [${scores.shape}], got [${mask.shape}]`);
  return tf.tidy(() => tf.softmax(tf.add(tf.mul(scores, mask), tf.mul(tf.sub(1, mask), MASKED))));
}

/** Pre-softmax scores s [b, T] = vᵀ tanh(W h_t + c) (padding included: mask them with `maskedSoftmax`). */
export function additiveScores(h: tf.Tensor, p: AdditiveParams): tf.Tensor2D {
  if (h.rank !== 3) throw new Error(`additiveScores: h must be [b, T, d], got shape [${h.shape}]`);
  const [b, T, d] = h.shape;
  if (p.w.rank !== 2 || p.w.shape[0] !== d)
    throw new Error(`additiveScores: w must be [${d}, k] for h [${h.shape}], got [${p.w.shape}]`);
  const k = p.w.shape[1] as number;
  if (p.c.shape.join() !== `${k}`) throw new Error(`additiveScores: c must be [${k}], got [${p.c.shape}]`);
  if (p.v.shape.join() !== `${k}`) throw new Error(`additiveScores: v must be [${k}], got [${p.v.shape}]`);
  return tf.tidy(() => {
    const u = tf.tanh(tf.add(tf.matMul(h.reshape([b * T, d]), p.w), p.c)); // [bT, k]
    return tf.matMul(u, p.v.reshape([k, 1])).reshape([b, T]) as tf.Tensor2D;
  });
}

/** Weights a [b, T] and sentence vectors z [b, d] from scores s [b, T] (plus an optional perturbation δ). */
export function attendWithScores(h: tf.Tensor, mask: tf.Tensor, scores: tf.Tensor, delta?: tf.Tensor): AdditiveOutput {
  const [b, T, d] = checkStates('attendWithScores', h, mask);
  if (scores.shape.join() !== [b, T].join())
    throw new Error(`attendWithScores: scores must be [${b}, ${T}], got [${scores.shape}]`);
  if (delta && delta.shape.join() !== [b, T].join())
    throw new Error(`attendWithScores: delta must be [${b}, ${T}], got [${delta.shape}]`);
  return tf.tidy(() => {
    const s = delta ? tf.add(scores, delta) : scores;
    const weights = maskedSoftmax(s, mask) as tf.Tensor2D;
    const context = tf.matMul(weights.reshape([b, 1, T]), h).reshape([b, d]) as tf.Tensor2D;
    return { scores: tf.clone(scores) as tf.Tensor2D, weights, context };
  });
}

/** Additive attention (see the module header): scores, weights and sentence vectors. */
export function additiveAttention(h: tf.Tensor, mask: tf.Tensor, p: AdditiveParams, delta?: tf.Tensor): AdditiveOutput {
  checkStates('additiveAttention', h, mask);
  return tf.tidy(() => attendWithScores(h, mask, additiveScores(h, p), delta));
}

/** Float64 reference of `additiveAttention`: h [b·T·d], mask [b·T], delta [b·T] row-major. */
export function additiveAttentionReference(
  h: ArrayLike<number>,
  mask: ArrayLike<number>,
  b: number,
  T: number,
  p: AdditiveParams64,
  delta?: ArrayLike<number>,
): { scores: Float64Array; weights: Float64Array; context: Float64Array } {
  const { d, k } = p;
  if (h.length !== b * T * d)
    throw new Error(`additiveAttentionReference: h must have b·T·d = ${b * T * d} entries, got ${h.length}`);
  if (mask.length !== b * T)
    throw new Error(`additiveAttentionReference: mask must have b·T = ${b * T} entries, got ${mask.length}`);
  const scores = new Float64Array(b * T);
  const weights = new Float64Array(b * T);
  const context = new Float64Array(b * d);
  for (let i = 0; i < b; i++) {
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (let j = 0; j < k; j++) {
        let u = p.c[j];
        for (let f = 0; f < d; f++) u += h[(i * T + t) * d + f] * p.w[f * k + j];
        s += p.v[j] * Math.tanh(u);
      }
      scores[i * T + t] = s;
    }
    weights.set(maskedSoftmax64(scores, mask, i * T, T, delta), i * T);
    for (let t = 0; t < T; t++)
      for (let f = 0; f < d; f++) context[i * d + f] += weights[i * T + t] * h[(i * T + t) * d + f];
  }
  return { scores, weights, context };
}

/** Float64 masked softmax of s[off .. off+T) (+ delta), for the references. */
export function maskedSoftmax64(
  s: ArrayLike<number>,
  mask: ArrayLike<number>,
  off: number,
  T: number,
  delta?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(T);
  let m = -Infinity;
  for (let t = 0; t < T; t++) if (mask[off + t] > 0) m = Math.max(m, s[off + t] + (delta ? delta[off + t] : 0));
  let tot = 0;
  for (let t = 0; t < T; t++) {
    if (mask[off + t] > 0) {
      out[t] = Math.exp(s[off + t] + (delta ? delta[off + t] : 0) - m);
      tot += out[t];
    }
  }
  for (let t = 0; t < T; t++) out[t] /= tot;
  return out;
}

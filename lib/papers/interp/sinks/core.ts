/**
 * When attention sink emerges: the sink metric and the attention variants it is compared across.
 *
 * Paper: Gu, Pang, Du, Liu, Zhang, Du, Wang, Lin, 2025 (ICLR), "When Attention Sink Emerges in Language Models: An
 * Empirical View", https://arxiv.org/abs/2410.10781 (code: https://github.com/sail-sg/Attention-Sink).
 *
 * Metric (the paper's Eq. 2, 0-indexed here): the importance of key position k to head (l, h) is the mean attention it
 * receives from the queries that can see it,
 *
 *   α^{l,h}_k = 1/(T − k) · Σ_{t ≥ k} A^{l,h}_{t,k}        (T queries, k = 0 is the first token)
 *
 * and Sink^ε_k is the share (in %) of the (layer, head) pairs with α^{l,h}_k > ε; ε = 0.3 as in the paper.
 *
 * Attention variants (causal self-attention, s = q · kᵀ / √d):
 *   softmax        A = softmax(s)
 *   sigmoid        A = sigmoid(s + b)              no row normalisation (the paper's "sigmoid w/o normalization"; b = 0 in
 *                                                  the official code, our default)
 *   sigmoid-norm   A = sigmoid(s) / (Σ_j sigmoid(s_j) + 1e-8)   (the official code's eps)
 *   kv-bias        softmax over [k*; K] with a learned key k* and value v* per head (the official `kv_bias` config): the
 *                  weights have one extra column 0, the bias slot, seen by every query
 *
 * Shape legend: b batch, h heads, s positions (queries = keys, causal), d head dim.
 *   q, k, v [b, h, s, d]; kBias, vBias [h, d] -> output [b, h, s, d], weights [b, h, s, s] ([b, h, s, 1 + s] with kv-bias)
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../backend/ops.js';
import { fmt, ShapeError } from '../../../util/shapes.js';

export type SinkVariant = 'softmax' | 'sigmoid' | 'sigmoid-norm' | 'kv-bias';
export const SINK_VARIANTS: readonly SinkVariant[] = ['softmax', 'sigmoid', 'sigmoid-norm', 'kv-bias'];

/** The paper's threshold ε for Sink^ε_k. */
export const SINK_EPSILON = 0.3;
/** The official code's eps in the normalised sigmoid's denominator. */
export const SIGMOID_NORM_EPS = 1e-8;

export interface SinkAttentionOptions {
  variant: SinkVariant;
  /** kv-bias: the learned key and value, [h, d] each. */
  kBias?: tf.Tensor;
  vBias?: tf.Tensor;
  /** sigmoid and sigmoid-norm: added to the scores before the sigmoid (default 0, the official code's). */
  sigmoidBias?: number;
}

export interface SinkAttentionResult {
  output: tf.Tensor4D;
  /** [b, h, s, s], or [b, h, s, 1 + s] with kv-bias (column 0 is the bias slot). */
  weights: tf.Tensor4D;
}

function checkQkv(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): [number, number, number, number] {
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    if (t.rank !== 4)
      throw new ShapeError(`${fn}: ${name} must have shape [batch, heads, positions, dim], got ${fmt(t.shape)}`);
  }
  if (!q.shape.every((n, i) => n === k.shape[i] && n === v.shape[i]))
    throw new ShapeError(
      `${fn}: q, k and v must have the same shape (causal self-attention), got q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)}`,
    );
  return q.shape as [number, number, number, number];
}

/** Lower-triangular 0/1 matrix [s, s] (query t sees keys j <= t). */
export function causalOnes(s: number): tf.Tensor2D {
  return tf.linalg.bandPart(tf.ones([s, s]), -1, 0) as tf.Tensor2D;
}

/**
 * Attention weights of one variant (module header), from q and k [b, h, s, d]; causal. With kv-bias the weights have
 * the bias slot as column 0.
 */
export function sinkWeights(q: tf.Tensor, k: tf.Tensor, opts: SinkAttentionOptions): tf.Tensor4D {
  const fn = 'sinkWeights';
  const [, h, s, d] = checkQkv(fn, q, k, k);
  if (!SINK_VARIANTS.includes(opts.variant))
    throw new ShapeError(
      `${fn}: options.variant must be one of ${SINK_VARIANTS.join(', ')}, got '${String(opts.variant)}'`,
    );
  if (opts.variant === 'kv-bias') checkBias(fn, 'kBias', opts.kBias, h, d);
  return tf.tidy(() => {
    const scale = 1 / Math.sqrt(d);
    const allowed = causalOnes(s); // [s, s]
    const scores = matmul(q, k, false, true).mul(scale); // [b, h, s, s]
    if (opts.variant === 'softmax') return tf.softmax(scores.add(allowed.sub(1).mul(1e9))) as tf.Tensor4D;
    if (opts.variant === 'kv-bias') {
      const [b] = q.shape;
      const biasScore = q
        .mul(opts.kBias!.reshape([1, h, 1, d]))
        .sum(-1, true)
        .mul(scale); // [b, h, s, 1]
      const masked = scores.add(allowed.sub(1).mul(1e9));
      return tf.softmax(tf.concat([biasScore.reshape([b, h, s, 1]), masked], 3)) as tf.Tensor4D;
    }
    const sig = tf.sigmoid(scores.add(opts.sigmoidBias ?? 0)).mul(allowed); // [b, h, s, s]
    if (opts.variant === 'sigmoid') return sig as tf.Tensor4D;
    return sig.div(sig.sum(-1, true).add(SIGMOID_NORM_EPS)) as tf.Tensor4D;
  });
}

function checkBias(fn: string, name: string, t: tf.Tensor | undefined, h: number, d: number): void {
  if (t?.rank !== 2 || t.shape[0] !== h || t.shape[1] !== d)
    throw new ShapeError(
      `${fn}: variant 'kv-bias' needs options.${name} of shape [${h}, ${d}] (heads, head dim), got ${t ? fmt(t.shape) : 'nothing'}`,
    );
}

/** weights [b, h, s, s] (or [b, h, s, 1 + s] with vBias [h, d] as the first value) times v [b, h, s, d]. */
export function applyWeights(weights: tf.Tensor, v: tf.Tensor, vBias?: tf.Tensor): tf.Tensor4D {
  return tf.tidy(() => {
    if (!vBias) return matmul(weights, v) as tf.Tensor4D;
    const [b, h, , d] = v.shape;
    const vb = vBias.reshape([1, h, 1, d]).tile([b, 1, 1, 1]);
    return matmul(weights, tf.concat([vb, v], 2)) as tf.Tensor4D;
  });
}

/** Causal self-attention of one variant: output and weights (module header). */
export function sinkAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  opts: SinkAttentionOptions,
): SinkAttentionResult {
  const [, h, , d] = checkQkv('sinkAttention', q, k, v);
  if (opts.variant === 'kv-bias') {
    checkBias('sinkAttention', 'kBias', opts.kBias, h, d);
    checkBias('sinkAttention', 'vBias', opts.vBias, h, d);
  }
  return tf.tidy(() => {
    const weights = sinkWeights(q, k, opts);
    const output = applyWeights(weights, v, opts.variant === 'kv-bias' ? opts.vBias : undefined);
    return { output, weights };
  });
}

/** Float64 reference of {@link sinkAttention} on flat row-major arrays. */
export function sinkAttentionNaive(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  shape: [number, number, number, number],
  opts: { variant: SinkVariant; kBias?: ArrayLike<number>; vBias?: ArrayLike<number>; sigmoidBias?: number },
): { output: Float64Array; weights: Float64Array } {
  const [B, H, S, D] = shape;
  const bias = opts.variant === 'kv-bias' ? 1 : 0;
  const K = S + bias;
  const scale = 1 / Math.sqrt(D);
  const weights = new Float64Array(B * H * S * K);
  const output = new Float64Array(B * H * S * D);
  const at = (b: number, h: number, t: number) => ((b * H + h) * S + t) * D;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let t = 0; t < S; t++) {
        const row = new Float64Array(K);
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let e = 0; e < D; e++) dot += q[at(b, h, t) + e] * k[at(b, h, j) + e];
          row[bias + j] = dot * scale;
        }
        if (bias) {
          let dot = 0;
          for (let e = 0; e < D; e++) dot += q[at(b, h, t) + e] * opts.kBias![h * D + e];
          row[0] = dot * scale;
        }
        const visible = (j: number) => j < bias || j - bias <= t;
        if (opts.variant === 'softmax' || opts.variant === 'kv-bias') {
          let mx = -Infinity;
          for (let j = 0; j < K; j++) if (visible(j)) mx = Math.max(mx, row[j]);
          let z = 0;
          for (let j = 0; j < K; j++) z += visible(j) ? Math.exp(row[j] - mx) : 0;
          for (let j = 0; j < K; j++) row[j] = visible(j) ? Math.exp(row[j] - mx) / z : 0;
        } else {
          let z = 0;
          for (let j = 0; j < K; j++) {
            row[j] = visible(j) ? 1 / (1 + Math.exp(-(row[j] + (opts.sigmoidBias ?? 0)))) : 0;
            z += row[j];
          }
          if (opts.variant === 'sigmoid-norm') for (let j = 0; j < K; j++) row[j] /= z + SIGMOID_NORM_EPS;
        }
        weights.set(row, ((b * H + h) * S + t) * K);
        for (let j = 0; j < K; j++) {
          const val = (e: number) => (j < bias ? opts.vBias![h * D + e] : v[at(b, h, j - bias) + e]);
          for (let e = 0; e < D; e++) output[at(b, h, t) + e] += row[j] * val(e);
        }
      }
  return { output, weights };
}

function checkWeights(fn: string, weights: tf.Tensor): [number, number, number, number] {
  if (weights.rank !== 4 || weights.shape[2] !== weights.shape[3])
    throw new ShapeError(
      `${fn}: weights must have shape [batch, heads, queries, keys] with queries = keys (causal self-attention), got ${fmt(weights.shape)}`,
    );
  return weights.shape as [number, number, number, number];
}

/**
 * Importance α_k of key position `key` to each head: the mean attention from the queries t >= key to it, averaged
 * over the batch. weights [b, h, s, s] -> [h]. (For kv-bias weights, drop the bias slot first: `weights.slice([0, 0,
 * 0, 1])`.)
 */
export function importance(weights: tf.Tensor, key = 0): tf.Tensor1D {
  const fn = 'importance';
  const [, , s] = checkWeights(fn, weights);
  if (!Number.isInteger(key) || key < 0 || key >= s)
    throw new ShapeError(`${fn}: key must be an integer position in [0, ${s - 1}], got ${key}`);
  return tf.tidy(() => weights.slice([0, 0, key, key], [-1, -1, s - key, 1]).mean([0, 2, 3]) as tf.Tensor1D);
}

/** Float64 reference of {@link importance}. */
export function importanceNaive(
  weights: ArrayLike<number>,
  shape: [number, number, number, number],
  key = 0,
): Float64Array {
  const [B, H, S] = shape;
  const out = new Float64Array(H);
  for (let h = 0; h < H; h++) {
    let acc = 0;
    for (let b = 0; b < B; b++) for (let t = key; t < S; t++) acc += weights[((b * H + h) * S + t) * S + key];
    out[h] = acc / (B * (S - key));
  }
  return out;
}

/**
 * The paper's "proxy attention scores" for unnormalised kernels: each row divided by its sum, so that importances of
 * sigmoid attention without normalisation are on the same [0, 1] scale as softmax's. weights [b, h, s, k] -> same.
 */
export function proxyWeights(weights: tf.Tensor): tf.Tensor4D {
  if (weights.rank !== 4)
    throw new ShapeError(
      `proxyWeights: weights must have shape [batch, heads, queries, keys], got ${fmt(weights.shape)}`,
    );
  return tf.tidy(() => weights.div(weights.sum(-1, true).add(SIGMOID_NORM_EPS)) as tf.Tensor4D);
}

/**
 * Sink^ε: the share in % of (layer, head) pairs whose importance exceeds ε. importances [layer][head] (e.g. one
 * {@link importance} per layer, read back).
 */
export function sinkRate(importances: readonly (readonly number[])[], epsilon = SINK_EPSILON): number {
  const fn = 'sinkRate';
  if (!(epsilon >= 0 && epsilon <= 1)) throw new RangeError(`${fn}: epsilon must be in [0, 1], got ${epsilon}`);
  const all = importances.flat();
  if (all.length === 0) throw new RangeError(`${fn}: importances is empty (expected [layer][head] numbers)`);
  const bad = all.find((x) => !Number.isFinite(x));
  if (bad !== undefined) throw new RangeError(`${fn}: importances must be finite numbers, got ${bad}`);
  return (100 * all.filter((x) => x > epsilon).length) / all.length;
}

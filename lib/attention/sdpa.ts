/**
 * Scaled dot-product attention (Vaswani et al., 2017, "Attention Is All You Need", https://arxiv.org/abs/1706.03762):
 *
 *   Attention(Q, K, V) = normalise(Q Kᵀ · scale + bias, mask) V
 *
 * Shape legend: b = batch, h = query heads, g = kv heads (h % g == 0; grouped-query when g < h), q = queries,
 * k = keys, d = head dim, e = value dim.
 *   q [b, h, q, d], k [b, g, k, d], v [b, g, k, e] -> output [b, h, q, e], weights [b, h, q, k]
 *
 * Scoring variants:
 *   softmax       w = softmax_k(s) over visible keys; a row with no visible key gives zeros (not NaN).
 *   sigmoid       w = sigmoid(s + sigmoidBias), no normalisation (Ramapuram et al., 2024, "Theory, Analysis, and Best
 *                 Practices for Sigmoid Self-Attention"); sigmoidBias defaults to -log(keys).
 *   softmax-sink  w_j = exp(s_j) / (exp(sink_h) + Σ_j exp(s_j)): a learnable per-head logit that can absorb attention
 *                 (the "attention sink" as an explicit parameter, e.g. Xiao et al., 2023; OpenAI gpt-oss).
 */
import type * as tf from '@tensorflow/tfjs';
import { fmt, ShapeError } from '../util/shapes.js';
import { checkSdpa, denseChecked, type SdpaOptions, type SdpaResult } from './dense.js';
import { flash, flashSupports, onlyBackendMissing } from './flash.js';

export type { AttentionShapes, Scoring, SdpaOptions, SdpaResult } from './dense.js';

/**
 * Which implementation runs: 'auto' (default) takes the fused kernel whenever `flashSupports` lists no reason and the
 * dense path otherwise; 'dense' always materialises the scores; 'flash' insists on the fused kernel and throws with
 * every reason it cannot run (on a backend without native kernels `flash` computes the same function densely).
 */
export type AttentionPath = 'auto' | 'dense' | 'flash';

/** Scaled dot-product attention; see the module header for shapes and options. */
export function sdpa(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: SdpaOptions & { returnWeights: true; path?: AttentionPath },
): SdpaResult;
export function sdpa(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options?: SdpaOptions & { path?: AttentionPath },
): tf.Tensor4D;
export function sdpa(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: SdpaOptions & { path?: AttentionPath } = {},
): tf.Tensor4D | SdpaResult {
  const fn = 'sdpa';
  const path = options.path ?? 'auto';
  if (path !== 'auto' && path !== 'dense' && path !== 'flash') {
    throw new ShapeError(`${fn}: options.path must be 'auto', 'dense' or 'flash', got '${String(path)}'`);
  }
  const { s, scale } = checkSdpa(fn, q, k, v, options);
  if (path !== 'dense') {
    // The fused kernel (one pass, online softmax, no [q, k] matrix) whenever it supports these arguments.
    const reasons = flashSupports(q, k, v, options);
    if (reasons.length === 0 || (path === 'flash' && onlyBackendMissing(reasons)))
      return flash(q, k, v, { mask: options.mask as never, scale });
    if (path === 'flash') {
      throw new ShapeError(
        `${fn}: path 'flash' cannot run q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)}: ${reasons.join('; ')}`,
      );
    }
  }
  return denseChecked(fn, q, k, v, s, scale, options);
}

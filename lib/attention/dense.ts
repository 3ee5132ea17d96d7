/**
 * The dense attention path and the argument checks every attention path shares. `sdpa` (sdpa.ts) dispatches between
 * this path and the fused kernel (flash.ts); both import from here, never from each other or from sdpa.
 *
 *   Attention(Q, K, V) = normalise(Q Kᵀ · scale + bias, mask) V     (the [q, k] score matrix is materialised)
 *
 * Shape legend: b = batch, h = query heads, g = kv heads (h % g == 0; grouped-query when g < h), q = queries,
 * k = keys, d = head dim, e = value dim.
 *   q [b, h, q, d], k [b, g, k, d], v [b, g, k, e] -> output [b, h, q, e], weights [b, h, q, k]
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../backend/ops.js';
import { Mask } from '../masks/index.js';
import { assertBroadcastable, assertNonEmpty, assertRank, fmt, ShapeError } from '../util/shapes.js';

export type Scoring = 'softmax' | 'sigmoid' | 'softmax-sink';

export interface SdpaOptions {
  /** A typed mask, or a bool/0-1 tensor broadcastable to [b, h, q, k] (true/1 = may attend). */
  mask?: Mask | tf.Tensor;
  /** Multiplies the scores; default 1/sqrt(d). */
  scale?: number;
  /** Additive score bias broadcastable to [b, h, q, k] (ALiBi, relative position, ...). */
  bias?: tf.Tensor;
  scoring?: Scoring;
  /** softmax-sink: one logit per query head, shape [h]. */
  sinkLogit?: tf.Tensor;
  /** sigmoid: added to the scores before the sigmoid; default -log(keys). */
  sigmoidBias?: number;
  /** Also return the attention weights [b, h, q, k]. */
  returnWeights?: boolean;
}

export interface SdpaResult {
  output: tf.Tensor4D;
  weights: tf.Tensor4D;
}

/** Large negative score for hidden keys: exp underflows to exactly 0 in float32, unlike -Infinity it never makes NaN. */
export const MASKED_SCORE = -1e9;

export interface AttentionShapes {
  batch: number;
  heads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  dim: number;
  valueDim: number;
}

/** Validate q/k/v for attention and return their named sizes. Errors name the function, the argument and both shapes. */
export function checkQkv(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): AttentionShapes {
  assertRank(fn, 'q', q, 4, '[batch, heads, queries, dim]');
  assertRank(fn, 'k', k, 4, '[batch, kvHeads, keys, dim]');
  assertRank(fn, 'v', v, 4, '[batch, kvHeads, keys, valueDim]');
  assertNonEmpty(fn, 'q', q);
  assertNonEmpty(fn, 'k', k);
  assertNonEmpty(fn, 'v', v);
  const [batch, heads, queries, dim] = q.shape as [number, number, number, number];
  const [kb, kvHeads, keys, kd] = k.shape as [number, number, number, number];
  if (kb !== batch)
    throw new ShapeError(`${fn}: q has shape ${fmt(q.shape)} but k has ${fmt(k.shape)}; batch sizes must match`);
  if (kd !== dim)
    throw new ShapeError(`${fn}: q has shape ${fmt(q.shape)} but k has ${fmt(k.shape)}; head dims must match`);
  if (v.shape[0] !== batch || v.shape[1] !== kvHeads || v.shape[2] !== keys) {
    throw new ShapeError(
      `${fn}: k has shape ${fmt(k.shape)} but v has ${fmt(v.shape)}; batch, kvHeads and keys must match`,
    );
  }
  if (heads % kvHeads !== 0) {
    throw new ShapeError(
      `${fn}: q has ${heads} heads and k has ${kvHeads}; kvHeads must divide heads (grouped-query attention)`,
    );
  }
  return { batch, heads, kvHeads, queries, keys, dim, valueDim: v.shape[3] as number };
}

/** Repeat each kv head heads/kvHeads times along axis 1: [b, g, k, d] -> [b, h, k, d]. */
export function repeatKv(x: tf.Tensor4D, groups: number): tf.Tensor4D {
  if (groups === 1) return x;
  return tf.tidy(() => {
    const [b, g, s, d] = x.shape;
    // Rank-4 tile: tfjs has no tile gradient above rank 4.
    return x
      .reshape([b, g, 1, s * d])
      .tile([1, 1, groups, 1])
      .reshape([b, g * groups, s, d]) as tf.Tensor4D;
  });
}

/** The mask as a float 0/1 tensor broadcastable to [b, h, q, k], or null. */
export function maskTensor(fn: string, mask: Mask | tf.Tensor | undefined, s: AttentionShapes): tf.Tensor | null {
  if (mask === undefined) return null;
  const target = [s.batch, s.heads, s.queries, s.keys];
  if (mask instanceof Mask) {
    const bs = mask.batchSize;
    if (bs !== undefined && bs !== s.batch) {
      throw new ShapeError(`${fn}: mask ${mask.describe()} is for batch ${bs}, but q has batch ${s.batch}`);
    }
    return tf.tidy(() => mask.materialize(s.queries, s.keys).toFloat());
  }
  assertBroadcastable(fn, 'mask', mask.shape, target, '[batch, heads, queries, keys]');
  return mask.dtype === 'float32' ? mask.clone() : mask.toFloat();
}

/** Attention weights [b, h, q, k] from raw scores (already scaled and biased) and a 0/1 mask. */
export function normalise(
  fn: string,
  scores: tf.Tensor,
  allowed: tf.Tensor | null,
  s: AttentionShapes,
  options: Pick<SdpaOptions, 'scoring' | 'sinkLogit' | 'sigmoidBias'>,
): tf.Tensor {
  const scoring = options.scoring ?? 'softmax';
  const masked = allowed ? scores.add(allowed.sub(1).mul(-MASKED_SCORE)) : scores;
  let w: tf.Tensor;
  if (scoring === 'softmax') {
    w = tf.softmax(masked);
  } else if (scoring === 'sigmoid') {
    w = tf.sigmoid(masked.add(options.sigmoidBias ?? -Math.log(s.keys)));
  } else if (scoring === 'softmax-sink') {
    const sink = options.sinkLogit;
    if (!sink) throw new ShapeError(`${fn}: scoring 'softmax-sink' needs options.sinkLogit of shape [${s.heads}]`);
    if (sink.rank !== 1 || sink.shape[0] !== s.heads) {
      throw new ShapeError(
        `${fn}: sinkLogit must have shape [${s.heads}] (one per query head), but has ${fmt(sink.shape)}`,
      );
    }
    const sinkCol = sink.reshape([1, s.heads, 1, 1]).tile([s.batch, 1, s.queries, 1]);
    w = tf.softmax(tf.concat([sinkCol, masked], 3)).slice([0, 0, 0, 1], [-1, -1, -1, s.keys]);
  } else {
    throw new ShapeError(`${fn}: scoring must be 'softmax', 'sigmoid' or 'softmax-sink', got '${String(scoring)}'`);
  }
  return allowed ? w.mul(allowed) : w;
}

/**
 * Dense attention: scores, mask, normalisation and the weighted sum as separate ops (every scoring variant, bias and
 * the weights). Arguments are checked as in `sdpa`; see sdpa.ts for the options.
 */
export function dense(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: SdpaOptions & { returnWeights: true },
): SdpaResult;
export function dense(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options?: SdpaOptions): tf.Tensor4D;
export function dense(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: SdpaOptions = {}): tf.Tensor4D | SdpaResult {
  const { s, scale } = checkSdpa('dense', q, k, v, options);
  return denseChecked('dense', q, k, v, s, scale, options);
}

/** The checks `sdpa` and `dense` share: shapes, bias, scale and a typed mask's fit. */
export function checkSdpa(
  fn: string,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: SdpaOptions,
): { s: AttentionShapes; scale: number } {
  const s = checkQkv(fn, q, k, v);
  if (options.bias)
    assertBroadcastable(
      fn,
      'bias',
      options.bias.shape,
      [s.batch, s.heads, s.queries, s.keys],
      '[batch, heads, queries, keys]',
    );
  const scale = options.scale ?? 1 / Math.sqrt(s.dim);
  if (!Number.isFinite(scale)) throw new ShapeError(`${fn}: scale must be a finite number, got ${scale}`);
  if (options.mask instanceof Mask)
    options.mask.assertFits(s.queries, s.keys, `${fn}: mask ${options.mask.describe()}`);
  return { s, scale };
}

export function denseChecked(
  fn: string,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  s: AttentionShapes,
  scale: number,
  options: SdpaOptions,
): tf.Tensor4D | SdpaResult {
  const result = tf.tidy(() => {
    const groups = s.heads / s.kvHeads;
    const kk = repeatKv(k as tf.Tensor4D, groups);
    const vv = repeatKv(v as tf.Tensor4D, groups);
    let scores = matmul(q, kk, false, true).mul(scale); // [b, h, q, k]
    if (options.bias) scores = scores.add(options.bias);
    const allowed = maskTensor(fn, options.mask, s);
    const weights = normalise(fn, scores, allowed, s, options) as tf.Tensor4D; // [b, h, q, k]
    const output = matmul(weights, vv) as tf.Tensor4D; // [b, h, q, e]
    return options.returnWeights ? [output, weights] : [output];
  });
  return options.returnWeights
    ? { output: result[0] as tf.Tensor4D, weights: result[1] as tf.Tensor4D }
    : (result[0] as tf.Tensor4D);
}

/**
 * The dense attention path and the argument checks every attention path shares. `sdpa` (sdpa.ts) dispatches between
 * this path and the fused kernel (flash.ts); both import from here, never from each other or from sdpa.
 *
 *   Attention(Q, K, V) = normalise(Q Kᵀ · scale + bias, mask) V     (the [q, k] score matrix is materialised)
 *
 * Shape legend: b = batch, h = query heads, g = kv heads (h % g == 0; grouped-query when g < h), q = queries,
 * k = keys, d = head dim, e = value dim.
 *   q [b, h, q, d], k [b, g, k, d], v [b, g, k, e] -> output [b, h, q, e], weights [b, h, q, k]
 *
 * Masks are selects, on every path (dense here, the fused kernel in flash.ts, the float64 reference in naive.ts): a
 * query's output depends on the keys it may see only. A NaN or inf in a hidden key's k or v never reaches it (scores of
 * hidden keys are replaced, not offset, and a value a row cannot see is left out of its sum rather than multiplied by
 * 0). Non-finite scores among the visible keys follow the softmax: a NaN or +inf makes the row NaN, a -inf is a zero
 * weight unless every visible score is -inf (then NaN). A tensor mask must be bool or hold only 0 and 1; anything else
 * (5, 0.5, NaN) is rejected, since "weights x5" is no attention mask. Gradients with non-finite inputs are NaN.
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
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    if (t.dtype !== 'float32') throw new ShapeError(`${fn}: ${name} must be float32, got ${t.dtype}`);
  }
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

/**
 * Throw unless a tensor mask is bool or holds only 0 and 1 (reads one flag back; the values only when one is bad).
 * The error names the function, the first bad element's index and its value.
 */
export function assertBinaryMask(fn: string, mask: tf.Tensor): void {
  if (mask.dtype === 'bool') return;
  if (mask.dtype !== 'float32' && mask.dtype !== 'int32') {
    throw new ShapeError(`${fn}: mask must be a bool or 0/1 number tensor, got dtype ${mask.dtype}`);
  }
  // max |x² - x| is 0 iff every x is 0 or 1 (NaN if one is NaN); float ops, native on wasm-native (notEqual/any cost 4x).
  const worst = tf.tidy(() => mask.toFloat().mul(mask.toFloat()).sub(mask.toFloat()).abs().max());
  const anyBad = worst.dataSync()[0] !== 0;
  worst.dispose();
  if (!anyBad) return;
  const data = mask.dataSync();
  const i = data.findIndex((x) => x !== 0 && x !== 1);
  const idx: number[] = [];
  let rem = i;
  for (let d = mask.rank - 1; d >= 0; d--) {
    idx.unshift(rem % mask.shape[d]);
    rem = Math.floor(rem / mask.shape[d]);
  }
  throw new ShapeError(
    `${fn}: mask must hold only 0 (hidden) and 1 (visible), or be bool; mask${mask.rank ? `[${idx.join(', ')}]` : ''} = ${data[i]}`,
  );
}

/** The mask as a float 0/1 tensor broadcastable to [b, h, q, k], or null. Tensor masks must be bool or 0/1. */
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
  if (!(mask instanceof tf.Tensor)) {
    throw new ShapeError(`${fn}: mask must be a typed mask (lib/masks) or a tensor, got ${typeof mask}`);
  }
  assertBroadcastable(fn, 'mask', mask.shape, target, '[batch, heads, queries, keys]');
  assertBinaryMask(fn, mask);
  return mask.dtype === 'float32' ? mask.clone() : mask.toFloat();
}

/** Attention weights [b, h, q, k] from raw scores (already scaled and biased) and a 0/1 mask. */
export function normalise(
  fn: string,
  scores: tf.Tensor,
  allowed: tf.Tensor | null,
  s: AttentionShapes,
  options: Pick<SdpaOptions, 'scoring' | 'sinkLogit' | 'sigmoidBias'>,
  finiteScores = false,
): tf.Tensor {
  const scoring = options.scoring ?? 'softmax';
  // With finite scores, scores + (allowed - 1) * 1e9 and weights * allowed are a select already (and fast: tfjs's
  // where is 20-50x slower on wasm). Otherwise a true select: a NaN or inf score at a hidden key must not reach the
  // row. Hidden scores become -inf in rows that see some key (exactly the softmax over the visible keys, -inf and NaN
  // scores included), and 0 in rows that see none (a finite softmax, so no NaN reaches the gradient; zeroed below).
  const keep = allowed && !finiteScores ? tf.cast(allowed, 'bool') : null;
  const masked = !allowed
    ? scores
    : keep
      ? tf.where(keep, scores, tf.where(allowed.max(-1, true).greater(0), tf.scalar(-Infinity), tf.scalar(0)))
      : scores.add(allowed.sub(1).mul(-MASKED_SCORE));
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
  // Rows that see no key are NaN after the softmax of all -inf; the select makes them (and every hidden weight) 0.
  return !allowed ? w : keep ? tf.where(keep, w, tf.scalar(0)) : w.mul(allowed);
}

/** True when every element of every tensor is finite (one small read back). */
function allFinite(...ts: tf.Tensor[]): boolean {
  // x * 0 is 0 for finite x and NaN for NaN and inf; the sum is NaN iff one is. (Mul and Sum run natively on
  // wasm-native; isFinite/all there cost 3x as much.)
  const total = tf.tidy(() => tf.addN(ts.map((t) => t.mul(0).sum())));
  const ok = !Number.isNaN(total.dataSync()[0]);
  total.dispose();
  return ok;
}

/**
 * weights @ v summed over the keys each row may see only. With finite values that is the plain product (hidden
 * weights are 0); a NaN or inf in v would leak through 0 * NaN into rows that cannot see it, so when a mask is given
 * and v holds one (checked by reading one flag back), the non-finite entries are accounted for separately with the
 * IEEE rules of the visible sum: NaN if any visible one is NaN or meets a zero weight, or +inf and -inf meet; else
 * +-inf.
 */
function maskedProduct(weights: tf.Tensor, vv: tf.Tensor, allowed: tf.Tensor | null, finiteValues: boolean): tf.Tensor {
  if (!allowed || finiteValues) return matmul(weights, vv);
  const finite = tf.isFinite(vv);
  return tf.tidy(() => {
    const vis = tf.broadcastTo(allowed, weights.shape);
    const f = (b: tf.Tensor) => b.toFloat();
    const hits = (w: tf.Tensor, ind: tf.Tensor) => matmul(w, f(ind)).greater(0);
    const base = matmul(weights, tf.where(finite, vv, tf.zerosLike(vv)));
    const pos = tf.equal(vv, Infinity);
    const neg = tf.equal(vv, -Infinity);
    const wPos = f(weights.greater(0));
    const wZeroVisible = f(tf.logicalAnd(vis.cast('bool'), weights.equal(0)));
    const nanHit = hits(vis, tf.isNaN(vv));
    const zeroInf = hits(wZeroVisible, tf.logicalOr(pos, neg));
    const posHit = hits(wPos, pos);
    const negHit = hits(wPos, neg);
    const isNan = tf.logicalOr(
      tf.logicalOr(nanHit, zeroInf),
      tf.logicalOr(tf.logicalAnd(posHit, negHit), tf.isNaN(base)),
    );
    const inf = tf.where(posHit, tf.fill(base.shape, Infinity), tf.where(negHit, tf.fill(base.shape, -Infinity), base));
    return tf.where(isNan, tf.fill(base.shape, Number.NaN), inf);
  });
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
    // Under a mask, non-finite inputs take the exact (slower) select path; finite ones the plain arithmetic.
    const finiteQk = allowed ? allFinite(q, k, ...(options.bias ? [options.bias] : [])) : true;
    const finiteV = allowed ? allFinite(v) : true;
    const weights = normalise(fn, scores, allowed, s, options, finiteQk) as tf.Tensor4D; // [b, h, q, k]
    const output = maskedProduct(weights, vv, allowed, finiteV) as tf.Tensor4D; // [b, h, q, e]
    return options.returnWeights ? [output, weights] : [output];
  });
  return options.returnWeights
    ? { output: result[0] as tf.Tensor4D, weights: result[1] as tf.Tensor4D }
    : (result[0] as tf.Tensor4D);
}

/**
 * Fused attention: FlashAttention-2 (Dao, 2023, "FlashAttention-2: Faster Attention with Better Parallelism and Work
 * Partitioning", https://arxiv.org/abs/2307.08691) on the CPU, in the native addon (lib/backend/native/src/kernels.inc).
 *
 *   O = softmax(Q Kᵀ · scale, mask) V,  computed one 64 x 64 block of scores at a time with an online softmax:
 *   m' = max(m, rowmax S),  l' = l·e^(m - m') + Σ e^(S - m'),  O' = O·e^(m - m') + e^(S - m') V
 *
 * The [q, k] score matrix is never stored; blocks the mask hides entirely are skipped (about half of them under a
 * causal mask). The backward pass recomputes each block's probabilities from the saved row log-sum-exp L.
 *
 * Shape legend: b = batch, h = query heads, g = kv heads (h % g == 0: grouped-query), q = queries, k = keys,
 * d = head dim, e = value dim.
 *   q [b, h, q, d], k [b, g, k, d], v [b, g, k, e] -> output [b, h, q, e]
 *
 * Masks: any typed mask whose visible keys, per query, form at most two intervals: causal, sliding window, sink + window,
 * padding, block diagonal and their intersections. Queries are end-aligned with keys (query i is at position k - q + i),
 * so a mask needs keys >= queries (the same error as `sdpa` otherwise). A query that sees no key gets a zero output, as
 * in `sdpa`.
 *
 * Non-finite inputs behave as in `sdpa` on every backend (see dense.ts): the mask is a select, so a NaN or inf in a
 * hidden key's k or v never reaches the output; a NaN or +inf among a row's visible scores makes that row NaN.
 */
import * as tf from '@tensorflow/tfjs';
import { FLASH_BWD, FLASH_FWD, type FlashAttrs, nativeInstalled } from '../backend/native.js';
import { Mask, type MaskSpec } from '../masks/index.js';
import { fmt, ShapeError } from '../util/shapes.js';
import { type AttentionShapes, checkQkv, dense, type SdpaOptions } from './dense.js';

/** The first words of the one reason that is about the backend, not the arguments. */
const NEEDS_NATIVE = 'needs the wasm-native backend';

export interface FlashOptions {
  /** A typed mask (lib/masks); tensors are not supported (use `sdpa`). */
  mask?: Mask;
  /** Multiplies the scores; default 1/sqrt(d). */
  scale?: number;
}

/** Visible keys of one query: sorted, disjoint half-open intervals [start, end). */
type Intervals = [number, number][];

function intersect(a: Intervals, b: Intervals): Intervals {
  const out: Intervals = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const lo = Math.max(a[i][0], b[j][0]);
    const hi = Math.min(a[i][1], b[j][1]);
    if (hi > lo) out.push([lo, hi]);
    if (a[i][1] < b[j][1]) i++;
    else j++;
  }
  return out;
}

/** The visible key intervals of the query at absolute position p in batch row b, or a reason the spec is unsupported. */
function specIntervals(spec: MaskSpec, b: number, p: number, keys: number): Intervals | string {
  switch (spec.kind) {
    case 'causal':
      return [[0, Math.min(p + 1, keys)]];
    case 'slidingWindow':
      return [[Math.max(0, p - spec.window + 1), Math.min(p + 1, keys)]];
    case 'sinkWindow': {
      const lo = Math.max(0, p - spec.window + 1);
      const sinkEnd = Math.min(spec.sinks, p + 1);
      if (sinkEnd >= lo) return [[0, p + 1]];
      return sinkEnd > 0
        ? [
            [0, sinkEnd],
            [lo, p + 1],
          ]
        : [[lo, p + 1]];
    }
    case 'padding':
      return [[0, Math.min(spec.lengths[b], keys)]];
    case 'blockDiagonal': {
      let start = 0;
      for (const s of spec.sizes) {
        if (p < start + s) return [[start, start + s]];
        start += s;
      }
      return [];
    }
    case 'and': {
      let acc: Intervals = [[0, keys]];
      for (const part of spec.parts) {
        const r = specIntervals(part, b, p, keys);
        if (typeof r === 'string') return r;
        acc = intersect(acc, r);
      }
      return acc;
    }
    default:
      return `mask kind '${(spec as { kind: string }).kind}' is unknown to flash`;
  }
}

function perBatch(spec: MaskSpec): boolean {
  return spec.kind === 'padding' || (spec.kind === 'and' && spec.parts.some(perBatch));
}

/**
 * The mask as the kernel's interval table: [maskBatch, queries, 4] with two intervals per query (empty ones [0, 0)),
 * or a reason it cannot be expressed that way.
 */
export function maskIntervals(
  mask: Mask | undefined,
  batch: number,
  queries: number,
  keys: number,
): Pick<FlashAttrs, 'intervals' | 'intervalBatchStride'> | string {
  if (!mask) return { intervals: null, intervalBatchStride: 0 };
  const rows = perBatch(mask.spec) ? batch : 1;
  const table = new Int32Array(rows * queries * 4);
  for (let b = 0; b < rows; b++) {
    for (let i = 0; i < queries; i++) {
      const iv = specIntervals(mask.spec, b, keys - queries + i, keys);
      if (typeof iv === 'string') return iv;
      if (iv.length > 2) return `mask ${mask.describe()} shows query ${i} more than two separate key ranges`;
      const o = (b * queries + i) * 4;
      iv.forEach(([lo, hi], t) => {
        table[o + 2 * t] = lo;
        table[o + 2 * t + 1] = hi;
      });
    }
  }
  return { intervals: table, intervalBatchStride: rows > 1 ? queries * 4 : 0 };
}

/**
 * Why `flash` cannot run these arguments on the active backend (empty when it can). `sdpa` uses this to dispatch;
 * every reason is listed, not just the first.
 */
export function flashSupports(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: SdpaOptions = {}): string[] {
  const reasons: string[] = [];
  if (tf.getBackend() !== 'wasm' || !nativeInstalled())
    reasons.push(
      `${NEEDS_NATIVE} (active tfjs backend: ${tf.getBackend()}${tf.getBackend() === 'wasm' ? ' without native kernels' : ''})`,
    );
  if (options.returnWeights) reasons.push('does not return attention weights');
  if (options.bias) reasons.push('does not take an additive bias');
  if (options.scoring && options.scoring !== 'softmax')
    reasons.push(`supports softmax scoring only, got '${options.scoring}'`);
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    if (t.dtype !== 'float32') reasons.push(`${name} must be float32, got ${t.dtype}`);
  }
  let shapes: AttentionShapes | undefined;
  try {
    shapes = checkQkv('flash', q, k, v);
  } catch (e) {
    reasons.push(e instanceof Error ? e.message : String(e));
  }
  const mask = options.mask;
  if (mask !== undefined && !(mask instanceof Mask)) reasons.push('needs a typed mask (lib/masks), got a tensor');
  else if (mask && shapes) {
    if (mask.batchSize !== undefined && mask.batchSize !== shapes.batch) {
      reasons.push(`mask ${mask.describe()} is for batch ${mask.batchSize}, but q has batch ${shapes.batch}`);
    } else {
      try {
        mask.assertFits(shapes.queries, shapes.keys, `mask ${mask.describe()}`);
        const iv = maskIntervals(mask, shapes.batch, shapes.queries, shapes.keys);
        if (typeof iv === 'string') reasons.push(iv);
      } catch (e) {
        reasons.push(e instanceof Error ? e.message : String(e));
      }
    }
  }
  return reasons;
}

/** The naive reference `flash` is tested against: dense attention with the same mask and scale. */
export function flashReference(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: FlashOptions = {}): tf.Tensor4D {
  return dense(q, k, v, { mask: options.mask, scale: options.scale });
}

/** True when the backend is the only reason `flashSupports` gave: `flash` then computes the same function densely. */
export function onlyBackendMissing(reasons: string[]): boolean {
  return reasons.length === 1 && reasons[0].startsWith(NEEDS_NATIVE);
}

/**
 * Fused attention with gradient. On wasm-native it runs the native kernels; on other backends it computes the same
 * function with `flashReference`. Throws, listing every reason, when the arguments themselves are unsupported.
 */
export function flash(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: FlashOptions = {}): tf.Tensor4D {
  if (options.mask instanceof Mask) {
    // sdpa's check, with sdpa's error, on every backend: a mask end-aligns queries with keys, so keys >= queries.
    let s: AttentionShapes | undefined;
    try {
      s = checkQkv('flash', q, k, v);
    } catch {
      // flashSupports lists the shape errors with the other reasons below
    }
    if (s) options.mask.assertFits(s.queries, s.keys, `flash: mask ${options.mask.describe()}`);
  }
  const reasons = flashSupports(q, k, v, options);
  if (onlyBackendMissing(reasons)) return flashReference(q, k, v, options);
  if (reasons.length > 0) {
    throw new ShapeError(
      `flash: cannot run q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)}: ${reasons.join('; ')}`,
    );
  }
  const s = checkQkv('flash', q, k, v);
  const scale = options.scale ?? 1 / Math.sqrt(s.dim);
  if (!Number.isFinite(scale)) throw new ShapeError(`flash: scale must be a finite number, got ${scale}`);
  const iv = maskIntervals(options.mask, s.batch, s.queries, s.keys) as Pick<
    FlashAttrs,
    'intervals' | 'intervalBatchStride'
  >;
  const attrs = { scale, ...iv } as unknown as tf.NamedAttrMap;
  const op = tf.customGrad(((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor, save: tf.GradSaveFunc) => {
    const [o, lse] = tf.engine().runKernel(FLASH_FWD, { q: qq, k: kk, v: vv }, attrs) as tf.Tensor[];
    save([qq, kk, vv, o, lse]);
    return {
      value: o,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, so, sl] = saved;
        return tf.engine().runKernel(FLASH_BWD, { q: sq, k: sk, v: sv, o: so, dy, lse: sl }, attrs) as tf.Tensor[];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(q, k, v) as tf.Tensor4D;
}

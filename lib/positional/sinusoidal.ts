/**
 * Sinusoidal position encoding (Vaswani et al. 2017, "Attention Is All You Need", https://arxiv.org/abs/1706.03762, §3.5):
 *
 *   PE[p, 2i]   = sin(p / base^(2i / dim))
 *   PE[p, 2i+1] = cos(p / base^(2i / dim)),   base = 10000
 *
 * Sines and cosines interleave along the feature axis, as in the paper. An odd `dim` ends with a sine column.
 */
import * as tf from '@tensorflow/tfjs';
import { assertPositiveInt, assertRank, ShapeError } from '../util/shapes.js';

export interface SinusoidalOptions {
  /** Default 10000. */
  base?: number;
}

/**
 * Position encodings `[n, dim]`.
 * @param positions a count `n` (positions 0..n-1), explicit positions, or a `[n]` tensor (differentiable in the positions).
 */
export function sinusoidal(
  positions: number | readonly number[] | tf.Tensor1D,
  dim: number,
  options: SinusoidalOptions = {},
): tf.Tensor2D {
  const fn = 'sinusoidal';
  assertPositiveInt(fn, 'dim', dim);
  const base = options.base ?? 10000;
  if (!(base > 0)) throw new ShapeError(`${fn}: base must be positive, got ${base}`);
  const half = Math.ceil(dim / 2);
  const inv = Array.from({ length: half }, (_, i) => base ** (-(2 * i) / dim)); // [half]
  if (positions instanceof tf.Tensor) {
    assertRank(fn, 'positions', positions, 1, '[n]');
    const n = positions.shape[0];
    return tf.tidy(() => {
      const angles = tf.mul(tf.reshape(tf.cast(positions, 'float32'), [n, 1]), tf.tensor2d(inv, [1, half])); // [n, half]
      const pe = tf.reshape(tf.stack([tf.sin(angles), tf.cos(angles)], 2), [n, 2 * half]); // [n, half, 2] -> [n, 2*half]
      return (2 * half === dim ? pe : tf.slice(pe, [0, 0], [n, dim])) as tf.Tensor2D;
    });
  }
  const pos = typeof positions === 'number' ? range(fn, positions) : positions;
  // Float64 on the JS side: exact-as-possible angles for large positions (float32 would lose ~1e-4 at p = 1000).
  const out = new Float32Array(pos.length * dim);
  pos.forEach((p, r) => {
    for (let c = 0; c < dim; c++) {
      const a = p * inv[c >> 1];
      out[r * dim + c] = c % 2 === 0 ? Math.sin(a) : Math.cos(a);
    }
  });
  return tf.tensor2d(out, [pos.length, dim]);
}

function range(fn: string, n: number): number[] {
  if (!Number.isInteger(n) || n < 0)
    throw new ShapeError(`${fn}: positions must be a count >= 0, an array or a [n] tensor, got ${n}`);
  return Array.from({ length: n }, (_, i) => i);
}

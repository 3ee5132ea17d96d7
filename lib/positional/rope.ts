/**
 * Rotary position embedding, RoPE (Su et al. 2021, "RoFormer", https://arxiv.org/abs/2104.09864, eq. 34).
 *
 * Rotate-half convention (GPT-NeoX, Llama in Hugging Face): feature i is paired with feature i + dim/2, not with its
 * neighbour as in the paper's interleaved form. With x = [x1, x2] split at dim/2 and θ_i = base^(-2i/dim):
 *
 *   rope(x, p) = [x1 * cos(pθ) - x2 * sin(pθ),  x2 * cos(pθ) + x1 * sin(pθ)]
 *
 * Each pair is rotated by the angle pθ_i, so <rope(q, m), rope(k, n)> depends only on m - n (relative position).
 * Positions are explicit so that a KV cache can rotate a new query at its absolute position.
 *
 * Shapes: x [batch, heads, seq, dim]; positions [seq] (shared) or [batch, seq] (per row, tensor only).
 */
import * as tf from '@tensorflow/tfjs';
import { assertNonEmpty, assertPositiveInt, assertRank, fmt, ShapeError } from '../util/shapes.js';

export interface RopeOptions {
  /** Default 10000. */
  base?: number;
}

/** Positions of the `seq` axis: an array (float64-exact angles) or a `[seq]` / `[batch, seq]` tensor. */
export type Positions = readonly number[] | Int32Array | Float32Array | tf.Tensor1D | tf.Tensor2D;

/** θ_i = base^(-2i/dim) for i < dim/2: the rotation speed of each feature pair. */
export function ropeFrequencies(dim: number, base: number = 10000): Float64Array {
  checkDim('ropeFrequencies', dim, [dim]);
  if (!(base > 0)) throw new ShapeError(`ropeFrequencies: base must be positive, got ${base}`);
  return Float64Array.from({ length: dim / 2 }, (_, i) => base ** (-(2 * i) / dim));
}

/** All numbers `0..n-1` shifted by `start`: the positions of `n` new tokens after `start` cached ones. */
export function positionRange(start: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}

/**
 * cos(pθ) and sin(pθ): `[seq, dim/2]` for shared positions, `[batch, 1, seq, dim/2]` for `[batch, seq]` positions.
 * Compute once and pass to {@link applyRope} when several tensors share positions.
 */
export function ropeCosSin(
  positions: Positions,
  dim: number,
  options: RopeOptions = {},
): { cos: tf.Tensor; sin: tf.Tensor } {
  const theta = ropeFrequencies(dim, options.base ?? 10000);
  const half = dim / 2;
  if (positions instanceof tf.Tensor) {
    if (positions.rank !== 1 && positions.rank !== 2) {
      throw new ShapeError(
        `ropeCosSin: positions must have rank 1 [seq] or 2 [batch, seq], but has shape ${fmt(positions.shape)}`,
      );
    }
    return tf.tidy(() => {
      const p = tf.cast(positions, 'float32');
      const ps: number[] = positions.shape;
      const lead = ps.length === 1 ? [ps[0]] : [ps[0], 1, ps[1]];
      const angles = tf.mul(tf.reshape(p, [...lead, 1]), tf.tensor1d(Float32Array.from(theta))); // [...lead, half]
      return { cos: tf.cos(angles), sin: tf.sin(angles) };
    });
  }
  const n = positions.length;
  const cos = new Float32Array(n * half);
  const sin = new Float32Array(n * half);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < half; i++) {
      const a = positions[s] * theta[i];
      cos[s * half + i] = Math.cos(a);
      sin[s * half + i] = Math.sin(a);
    }
  }
  return { cos: tf.tensor2d(cos, [n, half]), sin: tf.tensor2d(sin, [n, half]) };
}

/** Rotates x `[batch, heads, seq, dim]` by precomputed {@link ropeCosSin} tables. */
export function applyRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor4D {
  const fn = 'applyRope';
  assertRank(fn, 'x', x, 4, '[batch, heads, seq, dim]');
  const [b, h, s, d] = x.shape;
  checkDim(fn, d, x.shape);
  const half = d / 2;
  const okShape = (t: tf.Tensor): boolean =>
    (t.rank === 2 && t.shape[0] === s && t.shape[1] === half) ||
    (t.rank === 4 &&
      (t.shape[0] === b || t.shape[0] === 1) &&
      t.shape[1] === 1 &&
      t.shape[2] === s &&
      t.shape[3] === half);
  for (const [arg, t] of [
    ['cos', cos],
    ['sin', sin],
  ] as const) {
    if (!okShape(t)) {
      throw new ShapeError(
        `${fn}: ${arg} has shape ${fmt(t.shape)} but x has shape ${fmt(x.shape)}; expected [${s},${half}] or [${b},1,${s},${half}]`,
      );
    }
  }
  return tf.tidy(() => {
    const x1 = tf.slice(x, [0, 0, 0, 0], [b, h, s, half]); // [batch, heads, seq, dim/2]
    const x2 = tf.slice(x, [0, 0, 0, half], [b, h, s, half]);
    const out1 = tf.sub(tf.mul(x1, cos), tf.mul(x2, sin));
    const out2 = tf.add(tf.mul(x2, cos), tf.mul(x1, sin));
    return tf.concat([out1, out2], 3) as tf.Tensor4D;
  });
}

/**
 * RoPE on x `[batch, heads, seq, dim]` at the given positions (length `seq`, or a `[batch, seq]` tensor).
 *
 * ```ts
 * const q = rope(qNew, positionRange(cacheLength, qNew.shape[2])); // KV cache: new tokens at their absolute positions
 * ```
 */
export function rope(x: tf.Tensor, positions: Positions, options: RopeOptions = {}): tf.Tensor4D {
  const fn = 'rope';
  assertRank(fn, 'x', x, 4, '[batch, heads, seq, dim]');
  assertNonEmpty(fn, 'x', x);
  const [b, , s, d] = x.shape;
  checkDim(fn, d, x.shape);
  const pShape = positions instanceof tf.Tensor ? positions.shape : [positions.length];
  const okPositions =
    (pShape.length === 1 && pShape[0] === s) ||
    (pShape.length === 2 && (pShape[0] === b || pShape[0] === 1) && pShape[1] === s);
  if (!okPositions) {
    throw new ShapeError(
      `${fn}: positions has shape ${fmt(pShape)} but x has shape ${fmt(x.shape)} [batch, heads, seq, dim]; expected [${s}] or [${b},${s}]`,
    );
  }
  return tf.tidy(() => {
    const { cos, sin } = ropeCosSin(positions, d, options);
    return applyRope(x, cos, sin);
  });
}

function checkDim(fn: string, dim: number, shape: readonly number[]): void {
  assertPositiveInt(fn, 'dim', dim);
  if (dim % 2 !== 0)
    throw new ShapeError(`${fn}: the last axis (dim) must be even for rotate-half RoPE, but shape is ${fmt(shape)}`);
}

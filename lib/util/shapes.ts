import type * as tf from '@tensorflow/tfjs';

/** Error for a bad argument: always names the function, the argument, what was expected and what was given. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}

export const fmt = (shape: readonly number[]): string => `[${shape.join(',')}]`;

/** Throw unless `t` has rank `rank`. `legend` names the axes, e.g. '[batch, heads, queries, dim]'. */
export function assertRank(fn: string, arg: string, t: tf.Tensor, rank: number, legend: string): void {
  if (t.rank !== rank) {
    throw new ShapeError(`${fn}: ${arg} must have rank ${rank} ${legend}, but has shape ${fmt(t.shape)}`);
  }
}

/** Throw unless `t` is non-empty (every axis > 0). */
export function assertNonEmpty(fn: string, arg: string, t: tf.Tensor): void {
  if (t.shape.some((d) => d === 0)) {
    throw new ShapeError(`${fn}: ${arg} is empty (shape ${fmt(t.shape)}); every axis must be at least 1`);
  }
}

export function assertPositiveInt(fn: string, arg: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new ShapeError(`${fn}: ${arg} must be a positive integer, got ${v}`);
}

/** Throw unless `shape` broadcasts to `target` (numpy rules, right-aligned). */
export function assertBroadcastable(
  fn: string,
  arg: string,
  shape: readonly number[],
  target: readonly number[],
  legend: string,
): void {
  const ok =
    shape.length <= target.length &&
    shape.every((d, i) => {
      const t = target[target.length - shape.length + i];
      return d === 1 || d === t;
    });
  if (!ok) {
    throw new ShapeError(`${fn}: ${arg} has shape ${fmt(shape)}, which does not broadcast to ${fmt(target)} ${legend}`);
  }
}

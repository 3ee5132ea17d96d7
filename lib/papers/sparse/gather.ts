/**
 * Tensor plumbing the fast paths share: a differentiable row gather (tfjs's gather has no gradient on wasm), a
 * stop-gradient copy, and reading a tidy-scoped result.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../util/shapes.js';

/**
 * Differentiable row gather: rows `idx` of x [rows, d] -> [idx.length, d]; the gradient scatter-adds back. `data` may
 * pass x's values already read (one read serves many gathers). Plain loops: tfjs's gather has no gradient on wasm.
 */
export function gatherRows(x: tf.Tensor2D, idx: Int32Array, data?: Float32Array): tf.Tensor2D {
  const [rows, d] = x.shape;
  for (let i = 0; i < idx.length; i++) {
    if (!(idx[i] >= 0 && idx[i] < rows))
      throw new ShapeError(`gatherRows: idx[${i}] = ${idx[i]} is outside the ${rows} rows of x`);
  }
  const f = tf.customGrad(((t: tf.Tensor) => {
    const src = data ?? (t.dataSync() as Float32Array);
    const out = new Float32Array(idx.length * d);
    for (let i = 0; i < idx.length; i++) {
      const from = idx[i] * d;
      const to = i * d;
      for (let e = 0; e < d; e++) out[to + e] = src[from + e];
    }
    return {
      value: tf.tensor2d(out, [idx.length, d]),
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync();
        const acc = new Float32Array(rows * d);
        for (let i = 0; i < idx.length; i++) {
          const to = idx[i] * d;
          const from = i * d;
          for (let e = 0; e < d; e++) acc[to + e] += g[from + e];
        }
        return tf.tensor2d(acc, [rows, d]);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor2D;
}

/**
 * Run `f` in a tidy scope and read its tensor's values. (Returning a typed array from tf.tidy itself would make tfjs
 * walk every element of it looking for tensors.)
 */
export function readTidy(f: () => tf.Tensor): Float32Array {
  const t = tf.tidy(f);
  const data = t.dataSync() as Float32Array;
  t.dispose();
  return data;
}

/** A copy of `t` that gradients do not flow through (tfjs has no stopGradient). */
export function constant<T extends tf.Tensor>(t: T): T {
  return tf.tensor(t.dataSync(), t.shape, t.dtype) as T;
}

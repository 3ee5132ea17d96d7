/**
 * Ops that stay fast on every backend.
 *
 * tfjs's pure wasm backend runs `matMul` 10-70x slower with transpose flags or rank-3 inputs, and has no gradient for
 * `gather` (ENVIRONMENT.md). These wrappers transpose explicitly, flatten batch dimensions into 2-D products, and do
 * the embedding lookup and its gradient as row copies, so that the pure-wasm path is usable on its own. On other
 * backends (native kernels, tensorflow) they call tfjs directly.
 */
import * as tf from '@tensorflow/tfjs';
import { fmt, ShapeError } from '../util/shapes.js';
import { activeName } from './index.js';

/** The pure wasm backend, without native kernel overrides. */
export function isPureWasm(): boolean {
  return tf.getBackend() === 'wasm' && activeName() === 'wasm';
}

/** Below this many batch matrices a loop of 2-D products beats wasm's batched kernel (measured 2x at 8). */
const LOOP_MAX_BATCH = 64;

function swapLast2(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  const n = perm.length;
  [perm[n - 2], perm[n - 1]] = [perm[n - 1], perm[n - 2]];
  return tf.transpose(t, perm);
}

/** Product with explicit transposes; batch dims of `a` flattened when `b` is a matrix. */
function wasmMatmul(a: tf.Tensor, b: tf.Tensor, ta: boolean, tb: boolean): tf.Tensor {
  return tf.tidy(() => {
    const a2 = ta ? swapLast2(a) : a;
    const b2 = tb ? swapLast2(b) : b;
    const m = a2.shape[a2.rank - 2];
    const n = b2.shape[b2.rank - 1];
    if (a2.rank === 2 && b2.rank > 2) return tf.matMul(a2, b2);
    if (b2.rank === 2) {
      if (a2.rank === 2) return tf.matMul(a2 as tf.Tensor2D, b2 as tf.Tensor2D);
      const k = a2.shape[a2.rank - 1];
      const flat = tf.matMul(a2.reshape([-1, k]) as tf.Tensor2D, b2 as tf.Tensor2D);
      return flat.reshape([...a2.shape.slice(0, -2), m, n]);
    }
    const batchShape = a2.shape.slice(0, -2);
    const batch = batchShape.reduce((x, y) => x * y, 1);
    const a3 = a2.reshape([batch, m, a2.shape[a2.rank - 1]]) as tf.Tensor3D;
    const b3 = b2.reshape([batch, b2.shape[b2.rank - 2], n]) as tf.Tensor3D;
    let out: tf.Tensor;
    if (batch <= LOOP_MAX_BATCH) {
      const as = tf.unstack(a3);
      const bs = tf.unstack(b3);
      out = tf.stack(as.map((x, i) => tf.matMul(x as tf.Tensor2D, bs[i] as tf.Tensor2D)));
    } else {
      out = tf.matMul(a3, b3);
    }
    return out.reshape([...batchShape, m, n]);
  });
}

/**
 * Matrix product of the last two axes, like `tf.matMul`, with batch axes of equal shape (or `b` a plain matrix shared
 * across `a`'s batch). Gradients use the same fast path.
 */
export function matmul<T extends tf.Tensor>(a: T, b: tf.Tensor, transposeA = false, transposeB = false): T {
  if (a.rank < 2 || b.rank < 2) {
    throw new ShapeError(`matmul: a and b need rank >= 2, got a ${fmt(a.shape)} and b ${fmt(b.shape)}`);
  }
  const ka = a.shape[a.rank - (transposeA ? 2 : 1)];
  const kb = b.shape[b.rank - (transposeB ? 1 : 2)];
  if (ka !== kb) {
    throw new ShapeError(
      `matmul: inner dimensions differ: a ${fmt(a.shape)}${transposeA ? 'ᵀ' : ''} has ${ka}, b ${fmt(b.shape)}${transposeB ? 'ᵀ' : ''} has ${kb}`,
    );
  }
  if (b.rank === 2 && a.rank > 2 && !transposeA) {
    // x [..., k] W: one 2-D product. Also sidesteps tfjs's BatchMatMul gradient, which does not reduce a broadcast b.
    const k = a.shape[a.rank - 1] as number;
    const n = b.shape[transposeB ? 0 : 1] as number;
    return tf.tidy(() => matmul(a.reshape([-1, k]), b, false, transposeB).reshape([...a.shape.slice(0, -1), n])) as T;
  }
  const sameBatch = b.rank === 2 || (a.rank === b.rank && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]));
  if (!isPureWasm() || !sameBatch) return tf.matMul(a, b, transposeA, transposeB) as T;
  const f = tf.customGrad(((x: tf.Tensor, y: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x, y]);
    return {
      value: wasmMatmul(x, y, transposeA, transposeB),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sx, sy] = saved;
          // C = A'B' with A' = op(A), B' = op(B): dA' = dC B'ᵀ, dB' = A'ᵀ dC, then undo op().
          const dA = transposeA ? wasmMatmul(sy, dy, transposeB, true) : wasmMatmul(dy, sy, false, !transposeB);
          let dB: tf.Tensor;
          if (y.rank === 2 && x.rank > 2) {
            // b was shared across a's batch: flatten the batch into the contraction.
            const k = sx.shape[sx.rank - 1];
            const n = dy.shape[dy.rank - 1];
            const x2 = sx.reshape([-1, k]);
            const dy2 = dy.reshape([-1, n]);
            if (transposeA) {
              const xa = swapLast2(sx);
              const xa2 = xa.reshape([-1, xa.shape[xa.rank - 1]]);
              dB = transposeB ? wasmMatmul(dy2, xa2, true, false) : wasmMatmul(xa2, dy2, true, false);
            } else {
              dB = transposeB ? wasmMatmul(dy2, x2, true, false) : wasmMatmul(x2, dy2, true, false);
            }
          } else {
            dB = transposeB ? wasmMatmul(dy, sx, true, transposeA) : wasmMatmul(sx, dy, !transposeA, false);
          }
          return [dA, dB];
        }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(a, b) as T;
}

/**
 * Embedding lookup: rows of `table` [vocab, dim] at `ids` (int32, any shape) -> [...ids.shape, dim].
 * On wasm and cpu the lookup and its gradient (a scatter-add into the table's rows) are plain row copies; tfjs's own
 * gather gradient is missing on wasm and took 8.5 s on cpu.
 */
export function embedding(table: tf.Tensor2D, ids: tf.Tensor): tf.Tensor {
  if (table.rank !== 2)
    throw new ShapeError(`embedding: table must have rank 2 [vocab, dim], but has shape ${fmt(table.shape)}`);
  if (ids.dtype !== 'int32') throw new ShapeError(`embedding: ids must be int32, got ${ids.dtype}`);
  const [vocab, dim] = table.shape;
  const idv = ids.dataSync();
  for (let i = 0; i < idv.length; i++) {
    if (!(idv[i] >= 0 && idv[i] < vocab)) {
      throw new ShapeError(`embedding: ids[${i}] = ${idv[i]} is outside the vocabulary [0, ${vocab})`);
    }
  }
  const outShape = [...ids.shape, dim];
  if (tf.getBackend() === 'tensorflow' || tf.getBackend() === 'webgl' || activeName() === 'wasm-native') {
    return tf.gather(table, ids.flatten()).reshape(outShape);
  }
  const f = tf.customGrad(((t: tf.Tensor) => {
    const src = t.dataSync() as Float32Array;
    const out = new Float32Array(idv.length * dim);
    for (let i = 0; i < idv.length; i++) out.set(src.subarray(idv[i] * dim, idv[i] * dim + dim), i * dim);
    return {
      value: tf.tensor(out, outShape),
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync() as Float32Array;
        const acc = new Float32Array(vocab * dim);
        for (let i = 0; i < idv.length; i++) {
          const base = idv[i] * dim;
          for (let d = 0; d < dim; d++) acc[base + d] += g[i * dim + d];
        }
        return tf.tensor2d(acc, [vocab, dim]);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(table);
}

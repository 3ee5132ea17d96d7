/**
 * Convolution as a building block: a stride-1 'same' 2-D convolution whose gradients work on every backend.
 *
 *   y = conv2dSame(x, w)     x [b, h, w, c], w [k, k, c, o] (k odd)  ->  y [b, h, w, o]
 *
 * Used by the CNNs of the classifier papers (salient relevance) and OAT's appearance path over object crops.
 */
import * as tf from '@tensorflow/tfjs';

function checkConv(x: tf.Tensor4D, w: tf.Tensor4D): void {
  const [k, k2, c] = w.shape;
  if (k !== k2 || k % 2 !== 1 || c !== x.shape[3])
    throw new RangeError(
      `conv2dSame: w must have shape [k,k,${x.shape[3]},o] with k odd, got [${w.shape.join(',')}] for x [${x.shape.join(',')}]`,
    );
}

/**
 * Stride-1 'same' convolution of x [b, h, w, c] with an odd kernel w [k, k, c, o]: tf.conv2d forward, with its
 * gradients written out, because tfjs's wasm backend has no Conv2DBackpropFilter kernel. The input gradient is the
 * transposed convolution; the filter gradient dw[dy, dx, c, o] = Σ_{b,i,j} xpad[b, i+dy, j+dx, c] · g[b, i, j, o] is
 * itself a 'valid' convolution, of xpad with batch and channels swapped ([c, h+k-1, w+k-1, b]) by g as the filter
 * ([h, w, b, o]).
 */
export function conv2dSame(x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  checkConv(x, w);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xx, ww, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([xx, ww]);
    return {
      value: tf.conv2d(xx, ww, 1, 'same'),
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sw] = saved as [tf.Tensor4D, tf.Tensor4D];
        const p = (sw.shape[0] - 1) / 2;
        const dx = tf.conv2dTranspose(dy, sw, sx.shape, 1, 'same');
        const padded = tf.pad(sx, [
          [0, 0],
          [p, p],
          [p, p],
          [0, 0],
        ]);
        const dw = tf
          .conv2d(padded.transpose([3, 1, 2, 0]) as tf.Tensor4D, dy.transpose([1, 2, 0, 3]) as tf.Tensor4D, 1, 'valid')
          .transpose([1, 2, 0, 3]);
        return [dx, dw];
      },
    };
  });
  return f(x, w) as tf.Tensor4D;
}

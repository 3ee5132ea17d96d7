/**
 * BaseConv, Zoology's gated convolution (Arora et al., ICLR 2024, https://arxiv.org/abs/2312.04927; official code
 * HazyResearch/zoology, mixers/base_conv.py and mixers/convolution.py):
 *
 *   y = (x W1 + b1) ⊙ (h ∗ (x W2) + b2),   (h ∗ u)[t, c] = Σ_{j=0}^{K-1} h[j, c] · u[t - j, c]   (causal, per channel)
 *
 * K = 3 is the short convolution, K = T (the kernel as long as the sequence) the long one; the official layer stacks
 * alternate them (kernel_size [3, -1]). The official forward is projection(u) ⊙ conv(u) + u; here the convolution
 * reads an input projection W2 x (the form) and the residual belongs to the block around the mixer.
 *
 * Forms: `causalConv` (parallel: shifted sums for short kernels, a Toeplitz matmul for long ones; no FFT in tfjs),
 * `causalConvStep` (one token: the state is the last K-1 inputs), `causalConvReference` (float64 loops).
 *
 * Shape legend: x, u [b, T, c]; kernel h [K, c]; state [b, min(t, K-1), c]; y [b, T, c].
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../backend/ops.js';
import { linear } from '../../../layers/functional.js';
import { tidyObject } from '../based/linear-attention.js';

function checkConv(fn: string, x: tf.Tensor, kernel: tf.Tensor): void {
  if (x.rank !== 3) throw new RangeError(`${fn}: x must be [b, T, c], got shape [${x.shape}]`);
  if (kernel.rank !== 2 || kernel.shape[1] !== x.shape[2])
    throw new RangeError(`${fn}: kernel must be [K, ${x.shape[2]}] (K taps per channel), got [${kernel.shape}]`);
}

/** Kernels at most this long run as shifted sums; longer ones as a [c, T, T] Toeplitz matmul. */
const SHIFT_MAX = 8;

/** Causal depthwise convolution, y[t, c] = Σ_j h[j, c] x[t-j, c]: x [b, T, c], kernel [K, c] -> [b, T, c]. */
export function causalConv(x: tf.Tensor, kernel: tf.Tensor): tf.Tensor3D {
  checkConv('causalConv', x, kernel);
  const [b, t, c] = x.shape;
  const taps = Math.min(kernel.shape[0], t); // taps beyond T never reach an output
  return tf.tidy(() => {
    if (taps <= SHIFT_MAX) {
      let y = x.mul(kernel.slice([0, 0], [1, c]));
      for (let j = 1; j < taps; j++) {
        const shifted = tf.concat([tf.zeros([b, j, c]), x.slice([0, 0, 0], [b, t - j, c])], 1);
        y = y.add(shifted.mul(kernel.slice([j, 0], [1, c])));
      }
      return y as tf.Tensor3D;
    }
    // Toeplitz: toe[c, t, s] = Σ_j h[j, c] · [t - s = j], as hᵀ [c, K] times the stacked shift matrices [K, T·T]
    // (a matmul: its gradient runs on every backend, unlike gather's).
    const shifts = new Float32Array(taps * t * t);
    for (let j = 0; j < taps; j++) for (let i = j; i < t; i++) shifts[j * t * t + i * t + (i - j)] = 1;
    const hc = kernel.slice([0, 0], [taps, c]).transpose(); // [c, taps]
    const toe = matmul(hc, tf.tensor2d(shifts, [taps, t * t])).reshape([c, t, t]);
    const xc = x.transpose([2, 1, 0]); // [c, T, b]
    return matmul(toe, xc).transpose([2, 1, 0]) as tf.Tensor3D;
  });
}

/** Float64 reference of `causalConv`: x [b, T, c] and kernel [K, c] flat row-major. */
export function causalConvReference(
  x: ArrayLike<number>,
  kernel: ArrayLike<number>,
  shape: { b: number; t: number; c: number; k: number },
): Float64Array {
  const { b, t, c, k } = shape;
  const y = new Float64Array(b * t * c);
  for (let r = 0; r < b; r++)
    for (let i = 0; i < t; i++)
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        for (let j = 0; j < k && j <= i; j++) s += kernel[j * c + ch] * x[(r * t + i - j) * c + ch];
        y[(r * t + i) * c + ch] = s;
      }
  return y;
}

/** The step state of a causal convolution: the last min(t, K-1) inputs [b, ·, c] (empty at t = 0). */
export interface ConvState {
  past: tf.Tensor3D;
}

export function causalConvInit(b: number, c: number): ConvState {
  return { past: tf.zeros([b, 0, c]) as tf.Tensor3D };
}

/** One token: x_t [b, c] -> y_t [b, c] and the next state (new tensors; the caller disposes the old state). */
export function causalConvStep(
  state: ConvState,
  xt: tf.Tensor,
  kernel: tf.Tensor,
): { y: tf.Tensor2D; state: ConvState } {
  const fn = 'causalConvStep';
  if (xt.rank !== 2 || kernel.rank !== 2 || kernel.shape[1] !== xt.shape[1])
    throw new RangeError(`${fn}: x_t must be [b, c] and kernel [K, c], got [${xt.shape}] and [${kernel.shape}]`);
  const k = kernel.shape[0];
  return tidyObject(() => {
    const window = tf.concat([state.past, xt.expandDims(1)], 1); // [b, n, c], newest last
    const n = window.shape[1] as number;
    const taps = kernel.slice([0, 0], [n, xt.shape[1] as number]).reverse(0); // h[n-1] ... h[0], oldest first
    const y = window.mul(taps).sum(1) as tf.Tensor2D;
    const keep = Math.min(n, k - 1);
    const past = window.slice([0, n - keep, 0], [-1, keep, -1]) as tf.Tensor3D;
    return { y, state: { past } };
  });
}

/** BaseConv's parameters: w1, w2 [m, m], b1, b2 [m], kernel [K, m]. */
export interface BaseConvParams {
  w1: tf.Tensor;
  b1: tf.Tensor;
  w2: tf.Tensor;
  b2: tf.Tensor;
  kernel: tf.Tensor;
}

/** BaseConv over a sequence: x [b, T, m] -> [b, T, m]. */
export function baseConv(x: tf.Tensor, p: BaseConvParams): tf.Tensor3D {
  if (x.rank !== 3 || p.w1.shape[0] !== x.shape[2])
    throw new RangeError(`baseConv: x must be [b, T, ${p.w1.shape[0]}], got [${x.shape}]`);
  return tf.tidy(() => linear(x, p.w1, p.b1).mul(causalConv(linear(x, p.w2), p.kernel).add(p.b2)) as tf.Tensor3D);
}

/** BaseConv for one token: x_t [b, m] -> y_t [b, m] and the next convolution state. */
export function baseConvStep(state: ConvState, xt: tf.Tensor, p: BaseConvParams): { y: tf.Tensor2D; state: ConvState } {
  return tidyObject(() => {
    const conv = causalConvStep(state, linear(xt, p.w2), p.kernel);
    return { y: linear(xt, p.w1, p.b1).mul(conv.y.add(p.b2)) as tf.Tensor2D, state: conv.state };
  });
}

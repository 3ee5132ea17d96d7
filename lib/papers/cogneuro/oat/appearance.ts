/**
 * The CNN appearance path of OAT: each object's crop (lib/data/visual-search/crops.ts) through a small trainable CNN,
 * trained end to end with the transformer, as the paper does.
 *
 * The official code (HKUST-NISL/oat_eccv24, `CNNEmbedding`) reads 150 × 93 crops with conv 5×5 (16) → ReLU →
 * max-pool 5 → conv 3×3 (32) → ReLU → spatial pyramid pooling (max over 1×1, 2×2, ... grids) → linear to E/2. Ours is
 * the same shape at our scale (8 × 8 crops): conv 3×3 'same' (c1) → ReLU → max-pool 2 → conv 3×3 'same' (c2) → ReLU →
 * two-level pyramid (global max ⊕ 2×2 max) → linear to `out`.
 *
 * Shape legend: B crops, s crop side (a multiple of 4), c1 c2 channels, o output width.
 *
 *   a1 = relu(conv(x, w1) + b1)          [B, s, s, c1]
 *   p1 = maxpool2(a1)                    [B, s/2, s/2, c1]
 *   a2 = relu(conv(p1, w2) + b2)         [B, s/2, s/2, c2]
 *   spp = max_{all}(a2) ⊕ maxpool_{s/4}(a2)   [B, 5 c2]     (1×1 grid, then the 2×2 grid, channel-minor)
 *   y = spp wf + bf                      [B, o]
 */
import * as tf from '@tensorflow/tfjs';
import { conv2dSame } from '../../../layers/conv.js';
import { linear } from '../../../layers/functional.js';
import type { ParamFactory } from '../../../layers/params.js';
import { ShapeError } from '../../../util/shapes.js';

/** Variable keys of the CNN under its ParamFactory. */
export const CNN_KEYS = ['w1', 'b1', 'w2', 'b2', 'wf', 'bf'] as const;

/** Makes the CNN's variables (keys CNN_KEYS) under `p` for crops with 3 channels. */
export function makeCropCnn(p: ParamFactory, channels: readonly [number, number], out: number): void {
  const [c1, c2] = channels;
  if (!(Number.isInteger(c1) && c1 > 0 && Number.isInteger(c2) && c2 > 0))
    throw new ShapeError(`makeCropCnn: channels must be two positive integers, got [${channels.join(', ')}]`);
  p.variable('w1', [3, 3, 3, c1], 'glorotUniform');
  p.variable('b1', [c1], 'zeros');
  p.variable('w2', [3, 3, c1, c2], 'glorotUniform');
  p.variable('b2', [c2], 'zeros');
  p.variable('wf', [5 * c2, out], 'glorotUniform');
  p.variable('bf', [out], 'zeros');
}

export interface CropCnnWeights {
  w1: tf.Tensor;
  b1: tf.Tensor;
  w2: tf.Tensor;
  b2: tf.Tensor;
  wf: tf.Tensor;
  bf: tf.Tensor;
}

/** Embeddings [B, o] of crops x [B, s, s, 3] (s a multiple of 4). */
export function cropCnn(W: CropCnnWeights, x: tf.Tensor4D): tf.Tensor2D {
  const [B, s, s2, ch] = x.shape;
  if (s !== s2 || s % 4 !== 0 || ch !== 3)
    throw new ShapeError(`cropCnn: x must have shape [B, s, s, 3] with s a multiple of 4, got [${x.shape.join(', ')}]`);
  return tf.tidy(() => {
    const a1 = tf.relu(conv2dSame(x, W.w1 as tf.Tensor4D).add(W.b1)) as tf.Tensor4D;
    const p1 = tf.maxPool(a1, 2, 2, 'valid');
    const a2 = tf.relu(conv2dSame(p1, W.w2 as tf.Tensor4D).add(W.b2)) as tf.Tensor4D;
    const c2 = a2.shape[3];
    const global = a2.max([1, 2]); // [B, c2]
    const grid = tf.maxPool(a2, s / 4, s / 4, 'valid').reshape([B, 4 * c2]); // [B, 4 c2]
    return linear(tf.concat([global, grid], 1), W.wf, W.bf) as tf.Tensor2D;
  });
}

/** The CNN's weights as flat float64 arrays with their shapes (what cropCnn64 reads). */
export interface CropCnn64 {
  c1: number;
  c2: number;
  out: number;
  w1: Float64Array;
  b1: Float64Array;
  w2: Float64Array;
  b2: Float64Array;
  wf: Float64Array;
  bf: Float64Array;
}

function conv64(x: Float64Array, s: number, cin: number, w: Float64Array, b: Float64Array, cout: number): Float64Array {
  const y = new Float64Array(s * s * cout);
  for (let i = 0; i < s; i++)
    for (let j = 0; j < s; j++)
      for (let o = 0; o < cout; o++) {
        let acc = b[o];
        for (let di = -1; di <= 1; di++)
          for (let dj = -1; dj <= 1; dj++) {
            const ii = i + di,
              jj = j + dj;
            if (ii < 0 || jj < 0 || ii >= s || jj >= s) continue;
            for (let c = 0; c < cin; c++)
              acc += x[(ii * s + jj) * cin + c] * w[(((di + 1) * 3 + (dj + 1)) * cin + c) * cout + o];
          }
        y[(i * s + j) * cout + o] = Math.max(0, acc);
      }
  return y;
}

/** Max over k × k blocks of x [s, s, c] (stride k): [s/k, s/k, c]. */
function pool64(x: Float64Array, s: number, c: number, k: number): Float64Array {
  const t = s / k;
  const y = new Float64Array(t * t * c).fill(-Infinity);
  for (let i = 0; i < s; i++)
    for (let j = 0; j < s; j++)
      for (let ch = 0; ch < c; ch++) {
        const o = ((Math.floor(i / k) * t + Math.floor(j / k)) * c + ch) as number;
        y[o] = Math.max(y[o], x[(i * s + j) * c + ch]);
      }
  return y;
}

/** The float64 reference of cropCnn for crops x [B, s, s, 3] (flat): [B, o] flat, with plain loops. */
export function cropCnn64(W: CropCnn64, x: ArrayLike<number>, B: number, s: number): Float64Array {
  const { c1, c2, out } = W;
  const y = new Float64Array(B * out);
  for (let n = 0; n < B; n++) {
    const img = Float64Array.from({ length: s * s * 3 }, (_, i) => x[n * s * s * 3 + i]);
    const a1 = conv64(img, s, 3, W.w1, W.b1, c1);
    const p1 = pool64(a1, s, c1, 2);
    const a2 = conv64(p1, s / 2, c1, W.w2, W.b2, c2);
    const spp = new Float64Array(5 * c2);
    spp.set(pool64(a2, s / 2, c2, s / 2), 0);
    spp.set(pool64(a2, s / 2, c2, s / 4), c2);
    for (let o = 0; o < out; o++) {
      let acc = W.bf[o];
      for (let k = 0; k < 5 * c2; k++) acc += spp[k] * W.wf[k * out + o];
      y[n * out + o] = acc;
    }
  }
  return y;
}

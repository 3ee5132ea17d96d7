/**
 * The small CNN the relevance maps explain: conv 3x3 -> ReLU -> max-pool 2 -> conv 3x3 -> ReLU -> max-pool 2 -> dense,
 * on grey images [b, s, s, 1] (s a multiple of 4), with LRP and gradient saliency through it.
 *
 *   a1 = relu(conv(x, w1) + b1)      [b, s, s, c1]        p1 = maxpool2(a1)   [b, s/2, s/2, c1]
 *   a2 = relu(conv(p1, w2) + b2)     [b, s/2, s/2, c2]    p2 = maxpool2(a2)   [b, s/4, s/4, c2]
 *   logits = flatten(p2) w3 + b3     [b, classes]
 *
 * The convolutions are lib/layers' `conv2dSame` (tf.conv2d 'same' with the filter gradient written out as a
 * convolution), so training works on every backend (tfjs's wasm backend has no Conv2DBackpropFilter kernel).
 */
import * as tf from '@tensorflow/tfjs';
import { conv2dSame } from '../../../layers/conv.js';
import { ParamFactory } from '../../../layers/params.js';
import { type Array64, type LrpRule, lrpConv2d, lrpDense, lrpMaxPool } from './lrp.js';

export interface SmallCnnOptions {
  /** Image side (a multiple of 4). */
  size: number;
  /** Channels of the two convolutions. */
  channels: [number, number];
  classes: number;
  seed: number;
}

/** Relevance rules per layer type (the official code: LRP-0 for convolutions, αβ with α = 1, β = 0 for dense). */
export interface LrpComposite {
  conv: LrpRule;
  dense: LrpRule;
}

/** Every activation of one forward pass (what LRP needs). */
export interface CnnActivations {
  x: tf.Tensor4D;
  a1: tf.Tensor4D;
  p1: tf.Tensor4D;
  a2: tf.Tensor4D;
  p2: tf.Tensor4D;
  flat: tf.Tensor2D;
  logits: tf.Tensor2D;
}

export class SmallCnn {
  readonly options: SmallCnnOptions;
  readonly w1: tf.Variable;
  readonly b1: tf.Variable;
  readonly w2: tf.Variable;
  readonly b2: tf.Variable;
  readonly w3: tf.Variable;
  readonly b3: tf.Variable;
  private readonly params: ParamFactory;

  constructor(options: SmallCnnOptions) {
    const { size, channels, classes } = options;
    if (!(Number.isInteger(size) && size >= 4 && size % 4 === 0))
      throw new RangeError(`SmallCnn: size must be a positive multiple of 4, got ${size}`);
    if (!(channels.length === 2 && channels.every((c) => Number.isInteger(c) && c >= 1)))
      throw new RangeError(`SmallCnn: channels must be two integers >= 1, got ${JSON.stringify(channels)}`);
    if (!(Number.isInteger(classes) && classes >= 2))
      throw new RangeError(`SmallCnn: classes must be an integer >= 2, got ${classes}`);
    this.options = { ...options, channels: [...channels] };
    this.params = new ParamFactory({ scope: 'salient-cnn', seed: options.seed });
    const [c1, c2] = channels;
    this.w1 = this.params.variable('w1', [3, 3, 1, c1], 'glorotUniform');
    this.b1 = this.params.variable('b1', [c1], 'zeros');
    this.w2 = this.params.variable('w2', [3, 3, c1, c2], 'glorotUniform');
    this.b2 = this.params.variable('b2', [c2], 'zeros');
    this.w3 = this.params.variable('w3', [(size / 4) * (size / 4) * c2, classes], 'glorotUniform');
    this.b3 = this.params.variable('b3', [classes], 'zeros');
  }

  variables(): Record<string, tf.Variable> {
    return this.params.params();
  }

  private checkInput(fn: string, x: tf.Tensor): void {
    const s = this.options.size;
    if (x.rank !== 4 || x.shape[1] !== s || x.shape[2] !== s || x.shape[3] !== 1)
      throw new RangeError(`SmallCnn.${fn}: x must have shape [b,${s},${s},1], got [${x.shape.join(',')}]`);
  }

  /** Every activation; the caller disposes them (or calls inside tf.tidy). */
  activations(x: tf.Tensor4D): CnnActivations {
    this.checkInput('activations', x);
    const a1 = tf.tidy(() => tf.relu(tf.add(conv2dSame(x, this.w1 as tf.Tensor4D), this.b1))) as tf.Tensor4D;
    const p1 = tf.maxPool(a1, 2, 2, 'valid');
    const a2 = tf.tidy(() => tf.relu(tf.add(conv2dSame(p1, this.w2 as tf.Tensor4D), this.b2))) as tf.Tensor4D;
    const p2 = tf.maxPool(a2, 2, 2, 'valid');
    const flat = p2.reshape([x.shape[0], -1]) as tf.Tensor2D;
    const logits = tf.tidy(() => tf.add(tf.matMul(flat, this.w3 as tf.Tensor2D), this.b3)) as tf.Tensor2D;
    return { x, a1, p1, a2, p2, flat, logits };
  }

  logits(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => this.activations(x).logits);
  }

  /** Mean softmax cross-entropy against int labels [b]. */
  loss(x: tf.Tensor4D, y: tf.Tensor1D): tf.Scalar {
    return tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(y, this.options.classes), this.logits(x)));
  }

  /**
   * LRP of the logit of `target[n]` (default: the predicted class) back to the pixels: [b, s, s], which sums to that
   * logit when the biases are 0 and the rules conserve (LRP-0 / αβ).
   */
  relevance(x: tf.Tensor4D, rules: LrpComposite, target?: number[]): tf.Tensor3D {
    this.checkInput('relevance', x);
    const [b, s] = x.shape;
    if (target && target.length !== b)
      throw new RangeError(`SmallCnn.relevance: target must have one class per image (${b}), got ${target.length}`);
    return tf.tidy(() => {
      const act = this.activations(x);
      const cls = target ?? Array.from(act.logits.argMax(1).dataSync());
      const pick = tf.oneHot(tf.tensor1d(cls, 'int32'), this.options.classes);
      const rOut = tf.mul(act.logits, pick) as tf.Tensor2D;
      const rFlat = lrpDense(act.flat, this.w3 as tf.Tensor2D, this.b3 as tf.Tensor1D, rOut, rules.dense);
      const rP2 = rFlat.reshape(act.p2.shape) as tf.Tensor4D;
      const rA2 = lrpMaxPool(act.a2, rP2, 2);
      const rP1 = lrpConv2d(act.p1, this.w2 as tf.Tensor4D, this.b2 as tf.Tensor1D, rA2, rules.conv);
      const rA1 = lrpMaxPool(act.a1, rP1, 2);
      const rX = lrpConv2d(x, this.w1 as tf.Tensor4D, this.b1 as tf.Tensor1D, rA1, rules.conv);
      return rX.reshape([b, s, s]) as tf.Tensor3D;
    });
  }

  /** Gradient of the target logit (default: predicted class) with respect to the pixels, [b, s, s]. */
  gradient(x: tf.Tensor4D, target?: number[]): tf.Tensor3D {
    this.checkInput('gradient', x);
    const [b, s] = x.shape;
    return tf.tidy(() => {
      const cls = target ?? Array.from(this.logits(x).argMax(1).dataSync());
      const pick = tf.oneHot(tf.tensor1d(cls, 'int32'), this.options.classes);
      const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(this.logits(xx as tf.Tensor4D), pick)))(x);
      return g.reshape([b, s, s]) as tf.Tensor3D;
    });
  }

  /** The weights as float64 arrays (for the reference forward pass). */
  weights64(): CnnWeights64 {
    const a = (v: tf.Variable): Array64 => ({ data: Float64Array.from(v.dataSync()), shape: [...v.shape] });
    return { w1: a(this.w1), b1: a(this.b1), w2: a(this.w2), b2: a(this.b2), w3: a(this.w3), b3: a(this.b3) };
  }

  dispose(): void {
    this.params.dispose();
  }
}

export interface CnnWeights64 {
  w1: Array64;
  b1: Array64;
  w2: Array64;
  b2: Array64;
  w3: Array64;
  b3: Array64;
}

function conv64(x: Float64Array, h: number, w: number, c: number, k: Array64, bias: Array64): Float64Array {
  const [kh, kw, , o] = k.shape;
  const p = (kh - 1) / 2;
  const out = new Float64Array(h * w * o);
  for (let y = 0; y < h; y++)
    for (let xx = 0; xx < w; xx++)
      for (let oc = 0; oc < o; oc++) {
        let z = bias.data[oc];
        for (let dy = 0; dy < kh; dy++) {
          const iy = y + dy - p;
          if (iy < 0 || iy >= h) continue;
          for (let dx = 0; dx < kw; dx++) {
            const ix = xx + dx - p;
            if (ix < 0 || ix >= w) continue;
            for (let ic = 0; ic < c; ic++) z += x[(iy * w + ix) * c + ic] * k.data[((dy * kw + dx) * c + ic) * o + oc];
          }
        }
        out[(y * w + xx) * o + oc] = Math.max(0, z);
      }
  return out;
}

function pool64(x: Float64Array, h: number, w: number, c: number): Float64Array {
  const out = new Float64Array((h / 2) * (w / 2) * c);
  for (let y = 0; y < h / 2; y++)
    for (let xx = 0; xx < w / 2; xx++)
      for (let ch = 0; ch < c; ch++) {
        let m = -Infinity;
        for (let dy = 0; dy < 2; dy++)
          for (let dx = 0; dx < 2; dx++) m = Math.max(m, x[((2 * y + dy) * w + 2 * xx + dx) * c + ch]);
        out[(y * (w / 2) + xx) * c + ch] = m;
      }
  return out;
}

/** Float64 reference of `SmallCnn.logits` for one image (pixels [s * s] row-major): the logits. */
export function smallCnnReference(weights: CnnWeights64, pixels: ArrayLike<number>, size: number): Float64Array {
  const c1 = weights.w1.shape[3];
  const c2 = weights.w2.shape[3];
  const a1 = conv64(Float64Array.from(pixels), size, size, 1, weights.w1, weights.b1);
  const p1 = pool64(a1, size, size, c1);
  const a2 = conv64(p1, size / 2, size / 2, c1, weights.w2, weights.b2);
  const p2 = pool64(a2, size / 2, size / 2, c2);
  const classes = weights.w3.shape[1];
  const out = new Float64Array(classes);
  for (let j = 0; j < classes; j++) {
    let z = weights.b3.data[j];
    for (let i = 0; i < p2.length; i++) z += p2[i] * weights.w3.data[i * classes + j];
    out[j] = z;
  }
  return out;
}

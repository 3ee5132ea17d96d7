/**
 * Fused transformer math: layer norm, exact GELU, log softmax and the Adam(W) update, each one native kernel (forward
 * and backward) while the native kernels are installed on wasm, and the same math composed from tfjs ops elsewhere.
 */
import * as tf from '@tensorflow/tfjs';
import { fmt, ShapeError } from '../../util/shapes.js';
import {
  ADAM,
  type AdamHyper,
  GELU,
  GELU_GRAD,
  LAYER_NORM,
  LAYER_NORM_GRAD,
  TOYLM_GENERATE,
  type ToylmGenerateAttrs,
} from './fused-kernels.js';
import { nativeInstalled } from './kernels.js';

/** True when the fused kernels can take these float32 tensors (wasm-native active). */
function fusedReady(...ts: tf.Tensor[]): boolean {
  return nativeInstalled() && tf.getBackend() === 'wasm' && ts.every((t) => t.dtype === 'float32' && t.size > 0);
}

/**
 * Layer norm over the last axis (Ba et al., 2016, https://arxiv.org/abs/1607.06450):
 *   y = (x - mean) / sqrt(var + eps) * gamma + beta,   x [..., n], gamma [n], beta [n]
 * One native kernel forward and one backward on wasm-native (instead of ~20 tfjs ops); the same ops composed elsewhere.
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  const n = x.shape[x.rank - 1];
  if (x.rank < 1 || gamma.rank !== 1 || beta.rank !== 1 || gamma.shape[0] !== n || beta.shape[0] !== n) {
    throw new ShapeError(
      `layerNorm: gamma ${fmt(gamma.shape)} and beta ${fmt(beta.shape)} must both be [${n}], the last axis of x ${fmt(x.shape)}`,
    );
  }
  if (!fusedReady(x, gamma, beta)) {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      return x
        .sub(mean)
        .mul(tf.rsqrt(variance.add(eps)))
        .mul(gamma)
        .add(beta);
    });
  }
  const attrs = { eps } as unknown as tf.NamedAttrMap;
  const op = tf.customGrad(((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM, { x: xx, gamma: g, beta: b }, attrs) as tf.Tensor[];
    save([xx, g, mean, rstd]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) =>
        tf.engine().runKernel(LAYER_NORM_GRAD, { x: s[0], gamma: s[1], dy, mean: s[2], rstd: s[3] }, {}) as tf.Tensor[],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, gamma, beta);
}

/** Exact GELU, x Φ(x) = 0.5 x (1 + erf(x / √2)) (Hendrycks & Gimpel, 2016); fused on wasm-native, composed elsewhere. */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (!fusedReady(x)) return tf.tidy(() => x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5));
  const op = tf.customGrad(((xx: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xx]);
    return {
      value: tf.engine().runKernel(GELU, { x: xx }, {}) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => tf.engine().runKernel(GELU_GRAD, { x: s[0], dy }, {}) as tf.Tensor,
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x);
}

/**
 * log softmax over the last axis; on wasm-native one native kernel (tfjs's own op composes six), with the gradient
 * dy - sum(dy) softmax(x).
 */
export function logSoftmax(x: tf.Tensor): tf.Tensor {
  if (!fusedReady(x)) return tf.logSoftmax(x);
  const op = tf.customGrad(((xx: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf.engine().runKernel('LogSoftmax', { logits: xx }, { axis: -1 }) as tf.Tensor;
    save([y]);
    return { value: y, gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => dy.sub(dy.sum(-1, true).mul(tf.exp(s[0]))) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x);
}

/**
 * One fused Adam(W) update of a variable: returns [p', m', v'] (new tensors; the caller assigns them), computing
 *   g' = g + l2 p,  m' = b1 m + (1 - b1) g',  v' = b2 v + (1 - b2) g'²,  p' = p (1 - wd) - lr/bc1 · m' / (sqrt(v'/bc2) + eps)
 * in one native kernel instead of ~13 tfjs ops. Returns null when the native kernels are not active (use tf ops).
 */
export function adamUpdate(
  p: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  h: AdamHyper,
): [tf.Tensor, tf.Tensor, tf.Tensor] | null {
  for (const [name, t] of [
    ['m', m],
    ['v', v],
    ['g', g],
  ] as const) {
    if (!t.shape.every((d, i) => d === p.shape[i]) || t.rank !== p.rank) {
      throw new ShapeError(`adamUpdate: ${name} has shape ${fmt(t.shape)} but the variable has ${fmt(p.shape)}`);
    }
  }
  if (!fusedReady(p, m, v, g)) return null;
  const attrs = { l2: 0, decoupledDecay: 0, ...h } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel(ADAM, { p, m, v, g }, attrs) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/**
 * Greedy decoding of a pre-norm ToyLM in one native kernel (TOYLM_GENERATE; wasm-native only): tokens [b, steps] int32
 * and, with `attrs.logits`, the logits [b, steps, vocab] each token was chosen from. `inputs` are the prompt [b, s]
 * int32 and the weights the kernel names; undefined where the native kernels are not installed (the caller decodes
 * with tfjs ops instead).
 */
export function toylmGenerate(
  inputs: Record<string, tf.Tensor>,
  attrs: ToylmGenerateAttrs,
): { tokens: tf.Tensor2D; logits?: tf.Tensor3D } | undefined {
  if (!fusedReady(...Object.values(inputs).filter((t) => t.dtype !== 'int32'))) return undefined;
  const [tokens, logits] = tf
    .engine()
    .runKernel(TOYLM_GENERATE, inputs as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  if (attrs.logits) return { tokens: tokens as tf.Tensor2D, logits: logits as tf.Tensor3D };
  logits.dispose();
  return { tokens: tokens as tf.Tensor2D };
}

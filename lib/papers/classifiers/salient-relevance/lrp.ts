/**
 * Layer-wise relevance propagation (Bach et al. 2015, https://doi.org/10.1371/journal.pone.0130140; Montavon et al.
 * 2017) for dense, convolution and max-pool layers, as pure functions on tensors, each with a float64 reference.
 *
 * A layer z_j = Σ_i x_i w_ij + b_j passes the relevance R_j of its outputs back to its inputs:
 *
 *   ε rule:   R_i = Σ_j x_i w_ij / (z_j + ε·sign(z_j)) · R_j                      (ε = 0: the LRP-0 / z rule)
 *   αβ rule:  R_i = Σ_j ( α (x_i w_ij)⁺ / (z_j⁺ + b_j⁺) − β (x_i w_ij)⁻ / (z_j⁻ + b_j⁻) ) · R_j,   α − β = 1
 *
 * where (x_i w_ij)^± are the positive and negative contributions and z_j^± their sums (a sum that is exactly 0 passes
 * nothing back). The bias is part of z, so relevance is conserved (Σ_i R_i = Σ_j R_j) when the biases are 0 (and,
 * for ε, up to the share ε absorbs). Max-pool passes each output's relevance to the input that won its window (split
 * equally between tied winners), which conserves relevance exactly.
 *
 * Both sums are computed as R_i = x_i · (Wᵀ s)_i with s_j = R_j / z_j: for a dense layer Wᵀ s is a matrix product,
 * for a convolution a transposed convolution (tf.conv2dTranspose, available on every backend).
 *
 * Shapes: dense x [b, i], w [i, o], bias [o], relevance [b, o] -> [b, i]. Convolution (NHWC, stride 1) x [b, h, w, c],
 * w [kh, kw, c, o], bias [o], relevance [b, h', w', o] -> [b, h, w, c]. Max-pool (size = stride = k, h and w
 * multiples of k) x [b, h, w, c], relevance [b, h/k, w/k, c] -> [b, h, w, c].
 */
import * as tf from '@tensorflow/tfjs';

/** An LRP rule: ε (ε = 0 is LRP-0) or αβ with α − β = 1. */
export type LrpRule = { kind: 'epsilon'; epsilon: number } | { kind: 'alphabeta'; alpha: number; beta: number };

export type ConvPadding = 'same' | 'valid';

export function checkRule(fn: string, rule: LrpRule): void {
  if (rule.kind === 'epsilon') {
    if (!(Number.isFinite(rule.epsilon) && rule.epsilon >= 0))
      throw new RangeError(`${fn}: rule.epsilon must be a finite number >= 0, got ${rule.epsilon}`);
  } else if (rule.kind === 'alphabeta') {
    if (!(Number.isFinite(rule.alpha) && Number.isFinite(rule.beta) && rule.beta >= 0))
      throw new RangeError(
        `${fn}: rule.alpha and rule.beta must be finite with beta >= 0, got ${rule.alpha}, ${rule.beta}`,
      );
    if (Math.abs(rule.alpha - rule.beta - 1) > 1e-9)
      throw new RangeError(`${fn}: rule must have alpha - beta = 1, got alpha ${rule.alpha}, beta ${rule.beta}`);
  } else {
    throw new TypeError(`${fn}: rule.kind must be 'epsilon' or 'alphabeta', got ${JSON.stringify(rule)}`);
  }
}

const shapeText = (s: readonly number[]): string => `[${s.join(',')}]`;

function expectShape(fn: string, arg: string, actual: readonly number[], expected: readonly (number | null)[]): void {
  const ok = actual.length === expected.length && expected.every((e, i) => e === null || e === actual[i]);
  if (!ok)
    throw new RangeError(
      `${fn}: ${arg} must have shape [${expected.map((e) => (e === null ? '*' : e)).join(',')}], got ${shapeText(actual)}`,
    );
}

/** s = R / z where z ≠ 0, else 0 (a neuron with no contribution of that sign passes nothing back). */
function safeDivide(r: tf.Tensor, z: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const zero = tf.equal(z, 0);
    return tf.where(zero, tf.zerosLike(r), tf.div(r, tf.where(zero, tf.onesLike(z), z)));
  });
}

/** ε stabiliser: z + ε·sign(z), with sign(0) = +1. */
function stabilise(z: tf.Tensor, epsilon: number): tf.Tensor {
  return tf.tidy(() =>
    tf.add(z, tf.mul(tf.where(tf.greaterEqual(z, 0), tf.onesLike(z), tf.onesLike(z).neg()), epsilon)),
  );
}

/**
 * The rule applied to any layer that is linear in x: `forward(x, w)` computes Σ_i x_i w_ij (no bias) and
 * `backward(s, w)` computes Wᵀ s.
 */
function linearRule(
  x: tf.Tensor,
  w: tf.Tensor,
  bias: tf.Tensor | null,
  relevance: tf.Tensor,
  rule: LrpRule,
  forward: (x: tf.Tensor, w: tf.Tensor) => tf.Tensor,
  backward: (s: tf.Tensor, w: tf.Tensor) => tf.Tensor,
): tf.Tensor {
  return tf.tidy(() => {
    const withBias = (z: tf.Tensor, b: tf.Tensor | null): tf.Tensor => (b ? tf.add(z, b) : z);
    if (rule.kind === 'epsilon') {
      const z = withBias(forward(x, w), bias);
      const s = rule.epsilon > 0 ? tf.div(relevance, stabilise(z, rule.epsilon)) : safeDivide(relevance, z);
      return tf.mul(x, backward(s, w));
    }
    const xp = tf.relu(x);
    const xn = tf.neg(tf.relu(tf.neg(x)));
    const wp = tf.relu(w);
    const wn = tf.neg(tf.relu(tf.neg(w)));
    // Positive contributions x_i w_ij > 0 come from (x⁺, w⁺) and (x⁻, w⁻); negative ones from (x⁺, w⁻) and (x⁻, w⁺).
    const zp = withBias(tf.add(forward(xp, wp), forward(xn, wn)), bias ? tf.relu(bias) : null);
    const zn = withBias(tf.add(forward(xp, wn), forward(xn, wp)), bias ? tf.neg(tf.relu(tf.neg(bias))) : null);
    const sp = tf.mul(safeDivide(relevance, zp), rule.alpha);
    const sn = tf.mul(safeDivide(relevance, zn), rule.beta);
    const pos = tf.add(tf.mul(xp, backward(sp, wp)), tf.mul(xn, backward(sp, wn)));
    const neg = tf.add(tf.mul(xp, backward(sn, wn)), tf.mul(xn, backward(sn, wp)));
    return tf.sub(pos, neg);
  });
}

/** LRP through a dense layer z = x w + bias: x [b, i], w [i, o], bias [o] or null, relevance [b, o] -> [b, i]. */
export function lrpDense(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  bias: tf.Tensor1D | null,
  relevance: tf.Tensor2D,
  rule: LrpRule,
): tf.Tensor2D {
  const fn = 'lrpDense';
  checkRule(fn, rule);
  expectShape(fn, 'x', x.shape, [null, null]);
  expectShape(fn, 'w', w.shape, [x.shape[1], null]);
  if (bias) expectShape(fn, 'bias', bias.shape, [w.shape[1]]);
  expectShape(fn, 'relevance', relevance.shape, [x.shape[0], w.shape[1]]);
  return linearRule(
    x,
    w,
    bias,
    relevance,
    rule,
    (a, ww) => tf.matMul(a as tf.Tensor2D, ww as tf.Tensor2D),
    (s, ww) => tf.matMul(s as tf.Tensor2D, ww as tf.Tensor2D, false, true),
  ) as tf.Tensor2D;
}

/**
 * LRP through a stride-1 convolution z = conv(x, w) + bias: x [b, h, w, c], w [kh, kw, c, o], relevance
 * [b, h', w', o] -> [b, h, w, c].
 */
export function lrpConv2d(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  bias: tf.Tensor1D | null,
  relevance: tf.Tensor4D,
  rule: LrpRule,
  padding: ConvPadding = 'same',
): tf.Tensor4D {
  const fn = 'lrpConv2d';
  checkRule(fn, rule);
  if (padding !== 'same' && padding !== 'valid')
    throw new RangeError(`${fn}: padding must be 'same' or 'valid', got ${JSON.stringify(padding)}`);
  expectShape(fn, 'x', x.shape, [null, null, null, null]);
  expectShape(fn, 'w', w.shape, [null, null, x.shape[3], null]);
  if (bias) expectShape(fn, 'bias', bias.shape, [w.shape[3]]);
  const [b, h, wd] = x.shape;
  const outH = padding === 'same' ? h : h - w.shape[0] + 1;
  const outW = padding === 'same' ? wd : wd - w.shape[1] + 1;
  expectShape(fn, 'relevance', relevance.shape, [b, outH, outW, w.shape[3]]);
  return linearRule(
    x,
    w,
    bias,
    relevance,
    rule,
    (a, ww) => tf.conv2d(a as tf.Tensor4D, ww as tf.Tensor4D, 1, padding),
    (s, ww) => tf.conv2dTranspose(s as tf.Tensor4D, ww as tf.Tensor4D, x.shape, 1, padding),
  ) as tf.Tensor4D;
}

/** Nearest-neighbour upsampling by k of [b, h, w, c]: each value fills its k x k window. */
function upsample(t: tf.Tensor4D, k: number): tf.Tensor4D {
  const [b, h, w, c] = t.shape;
  return tf.tidy(() =>
    tf.tile(t.reshape([b, h, 1, w, 1, c]), [1, 1, k, 1, k, 1]).reshape([b, h * k, w * k, c]),
  ) as tf.Tensor4D;
}

/**
 * LRP through a k x k max-pool with stride k: each output's relevance goes to its window's maximum (split equally
 * among tied maxima). x [b, h, w, c], relevance [b, h/k, w/k, c] -> [b, h, w, c].
 */
export function lrpMaxPool(x: tf.Tensor4D, relevance: tf.Tensor4D, k = 2): tf.Tensor4D {
  const fn = 'lrpMaxPool';
  if (!(Number.isInteger(k) && k >= 1)) throw new RangeError(`${fn}: k must be an integer >= 1, got ${k}`);
  expectShape(fn, 'x', x.shape, [null, null, null, null]);
  const [b, h, w, c] = x.shape;
  if (h % k !== 0 || w % k !== 0)
    throw new RangeError(`${fn}: x's height and width must be multiples of k = ${k}, got ${shapeText(x.shape)}`);
  expectShape(fn, 'relevance', relevance.shape, [b, h / k, w / k, c]);
  return tf.tidy(() => {
    const pooled = tf.maxPool(x, k, k, 'valid');
    const winner = tf.cast(tf.equal(x, upsample(pooled, k)), 'float32');
    const winners = tf.mul(tf.avgPool(winner as tf.Tensor4D, k, k, 'valid'), k * k);
    return tf.mul(winner, upsample(tf.div(relevance, winners) as tf.Tensor4D, k));
  }) as tf.Tensor4D;
}

// ---------------------------------------------------------------------------------------------------------------
// Float64 references: plain loops over Float64Array, row-major in the same layouts as the tensor functions.

/** A float64 array with its shape (row-major). */
export interface Array64 {
  data: Float64Array;
  shape: number[];
}

export const array64 = (data: ArrayLike<number>, shape: number[]): Array64 => ({
  data: Float64Array.from(data),
  shape: [...shape],
});

/** Shares R_j over the contributions c_ij (i in inputs of j) with one rule; returns R_i. */
function shareReference(
  contributions: (j: number, visit: (i: number, c: number) => void) => void,
  nIn: number,
  nOut: number,
  bias: (j: number) => number,
  relevance: (j: number) => number,
  rule: LrpRule,
): Float64Array {
  const out = new Float64Array(nIn);
  for (let j = 0; j < nOut; j++) {
    const r = relevance(j);
    const bj = bias(j);
    if (rule.kind === 'epsilon') {
      let z = bj;
      contributions(j, (_i, c) => {
        z += c;
      });
      const denom = rule.epsilon > 0 ? z + rule.epsilon * (z >= 0 ? 1 : -1) : z;
      if (denom === 0) continue;
      contributions(j, (i, c) => {
        out[i] += (c / denom) * r;
      });
    } else {
      let zp = Math.max(bj, 0);
      let zn = Math.min(bj, 0);
      contributions(j, (_i, c) => {
        if (c > 0) zp += c;
        else zn += c;
      });
      contributions(j, (i, c) => {
        if (c > 0 && zp !== 0) out[i] += ((rule.alpha * c) / zp) * r;
        else if (c < 0 && zn !== 0) out[i] -= ((rule.beta * c) / zn) * r;
      });
    }
  }
  return out;
}

/** Float64 reference of `lrpDense`. */
export function lrpDenseReference(
  x: Array64,
  w: Array64,
  bias: Array64 | null,
  relevance: Array64,
  rule: LrpRule,
): Array64 {
  const [b, ni] = x.shape;
  const no = w.shape[1];
  const out = new Float64Array(b * ni);
  for (let n = 0; n < b; n++) {
    const r = shareReference(
      (j, visit) => {
        for (let i = 0; i < ni; i++) visit(i, x.data[n * ni + i] * w.data[i * no + j]);
      },
      ni,
      no,
      (j) => (bias ? bias.data[j] : 0),
      (j) => relevance.data[n * no + j],
      rule,
    );
    out.set(r, n * ni);
  }
  return { data: out, shape: [b, ni] };
}

/** Float64 reference of `lrpConv2d` (stride 1; 'same' pads (k-1)/2 before, as tfjs does for odd k). */
export function lrpConv2dReference(
  x: Array64,
  w: Array64,
  bias: Array64 | null,
  relevance: Array64,
  rule: LrpRule,
  padding: ConvPadding = 'same',
): Array64 {
  const [b, h, wd, c] = x.shape;
  const [kh, kw, , o] = w.shape;
  const [, oh, ow] = relevance.shape;
  const padTop = padding === 'same' ? Math.floor((kh - 1) / 2) : 0;
  const padLeft = padding === 'same' ? Math.floor((kw - 1) / 2) : 0;
  const out = new Float64Array(x.data.length);
  for (let n = 0; n < b; n++) {
    const r = shareReference(
      (j, visit) => {
        const oc = j % o;
        const oxy = Math.floor(j / o);
        const oy = Math.floor(oxy / ow);
        const ox = oxy % ow;
        for (let dy = 0; dy < kh; dy++) {
          const iy = oy + dy - padTop;
          if (iy < 0 || iy >= h) continue;
          for (let dx = 0; dx < kw; dx++) {
            const ix = ox + dx - padLeft;
            if (ix < 0 || ix >= wd) continue;
            for (let ic = 0; ic < c; ic++) {
              const i = (iy * wd + ix) * c + ic;
              visit(i, x.data[n * h * wd * c + i] * w.data[((dy * kw + dx) * c + ic) * o + oc]);
            }
          }
        }
      },
      h * wd * c,
      oh * ow * o,
      (j) => (bias ? bias.data[j % o] : 0),
      (j) => relevance.data[n * oh * ow * o + j],
      rule,
    );
    out.set(r, n * h * wd * c);
  }
  return { data: out, shape: [...x.shape] };
}

/** Float64 reference of `lrpMaxPool`. */
export function lrpMaxPoolReference(x: Array64, relevance: Array64, k = 2): Array64 {
  const [b, h, w, c] = x.shape;
  const oh = h / k;
  const ow = w / k;
  const out = new Float64Array(x.data.length);
  const at = (n: number, y: number, xx: number, ch: number): number => ((n * h + y) * w + xx) * c + ch;
  for (let n = 0; n < b; n++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity;
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) best = Math.max(best, x.data[at(n, oy * k + dy, ox * k + dx, ch)]);
          let ties = 0;
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) if (x.data[at(n, oy * k + dy, ox * k + dx, ch)] === best) ties++;
          const r = relevance.data[((n * oh + oy) * ow + ox) * c + ch] / ties;
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) {
              const i = at(n, oy * k + dy, ox * k + dx, ch);
              if (x.data[i] === best) out[i] = r;
            }
        }
  return { data: out, shape: [...x.shape] };
}

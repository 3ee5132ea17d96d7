/**
 * ACT: attention calibration of hidden attention sinks, training-free.
 *
 * Paper: Yu, Wang, Zhang, Fu, Lin, 2024 (ICML), "Unveiling and Harnessing Hidden Attention Sinks: Training-Free
 * Attention Calibration for Enhancing Large Language Models", https://arxiv.org/abs/2406.15765
 * (code: https://github.com/GATECH-EIC/ACT).
 *
 * Sinks are not only the first token: delimiters such as '.' and '\n' collect attention too. Per head and prompt:
 *
 *   sink test     s_j = (Σ_i A_ij) / (N − j), the mean attention key j gets from the N − j queries that see it;
 *                 j ≥ 1 is a sink when s_j > τ (token 0 is never touched)
 *   calibration   A'_ij = β·A_ij on sink columns; the freed mass (1 − β)·Σ_{j∈sinks} A_ij goes to the row's other keys
 *                 in proportion to their weights: A'_ij = A_ij + (1 − β)·Σ_{sinks} A_i· · A_ij / Σ_{non-sinks} A_i·
 *   selection     a head is calibrated only if doing so (alone) raises accuracy on a calibration set
 *
 * Rows keep summing to what they summed to. The official code's defaults: β = 0.4, τ = 0.1.
 *
 * Shape legend: b batch, h heads, s positions (causal; queries = keys).
 *   weights [b, h, s, s] -> sinks [b, h, s] (0/1), calibrated weights [b, h, s, s]
 */
import * as tf from '@tensorflow/tfjs';
import { fmt, ShapeError } from '../../../util/shapes.js';

/** The official code's defaults. */
export const ACT_BETA = 0.4;
export const ACT_THRESHOLD = 0.1;

export interface CalibrationOptions {
  /** Scale of the sinks' attention, in [0, 1] (1 changes nothing). */
  beta: number;
  /** Column-mean threshold τ of the sink test. */
  threshold: number;
  /** 0/1 per head: which heads are calibrated (default all). */
  heads?: readonly number[];
}

function checkWeights(fn: string, weights: tf.Tensor): [number, number, number] {
  if (weights.rank !== 4 || weights.shape[2] !== weights.shape[3])
    throw new ShapeError(
      `${fn}: weights must have shape [batch, heads, queries, keys] with queries = keys (causal self-attention), got ${fmt(weights.shape)}`,
    );
  return [weights.shape[0], weights.shape[1], weights.shape[2]] as [number, number, number];
}

function checkOptions(fn: string, o: CalibrationOptions, heads: number): void {
  if (!(o.beta >= 0 && o.beta <= 1)) throw new RangeError(`${fn}: options.beta must be in [0, 1], got ${o.beta}`);
  if (!(o.threshold >= 0 && o.threshold <= 1))
    throw new RangeError(`${fn}: options.threshold must be in [0, 1], got ${o.threshold}`);
  if (o.heads !== undefined && (o.heads.length !== heads || o.heads.some((x) => x !== 0 && x !== 1)))
    throw new RangeError(
      `${fn}: options.heads must be ${heads} zeros and ones (one per head), got [${o.heads.join(', ')}]`,
    );
}

/** The sink test: 1 where key j ≥ 1 gets a mean attention above `threshold` from the queries that see it. -> [b, h, s] */
export function sinkColumns(weights: tf.Tensor, threshold = ACT_THRESHOLD): tf.Tensor3D {
  const fn = 'sinkColumns';
  const [, , s] = checkWeights(fn, weights);
  if (!(threshold >= 0 && threshold <= 1)) throw new RangeError(`${fn}: threshold must be in [0, 1], got ${threshold}`);
  return tf.tidy(() => {
    const seen = tf.range(s, 0, -1); // N − j queries see key j
    const colMean = weights.sum(2).div(seen); // [b, h, s]
    const notFirst = tf.concat([tf.zeros([1]), tf.ones([s - 1])]);
    return colMean.greater(threshold).toFloat().mul(notFirst) as tf.Tensor3D;
  });
}

/** Float64 reference of {@link sinkColumns}. */
export function sinkColumnsNaive(
  weights: ArrayLike<number>,
  shape: [number, number, number, number],
  threshold: number,
): Float64Array {
  const [B, H, S] = shape;
  const out = new Float64Array(B * H * S);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let j = 1; j < S; j++) {
        let acc = 0;
        for (let i = 0; i < S; i++) acc += weights[((b * H + h) * S + i) * S + j];
        out[(b * H + h) * S + j] = acc / (S - j) > threshold ? 1 : 0;
      }
  return out;
}

/** sinkColumns with a zero gradient: the sink set is a discrete choice, held fixed when differentiating. */
function heldFixed(weights: tf.Tensor, threshold: number): tf.Tensor3D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const w = args[0] as tf.Tensor;
    return { value: sinkColumns(w, threshold), gradFunc: () => tf.zerosLike(w) };
  });
  return f(weights) as tf.Tensor3D;
}

/** ACT's calibration (module header) of the heads `options.heads` selects. weights [b, h, s, s] -> same shape. */
export function calibrateAttention(weights: tf.Tensor, options: CalibrationOptions): tf.Tensor4D {
  const fn = 'calibrateAttention';
  const [, h] = checkWeights(fn, weights);
  checkOptions(fn, options, h);
  return tf.tidy(() => {
    const sinks = heldFixed(weights, options.threshold).expandDims(2); // [b, h, 1, s]
    const onSinks = weights.mul(sinks).sum(-1, true); // [b, h, s, 1]
    const others = weights.mul(tf.scalar(1).sub(sinks)); // [b, h, s, s]
    const share = others.div(others.sum(-1, true).maximum(1e-30));
    let calibrated = weights
      .mul(tf.scalar(1).sub(sinks.mul(1 - options.beta)))
      .add(share.mul(onSinks.mul(1 - options.beta)));
    if (options.heads) {
      const sel = tf.tensor1d(options.heads as number[]).reshape([1, h, 1, 1]);
      calibrated = calibrated.mul(sel).add(weights.mul(tf.scalar(1).sub(sel)));
    }
    return calibrated as tf.Tensor4D;
  });
}

/** Float64 reference of {@link calibrateAttention}. */
export function calibrateAttentionNaive(
  weights: ArrayLike<number>,
  shape: [number, number, number, number],
  options: CalibrationOptions,
): Float64Array {
  const [B, H, S] = shape;
  const sinks = sinkColumnsNaive(weights, shape, options.threshold);
  const out = Float64Array.from(weights);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      if (options.heads && options.heads[h] === 0) continue;
      const m = (j: number) => sinks[(b * H + h) * S + j];
      for (let i = 0; i < S; i++) {
        const row = ((b * H + h) * S + i) * S;
        let freed = 0;
        let rest = 0;
        for (let j = 0; j < S; j++) {
          if (m(j)) freed += (1 - options.beta) * weights[row + j];
          else rest += weights[row + j];
        }
        for (let j = 0; j < S; j++)
          out[row + j] = m(j)
            ? options.beta * weights[row + j]
            : weights[row + j] + (rest > 0 ? (freed * weights[row + j]) / rest : 0);
      }
    }
  return out;
}

/**
 * Mean attention mass per head that the queries put on the marked keys, over every query of every prompt:
 * weights [b, h, s, s], marked [b, s] (0/1) -> [h].
 */
export function markedMass(weights: tf.Tensor, marked: tf.Tensor): tf.Tensor1D {
  const fn = 'markedMass';
  const [b, , s] = checkWeights(fn, weights);
  if (marked.rank !== 2 || marked.shape[0] !== b || marked.shape[1] !== s)
    throw new ShapeError(`${fn}: marked must have shape [${b}, ${s}] (batch, keys), got ${fmt(marked.shape)}`);
  return tf.tidy(
    () =>
      weights
        .mul(marked.toFloat().reshape([b, 1, 1, s]))
        .sum(-1)
        .mean([0, 2]) as tf.Tensor1D,
  );
}

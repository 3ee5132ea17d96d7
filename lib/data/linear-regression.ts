/**
 * In-context linear regression prompts (Garg et al. 2022; He, Pan, Chen, Yang, ICML 2025, §2): each row is its own
 * regression problem. A weight vector β ~ N(0, I_d / d) is drawn per row, then n context pairs and one query:
 *
 *   x_i, x_q ~ N(0, I_d),   y_i = βᵀx_i + ε_i,   y_q = βᵀx_q + ε_q,   ε ~ N(0, σ²)
 *
 * The model sees the tokens z_i = (x_i, y_i) ∈ R^{d+1} and the query token z_q = (x_q, 0), and predicts y_q. The
 * prior β ~ N(0, I/d) keeps E[y²] = 1 + σ² whatever d is (the official code's scaling), and makes ridge regression
 * with λ = σ²·d the Bayes-optimal predictor (`ridgePredict` in lib/papers/dynamics/icl-regression).
 *
 * Splits. The data are continuous, so the train, validation and test splits are made disjoint by drawing each from
 * its own random stream (`new Rng(seed).fork('linearRegression:' + split)`): two splits share no draws and coincide
 * with probability zero.
 *
 * Worked example (`{ batch: 1, n: 2, d: 2, noiseStd: 0 }`, β = (1, -1)):
 * ```
 * x  = [[0.5, 2], [1, 1]]      y  = [-1.5, 0]
 * xq = [2, 0]                  yq = 2
 * z  = [[0.5, 2, -1.5], [1, 1, 0]]   (tokens [b, n, d+1])
 * zq = [[2, 0, 0]]                   (query token [b, 1, d+1]: its y entry is 0)
 * ```
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/random.js';

export type RegressionSplit = 'train' | 'validation' | 'test';

export interface LinearRegressionConfig {
  /** Rows (prompts). */
  batch: number;
  /** Context pairs per row. */
  n: number;
  /** Covariate dimension. */
  d: number;
  /** σ, the standard deviation of the label noise (the paper's σ² = 0.1 is noiseStd ≈ 0.316). */
  noiseStd: number;
  seed: number;
  split?: RegressionSplit;
}

/** A batch of prompts as float64 arrays (row-major), with `toTensors` for a model. */
export interface LinearRegressionBatch {
  batch: number;
  n: number;
  d: number;
  noiseStd: number;
  /** Context covariates [batch, n, d]. */
  x: Float64Array;
  /** Context labels [batch, n]. */
  y: Float64Array;
  /** Query covariates [batch, d]. */
  xq: Float64Array;
  /** Query labels [batch] (with noise: the target). */
  yq: Float64Array;
  /** Each row's weights [batch, d]. */
  beta: Float64Array;
  /** Tokens z [batch, n, d+1], the query token zq [batch, 1, d+1] (y entry 0) and the targets yq [batch]. */
  toTensors(): { z: tf.Tensor3D; zq: tf.Tensor3D; yq: tf.Tensor1D };
}

const SPLITS: readonly RegressionSplit[] = ['train', 'validation', 'test'];

function checkInt(arg: string, v: unknown, min: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new RangeError(`linearRegressionTask: ${arg} must be an integer >= ${min}, got ${String(v)}`);
}

/** Draws `batch` in-context regression prompts of one split. */
export function linearRegressionTask(cfg: LinearRegressionConfig): LinearRegressionBatch {
  checkInt('batch', cfg.batch, 1);
  checkInt('n', cfg.n, 1);
  checkInt('d', cfg.d, 1);
  if (typeof cfg.noiseStd !== 'number' || !(cfg.noiseStd >= 0) || !Number.isFinite(cfg.noiseStd))
    throw new RangeError(`linearRegressionTask: noiseStd must be a finite number >= 0, got ${String(cfg.noiseStd)}`);
  if (typeof cfg.seed !== 'number' || !Number.isFinite(cfg.seed))
    throw new RangeError(`linearRegressionTask: seed must be a finite number, got ${String(cfg.seed)}`);
  const split = cfg.split ?? 'train';
  if (!SPLITS.includes(split))
    throw new RangeError(`linearRegressionTask: split must be one of ${SPLITS.join(', ')}, got ${String(split)}`);
  const { batch, n, d, noiseStd } = cfg;
  const rng = new Rng(cfg.seed).fork(`linearRegression:${split}`);
  const x = new Float64Array(batch * n * d);
  const y = new Float64Array(batch * n);
  const xq = new Float64Array(batch * d);
  const yq = new Float64Array(batch);
  const beta = new Float64Array(batch * d);
  const sb = 1 / Math.sqrt(d);
  for (let b = 0; b < batch; b++) {
    for (let k = 0; k < d; k++) beta[b * d + k] = rng.normal() * sb;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        const v = rng.normal();
        x[(b * n + i) * d + k] = v;
        s += v * beta[b * d + k];
      }
      y[b * n + i] = s + noiseStd * rng.normal();
    }
    let s = 0;
    for (let k = 0; k < d; k++) {
      const v = rng.normal();
      xq[b * d + k] = v;
      s += v * beta[b * d + k];
    }
    yq[b] = s + noiseStd * rng.normal();
  }
  return {
    batch,
    n,
    d,
    noiseStd,
    x,
    y,
    xq,
    yq,
    beta,
    toTensors() {
      const e = d + 1;
      const z = new Float32Array(batch * n * e);
      const zq = new Float32Array(batch * e);
      for (let b = 0; b < batch; b++) {
        for (let i = 0; i < n; i++) {
          for (let k = 0; k < d; k++) z[(b * n + i) * e + k] = x[(b * n + i) * d + k];
          z[(b * n + i) * e + d] = y[b * n + i];
        }
        for (let k = 0; k < d; k++) zq[b * e + k] = xq[b * d + k];
      }
      return {
        z: tf.tensor3d(z, [batch, n, e]),
        zq: tf.tensor3d(zq, [batch, 1, e]),
        yq: tf.tensor1d(Float32Array.from(yq)),
      };
    },
  };
}

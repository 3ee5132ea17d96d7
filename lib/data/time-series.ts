/**
 * Procedural time series for sequence models that read one value per step: noisy multi-sine forecasting and waveform
 * classification (the small stand-ins for the forecasting and classification benchmarks of Feng et al. 2024, "Attention
 * as an RNN", https://arxiv.org/abs/2405.13956).
 *
 * Forecasting (`multiSineTask`): each row is a sum of K sines with its own periods, amplitudes and phases, plus white
 * noise; the model reads the first `context` values and predicts the next `horizon` (noisy) values.
 *
 *   x_t = Σ_k a_k sin(2π t / P_k + φ_k) / √K + ε_t,   P_k ~ U[minPeriod, maxPeriod], a_k ~ U[0.5, 1.5],
 *   φ_k ~ U[0, 2π), ε_t ~ N(0, σ²)
 *
 * The noise is the floor no forecaster can beat: the best possible test MSE is σ².
 *
 * Classification (`waveformTask`): each row is one waveform shape (0 sine, 1 square, 2 sawtooth, 3 triangle) with a
 * random period, phase and amplitude, plus white noise; the label is the shape. Period and amplitude are drawn from the
 * same ranges for every class, so only the shape tells the classes apart.
 *
 * Splits. The data are continuous, so the train, validation and test splits are made disjoint by drawing each from
 * its own random stream (`new Rng(seed).fork('timeSeries:<task>:' + split)`): two splits share no draws and coincide
 * with probability zero.
 *
 * Worked example (`multiSineTask({ batch: 1, context: 4, horizon: 2, components: 1, noiseStd: 0, ... })` with a drawn
 * period 4, amplitude 1, phase 0): x = [0, 1, 0, -1 | 0, 1]: `inputs` row [0, 1, 0, -1], `targets` row [0, 1].
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/random.js';

export type TimeSeriesSplit = 'train' | 'validation' | 'test';

export interface MultiSineConfig {
  /** Rows. */
  batch: number;
  /** Values the model reads. */
  context: number;
  /** Values it forecasts after the context. */
  horizon: number;
  /** K, sines per row (default 3). */
  components?: number;
  /** σ of the white noise (default 0.1). */
  noiseStd?: number;
  /** Period range in steps (defaults 6 and 40). */
  minPeriod?: number;
  maxPeriod?: number;
  seed: number;
  split?: TimeSeriesSplit;
}

/** Rows of a forecasting task as float64 arrays (row-major), with `toTensors` for a model. */
export interface MultiSineBatch {
  batch: number;
  context: number;
  horizon: number;
  noiseStd: number;
  /** The whole noisy series [batch, context + horizon]. */
  series: Float64Array;
  /** The same series without noise [batch, context + horizon]. */
  clean: Float64Array;
  /** inputs [batch, context, 1] (the first `context` values), targets [batch, horizon] (the next `horizon`). */
  toTensors(): { inputs: tf.Tensor3D; targets: tf.Tensor2D };
}

function positiveInt(fn: string, name: string, x: unknown): void {
  if (!(typeof x === 'number' && Number.isInteger(x) && x > 0))
    throw new Error(`${fn}: ${name} must be an integer > 0, got ${JSON.stringify(x)}`);
}

function checkSplit(fn: string, split: unknown): void {
  if (split !== 'train' && split !== 'validation' && split !== 'test')
    throw new Error(`${fn}: split must be 'train', 'validation' or 'test', got ${JSON.stringify(split)}`);
}

/** The settings both generators share: noise, the period range and the seed. */
function checkNoisePeriodsSeed(fn: string, noiseStd: number, minPeriod: number, maxPeriod: number, seed: number): void {
  if (!(Number.isFinite(noiseStd) && noiseStd >= 0))
    throw new Error(`${fn}: noiseStd must be a finite number >= 0, got ${noiseStd}`);
  if (!(minPeriod >= 2 && maxPeriod >= minPeriod))
    throw new Error(
      `${fn}: periods need 2 <= minPeriod <= maxPeriod, got minPeriod ${minPeriod}, maxPeriod ${maxPeriod}`,
    );
  if (!Number.isFinite(seed)) throw new Error(`${fn}: seed must be a finite number, got ${seed}`);
}

/** Noisy multi-sine forecasting rows (see the module header). */
export function multiSineTask(config: MultiSineConfig): MultiSineBatch {
  const fn = 'multiSineTask';
  const { batch, context, horizon, seed } = config;
  const components = config.components ?? 3;
  const noiseStd = config.noiseStd ?? 0.1;
  const minPeriod = config.minPeriod ?? 6;
  const maxPeriod = config.maxPeriod ?? 40;
  const split = config.split ?? 'train';
  positiveInt(fn, 'batch', batch);
  positiveInt(fn, 'context', context);
  positiveInt(fn, 'horizon', horizon);
  positiveInt(fn, 'components', components);
  checkSplit(fn, split);
  checkNoisePeriodsSeed(fn, noiseStd, minPeriod, maxPeriod, seed);
  const rng = new Rng(seed).fork(`timeSeries:multiSine:${split}`);
  const n = context + horizon;
  const series = new Float64Array(batch * n);
  const clean = new Float64Array(batch * n);
  for (let r = 0; r < batch; r++) {
    const waves = Array.from({ length: components }, () => ({
      period: minPeriod + (maxPeriod - minPeriod) * rng.next(),
      amp: 0.5 + rng.next(),
      phase: 2 * Math.PI * rng.next(),
    }));
    for (let t = 0; t < n; t++) {
      let x = 0;
      for (const w of waves) x += w.amp * Math.sin((2 * Math.PI * t) / w.period + w.phase);
      x /= Math.sqrt(components);
      clean[r * n + t] = x;
      series[r * n + t] = x + noiseStd * rng.normal();
    }
  }
  return {
    batch,
    context,
    horizon,
    noiseStd,
    series,
    clean,
    toTensors() {
      const inputs = new Float32Array(batch * context);
      const targets = new Float32Array(batch * horizon);
      for (let r = 0; r < batch; r++) {
        for (let t = 0; t < context; t++) inputs[r * context + t] = series[r * n + t];
        for (let t = 0; t < horizon; t++) targets[r * horizon + t] = series[r * n + context + t];
      }
      return { inputs: tf.tensor3d(inputs, [batch, context, 1]), targets: tf.tensor2d(targets, [batch, horizon]) };
    },
  };
}

export const WAVEFORMS = ['sine', 'square', 'sawtooth', 'triangle'] as const;
export type Waveform = (typeof WAVEFORMS)[number];

export interface WaveformConfig {
  batch: number;
  /** Steps per row. */
  length: number;
  /** σ of the white noise (default 0.3). */
  noiseStd?: number;
  /** Period range in steps (defaults 6 and 30). */
  minPeriod?: number;
  maxPeriod?: number;
  seed: number;
  split?: TimeSeriesSplit;
}

/** Rows of the waveform classification task, with `toTensors` for a model. */
export interface WaveformBatch {
  batch: number;
  length: number;
  noiseStd: number;
  /** Noisy series [batch, length]. */
  series: Float64Array;
  /** Class of each row, an index into {@link WAVEFORMS} [batch]. */
  labels: Int32Array;
  /** inputs [batch, length, 1], labels [batch] (int32). */
  toTensors(): { inputs: tf.Tensor3D; labels: tf.Tensor1D };
}

/** The shape of each waveform at phase p in [0, 1): values in [-1, 1]. */
function waveAt(kind: number, p: number): number {
  if (kind === 0) return Math.sin(2 * Math.PI * p);
  if (kind === 1) return p < 0.5 ? 1 : -1;
  if (kind === 2) return 2 * p - 1;
  return p < 0.5 ? 4 * p - 1 : 3 - 4 * p;
}

/** Noisy waveform rows labelled by their shape (see the module header). */
export function waveformTask(config: WaveformConfig): WaveformBatch {
  const fn = 'waveformTask';
  const { batch, length, seed } = config;
  const noiseStd = config.noiseStd ?? 0.3;
  const minPeriod = config.minPeriod ?? 6;
  const maxPeriod = config.maxPeriod ?? 30;
  const split = config.split ?? 'train';
  positiveInt(fn, 'batch', batch);
  positiveInt(fn, 'length', length);
  checkSplit(fn, split);
  checkNoisePeriodsSeed(fn, noiseStd, minPeriod, maxPeriod, seed);
  const rng = new Rng(seed).fork(`timeSeries:waveform:${split}`);
  const series = new Float64Array(batch * length);
  const labels = new Int32Array(batch);
  for (let r = 0; r < batch; r++) {
    const kind = rng.int(0, WAVEFORMS.length);
    const period = minPeriod + (maxPeriod - minPeriod) * rng.next();
    const phase = rng.next();
    const amp = 0.5 + rng.next();
    labels[r] = kind;
    for (let t = 0; t < length; t++) {
      const p = (((t / period + phase) % 1) + 1) % 1;
      series[r * length + t] = amp * waveAt(kind, p) + noiseStd * rng.normal();
    }
  }
  return {
    batch,
    length,
    noiseStd,
    series,
    labels,
    toTensors() {
      return {
        inputs: tf.tensor3d(Float32Array.from(series), [batch, length, 1]),
        labels: tf.tensor1d(labels, 'int32'),
      };
    },
  };
}

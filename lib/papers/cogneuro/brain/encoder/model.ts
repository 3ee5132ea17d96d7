/**
 * What every trained encoding model offers, and the loop that fits one to voxel responses (mean squared error on
 * responses standardised per voxel with training statistics). Shape legend: b batch, N tokens, C channels, V voxels.
 */
import * as tf from '@tensorflow/tfjs';
import { type StepRecord, train } from '../../../../train/loop.js';
import type { ProgressMode } from '../../../../train/progress.js';
import { Rng } from '../../../../util/random.js';
import { columnStats, type Mat, mat } from '../stats.js';

export interface RegionVoxels {
  name: string;
  /** Column indices of the region's voxels in the response matrix. */
  voxels: number[];
}

export interface EncodingModel {
  name: string;
  /** Trainable variables by name (empty for closed-form models). */
  params: Record<string, tf.Variable>;
  /** features [b, N, C] -> predicted responses [b, V] (standardised units). */
  predict(features: tf.Tensor3D): tf.Tensor2D;
  /** Free parameters (block-sparse weights count only their non-zero blocks). */
  paramCount: number;
  /** A penalty added to the training loss (e.g. L1 on spatial masks); a scalar. */
  penalty?(): tf.Scalar;
  dispose(): void;
}

export interface FitConfig {
  steps: number;
  batch: number;
  lr: number;
  weightDecay: number;
}

/** Standardise responses with the training split's per-voxel mean and sd, so losses weigh voxels equally. */
export function standardiser(train: Mat): (m: Mat) => Mat {
  const { mean, std } = columnStats(train);
  return (m) =>
    mat(
      m.rows,
      m.cols,
      m.data.map((x, i) => (x - mean[i % m.cols]) / std[i % m.cols]),
    );
}

/** Fit a model by minibatch MSE with AdamW and a cosine schedule; minibatches drawn from `seed`. */
export async function fitEncoding(
  model: EncodingModel,
  features: tf.Tensor3D,
  responses: Mat,
  cfg: FitConfig,
  opts: { seed: number; progress?: ProgressMode },
): Promise<StepRecord[]> {
  const n = features.shape[0];
  const y = tf.tensor2d(Float32Array.from(responses.data), [responses.rows, responses.cols]);
  const rng = new Rng(opts.seed).fork('minibatches');
  let order: number[] = [];
  try {
    const run = await train({
      variables: model.params,
      steps: cfg.steps,
      optimizer: { type: 'adamw', lr: cfg.lr, weightDecay: cfg.weightDecay },
      schedule: { type: 'cosine', warmup: Math.round(cfg.steps * 0.03) },
      clipNorm: 5,
      seed: opts.seed,
      progress: opts.progress ?? false,
      dataframe: false,
      loss: () => {
        if (order.length < cfg.batch) order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
        const idx = tf.tensor1d(order.splice(0, cfg.batch), 'int32');
        const pred = model.predict(tf.gather(features, idx) as tf.Tensor3D);
        const mse = tf.mean(tf.square(tf.sub(pred, tf.gather(y, idx)))) as tf.Scalar;
        return model.penalty ? (tf.add(mse, model.penalty()) as tf.Scalar) : mse;
      },
    });
    if (run.stopped) throw new Error(`fitEncoding (${model.name}): ${run.stopped.message}`);
    return run.records;
  } finally {
    y.dispose();
  }
}

/** Predictions for many stimuli in batches, as a float64 matrix [n, V]. */
export function predictAll(model: EncodingModel, features: tf.Tensor3D, batch = 256): Mat {
  const n = features.shape[0];
  const parts: Float32Array[] = [];
  for (let i = 0; i < n; i += batch) {
    parts.push(
      tf.tidy(
        () =>
          model
            .predict(tf.slice(features, [i, 0, 0], [Math.min(batch, n - i), -1, -1]) as tf.Tensor3D)
            .dataSync() as Float32Array,
      ),
    );
  }
  const cols = parts[0].length / Math.min(batch, n);
  const out = mat(n, cols);
  let o = 0;
  for (const p of parts) {
    out.data.set(p, o);
    o += p.length;
  }
  return out;
}

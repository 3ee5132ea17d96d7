/**
 * The frozen feature extractor: a fixed random two-layer convolutional network (no training), giving a retinotopic
 * feature map. Random convolutions with ReLU and pooling already separate the scene categories by their local colour
 * and texture, which is all the simulated visual system needs: the voxels are defined on these same features, so the
 * question the models answer is *which locations* (routing) and *which features* (readout), not feature learning.
 *
 *   pixels [n, S, S, 3] -> conv 5x5 (c1, zero-mean filters for half the channels: edges; the rest: colour) -> ReLU
 *     -> avg-pool 2 -> conv 3x3 (C) -> ReLU -> avg-pool (S / 2 / G) -> [n, G, G, C]
 *     -> per-channel standardisation with statistics fixed at creation (on reference scenes of the same seed)
 *
 * Shape legend: n images, S image side, G grid side, N = G*G tokens, C channels.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../../util/random.js';
import { fmt, ShapeError } from '../../../../util/shapes.js';
import { DEFAULT_SCENES, drawScenes, type SceneConfig, stackPixels } from './scenes.js';

export interface FeatureConfig {
  imageSize: number;
  grid: number;
  hidden: number;
  channels: number;
}

export const DEFAULT_FEATURES: FeatureConfig = { imageSize: 32, grid: 8, hidden: 24, channels: 32 };

export interface FeatureExtractor {
  config: FeatureConfig;
  w1: tf.Tensor4D; // [5, 5, 3, hidden]
  w2: tf.Tensor4D; // [3, 3, hidden, C]
  mean: tf.Tensor1D; // [C]
  std: tf.Tensor1D; // [C]
}

function randomFilters(rng: Rng, k: number, cin: number, cout: number, zeroMeanCount: number): Float32Array {
  const out = new Float32Array(k * k * cin * cout);
  const scale = 1 / Math.sqrt(k * k * cin);
  for (let o = 0; o < cout; o++) {
    const w = Array.from({ length: k * k * cin }, () => rng.normal() * scale);
    if (o < zeroMeanCount) {
      const m = w.reduce((a, b) => a + b, 0) / w.length;
      for (let i = 0; i < w.length; i++) w[i] -= m;
    }
    w.forEach((x, i) => (out[i * cout + o] = x)); // layout [kh, kw, cin, cout]
  }
  return out;
}

function rawFeatures(fx: Pick<FeatureExtractor, 'w1' | 'w2' | 'config'>, pixels: tf.Tensor4D): tf.Tensor4D {
  const { imageSize: S, grid: G } = fx.config;
  const pool = S / 2 / G;
  return tf.tidy(() => {
    const h = tf.avgPool(tf.relu(tf.conv2d(pixels, fx.w1, 1, 'same')), 2, 2, 'valid');
    return tf.avgPool(tf.relu(tf.conv2d(h as tf.Tensor4D, fx.w2, 1, 'same')), pool, pool, 'valid') as tf.Tensor4D;
  });
}

/** Build the fixed extractor from a seed; channel statistics come from 256 reference scenes of that seed. */
export function createFeatureExtractor(
  config: Partial<FeatureConfig> = {},
  seed = 0,
  scenes: Partial<SceneConfig> = {},
): FeatureExtractor {
  const c = { ...DEFAULT_FEATURES, ...config };
  if (c.imageSize % (2 * c.grid) !== 0) {
    throw new ShapeError(
      `createFeatureExtractor: imageSize ${c.imageSize} must be a multiple of 2 * grid (${2 * c.grid})`,
    );
  }
  const rng = new Rng(seed).fork('features');
  const w1 = tf.tensor4d(randomFilters(rng, 5, 3, c.hidden, c.hidden / 2), [5, 5, 3, c.hidden]);
  const w2 = tf.tensor4d(randomFilters(rng, 3, c.hidden, c.channels, 0), [3, 3, c.hidden, c.channels]);
  const ref = drawScenes({ ...DEFAULT_SCENES, ...scenes, size: c.imageSize }, 256, rng.fork('reference'));
  const [mean, std] = tf.tidy(() => {
    const f = rawFeatures(
      { w1, w2, config: c },
      tf.tensor4d(stackPixels(ref), [ref.length, c.imageSize, c.imageSize, 3]),
    );
    const { mean, variance } = tf.moments(f, [0, 1, 2]);
    return [mean as tf.Tensor1D, tf.sqrt(tf.add(variance, 1e-6)) as tf.Tensor1D];
  });
  return { config: c, w1, w2, mean, std };
}

export function disposeFeatureExtractor(fx: FeatureExtractor): void {
  tf.dispose([fx.w1, fx.w2, fx.mean, fx.std]);
}

/** Features of images [n, S, S, 3] (values in [0, 1]) as tokens [n, N, C], in row-major grid order. */
export function extractFeatures(fx: FeatureExtractor, pixels: Float32Array | tf.Tensor4D, batch = 256): tf.Tensor3D {
  const { imageSize: S, grid: G, channels: C } = fx.config;
  const t = pixels instanceof tf.Tensor ? pixels : tf.tensor4d(pixels, [pixels.length / (S * S * 3), S, S, 3]);
  try {
    if (t.rank !== 4 || t.shape[1] !== S || t.shape[2] !== S || t.shape[3] !== 3) {
      throw new ShapeError(`extractFeatures: pixels must be [n, ${S}, ${S}, 3], got ${fmt(t.shape)}`);
    }
    const n = t.shape[0];
    const parts: tf.Tensor[] = [];
    for (let i = 0; i < n; i += batch) {
      parts.push(
        tf.tidy(() => {
          const f = rawFeatures(fx, tf.slice(t, [i, 0, 0, 0], [Math.min(batch, n - i), S, S, 3]));
          return tf.div(tf.sub(f, fx.mean), fx.std).reshape([-1, G * G, C]);
        }),
      );
    }
    const out = tf.concat(parts, 0) as tf.Tensor3D;
    tf.dispose(parts);
    return out;
  } finally {
    if (t !== pixels) t.dispose();
  }
}

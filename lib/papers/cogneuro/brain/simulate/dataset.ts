/**
 * A simulated experiment: scenes, their frozen features, and voxel responses on train / validation / test splits from
 * separate seeds. Training and validation stimuli are shown once; test stimuli `repeats` times, and models are scored
 * against the repeat average, whose noise ceiling is estimated from the repeats (noiseCeiling) as on real data, and
 * also given analytically from the SNR.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../../util/random.js';
import { analyticCeiling, averageRepeats, type Mat, mat, noiseCeiling } from '../stats.js';
import {
  createFeatureExtractor,
  disposeFeatureExtractor,
  extractFeatures,
  type FeatureConfig,
  type FeatureExtractor,
} from './features.js';
import { DEFAULT_SCENES, drawScenes, type Scene, type SceneConfig, stackPixels } from './scenes.js';
import {
  addNoise,
  type CategoryResponse,
  coverageTensor,
  createVisualSystem,
  defaultRegions,
  signal,
  type VisualSystem,
  type VisualSystemConfig,
} from './voxels.js';

export interface SimulationConfig {
  scenes: SceneConfig;
  features: FeatureConfig;
  voxelsPerRegion: number;
  snr: number;
  tau: number;
  /** Shape of the category voxels' response (voxels.ts; default 'attention'). */
  categoryResponse?: CategoryResponse;
  selectivity: number;
  prfScatter: number;
  train: number;
  validation: number;
  test: number;
  repeats: number;
}

export interface Split {
  scenes: Scene[];
  /** Frozen features [n, N, C]. */
  features: tf.Tensor3D;
  /** Category coverage [n, K, N]. */
  coverage: tf.Tensor3D;
  /** Noiseless standardised signal [n, V]. */
  signal: Mat;
  /** What models are fitted to or scored on: one presentation (train, validation) or the repeat mean (test) [n, V]. */
  responses: Mat;
  /** Test only: each presentation [r][n, V]. */
  repeats?: Mat[];
}

export interface Simulation {
  config: SimulationConfig;
  extractor: FeatureExtractor;
  system: VisualSystem;
  train: Split;
  validation: Split;
  test: Split;
  /** Per voxel, from the test repeats. */
  ceiling: Float64Array;
  /** sqrt(SNR·r / (SNR·r + 1)). */
  analyticCeiling: number;
}

/** Split seeds: the three splits never share a scene generator. */
export const splitSeed = (seed: number, split: 'train' | 'validation' | 'test' | 'reference'): number =>
  seed * 1_000_003 + { train: 11, validation: 503, test: 977, reference: 1553 }[split];

function makeSplit(
  fx: FeatureExtractor,
  cfg: SimulationConfig,
  n: number,
  seed: number,
): Omit<Split, 'signal' | 'responses'> {
  const scenes = drawScenes(cfg.scenes, n, new Rng(seed));
  const features = extractFeatures(fx, stackPixels(scenes));
  const coverage = coverageTensor(scenes, cfg.features.grid);
  return { scenes, features, coverage };
}

export function simulate(cfg: SimulationConfig, seed: number): Simulation {
  return simulateVariants(cfg, seed, [cfg.categoryResponse ?? 'attention'])[0];
}

/**
 * One simulation per category-response variant, on the same scenes, features, early voxels, weights w_v and noise
 * draws (a paired comparison): only the category voxels' response shape differs. The simulations share their
 * extractor and feature tensors; disposing each of them (disposeSimulation) frees the shared ones once.
 */
export function simulateVariants(
  cfg: SimulationConfig,
  seed: number,
  responses: readonly CategoryResponse[],
): Simulation[] {
  const extractor = createFeatureExtractor(cfg.features, seed, cfg.scenes);
  const ref = makeSplit(extractor, cfg, 512, splitSeed(seed, 'reference'));
  const splits = {
    train: makeSplit(extractor, cfg, cfg.train, splitSeed(seed, 'train')),
    validation: makeSplit(extractor, cfg, cfg.validation, splitSeed(seed, 'validation')),
    test: makeSplit(extractor, cfg, cfg.test, splitSeed(seed, 'test')),
  };
  try {
    return responses.map((categoryResponse) => {
      const sysCfg: VisualSystemConfig = {
        regions: defaultRegions(cfg.voxelsPerRegion, cfg.features.grid),
        snr: cfg.snr,
        tau: cfg.tau,
        categoryResponse,
        selectivity: cfg.selectivity,
        prfScatter: cfg.prfScatter,
      };
      const system = createVisualSystem(sysCfg, ref.features, ref.coverage, seed);
      const noise = new Rng(seed).fork('noise');
      const V = system.voxelCount;
      const build = (split: 'train' | 'validation' | 'test', repeats: number): Split => {
        const s = splits[split];
        const n = s.scenes.length;
        const clean = tf.tidy(() => signal(system, s.features, s.coverage).dataSync() as Float32Array);
        const reps = Array.from({ length: repeats }, () => mat(n, V, addNoise(clean, cfg.snr, noise)));
        return {
          ...s,
          signal: mat(n, V, clean),
          responses: repeats > 1 ? averageRepeats(reps) : reps[0],
          repeats: repeats > 1 ? reps : undefined,
        };
      };
      const train = build('train', 1);
      const validation = build('validation', 1);
      const test = build('test', cfg.repeats);
      return {
        config: { ...cfg, categoryResponse },
        extractor,
        system,
        train,
        validation,
        test,
        ceiling: noiseCeiling(test.repeats!),
        analyticCeiling: analyticCeiling(cfg.snr, cfg.repeats),
      };
    });
  } finally {
    tf.dispose([ref.features, ref.coverage]);
  }
}

/** Frees the extractor and the feature tensors (safe on simulations that share them: a tensor is freed once). */
export function disposeSimulation(sim: Simulation): void {
  disposeFeatureExtractor(sim.extractor);
  for (const s of [sim.train, sim.validation, sim.test]) tf.dispose([s.features, s.coverage]);
}

export const DEFAULT_SIMULATION: SimulationConfig = {
  scenes: DEFAULT_SCENES,
  features: { imageSize: 32, grid: 8, hidden: 24, channels: 32 },
  voxelsPerRegion: 24,
  snr: 1,
  tau: 6,
  selectivity: 2,
  prfScatter: 0.6,
  train: 1500,
  validation: 300,
  test: 300,
  repeats: 3,
};

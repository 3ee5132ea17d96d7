/**
 * The `brain-decoding` experiment: whole-brain parcel responses to the simulated scenes (visual pRF parcels, semantic
 * category parcels, noise parcels), a contrastive encoder to the scenes' fixed image embeddings, and top-1 / top-5
 * retrieval among held-out images (chance 1% and 5% with 100 candidates), using all parcels or the visual ones only.
 * Both encoders keep the weights with the best validation InfoNCE (a separate split of scenes). Artifacts: each
 * encoder's training losses, best step and test ranks, and the parcel kinds.
 */
import * as tf from '@tensorflow/tfjs';
import type { ExperimentContext, ExperimentOutput } from '../../../../experiments/contract.js';
import type { ProgressMode } from '../../../../train/progress.js';
import { Rng } from '../../../../util/random.js';
import { createEmbedder, disposeEmbedder, embed } from '../scuba/index.js';
import { splitSeed } from '../simulate/dataset.js';
import { createFeatureExtractor, disposeFeatureExtractor, extractFeatures } from '../simulate/features.js';
import { DEFAULT_SCENES, drawScenes, stackPixels } from '../simulate/scenes.js';
import { coverageTensor, createWholeBrain, type WholeBrain, wholeBrainResponses } from '../simulate/voxels.js';
import { type ContrastiveConfig, retrieval, trainContrastive } from './index.js';

export interface BrainDecodingConfig extends ContrastiveConfig {
  imageSize: number;
  grid: number;
  channels: number;
  parcels: number;
  visualFraction: number;
  semanticFraction: number;
  snr: number;
  embeddingDim: number;
  /** Weight of the category content in the image embedding (createEmbedder). */
  semanticWeight: number;
  train: number;
  /** Held-out pairs for early stopping, evaluated every `evalEvery` steps. */
  validation: number;
  evalEvery: number;
  /** Held-out candidates for retrieval (100 in the issue). */
  test: number;
}

export interface DecodingRun {
  brain: WholeBrain;
  results: Record<
    'whole' | 'visual',
    { top1: number; top5: number; ranks: number[]; losses: number[]; bestStep: number }
  >;
}

function pickColumns(x: Float32Array, cols: number, keep: number[]): Float32Array {
  const n = x.length / cols;
  const out = new Float32Array(n * keep.length);
  for (let i = 0; i < n; i++) keep.forEach((c, j) => (out[i * keep.length + j] = x[i * cols + c]));
  return out;
}

export async function runDecoding(
  cfg: BrainDecodingConfig,
  seed: number,
  progress: ProgressMode = false,
): Promise<DecodingRun> {
  const scenes = { ...DEFAULT_SCENES, size: cfg.imageSize };
  const fx = createFeatureExtractor({ imageSize: cfg.imageSize, grid: cfg.grid, channels: cfg.channels }, seed, scenes);
  const embedder = createEmbedder(cfg.channels, cfg.embeddingDim, seed, cfg.semanticWeight);
  const split = (n: number, s: number) => {
    const drawn = drawScenes(scenes, n, new Rng(s));
    const features = extractFeatures(fx, stackPixels(drawn));
    const coverage = coverageTensor(drawn, cfg.grid);
    return { features, coverage, images: embed(embedder, features, coverage) };
  };
  const ref = split(512, splitSeed(seed, 'reference'));
  const brain = createWholeBrain(
    { parcels: cfg.parcels, visualFraction: cfg.visualFraction, semanticFraction: cfg.semanticFraction, snr: cfg.snr },
    ref.features,
    ref.coverage,
    seed,
  );
  const tr = split(cfg.train, splitSeed(seed, 'train'));
  const va = split(cfg.validation, splitSeed(seed, 'validation'));
  const te = split(cfg.test, splitSeed(seed, 'test'));
  const noise = new Rng(seed).fork('parcel-noise');
  const xTrain = wholeBrainResponses(brain, tr.features, tr.coverage, noise);
  const xVal = wholeBrainResponses(brain, va.features, va.coverage, noise);
  const xTest = wholeBrainResponses(brain, te.features, te.coverage, noise);
  const visual = brain.kinds.flatMap((k, i) => (k === 'visual' ? [i] : []));
  const all = brain.kinds.map((_, i) => i);
  const results = {} as DecodingRun['results'];
  try {
    for (const [name, cols] of [
      ['whole', all],
      ['visual', visual],
    ] as const) {
      const validation = { x: pickColumns(xVal, cfg.parcels, cols), images: va.images, every: cfg.evalEvery };
      const { encoder, records, bestStep } = await trainContrastive(
        pickColumns(xTrain, cfg.parcels, cols),
        cols.length,
        tr.images,
        cfg,
        { seed, progress, validation },
      );
      const r = tf.tidy(() => {
        const z = encoder.encode(tf.tensor2d(pickColumns(xTest, cfg.parcels, cols), [cfg.test, cols.length]));
        return retrieval(z, te.images, [1, 5]);
      });
      encoder.dispose();
      results[name] = {
        top1: r.topk[1],
        top5: r.topk[5],
        ranks: r.ranks,
        losses: records.map((x) => x.loss),
        bestStep: bestStep ?? cfg.steps - 1,
      };
    }
  } finally {
    for (const s of [ref, tr, va, te]) tf.dispose([s.features, s.coverage, s.images]);
    disposeFeatureExtractor(fx);
    disposeEmbedder(embedder);
  }
  return { brain, results };
}

/** The experiment's artifacts (plain data, nothing to dispose). */
export interface BrainDecodingArtifacts {
  /** Parcel kinds in order: 'visual' | 'semantic' | 'noise'. */
  parcelKinds: WholeBrain['kinds'];
  /** Per parcel set: retrieval, the rank of each test image's true embedding, training losses and the step kept. */
  runs: DecodingRun['results'];
}

export async function runBrainDecoding(
  cfg: BrainDecodingConfig,
  ctx: ExperimentContext,
): Promise<ExperimentOutput<BrainDecodingArtifacts>> {
  const t0 = performance.now();
  const { brain, results } = await runDecoding(cfg, ctx.seed, ctx.progress);
  const count = (k: string) => brain.kinds.filter((x) => x === k).length;
  const metrics: Record<string, number> = {
    test_whole_top1: results.whole.top1,
    test_whole_top5: results.whole.top5,
    test_visual_top1: results.visual.top1,
    test_visual_top5: results.visual.top5,
    test_chance_top1: 1 / cfg.test,
    test_chance_top5: Math.min(1, 5 / cfg.test),
    train_whole_loss: results.whole.losses.at(-1)!,
    train_visual_loss: results.visual.losses.at(-1)!,
    validation_whole_best_step: results.whole.bestStep,
    validation_visual_best_step: results.visual.bestStep,
    seconds: (performance.now() - t0) / 1000,
  };
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  return {
    metrics,
    tables: {
      retrieval: [
        {
          parcels: `whole brain (${cfg.parcels}: ${count('visual')} visual, ${count('semantic')} semantic, ${count('noise')} noise)`,
          top1: results.whole.top1,
          top5: results.whole.top5,
        },
        { parcels: `visual only (${count('visual')})`, top1: results.visual.top1, top5: results.visual.top5 },
        { parcels: 'chance', top1: 1 / cfg.test, top5: Math.min(1, 5 / cfg.test) },
      ],
    },
    artifacts: { parcelKinds: brain.kinds, runs: results },
    summary: `Retrieval among ${cfg.test} held-out images: whole brain top-1 ${pct(results.whole.top1)}, top-5 ${pct(results.whole.top5)}; visual parcels only top-1 ${pct(results.visual.top1)}, top-5 ${pct(results.visual.top5)} (chance ${pct(1 / cfg.test)} / ${pct(5 / cfg.test)}).`,
  };
}

const base = {
  imageSize: 32,
  grid: 8,
  channels: 32,
  visualFraction: 0.2,
  semanticFraction: 0.2,
  snr: 1,
  embeddingDim: 32,
  semanticWeight: 1,
  test: 100,
  hidden: 128,
  temperature: 0.05,
  batch: 128,
  lr: 2e-3,
  weightDecay: 1e-2,
};

export const BRAIN_DECODING_QUICK: BrainDecodingConfig = {
  ...base,
  parcels: 100,
  train: 2000,
  validation: 200,
  evalEvery: 50,
  steps: 600,
};
export const BRAIN_DECODING_FULL: BrainDecodingConfig = {
  ...base,
  parcels: 200,
  train: 6000,
  validation: 500,
  evalEvery: 100,
  steps: 2000,
};

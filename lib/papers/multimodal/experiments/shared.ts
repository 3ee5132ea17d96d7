/**
 * The ToyVLM settings both multimodal experiments share: the model and its training. Two experiments with the same
 * settings and seed train the same model, and the second loads the first one's checkpoint (toyvlm/index.ts).
 */
import type { QueryKind } from '../../../data/scenes.js';
import { int, num } from '../../../experiments/schema.js';
import type { ToyVLMTrainConfig } from '../toyvlm/index.js';

export interface ToyVLMExperimentConfig {
  dModel: number;
  heads: number;
  encoderLayers: number;
  decoderLayers: number;
  steps: number;
  batch: number;
  lr: number;
  /** Probability that a training object takes its shape's prior colour. */
  prior: number;
  /** Probability that a training leading cue is right. */
  cueCorrect: number;
}

/**
 * The model and training of both experiments, quick and full: one value each, so that the sycophancy run always finds
 * the hallucination run's checkpoint (the same settings and seed train the same model).
 */
export const TOYVLM_QUICK: ToyVLMExperimentConfig = {
  dModel: 48,
  heads: 4,
  encoderLayers: 2,
  decoderLayers: 2,
  steps: 250,
  batch: 32,
  lr: 3e-3,
  prior: 0.9,
  cueCorrect: 0.95,
};
export const TOYVLM_FULL: ToyVLMExperimentConfig = { ...TOYVLM_QUICK, steps: 2500 };

/** Shares of the query kinds in training. */
export const TRAIN_MIX: Record<QueryKind, number> = { colour: 0.35, leading: 0.15, probe: 0.25, caption: 0.25 };

export const toyVLMConfigSchema = {
  dModel: int({ min: 4, max: 512 }),
  heads: int({ min: 1, max: 16 }),
  encoderLayers: int({ min: 1, max: 8 }),
  decoderLayers: int({ min: 1, max: 8 }),
  steps: int({ min: 1 }),
  batch: int({ min: 1 }),
  lr: num({ gt: 0 }),
  prior: num({ min: 0, max: 1 }),
  cueCorrect: num({ min: 0, max: 1 }),
};

export function toyVLMTrainConfig(c: ToyVLMExperimentConfig): ToyVLMTrainConfig {
  return {
    dModel: c.dModel,
    heads: c.heads,
    encoderLayers: c.encoderLayers,
    decoderLayers: c.decoderLayers,
    steps: c.steps,
    batch: c.batch,
    lr: c.lr,
    prior: c.prior,
    cueCorrect: c.cueCorrect,
    mix: TRAIN_MIX,
  };
}

/** The three brain experiments (listed in lib/catalog.ts): `brain-encoder`, `brain-captions`, `brain-decoding`. */
import { defineExperiment } from '../../../experiments/contract.js';
import { int, list, num, obj, oneOf, type Schema } from '../../../experiments/schema.js';
import {
  BRAIN_DECODING_FULL,
  BRAIN_DECODING_QUICK,
  type BrainDecodingArtifacts,
  type BrainDecodingConfig,
  runBrainDecoding,
} from './decoding/experiment.js';
import {
  BRAIN_ENCODER_FULL,
  BRAIN_ENCODER_QUICK,
  type BrainEncoderArtifacts,
  type BrainEncoderConfig,
  type EncoderModelName,
  runBrainEncoder,
  type SimulationFields,
} from './encoder/experiment.js';
import {
  BRAIN_CAPTIONS_FULL,
  BRAIN_CAPTIONS_QUICK,
  type BrainCaptionsArtifacts,
  type BrainCaptionsConfig,
  runBrainCaptions,
} from './scuba/experiment.js';
import type { CategoryResponse } from './simulate/voxels.js';

const simulation: Schema<SimulationFields> = {
  imageSize: int({ min: 4 }),
  grid: int({ min: 1 }),
  channels: int({ min: 1 }),
  voxelsPerRegion: int({ min: 1 }),
  snr: num({ gt: 0 }),
  tau: num({ gt: 0 }),
  train: int({ min: 2 }),
  validation: int({ min: 2 }),
  test: int({ min: 2 }),
  repeats: int({ min: 1 }),
};

export const brainEncoder = defineExperiment<BrainEncoderConfig, BrainEncoderArtifacts>({
  name: 'brain-encoder',
  schema: obj<BrainEncoderConfig>({
    ...simulation,
    simulators: list(oneOf<CategoryResponse>('attention', 'max', 'conjunction', 'prf'), { min: 1, unique: true }),
    models: list(oneOf<EncoderModelName>('oracle', 'ridge', 'factorised', 'cross-only', 'transformer'), {
      min: 1,
      unique: true,
    }),
    dModel: int({ min: 1 }),
    heads: int({ min: 1 }),
    ffn: int({ min: 1 }),
    steps: int({ min: 1 }),
    batch: int({ min: 1 }),
    lr: num({ gt: 0 }),
    weightDecay: num({ min: 0 }),
    l1: num({ min: 0 }),
    ridgeScales: list(num({ gt: 0 }), { min: 1 }),
    bootstrap: int({ min: 1 }),
  }),
  paper:
    'Adeli, Sun, Kriegeskorte 2025, Transformer brain encoders explain human high-level visual responses, https://arxiv.org/abs/2505.17329',
  description:
    'Simulated visual system (pRF early regions; category regions whose response is attention-pooled, max-pooled, a two-category conjunction or a location-bound pRF): held-out fraction of the noise ceiling per region and simulator, with bootstrap intervals, for the transformer brain encoder (official decoder layer), its cross-attention-only simplification, ridge, a factorised readout and a true-routing oracle; the transformer-minus-best-baseline difference (baseline chosen on validation) per simulator; parameters; attention vs true routing.',
  quick: BRAIN_ENCODER_QUICK,
  full: BRAIN_ENCODER_FULL,
  run: runBrainEncoder,
});

export const brainCaptions = defineExperiment<BrainCaptionsConfig, BrainCaptionsArtifacts>({
  name: 'brain-captions',
  schema: obj<BrainCaptionsConfig>({
    ...simulation,
    embeddingDim: int({ min: 1 }),
    semanticWeight: num({ min: 0 }),
    natural: int({ min: 1 }),
    conceptScenes: int({ min: 1 }),
    temperature: num({ gt: 0 }),
    captionerSteps: int({ min: 1 }),
    ridgeScales: list(num({ gt: 0 }), { min: 1 }),
  }),
  paper:
    'Luo, Henderson, Tarr, Wehbe, ICLR 2024, BrainSCUBA: Fine-Grained Natural Language Captions of Visual Cortex Selectivity, https://arxiv.org/abs/2310.04420',
  description:
    "Per-voxel ridge encoders on a fixed image embedding of the simulated scenes; voxel weights projected onto natural embeddings (softmax, a convex combination) or used raw; each captioned by its nearest concept. Agreement of the caption with the voxel region's category, projected vs raw.",
  quick: BRAIN_CAPTIONS_QUICK,
  full: BRAIN_CAPTIONS_FULL,
  run: runBrainCaptions,
});

export const brainDecoding = defineExperiment<BrainDecodingConfig, BrainDecodingArtifacts>({
  name: 'brain-decoding',
  schema: obj<BrainDecodingConfig>({
    hidden: int({ min: 1 }),
    temperature: num({ gt: 0 }),
    steps: int({ min: 1 }),
    batch: int({ min: 2 }),
    lr: num({ gt: 0 }),
    weightDecay: num({ min: 0 }),
    imageSize: int({ min: 4 }),
    grid: int({ min: 1 }),
    channels: int({ min: 1 }),
    parcels: int({ min: 1 }),
    visualFraction: num({ min: 0, max: 1 }),
    semanticFraction: num({ min: 0, max: 1 }),
    snr: num({ gt: 0 }),
    embeddingDim: int({ min: 1 }),
    semanticWeight: num({ min: 0 }),
    train: int({ min: 2 }),
    validation: int({ min: 2 }),
    evalEvery: int({ min: 1 }),
    test: int({ min: 2 }),
  }),
  paper:
    'Wang et al. 2024, WAVE: Whole-brain fMRI decoding via image-fMRI contrastive learning, https://arxiv.org/abs/2411.07121',
  description:
    'Simulated whole-brain parcels (visual pRF parcels, semantic category parcels, noise); an InfoNCE encoder from parcels to fixed image embeddings; top-1/top-5 retrieval among 100 held-out images, whole brain vs visual parcels only.',
  quick: BRAIN_DECODING_QUICK,
  full: BRAIN_DECODING_FULL,
  run: runBrainDecoding,
});

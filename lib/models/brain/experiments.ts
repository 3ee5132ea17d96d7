/** The three registered experiments: `brain-encoder`, `brain-captions`, `brain-decoding`. */
import { registerExperiment } from '../../experiments/registry.js';
import { BRAIN_CAPTIONS_FULL, BRAIN_CAPTIONS_QUICK, runBrainCaptions, type BrainCaptionsConfig } from './scuba/experiment.js';
import { BRAIN_DECODING_FULL, BRAIN_DECODING_QUICK, runBrainDecoding, type BrainDecodingConfig } from './decoding/experiment.js';
import { BRAIN_ENCODER_FULL, BRAIN_ENCODER_QUICK, runBrainEncoder, type BrainEncoderConfig } from './encoder/experiment.js';

registerExperiment<BrainEncoderConfig>({
  name: 'brain-encoder',
  paper: 'Adeli, Sun, Kriegeskorte 2025, Transformer brain encoders explain human high-level visual responses, https://arxiv.org/abs/2505.17329',
  description:
    'Simulated visual system (pRF early regions, category regions that follow their category anywhere): held-out Pearson r and fraction of the noise ceiling per region for the transformer brain encoder, ridge, a factorised readout and a model given the true routing; parameters; attention vs true routing.',
  quick: BRAIN_ENCODER_QUICK,
  full: BRAIN_ENCODER_FULL,
  run: runBrainEncoder,
});

registerExperiment<BrainCaptionsConfig>({
  name: 'brain-captions',
  paper: 'Luo, Henderson, Tarr, Wehbe, ICLR 2024, BrainSCUBA: Fine-Grained Natural Language Captions of Visual Cortex Selectivity, https://arxiv.org/abs/2310.04420',
  description:
    'Per-voxel ridge encoders on a fixed image embedding of the simulated scenes; voxel weights projected onto natural embeddings (softmax, a convex combination) or used raw; each captioned by its nearest concept. Agreement of the caption with the voxel region\'s category, projected vs raw.',
  quick: BRAIN_CAPTIONS_QUICK,
  full: BRAIN_CAPTIONS_FULL,
  run: runBrainCaptions,
});

registerExperiment<BrainDecodingConfig>({
  name: 'brain-decoding',
  paper: 'Wang et al. 2024, WAVE: Whole-brain fMRI decoding via image-fMRI contrastive learning, https://arxiv.org/abs/2411.07121',
  description:
    'Simulated whole-brain parcels (visual pRF parcels, semantic category parcels, noise); an InfoNCE encoder from parcels to fixed image embeddings; top-1/top-5 retrieval among 100 held-out images, whole brain vs visual parcels only.',
  quick: BRAIN_DECODING_QUICK,
  full: BRAIN_DECODING_FULL,
  run: runBrainDecoding,
});

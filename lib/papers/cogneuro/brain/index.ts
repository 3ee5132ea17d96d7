/**
 * Brain encoders and decoders on a simulated visual system whose routing is known, and loaders for real data.
 *
 * Papers:
 *   [20] Adeli, Sun, Kriegeskorte 2025, "Transformer brain encoders explain human high-level visual responses",
 *        https://arxiv.org/abs/2505.17329 (code: Hosseinadeli/transformer_brain_encoder). One learned query per region
 *        reads frozen feature-map tokens (keys with a 2-D sine position encoding) through the official decoder layer
 *        (cross-attention with projections, LayerNorm, ReLU FFN, LayerNorm, final LayerNorm); a linear readout maps
 *        each region's token to its voxels: ŷ_v = u_vᵀ o_r(v) + c_v. encoder/transformer.ts (layer 'cross-only' is the
 *        bare-attention simplification a_r = softmax_n(q_r·k_n/√d_h), o_r = Σ_n a_r(n) v_n); baselines
 *        encoder/ridge.ts (closed form, λ per voxel on validation) and encoder/factorised.ts (ŷ_v = Σ_n s_v(n) f_vᵀ x_n);
 *        encoder/oracle.ts is given the true routing.
 *   [33] Luo, Henderson, Tarr, Wehbe 2024, "BrainSCUBA", https://arxiv.org/abs/2310.04420 (code: aluo-x/BrainSCUBA).
 *        Voxel weights on an image-embedding space projected onto natural embeddings,
 *        ê_v = Σ_j softmax_j(ŵ_v·e_j/τ) e_j (a convex combination), then captioned. scuba/.
 *   [35] Wang et al. 2024, "WAVE: whole-brain fMRI decoding via image-fMRI contrastive learning",
 *        https://arxiv.org/abs/2411.07121. Symmetric InfoNCE from whole-brain parcels to image embeddings;
 *        retrieval among held-out images. decoding/.
 *
 * The simulation (simulate/): procedural scenes (scenes.ts) -> a fixed random conv net (features.ts) -> voxels
 * (voxels.ts): early regions with Gaussian pRFs, category regions routed by α_c = softmax(τ · coverage_c) or, in the
 * variants that are not shaped like the model, max-pooled, a two-category conjunction, or a location-bound pRF
 * (categoryResponse; simulateVariants pairs them on the same scenes and noise), noise at a set SNR; test stimuli repeated so a noise ceiling is estimated from repeats (stats.ts noiseCeiling) and checked
 * against sqrt(SNR·r/(SNR·r+1)). Loaders (loaders/): .npy, CSV and NIfTI-1 responses with region labels.
 *
 * Shape legend: n stimuli, S image side, G grid side, N = G*G tokens, C channels, d model width, h heads,
 * R regions, V voxels, K categories, D embedding dim, M natural embeddings, P parcels.
 *
 *   const sim = simulate(DEFAULT_SIMULATION, 0);
 *   const model = createTransformerEncoder({ grid: 8, channels: 32, dModel: 64, heads: 4 }, sim.system.regions, sim.system.voxelCount, 0);
 *   await fitEncoding(model, sim.train.features, sim.train.responses, { steps: 600, batch: 64, lr: 3e-3, weightDecay: 1e-4 }, { seed: 0 });
 *   pearsonColumns(predictAll(model, sim.test.features), sim.test.responses);   // per voxel, against sim.ceiling
 */

// The public surface: the experiments and their configs and artifacts, the simulation, the encoders, BrainSCUBA's
// projection and captions, the contrastive decoder, the loaders and the statistics a user reports. Experiment runners,
// default configs and numeric plumbing (Cholesky solves, row selection, 2-D position codes) stay inside the family.
export type { BrainDecodingArtifacts, BrainDecodingConfig } from './decoding/experiment.js';
export {
  type ContrastiveConfig,
  type ContrastiveEncoder,
  infoNce,
  infoNceNaive,
  retrieval,
  trainContrastive,
} from './decoding/index.js';
export {
  type BrainEncoderArtifacts,
  type BrainEncoderConfig,
  disposeEncoders,
  ENCODER_MODELS,
  type EncoderModelName,
  type EncoderRow,
  type FittedEncoders,
  fitEncoders,
  hasOracle,
  scoreEncoders,
} from './encoder/experiment.js';
export { createFactorisedReadout, type FactorisedConfig } from './encoder/factorised.js';
export { type EncodingModel, type FitConfig, fitEncoding, predictAll } from './encoder/model.js';
export { fitOracle, type OracleFit, predictOracle } from './encoder/oracle.js';
export { fitRidge, type RidgeFit, type RidgeOptions, ridgeModel } from './encoder/ridge.js';
export { regionAttention, routingScores, trueRegionMaps } from './encoder/routing.js';
export {
  createTransformerEncoder,
  type DecoderLayerDims,
  type DecoderLayerParams,
  decoderLayerForward,
  decoderLayerKeys,
  decoderLayerNaive,
  type EncoderLayer,
  readoutBatched,
  readoutLoop,
  readoutMask,
  type TransformerEncoder,
  type TransformerEncoderConfig,
} from './encoder/transformer.js';
export { brainCaptions, brainDecoding, brainEncoder } from './experiments.js';
export { encodeNifti, type NiftiVolume, parseNifti, readNifti, writeNifti } from './loaders/nifti.js';
export { encodeNpy, type NpyArray, parseNpy, readNpy, writeNpy } from './loaders/npy.js';
export {
  exportSimulation,
  type LoadedResponses,
  loadNiftiResponses,
  loadResponses,
  readImages,
  readLabels,
  readResponses,
  regionsFromLabels,
} from './loaders/responses.js';
export type { BrainCaptionsArtifacts, BrainCaptionsConfig, VoxelCaption } from './scuba/experiment.js';
export {
  type Captioner,
  CONCEPTS,
  type Concept,
  caption,
  createEmbedder,
  disposeCaptioner,
  disposeEmbedder,
  type Embedder,
  embed,
  l2normalise,
  nearestConcepts,
  projectNaive,
  projectToManifold,
  trainCaptioner,
} from './scuba/index.js';
export {
  DEFAULT_SIMULATION,
  disposeSimulation,
  type Simulation,
  type SimulationConfig,
  type Split,
  simulate,
  simulateVariants,
} from './simulate/dataset.js';
export {
  createFeatureExtractor,
  DEFAULT_FEATURES,
  disposeFeatureExtractor,
  extractFeatures,
  type FeatureConfig,
  type FeatureExtractor,
} from './simulate/features.js';
export {
  CATEGORIES,
  type Category,
  coverage,
  DEFAULT_SCENES,
  drawScene,
  drawScenes,
  type Scene,
  type SceneConfig,
  type SceneObject,
} from './simulate/scenes.js';
export {
  addNoise,
  CATEGORY_RESPONSES,
  type CategoryResponse,
  categoryRouting,
  createVisualSystem,
  createWholeBrain,
  type Region,
  type RegionSpec,
  signal,
  trueRoutedFeatures,
  type VisualSystem,
  type VisualSystemConfig,
  type WholeBrain,
  type WholeBrainConfig,
  wholeBrainResponses,
} from './simulate/voxels.js';
export { analyticCeiling, type Mat, mat, mean, noiseCeiling, pearson, pearsonColumns } from './stats.js';

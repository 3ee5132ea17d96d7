/**
 * OAT: Object-level Attention Transformer for gaze scanpath prediction.
 *
 * Paper: Fang, Yu, Zhang, van der Lans, Shi, 2024, "OAT: Object-Level Attention Transformer for Gaze Scanpath
 * Prediction", ECCV, https://arxiv.org/abs/2407.13335; official code https://github.com/HKUST-NISL/oat_eccv24.
 *
 * A scanpath in visual search is modelled as a sequence of *objects*, not pixels. Every object on the display is one
 * encoder token (appearance ⊕ position), the target is one more token, and the decoder points at the next fixated
 * object, with an extra END position for "the search stops":
 *
 *   token_j = CNN(crop_j) ⊕ PE(row_j, col_j),   PE(r, c) = code(r) ⊕ code(c),   cos(code(i), code(k)) ≈ exp(−(i − k)² / 2σ²)
 *   p(f_i = j | f_<i, display, target) = softmax_j( Σ_c r_c (W_dc h_i)·(W_ec m_j) / √E ),   END scores 0 per head
 *
 * where m = Encoder(tokens), h_i = Decoder(tokens of f_<i + 1-D order code, m). Trained with cross-entropy under
 * teacher forcing; decoded greedily or by sampling. The position codes are learned offline and fixed (position.ts). The
 * CNN reads each object's crop of the rendered display and is trained end to end, as in the paper; `appearance:
 * 'onehot'` replaces it by a linear map of the attribute one-hots f_j (W_a f_j), a simplification.
 *
 * Shape legend: b batch (displays), N objects (padded), S = N + 1 source tokens (target first), p = N + 1 pointer
 * positions (END first), m decoder steps, E model width, F appearance features, H attention heads, C pointer heads.
 *
 * Files: position.ts (the Gaussian 2-D position table, learned offline, and the 1-D sinusoidal ablation), appearance.ts
 * (the CNN over object crops, the paper's appearance path, and its float64 reference), model.ts
 * (encoder, decoder, pointer head, teacher-forcing loss), decode.ts (greedy and sampled scanpaths, step predictions,
 * attention maps), baselines.ts (random, nearest, similarity and the pixel-level patch model), metrics.ts (sequence
 * score, edit distance, behaviour and delta, per-step accuracy), experiment.ts (the registered `oat-scanpath`),
 * figures.ts (displays with numbered fixations and per-object weights, for the notebook).
 * The data (displays, the simulated searcher, splits, the CSV loader) is lib/data/visual-search, re-exported here.
 *
 *   const splits = makeSplits(DEFAULT_VISUAL_SEARCH, { train: 10000, test: 150 }, 0);
 *   const cfg = OAT_EXPERIMENT.quick;
 *   const { model } = await trainOat(cfg, paperVariant(cfg, 3e-3), splits.train, { seed: 0, progress: false });
 *   const paths = decodeScanpaths(model, splits.testLayout.map((t) => t.display), { mode: 'greedy', maxFixations: 20 });
 *   summarize(paths, splits.testLayout.map((t) => t.scanpath), splits.testLayout.map((t) => t.display.target));
 */
// The public surface: the visual-search data a user needs to make, simulate and load scanpaths; the model, decoding,
// position codes, baselines, metrics and figures; the experiment with its config and artifacts. Training internals
// (bucketed batches, score plumbing, patch geometry) stay inside the family.
export {
  CATALOGUE,
  DEFAULT_SEARCHER,
  DEFAULT_VISUAL_SEARCH,
  type DisplayOptions,
  exampleScanpathFiles,
  type FeatureSpace,
  type LoadedScanpaths,
  loadScanpathCsv,
  makeDisplay,
  makeSplits,
  makeTrials,
  objectCrops,
  parseScanpathCsv,
  renderDisplay,
  renderTarget,
  ScanpathFormatError,
  type SearchDisplay,
  type SearcherParams,
  scanpathsToCsv,
  simulateScanpath,
  type Trial,
  targetCrop,
  type VisualObject,
  type VisualSearchConfig,
  type VisualSearchSplits,
} from '../../../data/visual-search/index.js';
export { type CropCnn64, type CropCnnWeights, cropCnn, cropCnn64, makeCropCnn } from './appearance.js';
export {
  createPixelModel,
  disposePixelModel,
  nearestPolicy,
  type PixelModel,
  type Policy,
  pixelLoss,
  pixelPolicy,
  randomPolicy,
  rollout,
  similarityPolicy,
} from './baselines.js';
export { type DecodeOptions, decodeScanpaths, oatAttentionMaps, oatStepPredictions } from './decode.js';
export {
  dataConfig,
  disposeModels,
  evaluateSplit,
  meanNll,
  OAT_EXPERIMENT,
  type OatArtifacts,
  type OatExperimentConfig,
  type OatVariant,
  oatConfig,
  oatScanpath,
  pairedDifference,
  paperVariant,
  type SelectionRow,
  type SplitEvaluation,
  type TrainedModels,
  type TrainedOat,
  trainModels,
  trainOat,
} from './experiment.js';
export { type ScanpathPanel, scanpathFigure } from './figures.js';
export {
  type Behaviour,
  behaviour,
  behaviourDelta,
  editDistance,
  type ScanpathSummary,
  sequenceScore,
  stepAccuracy,
  summarize,
} from './metrics.js';
export {
  appearanceTokens,
  createOat,
  decodeOat,
  decoderInputs,
  disposeOat,
  disposeOatBatch,
  disposeOatInputs,
  disposeOatTargets,
  encodeOat,
  historyBias,
  type OatAttention,
  type OatConfig,
  type OatInputs,
  type OatModel,
  type OatTargets,
  oatBatch,
  oatInputs,
  oatLogits,
  oatLoss,
  oatParameterCount,
  oatTargets,
  pointerLogits,
  sourceTokens,
} from './model.js';
export {
  cosineMatrix,
  type GaussianPe,
  type GaussianPeOptions,
  gaussianPeLoss,
  gaussianSimilarity,
  learnGaussianPe,
  type PositionKind,
  positionCodes,
} from './position.js';

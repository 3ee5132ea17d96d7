/**
 * Salient Relevance maps: layer-wise relevance propagation, then context-aware saliency on the relevance map.
 *
 * Paper: Li, Tian, Mueller, Chen, 2017, "Beyond saliency: understanding convolutional neural networks from saliency
 * prediction on layer-wise relevance propagation", Image and Vision Computing 2019, https://arxiv.org/abs/1712.08268
 * (official code: Hey1Li/Salient-Relevance-Propagation).
 *
 *   LRP (ε):   R_i = Σ_j x_i w_ij / (z_j + ε·sign(z_j)) · R_j          LRP (αβ): α (x_i w_ij)⁺/z_j⁺ − β (x_i w_ij)⁻/z_j⁻
 *   SR:        S_i = 1 − exp(−(1/K) Σ_k d(p_i, q_k)),  d = d_value / (1 + c · d_position),  SR_i = S̄_i (1 − d_foci(i))
 *
 * Shape legend: images x [b, s, s, 1]; dense x [b, i], w [i, o]; conv x [b, h, w, c], w [kh, kw, c, o]; relevance and
 * SR maps [b, s, s].
 *
 *   const data = clutterImages({ count: 8, seed: 0, split: 'test' });          // lib/data/clutter-images.ts
 *   const cnn = new SmallCnn({ size: 32, channels: [8, 16], classes: 4, seed: 0 });  // train with lib/train train()
 *   const r = cnn.relevance(data.toTensors().x, lrpVariantRules('official', 0));     // [8, 32, 32]
 *   const sr = salientRelevance(r);                                                  // [8, 32, 32] in [0, 1]
 *
 * Files: lrp.ts (the rules and their float64 references), cnn.ts (the CNN, LRP and gradient through it),
 * salient.ts (SR and its reference), metrics.ts (pointing game, AUC, IoU), experiment.ts (`salient-relevance`).
 */

export {
  CLUTTER_SHAPES,
  type ClutterImages,
  type ClutterImagesConfig,
  type ClutterShape,
  type ClutterSplit,
  clutterImages,
  insideShape,
} from '../../../data/clutter-images.js';
/** The convolution the CNN is built on (lib/layers), re-exported where this paper's users look for it. */
export { conv2dSame } from '../../../layers/conv.js';
export {
  type CnnActivations,
  type CnnWeights64,
  type LrpComposite,
  SmallCnn,
  type SmallCnnOptions,
  smallCnnReference,
} from './cnn.js';
export {
  type LrpVariant,
  lrpVariantRules,
  type SalientArtifacts,
  type SalientExample,
  type SalientExperimentConfig,
  salientConfigSchema,
  salientRelevanceExperiment,
} from './experiment.js';
export {
  type Array64,
  array64,
  type ConvPadding,
  type LrpRule,
  lrpConv2d,
  lrpConv2dReference,
  lrpDense,
  lrpDenseReference,
  lrpMaxPool,
  lrpMaxPoolReference,
} from './lrp.js';
export { maskAuc, meanCi, pointingGame, topFractionIou } from './metrics.js';
export { SALIENT_DEFAULTS, type SalientOptions, salientRelevance, salientRelevanceReference } from './salient.js';

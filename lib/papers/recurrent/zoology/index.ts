/**
 * Zoology: Arora, Eyuboglu, Timalsina, Johnson, Poli, Zou, Rudra, Ré, "Zoology: Measuring and Improving Recall in
 * Efficient Language Models", ICLR 2024, https://arxiv.org/abs/2312.04927 (official code HazyResearch/zoology).
 *
 *   BaseConv:  y = (x W1 + b1) ⊙ (h ∗ (x W2) + b2),   h a causal per-channel kernel of K taps (K = T: long convolution)
 *
 * Multi-query associative recall (MQAR, lib/data/mqar-powerlaw.ts): key-value pairs, then every key asked again at
 * power-law spaced positions; gated convolutions need a width that grows with the pairs, attention does not.
 *
 * Shape legend: x [b, T, m]; kernel [K, m]; inputs [b, T] int32; logits [b, T, V].
 *
 *   const model = new MqarModel({ vocabSize: 128, seqLen: 64, dModel: 32, seed: 0,
 *                                 ...mixerStack('baseconv', { featureDim: 8, window: 8 }) });
 *   const logits = model.forward(inputs);                 // parallel (training) form
 *   const { logits: l2, bytes } = runRecurrent(model, inputs);   // step form and its state bytes per token
 *
 * Files: baseconv.ts (causal convolution in parallel and step form, float64 reference, BaseConv), model.ts (the
 * two-layer MQAR models of every architecture, with their step form and state bytes), experiment.ts (`mqar-frontier`),
 * paper-figures.ts (the values of Zoology's and BASED's MQAR figures, digitised from the official repo's images).
 */

export {
  type MqarPowerLawConfig,
  type MqarSplit,
  mqarPowerLaw,
  mqarSplitOf,
  powerLawGaps,
} from '../../../data/mqar-powerlaw.js';
export {
  type BaseConvParams,
  baseConv,
  baseConvStep,
  type ConvState,
  causalConv,
  causalConvInit,
  causalConvReference,
  causalConvStep,
} from './baseconv.js';
export {
  type FrontierArtifacts,
  type FrontierConfig,
  type FrontierRow,
  mqarFrontier,
} from './experiment.js';
export {
  disposeState,
  type MixerSpec,
  MODEL_NAMES,
  type ModelName,
  MqarModel,
  type MqarModelConfig,
  type MqarState,
  mixerStack,
  mqarStateBytes,
  runRecurrent,
  stateTensors,
} from './model.js';
export {
  BASED_FIG2,
  paperFigureRows,
  ZOOLOGY_FIG2,
  ZOOLOGY_FIG2_BY_EYE,
  ZOOLOGY_FIG2_WIDTHS,
  zoologyReferences,
} from './paper-figures.js';

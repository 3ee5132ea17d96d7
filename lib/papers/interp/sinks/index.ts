/**
 * When attention sink emerges (Gu et al. 2025, https://arxiv.org/abs/2410.10781): the sink metric (importance α_k,
 * Sink^ε_k), the attention variants it compares (softmax, sigmoid without and with normalisation, softmax + a learned
 * key/value slot), SinkLM (ToyLM's layout with one variant in every layer) and the experiment `sink-emergence`.
 * Equations and shapes: core.ts (mechanism), model.ts, experiment.ts.
 */
export {
  applyWeights,
  causalOnes,
  importance,
  importanceNaive,
  proxyWeights,
  SIGMOID_NORM_EPS,
  SINK_EPSILON,
  SINK_VARIANTS,
  type SinkAttentionOptions,
  type SinkAttentionResult,
  type SinkVariant,
  sinkAttention,
  sinkAttentionNaive,
  sinkRate,
  sinkWeights,
} from './core.js';
export {
  measureSinks,
  type SinkCurvePoint,
  type SinkEmergenceArtifacts,
  type SinkEmergenceConfig,
  type SinkMeasure,
  type SinkTrained,
  sinkEmergence,
  variantKey,
} from './experiment.js';
export { type SinkForwardOptions, SinkLM, type SinkLMConfig } from './model.js';

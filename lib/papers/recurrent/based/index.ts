/**
 * BASED: Arora, Eyuboglu, Zhang, Timalsina, Alberti, Zinsley, Zou, Rudra, Ré, "Simple linear attention language models
 * balance the recall-throughput tradeoff", ICML 2024, https://arxiv.org/abs/2402.18668 (official code
 * HazyResearch/based; the MQAR sweeps in HazyResearch/zoology, experiments/arxiv24_based_figure2).
 *
 *   y_t = φ(q_t)ᵀ Σ_{i<=t} φ(k_i) v_iᵀ / φ(q_t)ᵀ Σ_{i<=t} φ(k_i),   φ(x) = [1, x / d^{1/4}, vec(x ⊗ x) / (√2 √d)]
 *
 * plus exact sliding-window softmax attention and short gated convolutions. The recurrent state (S, z and the
 * window's keys and values) has a size fixed by the feature dim d' and the window w: the knobs of the
 * recall-versus-state frontier (experiment `mqar-frontier`, lib/papers/recurrent/zoology/experiment.ts).
 *
 * Shape legend: q, k [b, h, T, d']; v [b, h, T, dv]; x [b, T, m].
 *
 *   const y = linearAttentionParallel(q, k, v, { featureMap: 'taylor' });       // training form
 *   let s = linearAttentionInit(b, h, d, dv, 'taylor');                          // streaming form
 *   const r = linearAttentionStep(s, qt, kt, vt, { featureMap: 'taylor' });
 *
 * Files: linear-attention.ts (the causal linear attention core, shared by the family), based.ts (the BASED mixer and
 * windowed softmax attention with a KV cache).
 */
export {
  type BasedConfig,
  type BasedParams,
  type BasedState,
  basedInit,
  basedMixer,
  basedStep,
  type KvCache,
  kvCacheInit,
  windowAttention,
  windowAttentionStep,
} from './based.js';
export {
  FEATURE_MAPS,
  type FeatureMapKind,
  featureDim,
  featureMap,
  featureMap64,
  type LinearAttentionOptions,
  type LinearAttentionState,
  linearAttentionCumsum,
  linearAttentionInit,
  linearAttentionParallel,
  linearAttentionRecurrent,
  linearAttentionReference,
  linearAttentionStep,
  stateBytes,
} from './linear-attention.js';

/**
 * MEAP: Mask-Enhanced Autoregressive Prediction.
 *
 * Paper: Zhuang, Jia, Li, Zhang, Shen, Cao, Liu, "Mask-Enhanced Autoregressive Prediction: Pay Less Attention to Learn
 * More", ICML 2025, https://arxiv.org/abs/2502.07490 (code: https://github.com/scitix/MEAP).
 *
 * Next-token prediction on inputs with holes: a random set M of input positions is replaced by [MASK], the targets
 * stay the original next tokens, and the model stays causal (no bidirectional attention, no extra compute):
 *
 *   m(x)_i = [MASK] if i ∈ M else x_i,   |M| = max(1, ⌊ρ·s⌋),   M uniform among subsets of {0, ..., s-2}
 *   L_MEAP = -(1/s) Σ_t log p_θ(x_{t+1} | m(x)_0, ..., m(x)_t)
 *
 * ρ = 0.1 (0.1B model) or 0.15 (1B) in the official pre-training configs; the masking itself is lib/data/meap.ts. The
 * paper's explanation is that attention over fewer real tokens becomes more distinguishable, measured here by the
 * attention entropy H = -Σ_k a_qk log a_qk of each query's row (lower = sharper).
 *
 * Shape legend: b batch, s positions, V vocabulary, h heads, q query positions, k key positions.
 *   inputs, targets [b, s] int32;  logits [b, s, V];  attention pattern [b, h, q, k];  entropy per head [h]
 */
export {
  type KvFactsBatch,
  type KvFactsConfig,
  type KvFactsSplit,
  type KvQuery,
  keySplit,
  kvFactsTask,
  kvFactsTextEntropy,
  kvFactsVocab,
} from '../../../data/kv-facts.js';
export {
  type MeapMaskConfig,
  meapMaskBatch,
  meapMaskCount,
  meapMaskIds,
  meapMaskTensor,
  meapPositions,
} from '../../../data/meap.js';
export {
  depthBucket,
  evaluateMeap,
  type MeapArtifacts,
  type MeapConfig,
  type MeapTrained,
  type MeapVariantResult,
  meapExperiment,
  testDepths,
} from './experiment.js';
export {
  attentionEntropy,
  attentionEntropyReference,
  type LogitsModel,
  type MeapLossOptions,
  meapLoss,
  meapLossReference,
} from './mechanism.js';

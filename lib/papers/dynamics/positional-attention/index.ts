/**
 * Positional attention (al.dynamics.positional).
 *
 * Paper: Back de Luca, Giapitzakis, Yang, Veličković, Fountoulakis, ICML 2025, "Positional Attention: Expressivity
 * and Learnability of Algorithmic Computation", https://arxiv.org/abs/2410.01686
 *
 *   A^(ℓ,h) = softmax( (P W_Q^(ℓ,h)) (P W_K^(ℓ,h))ᵀ / √e )      the same positional encodings P in every layer
 *   attn(X) = concat_h( A^(ℓ,h) X W_V^(ℓ,h) ) W_O                 values (and the MLPs) act on the data
 *
 * Shape legend: b batch, n positions, p positional width, m model width, h heads, e query/key head dim.
 *
 *   attention.ts   positionalWeights, positionalAttention and the float64 positionalAttentionReference
 *   model.ts       ArrayTransformer: the positional transformer and the standard baseline of equal width and depth
 *   experiment.ts  'positional-attention': value generalisation on cumsum, min, sum, sort
 *   lib/data/array-tasks.ts  the tasks' generator (arrayTask), re-exported here
 */

export {
  ARRAY_TASKS,
  type ArrayBatch,
  type ArrayTaskConfig,
  type ArrayTaskName,
  arrayTarget,
  arrayTask,
} from '../../../data/array-tasks.js';
export {
  type PositionalAttentionArrays,
  type PositionalAttentionParams,
  positionalAttention,
  positionalAttentionReference,
  positionalWeights,
} from './attention.js';
export {
  type PositionalArtifacts,
  type PositionalExperimentConfig,
  type PositionalTrained,
  positionalAttentionExperiment,
} from './experiment.js';
export { ArrayTransformer, type ArrayTransformerConfig, type AttentionKind, arrayPositions } from './model.js';

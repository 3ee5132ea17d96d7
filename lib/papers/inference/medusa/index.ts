/**
 * Medusa: decoding several tokens per forward pass with extra heads and tree verification.
 *
 * Paper: Cai, Li, Geng, Peng, Lee, Chen & Dao, ICML 2024, "Medusa: Simple LLM Inference Acceleration Framework with
 * Multiple Decoding Heads", https://arxiv.org/abs/2401.10774; code: github.com/FasterDecoding/Medusa.
 *
 *   heads    p_t^(k) = softmax(W2^(k) (h_t + SiLU(W1^(k) h_t))) predicts token t + k + 1 (k = 1..K)     heads.ts
 *   tree     the heads' top-k tokens as a sparse tree, verified in ONE forward pass with mask[i][j] = [j is i or an
 *            ancestor of i] and position ids past + depth                                              tree.ts
 *   accept   the longest path whose every token the backbone accepts (greedy: = its argmax; typical:
 *            p(x) > min(ε, α·exp(−H(p))))                                                               decode.ts
 *   cache    keeps the prefix and the accepted path after each verification                            cache.ts
 *
 * Shape legend: b batch, s positions, m d_model, K heads, V vocab, n tree nodes (root included), t past + n keys.
 *   hidden [rows, m] -> head logits [rows, K, V];  tree mask [1, 1, n, t];  positions [n]
 */
export { TreeKVCache } from './cache.js';
export {
  type Accepted,
  type AcceptOptions,
  acceptPath,
  type MedusaDecodeOptions,
  type MedusaDecodeResult,
  medusaGenerate,
} from './decode.js';
export {
  type MedusaArtifacts,
  type MedusaExperimentConfig,
  type MedusaRow,
  medusaExperiment,
} from './experiment.js';
export {
  forwardWithHidden,
  MedusaHeads,
  type MedusaHeadsOptions,
  type MedusaHeadWeights,
  type MedusaHeadWeights64,
  type MedusaTrainOptions,
  medusaHeadLogits,
  medusaHeadLogitsNaive,
  type PackedHeads,
  packedHeadLogits,
  trainMedusaHeads,
} from './heads.js';
export {
  chainTree,
  expectedAccepted,
  greedyTree,
  type MedusaTree,
  medusaTree,
  treeAncestors,
  treeAttentionNaive,
  treeMask,
  treePositions,
} from './tree.js';

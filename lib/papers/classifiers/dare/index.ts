/**
 * DARE: decoupled attention and representation embeddings for long-sequence recommendation.
 *
 * Paper: Feng, Pan, Wu, Chen, Wang, Li, Hu, Jiang, Long, "Long-Sequence Recommendation Models Need Decoupled
 * Embeddings", ICLR 2025, https://arxiv.org/abs/2410.02604 (official code: thuml/DARE).
 *
 *   s_j = A(t) · A(h_j) / √d_a,   S = top-K_j s_j,   u = Σ_{j∈S} softmax_S(s)_j R(h_j),   ŷ = MLP([R(t), u, R(t) ⊙ u])
 *
 * TWIN uses one embedding table for both roles (A = R); DARE learns A (attention, dim d_a) and R (representation,
 * dim d_r) separately, so the attention dim can shrink without starving the representation.
 *
 * Shape legend: b impressions, L behaviours, K kept; q [b, d_a], k [b, L, d_a], v [b, L, d_v], out [b, d_v].
 *
 *   const task = al.data.recsysTask({ ...config, seed: 0 }, { train: 3000, validation: 300, test: 600 });
 *   const model = new DareModel({ kind: 'dare', nItems: task.world.nItems, nCategories: 32, attentionDim: 4,
 *     representationDim: 16, topK: 20, hidden: [64, 32], seed: 0 });
 *   const x = al.data.recsysBatch(task.world, task.train, [0, 1, 2]);
 *   const { logits, indices, weights } = model.forward(x);     // train with model.loss(x) in lib/train train()
 *
 * Files: attention.ts (the two-stage target attention and its float64 reference), model.ts (TWIN / DARE click
 * models), metrics.ts (AUC, GAUC, retrieval precision, user bootstrap), experiment.ts (`dare`). Users come from
 * lib/data/recsys.ts.
 */
export {
  keptAttention,
  type TopKAttentionOutput,
  targetScores,
  targetSearch,
  topKTargetAttention,
  topKTargetAttentionReference,
} from './attention.js';
export {
  type DareArtifacts,
  type DareDataConfig,
  type DareExperimentConfig,
  type DareTrained,
  dare,
  dareConfigSchema,
} from './experiment.js';
export { auc, gauc, gaucBlocks, retrievalPrecision, userBootstrapCi } from './metrics.js';
export { type DareKind, DareModel, type DareModelOptions } from './model.js';

/**
 * LAMA: low-rank bilinear multi-head attention against a global context vector, and Lin et al.'s structured
 * self-attention as its baseline, as poolings of the BiGRU text classifier (../text-attention).
 *
 * Paper: Mehta, Rangwala, Ramakrishnan 2019, "Low Rank Factorization for Compact Multi-Head Self-Attention",
 * https://arxiv.org/abs/1912.00835; Lin et al. 2017, https://arxiv.org/abs/1703.03130.
 *
 *   s_{t,j} = P_jᵀ((Uᵀ h_t) ∘ (Vᵀ g)),  A_{j,·} = softmax_t(s_{·,j}),  M = A H       (LAMA, rank r)
 *   A = softmax(W₂ tanh(W₁ Hᵀ)),  M = A H,  penalty ‖AAᵀ − I‖²_F                   (structured)
 *
 * Shape legend: b sentences, T words, d state size, m heads; h [b, T, d], mask [b, T], weights [b, m, T],
 * matrix [b, m, d].
 *
 *   const o = lamaAttention(h, mask, { u, v, p });   // o.weights [b, m, T], o.matrix [b, m, d]
 *
 * Files: mechanism.ts (both poolings, the penalty, float64 references, parameter counts), experiment.ts (`lama`).
 */
export {
  type LamaArtifacts,
  type LamaConfig,
  type LamaHeadRow,
  type LamaRow,
  type LamaTrained,
  lama,
  lamaConfigSchema,
} from './experiment.js';
export {
  type LamaParams,
  type LamaParams64,
  lamaAttention,
  lamaAttentionReference,
  lamaParamCount,
  type MultiHeadPooling,
  type MultiHeadPooling64,
  redundancyPenalty,
  redundancyPenaltyReference,
  type StructuredParams,
  type StructuredParams64,
  structuredParamCount,
  structuredSelfAttention,
  structuredSelfAttentionReference,
} from './mechanism.js';

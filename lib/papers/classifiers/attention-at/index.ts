/**
 * Attention AT / iAT: adversarial training on the pre-softmax attention scores of a BiGRU + additive-attention text
 * classifier (the classifier lives in ../text-attention).
 *
 * Paper: Kitada & Iyatomi 2021, "Attention Meets Perturbations: Robust and Interpretable Attention with Adversarial
 * Training", IEEE Access, https://arxiv.org/abs/2009.12064 (official code shunk031/attention-meets-perturbation).
 *
 *   AT:  r = ε g/‖g‖,  g = ∂L/∂s;   iAT: r = Σ_j α_j d_j, d_j = (s_j − s)/‖s_j − s‖, α = ε (d·g)/‖d·g‖
 *   loss = L(s) + λ L(s + r)
 *
 * Shape legend: b sentences, T words; scores / grad / mask / r [b, T].
 *
 *   const r = adversarialPerturbation(model, tokens, mask, labels, 'iat', 1.0);   // then adversarialLoss(..., r, 1)
 *
 * Files: mechanism.ts (perturbations, their float64 references, gradient importance, Kendall τ), experiment.ts
 * (`attention-at`).
 */
export {
  type AttentionAtArtifacts,
  type AttentionAtConfig,
  type AttentionAtModel,
  type AttentionAtRow,
  attentionAt,
  attentionAtConfigSchema,
} from './experiment.js';
export {
  type AttentionTraining,
  adversarialLoss,
  adversarialPerturbation,
  atPerturbation,
  atPerturbationReference,
  gradientImportance,
  iatPerturbation,
  iatPerturbationReference,
  kendallTau,
  scoreGradient,
} from './mechanism.js';

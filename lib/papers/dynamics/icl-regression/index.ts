/**
 * In-context linear regression with one-layer multi-head softmax attention.
 *
 * Paper: He, Pan, Chen, Yang, 2025, "In-Context Linear Regression Demystified: Training Dynamics and Mechanistic
 * Interpretability of Multi-Head Softmax Attention", ICML, https://arxiv.org/abs/2503.12734
 * (official code: XintianPan/ICL_linear).
 *
 *   ŷ = Σ_h o_hᵀ V_h Σ_i softmax_i( (Q_h z_q)ᵀ (K_h z_i) / √e ) z_i,   z_i = (x_i, y_i),  z_q = (x_q, 0)
 *
 * Trained from random init, the heads learn KQ = ±ω·I on the x-block and OV reading only y with opposite signs
 * (Σ_h μ_h ≈ 0), which makes the model a debiased one-step GD predictor.
 *
 * Shape legend: b rows, n context tokens, e = d + 1 features, H heads; zq [b, 1, e], z [b, n, e],
 * wq / wk / wv [H, e, e], wo [H, e], ŷ [b].
 *
 *   const task = linearRegressionTask({ batch: 64, n: 40, d: 5, noiseStd: Math.sqrt(0.1), seed: 0 });
 *   const model = new IclAttentionModel({ d: 5, heads: 2, seed: 0 });
 *   const { z, zq, yq } = task.toTensors();
 *   const loss = model.loss(zq, z, yq);       // train with lib/train train(); read model.kq(), model.ov()
 *
 * Files: model.ts (mechanism, float64 reference, ridge / OLS / GD predictors, pattern scores), experiment.ts
 * (`icl-regression`). The prompts come from lib/data/linear-regression.ts.
 */
export {
  type IclArtifacts,
  type IclExperimentConfig,
  type IclSnapshot,
  type IclTrained,
  iclConfigSchema,
  iclRegression,
} from './experiment.js';
export {
  fitGdStep,
  gdPredict,
  type IclAttentionKind,
  IclAttentionModel,
  type IclModelOptions,
  type IclWeights,
  type IclWeights64,
  iclAttention,
  iclAttentionReference,
  iclAttentionWeights,
  type KqPattern,
  kqPattern,
  mseWithCi,
  type OvPattern,
  ovPattern,
  ridgePredict,
} from './model.js';

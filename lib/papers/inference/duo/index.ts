/**
 * DuoAttention (Xiao et al., ICLR 2025, https://arxiv.org/abs/2410.10819; official code mit-han-lab/duo-attention):
 * some heads need the whole KV cache (retrieval heads), the rest do with attention sinks plus a recent window
 * (streaming heads). One gate α per layer and KV head mixes the two attentions,
 *
 *   out = α · Attn_full + (1 − α) · Attn_stream,
 *
 * trained with the model frozen (distillation + L1 on the gates), then thresholded into retrieval and streaming heads.
 *
 * Shape legend: q [b, h, s, d], k, v [b, g, t, d], alpha [g], gates [layers, g].
 *
 * Files: attention.ts (the mixed attention and its float64 reference), gates.ts (gates on a ToyLM through its hooks,
 * the gate optimisation, thresholding), policy.ts (deployment: per-head KV policy and decoding with streaming prefill).
 * The experiment `kv-budget` lives in ../experiments/kv-budget.ts.
 */
export {
  duoAttention,
  duoAttentionReference,
  mixHeads,
  type StreamingWindow,
  streamingAllows,
} from './attention.js';
export {
  applyDuoGates,
  distillLoss,
  duoSchedule,
  type GateBatch,
  type GateOptimisationOptions,
  type GateOptimisationResult,
  headsFromGates,
  kvHeadsOf,
  optimiseGates,
} from './gates.js';
export { decodeDuo, duoPolicy } from './policy.js';

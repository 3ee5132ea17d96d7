/**
 * Miras: "It's All Connected: A Journey Through Test-Time Memorization, Attentional Bias, Retention, and Online
 * Optimization", Behrouz, Razaviyayn, Zhong, Mirrokni, 2025, https://arxiv.org/abs/2504.13173 (no official code).
 *
 *   W_t = Ret(W_{t-1}, α_t) + S_t,   S_t = η_t S_{t-1} - θ_t ∇_W ℓ(k_t W_c, v_t),   y_t = q_t W_t
 *
 * One linear memory parameterised by its attentional bias ℓ (l2, dot, lp, Huber), retention (none, l2, lq, KL) and
 * learning rule (GD, GD + momentum, chunked); Moneta, Yaad, Memora, linear attention, DeltaNet and Titans are named
 * specs (`SPECS`, `spec(name)`). See memory.ts for the equations, the shape legend and how ours differs from the paper.
 *
 *   const { y, state } = mirasMemory(q, k, v, { lr: 0.5, decay: 0.01 }, spec('yaad'));   // q, k [b, T, dk]
 *   stateBytes(state);                                                                   // 4 * b * dk * dv
 *
 * Files: memory.ts (parallel chunked form, recurrent step, float64 reference, state bytes). The experiment that uses
 * it is Titans' `test-time-memory` (../titans/experiment.ts).
 */
export {
  type AttentionalBias,
  checkSpec,
  disposeState,
  initialMemory,
  initialState,
  type MemoryGates,
  type MemorySpec,
  type MemoryState,
  mirasMemory,
  mirasRecurrent,
  mirasReference,
  mirasStep,
  type ReferenceGates,
  type Retention,
  SPECS,
  type SpecName,
  spec,
  stateBytes,
} from './memory.js';

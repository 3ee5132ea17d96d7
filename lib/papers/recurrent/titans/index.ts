/**
 * Titans: "Titans: Learning to Memorize at Test Time", Behrouz, Zhong, Mirrokni, 2025, https://arxiv.org/abs/2501.00663
 * (no official code; lucidrains/titans-pytorch is an unofficial re-implementation, not read for this one: the code
 * follows the paper's equations).
 *
 *   S_t = η_t S_{t-1} - θ_t ∇‖k_t W_c - v_t‖²/2,   W_t = (1 - α_t) W_{t-1} + S_t,   y_t = q_t W_t
 *   MAG: o_t = σ(g_t) ŷ^swa_t + (1 - σ(g_t)) ŷ^mem_t
 *
 * Shape legend: q, k [b, T, dk], v [b, T, dv], gates [b, T] or numbers, W [b, dk, dv], o [b, T, dv].
 *
 *   const { y, state } = titansMemory(q, k, v, { lr: 0.1, decay: 0.01, momentum: 0.9 });   // chunk 16
 *   const o = mag(q, k, v, { lr: 0.1, decay: 0.01, momentum: 0.9 }, { window: 32, gateLogits });
 *   magRecurrent(q, k, v, gates, { window: 32, gateLogits }).maxStateBytes;             // window + memory
 *
 * Files: mag.ts (memory, sliding window, MAG parallel and recurrent forms, float64 reference; the memory itself is
 * Miras' l2/l2/momentum instance in ../miras/memory.ts), experiment.ts (`test-time-memory`, which also compares the
 * Miras models). Data: lib/data/memory-recall.ts.
 */
export {
  type Hyper,
  MODELS,
  type ModelName,
  type TestTimeMemoryArtifacts,
  type TestTimeMemoryConfig,
  testTimeMemory,
} from './experiment.js';
export {
  type MagOptions,
  mag,
  magCombine,
  magRecurrent,
  magReference,
  slidingWindowAttention,
  type TitansOptions,
  titansMemory,
  titansSpec,
} from './mag.js';

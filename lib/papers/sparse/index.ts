/**
 * Content-based sparse attention: which keys can a query skip, and what does skipping cost in accuracy and save in
 * time? One folder per paper; every method takes (q, k, v, options) like `sdpa`, returns its output with a report of
 * what it computed (`stats`) and which pairs it scored (`covers`), has a float64 naive reference beside it, and is one
 * `SparseMethod` object (method.ts) in the table `SPARSE_METHODS` (methods.ts).
 *
 *   routing    Routing Transformer (Roy et al., 2021): online k-means clusters, balanced top-w routing
 *   hip        HiP (Lee et al., 2025): hierarchical top-k block search, training-free
 *   hyper      HyperAttention (Han et al., 2024): sortLSH diagonal blocks + sampled columns
 *   seer       SeerAttention (Gao et al., 2024): learned block gate distilled from pooled attention
 *   landmark   Landmark attention (Mohtashami & Jaggi, 2023): grouped softmax, top-k block retrieval
 *   longheads  LongHeads (Lu et al., 2024): per-head chunk selection within the trained length
 *   baselines  dense, sliding window (local), sink + window (StreamingLLM): what the methods are measured against
 * Shared pieces, one job each: cost.ts (the report), options.ts (shared options and their checks), selection.ts
 * (attention over a key selection, block helpers), compact-positions.ts (rotary positions within a selection),
 * gather.ts (differentiable gather, tensor plumbing), naive.ts (float64 building blocks of the references).
 *
 * Adding a sparse method:
 *   1. a folder `<name>/index.ts` with the paper header, the pure function, its float64 naive reference, and a
 *      `SparseMethod` object (attend, reference, supports, optional state, budgets, lm, cases);
 *   2. one line in methods.ts's SPARSE_METHODS, and one export line here (the function, its reference, its options
 *      type and its method object: the public surface; helpers stay inside the folder).
 * The table then gives it, with no other file touched: the shared test matrix on its `cases` (equals its `exact`
 * target, matches its reference with fewer pairs than dense, causal, reference gradients, no leaks, supports() empty
 * on its cases); sparse-scaling rows when it has `budgets.timing`; sparse-approx rows when it has `budgets.keys` (its
 * state fitted per `state.fitTo`); passkey-long when it has `budgets.extend` (training-free on the dense model) or an
 * `lm` kind that decodes; each experiment's config schema accepts its name.
 */

// The public surface: per paper the mechanism, its float64 reference, its options and its `SparseMethod`; the table;
// SparseLM; the metrics. The shared plumbing (options.ts, selection.ts, gather.ts, naive.ts, compact-positions.ts)
// stays inside the family.
export { plantedQkv } from '../../data/planted.js';
export {
  denseAttention,
  denseAttentionNaive,
  denseMethod,
  type LocalOptions,
  localAttention,
  localAttentionNaive,
  localMethod,
  type SinkWindowOptions,
  sinkWindowAttention,
  sinkWindowAttentionNaive,
  sinkWindowMethod,
} from './baselines/index.js';
export { compactPositions } from './compact-positions.js';
export { densePairs, type SparseResult, type SparseStats } from './cost.js';
export { type HipOptions, hipAttention, hipAttentionNaive, hipMethod } from './hip/index.js';
export { type HyperOptions, hyperAttention, hyperAttentionNaive, hyperMethod } from './hyper/index.js';
export {
  insertLandmarks,
  isLandmark,
  type LandmarkOptions,
  landmarkAttention,
  landmarkAttentionNaive,
  landmarkMethod,
} from './landmark/index.js';
export {
  LONGHEADS_SUMMARIES,
  type LongHeadsOptions,
  type LongHeadsSummary,
  longHeadsAttention,
  longHeadsAttentionNaive,
  longHeadsMethod,
} from './longheads/index.js';
export {
  ATTENTION_KINDS,
  type AttentionKind,
  type MethodBudgets,
  type MethodState,
  type PaperRef,
  type SparseCase,
  type SparseMethod,
  type StateContext,
} from './method.js';
export { SPARSE_METHODS, sparseMethod } from './methods.js';
export { type CoverageMetrics, coverage, relativeError } from './metrics.js';
export { type AttendFn, type ForwardOptions, maskPairs, SparseLM, type SparseLMConfig } from './model.js';
export {
  commitmentLoss,
  initCentroids,
  kmeansUpdate,
  normaliseShared,
  prefixRouting,
  ROUTING_ASSIGNMENTS,
  type RoutingAssignment,
  type RoutingOptions,
  type RoutingResult,
  routingAttention,
  routingAttentionNaive,
  routingMethod,
} from './routing/index.js';
export {
  initSeerGate,
  type SeerGate,
  type SeerOptions,
  seerAttention,
  seerAttentionNaive,
  seerDistillLoss,
  seerGateLogProbs,
  seerGroundTruth,
  seerMethod,
  seerOracleAttention,
  seerOracleAttentionNaive,
  seerOracleMethod,
  trainSeerGate,
} from './seer/index.js';

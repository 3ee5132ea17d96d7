/**
 * Content-based sparse attention: which keys can a query skip, and what does skipping cost in accuracy and save in
 * time? One folder per paper; every method takes (q, k, v, options) like `sdpa`, returns its output with a report of
 * what it computed (`stats`) and which pairs it scored (`covers`), and has a float64 naive reference beside it.
 *
 *   routing    Routing Transformer (Roy et al., 2021): online k-means clusters, balanced top-w routing
 *   hip        HiP (Lee et al., 2025): hierarchical top-k block search, training-free
 *   hyper      HyperAttention (Han et al., 2024): sortLSH diagonal blocks + sampled columns
 *   seer       SeerAttention (Gao et al., 2024): learned block gate distilled from pooled attention
 *   landmark   Landmark attention (Mohtashami & Jaggi, 2023): grouped softmax, top-k block retrieval
 *   longheads  LongHeads (Lu et al., 2024): per-head chunk selection within the trained length
 */
export * from './common.js';
export * from './metrics.js';
export * from './routing/index.js';
export * from './hip/index.js';
export * from './hyper/index.js';
export * from './seer/index.js';
export * from './landmark/index.js';
export * from './longheads/index.js';
export * from './model.js';
export { plantedQkv, sinkWindowAttention } from './experiments/approx.js';
export { recallTask } from './experiments/routing-lm.js';

/**
 * KV-cache compression and speculative decoding (issue #20): how small can the KV cache get, and how fast can decoding
 * go, before answers change? One namespace per paper, plus the shared cache-policy machinery:
 *
 *   al.inference.kv              the KV-policy interface (after kvpress: one small class per policy), the policy-aware
 *                                cache that measures its own bytes per layer and head, decodeWithPolicy, and the plain
 *                                policies: full, sliding window, sinks + recent (StreamingLLM), H2O
 *   al.inference.retrievalHeads  Wu et al. 2024, Retrieval Head: per-head copy-paste retrieval scores, head masking
 *   al.inference.lazyEviction    LazyEviction: recurrence intervals, evicting lazily once per window
 *   al.inference.razor           RazorAttention: echo/induction heads keep everything, others sinks + recent plus one
 *                                compensation token
 *   al.inference.duo             DuoAttention: per-KV-head gates between full and streaming attention, optimised on
 *                                synthetic passkeys with the model frozen
 *   al.inference.medusa          Medusa: extra decoding heads, candidate trees verified in one forward pass
 *
 * Notebook: 07-kv-cache-and-decoding.
 */
export * as duo from './duo/index.js';
export * as kv from './kv/index.js';
export * as lazyEviction from './lazy-eviction/index.js';
export * as medusa from './medusa/index.js';
export * as razor from './razor/index.js';
export * as retrievalHeads from './retrieval-heads/index.js';

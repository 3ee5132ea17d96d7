/**
 * KV-cache policies (issue #20): the policy interface and its composition (policy.ts), the per-head cache whose bytes
 * are measured from its tensors (cache.ts), decoding through a policy (decode.ts), and the policies that need nothing
 * beyond it: full, sliding window, sinks + recent (StreamingLLM) and H2O. LazyEviction and RazorAttention live in their
 * papers' folders (../lazy-eviction, ../razor).
 */
export { PolicyCache, type PolicyCacheShape } from './cache.js';
export { type DecodeOptions, decodeWithPolicy, type PolicyDecode } from './decode.js';
export { H2OPolicy } from './h2o.js';
export {
  BasePolicy,
  FullPolicy,
  HeadState,
  type HeadView,
  type KVPolicy,
  PerHeadPolicy,
  type Selection,
  SinkPolicy,
  sinksAndRecent,
  WindowPolicy,
} from './policy.js';

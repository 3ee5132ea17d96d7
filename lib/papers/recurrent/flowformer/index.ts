/**
 * Flowformer (Wu, Wu, Xu, Wang, Long 2022, "Flowformer: Linearizing Transformers with Conservation Flows", ICML,
 * https://arxiv.org/abs/2202.06258; official code thuml/Flowformer).
 *
 * Flow-Attention is linear attention read as a flow network with conservation: sinks (queries) and sources (keys)
 * with sigmoid capacities, a softmax competition among sources and a sigmoid allocation to sinks, O(n) in the
 * sequence length; the causal variant takes prefix sums and has a constant-size recurrent state.
 *
 *   const out = flowAttention(q, k, v, { causal: true });   // q, k [b, h, s, d], v [b, h, s, e] -> [b, h, s, e]
 *   const flows = flowAttentionFlows(q, k, { causal: true }); // incoming / outgoing / competition / allocation
 *   let st = flowInitState(b, h, d, e); const { out: o0, state } = flowStep(st, q0, k0, v0);
 *
 * Files: flow-attention.ts (the parallel form, the recurrent step, the flows, the float64 reference).
 */
export {
  disposeFlowState,
  type FlowAttentionOptions,
  type FlowDims,
  type FlowState,
  type Flows,
  flowAttention,
  flowAttentionFlows,
  flowAttentionReference,
  flowInitState,
  flowStateBytes,
  flowStep,
} from './flow-attention.js';

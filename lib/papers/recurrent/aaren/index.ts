/**
 * Aaren: attention as an RNN (Feng, Tung, Hajimirsadeghi, Ahmed, Bengio, Mori 2024, "Attention as an RNN",
 * https://arxiv.org/abs/2405.13956; no official code found).
 *
 * Softmax attention of one learned query over a growing prefix is a recurrence on (m, u, w) whose merge is
 * associative: a parallel prefix scan for training (aarenScan), an O(1)-memory step per token for streaming
 * (aarenStep).
 *
 *   m_t = max(m_{t-1}, s_t),  u_t = u_{t-1} e^{m_{t-1}-m_t} + e^{s_t-m_t},  w_t = w_{t-1} e^{m_{t-1}-m_t} + v_t e^{s_t-m_t},
 *   o_t = w_t / u_t = softmax(s_0..s_t) · v_0..v_t
 *
 *   const o = aarenScan(s, v);                      // s [b, h, n], v [b, h, n, e] -> [b, h, n, e]
 *   let st = aarenInitState(b, h, e); const r = aarenStep(st, s0, v0);   // r.out [b, h, e], r.state
 *   const model = new SequenceModel({ kind: 'aaren', inputDim: 1, outputDim: 16, dModel: 32, heads: 2, layers: 2, seed: 0 });
 *
 * Files: scan.ts (the scan, the step, dense causal single-query attention, float64 references), model.ts (the Aaren
 * layer and the Aaren / causal-Transformer sequence models with streaming), experiment.ts (`aaren`). Data:
 * lib/data/time-series.ts.
 */
export { type AarenArtifacts, type AarenConfig, aarenExperiment } from './experiment.js';
export {
  type AarenMixParams,
  aarenMix,
  aarenMixStep,
  SequenceModel,
  type SequenceModelConfig,
  type SequenceModelKind,
  type StreamState,
} from './model.js';
export {
  type AarenState,
  aarenInitState,
  aarenScan,
  aarenScanReference,
  aarenStateBytes,
  aarenStep,
  causalSingleQueryAttention,
  causalSingleQueryReference,
  disposeAarenState,
  type ScanDims,
} from './scan.js';

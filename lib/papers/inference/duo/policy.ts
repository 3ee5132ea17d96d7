/**
 * DuoAttention deployed (paper §3.3): retrieval heads keep the full KV cache, streaming heads a constant sink + recent
 * cache, in prefill and in decoding. The cache side is a per-head KV policy (lib/papers/inference/kv/policy.ts:
 * FullPolicy for retrieval heads, SinkPolicy for streaming heads). The prefill side runs the streaming heads' attention
 * over sinks + recent only, as the paper's prefill does (through the gates' hooks with gates 1 / 0); kvpress-style
 * policies instead see the whole prompt in prefill and evict afterwards.
 *
 *   const heads = headsFromGates(gates, 0.25);                       // [layer][kvHead] true = retrieval head
 *   const r = decodeDuo(model, prompt, 8, heads, { sinks: 4, recent: 16 });   // PolicyDecode: tokens, bytes, headBytes
 */
import * as tf from '@tensorflow/tfjs';
import type { ToyLM } from '../../../layers/toylm.js';
import { type DecodeOptions, decodeWithPolicy, type PolicyDecode } from '../kv/decode.js';
import { FullPolicy, PerHeadPolicy, SinkPolicy } from '../kv/policy.js';
import type { StreamingWindow } from './attention.js';
import { applyDuoGates, kvHeadsOf } from './gates.js';

function checkHeads(fn: string, model: ToyLM, retrieval: boolean[][]): void {
  const L = model.config.layers;
  const g = kvHeadsOf(model);
  if (!Array.isArray(retrieval) || retrieval.length !== L || retrieval.some((r) => !Array.isArray(r) || r.length !== g))
    throw new Error(
      `${fn}: retrieval must be a [layers ${L}][kvHeads ${g}] table of booleans, got ${JSON.stringify(retrieval)?.slice(0, 80)}`,
    );
}

/**
 * The KV policy of DuoAttention: FullPolicy on retrieval heads; on streaming heads SinkPolicy with the first
 * `window.sinks` tokens and the `window.recent - 1` newest (the query's own token completes its recent window, as in
 * duoAttention's streaming mask).
 */
export function duoPolicy(retrieval: boolean[][], window: StreamingWindow, name = 'duo'): PerHeadPolicy {
  const fn = 'duoPolicy';
  if (!Array.isArray(retrieval) || retrieval.length === 0)
    throw new Error(`${fn}: retrieval must be a non-empty [layer][kvHead] table, got ${JSON.stringify(retrieval)}`);
  if (!Number.isInteger(window?.recent) || window.recent < 2 || !Number.isInteger(window.sinks) || window.sinks < 0)
    throw new Error(
      `${fn}: window must be { sinks >= 0, recent >= 2 } integers, got ${JSON.stringify(window ?? null)}`,
    );
  const full = new FullPolicy();
  // The cache keeps recent - 1 tokens: with the new token they make the `recent` window of Attn_stream.
  const stream = new SinkPolicy({ sinks: window.sinks, recent: window.recent - 1 });
  return new PerHeadPolicy(
    retrieval.map((row) => row.map((r) => (r ? full : stream))),
    name,
  );
}

/**
 * Decodes `prompt` with DuoAttention deployed: streaming heads attend to sinks + recent only already in the prefill
 * (set `streamingPrefill: false` for kvpress-style prefill), then keep a sink + recent cache; retrieval heads keep
 * everything. Same result type as decodeWithPolicy.
 */
export function decodeDuo(
  model: ToyLM,
  prompt: tf.Tensor,
  steps: number,
  retrieval: boolean[][],
  window: StreamingWindow,
  opts: DecodeOptions & { streamingPrefill?: boolean } = {},
): PolicyDecode {
  const fn = 'decodeDuo';
  checkHeads(fn, model, retrieval);
  const policy = duoPolicy(retrieval, window);
  const { streamingPrefill = true, ...decodeOpts } = opts;
  if (!streamingPrefill) return decodeWithPolicy(model, prompt, steps, policy, decodeOpts);
  const gates = tf.tensor2d(retrieval.map((row) => row.map((r) => (r ? 1 : 0))));
  let prefill = true;
  const remove = applyDuoGates(model, gates, window, () => prefill);
  try {
    return decodeWithPolicy(model, prompt, steps, policy, {
      ...decodeOpts,
      inspect: (cache, pass) => {
        prefill = false; // after the prefill pass, streaming heads' caches hold only sinks + recent
        decodeOpts.inspect?.(cache, pass);
      },
    });
  } finally {
    remove();
    gates.dispose();
  }
}

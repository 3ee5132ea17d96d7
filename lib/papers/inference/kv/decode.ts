/**
 * Decoding a ToyLM through a KV-cache policy: prefill the prompt, let the policy observe (when it reads attention) and
 * select, then decode one token per forward pass, the policy selecting after each. Greedy by default; with `teacher`
 * the fed tokens are given (teacher forcing) and `tokens` still holds the model's argmax at each step, so answer
 * accuracy can be read without the errors compounding.
 *
 *   prompt [b, s] int32 -> tokens [b][steps], logits of each step's last position (optional), bytes after each pass.
 */
import * as tf from '@tensorflow/tfjs';
import type { ToyLM } from '../../../layers/toylm.js';
import { PolicyCache } from './cache.js';
import type { KVPolicy } from './policy.js';

export interface DecodeOptions {
  /** Tokens to feed at steps 0..steps-2 instead of the argmax ([b][steps - 1] or more), i.e. teacher forcing. */
  teacher?: number[][];
  /** Keep the log-probabilities of each step's prediction ([b][steps][vocab]). */
  keepLogits?: boolean;
  /** Called after every pass (prefill = pass 0) with the cache after the policy selected (read, don't dispose). */
  inspect?: (cache: PolicyCache, pass: number) => void;
}

export interface PolicyDecode {
  /** The argmax prediction at each step, [b][steps]. */
  tokens: number[][];
  /** Logits of each step's prediction, [b][steps][vocab] (with keepLogits). */
  logits?: number[][][];
  /** Cache bytes (all layers and heads, all rows) after each pass's selection, measured; bytes[0] after the prefill. */
  bytes: number[];
  /** The largest cache the run held: the most bytes right after a pass appended and before the policy selected. */
  peakBytes: number;
  /** Bytes per [layer][KV head] after the last pass. */
  headBytes: number[][];
  /** Tokens stored per [layer][KV head] after the last pass (compensation tokens not counted). */
  stored: number[][];
}

/** Greedy (or teacher-forced) decoding of `steps` tokens after `prompt` [b, s] with `policy` managing the KV cache. */
export function decodeWithPolicy(
  model: ToyLM,
  prompt: tf.Tensor,
  steps: number,
  policy: KVPolicy,
  opts: DecodeOptions = {},
): PolicyDecode {
  const fn = 'decodeWithPolicy';
  if (prompt?.rank !== 2)
    throw new Error(`${fn}: prompt must have rank 2 [batch, positions], got shape [${prompt?.shape}]`);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`${fn}: steps must be an integer >= 1, got ${steps}`);
  if (!policy || typeof policy.select !== 'function')
    throw new Error(`${fn}: policy must be a KVPolicy, got ${String(policy)}`);
  const c = model.config;
  const [b, s] = prompt.shape;
  if (s + steps - 1 > c.maxLen)
    throw new Error(`${fn}: prompt (${s}) + steps (${steps}) - 1 positions exceed the model's maxLen ${c.maxLen}`);
  if (opts.teacher && (opts.teacher.length !== b || opts.teacher.some((r) => r.length < steps - 1)))
    throw new Error(
      `${fn}: opts.teacher must be [batch ${b}][>= steps - 1 = ${steps - 1}] tokens, got ${opts.teacher.length} rows`,
    );
  if (c.window !== undefined)
    throw new Error(`${fn}: the model has its own sliding window (config.window ${c.window}); decode it without one`);
  const cache = new PolicyCache(
    { layers: c.layers, heads: c.heads, kvHeads: c.kvHeads ?? c.heads, headDim: c.dModel / c.heads, maxLen: c.maxLen },
    policy,
  );
  policy.reset();
  const remove = policy.needsAttention
    ? model.hooks.add(/^blocks\.\d+\.attn\.hook_pattern$/, (x, { name }) => {
        cache.observe(Number(name.split('.')[1]), x);
      })
    : undefined;
  const tokens: number[][] = Array.from({ length: b }, () => []);
  const logits: number[][][] | undefined = opts.keepLogits ? Array.from({ length: b }, () => []) : undefined;
  const bytes: number[] = [];
  let peakBytes = 0;
  try {
    let input: tf.Tensor = prompt;
    for (let t = 0; t < steps; t++) {
      const out = model.forward(input, { cache });
      peakBytes = Math.max(peakBytes, cache.bytes());
      cache.compress();
      bytes.push(cache.bytes());
      opts.inspect?.(cache, t);
      if (input !== prompt) input.dispose();
      const last = tf.tidy(() => out.slice([0, out.shape[1] - 1, 0], [b, 1, c.vocab]).reshape([b, c.vocab]));
      out.dispose();
      const lv = last.arraySync() as number[][];
      last.dispose();
      const next: number[] = [];
      for (let r = 0; r < b; r++) {
        let best = 0;
        for (let j = 1; j < c.vocab; j++) if (lv[r][j] > lv[r][best]) best = j;
        tokens[r].push(best);
        logits?.[r].push(lv[r]);
        next.push(opts.teacher ? opts.teacher[r][t] : best);
      }
      if (t + 1 < steps) input = tf.tensor2d(next, [b, 1], 'int32');
    }
    return {
      tokens,
      logits,
      bytes,
      peakBytes,
      headBytes: cache.headBytes(),
      stored: Array.from({ length: c.layers }, (_, l) =>
        Array.from({ length: c.kvHeads ?? c.heads }, (_, g) => cache.stored(l, g)),
      ),
    };
  } finally {
    remove?.();
    cache.dispose();
  }
}

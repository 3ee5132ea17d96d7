/**
 * The building blocks as pure functions on tensors + parameters: attention over `sdpa` (or a passed-in `attend`), MLP,
 * norm and the transformer block (with an optional cross-attention sublayer for decoders). ToyLM, the tf.layers.Layer
 * classes in this folder, OAT, the brain encoder, the pointer-transformer and SparseLM call these; their parameters
 * come from weights.ts on the seeded ParamFactory (params.ts). Hook points (names and shapes in hooks.ts) run only
 * when a registry is passed in.
 * Shape legend: b batch, s positions, t context positions, m d_model, h heads, g kv heads, d head dim, f MLP hidden.
 */
import type * as tf from '@tensorflow/tfjs';
import { type Scoring, sdpa } from '../attention/sdpa.js';
import * as native from '../backend/native.js';
import { matmul } from '../backend/ops.js';
import * as masks from '../masks/index.js';
import { alibiBias, rope } from '../positional/index.js';
import type { KVCache } from './cache.js';
import type { HookRegistry } from './hooks.js';

export type AttentionPositional = 'none' | 'rope' | 'alibi';

export interface AttentionConfig {
  dModel: number;
  heads: number;
  /** Key/value heads (grouped-query attention); defaults to `heads`. */
  kvHeads?: number;
  /** Per-head dim; defaults to dModel / heads. */
  headDim?: number;
  causal?: boolean;
  /** With causal: only the last `window` keys (sliding window); with `sinks`, also the first `sinks` keys. */
  window?: number;
  sinks?: number;
  positional?: AttentionPositional;
  ropeBase?: number;
  scoring?: Scoring;
  useBias?: boolean;
}

export interface AttentionParams {
  /** Without wq the queries are x itself (learned queries already in head space, as the brain encoder's). */
  wq?: tf.Tensor; // [m, h*d]
  wk: tf.Tensor; // [m, g*d]
  wv: tf.Tensor; // [m, g*d]
  /** Without wo the output is the merged heads [b, s, h*d]. */
  wo?: tf.Tensor; // [h*d, m]
  bq?: tf.Tensor;
  bk?: tf.Tensor;
  bv?: tf.Tensor;
  bo?: tf.Tensor;
  sink?: tf.Tensor; // [h] for softmax-sink scoring
}

export interface Resolved {
  heads: number;
  kvHeads: number;
  headDim: number;
}

export function resolve(cfg: AttentionConfig): Resolved {
  const kvHeads = cfg.kvHeads ?? cfg.heads;
  const headDim = cfg.headDim ?? cfg.dModel / cfg.heads;
  if (!Number.isInteger(headDim) || headDim <= 0) {
    throw new Error(
      `attention config: dModel (${cfg.dModel}) must be divisible by heads (${cfg.heads}), or give headDim`,
    );
  }
  if (cfg.heads % kvHeads !== 0)
    throw new Error(`attention config: kvHeads (${kvHeads}) must divide heads (${cfg.heads})`);
  if (cfg.positional === 'rope' && headDim % 2 !== 0)
    throw new Error(`attention config: RoPE needs an even head dim, got ${headDim}`);
  return { heads: cfg.heads, kvHeads, headDim };
}

/** x [..., in] W [in, out] (+ b); with transposeW, W is [out, in] (tied embeddings). */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor, transposeW = false): tf.Tensor {
  const y = matmul(x, w, false, transposeW);
  return b ? y.add(b) : y;
}

/** [b, s, h*d] -> [b, h, s, d] */
export function splitHeads(x: tf.Tensor, heads: number, dim: number): tf.Tensor4D {
  const [b, s] = x.shape;
  return x.reshape([b, s, heads, dim]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
}

/** [b, h, s, d] -> [b, s, h*d] */
export function mergeHeads(x: tf.Tensor): tf.Tensor3D {
  const [b, h, s, d] = x.shape;
  return x.transpose([0, 2, 1, 3]).reshape([b, s, h * d]) as tf.Tensor3D;
}

export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  // One fused kernel forward and backward on wasm-native; the same moments formula composed elsewhere.
  return native.layerNorm(x, gamma, beta, eps);
}

/** Exact GELU: x · Φ(x) = 0.5 x (1 + erf(x / √2)) (Hendrycks & Gimpel, 2016). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return native.gelu(x); // fused on wasm-native, composed elsewhere
}

/** The causal mask family a config asks for, or undefined. */
export function configMask(cfg: AttentionConfig): masks.Mask | undefined {
  if (!cfg.causal) return undefined;
  if (cfg.window !== undefined)
    return cfg.sinks ? masks.sinkWindow(cfg.sinks, cfg.window) : masks.slidingWindow(cfg.window);
  return masks.causal();
}

/**
 * An attention in place of `sdpa` (a sparse method, say): q [b, h, s, d], k, v [b, g, t, d] after RoPE ->
 * z [b, h, s, d]. `content` holds the queries and keys before RoPE, for methods that route on content or place the
 * keys they keep at positions of their own.
 */
export type Attend = (
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  content: { q: tf.Tensor4D; k: tf.Tensor4D },
) => tf.Tensor4D;

export interface AttentionCall {
  hooks?: HookRegistry;
  /** Hook-name prefix, e.g. 'blocks.0.attn'. */
  prefix?: string;
  /** KV cache and the index of this layer in it. */
  cache?: KVCache;
  layer?: number;
  /** Replaces the config's mask (e.g. causal & padding); a tensor is a 0/1 mask broadcastable to [b, h, s, t]. */
  mask?: masks.Mask | tf.Tensor;
  /** Keys read this [b, t, m] instead of the context (position codes in the keys only, as DETR's). */
  keyInput?: tf.Tensor;
  /**
   * Replaces `sdpa`, so the config's mask, bias and scoring and the call's mask do not apply, and `hook_pattern` does
   * not run (a sparse method has no dense pattern). Not with a cache: the content keys would cover only the new
   * positions.
   */
  attend?: Attend;
  /**
   * Only the last query (decoding without a cache): q, k, v are projected and rotated at every position and q then
   * keeps its last row, so the output [b, 1, m] is the last row of the full call's.
   */
  lastOnly?: boolean;
}

/**
 * Multi-head attention: x [b, s, m] attends to context [b, t, m] (self-attention when context is x).
 * With a cache, new keys/values are appended and queries sit at the end of the cached positions.
 */
export function attentionForward(
  p: AttentionParams,
  x: tf.Tensor,
  context: tf.Tensor | null,
  cfg: AttentionConfig,
  call: AttentionCall = {},
): tf.Tensor3D {
  const { heads, kvHeads, headDim } = resolve(cfg);
  if (call.attend && call.cache)
    throw new Error(
      'attentionForward: call.attend cannot run with call.cache (the content keys would cover only the new positions)',
    );
  const hook = (name: string, t: tf.Tensor) => (call.hooks ? call.hooks.run(`${call.prefix ?? 'attn'}.${name}`, t) : t);
  const src = context ?? x;
  const past = call.cache ? call.cache.length(call.layer ?? 0) : 0;
  const qContent = splitHeads(p.wq ? linear(x, p.wq, p.bq) : x, heads, headDim); // [b, h, s, d]
  const kContent = splitHeads(linear(call.keyInput ?? src, p.wk, p.bk), kvHeads, headDim); // [b, g, t, d]
  let v = splitHeads(linear(src, p.wv, p.bv), kvHeads, headDim); // [b, g, t, d]
  let [q, k, qc] = [qContent, kContent, qContent];
  if (cfg.positional === 'rope') {
    const qPos = Array.from({ length: q.shape[2] }, (_, i) => past + i);
    const kPos = Array.from({ length: k.shape[2] }, (_, i) => past + i);
    q = rope(q, qPos, { base: cfg.ropeBase }) as tf.Tensor4D;
    k = rope(k, kPos, { base: cfg.ropeBase }) as tf.Tensor4D;
  }
  if (call.lastOnly) {
    const [b, h, s, d] = q.shape;
    q = q.slice([0, 0, s - 1, 0], [b, h, 1, d]); // queries are end-aligned to the keys
    qc = qContent.slice([0, 0, s - 1, 0], [b, h, 1, d]);
  }
  if (call.cache) [k, v] = call.cache.append(call.layer ?? 0, k, v);
  q = hook('hook_q', q) as tf.Tensor4D;
  k = hook('hook_k', k) as tf.Tensor4D;
  v = hook('hook_v', v) as tf.Tensor4D;
  const keys = k.shape[2];
  const bias = cfg.positional === 'alibi' ? alibiBias(heads, q.shape[2], keys) : undefined;
  const mask = call.mask ?? (context ? undefined : configMask(cfg));
  const opts = { mask, bias, scoring: cfg.scoring, sinkLogit: p.sink };
  let z: tf.Tensor;
  if (call.attend) {
    z = call.attend(q, k, v, { q: qc, k: kContent });
  } else if (call.hooks?.has(`${call.prefix ?? 'attn'}.hook_pattern`)) {
    const r = sdpa(q, k, v, { ...opts, returnWeights: true });
    hook('hook_pattern', r.weights);
    z = r.output;
  } else {
    z = sdpa(q, k, v, opts);
  }
  z = hook('hook_z', z); // [b, h, s, d]
  return (p.wo ? linear(mergeHeads(z), p.wo, p.bo) : mergeHeads(z)) as tf.Tensor3D;
}

export interface MlpParams {
  w1: tf.Tensor; // [m, f]
  b1: tf.Tensor; // [f]
  w2: tf.Tensor; // [f, m]
  b2: tf.Tensor; // [m]
}

/** GELU MLP: W2 gelu(W1 x + b1) + b2, x [..., m] -> [..., m]; hook `${prefix}.hook_post` sees gelu's output. */
export function mlpForward(
  p: MlpParams,
  x: tf.Tensor,
  call: { hooks?: HookRegistry; prefix?: string } = {},
): tf.Tensor {
  const h = gelu(linear(x, p.w1, p.b1)); // [..., f]
  return linear(call.hooks ? call.hooks.run(`${call.prefix ?? 'mlp'}.hook_post`, h) : h, p.w2, p.b2);
}

export interface NormParams {
  gamma: tf.Tensor; // [m]
  beta: tf.Tensor; // [m]
}

/** Layer norm over the last axis (eps 1e-5). */
export function normForward(p: NormParams, x: tf.Tensor): tf.Tensor {
  return layerNorm(x, p.gamma, p.beta);
}

export interface BlockConfig extends AttentionConfig {
  /** MLP hidden size = mlpRatio * dModel. */
  mlpRatio?: number;
}

export interface BlockParams {
  ln1: NormParams;
  attn: AttentionParams;
  /** A decoder block's cross-attention to the memory, between self-attention and the MLP. */
  cross?: { ln: NormParams; attn: AttentionParams };
  ln2: NormParams;
  mlp: MlpParams;
}

export interface BlockCall extends AttentionCall {
  /** Encoder states [b, t, m] that `cross` attends to, and its mask (e.g. key padding). */
  memory?: tf.Tensor;
  memoryMask?: masks.Mask | tf.Tensor;
}

/**
 * Pre-norm block: x + attn(ln1(x)), then + cross(ln(x), memory) when the block has one, then + mlp(ln2(x)).
 * x [b, s, m] -> [b, s, m] ([b, 1, m] with lastOnly). Self-attention takes the call's mask, cache, attend and
 * lastOnly; cross-attention takes memoryMask.
 */
export function blockForward(p: BlockParams, x: tf.Tensor, cfg: BlockConfig, call: BlockCall = {}): tf.Tensor3D {
  const prefix = call.prefix ?? 'block';
  const hook = (name: string, t: tf.Tensor) => (call.hooks ? call.hooks.run(`${prefix}.${name}`, t) : t);
  const { memory, memoryMask, ...selfCall } = call;
  x = hook('hook_resid_pre', x);
  const a = hook(
    'hook_attn_out',
    attentionForward(p.attn, normForward(p.ln1, x), null, cfg, { ...selfCall, prefix: `${prefix}.attn` }),
  );
  if (call.lastOnly) {
    const [b, s, m] = x.shape;
    x = x.slice([0, s - 1, 0], [b, 1, m]);
  }
  x = x.add(a);
  if (p.cross) {
    if (!memory) throw new Error(`blockForward: block '${prefix}' has cross-attention but the call gives no memory`);
    const c = attentionForward(p.cross.attn, normForward(p.cross.ln, x), memory, cfg, {
      hooks: call.hooks,
      prefix: `${prefix}.cross`,
      mask: memoryMask,
    });
    x = x.add(hook('hook_cross_out', c));
  }
  const mlp = hook(
    'hook_mlp_out',
    mlpForward(p.mlp, normForward(p.ln2, x), { hooks: call.hooks, prefix: `${prefix}.mlp` }),
  );
  return hook('hook_resid_post', x.add(mlp)) as tf.Tensor3D;
}

/**
 * The building blocks as pure functions on tensors + parameters: attention over `sdpa` (or a passed-in `attend`), MLP,
 * norm and the transformer block (with an optional cross-attention sublayer for decoders). ToyLM, the tf.layers.Layer
 * classes in this folder, OAT, the brain encoder, the pointer-transformer and SparseLM call these; their parameters
 * come from weights.ts on the seeded ParamFactory (params.ts). Hook points (names and shapes in hooks.ts) run only
 * when a registry is passed in.
 * Shape legend: b batch, s positions, t context positions, m d_model, h heads, g kv heads, d head dim, f MLP hidden.
 */
import * as tf from '@tensorflow/tfjs';
import { type Scoring, sdpa } from '../attention/sdpa.js';
import * as native from '../backend/native.js';
import { matmul } from '../backend/ops.js';
import * as masks from '../masks/index.js';
import { alibiBias, rope } from '../positional/index.js';
import type { KVCache } from './cache.js';
import type { HookRegistry } from './hooks.js';

export type AttentionPositional = 'none' | 'rope' | 'alibi';

/**
 * Mixture-of-Head attention (Jin et al. 2024, https://arxiv.org/abs/2410.11842): the heads are experts. The first
 * `shared` heads are always on, a router picks `topK` of the other `routed` heads per token, and the head outputs are
 * summed with weights (see {@link mohGates}). shared + routed must equal `heads`.
 */
export interface MohConfig {
  kind: 'moh';
  shared: number;
  routed: number;
  topK: number;
  /** Weight of the load-balance loss that ToyLM.loss adds (default 0.01, the official code's). */
  balanceWeight?: number;
}

/** Which attention a block uses: plain multi-head attention (the default) or Mixture-of-Head. */
export type AttentionKind = { kind: 'mha' } | MohConfig;

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
  /** Default plain multi-head attention. */
  attention?: AttentionKind;
}

/** A Mixture-of-Head router: logits x·W for the routed heads, the shared heads and the two-way split. */
export interface RouterParams {
  wr: tf.Tensor; // [m, routed]
  /** Only with shared > 1 (one shared head always gets weight 1 before the split). */
  ws?: tf.Tensor; // [m, shared]
  /** Only with shared > 0: [α_shared, α_routed] = 2 · softmax(x·wh). */
  wh?: tf.Tensor; // [m, 2]
}

/** Auxiliary losses a forward pass collects (one scalar per MoH attention layer); see AttentionCall.aux. */
export interface AuxLosses {
  balance: tf.Scalar[];
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
  /** Mixture-of-Head router (attention kind 'moh'). */
  router?: RouterParams;
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
  if (cfg.attention !== undefined) checkAttentionKind(cfg.attention, cfg.heads);
  return { heads: cfg.heads, kvHeads, headDim };
}

function checkAttentionKind(a: AttentionKind, heads: number): void {
  const bad = (what: string) => {
    throw new Error(`attention config: attention ${what}, got ${JSON.stringify(a)}`);
  };
  if (a === null || typeof a !== 'object') bad("must be { kind: 'mha' } or { kind: 'moh', shared, routed, topK }");
  if (a.kind === 'mha') return;
  if (a.kind !== 'moh') bad("kind must be 'mha' or 'moh'");
  const m = a as MohConfig;
  const isInt = (v: unknown, min: number) => typeof v === 'number' && Number.isInteger(v) && v >= min;
  if (!isInt(m.shared, 0)) bad('.shared must be an integer >= 0');
  if (!isInt(m.routed, 1)) bad('.routed must be an integer >= 1');
  if (m.shared + m.routed !== heads) bad(`.shared + .routed must equal heads (${heads})`);
  if (!isInt(m.topK, 1) || m.topK > m.routed) bad(`.topK must be an integer in [1, routed = ${m.routed}]`);
  if (m.balanceWeight !== undefined && !(typeof m.balanceWeight === 'number' && m.balanceWeight >= 0))
    bad('.balanceWeight must be a number >= 0');
}

/**
 * 0/1 mask of the k largest entries of p [n, e] along the last axis; ties go to the lower index, on every backend.
 * Entry i is kept when fewer than k entries beat it, where j beats i if p_j > p_i, or p_j = p_i and j < i. Built from
 * greaterEqual and arithmetic only, so it sits on a gradient tape (its gradient is zero) without tf.topk.
 */
export function topKMask(p: tf.Tensor2D, k: number): tf.Tensor2D {
  return tf.tidy(() => {
    const e = p.shape[1];
    const pi = p.expandDims(2); // [n, e(i), 1]
    const pj = p.expandDims(1); // [n, 1, e(j)]
    const below = tf.tensor2d(
      Array.from({ length: e * e }, (_, x) => (x % e < Math.floor(x / e) ? 1 : 0)),
      [e, e],
    ); // [i, j] = 1 where j < i
    const jAtLeast = tf.greaterEqual(pj, pi).toFloat(); // p_j >= p_i
    const iAtLeast = tf.greaterEqual(pi, pj).toFloat(); // p_i >= p_j
    const beats = below.mul(jAtLeast).add(tf.scalar(1).sub(below).mul(tf.scalar(1).sub(iAtLeast)));
    const rank = beats.sum(2); // [n, e]: entries that beat i
    return tf.scalar(1).sub(tf.greaterEqual(rank, k).toFloat()) as tf.Tensor2D;
  });
}

/** What {@link mohGates} returns; n = batch · positions. */
export interface MohGates {
  /** Per-head weights [b, s, h]: shared heads first, then routed (0 where a routed head is not picked). */
  gates: tf.Tensor3D;
  /** Router probabilities over the routed heads, softmax(x·wr), [b, s, routed]. */
  probs: tf.Tensor3D;
  /** 1 where a routed head is among the token's top K, [b, s, routed]. */
  selected: tf.Tensor3D;
  /** Load-balance loss E · Σ_i mean(probs_i) · mean(selected_i) (E = routed; 1·K when perfectly balanced). */
  balance: tf.Scalar;
}

/**
 * The two-stage Mixture-of-Head router on x [b, s, m] (the official code's arithmetic):
 *   routed:  g_r = K · p ⊙ top_K(p) / Σ(p ⊙ top_K(p)),  p = softmax(x·wr)
 *   shared:  g_s = S · softmax(x·ws)  (S = 1: g_s = 1)
 *   split:   [α_s, α_r] = 2 · softmax(x·wh);  gates = [α_s g_s, α_r g_r]
 * With uniform router logits and K = routed every gate is 1: the plain sum of heads, i.e. multi-head attention.
 */
export function mohGates(x: tf.Tensor, p: RouterParams, cfg: MohConfig): MohGates {
  const fn = 'mohGates';
  if (x.rank !== 3) throw new Error(`${fn}: x must have shape [batch, positions, dModel], got [${x.shape}]`);
  const [b, s, m] = x.shape;
  const want = (name: string, w: tf.Tensor | undefined, cols: number) => {
    if (w?.rank !== 2 || w.shape[0] !== m || w.shape[1] !== cols)
      throw new Error(`${fn}: router.${name} must have shape [${m}, ${cols}], got ${w ? `[${w.shape}]` : 'nothing'}`);
  };
  want('wr', p.wr, cfg.routed);
  if (cfg.shared > 1) want('ws', p.ws, cfg.shared);
  if (cfg.shared > 0) want('wh', p.wh, 2);
  return tf.tidy(() => {
    const n = b * s;
    const E = cfg.routed;
    const xf = x.reshape([n, m]);
    const probs = tf.softmax(linear(xf, p.wr)) as tf.Tensor2D; // [n, E]
    const selected = topKMask(probs, cfg.topK);
    const balance = probs.mean(0).mul(selected.mean(0)).sum().mul(E) as tf.Scalar;
    const kept = probs.mul(selected);
    const eps = 1.1920929e-7; // float32 epsilon, the official clamp
    let routed = kept.div(kept.sum(1, true).maximum(eps)).mul(cfg.topK); // [n, E]
    let gates: tf.Tensor = routed;
    if (cfg.shared > 0) {
      const S = cfg.shared;
      let shared = S > 1 ? tf.softmax(linear(xf, p.ws!)).mul(S) : tf.ones([n, 1]); // [n, S]
      const alpha = tf.softmax(linear(xf, p.wh!)).mul(2); // [n, 2]
      shared = shared.mul(alpha.slice([0, 0], [n, 1]));
      routed = routed.mul(alpha.slice([0, 1], [n, 1]));
      gates = tf.concat([shared, routed], 1);
    }
    return {
      gates: gates.reshape([b, s, cfg.shared + E]) as tf.Tensor3D,
      probs: probs.reshape([b, s, E]) as tf.Tensor3D,
      selected: selected.reshape([b, s, E]) as tf.Tensor3D,
      balance,
    };
  });
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
  /**
   * Absolute position ids of the s queries (default past, past + 1, ...); RoPE rotates the queries and the new keys
   * (self-attention) by them, e.g. a token tree's depth positions. Not with ALiBi.
   */
  positions?: number[];
  /** MoH attention pushes its load-balance loss here (a tensor of the caller's scope: return it from a tidy). */
  aux?: AuxLosses;
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
  if (call.positions && call.positions.length !== q.shape[2])
    throw new Error(
      `attentionForward: call.positions must have one id per query (${q.shape[2]}), got ${call.positions.length}`,
    );
  if (call.positions && cfg.positional === 'alibi')
    throw new Error("attentionForward: call.positions cannot be used with positional 'alibi', got 'alibi'");
  if (cfg.positional === 'rope') {
    const qPos = call.positions ?? Array.from({ length: q.shape[2] }, (_, i) => past + i);
    const kPos =
      call.positions && !context && !call.keyInput
        ? call.positions
        : Array.from({ length: k.shape[2] }, (_, i) => past + i);
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
  if (cfg.attention?.kind === 'moh') {
    if (!p.router) throw new Error("attentionForward: attention kind 'moh' needs router parameters (p.router)");
    const [b, s, m] = x.shape as [number, number, number];
    const xq = call.lastOnly ? x.slice([0, s - 1, 0], [b, 1, m]) : x;
    const g = mohGates(xq, p.router, cfg.attention);
    const gates = hook('hook_gates', g.gates); // [b, s, h]
    tf.dispose([g.probs, g.selected]);
    if (call.aux) call.aux.balance.push(g.balance);
    else g.balance.dispose();
    z = z.mul(gates.transpose([0, 2, 1]).expandDims(3)); // weighted sum of heads
  }
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
      aux: call.aux,
    });
    x = x.add(hook('hook_cross_out', c));
  }
  const mlp = hook(
    'hook_mlp_out',
    mlpForward(p.mlp, normForward(p.ln2, x), { hooks: call.hooks, prefix: `${prefix}.mlp` }),
  );
  return hook('hook_resid_post', x.add(mlp)) as tf.Tensor3D;
}

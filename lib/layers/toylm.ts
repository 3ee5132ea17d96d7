/**
 * ToyLM: a small causal transformer language model (GPT-2 layout: token + position embedding, pre-norm blocks,
 * final layer norm, unembedding) built for inspection. Every head can be recorded, masked or scaled through named hook
 * points (see hooks.ts), and a KV cache makes incremental decoding equal to the full forward pass.
 *
 *   tokens [batch, pos] (int32) -> logits [batch, pos, vocab]
 */
import * as tf from '@tensorflow/tfjs';
import { loadAddon, logSoftmax, nativeInstalled, TOYLM_LAYER_WEIGHTS, toylmGenerate } from '../backend/native.js';
import { embedding } from '../backend/ops.js';
import type * as masks from '../masks/index.js';
import { sinusoidal } from '../positional/index.js';
import { fmt, ShapeError } from '../util/shapes.js';
import { KVCache } from './cache.js';
import {
  type AttentionKind,
  type AuxLosses,
  type BlockConfig,
  type BlockParams,
  blockForward,
  linear,
  type NormParams,
  normForward,
  resolve,
} from './functional.js';
import { type ActivationCache, HookRegistry } from './hooks.js';
import { layerParams, makeBlock, makeNorm } from './weights.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface ToyLMConfig {
  vocab: number;
  dModel: number;
  heads: number;
  layers: number;
  /** Longest sequence (learned and sinusoidal positions, and the KV cache). */
  maxLen: number;
  kvHeads?: number;
  mlpRatio?: number;
  positional?: 'learned' | 'sinusoidal' | 'rope' | 'alibi' | 'none';
  ropeBase?: number;
  /** Sliding-window attention (and attention sinks with it). */
  window?: number;
  sinks?: number;
  scoring?: BlockConfig['scoring'];
  /**
   * Multi-head attention (default) or Mixture-of-Head attention, e.g. `{ kind: 'moh', shared: 2, routed: 6, topK: 4 }`
   * (shared + routed = heads); with MoH, `loss` adds balanceWeight (default 0.01) · the layers' mean load-balance loss.
   */
  attention?: AttentionKind;
  /** Share the token embedding with the unembedding. */
  tieEmbeddings?: boolean;
  seed?: number;
}

const KEYS: (keyof ToyLMConfig)[] = [
  'vocab',
  'dModel',
  'heads',
  'layers',
  'maxLen',
  'kvHeads',
  'mlpRatio',
  'positional',
  'ropeBase',
  'window',
  'sinks',
  'scoring',
  'attention',
  'tieEmbeddings',
  'seed',
];

export interface ForwardOptions {
  /** Decode incrementally: new tokens are appended to the cache (see newCache()). */
  cache?: KVCache;
  /**
   * Replaces the causal mask for this call (e.g. causal & padding); a tensor is a 0/1 mask broadcastable to
   * [b, heads, s, past + s] (e.g. a token tree's mask: each node sees the cached prefix and its ancestors).
   */
  mask?: masks.Mask | tf.Tensor;
  /**
   * Absolute position ids of the s new tokens (default past, past + 1, ...), read by learned and sinusoidal positions
   * and RoPE, e.g. the depth positions of a token tree verified in one forward pass (Medusa). Not with ALiBi.
   */
  positions?: number[];
}

export class ToyLM extends tf.layers.Layer {
  static className = 'attnlab.ToyLM';
  readonly config: Required<
    Pick<ToyLMConfig, 'vocab' | 'dModel' | 'heads' | 'layers' | 'maxLen' | 'positional' | 'seed'>
  > &
    ToyLMConfig;
  /** Named hook points; see hooks.ts for names and shapes. */
  readonly hooks = new HookRegistry();
  private vars?: {
    embed: tf.Variable;
    pos?: tf.Variable;
    blocks: BlockParams[];
    lnf: NormParams;
    unembed?: tf.Variable;
  };
  private sinusoidTable?: tf.Tensor2D;

  constructor(args: ToyLMConfig & LayerArgs) {
    super(args);
    const c: Record<string, unknown> = {};
    for (const k of KEYS) if (args[k] !== undefined) c[k] = args[k];
    this.config = { positional: 'learned', seed: 0, ...(c as unknown as ToyLMConfig) };
    for (const k of ['vocab', 'dModel', 'heads', 'layers', 'maxLen'] as const) {
      if (!Number.isInteger(this.config[k]) || this.config[k] <= 0)
        throw new ShapeError(`ToyLM: config.${k} must be a positive integer, got ${this.config[k]}`);
    }
    resolve(this.blockConfig);
  }

  get blockConfig(): BlockConfig {
    const c = this.config;
    return {
      dModel: c.dModel,
      heads: c.heads,
      kvHeads: c.kvHeads,
      mlpRatio: c.mlpRatio,
      causal: true,
      window: c.window,
      sinks: c.sinks,
      positional: c.positional === 'rope' ? 'rope' : c.positional === 'alibi' ? 'alibi' : 'none',
      ropeBase: c.ropeBase,
      scoring: c.scoring,
      attention: c.attention,
    };
  }

  override build(): void {
    if (this.vars) return;
    const c = this.config;
    const f = layerParams(this, c.seed);
    this.vars = {
      embed: f.variable('embed', [c.vocab, c.dModel], { normal: 0.02 }),
      pos: c.positional === 'learned' ? f.variable('pos_embed', [c.maxLen, c.dModel], { normal: 0.01 }) : undefined,
      blocks: Array.from({ length: c.layers }, (_, i) => makeBlock(f.child(`blocks.${i}`), this.blockConfig, c.layers)),
      lnf: makeNorm(f.child('ln_final'), c.dModel),
      unembed: c.tieEmbeddings ? undefined : f.variable('unembed', [c.dModel, c.vocab], { normal: 0.02 }),
    };
    if (c.positional === 'sinusoidal') this.sinusoidTable = tf.keep(sinusoidal(c.maxLen, c.dModel) as tf.Tensor2D);
    this.built = true;
  }

  /** The trainable variables, for custom training loops. */
  variables(): tf.Variable[] {
    this.build();
    return this.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  /** Number of trainable parameters. */
  parameterCount(): number {
    return this.variables().reduce((n, v) => n + v.size, 0);
  }

  /** An empty KV cache for this model. */
  newCache(): KVCache {
    return new KVCache(this.config.layers, this.config.maxLen);
  }

  /** tokens [b, s] int32 -> logits [b, s, vocab]. With a cache, positions continue after the cached ones. */
  forward(tokens: tf.Tensor, opts: ForwardOptions = {}): tf.Tensor3D {
    this.checkTokens(tokens, opts);
    return tf.tidy(() => this.logits(tokens, opts));
  }

  /**
   * The forward pass and the mean over layers of the Mixture-of-Head load-balance loss (0 without MoH attention):
   * logits [b, s, vocab], balance a scalar. The caller disposes both.
   */
  forwardWithAux(tokens: tf.Tensor, opts: ForwardOptions = {}): { logits: tf.Tensor3D; balance: tf.Scalar } {
    this.checkTokens(tokens, opts);
    return tf.tidy(() => {
      const aux: AuxLosses = { balance: [] };
      const logits = this.logits(tokens, opts, aux);
      const n = aux.balance.length;
      const balance = (n ? tf.addN(aux.balance).div(n) : tf.scalar(0)) as tf.Scalar;
      return { logits, balance };
    });
  }

  private checkTokens(tokens: tf.Tensor, opts: ForwardOptions): void {
    const c = this.config;
    if (tokens.rank !== 2)
      throw new ShapeError(
        `ToyLM.forward: tokens must have rank 2 [batch, positions], but has shape ${fmt(tokens.shape)}`,
      );
    const past = opts.cache?.length(0) ?? 0;
    const [, s] = tokens.shape;
    if (past + s > c.maxLen)
      throw new ShapeError(`ToyLM.forward: ${past} cached + ${s} new positions exceed maxLen ${c.maxLen}`);
    if (s === 0 || tokens.shape[0] === 0)
      throw new ShapeError(`ToyLM.forward: tokens is empty (shape ${fmt(tokens.shape)})`);
    const pos = opts.positions;
    if (pos !== undefined) {
      if (c.positional === 'alibi')
        throw new ShapeError("ToyLM.forward: opts.positions cannot be used with positional 'alibi', got 'alibi'");
      if (pos.length !== s)
        throw new ShapeError(`ToyLM.forward: opts.positions must have one id per new token (${s}), got ${pos.length}`);
      const bad = pos.find((p) => !Number.isInteger(p) || p < 0 || p >= c.maxLen);
      if (bad !== undefined)
        throw new ShapeError(`ToyLM.forward: opts.positions must be integers in [0, maxLen ${c.maxLen}), got ${bad}`);
    }
    this.build();
  }

  /** The forward pass without a tidy of its own (callers wrap it). */
  private logits(tokens: tf.Tensor, opts: ForwardOptions, aux?: AuxLosses): tf.Tensor3D {
    const c = this.config;
    const v = this.vars!;
    const past = opts.cache?.length(0) ?? 0;
    const [, s] = tokens.shape;
    const ids = tokens.dtype === 'int32' ? tokens : tokens.toInt();
    let x = embedding(v.embed as tf.Tensor2D, ids); // [b, s, m]
    const at = (table: tf.Tensor) =>
      opts.positions ? tf.gather(table, opts.positions) : table.slice([past, 0], [s, c.dModel]);
    if (v.pos) x = x.add(at(v.pos));
    if (this.sinusoidTable) x = x.add(at(this.sinusoidTable));
    x = this.hooks.run('hook_embed', x);
    v.blocks.forEach((b, i) => {
      x = blockForward(b, x, this.blockConfig, {
        hooks: this.hooks,
        prefix: `blocks.${i}`,
        cache: opts.cache,
        layer: i,
        mask: opts.cache?.attentionMask(i, s) ?? opts.mask, // a per-head cache's padding mask (cache.ts)
        positions: opts.positions,
        aux,
      });
    });
    x = normForward(v.lnf, x);
    const logits = v.unembed ? linear(x, v.unembed) : linear(x, v.embed, undefined, true);
    return this.hooks.run('hook_logits', logits) as tf.Tensor3D; // [b, s, vocab]
  }

  /**
   * Mean cross-entropy of next-token prediction. tokens [b, s+1]: inputs are tokens[:, :-1], targets tokens[:, 1:];
   * `lossMask` [b, s] (1 = counts) restricts it to some positions. With Mixture-of-Head attention it adds
   * balanceWeight · the load-balance loss (forwardWithAux), as the official training loop does.
   */
  loss(inputs: tf.Tensor, targets: tf.Tensor, lossMask?: tf.Tensor): tf.Scalar {
    return tf.tidy(() => {
      const a = this.config.attention;
      const weight = a?.kind === 'moh' ? (a.balanceWeight ?? 0.01) : 0;
      const { logits, balance } =
        weight > 0 ? this.forwardWithAux(inputs) : { logits: this.forward(inputs), balance: undefined }; // [b, s, V]
      const logp = logSoftmax(logits); // fused on wasm-native
      const picked = logp.mul(tf.oneHot(targets.toInt().flatten(), this.config.vocab).reshape(logits.shape)).sum(-1); // [b, s]
      const ce = (
        lossMask ? picked.mul(lossMask).sum().div(lossMask.sum().maximum(1)).neg() : picked.mean().neg()
      ) as tf.Scalar;
      return balance ? ce.add(balance.mul(weight)) : ce;
    });
  }

  /** Run the model and record the named activations (default: every attention pattern). Caller disposes the cache. */
  runWithCache(
    tokens: tf.Tensor,
    names: string | RegExp = /attn\.hook_pattern$/,
  ): { logits: tf.Tensor3D; cache: ActivationCache } {
    const { value: logits, cache } = this.hooks.record(names, () => this.forward(tokens));
    return { logits, cache };
  }

  /**
   * Greedy decoding of `steps` tokens after `prompt` [b, s]. Returns [b, steps].
   *
   * On wasm-native the whole loop runs in one native kernel with its own KV cache (`fusedDecodeSupport()` says when
   * it cannot: hooks registered, ALiBi, a window or sinks, MoH or another scoring); elsewhere, or with
   * `{ fused: false }`, it runs the tfjs forward pass token by token with a KVCache. Both feed the same tokens through
   * the same float32 math (test/toylm-decode.test.ts compares their logits and tokens); the fused kernel skips the
   * ~40 tfjs ops and their JavaScript per token and layer.
   */
  generate(prompt: tf.Tensor, steps: number, opts: { fused?: boolean } = {}): tf.Tensor2D {
    if (opts.fused !== false) {
      const r = this.generateFused(prompt, steps);
      if (r) return r.tokens;
    }
    return this.generateWithCache(prompt, steps);
  }

  /**
   * Why the fused decoding kernel cannot run this model now (empty: it can): the native kernels must be installed,
   * and the model must be the plain pre-norm ToyLM the kernel implements.
   */
  fusedDecodeSupport(): string[] {
    const c = this.config;
    const reasons: string[] = [];
    if (!nativeInstalled() || tf.getBackend() !== 'wasm')
      reasons.push(`the native kernels are not installed (backend ${tf.getBackend()})`);
    else if (typeof loadAddon()?.toylmGenerate !== 'function')
      reasons.push('the native addon predates the decoding kernel (rebuild it: node scripts/build-native.mjs --force)');
    if (this.hooks.size > 0) reasons.push(`${this.hooks.size} hook(s) are registered (the kernel has no hook points)`);
    if (c.positional === 'alibi') reasons.push("positional 'alibi'");
    if (c.window !== undefined) reasons.push(`window ${c.window}`);
    if (c.sinks !== undefined) reasons.push(`sinks ${c.sinks}`);
    if (c.scoring !== undefined && c.scoring !== 'softmax') reasons.push(`scoring '${c.scoring}'`);
    if (c.attention !== undefined && c.attention.kind !== 'mha') reasons.push(`attention kind '${c.attention.kind}'`);
    if (c.positional === 'rope' && (c.dModel / c.heads) % 2) reasons.push('RoPE with an odd head dim');
    return reasons;
  }

  /**
   * The fused decoding kernel's tokens [b, steps] and, with `logits`, the logits [b, steps, vocab] each token was
   * chosen from; undefined when `fusedDecodeSupport()` gives a reason or the prompt and steps would pass maxLen (the
   * tfjs path then decodes, or throws its error). The caller disposes what it returns.
   */
  generateFused(
    prompt: tf.Tensor,
    steps: number,
    opts: { logits?: boolean } = {},
  ): { tokens: tf.Tensor2D; logits?: tf.Tensor3D } | undefined {
    const c = this.config;
    if (prompt.rank !== 2 || !Number.isInteger(steps) || steps < 1) return undefined;
    const [b, s] = prompt.shape as [number, number];
    if (b === 0 || s === 0 || s + steps - 1 > c.maxLen || this.fusedDecodeSupport().length) return undefined;
    this.build();
    const v = this.vars!;
    const ids = prompt.dtype === 'int32' ? prompt : prompt.toInt();
    try {
      const inputs: Record<string, tf.Tensor> = {
        prompt: ids,
        embed: v.embed,
        'lnf.gamma': v.lnf.gamma,
        'lnf.beta': v.lnf.beta,
      };
      const table = v.pos ?? this.sinusoidTable;
      if (table) inputs.pos = table;
      if (v.unembed) inputs.unembed = v.unembed;
      v.blocks.forEach((blk, l) => {
        const w: Record<string, tf.Tensor | undefined> = {
          'ln1.gamma': blk.ln1.gamma,
          'ln1.beta': blk.ln1.beta,
          wq: blk.attn.wq,
          wk: blk.attn.wk,
          wv: blk.attn.wv,
          wo: blk.attn.wo,
          'ln2.gamma': blk.ln2.gamma,
          'ln2.beta': blk.ln2.beta,
          w1: blk.mlp.w1,
          b1: blk.mlp.b1,
          w2: blk.mlp.w2,
          b2: blk.mlp.b2,
        };
        for (const name of TOYLM_LAYER_WEIGHTS) {
          const t = w[name];
          if (!t) throw new Error(`ToyLM.generateFused: block ${l} has no ${name}`);
          inputs[`l${l}.${name}`] = t;
        }
      });
      return toylmGenerate(inputs, {
        steps,
        vocab: c.vocab,
        dModel: c.dModel,
        layers: c.layers,
        heads: c.heads,
        kvHeads: c.kvHeads ?? c.heads,
        hidden: Math.round((c.mlpRatio ?? 4) * c.dModel),
        positional: table ? 'table' : c.positional === 'rope' ? 'rope' : 'none',
        ropeBase: c.ropeBase ?? 10000,
        untied: v.unembed !== undefined,
        logits: opts.logits ?? false,
      });
    } finally {
      if (ids !== prompt) ids.dispose();
    }
  }

  /** Greedy decoding with tfjs ops, token by token through a KVCache: [b, s] -> [b, steps]. */
  generateWithCache(prompt: tf.Tensor, steps: number): tf.Tensor2D {
    const cache = this.newCache();
    const out: tf.Tensor[] = [];
    try {
      let logits: tf.Tensor3D | undefined = this.forward(prompt, { cache });
      for (let t = 0; t < steps; t++) {
        const last = logits!;
        const next = tf.tidy(() =>
          last
            .slice([0, last.shape[1] - 1, 0], [-1, 1, -1])
            .argMax(-1)
            .toInt(),
        ); // [b, 1]
        last.dispose();
        logits = undefined;
        out.push(next);
        if (t + 1 < steps) logits = this.forward(next, { cache });
      }
      logits?.dispose();
      return tf.concat(out, 1) as tf.Tensor2D;
    } finally {
      tf.dispose(out);
      cache.dispose();
    }
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = inputShape as tf.Shape;
    return [s[0], s[1], this.config.vocab];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0] : inputs);
  }

  override getConfig(): tf.serialization.ConfigDict {
    const c: tf.serialization.ConfigDict = {};
    for (const k of KEYS) if (this.config[k] !== undefined) c[k] = this.config[k] as tf.serialization.ConfigDictValue;
    return { ...super.getConfig(), ...c };
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    this.sinusoidTable?.dispose();
    this.sinusoidTable = undefined;
    // tfjs refuses to dispose a layer that was never apply()'d; a ToyLM used through forward() owns its weights alone.
    if ((this as unknown as { _refCount: number | null })._refCount === null) {
      const n = this.weights.length;
      this.weights.forEach((w) => w.dispose());
      return { refCountAfterDispose: 0, numDisposedVariables: n };
    }
    return super.dispose();
  }
}

tf.serialization.registerClass(ToyLM);

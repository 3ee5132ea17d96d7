/**
 * SparseLM: a small causal language model whose attention is one of the sparse methods, for the experiments of this
 * folder. Pre-norm blocks (attention, GELU MLP), RoPE positions (so it runs at any length), tied embeddings.
 *
 *   tokens [b, n] int32 -> logits [b, n, vocab]
 *
 * Attention kinds (per model; each is one method's `lm.kind` in the table, methods.ts):
 *   dense     causal softmax attention (the fused `flash` kernel when the backend has it, else `sdpa`)
 *   local     sliding-window causal attention of `window` keys
 *   routing   Routing Transformer: in `routingLayers`, the first `routingHeads` heads use routing attention
 *             (./routing) on content queries and keys (before RoPE) routed by online k-means centroids
 *             (`updateCentroids` after each step, EMA decay 0.999; commitment loss β = 1e-4 in `loss`); every other
 *             head is local. The defaults are the paper's: shared queries/keys (Q = K), both normalised, balanced
 *             top-w clusters of w = ceil(n / clusters) tokens in their non-leaking causal form ('prefix', the
 *             released code's decoding-time routing; see ./routing for why its training-time routing leaks). Named
 *             variants: `assignment` 'balanced' (the released code's training-time routing: leaks future tokens into
 *             earlier logits; evaluate such a model with `forward(..., { assignment: 'prefix' })`) or 'nearest'
 *             (unbalanced); `sharedQK: false`; `normalise` 'keys' (raw queries against unit keys, Reformer's and
 *             lucidrains' shared-QK scores) or 'none'; `excludeSelf` (Reformer's rule). Until this change the model
 *             routed separate q/k by nearest centroid with plain q · k scores and β = 0 (now `{ sharedQK: false,
 *             assignment: 'nearest', normalise: 'none', commitment: 0 }`)
 *   landmark  grouped softmax over blocks of `landmarkBlock` positions (inputs carry landmark tokens); at inference
 *             `landmark.topk` retrieves blocks
 * At evaluation, `override` replaces the attention of every layer by any (q, k, v, layer) -> output function, which is
 * how the training-free methods (HiP, LongHeads, ...) run on a trained dense model.
 *
 * The blocks are lib/layers' (blockForward, with the kind's attention as its `attend` where it is not plain causal
 * `sdpa`), so the hook points are theirs (lib/layers/hooks.ts): hook_embed, blocks.{i}.attn.hook_q (after RoPE), ...,
 * hook_logits. Weights come from one ParamFactory on the counter stream from 1000 · seed, drawn in the order and
 * under the keys (embed, l{i}.ln1g, l{i}.wq, ..., lnfg) the model has always had, so a seed gives the same weights.
 *
 * Shape legend: b batch, n positions, m d_model, h heads, d head dim.
 */
import * as tf from '@tensorflow/tfjs';
import { sdpa } from '../../attention/sdpa.js';
import { embedding } from '../../backend/ops.js';
import {
  type Attend,
  type BlockConfig,
  type BlockParams,
  blockForward,
  linear,
  type NormParams,
  normForward,
} from '../../layers/functional.js';
import { type ActivationCache, HookRegistry } from '../../layers/hooks.js';
import { ParamFactory } from '../../layers/params.js';
import { makeAttention, makeMlp, makeNorm } from '../../layers/weights.js';
import * as masks from '../../masks/index.js';
import { ShapeError } from '../../util/shapes.js';
import { type LandmarkOptions, landmarkAttention } from './landmark/index.js';
import { ATTENTION_KINDS, type AttentionKind } from './method.js';
import {
  commitmentLoss,
  initCentroids,
  kmeansUpdate,
  normaliseShared,
  type RoutingAssignment,
  routingAttention,
} from './routing/index.js';

export interface SparseLMConfig {
  vocab: number;
  dModel: number;
  heads: number;
  layers: number;
  attention: AttentionKind;
  mlpRatio?: number;
  /** Local heads' window (default 32). */
  window?: number;
  /** Routing: heads that route in each routing layer (default heads / 2), layers that route (default the last). */
  routingHeads?: number;
  routingLayers?: number[];
  /** Routing: the routing heads use their queries as keys (default true, the paper's Q = K; see the header). */
  sharedQK?: boolean;
  /** Routing: how tokens join clusters (default 'prefix'; see ./routing). 'balanced' leaks future tokens. */
  assignment?: RoutingAssignment;
  /** Routing: tokens per cluster w (default ceil(n / clusters) at each call's length n). */
  routingWindow?: number;
  /** Routing: what the scores inside a cluster compare (default 'both', the paper's normalised q̂ · k̂; see ./routing). */
  normalise?: 'both' | 'keys' | 'none';
  /** Routing: a token attends to itself only when no other key is in reach (default false; Reformer's rule). */
  excludeSelf?: boolean;
  /**
   * Routing: clusters per head (default 8), EMA decay (default 0.999), commitment weight β (default 1e-4, the
   * paper's). Under Adam a tiny gradient is rescaled to a full step, so while the task's gradient on the routing
   * projections is still near zero the commitment term alone moves them; an earlier measurement on planted recall
   * (one cluster, 100 steps, separate q/k) gave test accuracy 0.125 (chance) with 1e-4 and 0.20 with 0.
   */
  clusters?: number;
  decay?: number;
  commitment?: number;
  /** Landmark: positions per block including the landmark (default 16). */
  landmarkBlock?: number;
  ropeBase?: number;
  seed?: number;
}

/**
 * A replacement attention for evaluation: q, k carry RoPE at absolute positions; `content` has them before the
 * rotation (and the model's RoPE base), for methods that place the keys they select at positions of their own.
 */
export type AttendFn = (
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  layer: number,
  content: { q: tf.Tensor4D; k: tf.Tensor4D; ropeBase: number },
) => tf.Tensor4D;

export interface ForwardOptions {
  /** Replace every layer's attention (evaluation of training-free methods). */
  override?: AttendFn;
  /**
   * Landmark models at inference: `landmarkAttention`'s retrieval options (`topk` unset: every block, the training
   * grouped softmax), and `positions`: 'compact' places the kept blocks just before the query's own block (the paper's
   * position mapping, see lib/papers/sparse/landmark), 'absolute' (default) keeps every key at its true position.
   */
  landmark?: Pick<LandmarkOptions, 'topk' | 'queryBlock' | 'localBlocks'> & { positions?: 'absolute' | 'compact' };
  /** Keep the normalised routing queries (and keys, unless shared) for `updateCentroids` (training). */
  collect?: boolean;
  /** Routing models: route with this assignment instead of the config's (e.g. decode a 'balanced' model by 'prefix'). */
  assignment?: RoutingAssignment;
  /**
   * Add the (query, key) pairs this forward scores, summed over layers, heads and rows, and the query-head count, so
   * that `pairs.scored / pairs.queries` is the keys each query attends on average (dense, local and routing models
   * without `override` or `lastOnly`; the dense and local counts are the masks' own, routing's are measured).
   */
  pairs?: { scored: number; queries: number };
  /**
   * Routing models: called in each routing layer with its clusters, `clusters[(b * routingHeads + head) * c + cluster]`
   * the query positions that joined (ascending; see RoutingResult), to inspect the routing the model really uses.
   */
  onRoute?: (layer: number, clusters: number[][]) => void;
  /**
   * Only the last position's logits, [b, 1, vocab] (decoding): the last layer computes its query, attention and MLP
   * for that position alone (keys and values still cover every position).
   */
  lastOnly?: boolean;
}

/** Causal attention on the fastest exact path available. */
export function denseCausal(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, window?: number): tf.Tensor4D {
  const mask = window ? masks.slidingWindow(window) : masks.causal();
  return sdpa(q, k, v, { mask });
}

/** (query, key) pairs of a causal mask over n positions, or of a sliding window of `window` keys. */
export function maskPairs(n: number, window?: number): number {
  if (!window || window >= n) return (n * (n + 1)) / 2;
  return (window * (window + 1)) / 2 + (n - window) * window;
}

export class SparseLM {
  readonly config: Required<Omit<SparseLMConfig, 'routingLayers' | 'routingWindow'>> & {
    routingLayers: number[];
    routingWindow?: number;
  };
  /** Every weight by key (embed, l{i}.ln1g, l{i}.wq, ..., lnfg, lnfb), in creation order (checkpoints use the keys). */
  readonly params: Record<string, tf.Variable>;
  /** Named hook points (lib/layers/hooks.ts), run by every forward. */
  readonly hooks = new HookRegistry();
  /** Routing centroids per routing layer, [routingHeads, clusters, d]. */
  centroids: Record<number, tf.Tensor3D> = {};
  /** Per routing layer and step: the normalised [queries] or [queries, keys] of the routing heads. */
  private collected: Record<number, tf.Tensor[][]> = {};
  private readonly factory: ParamFactory;
  private readonly blocks: BlockParams[] = [];
  private readonly lnf: NormParams;
  /** Dense: causal; local and routing (for the heads and layers that do not route): sliding window. */
  private readonly blockConfig: BlockConfig;

  constructor(cfg: SparseLMConfig) {
    const headDim = cfg.dModel / cfg.heads;
    if (!Number.isInteger(headDim) || headDim % 2 !== 0)
      throw new ShapeError(`SparseLM: dModel (${cfg.dModel}) / heads (${cfg.heads}) must be an even integer (RoPE)`);
    if (!ATTENTION_KINDS.includes(cfg.attention))
      throw new ShapeError(
        `SparseLM: attention must be one of ${ATTENTION_KINDS.join(', ')}, got '${String(cfg.attention)}'`,
      );
    this.config = {
      mlpRatio: 4,
      window: 32,
      routingHeads: Math.max(1, cfg.heads >> 1),
      routingLayers: [cfg.layers - 1],
      clusters: 8,
      decay: 0.999,
      commitment: 1e-4,
      sharedQK: true,
      assignment: 'prefix',
      normalise: 'both',
      excludeSelf: false,
      landmarkBlock: 16,
      ropeBase: 10000,
      seed: 0,
      ...cfg,
    } as SparseLM['config'];
    const c = this.config;
    const m = c.dModel;
    this.blockConfig = {
      dModel: m,
      heads: c.heads,
      causal: true,
      window: c.attention === 'dense' ? undefined : c.window,
      positional: 'rope',
      ropeBase: c.ropeBase,
    };
    const f = new ParamFactory({ scope: 'sparselm', seed: { kind: 'counter', start: 1000 * c.seed } });
    this.factory = f;
    f.variable('embed', [c.vocab, m], { normal: 0.02 });
    const init = { weights: { normal: 0.02 }, output: { normal: 0.02 / Math.sqrt(2 * c.layers) } };
    for (let l = 0; l < c.layers; l++) {
      const fl = f.child(`l${l}`);
      const ln1 = makeNorm(fl, m, { gamma: 'ln1g', beta: 'ln1b' });
      const attn = makeAttention(fl, this.blockConfig, init);
      const ln2 = makeNorm(fl, m, { gamma: 'ln2g', beta: 'ln2b' });
      this.blocks.push({ ln1, attn, ln2, mlp: makeMlp(fl, m, m * c.mlpRatio, init) });
    }
    this.lnf = makeNorm(f, m, { gamma: 'lnfg', beta: 'lnfb' });
    this.params = f.params();
    if (c.attention === 'routing') {
      for (const l of c.routingLayers)
        this.centroids[l] = initCentroids(c.routingHeads, c.clusters, headDim, c.seed + 17 * l);
    }
  }

  variables(): tf.Variable[] {
    return Object.values(this.params);
  }

  parameterCount(): number {
    return this.variables().reduce((a, v) => a + v.size, 0);
  }

  /** Layer l's attention in place of the blocks' causal sdpa, or undefined where that sdpa is the attention. */
  private attendOf(l: number, o: ForwardOptions): Attend | undefined {
    const c = this.config;
    const { override } = o;
    if (override) return (q, k, v, content) => override(q, k, v, l, { ...content, ropeBase: c.ropeBase });
    if (c.attention === 'landmark') return this.landmark(o);
    if (c.attention === 'routing' && c.routingLayers.includes(l)) return this.routing(l, o);
    return undefined;
  }

  private landmark(o: ForwardOptions): Attend {
    const c = this.config;
    const { positions, queryBlock, ...retrieval } = o.landmark ?? {};
    return (q, k, v, content) => {
      // A lone query (lastOnly) retrieves for itself: a shared retrieval would need its block's earlier queries.
      const opts = { ...retrieval, blockSize: c.landmarkBlock, queryBlock: q.shape[2] === 1 ? undefined : queryBlock };
      if (positions === 'compact')
        return landmarkAttention(content.q, content.k, v, { ...opts, rope: { base: c.ropeBase } }).output;
      return landmarkAttention(q, k, v, opts).output;
    };
  }

  /** Routing layer l: the first routingHeads heads route on content (before RoPE), the others are local. */
  private routing(l: number, o: ForwardOptions): Attend {
    const c = this.config;
    return (q, k, v, content) => {
      const [b, h, n, d] = q.shape;
      const rh = c.routingHeads;
      // Routing heads route on content, before RoPE: rotated by position, the same token at positions 10 and 120 points
      // in different directions, lands in different clusters and scores low against itself, so a long-range content
      // match would be lost. The causal mask inside each cluster keeps the order; the local heads carry the positions.
      const qr = content.q.slice([0, 0, 0, 0], [b, rh, n, d]);
      const kr = c.sharedQK ? qr : content.k.slice([0, 0, 0, 0], [b, rh, n, d]);
      const assignment = o.assignment ?? c.assignment;
      const result = routingAttention(qr, kr, v.slice([0, 0, 0, 0], [b, rh, n, d]), this.centroids[l], {
        assignment,
        allowLeak: assignment === 'balanced',
        window: c.routingWindow,
        normalise: c.normalise,
        excludeSelf: c.excludeSelf,
      });
      const routed = result.output;
      o.onRoute?.(l, result.clusters);
      if (o.pairs) o.pairs.scored += result.stats.pairs + b * (h - rh) * maskPairs(n, c.window);
      if (o.collect)
        (this.collected[l] ??= []).push(
          c.sharedQK ? [tf.keep(normaliseShared(qr))] : [tf.keep(normaliseShared(qr)), tf.keep(normaliseShared(kr))],
        );
      if (rh === h) return routed;
      const local = denseCausal(
        q.slice([0, rh, 0, 0], [b, h - rh, n, d]),
        k.slice([0, rh, 0, 0], [b, h - rh, n, d]),
        v.slice([0, rh, 0, 0], [b, h - rh, n, d]),
        c.window,
      );
      return tf.concat([routed, local], 1) as tf.Tensor4D;
    };
  }

  /** tokens [b, n] -> logits [b, n, vocab] ([b, 1, vocab] with lastOnly). */
  forward(tokens: tf.Tensor, o: ForwardOptions = {}): tf.Tensor3D {
    const c = this.config;
    if (o.lastOnly && c.attention === 'routing')
      throw new Error('SparseLM.forward: options.lastOnly is not supported for routing models (attention: routing)');
    return tf.tidy(() => {
      let x = this.hooks.run('hook_embed', embedding(this.params.embed as tf.Tensor2D, tokens.toInt()));
      const [rows, n] = tokens.shape as [number, number];
      for (let l = 0; l < c.layers; l++) {
        if (o.pairs && !o.override && !o.lastOnly && c.attention !== 'landmark') {
          o.pairs.queries += rows * c.heads * n;
          // The routing layers add their own (measured) count inside their attention.
          if (!(c.attention === 'routing' && c.routingLayers.includes(l)))
            o.pairs.scored += rows * c.heads * maskPairs(n, c.attention === 'dense' ? undefined : c.window);
        }
        x = blockForward(this.blocks[l], x, this.blockConfig, {
          hooks: this.hooks,
          prefix: `blocks.${l}`,
          attend: this.attendOf(l, o),
          lastOnly: o.lastOnly && l === c.layers - 1,
        });
      }
      const logits = linear(normForward(this.lnf, x), this.params.embed, undefined, true);
      return this.hooks.run('hook_logits', logits) as tf.Tensor3D;
    });
  }

  /**
   * Run the model and record the activations of the hook points `names` matches (default: every attention pattern,
   * which only the layers on plain sdpa have). The caller disposes the logits and the cache.
   */
  runWithCache(
    tokens: tf.Tensor,
    names: string | RegExp = /attn\.hook_pattern$/,
    o: ForwardOptions = {},
  ): { logits: tf.Tensor3D; cache: ActivationCache } {
    const { value: logits, cache } = this.hooks.record(names, () => this.forward(tokens, o));
    return { logits, cache };
  }

  /** Mean cross-entropy (nats) over positions where lossMask is 1, plus β · commitment for routing models. */
  loss(inputs: tf.Tensor, targets: tf.Tensor, lossMask: tf.Tensor, o: ForwardOptions = {}): tf.Scalar {
    return tf.tidy(() => {
      const logits = this.forward(inputs, o);
      const logp = tf.logSoftmax(logits);
      const picked = logp.mul(tf.oneHot(targets.toInt().flatten(), this.config.vocab).reshape(logits.shape)).sum(-1);
      let loss = picked.mul(lossMask).sum().div(lossMask.sum().maximum(1)).neg();
      if (o.collect && this.config.commitment > 0) {
        for (const [l, xs] of Object.entries(this.collected)) {
          const last = xs[xs.length - 1];
          for (const side of last ?? [])
            loss = loss.add(commitmentLoss(side, this.centroids[+l]).mul(this.config.commitment / last.length));
        }
      }
      return loss as tf.Scalar;
    });
  }

  /** One online k-means step per routing layer from the queries (and keys) collected since the last call. */
  updateCentroids(): void {
    for (const [key, xs] of Object.entries(this.collected)) {
      const l = +key;
      for (const [qh, kh] of xs) {
        const next = kmeansUpdate(this.centroids[l], qh, this.config.decay, kh);
        this.centroids[l].dispose();
        this.centroids[l] = next;
        tf.dispose([qh, kh]);
      }
    }
    this.collected = {};
  }

  dispose(): void {
    this.factory.dispose();
    tf.dispose(Object.values(this.centroids));
    for (const xs of Object.values(this.collected)) tf.dispose(xs.flat());
  }
}

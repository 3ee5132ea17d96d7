/**
 * The BiGRU text classifier with an attention pooling: word embeddings → bidirectional GRU → attention → linear
 * classifier. The pooling is one of
 *   'additive'   single-head tanh attention (Kitada & Iyatomi 2021's model; the score can be perturbed: Attention AT),
 *   'structured' Lin et al. 2017's structured self-attention (m heads, penalty ‖AAᵀ − I‖²),
 *   'lama'       Mehta et al. 2019's low-rank bilinear multi-head attention (rank r, m heads).
 *
 * The GRU is written with tensor ops (PyTorch's gate layout): for each direction,
 *   r = σ(x W_r + h U_r + b_r),  z = σ(x W_z + h U_z + b_z),  n = tanh(x W_n + r ∘ (h U_n + b_hn) + b_n),
 *   h' = (1 − z) ∘ n + z ∘ h, and on padding h' = h (the state is carried over, so the backward pass starts at the
 *   sentence's last word).
 *
 * Shape legend: b sentences, T words, e embedding size, H GRU size per direction (states d = 2H), m heads, C classes.
 *   tokens [b, T] int32, mask [b, T], embedded [b, T, e], states [b, T, 2H], weights [b, m, T], logits [b, C].
 */
import * as tf from '@tensorflow/tfjs';
import { ParamFactory } from '../../../layers/params.js';
import {
  lamaAttention,
  lamaParamCount,
  redundancyPenalty,
  structuredParamCount,
  structuredSelfAttention,
} from '../lama/mechanism.js';
import { additiveAttention, checkStates } from './attention.js';

export type TextPooling =
  | { kind: 'additive'; dim: number }
  | { kind: 'structured'; heads: number; dim: number; penalty: number }
  | { kind: 'lama'; heads: number; rank: number };

export interface TextClassifierOptions {
  vocabSize: number;
  embedDim: number;
  /** GRU size per direction. */
  hidden: number;
  classes: number;
  pooling: TextPooling;
  seed: number;
}

export type TextForward = {
  logits: tf.Tensor2D;
  /** Attention weights [b, m, T] (m = 1 for 'additive'). */
  weights: tf.Tensor3D;
  /** Pre-softmax scores [b, m, T]. */
  scores: tf.Tensor3D;
  /** Structured self-attention's penalty ‖AAᵀ − I‖² (0 otherwise). */
  penalty: tf.Scalar;
};

interface GruParams {
  w: tf.Variable;
  u: tf.Variable;
  b: tf.Variable;
  bh: tf.Variable;
}

function positiveInt(arg: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new Error(`TextClassifier: ${arg} must be an integer >= 1, got ${String(v)}`);
}

/** One GRU direction over x [b, T, e] with mask [b, T]; states [b, T, H]. */
export function gruDirection(x: tf.Tensor3D, mask: tf.Tensor2D, p: GruParams, reverse: boolean): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, T, e] = x.shape;
    const H = p.u.shape[0];
    const xw = tf.add(tf.matMul(x.reshape([b * T, e]), p.w), p.b).reshape([b, T, 3 * H]);
    const xs = tf.unstack(xw, 1);
    const ms = tf.unstack(mask.reshape([b, T, 1]), 1);
    let h: tf.Tensor = tf.zeros([b, H]);
    const out: tf.Tensor[] = new Array(T);
    for (let k = 0; k < T; k++) {
      const t = reverse ? T - 1 - k : k;
      const hu = tf.add(tf.matMul(h, p.u), p.bh); // [b, 3H]
      const [xrz, xn] = tf.split(xs[t], [2 * H, H], 1);
      const [hrz, hn] = tf.split(hu, [2 * H, H], 1);
      const [r, z] = tf.split(tf.sigmoid(tf.add(xrz, hrz)), 2, 1);
      const n = tf.tanh(tf.add(xn, tf.mul(r, hn)));
      const next = tf.add(tf.mul(tf.sub(1, z), n), tf.mul(z, h));
      h = tf.add(tf.mul(ms[t], next), tf.mul(tf.sub(1, ms[t]), h));
      out[t] = h;
    }
    return tf.stack(out, 1) as tf.Tensor3D;
  });
}

/** The classifier (see the module header). Dispose it when done. */
export class TextClassifier {
  readonly options: TextClassifierOptions;
  private readonly factory: ParamFactory;
  private readonly embedding: tf.Variable;
  private readonly fwd: GruParams;
  private readonly bwd: GruParams;
  private readonly pool: Record<string, tf.Variable>;
  private readonly out: { w: tf.Variable; b: tf.Variable };

  constructor(options: TextClassifierOptions) {
    positiveInt('vocabSize', options.vocabSize);
    positiveInt('embedDim', options.embedDim);
    positiveInt('hidden', options.hidden);
    positiveInt('classes', options.classes);
    const pl = options.pooling;
    if (pl?.kind === 'additive') positiveInt('pooling.dim', pl.dim);
    else if (pl?.kind === 'structured') {
      positiveInt('pooling.heads', pl.heads);
      positiveInt('pooling.dim', pl.dim);
      if (!(pl.penalty >= 0)) throw new Error(`TextClassifier: pooling.penalty must be >= 0, got ${pl.penalty}`);
    } else if (pl?.kind === 'lama') {
      positiveInt('pooling.heads', pl.heads);
      positiveInt('pooling.rank', pl.rank);
    } else
      throw new Error(
        `TextClassifier: pooling.kind must be 'additive', 'structured' or 'lama', got ${JSON.stringify((pl as { kind?: unknown } | undefined)?.kind)}`,
      );
    this.options = { ...options, pooling: { ...pl } };
    const { vocabSize, embedDim: e, hidden: H, classes } = options;
    const d = 2 * H;
    const f = new ParamFactory({ scope: 'textcls', seed: options.seed });
    this.factory = f;
    this.embedding = f.variable('embedding', [vocabSize, e], { normal: 1 / Math.sqrt(e) });
    const gru = (name: string): GruParams => {
      const g = f.child(name);
      const lim = 1 / Math.sqrt(H);
      return {
        w: g.variable('w', [e, 3 * H], { uniform: lim }),
        u: g.variable('u', [H, 3 * H], { uniform: lim }),
        b: g.variable('b', [3 * H], { uniform: lim }),
        bh: g.variable('bh', [3 * H], { uniform: lim }),
      };
    };
    this.fwd = gru('gru_fwd');
    this.bwd = gru('gru_bwd');
    const a = f.child('attn');
    if (pl.kind === 'additive') {
      this.pool = {
        w: a.variable('w', [d, pl.dim], 'xavierUniform'),
        c: a.variable('c', [pl.dim], 'zeros'),
        v: a.variable('v', [pl.dim], { uniform: 1 / Math.sqrt(pl.dim) }),
      };
    } else if (pl.kind === 'structured') {
      this.pool = {
        w1: a.variable('w1', [d, pl.dim], 'xavierUniform'),
        w2: a.variable('w2', [pl.dim, pl.heads], 'xavierUniform'),
      };
    } else {
      this.pool = {
        u: a.variable('u', [d, pl.rank], 'xavierUniform'),
        v: a.variable('v', [d, pl.rank], 'xavierUniform'),
        p: a.variable('p', [pl.rank, pl.heads], 'xavierUniform'),
      };
    }
    const heads = pl.kind === 'additive' ? 1 : pl.heads;
    this.out = {
      w: f.child('out').variable('w', [heads * d, classes], 'xavierUniform'),
      b: f.child('out').variable('b', [classes], 'zeros'),
    };
  }

  /** Number of heads m. */
  get heads(): number {
    const pl = this.options.pooling;
    return pl.kind === 'additive' ? 1 : pl.heads;
  }

  /** Every trainable variable, by key. */
  variables(): Record<string, tf.Variable> {
    return this.factory.params();
  }

  /** Parameters of the attention pooling alone (what LAMA saves). */
  attentionParams(): number {
    const pl = this.options.pooling;
    const d = 2 * this.options.hidden;
    if (pl.kind === 'additive') return d * pl.dim + 2 * pl.dim;
    if (pl.kind === 'structured') return structuredParamCount(d, pl.dim, pl.heads);
    return lamaParamCount(d, pl.rank, pl.heads);
  }

  /** Every parameter of the model. */
  paramCount(): number {
    return Object.values(this.variables()).reduce((s, v) => s + v.size, 0);
  }

  /** Word embeddings [b, T, e] of tokens [b, T]. */
  embed(tokens: tf.Tensor): tf.Tensor3D {
    if (tokens.rank !== 2 || tokens.dtype !== 'int32')
      throw new Error(`TextClassifier.embed: tokens must be int32 [b, T], got ${tokens.dtype} [${tokens.shape}]`);
    // a one-hot product rather than tf.gather: the wasm backend has no gradient kernel for gather
    const [b, T] = tokens.shape;
    return tf.tidy(
      () =>
        tf
          .matMul(tf.oneHot(tokens.reshape([b * T]), this.options.vocabSize), this.embedding)
          .reshape([b, T, this.options.embedDim]) as tf.Tensor3D,
    );
  }

  /** BiGRU states [b, T, 2H] of embeddings [b, T, e]. */
  encode(embedded: tf.Tensor3D, mask: tf.Tensor2D): tf.Tensor3D {
    checkStates('TextClassifier.encode', embedded, mask);
    return tf.tidy(
      () =>
        tf.concat(
          [gruDirection(embedded, mask, this.fwd, false), gruDirection(embedded, mask, this.bwd, true)],
          2,
        ) as tf.Tensor3D,
    );
  }

  /**
   * The forward pass from embeddings (so that gradients with respect to the words can be taken). `delta` [b, T] is
   * added to the pre-softmax scores of the 'additive' pooling (Attention AT's perturbation).
   */
  forwardEmbedded(embedded: tf.Tensor3D, mask: tf.Tensor2D, delta?: tf.Tensor): TextForward {
    const pl = this.options.pooling;
    if (delta && pl.kind !== 'additive')
      throw new Error(
        `TextClassifier.forward: delta (a score perturbation) needs pooling 'additive', got '${pl.kind}'`,
      );
    return tf.tidy(() => {
      const h = this.encode(embedded, mask);
      const [b, T] = mask.shape;
      let weights: tf.Tensor3D;
      let scores: tf.Tensor3D;
      let pooled: tf.Tensor2D;
      let penalty: tf.Scalar = tf.scalar(0);
      if (pl.kind === 'additive') {
        const o = additiveAttention(h, mask, { w: this.pool.w, c: this.pool.c, v: this.pool.v }, delta);
        weights = o.weights.reshape([b, 1, T]);
        scores = o.scores.reshape([b, 1, T]);
        pooled = o.context;
      } else {
        const o =
          pl.kind === 'structured'
            ? structuredSelfAttention(h, mask, { w1: this.pool.w1, w2: this.pool.w2 })
            : lamaAttention(h, mask, { u: this.pool.u, v: this.pool.v, p: this.pool.p });
        weights = o.weights;
        scores = o.scores;
        pooled = o.matrix.reshape([b, -1]);
        if (pl.kind === 'structured') penalty = redundancyPenalty(o.weights);
      }
      const logits = tf.add(tf.matMul(pooled, this.out.w), this.out.b) as tf.Tensor2D;
      return { logits, weights, scores, penalty };
    });
  }

  /** The forward pass from tokens [b, T] int32 and mask [b, T]. */
  forward(tokens: tf.Tensor, mask: tf.Tensor2D, delta?: tf.Tensor): TextForward {
    return tf.tidy(() => this.forwardEmbedded(this.embed(tokens), mask, delta));
  }

  dispose(): void {
    this.factory.dispose();
  }
}

/** Mean softmax cross-entropy of logits [b, C] against integer labels [b]. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  if (labels.rank !== 1 || labels.shape[0] !== logits.shape[0])
    throw new Error(`crossEntropy: labels must be [${logits.shape[0]}], got [${labels.shape}]`);
  return tf.tidy(() => {
    const onehot = tf.oneHot(tf.cast(labels, 'int32'), logits.shape[1]);
    return tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  });
}

/** Rows `from .. from + count` of a sentiment batch as tensors (the caller disposes them). */
export function sentenceTensors(
  batch: { n: number; maxLen: number; tokens: Int32Array; mask: Float32Array; label: Int32Array },
  from = 0,
  count = batch.n - from,
): { tokens: tf.Tensor2D; mask: tf.Tensor2D; labels: tf.Tensor1D } {
  if (!Number.isInteger(from) || from < 0 || !Number.isInteger(count) || count < 1 || from + count > batch.n)
    throw new Error(`sentenceTensors: rows ${from} .. ${from + count} are outside the batch of ${batch.n}`);
  const T = batch.maxLen;
  return {
    tokens: tf.tensor2d(batch.tokens.subarray(from * T, (from + count) * T), [count, T], 'int32'),
    mask: tf.tensor2d(batch.mask.subarray(from * T, (from + count) * T), [count, T]),
    labels: tf.tensor1d(batch.label.subarray(from, from + count), 'int32'),
  };
}

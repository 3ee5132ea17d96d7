/**
 * The 1-layer transformer of Scan and Snap, in its Y/Z reparameterisation.
 *
 * Paper: Tian, Wang, Chen, Du, "Scan and Snap: Understanding Training Dynamics and Token Composition in 1-layer
 * Transformer", NeurIPS 2023, https://arxiv.org/abs/2305.16380 (§3; official code: facebookresearch/luckmatters,
 * `ssl/real-dataset/decoder_only.py`, `Model2`).
 *
 * With one-hot tokens and no positional encoding, self-attention from the query x_T = m to the contextual tokens and
 * the decoder collapse to two M×M matrices, Z (attention logits, row = query token, column = key token) and Y (decoder,
 * row = predicted token, column = input token):
 *
 *   b_t = exp(Z[m, x_t]) / Σ_s exp(Z[m, x_s])          t = 1 .. T-1   (attention of the query to each context slot)
 *   f   = Σ_t b_t e_{x_t}  (+ e_m with `residual`)      f̃ = f / ‖f‖₂   (the normalised attention output)
 *   logits = Y f̃,           loss = CE(logits, x_{T+1})
 *
 * The decoder (η_Y) and the attention (η_Z) are trained with their own learning rates.
 *
 * Shapes: B batch, T context length (T - 1 in the paper), M vocabulary.
 *   contexts [B, T] int32, queries [B] int32, Y [M, M], Z [M, M], attention [B, T], tokenAttention [B, M], logits [B, M]
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../util/random.js';

export interface ScanSnapOptions {
  /** Divide the attention output by its L2 norm (the paper's setting; default true). */
  normalize?: boolean;
  /** Add the query's own one-hot to the attention output (default false, as in the paper's sweeps). */
  residual?: boolean;
}

export interface ScanSnapParams {
  /** Decoder [M, M]: logits = Y f̃. */
  Y: tf.Tensor2D;
  /** Attention logits [M, M]: Z[query, key]. */
  Z: tf.Tensor2D;
}

/** A type, not an interface, so that `tf.dispose(output)` accepts it. */
export type ScanSnapOutput = {
  /** [B, M] next-token logits. */
  logits: tf.Tensor2D;
  /** [B, T] attention of the query to each context slot. */
  attention: tf.Tensor2D;
  /** [B, M] attention mass per token id (Σ of b_t over the slots holding that token): f before normalisation. */
  tokenAttention: tf.Tensor2D;
};

function checkInputs(fn: string, params: ScanSnapParams, contexts: tf.Tensor, queries: tf.Tensor): number {
  const { Y, Z } = params;
  if (Z.rank !== 2 || Z.shape[0] !== Z.shape[1])
    throw new Error(`${fn}: Z must be a square [M, M] matrix, got shape [${Z.shape}]`);
  const M = Z.shape[0];
  if (Y.rank !== 2 || Y.shape[0] !== M || Y.shape[1] !== M)
    throw new Error(`${fn}: Y must have shape [${M}, ${M}] like Z, got [${Y.shape}]`);
  if (contexts.rank !== 2)
    throw new Error(`${fn}: contexts must be [batch, contextLen], got shape [${contexts.shape}]`);
  if (contexts.dtype !== 'int32') throw new Error(`${fn}: contexts must be int32, got ${contexts.dtype}`);
  if (queries.rank !== 1 || queries.shape[0] !== contexts.shape[0])
    throw new Error(`${fn}: queries must be [${contexts.shape[0]}] (one per row of contexts), got [${queries.shape}]`);
  if (queries.dtype !== 'int32') throw new Error(`${fn}: queries must be int32, got ${queries.dtype}`);
  return M;
}

/** The forward pass: attention of the query over the context, normalised output, decoder logits. */
export function scanSnapForward(
  params: ScanSnapParams,
  contexts: tf.Tensor2D,
  queries: tf.Tensor1D,
  opts: ScanSnapOptions = {},
): ScanSnapOutput {
  const M = checkInputs('scanSnapForward', params, contexts, queries);
  return tf.tidy(() => {
    const oneHot = tf.oneHot(contexts, M).toFloat() as tf.Tensor3D; // [B, T, M]
    // Row Z[m, ·] of each query, as a one-hot product (gather's gradient is not on every backend). [B, M]
    const zq = tf.matMul(tf.oneHot(queries, M).toFloat(), params.Z);
    const scores = tf.squeeze(tf.matMul(oneHot, tf.expandDims(zq, 2)), [2]) as tf.Tensor2D; // [B, T]
    const attention = tf.softmax(scores) as tf.Tensor2D;
    const tokenAttention = tf.squeeze(tf.matMul(tf.expandDims(attention, 1), oneHot), [1]) as tf.Tensor2D; // [B, M]
    let f: tf.Tensor2D = tokenAttention;
    if (opts.residual) f = tf.add(f, tf.oneHot(queries, M).toFloat());
    if (opts.normalize ?? true) f = tf.div(f, tf.norm(f, 2, 1, true));
    const logits = tf.matMul(f, params.Y, false, true) as tf.Tensor2D;
    return { logits, attention, tokenAttention };
  });
}

/** Mean cross-entropy of the next token. */
export function scanSnapLoss(
  params: ScanSnapParams,
  contexts: tf.Tensor2D,
  queries: tf.Tensor1D,
  targets: tf.Tensor1D,
  opts: ScanSnapOptions = {},
): tf.Scalar {
  const M = params.Z.shape[0];
  if (targets.rank !== 1 || targets.shape[0] !== contexts.shape[0])
    throw new Error(`scanSnapLoss: targets must be [${contexts.shape[0]}], got [${targets.shape}]`);
  return tf.tidy(() => {
    const { logits } = scanSnapForward(params, contexts, queries, opts);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(targets, M), logits) as tf.Scalar;
  });
}

/** Float64 reference of `scanSnapForward` and the loss, in plain loops. Y and Z are row-major [M, M]. */
export function scanSnapReference(
  Y: ArrayLike<number>,
  Z: ArrayLike<number>,
  M: number,
  contexts: ArrayLike<number>,
  queries: ArrayLike<number>,
  targets: ArrayLike<number> | null,
  opts: ScanSnapOptions = {},
): { logits: Float64Array; attention: Float64Array; tokenAttention: Float64Array; loss: number } {
  const B = queries.length;
  const T = contexts.length / B;
  const logits = new Float64Array(B * M);
  const attention = new Float64Array(B * T);
  const tokenAttention = new Float64Array(B * M);
  let loss = 0;
  for (let b = 0; b < B; b++) {
    const m = queries[b];
    let mx = -Infinity;
    for (let t = 0; t < T; t++) mx = Math.max(mx, Z[m * M + contexts[b * T + t]]);
    let s = 0;
    for (let t = 0; t < T; t++) s += Math.exp(Z[m * M + contexts[b * T + t]] - mx);
    const f = new Float64Array(M);
    for (let t = 0; t < T; t++) {
      const a = Math.exp(Z[m * M + contexts[b * T + t]] - mx) / s;
      attention[b * T + t] = a;
      f[contexts[b * T + t]] += a;
    }
    tokenAttention.set(f, b * M);
    if (opts.residual) f[m] += 1;
    if (opts.normalize ?? true) {
      let n = 0;
      for (let k = 0; k < M; k++) n += f[k] * f[k];
      n = Math.sqrt(n);
      for (let k = 0; k < M; k++) f[k] /= n;
    }
    for (let j = 0; j < M; j++) {
      let v = 0;
      for (let k = 0; k < M; k++) v += Y[j * M + k] * f[k];
      logits[b * M + j] = v;
    }
    if (targets) {
      let lmx = -Infinity;
      for (let j = 0; j < M; j++) lmx = Math.max(lmx, logits[b * M + j]);
      let ls = 0;
      for (let j = 0; j < M; j++) ls += Math.exp(logits[b * M + j] - lmx);
      loss += -(logits[b * M + targets[b]] - lmx - Math.log(ls)) / B;
    }
  }
  return { logits, attention, tokenAttention, loss };
}

/** Entropy (nats) of a non-negative vector after normalising it to sum 1; zero entries contribute nothing. */
export function entropy(p: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i];
  if (!(s > 0)) throw new Error(`entropy: p must have a positive sum, got ${s}`);
  let h = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) h -= (p[i] / s) * Math.log(p[i] / s);
  return h;
}

/**
 * The paper's c_n (official `figure_4_create.py`): the expected attention of class n's query over its support,
 * c_{l|n} ∝ P(l | n) exp(Z[m, l]), the T → ∞ limit of the token attention. Z is row-major [M, M].
 */
export function expectedTokenAttention(
  Z: ArrayLike<number>,
  M: number,
  cls: { query: number; tokens: number[]; probs: number[] },
): number[] {
  const zs = cls.tokens.map((l) => Z[cls.query * M + l]);
  const mx = Math.max(...zs);
  const w = zs.map((z, i) => cls.probs[i] * Math.exp(z - mx));
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / s);
}

export type ScanSnapInit = 'zero' | 'uniform';

/** Trainable Y and Z (tf.Variables, named `scanSnap.Y` / `scanSnap.Z` plus tfjs's uniqueness suffix). */
export class ScanSnapModel {
  readonly Y: tf.Variable<tf.Rank.R2>;
  readonly Z: tf.Variable<tf.Rank.R2>;

  /**
   * `init: 'uniform'` draws U(-1/√M, 1/√M) (PyTorch's nn.Linear default, the paper's sweeps); `'zero'` starts from
   * uniform attention and a zero decoder (the official default, used for its Fig. 4).
   */
  constructor(
    readonly vocabSize: number,
    readonly opts: ScanSnapOptions & { init?: ScanSnapInit; seed?: number } = {},
  ) {
    if (!Number.isInteger(vocabSize) || vocabSize < 2)
      throw new Error(`ScanSnapModel: vocabSize must be an integer >= 2, got ${vocabSize}`);
    const init = opts.init ?? 'uniform';
    if (init !== 'zero' && init !== 'uniform')
      throw new Error(`ScanSnapModel: init must be 'zero' or 'uniform', got ${String(init)}`);
    const rng = new Rng(opts.seed ?? 0);
    const bound = 1 / Math.sqrt(vocabSize);
    const draw = (label: string): Float32Array => {
      const r = rng.fork(label);
      const a = new Float32Array(vocabSize * vocabSize);
      if (init === 'uniform') for (let i = 0; i < a.length; i++) a[i] = (2 * r.next() - 1) * bound;
      return a;
    };
    // Inside tidy, so the initial values are freed once the variables hold them.
    this.Y = tf.tidy(() => tf.variable(tf.tensor2d(draw('Y'), [vocabSize, vocabSize]), true, 'scanSnap.Y'));
    this.Z = tf.tidy(() => tf.variable(tf.tensor2d(draw('Z'), [vocabSize, vocabSize]), true, 'scanSnap.Z'));
  }

  forward(contexts: tf.Tensor2D, queries: tf.Tensor1D): ScanSnapOutput {
    return scanSnapForward({ Y: this.Y, Z: this.Z }, contexts, queries, this.opts);
  }

  loss(contexts: tf.Tensor2D, queries: tf.Tensor1D, targets: tf.Tensor1D): tf.Scalar {
    return scanSnapLoss({ Y: this.Y, Z: this.Z }, contexts, queries, targets, this.opts);
  }

  dispose(): void {
    this.Y.dispose();
    this.Z.dispose();
  }
}

export interface SgdGroup {
  variables: tf.Variable[];
  lr: number;
}

/**
 * SGD with momentum and one learning rate per group of variables (PyTorch's `SGD(momentum=μ)`: buf = μ·buf + g,
 * p -= lr·buf), for `train({ update })`. `lrScale` is the schedule's factor (train passes its lr; with a constant
 * schedule of lr 1 the groups' own rates apply unchanged).
 */
export class GroupSgd {
  private readonly buffers = new Map<string, tf.Variable>();
  private readonly lrOf = new Map<string, number>();
  readonly variables: tf.Variable[];

  constructor(
    groups: SgdGroup[],
    readonly momentum = 0.9,
  ) {
    if (!(momentum >= 0 && momentum < 1)) throw new Error(`GroupSgd: momentum must lie in [0, 1), got ${momentum}`);
    this.variables = [];
    for (const [i, g] of groups.entries()) {
      if (!(g.lr >= 0)) throw new Error(`GroupSgd: groups[${i}].lr must be >= 0, got ${g.lr}`);
      for (const v of g.variables) {
        if (this.lrOf.has(v.name)) throw new Error(`GroupSgd: variable "${v.name}" is in two groups`);
        this.lrOf.set(v.name, g.lr);
        this.variables.push(v);
      }
    }
  }

  /** One update from `tf.variableGrads` gradients (keyed by variable name). */
  apply(grads: tf.NamedTensorMap, lrScale = 1): void {
    tf.tidy(() => {
      for (const p of this.variables) {
        const g = grads[p.name];
        if (g == null) continue;
        let buf = this.buffers.get(p.name);
        if (!buf) {
          buf = tf.variable(tf.clone(g), false);
          this.buffers.set(p.name, buf);
        } else {
          buf.assign(tf.add(tf.mul(buf, this.momentum), g));
        }
        p.assign(tf.sub(p, tf.mul(buf, (this.lrOf.get(p.name) as number) * lrScale)));
      }
    });
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}

/**
 * Class Semantics-based Attention (CSA) for temporal action detection.
 *
 * Paper: Sridhar, Quader, Muralidharan, Li, Dai, Lu, "Class Semantics-based Attention for Action Detection", ICCV 2021,
 * https://arxiv.org/abs/2109.02613.
 *
 * A two-stream detector has recognition features R (from an encoder trained to classify actions: rich in class
 * semantics) and localisation features F (what the localisation network, e.g. BMN, consumes). CSA computes attention
 * from R, not from F, and applies it to F along both axes:
 *
 *   channel:  a_ch = σ(W₂ ReLU(W₁ [mean_t R ; max_t R] + b₁) + b₂)          ∈ (0, 1)^C   (the temporal distribution of
 *                                                                                        class semantics -> which channels)
 *   temporal: a_t  = σ(Σ_{j=-w..w} R_{t+j} · u_j + b_u)                     ∈ (0, 1)^T   (a local window of R -> which frames)
 *   fused:    F' = F ⊙ (a_ch[None, :] + a_t[:, None]) / 2
 *
 * Squeeze-and-excitation (Hu et al. 2018), the baseline the paper compares with, computes channel weights from F
 * itself: a = σ(V₂ ReLU(V₁ mean_t F + c₁) + c₂), F' = F ⊙ a. The paper finds CSA better than SE and complementary to
 * it (SE then CSA).
 *
 * No official code was found: the pooling ([mean; max] over time), the window (2w + 1 frames, zero padded) and the
 * fusion (the mean of the two reweightings) are our reading of the paper's description.
 *
 * Shapes: r [b, T, K1] (K1 = classes + background), f [b, T, C]; channel weights [b, C], temporal weights [b, T].
 */
import * as tf from '@tensorflow/tfjs';
import { ParamFactory } from '../../../layers/params.js';

export interface CsaParams {
  /** [2 K1, H] and [H]: the channel branch's first layer (input [mean_t R ; max_t R]). */
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  /** [H, C] and [C]. */
  w2: tf.Tensor2D;
  b2: tf.Tensor1D;
  /** [2w + 1, K1, 1] and [1]: the temporal branch's window weights. */
  u: tf.Tensor3D;
  bu: tf.Tensor1D;
}

export interface SeParams {
  /** [C, H], [H], [H, C], [C]. */
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  w2: tf.Tensor2D;
  b2: tf.Tensor1D;
}

const shapeOf = (t: tf.Tensor) => `[${t.shape.join(', ')}]`;

function checkRank(fn: string, name: string, t: tf.Tensor, rank: number, legend: string): void {
  if (t.rank !== rank) throw new Error(`${fn}: ${name} must be ${legend}, got shape ${shapeOf(t)}`);
}

/**
 * A 'same'-padded temporal convolution as a sum of shifted matmuls: x [b, T, Cin], w [k, Cin, Cout] (k odd) ->
 * [b, T, Cout]. (tf.conv1d's filter gradient has no WASM kernel, so trainable convolutions use this.)
 */
export function temporalConv(x: tf.Tensor3D, w: tf.Tensor3D): tf.Tensor3D {
  const [k, cin, cout] = w.shape;
  if (k % 2 !== 1 || cin !== x.shape[2])
    throw new Error(`temporalConv: w must be [odd k, Cin = ${x.shape[2]}, Cout], got shape ${shapeOf(w)}`);
  return tf.tidy(() => {
    const [b, T] = x.shape;
    const half = (k - 1) / 2;
    const padded = half
      ? tf.pad(x, [
          [0, 0],
          [half, half],
          [0, 0],
        ])
      : x;
    let acc: tf.Tensor | undefined;
    for (let j = 0; j < k; j++) {
      const xs = padded.slice([0, j, 0], [b, T, cin]).reshape([b * T, cin]);
      const wj = w.slice([j, 0, 0], [1, cin, cout]).reshape([cin, cout]);
      const y = xs.matMul(wj);
      acc = acc ? acc.add(y) : y;
    }
    return (acc as tf.Tensor).reshape([b, T, cout]) as tf.Tensor3D;
  });
}

/** CSA's channel weights from R: [b, C]. */
export function csaChannelWeights(r: tf.Tensor3D, p: Pick<CsaParams, 'w1' | 'b1' | 'w2' | 'b2'>): tf.Tensor2D {
  const fn = 'csaChannelWeights';
  checkRank(fn, 'r', r, 3, '[b, T, K1]');
  if (p.w1.shape[0] !== 2 * r.shape[2])
    throw new Error(`${fn}: p.w1 must have 2 * K1 = ${2 * r.shape[2]} rows, got shape ${shapeOf(p.w1)}`);
  return tf.tidy(() => {
    const pooled = tf.concat([r.mean(1), r.max(1)], 1);
    return tf.sigmoid(tf.relu(pooled.matMul(p.w1).add(p.b1)).matMul(p.w2).add(p.b2)) as tf.Tensor2D;
  });
}

/** CSA's temporal weights from a (2w + 1)-frame window of R (zero padded): [b, T]. */
export function csaTemporalWeights(r: tf.Tensor3D, p: Pick<CsaParams, 'u' | 'bu'>): tf.Tensor2D {
  const fn = 'csaTemporalWeights';
  checkRank(fn, 'r', r, 3, '[b, T, K1]');
  const [k, k1] = p.u.shape;
  if (k % 2 !== 1 || k1 !== r.shape[2] || p.u.shape[2] !== 1)
    throw new Error(`${fn}: p.u must be [2w + 1, K1 = ${r.shape[2]}, 1] with an odd window, got shape ${shapeOf(p.u)}`);
  return tf.tidy(() => tf.sigmoid(temporalConv(r, p.u).add(p.bu)).squeeze([2]) as tf.Tensor2D);
}

export interface CsaOutput {
  out: tf.Tensor3D;
  channel: tf.Tensor2D;
  temporal: tf.Tensor2D;
}

/** Class-semantics attention: F reweighted by channel and temporal weights computed from R (see the header). */
export function classSemanticsAttention(f: tf.Tensor3D, r: tf.Tensor3D, p: CsaParams): CsaOutput {
  const fn = 'classSemanticsAttention';
  checkRank(fn, 'f', f, 3, '[b, T, C]');
  checkRank(fn, 'r', r, 3, '[b, T, K1]');
  if (f.shape[0] !== r.shape[0] || f.shape[1] !== r.shape[1])
    throw new Error(
      `${fn}: r must share f's batch and time [${f.shape[0]}, ${f.shape[1]}, K1], got shape ${shapeOf(r)}`,
    );
  if (p.w2.shape[1] !== f.shape[2])
    throw new Error(`${fn}: p.w2 must have C = ${f.shape[2]} columns, got shape ${shapeOf(p.w2)}`);
  return tf.tidy(() => {
    const channel = csaChannelWeights(r, p);
    const temporal = csaTemporalWeights(r, p);
    const w = channel.expandDims(1).add(temporal.expandDims(2)).div(2);
    return { out: f.mul(w) as tf.Tensor3D, channel, temporal };
  });
}

/** Squeeze-and-excitation on F: channel weights from F's own temporal mean. */
export function squeezeExcitation(f: tf.Tensor3D, p: SeParams): { out: tf.Tensor3D; weights: tf.Tensor2D } {
  const fn = 'squeezeExcitation';
  checkRank(fn, 'f', f, 3, '[b, T, C]');
  if (p.w1.shape[0] !== f.shape[2] || p.w2.shape[1] !== f.shape[2])
    throw new Error(
      `${fn}: p.w1 must be [C = ${f.shape[2]}, H] and p.w2 [H, C], got ${shapeOf(p.w1)} and ${shapeOf(p.w2)}`,
    );
  return tf.tidy(() => {
    const weights = tf.sigmoid(tf.relu(f.mean(1).matMul(p.w1).add(p.b1)).matMul(p.w2).add(p.b2)) as tf.Tensor2D;
    return { out: f.mul(weights.expandDims(1)) as tf.Tensor3D, weights };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Float64 references (row-major arrays).

const sig = (x: number) => 1 / (1 + Math.exp(-x));

/** Dense layer on a vector: x [n] W [n, m] + b [m]. */
function dense(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, n: number, m: number): Float64Array {
  const y = new Float64Array(m);
  for (let j = 0; j < m; j++) {
    let acc = b[j];
    for (let i = 0; i < n; i++) acc += x[i] * w[i * m + j];
    y[j] = acc;
  }
  return y;
}

export interface CsaParams64 {
  K1: number;
  H: number;
  C: number;
  /** Window half-width w (window 2w + 1). */
  w: number;
  w1: ArrayLike<number>;
  b1: ArrayLike<number>;
  w2: ArrayLike<number>;
  b2: ArrayLike<number>;
  /** [2w + 1, K1] (the trailing 1 dropped). */
  u: ArrayLike<number>;
  bu: number;
}

/** Float64 CSA: f [b, T, C], r [b, T, K1]; returns out [b, T, C], channel [b, C], temporal [b, T]. */
export function classSemanticsAttentionReference(
  f: ArrayLike<number>,
  r: ArrayLike<number>,
  b: number,
  T: number,
  p: CsaParams64,
): { out: Float64Array; channel: Float64Array; temporal: Float64Array } {
  const { K1, H, C, w } = p;
  const channel = new Float64Array(b * C);
  const temporal = new Float64Array(b * T);
  const out = new Float64Array(b * T * C);
  for (let i = 0; i < b; i++) {
    const pooled = new Float64Array(2 * K1);
    for (let k = 0; k < K1; k++) {
      let s = 0;
      let m = -Infinity;
      for (let t = 0; t < T; t++) {
        const v = r[(i * T + t) * K1 + k];
        s += v;
        m = Math.max(m, v);
      }
      pooled[k] = s / T;
      pooled[K1 + k] = m;
    }
    const h = dense(pooled, p.w1, p.b1, 2 * K1, H).map((v) => Math.max(0, v));
    const a = dense(h, p.w2, p.b2, H, C);
    for (let c = 0; c < C; c++) channel[i * C + c] = sig(a[c]);
    for (let t = 0; t < T; t++) {
      let acc = p.bu;
      for (let j = -w; j <= w; j++) {
        const tt = t + j;
        if (tt < 0 || tt >= T) continue;
        for (let k = 0; k < K1; k++) acc += r[(i * T + tt) * K1 + k] * p.u[(j + w) * K1 + k];
      }
      temporal[i * T + t] = sig(acc);
    }
    for (let t = 0; t < T; t++)
      for (let c = 0; c < C; c++) {
        const idx = (i * T + t) * C + c;
        out[idx] = (f[idx] * (channel[i * C + c] + temporal[i * T + t])) / 2;
      }
  }
  return { out, channel, temporal };
}

export interface SeParams64 {
  C: number;
  H: number;
  w1: ArrayLike<number>;
  b1: ArrayLike<number>;
  w2: ArrayLike<number>;
  b2: ArrayLike<number>;
}

/** Float64 squeeze-and-excitation: f [b, T, C]; returns out [b, T, C] and weights [b, C]. */
export function squeezeExcitationReference(
  f: ArrayLike<number>,
  b: number,
  T: number,
  p: SeParams64,
): { out: Float64Array; weights: Float64Array } {
  const { C, H } = p;
  const weights = new Float64Array(b * C);
  const out = new Float64Array(b * T * C);
  for (let i = 0; i < b; i++) {
    const mean = new Float64Array(C);
    for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) mean[c] += f[(i * T + t) * C + c] / T;
    const h = dense(mean, p.w1, p.b1, C, H).map((v) => Math.max(0, v));
    const a = dense(h, p.w2, p.b2, H, C);
    for (let c = 0; c < C; c++) weights[i * C + c] = sig(a[c]);
    for (let t = 0; t < T; t++)
      for (let c = 0; c < C; c++) out[(i * T + t) * C + c] = f[(i * T + t) * C + c] * weights[i * C + c];
  }
  return { out, weights };
}

// ---------------------------------------------------------------------------------------------------------------
// A BMN-like localisation head with an optional attention module in front.

export type CsaVariant = 'none' | 'se' | 'csa' | 'se+csa';
export const CSA_VARIANTS: readonly CsaVariant[] = ['none', 'se', 'csa', 'se+csa'];

export interface LocaliserConfig {
  /** Localisation channels C. */
  channels: number;
  /** Recognition width K1 (classes + background). */
  recognition: number;
  hidden: number;
  /** Hidden width of the SE and CSA channel branches. */
  attentionHidden: number;
  /** CSA window half-width w. */
  window: number;
  variant: CsaVariant;
  seed: number;
}

export interface LocaliserOutput {
  /** [b, T] probabilities. */
  start: tf.Tensor2D;
  end: tf.Tensor2D;
  actionness: tf.Tensor2D;
  /** CSA's weights when the variant has CSA. */
  channel?: tf.Tensor2D;
  temporal?: tf.Tensor2D;
}

/**
 * BMN-lite: (attention on F) -> two temporal convolutions (width 3, ReLU) -> a width-1 convolution to start, end and
 * actionness probabilities per frame, as BMN's temporal evaluation module. Proposals are scored from these
 * (lib/papers/vision/csa/experiment.ts); BMN's boundary-matching confidence map is left out.
 */
export class Localiser {
  readonly config: LocaliserConfig;
  private readonly f: ParamFactory;
  readonly csa?: CsaParams;
  readonly se?: SeParams;
  private readonly conv: tf.Variable[];

  constructor(config: LocaliserConfig) {
    const fn = 'Localiser';
    for (const k of ['channels', 'recognition', 'hidden', 'attentionHidden'] as const)
      if (!(Number.isInteger(config[k]) && config[k] >= 1))
        throw new Error(`${fn}: config.${k} must be an integer >= 1, got ${config[k]}`);
    if (!CSA_VARIANTS.includes(config.variant))
      throw new Error(
        `${fn}: config.variant must be one of ${CSA_VARIANTS.join(', ')}, got ${JSON.stringify(config.variant)}`,
      );
    if (!(Number.isInteger(config.window) && config.window >= 0))
      throw new Error(`${fn}: config.window must be an integer >= 0, got ${config.window}`);
    this.config = config;
    const { channels: C, recognition: K1, hidden: H, attentionHidden: A, window: w } = config;
    this.f = new ParamFactory({ scope: `csa_${config.variant.replace('+', '_')}`, seed: config.seed });
    const f = this.f;
    if (config.variant === 'se' || config.variant === 'se+csa')
      this.se = {
        w1: f.variable('se.w1', [C, A], 'glorotUniform') as tf.Tensor as tf.Tensor2D,
        b1: f.variable('se.b1', [A], 'zeros') as tf.Tensor as tf.Tensor1D,
        w2: f.variable('se.w2', [A, C], 'glorotUniform') as tf.Tensor as tf.Tensor2D,
        b2: f.variable('se.b2', [C], { constant: 2 }) as tf.Tensor as tf.Tensor1D,
      };
    if (config.variant === 'csa' || config.variant === 'se+csa')
      this.csa = {
        w1: f.variable('csa.w1', [2 * K1, A], 'glorotUniform') as tf.Tensor as tf.Tensor2D,
        b1: f.variable('csa.b1', [A], 'zeros') as tf.Tensor as tf.Tensor1D,
        w2: f.variable('csa.w2', [A, C], 'glorotUniform') as tf.Tensor as tf.Tensor2D,
        b2: f.variable('csa.b2', [C], { constant: 2 }) as tf.Tensor as tf.Tensor1D,
        u: f.variable('csa.u', [2 * w + 1, K1, 1], 'glorotUniform') as tf.Tensor as tf.Tensor3D,
        bu: f.variable('csa.bu', [1], { constant: 2 }) as tf.Tensor as tf.Tensor1D,
      };
    this.conv = [
      f.variable('conv1.w', [3, C, H], 'glorotUniform'),
      f.variable('conv1.b', [H], 'zeros'),
      f.variable('conv2.w', [3, H, H], 'glorotUniform'),
      f.variable('conv2.b', [H], 'zeros'),
      f.variable('head.w', [1, H, 3], 'glorotUniform'),
      f.variable('head.b', [3], 'zeros'),
    ];
  }

  variables(): Record<string, tf.Variable> {
    return this.f.params();
  }

  parameterCount(): number {
    return Object.values(this.f.params()).reduce((a, v) => a + v.size, 0);
  }

  /** f [b, T, C], r [b, T, K1]. */
  forward(f: tf.Tensor3D, r: tf.Tensor3D): LocaliserOutput {
    const fn = 'Localiser.forward';
    if (f.rank !== 3 || f.shape[2] !== this.config.channels)
      throw new Error(`${fn}: f must be [b, T, ${this.config.channels}], got shape ${shapeOf(f)}`);
    if (r.rank !== 3 || r.shape[2] !== this.config.recognition || r.shape[1] !== f.shape[1])
      throw new Error(`${fn}: r must be [b, ${f.shape[1]}, ${this.config.recognition}], got shape ${shapeOf(r)}`);
    return tf.tidy(() => {
      let x = f;
      let channel: tf.Tensor2D | undefined;
      let temporal: tf.Tensor2D | undefined;
      if (this.se) x = squeezeExcitation(x, this.se).out;
      if (this.csa) {
        const o = classSemanticsAttention(x, r, this.csa);
        [x, channel, temporal] = [o.out, o.channel, o.temporal];
      }
      const [w1, b1, w2, b2, wh, bh] = this.conv;
      const h1 = tf.relu(temporalConv(x, w1 as tf.Tensor3D).add(b1)) as tf.Tensor3D;
      const h2 = tf.relu(temporalConv(h1, w2 as tf.Tensor3D).add(b2)) as tf.Tensor3D;
      const o = tf.sigmoid(temporalConv(h2, wh as tf.Tensor3D).add(bh));
      const [start, end, actionness] = tf.unstack(o, 2) as tf.Tensor2D[];
      return { start, end, actionness, ...(channel ? { channel, temporal } : {}) };
    });
  }

  dispose(): void {
    this.f.dispose();
  }
}

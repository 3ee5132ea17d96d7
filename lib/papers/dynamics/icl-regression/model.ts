/**
 * One-layer multi-head softmax attention for in-context linear regression, its float64 reference, the classical
 * predictors it is compared with, and the scores of the weight patterns the paper finds.
 *
 * Paper: He, Pan, Chen, Yang, 2025, "In-Context Linear Regression Demystified: Training Dynamics and Mechanistic
 * Interpretability of Multi-Head Softmax Attention", ICML, https://arxiv.org/abs/2503.12734 (official code
 * XintianPan/ICL_linear, src/models.py `MultiHeadAttention`, whose parametrisation and initialisation this follows).
 *
 * Tokens z_i = (x_i, y_i) ∈ R^e (e = d + 1), the query token z_q = (x_q, 0). Head h has Q_h, K_h, V_h ∈ R^{e×e} and
 * o_h ∈ R^e; the prediction is
 *
 *   ŷ = Σ_h o_hᵀ V_h Σ_i a_{h,i} z_i,   a_h = softmax_i( (Q_h z_q)ᵀ (K_h z_i) / √e )        (softmax)
 *   a_{h,i} = (Q_h z_q)ᵀ (K_h z_i) / √e                                                       (linear attention)
 *   a_{h,i} = (Q_h z_q)ᵀ (K_h z_i) / (√e · n)                                                 ('linear-mean')
 *
 * The query does not attend to itself (as in the official single-layer model). What the paper reads off the trained
 * weights is the KQ matrix W_h = Q_hᵀ K_h (rows: query features, columns: key features) and the OV vector
 * u_h = V_hᵀ o_h: after training, the x-block of W_h is ω_h·I (diagonal and homogeneous) and u_h ≈ (0, …, 0, μ_h)
 * (last entry only) with Σ_h μ_h ≈ 0 across heads (zero-sum). Expanding the softmax to first order in ω then gives
 *
 *   ŷ ≈ (Σ_h μ_h) ȳ + (Σ_h μ_h ω_h) (1/n) Σ_i y_i (x_i − x̄)ᵀ x_q,
 *
 * so with Σ μ_h = 0 the bias term ȳ cancels and the model is a debiased one-step gradient-descent predictor.
 *
 * Shape legend: b rows, n context tokens, e = d + 1 token features, H heads.
 *   zq [b, 1, e], z [b, n, e], wq / wk / wv [H, e, e] (row-major Q_h[g][f]: output g, input f), wo [H, e], ŷ [b].
 */
import * as tf from '@tensorflow/tfjs';
import type { LinearRegressionBatch } from '../../../data/linear-regression.js';
import { ParamFactory } from '../../../layers/params.js';

/**
 * 'softmax' is the paper's model; 'linear' is the linear transformer (the softmax replaced by the identity, no
 * normalisation: trained at one n it has to fold 1/n into its weights); 'linear-mean' divides the linear scores by n.
 */
export type IclAttentionKind = 'softmax' | 'linear' | 'linear-mean';

const KINDS: readonly IclAttentionKind[] = ['softmax', 'linear', 'linear-mean'];

function checkKind(fn: string, kind: unknown): asserts kind is IclAttentionKind {
  if (!KINDS.includes(kind as IclAttentionKind))
    throw new Error(`${fn}: kind must be one of ${KINDS.map((k) => `'${k}'`).join(', ')}, got ${JSON.stringify(kind)}`);
}

/** The four weight tensors of a one-layer H-head attention (see the shape legend). */
export interface IclWeights {
  wq: tf.Tensor;
  wk: tf.Tensor;
  wv: tf.Tensor;
  wo: tf.Tensor;
}

/** The same weights as float64 arrays, row-major, for the reference. */
export interface IclWeights64 {
  heads: number;
  e: number;
  wq: ArrayLike<number>;
  wk: ArrayLike<number>;
  wv: ArrayLike<number>;
  wo: ArrayLike<number>;
}

function checkWeights(fn: string, zq: tf.Tensor, z: tf.Tensor, w: IclWeights): { H: number; e: number } {
  if (z.rank !== 3) throw new Error(`${fn}: z must be [b, n, e], got shape [${z.shape}]`);
  const [b, , e] = z.shape;
  if (zq.rank !== 3 || zq.shape[0] !== b || zq.shape[1] !== 1 || zq.shape[2] !== e)
    throw new Error(`${fn}: zq must be [${b}, 1, ${e}] to match z [${z.shape}], got [${zq.shape}]`);
  if (w.wq.rank !== 3 || w.wq.shape[1] !== e || w.wq.shape[2] !== e)
    throw new Error(`${fn}: wq must be [H, ${e}, ${e}], got [${w.wq.shape}]`);
  const H = w.wq.shape[0];
  for (const [name, t] of [
    ['wk', w.wk],
    ['wv', w.wv],
  ] as const) {
    if (t.shape.join() !== [H, e, e].join())
      throw new Error(`${fn}: ${name} must be [${H}, ${e}, ${e}], got [${t.shape}]`);
  }
  if (w.wo.shape.join() !== [H, e].join()) throw new Error(`${fn}: wo must be [${H}, ${e}], got [${w.wo.shape}]`);
  return { H, e };
}

/**
 * Attention weights a [b, H, n] of the query over the context, per head (softmax, the linear scores, or those over n).
 */
export function iclAttentionWeights(
  zq: tf.Tensor,
  z: tf.Tensor,
  w: IclWeights,
  kind: IclAttentionKind = 'softmax',
): tf.Tensor3D {
  checkKind('iclAttentionWeights', kind);
  const { H, e } = checkWeights('iclAttentionWeights', zq, z, w);
  return tf.tidy(() => {
    const [b, n] = z.shape;
    // q[b, h, g] = Σ_f Q_h[g, f] zq[b, f]
    const q = tf.matMul(zq.reshape([b, e]), tf.transpose(w.wq, [2, 0, 1]).reshape([e, H * e])).reshape([b, H, e]);
    // r[b, h, f] = Σ_g q[b, h, g] K_h[g, f], so that score[b, h, i] = r[b, h] · z[b, i] = (Q_h zq)ᵀ (K_h z_i)
    const r = tf.transpose(tf.matMul(tf.transpose(q, [1, 0, 2]), w.wk), [1, 0, 2]);
    const scores = tf.matMul(r, z, false, true).mul(1 / Math.sqrt(e)) as tf.Tensor3D; // [b, H, n]
    if (kind === 'softmax') return tf.softmax(scores);
    return kind === 'linear' ? scores : scores.div(n);
  });
}

/** The prediction ŷ [b] for the query token of each row (see the module header). */
export function iclAttention(
  zq: tf.Tensor,
  z: tf.Tensor,
  w: IclWeights,
  kind: IclAttentionKind = 'softmax',
): tf.Tensor1D {
  checkKind('iclAttention', kind);
  checkWeights('iclAttention', zq, z, w);
  return tf.tidy(() => {
    const a = iclAttentionWeights(zq, z, w, kind); // [b, H, n]
    // u_h = V_hᵀ o_h [H, e]; the value each token gives head h is u_h · z_i
    const u = tf.sum(tf.mul(w.wv, tf.expandDims(w.wo, 2)), 1);
    const [b, n, e] = z.shape;
    // (tfjs's batched matMul has no gradient for a broadcast operand, so the tokens are flattened)
    const values = tf.matMul(z.reshape([b * n, e]), u, false, true).reshape([b, n, u.shape[0]]); // [b, n, H]
    return tf.sum(tf.mul(a, tf.transpose(values, [0, 2, 1])), [1, 2]) as tf.Tensor1D;
  });
}

/** Float64 reference of `iclAttention` with plain loops: z [b·n·e], zq [b·e] row-major. */
export function iclAttentionReference(
  zq: ArrayLike<number>,
  z: ArrayLike<number>,
  b: number,
  n: number,
  w: IclWeights64,
  kind: IclAttentionKind = 'softmax',
): Float64Array {
  checkKind('iclAttentionReference', kind);
  const { heads: H, e } = w;
  if (z.length !== b * n * e)
    throw new Error(`iclAttentionReference: z must have b·n·e = ${b * n * e} entries, got ${z.length}`);
  if (zq.length !== b * e)
    throw new Error(`iclAttentionReference: zq must have b·e = ${b * e} entries, got ${zq.length}`);
  const out = new Float64Array(b);
  const scale = 1 / Math.sqrt(e);
  for (let r = 0; r < b; r++) {
    for (let h = 0; h < H; h++) {
      const q = new Float64Array(e);
      for (let g = 0; g < e; g++) for (let f = 0; f < e; f++) q[g] += w.wq[(h * e + g) * e + f] * zq[r * e + f];
      const s = new Float64Array(n);
      const val = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const zi = (r * n + i) * e;
        for (let g = 0; g < e; g++) {
          let k = 0;
          let v = 0;
          for (let f = 0; f < e; f++) {
            k += w.wk[(h * e + g) * e + f] * z[zi + f];
            v += w.wv[(h * e + g) * e + f] * z[zi + f];
          }
          s[i] += q[g] * k * scale;
          val[i] += w.wo[h * e + g] * v;
        }
      }
      let a: Float64Array;
      if (kind === 'softmax') {
        const m = Math.max(...s);
        a = s.map((x) => Math.exp(x - m));
        const tot = a.reduce((p, x) => p + x, 0);
        a = a.map((x) => x / tot);
      } else {
        a = kind === 'linear' ? s : s.map((x) => x / n);
      }
      for (let i = 0; i < n; i++) out[r] += a[i] * val[i];
    }
  }
  return out;
}

/** The official initialisation: PyTorch nn.Linear's default U(±1/√fan_in), fan_in = e for Q, K, V and H·e for O. */
export interface IclModelOptions {
  d: number;
  heads: number;
  kind?: IclAttentionKind;
  seed: number;
}

/** A trainable one-layer H-head attention predictor (a thin wrapper over `iclAttention`). */
export class IclAttentionModel {
  readonly d: number;
  readonly e: number;
  readonly heads: number;
  readonly kind: IclAttentionKind;
  private readonly factory: ParamFactory;
  readonly weights: IclWeights;

  constructor(opts: IclModelOptions) {
    const fn = 'IclAttentionModel';
    if (!Number.isInteger(opts.d) || opts.d < 1) throw new Error(`${fn}: d must be an integer >= 1, got ${opts.d}`);
    if (!Number.isInteger(opts.heads) || opts.heads < 1)
      throw new Error(`${fn}: heads must be an integer >= 1, got ${opts.heads}`);
    const kind = opts.kind ?? 'softmax';
    checkKind(fn, kind);
    this.d = opts.d;
    this.e = opts.d + 1;
    this.heads = opts.heads;
    this.kind = kind;
    this.factory = new ParamFactory({ scope: `icl_${kind.replace('-', '_')}_h${opts.heads}`, seed: opts.seed });
    const { e, heads: H } = this;
    const lim = { uniform: 1 / Math.sqrt(e) };
    this.weights = {
      wq: this.factory.variable('wq', [H, e, e], lim),
      wk: this.factory.variable('wk', [H, e, e], lim),
      wv: this.factory.variable('wv', [H, e, e], lim),
      wo: this.factory.variable('wo', [H, e], { uniform: 1 / Math.sqrt(H * e) }),
    };
  }

  variables(): Record<string, tf.Variable> {
    return this.factory.params();
  }

  parameterCount(): number {
    return Object.values(this.weights).reduce((a, t) => a + t.size, 0);
  }

  predict(zq: tf.Tensor, z: tf.Tensor): tf.Tensor1D {
    return iclAttention(zq, z, this.weights, this.kind);
  }

  /** Mean squared error of the prediction (the official training loss, torch.nn.MSELoss). */
  loss(zq: tf.Tensor, z: tf.Tensor, yq: tf.Tensor): tf.Scalar {
    return tf.tidy(() => tf.mean(tf.squaredDifference(this.predict(zq, z), yq)) as tf.Scalar);
  }

  /** KQ matrices W_h = Q_hᵀ K_h / √e, per head [e][e] (rows: query features, columns: key features). */
  kq(): number[][][] {
    const { e, heads: H } = this;
    const q = this.weights.wq.dataSync();
    const k = this.weights.wk.dataSync();
    return Array.from({ length: H }, (_, h) =>
      Array.from({ length: e }, (_, f) =>
        Array.from({ length: e }, (_, g) => {
          let s = 0;
          for (let c = 0; c < e; c++) s += q[(h * e + c) * e + f] * k[(h * e + c) * e + g];
          return s / Math.sqrt(e);
        }),
      ),
    );
  }

  /** OV vectors u_h = V_hᵀ o_h, per head [e]: the value head h reads from a token z is u_h · z. */
  ov(): number[][] {
    const { e, heads: H } = this;
    const v = this.weights.wv.dataSync();
    const o = this.weights.wo.dataSync();
    return Array.from({ length: H }, (_, h) =>
      Array.from({ length: e }, (_, f) => {
        let s = 0;
        for (let g = 0; g < e; g++) s += o[h * e + g] * v[(h * e + g) * e + f];
        return s;
      }),
    );
  }

  dispose(): void {
    this.factory.dispose();
  }
}

// ---- Classical predictors (float64) ----

/** Solves A x = rhs for a symmetric positive-definite A (m×m, row-major) by Cholesky; A is not modified. */
function solveSpd(A: Float64Array, rhs: Float64Array, m: number): Float64Array {
  const L = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * m + j];
      for (let k = 0; k < j; k++) s -= L[i * m + k] * L[j * m + k];
      if (i === j) {
        if (!(s > 0)) throw new Error(`solveSpd: matrix is not positive definite (pivot ${s} at ${i})`);
        L[i * m + i] = Math.sqrt(s);
      } else L[i * m + j] = s / L[j * m + j];
    }
  }
  const t = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = rhs[i];
    for (let k = 0; k < i; k++) s -= L[i * m + k] * t[k];
    t[i] = s / L[i * m + i];
  }
  const x = new Float64Array(m);
  for (let i = m - 1; i >= 0; i--) {
    let s = t[i];
    for (let k = i + 1; k < m; k++) s -= L[k * m + i] * x[k];
    x[i] = s / L[i * m + i];
  }
  return x;
}

/**
 * Ridge regression on each row's context, evaluated at its query: β̂ = (XᵀX + λI)⁻¹ Xᵀy. With λ = σ²·d it is the
 * posterior mean under the task's prior β ~ N(0, I/d), the Bayes-optimal predictor. λ = 0 is least squares (the
 * minimum-norm solution Xᵀ(XXᵀ)⁻¹y when n < d).
 */
export function ridgePredict(batch: LinearRegressionBatch, lambda: number): Float64Array {
  if (!(lambda >= 0) || !Number.isFinite(lambda))
    throw new Error(`ridgePredict: lambda must be a finite number >= 0, got ${lambda}`);
  const { n, d, x, y, xq } = batch;
  const out = new Float64Array(batch.batch);
  for (let r = 0; r < batch.batch; r++) {
    const X = x.subarray(r * n * d, (r + 1) * n * d);
    const Y = y.subarray(r * n, (r + 1) * n);
    let beta: Float64Array;
    if (n >= d || lambda > 0) {
      const A = new Float64Array(d * d);
      const rhs = new Float64Array(d);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < d; j++) {
          rhs[j] += X[i * d + j] * Y[i];
          for (let k = 0; k < d; k++) A[j * d + k] += X[i * d + j] * X[i * d + k];
        }
      for (let j = 0; j < d; j++) A[j * d + j] += lambda;
      beta = solveSpd(A, rhs, d);
    } else {
      const G = new Float64Array(n * n);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) for (let k = 0; k < d; k++) G[i * n + j] += X[i * d + k] * X[j * d + k];
      const c = solveSpd(G, Float64Array.from(Y), n);
      beta = new Float64Array(d);
      for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) beta[k] += c[i] * X[i * d + k];
    }
    let s = 0;
    for (let k = 0; k < d; k++) s += beta[k] * xq[r * d + k];
    out[r] = s;
  }
  return out;
}

/**
 * One step of gradient descent from β = 0 on the context's squared loss, with step η: ŷ = (η/n) Σ_i y_i x_iᵀ x_q.
 * `debiased` centres the covariates, ŷ = (η/n) Σ_i y_i (x_i − x̄)ᵀ x_q: the predictor the paper shows multi-head
 * softmax attention implements.
 */
export function gdPredict(batch: LinearRegressionBatch, eta: number, debiased = false): Float64Array {
  if (!Number.isFinite(eta)) throw new Error(`gdPredict: eta must be a finite number, got ${eta}`);
  const { n, d, x, y, xq } = batch;
  const out = new Float64Array(batch.batch);
  for (let r = 0; r < batch.batch; r++) {
    const mean = new Float64Array(d);
    if (debiased) for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k] += x[(r * n + i) * d + k] / n;
    let s = 0;
    for (let i = 0; i < n; i++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += (x[(r * n + i) * d + k] - mean[k]) * xq[r * d + k];
      s += y[r * n + i] * dot;
    }
    out[r] = (eta / n) * s;
  }
  return out;
}

/** The step η that minimises the squared error of `gdPredict` on `batch` (closed form: a 1-D least squares fit). */
export function fitGdStep(batch: LinearRegressionBatch, debiased = false): number {
  const g = gdPredict(batch, 1, debiased);
  let num = 0;
  let den = 0;
  for (let r = 0; r < batch.batch; r++) {
    num += g[r] * batch.yq[r];
    den += g[r] * g[r];
  }
  return den > 0 ? num / den : 0;
}

/** Mean squared error and its 95% confidence half-width (1.96 · sd / √m) over rows. */
export function mseWithCi(pred: ArrayLike<number>, target: ArrayLike<number>): { mse: number; ci95: number } {
  if (pred.length !== target.length)
    throw new Error(`mseWithCi: pred has ${pred.length} entries but target has ${target.length}`);
  const m = pred.length;
  const sq = Array.from({ length: m }, (_, i) => (pred[i] - target[i]) ** 2);
  const mse = sq.reduce((a, v) => a + v, 0) / m;
  const sd = Math.sqrt(sq.reduce((a, v) => a + (v - mse) ** 2, 0) / Math.max(1, m - 1));
  return { mse, ci95: (1.96 * sd) / Math.sqrt(m) };
}

// ---- Pattern scores ----

/** How close head h's KQ x-block is to ω·I. */
export interface KqPattern {
  /** ω_h: the mean of the x-block's diagonal. */
  omega: number;
  /** Root-mean-square off-diagonal entry of the x-block over |ω|: 0 for a diagonal block. */
  offDiagonalRatio: number;
  /** Standard deviation of the x-block's diagonal over |ω|: 0 for a homogeneous diagonal. */
  diagonalSpread: number;
}

/** Scores the x-block (the first d rows and columns) of one head's KQ matrix [e][e]. */
export function kqPattern(kq: number[][], d: number): KqPattern {
  if (kq.length < d || kq.some((row) => row.length < d))
    throw new Error(`kqPattern: kq must be at least ${d}×${d}, got ${kq.length}×${kq[0]?.length ?? 0}`);
  const diag = Array.from({ length: d }, (_, i) => kq[i][i]);
  const omega = diag.reduce((a, v) => a + v, 0) / d;
  let off = 0;
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) if (i !== j) off += kq[i][j] ** 2;
  const offRms = d > 1 ? Math.sqrt(off / (d * (d - 1))) : 0;
  const sd = Math.sqrt(diag.reduce((a, v) => a + (v - omega) ** 2, 0) / d);
  const w = Math.abs(omega);
  return { omega, offDiagonalRatio: offRms / w, diagonalSpread: sd / w };
}

/** The OV pattern across heads. */
export interface OvPattern {
  /** μ_h: each head's last (y) entry. */
  mu: number[];
  /** Per head, |μ_h| / ‖u_h‖: 1 when the head reads only the y entry. */
  lastEntryShare: number[];
  /** |Σ_h μ_h| / Σ_h |μ_h|: 0 when the heads' y coefficients cancel (zero-sum), 1 when they all share a sign. */
  zeroSum: number;
}

export function ovPattern(ov: number[][]): OvPattern {
  if (ov.length === 0) throw new Error('ovPattern: ov must have at least one head, got 0');
  const mu = ov.map((u) => u[u.length - 1]);
  const lastEntryShare = ov.map((u, h) => Math.abs(mu[h]) / Math.sqrt(u.reduce((a, v) => a + v * v, 0)));
  const sum = mu.reduce((a, v) => a + v, 0);
  const abs = mu.reduce((a, v) => a + Math.abs(v), 0);
  return { mu, lastEntryShare, zeroSum: abs > 0 ? Math.abs(sum) / abs : 0 };
}

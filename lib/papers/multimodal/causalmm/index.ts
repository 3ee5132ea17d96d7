/**
 * CausalMM: counterfactual attention and the causal logit combination.
 *
 * Paper: Zhou et al., ICLR 2025, "Mitigating Modality Prior-Induced Hallucinations in Multimodal Large Language Models
 * via Deciphering Attention Causality", https://arxiv.org/abs/2410.04780 (code: github.com/The-Martyr/CausalMM).
 *
 * Modality priors confound attention -> output. The effect of attention is estimated by intervening on it: the
 * attention maps of the vision encoder (or of the language model) are replaced by counterfactual ones (uniform,
 * random, reversed = max − A, or shuffled), the model is run again, and the logits are combined:
 *   ℓ* = (1 + 2γ) ℓ − γ ℓ_cf-vis − γ ℓ_cf-lang,
 * keeping only plausible tokens, p(y) ≥ ε · max p (i.e. ℓ ≥ log ε + max ℓ in log-probabilities); the rest get -∞.
 * With one counterfactual (vision only) it is ℓ* = (1 + γ) ℓ − γ ℓ_cf.
 *
 * Shape legend: w [b, h, s, t] attention weights (rows sum to 1 over allowed keys), logits [b, V].
 */
import * as tf from '@tensorflow/tfjs';
import type { HookFn } from '../../../layers/hooks.js';
import { Rng } from '../../../util/random.js';

export type CounterfactualKind = 'uniform' | 'random' | 'reversed' | 'shuffle';
export const COUNTERFACTUAL_KINDS: readonly CounterfactualKind[] = ['uniform', 'random', 'reversed', 'shuffle'];

export interface CounterfactualOptions {
  /** Causal rows: key j is allowed for query i when j <= i + (t − s). Default false (every key). */
  causal?: boolean;
  /** Seed of 'random' and 'shuffle'. */
  seed?: number;
  /** Only rows i >= fromRow are replaced (default 0: every row). */
  fromRow?: number;
}

function check(fn: string, w: { rank: number; shape: number[] }, kind: string, fromRow: number): void {
  if (w.rank !== 4) throw new Error(`${fn}: w must have shape [batch, heads, queries, keys], got [${w.shape}]`);
  if (!COUNTERFACTUAL_KINDS.includes(kind as CounterfactualKind))
    throw new Error(`${fn}: kind must be one of ${COUNTERFACTUAL_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  if (!Number.isInteger(fromRow) || fromRow < 0)
    throw new Error(`${fn}: opts.fromRow must be an integer >= 0, got ${fromRow}`);
}

/**
 * The counterfactual attention of each row over its allowed keys: the plain-JS arithmetic that both the tensor
 * version and the reference use (float64). Returns the new row.
 */
function counterfactualRow(row: ArrayLike<number>, n: number, kind: CounterfactualKind, rng: Rng): number[] {
  const out = new Array<number>(row.length).fill(0);
  if (kind === 'uniform') for (let j = 0; j < n; j++) out[j] = 1 / n;
  else if (kind === 'random') {
    let s = 0;
    for (let j = 0; j < n; j++) s += out[j] = rng.next() + 1e-6;
    for (let j = 0; j < n; j++) out[j] /= s;
  } else if (kind === 'reversed') {
    let mx = -Infinity;
    for (let j = 0; j < n; j++) mx = Math.max(mx, row[j]);
    let s = 0;
    for (let j = 0; j < n; j++) s += out[j] = mx - row[j];
    for (let j = 0; j < n; j++) out[j] = s > 0 ? out[j] / s : 1 / n;
  } else {
    const perm = rng.shuffle(Array.from({ length: n }, (_, j) => j));
    for (let j = 0; j < n; j++) out[j] = row[perm[j]];
  }
  return out;
}

/**
 * Replaces attention weights by counterfactual ones, row by row over the allowed keys (masked keys stay 0): uniform
 * 1/n; random U(0,1) normalised; reversed (max − a) normalised (uniform when a row is constant); shuffle permutes the
 * row's weights. The result does not depend on w's values for 'uniform' and 'random'; it is not differentiable (an
 * intervention, not a layer), so it is computed on the CPU in float64 and returned as a new tensor.
 */
export function counterfactualAttention(
  w: tf.Tensor4D,
  kind: CounterfactualKind,
  opts: CounterfactualOptions = {},
): tf.Tensor4D {
  const fromRow = opts.fromRow ?? 0;
  check('counterfactualAttention', w, kind, fromRow);
  const out = counterfactualAttentionNaive(Array.from(w.dataSync()), w.shape, kind, opts);
  return tf.tensor4d(Float32Array.from(out), w.shape);
}

/** Float64 reference of {@link counterfactualAttention} on a flat row-major array of shape [b, h, s, t]. */
export function counterfactualAttentionNaive(
  w: ArrayLike<number>,
  shape: [number, number, number, number],
  kind: CounterfactualKind,
  opts: CounterfactualOptions = {},
): Float64Array {
  const [b, h, s, t] = shape;
  const fromRow = opts.fromRow ?? 0;
  check('counterfactualAttentionNaive', { rank: shape.length, shape }, kind, fromRow);
  const rng = new Rng(opts.seed ?? 0);
  const out = Float64Array.from(w);
  const src = Float64Array.from(w);
  for (let bh = 0; bh < b * h; bh++) {
    for (let i = fromRow; i < s; i++) {
      const n = opts.causal ? Math.min(t, i + (t - s) + 1) : t;
      const base = (bh * s + i) * t;
      const row = counterfactualRow(src.subarray(base, base + t), n, kind, rng);
      for (let j = 0; j < t; j++) out[base + j] = row[j];
    }
  }
  return out;
}

/** A HookFn for `*.hook_pattern` that swaps in counterfactual attention (see {@link counterfactualAttention}). */
export function counterfactualHook(kind: CounterfactualKind, opts: CounterfactualOptions = {}): HookFn {
  return (w) => counterfactualAttention(w as tf.Tensor4D, kind, opts);
}

export interface CausalCombineOptions {
  /** Strength γ (paper default 0.5, its evaluation scripts pass 1). */
  gamma: number;
  /** Plausibility cut ε: tokens with p < ε · max p under the factual logits get -∞ (default 0.1). */
  epsilon?: number;
}

/**
 * ℓ* = (1 + k γ) ℓ − γ Σ ℓ_cf over the k counterfactual logits given, with the plausibility cut on the factual
 * log-probabilities. logits [b, V], each counterfactual [b, V] -> [b, V] (cut tokens -Infinity).
 */
export function causalCombine(
  logits: tf.Tensor2D,
  counterfactuals: tf.Tensor2D[],
  o: CausalCombineOptions,
): tf.Tensor2D {
  const fn = 'causalCombine';
  if (logits.rank !== 2) throw new Error(`${fn}: logits must have shape [batch, vocab], got [${logits.shape}]`);
  counterfactuals.forEach((c, i) => {
    if (c.shape.join() !== logits.shape.join())
      throw new Error(`${fn}: counterfactuals[${i}] has shape [${c.shape}] but logits have [${logits.shape}]`);
  });
  checkGammaEps(fn, o.gamma, o.epsilon ?? 0.1);
  const eps = o.epsilon ?? 0.1;
  return tf.tidy(() => {
    let out = logits.mul(1 + counterfactuals.length * o.gamma);
    for (const c of counterfactuals) out = out.sub(c.mul(o.gamma));
    const logp = tf.logSoftmax(logits);
    const keep = logp.greaterEqual(logp.max(-1, true).add(Math.log(eps)));
    return tf.where(keep, out, tf.fill(out.shape, -Infinity)) as tf.Tensor2D;
  });
}

function checkGammaEps(fn: string, gamma: number, eps: number): void {
  if (!(Number.isFinite(gamma) && gamma >= 0)) throw new Error(`${fn}: gamma must be a number >= 0, got ${gamma}`);
  if (!(eps > 0 && eps <= 1)) throw new Error(`${fn}: epsilon must be in (0, 1], got ${eps}`);
}

/** Float64 reference of {@link causalCombine} on row-major [b, V] arrays. */
export function causalCombineNaive(
  logits: ArrayLike<number>,
  counterfactuals: ArrayLike<number>[],
  V: number,
  o: CausalCombineOptions,
): Float64Array {
  const eps = o.epsilon ?? 0.1;
  checkGammaEps('causalCombineNaive', o.gamma, eps);
  const out = new Float64Array(logits.length);
  for (let r = 0; r < logits.length / V; r++) {
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[r * V + v]);
    for (let v = 0; v < V; v++) {
      const i = r * V + v;
      let x = (1 + counterfactuals.length * o.gamma) * logits[i];
      for (const c of counterfactuals) x -= o.gamma * c[i];
      // log p_v - max log p = ℓ_v - max ℓ (the normaliser cancels)
      out[i] = logits[i] - mx >= Math.log(eps) ? x : -Infinity;
    }
  }
  return out;
}

/**
 * VAR: Visual Attention Redistribution.
 *
 * Paper: Kang et al., ICLR 2025, "See What You Are Told: Visual Attention Sink in Large Multimodal Models",
 * https://arxiv.org/abs/2503.03321 (code: github.com/MICV-yonsei/VisAttnSink).
 *
 * 1. Sink tokens. The language model's BOS sink has massive activations in a few hidden dims D_sink; image tokens
 *    with the same massive dims are visual sink tokens: φ(x) = max_{d ∈ D_sink} |x_d| / RMS(x) > τ (τ = 20).
 *    Toy models may not grow massive activations; then {@link columnMeanSinks} marks sinks the way ACT (Yu et al. 2024)
 *    does, as tokens whose mean received attention is `ratio` times the average (the experiment reports which rule ran).
 * 2. Image-centric heads: a head (at a query row) puts at least `minImage` (0.2) of its attention on image tokens, and
 *    at least a fraction ρ (0.5) of that on non-sink image tokens.
 * 3. In those heads, a fraction p (0.6) of the attention on every sink token (text and visual) is taken away and
 *    given to the non-sink image tokens in proportion to their attention:
 *      Ω = p Σ_{j ∈ sink} a_ij;  a_ij ← (1 − p) a_ij (j ∈ sink);  a_ij ← a_ij + Ω a_ij / Σ_{k ∈ img∖sink} a_ik (j ∈ img∖sink).
 *    Rows keep summing to 1. p = 0 changes nothing.
 *
 * Shape legend: w [b, h, s, t] attention weights, hidden [b, t, m], sink [b, t] 0/1, image [t] 0/1.
 */
import * as tf from '@tensorflow/tfjs';
import type { HookFn } from '../../../layers/hooks.js';

export interface RedistributeOptions {
  /** Fraction of sink attention moved, in [0, 1] (paper 0.6). */
  p: number;
  /** Least non-sink share of a head's image attention for it to be image-centric (paper 0.5). */
  rho: number;
  /** Least image attention of an image-centric head (paper 0.2). */
  minImage?: number;
  /** Only rows i >= fromRow (default: the last row, the decoding query). */
  fromRow?: number;
}

function checkOptions(fn: string, o: RedistributeOptions): number {
  const minImage = o.minImage ?? 0.2;
  for (const [k, v] of [
    ['p', o.p],
    ['rho', o.rho],
    ['minImage', minImage],
  ] as const)
    if (!(typeof v === 'number' && v >= 0 && v <= 1)) throw new Error(`${fn}: ${k} must be in [0, 1], got ${v}`);
  return minImage;
}

/**
 * The redistribution of step 3 in the image-centric heads of rows >= fromRow; every other entry is unchanged.
 * w [b, h, s, t], sink [b, t] (1 = sink), image [t] (1 = image token) -> [b, h, s, t].
 */
export function redistributeAttention(
  w: tf.Tensor4D,
  sink: tf.Tensor2D,
  image: tf.Tensor1D,
  o: RedistributeOptions,
): tf.Tensor4D {
  const fn = 'redistributeAttention';
  if (w.rank !== 4) throw new Error(`${fn}: w must have shape [batch, heads, queries, keys], got [${w.shape}]`);
  const [b, , s, t] = w.shape;
  if (sink.rank !== 2 || sink.shape[0] !== b || sink.shape[1] !== t)
    throw new Error(`${fn}: sink must have shape [${b}, ${t}], got [${sink.shape}]`);
  if (image.rank !== 1 || image.shape[0] !== t)
    throw new Error(`${fn}: image must have shape [${t}], got [${image.shape}]`);
  const minImage = checkOptions(fn, o);
  const from = o.fromRow ?? s - 1;
  if (!Number.isInteger(from) || from < 0 || from >= s)
    throw new Error(`${fn}: fromRow must be an integer in [0, ${s - 1}], got ${o.fromRow}`);
  return tf.tidy(() => {
    const sk = sink.reshape([b, 1, 1, t]);
    const img = image.reshape([1, 1, 1, t]);
    const good = img.mul(tf.scalar(1).sub(sk)); // non-sink image tokens
    const visual = w.mul(img).sum(-1, true); // [b, h, s, 1]
    const nonSink = w.mul(good).sum(-1, true);
    const rows = tf.tensor1d(Array.from({ length: s }, (_, i) => (i >= from ? 1 : 0))).reshape([1, 1, s, 1]);
    // The head choice is a step function: tf.step (zero gradient) keeps it on the gradient tape, where comparison ops
    // have no gradient. a >= b is 1 − step(b − a).
    const atLeast = (a: tf.Tensor, b: tf.Tensor | number) => tf.scalar(1).sub(tf.step(tf.sub(b, a)));
    const centric = atLeast(visual, minImage)
      .mul(atLeast(nonSink, visual.mul(o.rho)))
      .mul(tf.step(nonSink))
      .mul(rows); // [b, h, s, 1]
    const omega = w.mul(sk).sum(-1, true).mul(o.p); // [b, h, s, 1]
    const moved = w
      .mul(sk)
      .mul(-o.p)
      .add(w.mul(good).mul(omega.div(nonSink.maximum(1e-30))));
    return w.add(moved.mul(centric)) as tf.Tensor4D;
  });
}

/** Float64 reference of {@link redistributeAttention} on row-major arrays. */
export function redistributeAttentionNaive(
  w: ArrayLike<number>,
  shape: [number, number, number, number],
  sink: ArrayLike<number>,
  image: ArrayLike<number>,
  o: RedistributeOptions,
): Float64Array {
  const [b, h, s, t] = shape;
  const minImage = checkOptions('redistributeAttentionNaive', o);
  const from = o.fromRow ?? s - 1;
  const out = Float64Array.from(w);
  for (let x = 0; x < b; x++)
    for (let y = 0; y < h; y++)
      for (let i = from; i < s; i++) {
        const base = ((x * h + y) * s + i) * t;
        let visual = 0;
        let nonSink = 0;
        let onSinks = 0;
        for (let j = 0; j < t; j++) {
          const a = w[base + j];
          const isSink = sink[x * t + j] > 0;
          if (image[j] > 0) visual += a;
          if (image[j] > 0 && !isSink) nonSink += a;
          if (isSink) onSinks += a;
        }
        if (!(visual >= minImage && nonSink >= o.rho * visual && nonSink > 0)) continue;
        const omega = o.p * onSinks;
        for (let j = 0; j < t; j++) {
          const a = w[base + j];
          const isSink = sink[x * t + j] > 0;
          if (isSink) out[base + j] = (1 - o.p) * a;
          else if (image[j] > 0) out[base + j] = a + (omega * a) / nonSink;
        }
      }
  return out;
}

/** The `k` hidden dims of largest |x_d| in a token's hidden state x [m] (the BOS sink's massive dims), largest first. */
export function sinkDimensions(x: ArrayLike<number>, k: number): number[] {
  if (!Number.isInteger(k) || k < 1 || k > x.length)
    throw new Error(`sinkDimensions: k must be an integer in [1, ${x.length}], got ${k}`);
  return Array.from({ length: x.length }, (_, d) => d)
    .sort((a, c) => Math.abs(x[c]) - Math.abs(x[a]) || a - c)
    .slice(0, k);
}

/** φ(x) = max_{d ∈ dims} |x_d| / RMS(x) for every token of hidden [b, t, m] (row-major) -> [b * t]. */
export function sinkScores(hidden: ArrayLike<number>, m: number, dims: readonly number[]): Float64Array {
  if (!(Number.isInteger(m) && m > 0 && hidden.length % m === 0))
    throw new Error(`sinkScores: hidden has ${hidden.length} values, not a multiple of m = ${m}`);
  if (dims.length === 0 || dims.some((d) => !(Number.isInteger(d) && d >= 0 && d < m)))
    throw new Error(`sinkScores: dims must be a non-empty list of integers in [0, ${m}), got [${dims}]`);
  const n = hidden.length / m;
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let ss = 0;
    for (let d = 0; d < m; d++) ss += hidden[r * m + d] ** 2;
    const rms = Math.sqrt(ss / m);
    let mx = 0;
    for (const d of dims) mx = Math.max(mx, Math.abs(hidden[r * m + d]));
    out[r] = rms > 0 ? mx / rms : 0;
  }
  return out;
}

/**
 * The column-mean fallback: for each example, the candidate keys whose attention, averaged over heads and the query
 * rows from `fromRow`, is at least `ratio` times the candidates' mean. w [b, h, s, t] (row-major), candidates [t] 0/1
 * -> sink [b * t] 0/1.
 */
export function columnMeanSinks(
  w: ArrayLike<number>,
  shape: [number, number, number, number],
  candidates: ArrayLike<number>,
  ratio: number,
  fromRow = 0,
): Float32Array {
  const [b, h, s, t] = shape;
  if (!(ratio > 0)) throw new Error(`columnMeanSinks: ratio must be > 0, got ${ratio}`);
  if (!(Number.isInteger(fromRow) && fromRow >= 0 && fromRow < s))
    throw new Error(`columnMeanSinks: fromRow must be an integer in [0, ${s - 1}], got ${fromRow}`);
  const out = new Float32Array(b * t);
  for (let x = 0; x < b; x++) {
    const col = new Float64Array(t);
    for (let y = 0; y < h; y++)
      for (let i = fromRow; i < s; i++) for (let j = 0; j < t; j++) col[j] += w[((x * h + y) * s + i) * t + j];
    let mean = 0;
    let n = 0;
    for (let j = 0; j < t; j++)
      if (candidates[j] > 0) {
        mean += col[j];
        n++;
      }
    mean /= Math.max(1, n);
    for (let j = 0; j < t; j++) if (candidates[j] > 0 && col[j] >= ratio * mean && col[j] > 0) out[x * t + j] = 1;
  }
  return out;
}

/**
 * A HookFn for `blocks.{i}.attn.hook_pattern` that applies {@link redistributeAttention} with the sink mask [b, T]
 * and image mask [T], cut to the pattern's t keys.
 */
export function redistributeHook(sink: tf.Tensor2D, image: tf.Tensor1D, o: RedistributeOptions): HookFn {
  return (w) => {
    const t = w.shape[3] as number;
    return tf.tidy(() =>
      redistributeAttention(w as tf.Tensor4D, sink.slice([0, 0], [-1, t]), image.slice([0], [t]), o),
    );
  };
}

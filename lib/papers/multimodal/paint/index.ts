/**
 * PAINT (and PAI, its baseline): boosting the pre-softmax attention of the decoding query to image tokens.
 *
 * Papers: Arif et al. 2025, "PAINT: Paying Attention to INformed Tokens to Mitigate Hallucination in Large
 * Vision-Language Model", https://arxiv.org/abs/2501.12206 (code: github.com/hasanar1f/PAINT, modPAI/attention.py and
 * clip_encoder.py); Liu et al., ECCV 2024, "Paying More Attention to Image: A Training-Free Method for Alleviating
 * Hallucination in LVLMs" (PAI), https://arxiv.org/abs/2407.21771.
 *
 *   PAI:    a_ij ← a_ij + α |a_ij|   for every image token j                    (the decoding query i, chosen layers)
 *   PAINT:  a_ij ← a_ij + α |a_ij|   for the "top" informed tokens j,
 *           a_ij ← a_ij + β |a_ij|   for the "bottom" (secondary) tokens j       (code: α 0.7, β 0.3)
 * PAINT's dual-stream selection (clip_encoder.py `update_modpai_alpha`): the vision encoder's CLS attention to the
 * patches, summed over heads, in its first layer gives the top stream (the top 25% of patches) and in its
 * second-to-last layer the bottom stream (the patches above Q3 + 1.5 IQR, i.e. the outliers); top loses any token that
 * is also bottom. The official code boosts the same tokens in every head.
 *
 * Shape legend: scores [b, h, s, t] pre-softmax attention logits, boost [b, t] per-key boost factors.
 */
import * as tf from '@tensorflow/tfjs';
import type { HookFn } from '../../../layers/hooks.js';

/**
 * a ← a + boost_j · |a| on rows i >= fromRow (default: the last row, the decoding query). scores [b, h, s, t],
 * boost [b, t] (or [1, t]) -> [b, h, s, t]. boost 0 everywhere returns the scores unchanged.
 */
export function boostScores(scores: tf.Tensor4D, boost: tf.Tensor2D, fromRow?: number): tf.Tensor4D {
  const fn = 'boostScores';
  if (scores.rank !== 4)
    throw new Error(`${fn}: scores must have shape [batch, heads, queries, keys], got [${scores.shape}]`);
  const [b, , s, t] = scores.shape;
  if (boost.rank !== 2 || boost.shape[1] !== t || (boost.shape[0] !== b && boost.shape[0] !== 1))
    throw new Error(`${fn}: boost must have shape [${b} or 1, ${t}], got [${boost.shape}]`);
  const from = fromRow ?? s - 1;
  if (!Number.isInteger(from) || from < 0 || from >= s)
    throw new Error(`${fn}: fromRow must be an integer in [0, ${s - 1}], got ${fromRow}`);
  return tf.tidy(() => {
    const rows = tf.tensor1d(Array.from({ length: s }, (_, i) => (i >= from ? 1 : 0))).reshape([1, 1, s, 1]);
    const factor = boost.reshape([boost.shape[0], 1, 1, t]).mul(rows); // [b, 1, s, t]
    return scores.add(scores.abs().mul(factor)) as tf.Tensor4D;
  });
}

/** Float64 reference of {@link boostScores} on row-major arrays (boost [bb, t] with bb = b or 1). */
export function boostScoresNaive(
  scores: ArrayLike<number>,
  shape: [number, number, number, number],
  boost: ArrayLike<number>,
  fromRow?: number,
): Float64Array {
  const [b, h, s, t] = shape;
  const from = fromRow ?? s - 1;
  const bb = boost.length / t;
  const out = Float64Array.from(scores);
  for (let x = 0; x < b; x++)
    for (let y = 0; y < h; y++)
      for (let i = from; i < s; i++)
        for (let j = 0; j < t; j++) {
          const k = ((x * h + y) * s + i) * t + j;
          out[k] = scores[k] + boost[(bb === 1 ? 0 : x) * t + j] * Math.abs(scores[k]);
        }
  return out;
}

/** PAI's boost vector: α on the image tokens [imageStart, imageEnd), 0 elsewhere; [1, keys]. */
export function paiBoost(keys: number, imageStart: number, imageEnd: number, alpha: number): tf.Tensor2D {
  if (!(0 <= imageStart && imageStart <= imageEnd && imageEnd <= keys))
    throw new Error(`paiBoost: need 0 <= imageStart <= imageEnd <= keys (${keys}), got [${imageStart}, ${imageEnd})`);
  if (!Number.isFinite(alpha)) throw new Error(`paiBoost: alpha must be a finite number, got ${alpha}`);
  return tf.tensor2d(
    Array.from({ length: keys }, (_, j) => (j >= imageStart && j < imageEnd ? alpha : 0)),
    [1, keys],
  );
}

/** Which patches PAINT boosts, per example: indices into the patch list. */
export interface InformedTokens {
  top: number[];
  bottom: number[];
}

function quantile(sorted: number[], q: number): number {
  // linear interpolation, numpy's default
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * PAINT's dual-stream selection from the CLS token's attention to the patches (summed over heads): `early` from the
 * encoder's first layer, `late` from its second-to-last layer, both [patches]. top = the top `topFraction` of patches
 * by `early`; bottom = the patches whose `late` exceeds Q3 + 1.5 IQR, in descending order; top loses any bottom token.
 */
export function informedTokens(early: ArrayLike<number>, late: ArrayLike<number>, topFraction = 0.25): InformedTokens {
  const n = early.length;
  if (late.length !== n)
    throw new Error(`informedTokens: early has ${n} patches but late has ${late.length}; they must match`);
  if (!(topFraction > 0 && topFraction <= 1))
    throw new Error(`informedTokens: topFraction must be in (0, 1], got ${topFraction}`);
  const byDesc = (a: ArrayLike<number>) => Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j] - a[i] || i - j);
  const k = Math.floor(n * topFraction);
  const sorted = Array.from(late).sort((x, y) => x - y);
  const q1 = quantile(sorted, 0.25);
  const q3 = quantile(sorted, 0.75);
  const upper = q3 + 1.5 * (q3 - q1);
  const bottom = byDesc(late).filter((i) => late[i] > upper);
  const top = byDesc(early)
    .slice(0, k)
    .filter((i) => !bottom.includes(i));
  return { top, bottom };
}

/**
 * PAINT's boost vectors [b, keys]: α on each example's top tokens and β on its bottom tokens, placed at
 * `patchOffset + index` among the keys (the patches' positions in the decoder's sequence).
 */
export function paintBoost(
  selected: InformedTokens[],
  keys: number,
  patchOffset: number,
  alpha: number,
  beta: number,
): tf.Tensor2D {
  if (!Number.isFinite(alpha) || !Number.isFinite(beta))
    throw new Error(`paintBoost: alpha and beta must be finite numbers, got ${alpha} and ${beta}`);
  const out = new Float32Array(selected.length * keys);
  selected.forEach((sel, b) => {
    for (const [list, v] of [
      [sel.top, alpha],
      [sel.bottom, beta],
    ] as const) {
      for (const i of list) {
        const j = patchOffset + i;
        if (j < 0 || j >= keys)
          throw new Error(`paintBoost: token ${i} + offset ${patchOffset} is outside [0, ${keys})`);
        out[b * keys + j] = v;
      }
    }
  });
  return tf.tensor2d(out, [selected.length, keys]);
}

/**
 * A HookFn for `blocks.{i}.attn.hook_scores` that applies {@link boostScores} with `boost` [b or 1, keys] to the rows
 * from `fromRow` (default: the last). When the sequence is shorter than `boost`'s keys, the boost is cut to fit.
 */
export function boostHook(boost: tf.Tensor2D, fromRow?: number): HookFn {
  return (scores) => {
    const t = scores.shape[3] as number;
    return tf.tidy(() => boostScores(scores as tf.Tensor4D, boost.slice([0, 0], [-1, t]), fromRow));
  };
}

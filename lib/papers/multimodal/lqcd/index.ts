/**
 * LQCD: Leading-Query Contrastive Decoding against sycophancy.
 *
 * Paper: Zhao et al. 2024, "Towards Analyzing and Mitigating Sycophancy in Large Vision-Language Models",
 * https://arxiv.org/abs/2408.11261 (v1; no official code found).
 *
 * A leading cue in the query ("the square is red . what colour is the square ?") inflates the probability of the
 * tokens it suggests. LQCD contrasts the next-token logits under the neutralised query with those under the leading
 * one, under an adaptive plausibility constraint on the neutral distribution (as in visual contrastive decoding):
 *   ℓ* = (1 + α) ℓ(y | v, q_neutral) − α ℓ(y | v, q_leading),  kept where p(y | v, q_neutral) ≥ β · max p;
 * the rest get -∞. α = 0 gives the neutral query's logits (with the cut, which never removes the argmax).
 *
 * Shape legend: logits [b, V].
 */
import * as tf from '@tensorflow/tfjs';

export interface LqcdOptions {
  /** Contrast strength α >= 0. */
  alpha: number;
  /** Plausibility β in (0, 1] (default 0.1). */
  beta?: number;
}

function checkOptions(fn: string, o: LqcdOptions): number {
  const beta = o.beta ?? 0.1;
  if (!(Number.isFinite(o.alpha) && o.alpha >= 0))
    throw new Error(`${fn}: alpha must be a number >= 0, got ${o.alpha}`);
  if (!(beta > 0 && beta <= 1)) throw new Error(`${fn}: beta must be in (0, 1], got ${beta}`);
  return beta;
}

/** neutral, leading [b, V] -> [b, V]: the contrasted logits (implausible tokens -Infinity). */
export function lqcdLogits(neutral: tf.Tensor2D, leading: tf.Tensor2D, o: LqcdOptions): tf.Tensor2D {
  const fn = 'lqcdLogits';
  if (neutral.rank !== 2) throw new Error(`${fn}: neutral must have shape [batch, vocab], got [${neutral.shape}]`);
  if (leading.shape.join() !== neutral.shape.join())
    throw new Error(`${fn}: leading has shape [${leading.shape}] but neutral has [${neutral.shape}]; they must match`);
  const beta = checkOptions(fn, o);
  return tf.tidy(() => {
    const out = neutral.mul(1 + o.alpha).sub(leading.mul(o.alpha));
    const logp = tf.logSoftmax(neutral);
    const keep = logp.greaterEqual(logp.max(-1, true).add(Math.log(beta)));
    return tf.where(keep, out, tf.fill(out.shape, -Infinity)) as tf.Tensor2D;
  });
}

/** Float64 reference of {@link lqcdLogits} on row-major [b, V] arrays. */
export function lqcdLogitsNaive(
  neutral: ArrayLike<number>,
  leading: ArrayLike<number>,
  V: number,
  o: LqcdOptions,
): Float64Array {
  const beta = checkOptions('lqcdLogitsNaive', o);
  const out = new Float64Array(neutral.length);
  for (let r = 0; r < neutral.length / V; r++) {
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, neutral[r * V + v]);
    for (let v = 0; v < V; v++) {
      const i = r * V + v;
      out[i] = neutral[i] - mx >= Math.log(beta) ? (1 + o.alpha) * neutral[i] - o.alpha * leading[i] : -Infinity;
    }
  }
  return out;
}

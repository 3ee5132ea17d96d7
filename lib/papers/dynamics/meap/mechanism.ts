/**
 * MEAP: Mask-Enhanced Autoregressive Prediction: the loss and the attention statistic, with float64 references
 * (re-exported by index.ts, the paper's public surface).
 *
 * Paper: Zhuang, Jia, Li, Zhang, Shen, Cao, Liu, "Mask-Enhanced Autoregressive Prediction: Pay Less Attention to Learn
 * More", ICML 2025, https://arxiv.org/abs/2502.07490 (code: https://github.com/scitix/MEAP).
 *
 * Next-token prediction on inputs with holes: a random set M of input positions is replaced by [MASK], the targets
 * stay the original next tokens, and the model stays causal (no bidirectional attention, no extra compute):
 *
 *   m(x)_i = [MASK] if i ∈ M else x_i,   |M| = max(1, ⌊ρ·s⌋),   M uniform among subsets of {0, ..., s-2}
 *   L_MEAP = -(1/s) Σ_t log p_θ(x_{t+1} | m(x)_0, ..., m(x)_t)
 *
 * ρ = 0.1 (0.1B model) or 0.15 (1B) in the official pre-training configs; the masking itself is lib/data/meap.ts. The
 * paper's explanation is that attention over fewer real tokens becomes more distinguishable, measured here by the
 * attention entropy H = -Σ_k a_qk log a_qk of each query's row (lower = sharper).
 *
 * Shape legend: b batch, s positions, V vocabulary, h heads, q query positions, k key positions.
 *   inputs, targets [b, s] int32;  logits [b, s, V];  attention pattern [b, h, q, k];  entropy per head [h]
 */
import * as tf from '@tensorflow/tfjs';
import { logSoftmax } from '../../../backend/native.js';
import { type MeapMaskConfig, meapMaskTensor, meapPositions } from '../../../data/meap.js';
import { fmt, ShapeError } from '../../../util/shapes.js';

/** Anything with a causal forward pass from ids [b, s] to logits [b, s, V] (ToyLM is one). */
export interface LogitsModel {
  forward(ids: tf.Tensor): tf.Tensor3D;
}

export interface MeapLossOptions extends MeapMaskConfig {
  /** [b, s] 1 where the target counts (default: every position, as in pre-training). */
  lossMask?: tf.Tensor;
}

function checkIds(fn: string, inputs: tf.Tensor, targets: tf.Tensor): void {
  if (inputs.rank !== 2) throw new ShapeError(`${fn}: inputs must be [batch, seqLen], got shape ${fmt(inputs.shape)}`);
  if (targets.rank !== 2 || targets.shape[0] !== inputs.shape[0] || targets.shape[1] !== inputs.shape[1])
    throw new ShapeError(
      `${fn}: targets must have the inputs' shape ${fmt(inputs.shape)}, got shape ${fmt(targets.shape)}`,
    );
}

/**
 * The MEAP loss of one step: the model's mean next-token cross-entropy on `inputs` with the step's positions set to
 * [MASK], scored against the untouched `targets` (masked mean over `lossMask` when given). Ratio 0 is plain NTP.
 */
export function meapLoss(model: LogitsModel, inputs: tf.Tensor, targets: tf.Tensor, opts: MeapLossOptions): tf.Scalar {
  checkIds('meapLoss', inputs, targets);
  if (opts.lossMask && (opts.lossMask.rank !== 2 || opts.lossMask.size !== inputs.size))
    throw new ShapeError(
      `meapLoss: lossMask must have the inputs' shape ${fmt(inputs.shape)}, got shape ${fmt(opts.lossMask.shape)}`,
    );
  return tf.tidy(() => {
    const masked = meapMaskTensor(inputs, opts);
    const logits = model.forward(masked); // [b, s, V]
    const V = logits.shape[2];
    const logp = logSoftmax(logits);
    const picked = logp.mul(tf.oneHot(targets.toInt().flatten(), V).reshape(logits.shape)).sum(-1); // [b, s]
    if (!opts.lossMask) return picked.mean().neg() as tf.Scalar;
    return picked.mul(opts.lossMask).sum().div(opts.lossMask.sum().maximum(1)).neg() as tf.Scalar;
  });
}

/**
 * Float64 reference of {@link meapLoss}: masks with plain loops, calls `logitsOf` (a float64 model on id rows), and
 * averages -log softmax at the targets.
 */
export function meapLossReference(
  logitsOf: (ids: number[][]) => number[][][],
  inputs: number[][],
  targets: number[][],
  opts: MeapMaskConfig & { lossMask?: number[][] },
): number {
  const s = inputs[0].length;
  const positions = new Set(meapPositions(s, opts));
  const masked = inputs.map((row) => row.map((x, i) => (positions.has(i) ? opts.maskId : x)));
  const logits = logitsOf(masked);
  let total = 0;
  let weight = 0;
  logits.forEach((rows, b) =>
    rows.forEach((z, t) => {
      const w = opts.lossMask ? opts.lossMask[b][t] : 1;
      if (w === 0) return;
      const m = Math.max(...z);
      const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
      total += w * (lse - z[targets[b][t]]);
      weight += w;
    }),
  );
  return total / Math.max(weight, opts.lossMask ? 1 : 0);
}

/**
 * Mean entropy (nats) of the attention rows of each head: pattern [b, h, q, k] (rows summing to 1) -> [h], averaged
 * over the batch and the query positions where `rowMask` [b, q] is 1 (default: every row).
 */
export function attentionEntropy(pattern: tf.Tensor, rowMask?: tf.Tensor): tf.Tensor1D {
  if (pattern.rank !== 4)
    throw new ShapeError(`attentionEntropy: pattern must be [batch, heads, queries, keys], got ${fmt(pattern.shape)}`);
  const [b, , q] = pattern.shape;
  if (rowMask && (rowMask.rank !== 2 || rowMask.shape[0] !== b || rowMask.shape[1] !== q))
    throw new ShapeError(`attentionEntropy: rowMask must be [${b}, ${q}] (batch, queries), got ${fmt(rowMask.shape)}`);
  return tf.tidy(() => {
    // p log p -> 0 as p -> 0: the causal zeros contribute nothing.
    const h = pattern.mul(pattern.maximum(1e-30).log()).sum(-1).neg(); // [b, h, q]
    if (!rowMask) return h.mean([0, 2]) as tf.Tensor1D;
    const w = rowMask.toFloat().expandDims(1); // [b, 1, q]
    return h.mul(w).sum([0, 2]).div(w.sum().maximum(1e-30)) as tf.Tensor1D;
  });
}

/** Float64 reference of {@link attentionEntropy} on nested arrays [b][h][q][k] (and rowMask [b][q]). */
export function attentionEntropyReference(pattern: number[][][][], rowMask?: number[][]): number[] {
  const H = pattern[0].length;
  const out = new Array<number>(H).fill(0);
  let weight = 0;
  pattern.forEach((heads, b) =>
    heads[0].forEach((_, t) => {
      const w = rowMask ? rowMask[b][t] : 1;
      weight += w;
      for (let h = 0; h < H; h++) {
        let e = 0;
        for (const p of heads[h][t]) if (p > 0) e -= p * Math.log(p);
        out[h] += w * e;
      }
    }),
  );
  return out.map((x) => x / weight);
}

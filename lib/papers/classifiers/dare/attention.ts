/**
 * Two-stage target attention over a long behaviour history (TWIN / DARE): a search stage keeps the K behaviours whose
 * attention score against the target is highest, then a softmax over the kept scores aggregates their values.
 *
 * Paper: Feng, Pan, Wu, Chen, Wang, Li, Hu, Jiang, Long, "Long-Sequence Recommendation Models Need Decoupled
 * Embeddings", ICLR 2025, https://arxiv.org/abs/2410.02604 (official code thuml/DARE, model/din_pytorch.py with
 * `soft_search`, model/attention_pytorch.py `attention` with attn_func 'scaled_dot_product').
 *
 *   s_j = q · k_j / √d_a                          (search: every behaviour j = 1..L)
 *   S   = top-K of s                              (no gradient through the choice)
 *   a_j = exp(s_j) / Σ_{i∈S} exp(s_i),  j ∈ S     (aggregation over the kept behaviours only)
 *   out = Σ_{j∈S} a_j v_j
 *
 * Gradients reach q, the kept keys and the kept values; a behaviour outside S gets none. In DARE the keys q, k come
 * from an attention embedding table and the values v from a separate representation table; in TWIN both are the same
 * embeddings.
 *
 * Shape legend: b impressions, L behaviours, d_a attention dim, d_v value dim, K kept.
 *   q [b, d_a], k [b, L, d_a], v [b, L, d_v]; out [b, d_v], indices [b, K] (int32, by descending score),
 *   weights [b, K], scores [b, L].
 */
import * as tf from '@tensorflow/tfjs';
import { embedding } from '../../../backend/ops.js';

export interface TopKAttentionOutput {
  /** The aggregated values [b, d_v]. */
  out: tf.Tensor2D;
  /** Positions of the kept behaviours [b, K], highest score first. */
  indices: tf.Tensor2D;
  /** Softmax weights over the kept behaviours [b, K] (in the order of `indices`). */
  weights: tf.Tensor2D;
  /** Search scores of every behaviour [b, L]. */
  scores: tf.Tensor2D;
}

function checkShapes(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, topK: number): [number, number] {
  if (q.rank !== 2) throw new Error(`${fn}: q must be [b, d_a], got shape [${q.shape}]`);
  const [b, da] = q.shape as [number, number];
  if (k.rank !== 3 || k.shape[0] !== b || k.shape[2] !== da)
    throw new Error(`${fn}: k must be [${b}, L, ${da}] to match q [${q.shape}], got [${k.shape}]`);
  const L = k.shape[1] as number;
  if (v.rank !== 3 || v.shape[0] !== b || v.shape[1] !== L)
    throw new Error(`${fn}: v must be [${b}, ${L}, d_v] to match k [${k.shape}], got [${v.shape}]`);
  if (!Number.isInteger(topK) || topK < 1 || topK > L)
    throw new Error(`${fn}: topK must be an integer in [1, ${L}] (the history length), got ${topK}`);
  return [b, L];
}

/** Search scores s [b, L] = q · k_j / √d_a. */
export function targetScores(q: tf.Tensor, k: tf.Tensor): tf.Tensor2D {
  if (q.rank !== 2 || k.rank !== 3 || k.shape[0] !== q.shape[0] || k.shape[2] !== q.shape[1])
    throw new Error(`targetScores: q must be [b, d] and k [b, L, d], got q [${q.shape}] and k [${k.shape}]`);
  return tf.tidy(
    () => tf.sum(tf.mul(tf.expandDims(q, 1), k), 2).mul(1 / Math.sqrt(q.shape[1] as number)) as tf.Tensor2D,
  );
}

/** Rows of float32 x [b, L, d] at `indices` [b, K] → [b, K, d] (a flat row lookup: tfjs's gather has no gradient on wasm). */
function gatherRows(x: tf.Tensor, indices: tf.Tensor2D): tf.Tensor3D {
  const [b, L, d] = x.shape as [number, number, number];
  const K = indices.shape[1];
  const flat = tf
    .add(indices, tf.mul(tf.range(0, b, 1, 'int32'), tf.scalar(L, 'int32')).reshape([b, 1]))
    .reshape([b * K]);
  return embedding(x.reshape([b * L, d]) as tf.Tensor2D, flat).reshape([b, K, d]) as tf.Tensor3D;
}

/**
 * A copy of `t` that no gradient tape reaches: the kept positions depend on q and k through the search, and tfjs would
 * otherwise try to differentiate the lookups by them (its GatherV2 gradient returns int32 for its indices).
 */
function detach(t: tf.Tensor2D): tf.Tensor2D {
  return tf.tensor2d(t.dataSync() as Int32Array, t.shape, 'int32');
}

/** The search stage: positions [b, K] of the K highest scores q · k_j / √d_a, highest first (int32, no gradient). */
export function targetSearch(q: tf.Tensor, k: tf.Tensor, topK: number): tf.Tensor2D {
  if (k.rank !== 3 || !Number.isInteger(topK) || topK < 1 || topK > (k.shape[1] as number))
    throw new Error(
      `targetSearch: topK must be an integer in [1, L] for k [b, L, d_a], got ${topK} for k [${k.shape}]`,
    );
  return tf.tidy(() => detach(tf.topk(targetScores(q, k), topK).indices as tf.Tensor2D));
}

/**
 * The aggregation stage over kept behaviours: softmax_j(q · k_j / √d_a) weights over kKept [b, K, d_a], applied to
 * vKept [b, K, d_v]. Returns out [b, d_v] and the weights [b, K].
 */
export function keptAttention(
  q: tf.Tensor,
  kKept: tf.Tensor,
  vKept: tf.Tensor,
): { out: tf.Tensor2D; weights: tf.Tensor2D } {
  if (vKept.rank !== 3 || vKept.shape[0] !== kKept.shape[0] || vKept.shape[1] !== kKept.shape[1])
    throw new Error(`keptAttention: vKept must be [b, K, d_v] to match kKept [${kKept.shape}], got [${vKept.shape}]`);
  return tf.tidy(() => {
    const weights = tf.softmax(targetScores(q, kKept)) as tf.Tensor2D;
    const out = tf.sum(tf.mul(tf.expandDims(weights, 2), vKept), 1) as tf.Tensor2D;
    return { out, weights };
  });
}

/** Top-K search then softmax aggregation (see the module header). The caller disposes the four outputs. */
export function topKTargetAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, topK: number): TopKAttentionOutput {
  checkShapes('topKTargetAttention', q, k, v, topK);
  const scores = targetScores(q, k);
  // The search: an int32 choice, so no gradient flows through which behaviours are kept.
  const indices = tf.tidy(() => detach(tf.topk(scores, topK).indices as tf.Tensor2D));
  const { out, weights } = tf.tidy(() => keptAttention(q, gatherRows(k, indices), gatherRows(v, indices)));
  return { out, indices, weights, scores };
}

/** Float64 reference: q [b·d_a], k [b·L·d_a], v [b·L·d_v] row-major; ties keep the earlier position. */
export function topKTargetAttentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dims: { b: number; L: number; da: number; dv: number },
  topK: number,
): { out: Float64Array; indices: Int32Array; weights: Float64Array; scores: Float64Array } {
  const { b, L, da, dv } = dims;
  const fn = 'topKTargetAttentionReference';
  if (q.length !== b * da) throw new Error(`${fn}: q must have b·d_a = ${b * da} entries, got ${q.length}`);
  if (k.length !== b * L * da) throw new Error(`${fn}: k must have b·L·d_a = ${b * L * da} entries, got ${k.length}`);
  if (v.length !== b * L * dv) throw new Error(`${fn}: v must have b·L·d_v = ${b * L * dv} entries, got ${v.length}`);
  if (!Number.isInteger(topK) || topK < 1 || topK > L)
    throw new Error(`${fn}: topK must be an integer in [1, ${L}], got ${topK}`);
  const out = new Float64Array(b * dv);
  const indices = new Int32Array(b * topK);
  const weights = new Float64Array(b * topK);
  const scores = new Float64Array(b * L);
  const scale = 1 / Math.sqrt(da);
  for (let r = 0; r < b; r++) {
    for (let j = 0; j < L; j++) {
      let s = 0;
      for (let f = 0; f < da; f++) s += q[r * da + f] * k[(r * L + j) * da + f];
      scores[r * L + j] = s * scale;
    }
    const order = Array.from({ length: L }, (_, j) => j).sort((x, y) => scores[r * L + y] - scores[r * L + x] || x - y);
    const kept = order.slice(0, topK);
    const m = scores[r * L + kept[0]];
    let tot = 0;
    for (let i = 0; i < topK; i++) {
      indices[r * topK + i] = kept[i];
      weights[r * topK + i] = Math.exp(scores[r * L + kept[i]] - m);
      tot += weights[r * topK + i];
    }
    for (let i = 0; i < topK; i++) {
      weights[r * topK + i] /= tot;
      for (let f = 0; f < dv; f++) out[r * dv + f] += weights[r * topK + i] * v[(r * L + kept[i]) * dv + f];
    }
  }
  return { out, indices, weights, scores };
}

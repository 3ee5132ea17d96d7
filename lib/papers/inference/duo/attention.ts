/**
 * DuoAttention's mixed attention (Xiao, Tang, Zuo, Guo, Yang, Tang, Fu, Han, "DuoAttention: Efficient Long-Context LLM
 * Inference with Retrieval and Streaming Heads", ICLR 2025, https://arxiv.org/abs/2410.10819; official code
 * mit-han-lab/duo-attention, duo_attn/patch):
 *
 *   out_h = α_g · Attn_full(q_h, K_g, V_g) + (1 − α_g) · Attn_stream(q_h, K_g, V_g),   g = the KV head of query head h
 *
 * Attn_full is causal softmax attention over every earlier key; Attn_stream is the same softmax restricted to the first
 * `sinks` keys and the `recent` most recent ones (StreamingLLM's sink + window pattern). α = 1 is a retrieval head
 * (needs the whole KV cache), α = 0 a streaming head (a constant sink + recent cache).
 *
 * Shape legend: q [b, h, s, d], k and v [b, g, t, d] (h % g == 0, queries end-aligned to the keys: query i sits at key
 * position t − s + i), alpha [g] -> out [b, h, s, d].
 */
import * as tf from '@tensorflow/tfjs';
import { sdpa } from '../../../attention/sdpa.js';
import * as masks from '../../../masks/index.js';
import { fmt, ShapeError } from '../../../util/shapes.js';

export interface StreamingWindow {
  /** Attention-sink keys every query keeps (the first positions). */
  sinks: number;
  /** Most recent keys every query keeps, itself included. */
  recent: number;
}

function checkWindow(fn: string, w: StreamingWindow): void {
  if (!Number.isInteger(w?.sinks) || w.sinks < 0)
    throw new ShapeError(`${fn}: window.sinks must be an integer >= 0, got ${w?.sinks}`);
  if (!Number.isInteger(w.recent) || w.recent < 1)
    throw new ShapeError(`${fn}: window.recent must be an integer >= 1, got ${w.recent}`);
}

function checkShapes(
  fn: string,
  q: readonly number[],
  k: readonly number[],
  v: readonly number[],
  a: readonly number[],
) {
  if (q.length !== 4) throw new ShapeError(`${fn}: q must have rank 4 [batch, heads, queries, dim], got ${fmt(q)}`);
  if (k.length !== 4) throw new ShapeError(`${fn}: k must have rank 4 [batch, kvHeads, keys, dim], got ${fmt(k)}`);
  if (v.length !== 4 || v[0] !== k[0] || v[1] !== k[1] || v[2] !== k[2])
    throw new ShapeError(`${fn}: v must have shape [batch, kvHeads, keys, dim] matching k ${fmt(k)}, got ${fmt(v)}`);
  if (k[0] !== q[0] || k[3] !== q[3])
    throw new ShapeError(`${fn}: k ${fmt(k)} must match q ${fmt(q)} in batch and dim`);
  if (q[1] % k[1] !== 0) throw new ShapeError(`${fn}: query heads (${q[1]}) must be a multiple of kv heads (${k[1]})`);
  if (q[2] > k[2]) throw new ShapeError(`${fn}: ${q[2]} queries but only ${k[2]} keys (queries are end-aligned)`);
  if (a.length !== 1 || a[0] !== k[1])
    throw new ShapeError(`${fn}: alpha must have shape [kvHeads] = [${k[1]}], got ${fmt(a)}`);
}

/**
 * The mixed attention above. q [b, h, s, d], k, v [b, g, t, d], alpha [g] (one gate per KV head, usually in [0, 1])
 * -> [b, h, s, d]. Differentiable in q, k, v and alpha.
 */
export function duoAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  alpha: tf.Tensor1D,
  window: StreamingWindow,
): tf.Tensor4D {
  const fn = 'duoAttention';
  checkShapes(fn, q.shape, k.shape, v.shape, alpha.shape);
  checkWindow(fn, window);
  return tf.tidy(() => {
    const full = sdpa(q, k, v, { mask: masks.causal() });
    const stream = sdpa(q, k, v, { mask: masks.sinkWindow(window.sinks, window.recent) });
    return mixHeads(full, stream, alpha);
  });
}

/** α_g · full + (1 − α_g) · stream per query head (α repeated over each KV head's group). full, stream [b, h, s, d]. */
export function mixHeads(full: tf.Tensor, stream: tf.Tensor, alpha: tf.Tensor1D): tf.Tensor4D {
  const h = full.shape[1] as number;
  const g = alpha.shape[0];
  if (h % g !== 0) throw new ShapeError(`mixHeads: ${h} query heads is not a multiple of ${g} gates`);
  return tf.tidy(() => {
    const perHead =
      g === h
        ? alpha
        : alpha
            .reshape([g, 1])
            .tile([1, h / g])
            .reshape([h]); // [h]
    const a = perHead.reshape([1, h, 1, 1]);
    return stream.add(full.sub(stream).mul(a)) as tf.Tensor4D;
  });
}

/** Whether query i (0-based among s queries over t keys) may see key j in the streaming pattern. */
export function streamingAllows(i: number, j: number, s: number, t: number, w: StreamingWindow): boolean {
  const qi = t - s + i;
  return j <= qi && (j < w.sinks || j > qi - w.recent);
}

/**
 * Float64 reference with plain loops: q as flat [b, h, s, d], k and v flat [b, g, t, d], alpha [g]; returns flat
 * [b, h, s, d].
 */
export function duoAttentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  alpha: ArrayLike<number>,
  shape: { b: number; h: number; g: number; s: number; t: number; d: number },
  window: StreamingWindow,
): Float64Array {
  const { b, h, g, s, t, d } = shape;
  checkWindow('duoAttentionReference', window);
  if (q.length !== b * h * s * d || k.length !== b * g * t * d || v.length !== b * g * t * d || alpha.length !== g)
    throw new ShapeError(
      `duoAttentionReference: lengths q ${q.length}, k ${k.length}, v ${v.length}, alpha ${alpha.length} do not match shape ${JSON.stringify(shape)}`,
    );
  const out = new Float64Array(b * h * s * d);
  const scale = 1 / Math.sqrt(d);
  const attend = (bi: number, hi: number, i: number, allowed: (j: number) => boolean): Float64Array => {
    const gi = Math.floor(hi / (h / g));
    const scores: number[] = [];
    const keys: number[] = [];
    for (let j = 0; j < t; j++) {
      if (!allowed(j)) continue;
      let dot = 0;
      for (let x = 0; x < d; x++) dot += q[((bi * h + hi) * s + i) * d + x] * k[((bi * g + gi) * t + j) * d + x];
      scores.push(dot * scale);
      keys.push(j);
    }
    const o = new Float64Array(d);
    if (!keys.length) return o;
    const m = Math.max(...scores);
    const e = scores.map((z) => Math.exp(z - m));
    const z = e.reduce((a, c) => a + c, 0);
    keys.forEach((j, n) => {
      for (let x = 0; x < d; x++) o[x] += (e[n] / z) * v[((bi * g + gi) * t + j) * d + x];
    });
    return o;
  };
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++)
      for (let i = 0; i < s; i++) {
        const qi = t - s + i;
        const full = attend(bi, hi, i, (j) => j <= qi);
        const stream = attend(bi, hi, i, (j) => streamingAllows(i, j, s, t, window));
        const a = alpha[Math.floor(hi / (h / g))];
        for (let x = 0; x < d; x++) out[((bi * h + hi) * s + i) * d + x] = a * full[x] + (1 - a) * stream[x];
      }
  return out;
}

/**
 * Retrieval heads: the few attention heads that copy-paste from a long context.
 *
 * Paper: Wu, Wang, Xiao, Peng, Fu, "Retrieval Head Mechanistically Explains Long-Context Factuality", ICLR 2025,
 * https://arxiv.org/abs/2404.15574 (official code nightdessert/Retrieval_Head, retrieval_head_detection.py).
 *
 * Retrieval score of head h: while the model emits the needle's tokens, a step counts as a hit when the head's top-1
 * attended position j lies inside the needle span and holds the token being emitted,
 *
 *   score_h = mean over samples of  Σ_steps 1[argmax_j a_h(t, j) ∈ needle  ∧  x_j = y_t] / |needle answer|
 *
 * (the official code adds 1/|needle| per hit and averages over haystack lengths and depths). Heads scoring above 0.1
 * are retrieval heads in the paper; they are under 5% of heads, and masking them breaks needle retrieval.
 *
 * Shape legend: patterns[layer] [b, h, s, s] attention weights (query, key), inputs / emitted [b][s] token ids.
 */
import * as tf from '@tensorflow/tfjs';
import type { NeedleRow } from '../../../data/needles.js';
import { scaleHeads } from '../../../layers/hooks.js';
import type { ToyLM } from '../../../layers/toylm.js';

/** One layer's attention weights, row-major [b, h, s, s]. */
export interface PatternData {
  data: ArrayLike<number>;
  shape: [number, number, number, number];
}

/**
 * Per [layer][head] retrieval scores on a batch of needle rows: for each row and answer step i (query position
 * answerStart + i, emitting emitted[b][answerStart + i]), a head hits when its top-1 key (the first one on ties) is in
 * rows[b].needleSpan and holds the emitted token. Plain float64 arithmetic over the recorded weights.
 */
export function retrievalScores(
  patterns: PatternData[],
  inputs: number[][],
  emitted: number[][],
  rows: NeedleRow[],
): number[][] {
  const fn = 'retrievalScores';
  if (!Array.isArray(patterns) || patterns.length === 0)
    throw new Error(`${fn}: patterns must be one per layer, got ${patterns?.length}`);
  const [b, heads, s, t] = patterns[0].shape;
  if (s !== t) throw new Error(`${fn}: patterns must be square [b, h, s, s], got [${patterns[0].shape}]`);
  for (const [l, p] of patterns.entries())
    if (p.shape.join() !== patterns[0].shape.join() || p.data.length !== b * heads * s * s)
      throw new Error(
        `${fn}: patterns[${l}] must have shape [${patterns[0].shape}] and as many values, got [${p.shape}] (${p.data.length})`,
      );
  if (inputs.length !== b || emitted.length !== b || rows.length !== b)
    throw new Error(
      `${fn}: inputs, emitted and rows must have ${b} rows (the patterns' batch), got ${inputs.length}, ${emitted.length}, ${rows.length}`,
    );
  return patterns.map(({ data }) =>
    Array.from({ length: heads }, (_, h) => {
      let total = 0;
      rows.forEach((r, bi) => {
        const steps = r.values.length;
        let hits = 0;
        for (let i = 0; i < steps; i++) {
          const q = r.answerStart + i;
          if (q >= s) throw new Error(`${fn}: rows[${bi}].answerStart + ${i} = ${q} is outside the ${s} positions`);
          const base = ((bi * heads + h) * s + q) * s;
          let best = 0;
          for (let j = 1; j <= q; j++) if (data[base + j] > data[base + best]) best = j;
          if (best >= r.needleSpan[0] && best < r.needleSpan[1] && inputs[bi][best] === emitted[bi][q]) hits++;
        }
        total += hits / steps;
      });
      return total / rows.length;
    }),
  );
}

/** Heads as [layer, head] pairs, sorted by score (highest first; ties by layer, then head). */
export function rankHeads(scores: number[][]): [number, number][] {
  const all: [number, number, number][] = [];
  scores.forEach((row, l) => row.forEach((s, h) => all.push([s, l, h])));
  all.sort((a, b) => b[0] - a[0] || a[1] - b[1] || a[2] - b[2]);
  return all.map(([, l, h]) => [l, h]);
}

/**
 * Masks (zeroes the output of) the given [layer, head] heads of `model` through its hook_z hooks, until the returned
 * function is called. Works for the full forward and for cached decoding.
 */
export function maskHeads(model: ToyLM, heads: [number, number][]): () => void {
  const { layers, heads: H } = model.config;
  for (const [l, h] of heads)
    if (!Number.isInteger(l) || !Number.isInteger(h) || l < 0 || l >= layers || h < 0 || h >= H)
      throw new Error(`maskHeads: head [${l}, ${h}] is outside the model's ${layers} layers x ${H} heads`);
  const removers: (() => void)[] = [];
  for (let l = 0; l < layers; l++) {
    const scales = Array.from({ length: H }, (_, h) => (heads.some(([a, b]) => a === l && b === h) ? 0 : 1));
    if (scales.every((x) => x === 1)) continue;
    removers.push(model.hooks.add(`blocks.${l}.attn.hook_z`, scaleHeads(scales)));
  }
  return () => {
    for (const r of removers) r();
  };
}

/**
 * Runs `model` on inputs [b, s] once, recording every layer's attention pattern; returns the patterns, the argmax
 * token at every position ([b][s]) and the logits' argmax accuracy is left to the caller.
 */
export function recordPatterns(model: ToyLM, inputs: tf.Tensor2D): { patterns: PatternData[]; emitted: number[][] } {
  const { logits, cache } = model.runWithCache(inputs);
  try {
    const emitted = tf.tidy(() => logits.argMax(-1).arraySync() as number[][]);
    const patterns = Array.from({ length: model.config.layers }, (_, l) => {
      const p = cache.get(`blocks.${l}.attn.hook_pattern`);
      return { data: p.dataSync(), shape: p.shape as [number, number, number, number] };
    });
    return { patterns, emitted };
  } finally {
    logits.dispose();
    cache.dispose();
  }
}

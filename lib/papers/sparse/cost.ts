/**
 * What a sparse method reports besides its output: the pairs it scored (so cost is measured rather than assumed) and
 * which (query, key) pairs it covered (for recall and attention-mass metrics).
 *
 * Shape legend: b = batch, h = query heads, g = kv heads, n = queries, m = keys, d = head dim, e = value dim,
 * nb = query blocks (ceil(n / bq)), s = key slots per query block.
 *   q [b, h, n, d], k [b, g, m, d], v [b, g, m, e] -> output [b, h, n, e]
 * Queries are end-aligned with keys (query i sits at position m - n + i), as in `sdpa`.
 */
import type * as tf from '@tensorflow/tfjs';
import type { AttentionShapes } from '../../attention/dense.js';

/** What a sparse method computed, so cost is measured rather than assumed. */
export interface SparseStats {
  method: string;
  /** Query-key scores computed for the attention itself (visible pairs only). */
  pairs: number;
  /** Scores dense attention computes under the same mask (causal: n(n+1)/2 per head and batch row). */
  densePairs: number;
  /** Dot products spent deciding what to keep (centroid distances, representative or landmark scores, gate logits). */
  selectionPairs: number;
  /** Key blocks kept and available, summed over batch, heads and query blocks (block methods only). */
  blocksKept?: number;
  blocksTotal?: number;
}

export interface SparseResult {
  output: tf.Tensor4D;
  stats: SparseStats;
  /** Whether query i of (batch b, head h) scored key j (for recall and mass metrics; causality not included). */
  covers: (b: number, h: number, i: number, j: number) => boolean;
}

/** `covers` for methods that keep key blocks per query block: blocks[(b * heads + h) * nb + qb]. */
export function blockCovers(
  blocks: number[][],
  heads: number,
  queries: number,
  queryBlock: number,
  keyBlock: number,
): SparseResult['covers'] {
  const nb = Math.ceil(queries / queryBlock);
  const sets = blocks.map((bl) => new Set(bl));
  return (b, h, i, j) => sets[(b * heads + h) * nb + Math.floor(i / queryBlock)].has(Math.floor(j / keyBlock));
}

/** Scores dense attention computes for these shapes (causal: each query sees the keys up to its position). */
export function densePairs(s: AttentionShapes, causal: boolean): number {
  if (!causal) return s.batch * s.heads * s.queries * s.keys;
  const off = s.keys - s.queries;
  let per = 0;
  for (let i = 0; i < s.queries; i++) per += Math.min(s.keys, off + i + 1);
  return s.batch * s.heads * per;
}

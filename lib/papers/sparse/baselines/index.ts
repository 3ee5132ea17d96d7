/**
 * The static patterns every sparse method is measured against (baselines, not papers of this family), each returning
 * a `SparseResult` like the methods, with a float64 naive reference beside it:
 *
 *   dense        causal softmax attention over every visible key (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762)
 *   local        sliding window: query i sees keys i - window < j <= i (Beltagy et al. 2020, Longformer,
 *                https://arxiv.org/abs/2004.05150)
 *   sink-window  StreamingLLM's pattern in blocks of B keys (Xiao et al. 2024, https://arxiv.org/abs/2309.17453): the
 *                first `sinkBlocks` blocks (attention sinks) plus the ceil(window / B) + 1 blocks ending at the query
 *                block's last position; query blocks of B queries share the choice (it depends on positions only)
 *
 * Shape legend: b batch, h query heads, g kv heads, n queries, m keys (queries end-aligned), d head dim, e value dim,
 * B block.
 *   q [b, h, n, d], k [b, g, m, d], v [b, g, m, e] -> output [b, h, n, e]
 * With the window covering every key, local and sink-window equal dense attention.
 */
import type * as tf from '@tensorflow/tfjs';
import { checkQkv } from '../../../attention/dense.js';
import { naiveAttention } from '../../../attention/naive.js';
import { sdpa } from '../../../attention/sdpa.js';
import * as masks from '../../../masks/index.js';
import { ShapeError } from '../../../util/shapes.js';
import { blockCovers, densePairs, type SparseResult } from '../cost.js';
import type { SparseCase, SparseMethod } from '../method.js';
import { naiveAttendBlocks, qkvRows } from '../naive.js';
import { checkBlock, checkScale } from '../options.js';
import { attendSelected, blockSelection } from '../selection.js';

const dense = (t: tf.Tensor) => ({ data: t.dataSync(), shape: t.shape });

/** Dense causal attention as a `SparseResult` (every visible pair scored, nothing spent on selection). */
export function denseAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: { scale?: number } = {},
): SparseResult {
  const s = checkQkv('denseAttention', q, k, v);
  const scale = checkScale('denseAttention', options.scale, s.dim);
  const pairs = densePairs(s, true);
  return {
    output: sdpa(q, k, v, { mask: masks.causal(), scale }),
    stats: { method: 'dense', pairs, densePairs: pairs, selectionPairs: 0 },
    covers: () => true,
  };
}

/** Float64 reference of `denseAttention` (lib/attention/naive's loops). */
export function denseAttentionNaive(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: { scale?: number } = {},
): Float64Array {
  const s = checkQkv('denseAttentionNaive', q, k, v);
  return naiveAttention(dense(q), dense(k), dense(v), {
    mask: masks.causal(),
    scale: checkScale('denseAttentionNaive', options.scale, s.dim),
  }).output;
}

export interface LocalOptions {
  /** Keys each query sees, its own included. */
  window: number;
  scale?: number;
}

/** Sliding-window causal attention as a `SparseResult`. */
export function localAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: LocalOptions): SparseResult {
  const fn = 'localAttention';
  const s = checkQkv(fn, q, k, v);
  checkBlock(fn, 'window', options.window);
  const off = s.keys - s.queries;
  let perRow = 0;
  for (let i = 0; i < s.queries; i++) perRow += Math.min(options.window, off + i + 1);
  return {
    output: sdpa(q, k, v, { mask: masks.slidingWindow(options.window), scale: checkScale(fn, options.scale, s.dim) }),
    stats: { method: 'local', pairs: s.batch * s.heads * perRow, densePairs: densePairs(s, true), selectionPairs: 0 },
    covers: (_b, _h, i, j) => j > off + i - options.window,
  };
}

/** Float64 reference of `localAttention`. */
export function localAttentionNaive(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: LocalOptions): Float64Array {
  const fn = 'localAttentionNaive';
  const s = checkQkv(fn, q, k, v);
  checkBlock(fn, 'window', options.window);
  return naiveAttention(dense(q), dense(k), dense(v), {
    mask: masks.slidingWindow(options.window),
    scale: checkScale(fn, options.scale, s.dim),
  }).output;
}

export interface SinkWindowOptions {
  /** Keys of recent context each query keeps at least (rounded up to whole blocks, plus the query's own block). */
  window: number;
  /** Keys per block, the unit of the pattern; queries share it in blocks of the same size (default 16). */
  blockSize?: number;
  /** First blocks always kept (attention sinks; default 1). */
  sinkBlocks?: number;
  scale?: number;
}

function sinkWindowBlocks(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o: SinkWindowOptions) {
  const s = checkQkv(fn, q, k, v);
  checkBlock(fn, 'window', o.window);
  checkBlock(fn, 'blockSize', o.blockSize);
  const sinks = o.sinkBlocks ?? 1;
  if (!(Number.isInteger(sinks) && sinks >= 0))
    throw new ShapeError(`${fn}: options.sinkBlocks must be a non-negative integer, got ${o.sinkBlocks}`);
  const B = o.blockSize ?? 16;
  const nb = Math.ceil(s.queries / B);
  const wBlocks = Math.ceil(o.window / B);
  const off = s.keys - s.queries;
  const blocks: number[][] = [];
  for (let x = 0; x < s.batch * s.heads * nb; x++) {
    const last = Math.floor((off + Math.min(s.queries, ((x % nb) + 1) * B) - 1) / B);
    const kept = new Set<number>();
    for (let c = 0; c < Math.min(sinks, last + 1); c++) kept.add(c);
    for (let c = Math.max(0, last - wBlocks); c <= last; c++) kept.add(c);
    blocks.push([...kept].sort((a, b) => a - b));
  }
  return { s, B, nb, blocks, scale: checkScale(fn, o.scale, s.dim) };
}

/** Static sink + sliding window over key blocks (the StreamingLLM pattern) as a `SparseResult`; see the header. */
export function sinkWindowAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: SinkWindowOptions,
): SparseResult & { blocks: number[][] } {
  const fn = 'sinkWindowAttention';
  const { s, B, blocks, scale } = sinkWindowBlocks(fn, q, k, v, options);
  const { output, pairs } = attendSelected(fn, q, k, v, blockSelection(blocks, B, s.keys, B), { scale, causal: true });
  return {
    output,
    blocks,
    covers: blockCovers(blocks, s.heads, s.queries, B, B),
    stats: { method: 'sink-window', pairs, densePairs: densePairs(s, true), selectionPairs: 0 },
  };
}

/** Float64 reference of `sinkWindowAttention`: the same blocks, exact softmax per query over their visible keys. */
export function sinkWindowAttentionNaive(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: SinkWindowOptions,
): Float64Array {
  const { s, B, nb, blocks, scale } = sinkWindowBlocks('sinkWindowAttentionNaive', q, k, v, options);
  return naiveAttendBlocks(
    s,
    qkvRows(q, k, v),
    (b, h, i) => blocks[(b * s.heads + h) * nb + Math.floor(i / B)],
    B,
    scale,
    true,
  );
}

const dense1: SparseCase<Record<string, never>>['shape'] = [1, 2, 24, 8];

/** Dense causal attention as a `SparseMethod`: the reference every method approximates. */
export const denseMethod: SparseMethod<{ scale?: number }> = {
  name: 'dense',
  kind: 'baseline',
  paper: { citation: 'Vaswani et al. 2017, Attention Is All You Need', url: 'https://arxiv.org/abs/1706.03762' },
  attend: (q, k, v, o) => denseAttention(q, k, v, o),
  reference: (q, k, v, o) => denseAttentionNaive(q, k, v, o),
  supports: () => [],
  budgets: {},
  lm: { kind: 'dense', decodes: true },
  cases: [{ label: 'causal', shape: dense1, kvHeads: 1, exact: {} }],
};

/** Sliding-window attention as a `SparseMethod`: the static local pattern. */
export const localMethod: SparseMethod<LocalOptions> = {
  name: 'local',
  kind: 'baseline',
  paper: {
    citation: 'Beltagy et al. 2020, Longformer: The Long-Document Transformer',
    url: 'https://arxiv.org/abs/2004.05150',
  },
  attend: (q, k, v, o) => localAttention(q, k, v, o),
  reference: (q, k, v, o) => localAttentionNaive(q, k, v, o),
  supports: () => [],
  budgets: {},
  lm: { kind: 'local', decodes: true },
  cases: [{ label: 'window', shape: dense1, kvHeads: 1, exact: { window: 24 }, sparse: { window: 5 } }],
};

/** Sink + window as a `SparseMethod`: StreamingLLM's static pattern, the baseline of sparse-approx. */
export const sinkWindowMethod: SparseMethod<SinkWindowOptions> = {
  name: 'sink-window',
  kind: 'baseline',
  paper: {
    citation: 'Xiao et al. 2024, Efficient Streaming Language Models with Attention Sinks',
    url: 'https://arxiv.org/abs/2309.17453',
  },
  attend: (q, k, v, o) => sinkWindowAttention(q, k, v, o),
  reference: (q, k, v, o) => sinkWindowAttentionNaive(q, k, v, o),
  supports: () => [],
  // One sink block and the query's own block besides the window.
  budgets: { keys: (_n, keys) => ({ window: keys - 16, blockSize: 16 }) },
  cases: [
    {
      label: 'blocks of 4',
      shape: [1, 2, 32, 8],
      kvHeads: 1,
      exact: { window: 32, blockSize: 4 },
      sparse: { window: 6, blockSize: 4 },
    },
    {
      label: 'two sinks',
      shape: [1, 2, 20, 8],
      kvHeads: 1,
      exact: { window: 20, blockSize: 4, sinkBlocks: 2 },
      sparse: { window: 4, blockSize: 4, sinkBlocks: 2 },
    },
  ],
};

/**
 * RazorAttention (Tang et al. 2024, "RazorAttention: Efficient KV Cache Compression Through Retrieval Heads",
 * https://arxiv.org/abs/2407.15891; ICLR 2025; no official code). Training-free and head-wise:
 *
 *  - Retrieval heads are found on repeated random tokens `x1..xL x1..xL`: an echo head attends from the second x_i to
 *    the first x_i, an induction head to the token after it (echo and induction scores = the mean attention on those
 *    positions). The top echo heads (about 1%) and top induction heads (about 15%) keep their full KV cache.
 *  - Every other head keeps the first `sinks` tokens and the `recent` newest, and folds every dropped token into one
 *    compensation token with k̂ = mean(dropped keys), v̂ = mean(dropped values), attended as N_d tokens:
 *
 *      out = (Σ_kept e^{s_i} v_i + N_d e^{q·k̂·c} v̂) / (Σ_kept e^{s_i} + N_d e^{q·k̂·c}),  s_i = q·k_i·c, c = 1/√d
 *
 * Here the compensation token is built by PolicyCache (fold 'count'), and its float64 reference is
 * razorAttentionReference. Ours keeps a fixed sinks + recent buffer (the paper: max(S0, N / C) tokens of an N-token
 * prompt at compression ratio C) and folds at every step instead of once after the prefill.
 *
 * Shape legend: patterns[layer] [b, h, s, s] (query, key); q, k, v in the reference are plain vectors of length d.
 */

import * as tf from '@tensorflow/tfjs';
import { repeatedRandomTokens } from '../../../data/needles.js';
import type { ToyLM } from '../../../layers/toylm.js';
import { BasePolicy, checkCount, type HeadView, type Selection, sinksAndRecent } from '../kv/policy.js';
import { type PatternData, recordPatterns } from '../retrieval-heads/scores.js';

/**
 * Echo and induction scores per [layer][head] from attention patterns on repeated rows `BOS x1..xL x1..xL`
 * (length 2L + 1): the mean over rows and i = 1..L-1 of the weight from position L + i to i (echo) and to i + 1
 * (induction).
 */
export function echoInductionScores(patterns: PatternData[], L: number): { echo: number[][]; induction: number[][] } {
  const fn = 'echoInductionScores';
  if (!Array.isArray(patterns) || patterns.length === 0)
    throw new Error(`${fn}: patterns must be one per layer, got ${patterns?.length}`);
  const [b, heads, s, t] = patterns[0].shape;
  if (s !== 2 * L + 1 || t !== s)
    throw new Error(
      `${fn}: patterns must be [b, h, ${2 * L + 1}, ${2 * L + 1}] for L = ${L}, got [${patterns[0].shape}]`,
    );
  const echo: number[][] = [];
  const induction: number[][] = [];
  for (const { data } of patterns) {
    echo.push([]);
    induction.push([]);
    for (let h = 0; h < heads; h++) {
      let e = 0;
      let ind = 0;
      let n = 0;
      for (let r = 0; r < b; r++)
        for (let i = 1; i < L; i++) {
          const base = ((r * heads + h) * s + (L + i)) * s;
          e += data[base + i];
          ind += data[base + i + 1];
          n++;
        }
      echo[echo.length - 1].push(e / n);
      induction[induction.length - 1].push(ind / n);
    }
  }
  return { echo, induction };
}

/** Echo and induction scores of `model` on `rows` repeated random rows of length L over tokens [lo, hi). */
export function probeEchoInduction(
  model: ToyLM,
  opts: { rows: number; L: number; lo: number; hi: number; seed: number },
): { echo: number[][]; induction: number[][] } {
  const data = repeatedRandomTokens(opts.rows, opts.L, opts.lo, opts.hi, opts.seed);
  const x = tf.tensor2d(data, [opts.rows, 2 * opts.L + 1], 'int32');
  try {
    return echoInductionScores(recordPatterns(model, x).patterns, opts.L);
  } finally {
    x.dispose();
  }
}

/**
 * RazorAttention's head choice: the top `echoHeads` heads by echo score and the top `inductionHeads` by induction score
 * (query heads); a KV head is a retrieval head when any of its query heads is. Returns [layer][kvHead].
 */
export function razorRetrievalHeads(
  scores: { echo: number[][]; induction: number[][] },
  opts: { echoHeads: number; inductionHeads: number; kvHeads?: number },
): boolean[][] {
  const heads = scores.echo[0].length;
  const kv = opts.kvHeads ?? heads;
  const groups = heads / kv;
  const pick = (m: number[][], k: number) =>
    m
      .flatMap((row, l) => row.map((s, h) => [s, l, h] as const))
      .sort((a, b) => b[0] - a[0] || a[1] - b[1] || a[2] - b[2])
      .slice(0, k);
  const out = scores.echo.map(() => new Array<boolean>(kv).fill(false));
  for (const [, l, h] of [...pick(scores.echo, opts.echoHeads), ...pick(scores.induction, opts.inductionHeads)])
    out[l][Math.floor(h / groups)] = true;
  return out;
}

export interface RazorOptions {
  /** [layer][kvHead] true = retrieval head (full cache). */
  retrieval: boolean[][];
  sinks: number;
  recent: number;
  /** 'count' (the paper: weighed as N_d tokens), 'one' (one token), 'none' (no compensation token). Default 'count'. */
  compensation?: 'count' | 'one' | 'none';
}

/** RazorAttention as a KV policy: retrieval heads keep everything, the others sinks + recent + a compensation token. */
export class RazorPolicy extends BasePolicy {
  readonly name: string;
  readonly retrieval: boolean[][];
  readonly sinks: number;
  readonly recent: number;
  readonly compensation: 'count' | 'one' | 'none';

  constructor(opts: RazorOptions) {
    super();
    const fn = 'RazorPolicy';
    if (!Array.isArray(opts?.retrieval) || opts.retrieval.some((r) => !Array.isArray(r)))
      throw new Error(
        `${fn}: opts.retrieval must be a [layer][kvHead] table of booleans, got ${JSON.stringify(opts?.retrieval)}`,
      );
    checkCount(fn, 'opts.sinks', opts.sinks, 0);
    checkCount(fn, 'opts.recent', opts.recent, 1);
    const c = opts.compensation ?? 'count';
    if (c !== 'count' && c !== 'one' && c !== 'none')
      throw new Error(`${fn}: opts.compensation must be 'count', 'one' or 'none', got ${String(opts.compensation)}`);
    this.retrieval = opts.retrieval;
    this.sinks = opts.sinks;
    this.recent = opts.recent;
    this.compensation = c;
    this.name = `razor(${opts.sinks}+${opts.recent}${c === 'none' ? ', no compensation' : c === 'one' ? ', compensation x1' : ''})`;
  }

  select(view: HeadView): Selection | null {
    const r = this.retrieval[view.layer]?.[view.head];
    if (r === undefined)
      throw new Error(`RazorPolicy: opts.retrieval has no entry for layer ${view.layer}, KV head ${view.head}`);
    if (r) return null;
    const keep = sinksAndRecent(view, this.sinks, this.recent);
    if (!keep) return null;
    return this.compensation === 'none' ? { keep } : { keep, fold: this.compensation };
  }
}

/**
 * Float64 reference of one query's attention output over kept tokens plus a compensation token of `dropped`:
 * weighting 'count' uses N_d · e^{q·k̂·c}, 'one' e^{q·k̂·c} (c = scale, default 1/√d).
 */
export function razorAttentionReference(
  q: number[],
  kept: { k: number[]; v: number[] }[],
  dropped: { k: number[]; v: number[] }[],
  weighting: 'count' | 'one',
  scale = 1 / Math.sqrt(q.length),
): number[] {
  const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
  const mean = (xs: number[][]) =>
    Array.from({ length: xs[0].length }, (_, i) => xs.reduce((s, x) => s + x[i], 0) / xs.length);
  const items = kept.map((t) => ({ logit: dot(q, t.k) * scale, w: 1, v: t.v }));
  if (dropped.length) {
    const kh = mean(dropped.map((t) => t.k));
    const vh = mean(dropped.map((t) => t.v));
    items.push({ logit: dot(q, kh) * scale, w: weighting === 'count' ? dropped.length : 1, v: vh });
  }
  const m = Math.max(...items.map((x) => x.logit));
  let z = 0;
  const out = new Array<number>(items[0].v.length).fill(0);
  for (const x of items) {
    const e = x.w * Math.exp(x.logit - m);
    z += e;
    x.v.forEach((vi, i) => (out[i] += e * vi));
  }
  return out.map((o) => o / z);
}

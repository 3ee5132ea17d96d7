/**
 * sparse-scaling: time of each sparse method vs sequence length, in one process, with dense attention as the baseline.
 *
 * Dense baselines: `sdpa` on its composed path (O(n²) memory; skipped above `denseMax`) and, on the wasm-native backend, the
 * fused `flash` kernel (exact, O(n) memory). Each method runs causal self-attention on random q, k, v [1, h, n, d]
 * with a budget that grows slower than n (its paper's setting, scaled down), so its cost should grow like n log n
 * (HiP, HyperAttention), n^1.5 (Routing with √n clusters), or n² / block for the block scorers (Seer, Landmark,
 * LongHeads score every block, a small quadratic term) plus n · budget for the attention itself.
 * Reported: milliseconds (best of `repeats`), the ratio to each baseline, pairs scored, the crossover length (the
 * first measured length from which on the method beats the baseline) and the log-log slope over the last two lengths.
 */
import * as tf from '@tensorflow/tfjs';
import { flashSupports } from '../../../attention/flash.js';
import { sdpa } from '../../../attention/sdpa.js';
import { defineExperiment } from '../../../experiments/contract.js';
import { int, list, obj, oneOf } from '../../../experiments/schema.js';
import * as masks from '../../../masks/index.js';
import { tfSeed } from '../../../util/random.js';
import type { SparseResult } from '../cost.js';
import type { SparseMethod } from '../method.js';
import { methodsWith, sparseMethod } from '../methods.js';

export interface ScalingConfig {
  lengths: number[];
  heads: number;
  dim: number;
  /** Longest length at which composed dense `sdpa` runs (its n² scores stop fitting beyond). */
  denseMax: number;
  repeats: number;
  /** Names from the table (methods.ts) with a timing budget. */
  methods: string[];
}

/** The methods that declare a timing budget (methods.ts), in table order. */
export const SCALING_METHODS = methodsWith('timing');

/** A method ready to time at length n: its timing budget and, for stateful methods, a random state. */
export async function scalingRunner(
  name: string,
  n: number,
  heads: number,
  dim: number,
  seed = 0,
): Promise<{ run: (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => SparseResult; dispose: () => void }> {
  const m: SparseMethod = sparseMethod(name);
  const options = m.budgets.timing!(n, seed);
  const state = m.state ? await m.state.create(options, { heads, dim, seed }) : undefined;
  return { run: (q, k, v) => m.attend(q, k, v, options, state), dispose: () => m.state?.dispose(state) };
}

function timeBest(repeats: number, f: () => tf.Tensor | SparseResult): { ms: number; last: SparseResult | null } {
  let best = Infinity;
  let last: SparseResult | null = null;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const out = f();
    const o = out instanceof tf.Tensor ? out : out.output;
    o.dataSync();
    best = Math.min(best, performance.now() - t0);
    if (!(out instanceof tf.Tensor)) last = out;
    o.dispose();
  }
  return { ms: best, last };
}

async function runOnce(cfg: ScalingConfig, n: number, seed: number): Promise<void> {
  const [q, k, v] = [0, 1, 2].map((i) =>
    tf.randomNormal([1, cfg.heads, n, cfg.dim], 0, 1, 'float32', tfSeed(seed + i)),
  ) as tf.Tensor4D[];
  const mask = masks.causal();
  sdpa(q, k, v, { mask, path: 'dense' }).dispose();
  if (flashSupports(q, k, v, { mask }).length === 0) sdpa(q, k, v, { mask, path: 'flash' }).dispose();
  for (const m of cfg.methods) {
    const r = await scalingRunner(m, n, cfg.heads, cfg.dim, seed);
    r.run(q, k, v).output.dispose();
    r.dispose();
  }
  tf.dispose([q, k, v]);
}

export interface ScalingRow {
  n: number;
  method: string;
  ms: number;
  vs_sdpa: number;
  vs_flash: number;
  pairs: number;
  pair_fraction: number;
  selection_pairs: number;
}

export async function runScaling(cfg: ScalingConfig, seed: number, log: (s: string) => void): Promise<ScalingRow[]> {
  const rows: ScalingRow[] = [];
  const mask = masks.causal();
  // Warm-up at the smallest length so the first timed call pays no kernel setup.
  await runOnce(cfg, Math.min(...cfg.lengths), seed);
  for (const n of cfg.lengths) {
    const [q, k, v] = [0, 1, 2].map((i) =>
      tf.randomNormal([1, cfg.heads, n, cfg.dim], 0, 1, 'float32', tfSeed(seed * 7 + i + n)),
    ) as tf.Tensor4D[];
    const haveFlash = flashSupports(q, k, v, { mask }).length === 0;
    // Composed dense attention (the [n, n] scores materialised) and the fused kernel, each timed on its own path.
    const composed = () => sdpa(q, k, v, { mask, path: 'dense' });
    const dense = n <= cfg.denseMax ? timeBest(cfg.repeats, composed).ms : NaN;
    const fl = haveFlash ? timeBest(cfg.repeats, () => sdpa(q, k, v, { mask, path: 'flash' })).ms : NaN;
    const densePairs = cfg.heads * ((n * (n + 1)) / 2);
    rows.push({
      n,
      method: 'dense-sdpa',
      ms: dense,
      vs_sdpa: 1,
      vs_flash: dense / fl,
      pairs: densePairs,
      pair_fraction: 1,
      selection_pairs: 0,
    });
    if (haveFlash)
      rows.push({
        n,
        method: 'dense-flash',
        ms: fl,
        vs_sdpa: fl / dense,
        vs_flash: 1,
        pairs: densePairs,
        pair_fraction: 1,
        selection_pairs: 0,
      });
    log(`n=${n}: sdpa ${dense.toFixed(1)} ms, flash ${fl.toFixed(1)} ms`);
    for (const m of cfg.methods) {
      const runner = await scalingRunner(m, n, cfg.heads, cfg.dim, seed);
      const { ms, last } = timeBest(cfg.repeats, () => runner.run(q, k, v));
      runner.dispose();
      const st = last!.stats;
      rows.push({
        n,
        method: m,
        ms,
        vs_sdpa: ms / dense,
        vs_flash: ms / fl,
        pairs: st.pairs,
        pair_fraction: st.pairs / st.densePairs,
        selection_pairs: st.selectionPairs,
      });
      log(
        `  ${m}: ${ms.toFixed(1)} ms (x${(ms / dense).toFixed(2)} sdpa, x${(ms / fl).toFixed(2)} flash), pairs ${((100 * st.pairs) / st.densePairs).toFixed(1)}%`,
      );
    }
    tf.dispose([q, k, v]);
  }
  return rows;
}

/** First measured length from which on `method` stays faster than `baseline` (NaN if it is not at the longest). */
export function crossover(rows: ScalingRow[], method: string, baseline: 'dense-sdpa' | 'dense-flash'): number {
  const lengths = [...new Set(rows.map((r) => r.n))].sort((a, b) => a - b);
  let from = NaN;
  for (const n of lengths) {
    const m = rows.find((r) => r.n === n && r.method === method);
    const b = rows.find((r) => r.n === n && r.method === baseline);
    if (!m || !b || !Number.isFinite(b.ms)) continue;
    if (m.ms < b.ms) from = Number.isNaN(from) ? n : from;
    else from = NaN;
  }
  return from;
}

/** log(time ratio) / log(length ratio) over the last two lengths where the method ran. */
export function slope(rows: ScalingRow[], method: string): number {
  const r = rows.filter((x) => x.method === method && Number.isFinite(x.ms)).sort((a, b) => a.n - b.n);
  if (r.length < 2) return NaN;
  const [a, b] = r.slice(-2);
  return Math.log(b.ms / a.ms) / Math.log(b.n / a.n);
}

export const sparseScalingSchema = obj<ScalingConfig>({
  lengths: list(int({ min: 16 }), { min: 1 }),
  heads: int({ min: 1 }),
  dim: int({ min: 1 }),
  denseMax: int({ min: 0 }),
  repeats: int({ min: 1 }),
  methods: list(oneOf(...SCALING_METHODS), { unique: true }),
});

export const sparseScaling = defineExperiment<ScalingConfig>({
  schema: sparseScalingSchema,
  name: 'sparse-scaling',
  paper:
    'Routing (arXiv:2003.05997), HiP (arXiv:2406.09827), HyperAttention (arXiv:2310.05869), SeerAttention (arXiv:2410.13276), Landmark (arXiv:2305.16300), LongHeads (arXiv:2402.10685)',
  description:
    'Time of each sparse attention method vs sequence length, against dense sdpa and fused flash attention measured in the same run; crossover lengths and log-log slopes.',
  quick: { lengths: [256, 512, 1024], heads: 1, dim: 64, denseMax: 4096, repeats: 1, methods: SCALING_METHODS },
  full: {
    lengths: [1024, 2048, 4096, 8192, 16384],
    heads: 1,
    dim: 64,
    denseMax: 8192,
    repeats: 3,
    methods: SCALING_METHODS,
  },
  async run(cfg, ctx) {
    const rows = await runScaling(cfg, ctx.seed, ctx.log);
    const metrics: Record<string, number> = {};
    const f = (x: number) => (Number.isFinite(x) ? +x.toFixed(3) : NaN);
    for (const r of rows) metrics[`seconds_${r.method}_${r.n}`] = r.ms / 1000;
    const lines: string[] = [];
    for (const m of cfg.methods) {
      const cs = crossover(rows, m, 'dense-sdpa');
      const cf = crossover(rows, m, 'dense-flash');
      metrics[`test_crossover_vs_sdpa_${m}`] = cs;
      metrics[`test_crossover_vs_flash_${m}`] = cf;
      metrics[`test_slope_${m}`] = f(slope(rows, m));
      lines.push(
        `${m}: beats sdpa from n=${Number.isFinite(cs) ? cs : 'never (in range)'}, flash from n=${Number.isFinite(cf) ? cf : 'never (in range)'}, slope ${f(slope(rows, m))}`,
      );
    }
    metrics.test_slope_dense_sdpa = f(slope(rows, 'dense-sdpa'));
    metrics.test_slope_dense_flash = f(slope(rows, 'dense-flash'));
    lines.forEach((l) => ctx.log(l));
    return {
      metrics,
      tables: {
        scaling: rows.map((r) => ({
          ...r,
          ms: f(r.ms),
          vs_sdpa: f(r.vs_sdpa),
          vs_flash: f(r.vs_flash),
          pair_fraction: f(r.pair_fraction),
        })),
      },
      summary: `Crossover lengths and log-log slopes (dense sdpa slope ${f(slope(rows, 'dense-sdpa'))}, flash ${f(slope(rows, 'dense-flash'))}): ${lines.join('; ')}.`,
    };
  },
});

/**
 * sparse-approx: how well each content-based sparse method approximates dense attention, and at what cost.
 *
 * Inputs, per sequence length n:
 *   planted  random q, k, v [1, h, n, d] where every query from position 64 on also carries a copy of one key at least
 *            64 positions back (a planted heavy entry, score ≈ `plantedScore`), so a method must find far, content-
 *            matched keys that a local window misses;
 *   lm       the last layer's q, k, v of a small dense char LM (SparseLM, RoPE) trained on Moby-Dick, run on a
 *            test-split window of n characters.
 * Methods at a budget of about `budget` keys per query: sink + window (StreamingLLM's static pattern, the baseline),
 * Routing (k-means on the data's own q̂, k̂), HiP, HyperAttention, SeerAttention and its oracle (true top blocks),
 * LongHeads. Landmark attention needs landmark tokens trained into the model and is measured in passkey-long instead.
 *
 * Seer is scored out of sample: its gate is distilled on training inputs (planted: a draw from its own seeds; lm: the
 * LM's q, k on a training-split window) at the shortest length, then applied unchanged to the test inputs at every
 * length. The gate pools queries over the same query block in training and at application (16 = its key block, as
 * SeerAttention's prefill gate pools q and k over one block size, 64 in the paper). Nothing here is tuned: every
 * method runs at its budget from methods.ts, so there is no validation split.
 *
 * How ours differs from the papers: random planted q, k, v and a 2-layer char LM (d 64) at 512-8192 tokens instead of
 * 7B-70B LLMs on long-document benchmarks; one budget of keys per query for every method instead of each paper's own
 * sparsity sweeps; Seer's gate distilled for a few hundred steps on one training sample, not on a pretraining corpus.
 * Metrics (lib/papers/sparse/metrics.ts): relative output error vs dense, recall of each query's top-k dense keys, dense
 * attention mass on the scored keys (on `rows` sampled queries), the share of dense pairs scored, and the share
 * including selection work.
 */
import * as tf from '@tensorflow/tfjs';
import { textDataset } from '../../../data/corpus.js';
import { plantedQkv } from '../../../data/planted.js';
import { defineExperiment } from '../../../experiments/contract.js';
import { int, list, num, obj, oneOf } from '../../../experiments/schema.js';
import { train } from '../../../train/loop.js';
import type { SparseResult } from '../cost.js';
import type { SparseMethod } from '../method.js';
import { methodsWith, sparseMethod } from '../methods.js';
import { coverage, relativeError } from '../metrics.js';
import { denseCausal, SparseLM } from '../model.js';

/** The methods that declare a budget in keys per query (methods.ts), in table order. */
export const APPROX_METHODS = methodsWith('keys');

export interface ApproxConfig {
  lengths: number[];
  sources: ('planted' | 'lm')[];
  /** Names from the table (methods.ts) with a keys budget. */
  methods: string[];
  /** Keys per query the budgets aim at. */
  budget: number;
  topk: number;
  rows: number;
  planted: { heads: number; dim: number; plantedScore: number };
  lm: { dModel: number; heads: number; layers: number; seqLen: number; batch: number; steps: number; lr: number };
  /** Training of the methods whose state is learned on a sample (Seer's gate: its width `gateDim`). */
  seer: { steps: number; gateDim: number; lr: number };
}

/** Dense causal weights of `rows` query positions (float64 loops): [b*h*rows, n]. */
function denseRows(q: tf.Tensor, k: tf.Tensor, rows: number[]): Float64Array {
  const [B, H, N, D] = q.shape as number[];
  const qd = q.dataSync();
  const kd = k.dataSync();
  const out = new Float64Array(B * H * rows.length * N);
  const scale = 1 / Math.sqrt(D);
  for (let bh = 0; bh < B * H; bh++) {
    rows.forEach((i, r) => {
      const base = (bh * rows.length + r) * N;
      let mx = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += qd[(bh * N + i) * D + d] * kd[(bh * N + j) * D + d];
        out[base + j] = dot * scale;
        mx = Math.max(mx, out[base + j]);
      }
      let z = 0;
      for (let j = 0; j <= i; j++) z += Math.exp(out[base + j] - mx);
      for (let j = 0; j <= i; j++) out[base + j] = Math.exp(out[base + j] - mx) / z;
    });
  }
  return out;
}

export interface Source {
  name: 'planted' | 'lm';
  /** q, k, v at length n: 'test' inputs are scored; 'train' inputs only fit learned states (Seer's gate). */
  make: (n: number, split: 'train' | 'test') => [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  dispose: () => void;
}

/** Planted training draws take seeds this far from the test draws' (seed·31 + n), so the two never coincide. */
const PLANTED_TRAIN_SEED = 1_000_003;

/** Planted q, k, v (lib/data/planted.ts): test inputs seeded seed·31 + n, training inputs far from those seeds. */
export function plantedSource(cfg: Pick<ApproxConfig, 'planted'>, seed: number): Source {
  return {
    name: 'planted',
    make: (n, split) =>
      plantedQkv(
        n,
        cfg.planted.heads,
        cfg.planted.dim,
        cfg.planted.plantedScore,
        seed * 31 + n + (split === 'train' ? PLANTED_TRAIN_SEED : 0),
      ),
    dispose: () => undefined,
  };
}

async function lmSource(cfg: ApproxConfig, seed: number, log: (s: string) => void): Promise<Source> {
  const trainSet = textDataset({ tokenizer: 'char', split: 'train' });
  const testSet = textDataset({ tokenizer: 'char', split: 'test' });
  const c = cfg.lm;
  const model = new SparseLM({
    vocab: trainSet.tokenizer.vocabSize,
    dModel: c.dModel,
    heads: c.heads,
    layers: c.layers,
    attention: 'dense',
    seed,
  });
  log(`lm source: training a dense ${c.layers}-layer char LM for ${c.steps} steps`);
  await train({
    variables: model.variables(),
    steps: c.steps,
    optimizer: { type: 'adamw', lr: c.lr, weightDecay: 0.01 },
    schedule: { type: 'cosine', warmup: Math.round(c.steps * 0.05) },
    clipNorm: 1,
    seed,
    progress: false,
    dataframe: false,
    loss: (step) => {
      const b = trainSet.sample({ batch: c.batch, seqLen: c.seqLen, seed, step }).toTensors();
      try {
        return model.loss(b.inputs, b.targets, b.lossMask);
      } finally {
        tf.dispose([b.inputs, b.targets, b.lossMask]);
      }
    },
  });
  const last = c.layers - 1;
  return {
    name: 'lm',
    make: (n, split) => {
      const ids = split === 'test' ? testSet.ids : trainSet.ids;
      const start = Math.min(ids.length - n - 1, 1000);
      const tokens = tf.tensor2d(ids.slice(start, start + n), [1, n], 'int32');
      const { logits, cache } = model.runWithCache(tokens, new RegExp(`^blocks\\.${last}\\.attn\\.hook_[qkv]$`));
      tf.dispose([logits, tokens]);
      // The caller disposes q, k, v: they leave the cache, which keeps nothing else.
      return ['q', 'k', 'v'].map((x) => cache.get(`blocks.${last}.attn.hook_${x}`)) as [
        tf.Tensor4D,
        tf.Tensor4D,
        tf.Tensor4D,
      ];
    },
    dispose: () => model.dispose(),
  };
}

export interface ApproxRow {
  source: string;
  /** 'test': the inputs every method is scored on; 'train': a fitted state on its own training inputs (in sample). */
  split: 'train' | 'test';
  n: number;
  method: string;
  rel_error: number;
  topk_recall: number;
  mass: number;
  pair_fraction: number;
  cost_fraction: number;
  ms: number;
}

/**
 * The states trained once per source (`state.fitTo: 'sample'`, Seer's gate): each distilled on the source's training
 * q, k at the shortest length (never on the test inputs it is scored on), then reused at every length.
 */
async function sampleStates(
  src: Source,
  methods: SparseMethod[],
  cfg: ApproxConfig,
  seed: number,
): Promise<Map<string, unknown>> {
  const states = new Map<string, unknown>();
  for (const m of methods) {
    if (m.state?.fitTo !== 'sample') continue;
    const n0 = cfg.lengths[0];
    const [q, k, v] = src.make(n0, 'train');
    const training = { steps: cfg.seer.steps, lr: cfg.seer.lr, width: cfg.seer.gateDim };
    states.set(
      m.name,
      await m.state.create(m.budgets.keys!(n0, cfg.budget, seed), {
        heads: q.shape[1],
        dim: q.shape[3],
        seed,
        data: { q, k },
        training,
      }),
    );
    tf.dispose([q, k, v]);
  }
  return states;
}

/** One method at its keys budget; a state fitted to the input (`fitTo: 'input'`, Routing's k-means) is built here. */
async function runMethod(
  m: SparseMethod,
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  cfg: ApproxConfig,
  trained: Map<string, unknown>,
  seed: number,
): Promise<SparseResult> {
  const options = m.budgets.keys!(q.shape[2], cfg.budget, seed);
  if (!m.state || trained.has(m.name)) return m.attend(q, k, v, options, trained.get(m.name));
  const state = await m.state.create(options, { heads: q.shape[1], dim: q.shape[3], seed, data: { q, k } });
  try {
    return m.attend(q, k, v, options, state);
  } finally {
    m.state.dispose(state);
  }
}

export async function runApprox(cfg: ApproxConfig, seed: number, log: (s: string) => void): Promise<ApproxRow[]> {
  const rows: ApproxRow[] = [];
  for (const name of cfg.sources) {
    const src: Source = name === 'planted' ? plantedSource(cfg, seed) : await lmSource(cfg, seed, log);
    const methods = cfg.methods.map(sparseMethod);
    const trained = await sampleStates(src, methods, cfg, seed);
    // The fitted methods on the inputs they were fitted on too (in sample, beside the test rows, for contrast).
    const fitted = methods.filter((m) => trained.has(m.name));
    const passes: { n: number; split: 'train' | 'test'; methods: SparseMethod[] }[] = [
      ...(fitted.length ? [{ n: cfg.lengths[0], split: 'train' as const, methods: fitted }] : []),
      ...cfg.lengths.map((n) => ({ n, split: 'test' as const, methods })),
    ];
    for (const { n, split, methods } of passes) {
      const [q, k, v] = src.make(n, split);
      const dense = denseCausal(q, k, v);
      const sample = Array.from({ length: cfg.rows }, (_, r) => Math.floor(n / 2 + ((r + 0.5) * (n / 2)) / cfg.rows));
      const w = denseRows(q, k, sample);
      const H = q.shape[1];
      for (const m of methods) {
        const t0 = performance.now();
        const r = await runMethod(m, q, k, v, cfg, trained, seed);
        r.output.dataSync();
        const ms = performance.now() - t0;
        const cov = coverage(
          w,
          n,
          (row, j) => {
            const h = Math.floor(row / sample.length);
            return j <= sample[row % sample.length] && r.covers(0, h % H, sample[row % sample.length], j);
          },
          cfg.topk,
        );
        rows.push({
          source: name,
          split,
          n,
          method: m.name,
          rel_error: relativeError(r.output, dense),
          topk_recall: cov.topkRecall,
          mass: cov.massCaptured,
          pair_fraction: r.stats.pairs / r.stats.densePairs,
          cost_fraction: (r.stats.pairs + r.stats.selectionPairs) / r.stats.densePairs,
          ms,
        });
        const x = rows[rows.length - 1];
        log(
          `${name}${split === 'train' ? ' (training inputs)' : ''} n=${n} ${m.name}: error ${x.rel_error.toFixed(3)}, recall@${cfg.topk} ${x.topk_recall.toFixed(3)}, mass ${x.mass.toFixed(3)}, pairs ${(100 * x.pair_fraction).toFixed(1)}% (+selection ${(100 * x.cost_fraction).toFixed(1)}%), ${ms.toFixed(0)} ms`,
        );
        r.output.dispose();
      }
      tf.dispose([q, k, v, dense]);
    }
    for (const m of methods) if (trained.has(m.name)) m.state!.dispose(trained.get(m.name));
    src.dispose();
  }
  return rows;
}

export const sparseApproxSchema = obj<ApproxConfig>({
  lengths: list(int({ min: 16 }), { min: 1 }),
  sources: list(oneOf('planted', 'lm'), { min: 1, unique: true }),
  methods: list(oneOf(...APPROX_METHODS), { min: 1, unique: true }),
  budget: int({ min: 1 }),
  topk: int({ min: 1 }),
  rows: int({ min: 1 }),
  planted: obj({ heads: int({ min: 1 }), dim: int({ min: 1 }), plantedScore: num({ gt: 0 }) }),
  lm: obj({
    dModel: int({ min: 1 }),
    heads: int({ min: 1 }),
    layers: int({ min: 1 }),
    seqLen: int({ min: 2 }),
    batch: int({ min: 1 }),
    steps: int({ min: 1 }),
    lr: num({ gt: 0 }),
  }),
  seer: obj({ steps: int({ min: 1 }), gateDim: int({ min: 1 }), lr: num({ gt: 0 }) }),
});

export const sparseApprox = defineExperiment<ApproxConfig>({
  schema: sparseApproxSchema,
  name: 'sparse-approx',
  paper:
    'Routing (arXiv:2003.05997), HiP (arXiv:2406.09827), HyperAttention (arXiv:2310.05869), SeerAttention (arXiv:2410.13276), LongHeads (arXiv:2402.10685)',
  description:
    'Relative output error, top-k recall and attention mass vs pairs computed for each sparse method against dense attention, on planted heavy entries and on a trained char LM, at growing lengths.',
  quick: {
    lengths: [512, 1024],
    sources: ['planted', 'lm'],
    methods: APPROX_METHODS,
    budget: 128,
    topk: 16,
    rows: 32,
    planted: { heads: 2, dim: 32, plantedScore: 10 },
    lm: { dModel: 64, heads: 4, layers: 2, seqLen: 128, batch: 8, steps: 60, lr: 3e-3 },
    seer: { steps: 40, gateDim: 16, lr: 1e-2 },
  },
  full: {
    lengths: [512, 1024, 2048, 4096, 8192],
    sources: ['planted', 'lm'],
    methods: APPROX_METHODS,
    budget: 256,
    topk: 16,
    rows: 64,
    planted: { heads: 2, dim: 32, plantedScore: 10 },
    lm: { dModel: 64, heads: 4, layers: 2, seqLen: 256, batch: 16, steps: 400, lr: 2e-3 },
    seer: { steps: 150, gateDim: 16, lr: 1e-2 },
  },
  async run(cfg, ctx) {
    const all = await runApprox(cfg, ctx.seed, ctx.log);
    const rows = all.filter((r) => r.split === 'test');
    const metrics: Record<string, number> = {};
    for (const r of all) {
      const key = `${r.source}_${r.method}_${r.n}`;
      metrics[`${r.split}_rel_error_${key}`] = r.rel_error;
      metrics[`${r.split}_topk_recall_${key}`] = r.topk_recall;
      metrics[`${r.split}_mass_${key}`] = r.mass;
      if (r.split === 'test') {
        metrics[`test_pair_fraction_${key}`] = r.pair_fraction;
        metrics[`seconds_${key}`] = r.ms / 1000;
      }
    }
    const nMax = Math.max(...cfg.lengths);
    const f = (x: number) => +x.toFixed(4);
    const at = rows.filter((r) => r.n === nMax);
    return {
      metrics,
      tables: {
        // The fitted states (Seer's gate) on their own training inputs and on the test inputs, at the fitting length.
        fit: all
          .filter((r) => r.n === cfg.lengths[0] && all.some((x) => x.split === 'train' && x.method === r.method))
          .map((r) => ({
            source: r.source,
            method: r.method,
            n: r.n,
            split: r.split,
            rel_error: f(r.rel_error),
            topk_recall: f(r.topk_recall),
            mass: f(r.mass),
          })),
        frontier: rows.map((r) => ({
          ...r,
          rel_error: f(r.rel_error),
          topk_recall: f(r.topk_recall),
          mass: f(r.mass),
          pair_fraction: f(r.pair_fraction),
          cost_fraction: f(r.cost_fraction),
          ms: f(r.ms),
        })),
      },
      summary: `At n=${nMax}: ${at.map((r) => `${r.source}/${r.method} error ${r.rel_error.toFixed(3)}, recall ${r.topk_recall.toFixed(2)} at ${(100 * r.pair_fraction).toFixed(1)}% of pairs`).join('; ')}.`,
    };
  },
});

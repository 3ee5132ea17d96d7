/**
 * The `brain-encoder` experiment: simulate the visual system with each category-response variant (simulate/voxels.ts:
 * attention pooling, max pooling, a multiplicative conjunction of two categories, a location-bound pRF), fit every
 * model on the training split, and score held-out test stimuli against the repeat-averaged responses. The variants
 * share scenes, features, early voxels, weights and noise, so each comparison is paired.
 *
 * Models: the transformer brain encoder with the official decoder layer ('transformer'), its bare cross-attention
 * simplification ('cross-only'), ridge on the flattened map (λ per voxel on the validation split), the factorised
 * spatial x feature readout, and the model given the true routing ('oracle'; only where the response is a linear
 * readout of one routed vector: the 'attention' and 'prf' variants).
 *
 * Choices on validation: ridge's λ per voxel; the baseline the transformer is compared with on each simulator is the
 * non-transformer model (ridge or factorised) with the best validation r on category regions. Intervals: 95%
 * percentile bootstrap over test images (paired across models; the noise ceiling held fixed).
 *
 * How ours differs from the paper (Adeli, Sun, Kriegeskorte 2025): synthetic 32x32 scenes and a frozen random
 * two-layer conv map (8x8x32) instead of NSD images and DINOv2 ViT-B/14 patch tokens; simulated voxels with a known
 * routing instead of fMRI; one decoder layer as theirs but d 64, 4 heads, FFN 85 (theirs: 768, 16, 1024), no dropout,
 * AdamW with a cosine schedule and clip 5 (theirs: lr 5e-4, step decay, clip 0.1); eight region queries (theirs: ROI
 * or parcel queries per hemisphere). The 'attention' simulator is built in the model's own functional form; the other
 * variants are not, and are where the comparison tests something.
 *
 * Metrics, per simulator s: `test_{s}_{region}_{model}_r` (mean Pearson r over the region's voxels),
 * `test_{s}_{region}_{model}_frac_ceiling`, `test_{s}_{region}_ceiling`, group means
 * `test_{s}_{early|category}_{model}_frac_ceiling` with `_ci95`, `validation_{s}_{early|category}_{model}_r`,
 * `test_{s}_category_transformer_minus_baseline` (+ `_ci95`; the baseline named in the `advantage` table),
 * `test_{s}_category_transformer_minus_cross_only` (+ `_ci95`), routing scores of the transformer's attention vs the
 * true routing (`test_{s}_early_routing`, and on 'attention' also `test_attention_category_routing`), `params_{model}`,
 * `seconds_{s}_{model}` (ridge: one `seconds_ridge`, a single fit for every simulator). Artifacts: per simulator, the simulation and every fitted model (`FittedEncoders`).
 */
import * as tf from '@tensorflow/tfjs';
import type { ExperimentContext, ExperimentOutput } from '../../../../experiments/contract.js';
import type { ProgressMode } from '../../../../train/progress.js';
import { Rng } from '../../../../util/random.js';
import { disposeSimulation, type Simulation, type SimulationConfig, simulateVariants } from '../simulate/dataset.js';
import { DEFAULT_SCENES } from '../simulate/scenes.js';
import { type CategoryResponse, trueRoutedFeatures } from '../simulate/voxels.js';
import { type Mat, mat, mean, pearsonColumns, selectCols } from '../stats.js';
import { createFactorisedReadout } from './factorised.js';
import { type EncodingModel, fitEncoding, predictAll } from './model.js';
import { fitOracle, predictOracle } from './oracle.js';
import { fitRidge, type RidgeFit, ridgeModel } from './ridge.js';
import { regionAttention, routingScores } from './routing.js';
import { createTransformerEncoder, type TransformerEncoder } from './transformer.js';

export type EncoderModelName = 'oracle' | 'ridge' | 'factorised' | 'cross-only' | 'transformer';
export const ENCODER_MODELS: readonly EncoderModelName[] = [
  'oracle',
  'ridge',
  'factorised',
  'cross-only',
  'transformer',
];

export interface BrainEncoderConfig {
  imageSize: number;
  grid: number;
  channels: number;
  voxelsPerRegion: number;
  snr: number;
  tau: number;
  train: number;
  validation: number;
  test: number;
  repeats: number;
  /** Category-response variants to simulate; the first is the headline. */
  simulators: CategoryResponse[];
  models: EncoderModelName[];
  dModel: number;
  heads: number;
  /** FFN width of the official decoder layer. */
  ffn: number;
  steps: number;
  batch: number;
  lr: number;
  weightDecay: number;
  /** L1 weight on the factorised readout's spatial masks. */
  l1: number;
  ridgeScales: number[];
  /** Bootstrap resamples of the test images for the intervals. */
  bootstrap: number;
}

/** The simulation part of a config. */
export type SimulationFields = Pick<
  BrainEncoderConfig,
  'imageSize' | 'grid' | 'channels' | 'voxelsPerRegion' | 'snr' | 'tau' | 'train' | 'validation' | 'test' | 'repeats'
>;

export function simulationConfig(cfg: SimulationFields): SimulationConfig {
  return {
    scenes: { ...DEFAULT_SCENES, size: cfg.imageSize },
    features: { imageSize: cfg.imageSize, grid: cfg.grid, hidden: 24, channels: cfg.channels },
    voxelsPerRegion: cfg.voxelsPerRegion,
    snr: cfg.snr,
    tau: cfg.tau,
    selectivity: 2,
    prfScatter: 0.6,
    train: cfg.train,
    validation: cfg.validation,
    test: cfg.test,
    repeats: cfg.repeats,
  };
}

/** One simulator's fitted models. */
export interface FittedEncoders {
  sim: Simulation;
  /** Test and validation predictions [n, V] per model. */
  predictions: Partial<Record<EncoderModelName, Mat>>;
  validationPredictions: Partial<Record<EncoderModelName, Mat>>;
  params: Partial<Record<EncoderModelName, number>>;
  seconds: Partial<Record<EncoderModelName, number>>;
  /** The official-layer encoder and the cross-only one. */
  transformer?: TransformerEncoder;
  crossOnly?: TransformerEncoder;
  ridge?: RidgeFit;
  /** Other trained models, kept for the notebook (the factorised readout). */
  models: EncodingModel[];
  losses: Partial<Record<EncoderModelName, number[]>>;
}

/** Whether the true-routing oracle exists for a simulator (its response is a linear readout of one routed vector). */
export const hasOracle = (s: CategoryResponse): boolean => s === 'attention' || s === 'prf';

/** Ridge predictions of one simulator from a fit shared by all of them (see fitSharedRidge). */
export interface RidgePredictions {
  test: Mat;
  validation: Mat;
  params: number;
  fit: RidgeFit;
}

/**
 * Ridge for every simulator in one closed-form fit. Ridge is separate per voxel (its own λ, chosen on validation), so
 * fitting the columns of all simulators together gives each simulator exactly its own fit, while the Gram matrix and
 * its Cholesky factor per λ are computed once. Columns identical to the first simulator's (the early voxels, which
 * the variants share) are fitted once. The simulations must share their features (simulateVariants).
 */
export function fitSharedRidge(sims: readonly Simulation[], scales: readonly number[]): RidgePredictions[] {
  const first = sims[0];
  const V = first.system.voxelCount;
  const same = (a: Mat, b: Mat, v: number) => {
    for (let i = 0; i < a.rows; i++) if (a.data[i * V + v] !== b.data[i * V + v]) return false;
    return true;
  };
  const sources: { sim: number; col: number }[] = [];
  const colMaps = sims.map((sim, k) =>
    Array.from({ length: V }, (_, v) => {
      if (sim.train.features !== first.train.features)
        throw new Error('fitSharedRidge: the simulations must share their features (use simulateVariants)');
      const shared =
        k > 0 &&
        (['train', 'validation', 'test'] as const).every((sp) => same(sim[sp].responses, first[sp].responses, v));
      if (shared) return v;
      sources.push({ sim: k, col: v });
      return sources.length - 1;
    }),
  );
  const gather = (split: 'train' | 'validation') => {
    const out = mat(first[split].responses.rows, sources.length);
    sources.forEach(({ sim, col }, j) => {
      const m = sims[sim][split].responses;
      for (let i = 0; i < m.rows; i++) out.data[i * sources.length + j] = m.data[i * V + col];
    });
    return out;
  };
  const fit = fitRidge(first.train.features, gather('train'), first.validation.features, gather('validation'), {
    scales,
  });
  const model = ridgeModel(fit);
  const test = predictAll(model, first.test.features);
  const validation = predictAll(model, first.validation.features);
  model.dispose();
  return colMaps.map((cols) => ({
    test: selectCols(test, cols),
    validation: selectCols(validation, cols),
    params: (fit.features + 1) * V,
    fit,
  }));
}

/**
 * Fit every model in the config on one simulation (ridge from `ridge` when given, e.g. fitSharedRidge's); the caller
 * disposes with disposeEncoders.
 */
export async function fitEncoders(
  cfg: BrainEncoderConfig,
  sim: Simulation,
  seed: number,
  opts: { progress?: ProgressMode; log?: (s: string) => void; ridge?: RidgePredictions } = {},
): Promise<FittedEncoders> {
  const log = opts.log ?? (() => undefined);
  const response = sim.config.categoryResponse ?? 'attention';
  const out: FittedEncoders = {
    sim,
    predictions: {},
    validationPredictions: {},
    params: {},
    seconds: {},
    models: [],
    losses: {},
  };
  const V = sim.system.voxelCount;
  const fit = { steps: cfg.steps, batch: cfg.batch, lr: cfg.lr, weightDecay: cfg.weightDecay };
  const regions = sim.system.regions.map((r) => ({ name: r.name, voxels: r.voxels }));
  for (const name of cfg.models) {
    if (name === 'oracle' && !hasOracle(response)) continue;
    const t0 = performance.now();
    log(`brain-encoder (${response}): fitting ${name}`);
    if (name === 'oracle') {
      const routed = (s: typeof sim.train) => trueRoutedFeatures(sim.system, s.features, s.coverage);
      const [tr, va, te] = [routed(sim.train), routed(sim.validation), routed(sim.test)];
      const o = fitOracle(tr, sim.train.responses);
      out.predictions.oracle = predictOracle(o, te);
      out.validationPredictions.oracle = predictOracle(o, va);
      out.params.oracle = (cfg.channels + 1) * V;
      tf.dispose([tr, va, te]);
    } else if (name === 'ridge' && opts.ridge) {
      out.ridge = opts.ridge.fit;
      out.predictions.ridge = opts.ridge.test;
      out.validationPredictions.ridge = opts.ridge.validation;
      out.params.ridge = opts.ridge.params;
    } else if (name === 'ridge') {
      out.ridge = fitRidge(sim.train.features, sim.train.responses, sim.validation.features, sim.validation.responses, {
        scales: cfg.ridgeScales,
      });
      const m = ridgeModel(out.ridge);
      out.predictions.ridge = predictAll(m, sim.test.features);
      out.validationPredictions.ridge = predictAll(m, sim.validation.features);
      out.params.ridge = m.paramCount;
      m.dispose();
    } else {
      const model =
        name === 'factorised'
          ? createFactorisedReadout({ grid: cfg.grid, channels: cfg.channels, l1: cfg.l1 }, V, seed)
          : createTransformerEncoder(
              {
                grid: cfg.grid,
                channels: cfg.channels,
                dModel: cfg.dModel,
                heads: cfg.heads,
                ffn: cfg.ffn,
                layer: name === 'transformer' ? 'official' : 'cross-only',
              },
              regions,
              V,
              seed,
            );
      const records = await fitEncoding(model, sim.train.features, sim.train.responses, fit, {
        seed,
        progress: opts.progress,
      });
      out.losses[name] = records.map((r) => r.loss);
      out.predictions[name] = predictAll(model, sim.test.features);
      out.validationPredictions[name] = predictAll(model, sim.validation.features);
      out.params[name] = model.paramCount;
      if (name === 'transformer') out.transformer = model as TransformerEncoder;
      else if (name === 'cross-only') out.crossOnly = model as TransformerEncoder;
      else out.models.push(model);
    }
    if (!(name === 'ridge' && opts.ridge)) out.seconds[name] = (performance.now() - t0) / 1000;
  }
  return out;
}

/** The experiment's artifacts (for the notebook): per simulator, the simulation and its fitted models. */
export interface BrainEncoderArtifacts {
  /** The simulators in config order (the first is the headline). */
  simulators: CategoryResponse[];
  bySimulator: Partial<Record<CategoryResponse, FittedEncoders>>;
  dispose(): void;
}

export function disposeEncoders(f: FittedEncoders): void {
  f.transformer?.dispose();
  f.crossOnly?.dispose();
  for (const m of f.models) m.dispose();
  disposeSimulation(f.sim);
}

export type EncoderRow = Record<string, string | number>;

/** Metric-name form of a model name ('cross-only' -> 'cross_only'). */
export const metricName = (m: string): string => m.replace(/-/g, '_');

/** Mean over regions of a kind of (mean r over the region's voxels) / (mean ceiling of the region). */
function groupFrac(
  r: ArrayLike<number>,
  sim: Simulation,
  kind: 'early' | 'category',
  ceilings: readonly number[],
): number {
  const fr: number[] = [];
  sim.system.regions.forEach((reg, ri) => {
    if (reg.kind === kind) fr.push(mean(reg.voxels.map((v) => r[v])) / ceilings[ri]);
  });
  return mean(fr);
}

/** Per voxel Pearson r of prediction vs response columns over the test rows, each row weighted by `w`. */
function weightedPearson(pred: Mat, y: Mat, w: Float64Array): Float64Array {
  const { rows: n, cols: V } = y;
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    let [sw, sx, sy, sxx, syy, sxy] = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < n; i++) {
      const wi = w[i];
      if (wi === 0) continue;
      const x = pred.data[i * V + v];
      const t = y.data[i * V + v];
      sw += wi;
      sx += wi * x;
      sy += wi * t;
      sxx += wi * x * x;
      syy += wi * t * t;
      sxy += wi * x * t;
    }
    const cov = sxy - (sx * sy) / sw;
    const vx = sxx - (sx * sx) / sw;
    const vy = syy - (sy * sy) / sw;
    out[v] = vx > 0 && vy > 0 ? cov / Math.sqrt(vx * vy) : 0;
  }
  return out;
}

/** Half-width of the 95% percentile interval of bootstrap draws. */
function percentileHalfWidth(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))];
  return (q(0.975) - q(0.025)) / 2;
}

/**
 * Scores of one simulator: per region and model r, the ceiling and the fraction; group fractions with bootstrap
 * intervals; the transformer's paired advantage over the validation-chosen baseline and over cross-only; routing.
 */
export function scoreEncoders(
  f: FittedEncoders,
  opts: { bootstrap: number; seed: number },
): { metrics: Record<string, number>; rows: EncoderRow[]; advantage: EncoderRow } {
  const { sim } = f;
  const s = sim.config.categoryResponse ?? 'attention';
  const metrics: Record<string, number> = {};
  const rows: EncoderRow[] = [];
  const r4 = (x: number) => +x.toFixed(4);
  const models = Object.keys(f.predictions) as EncoderModelName[];
  const byModel = Object.fromEntries(models.map((k) => [k, pearsonColumns(f.predictions[k]!, sim.test.responses)]));
  const ceilings = sim.system.regions.map((reg) => mean(reg.voxels.map((v) => sim.ceiling[v])));
  sim.system.regions.forEach((reg, ri) => {
    const key = `test_${s}_${reg.name.toLowerCase()}`;
    metrics[`${key}_ceiling`] = ceilings[ri];
    const row: EncoderRow = { simulator: s, region: reg.name, kind: reg.kind, ceiling: r4(ceilings[ri]) };
    for (const model of models) {
      const rm = mean(reg.voxels.map((v) => byModel[model][v]));
      metrics[`${key}_${metricName(model)}_r`] = rm;
      metrics[`${key}_${metricName(model)}_frac_ceiling`] = rm / ceilings[ri];
      row[`${model}_frac`] = r4(rm / ceilings[ri]);
    }
    rows.push(row);
  });
  // Validation: mean r per group (single presentations, so no ceiling); it picks the baseline.
  const validationR: Record<string, number> = {};
  for (const model of models) {
    const rv = pearsonColumns(f.validationPredictions[model]!, sim.validation.responses);
    for (const kind of ['early', 'category'] as const) {
      const vox = sim.system.regions.filter((g) => g.kind === kind).flatMap((g) => g.voxels);
      const m = mean(vox.map((v) => rv[v]));
      metrics[`validation_${s}_${kind}_${metricName(model)}_r`] = m;
      if (kind === 'category') validationR[model] = m;
    }
  }
  const baselines = models.filter((m) => m === 'ridge' || m === 'factorised');
  const baseline = baselines.sort((a, b) => validationR[b] - validationR[a])[0];
  // Bootstrap over test images, the same draws for every model (paired).
  const rng = new Rng(opts.seed).fork(`bootstrap-${s}`);
  const n = sim.test.responses.rows;
  const draws: Record<string, Record<string, number[]>> = { early: {}, category: {} };
  const diffs: Record<string, number[]> = { baseline: [], cross: [] };
  for (let b = 0; b < opts.bootstrap; b++) {
    const w = new Float64Array(n);
    for (let i = 0; i < n; i++) w[rng.int(0, n)] += 1;
    const frac: Record<string, number> = {};
    for (const model of models) {
      const r = weightedPearson(f.predictions[model]!, sim.test.responses, w);
      for (const kind of ['early', 'category'] as const) {
        const g = groupFrac(r, sim, kind, ceilings);
        (draws[kind][model] ??= []).push(g);
        if (kind === 'category') frac[model] = g;
      }
    }
    if (frac.transformer !== undefined && baseline) diffs.baseline.push(frac.transformer - frac[baseline]);
    if (frac.transformer !== undefined && frac['cross-only'] !== undefined)
      diffs.cross.push(frac.transformer - frac['cross-only']);
  }
  for (const kind of ['early', 'category'] as const)
    for (const model of models) {
      const k = `test_${s}_${kind}_${metricName(model)}_frac_ceiling`;
      metrics[k] = groupFrac(byModel[model], sim, kind, ceilings);
      if (opts.bootstrap > 1) metrics[`${k}_ci95`] = percentileHalfWidth(draws[kind][model]);
    }
  const advantage: EncoderRow = { simulator: s, baseline: baseline ?? 'none' };
  const cat = (m: string) => metrics[`test_${s}_category_${metricName(m)}_frac_ceiling`];
  if (f.predictions.transformer && baseline) {
    const k = `test_${s}_category_transformer_minus_baseline`;
    metrics[k] = cat('transformer') - cat(baseline);
    if (opts.bootstrap > 1) metrics[`${k}_ci95`] = percentileHalfWidth(diffs.baseline);
    advantage.transformer_minus_baseline = r4(metrics[k]);
    advantage.ci95 = r4(metrics[`${k}_ci95`] ?? Number.NaN);
  }
  if (f.predictions.transformer && f.predictions['cross-only']) {
    const k = `test_${s}_category_transformer_minus_cross_only`;
    metrics[k] = cat('transformer') - cat('cross-only');
    if (opts.bootstrap > 1) metrics[`${k}_ci95`] = percentileHalfWidth(diffs.cross);
    advantage.transformer_minus_cross_only = r4(metrics[k]);
    advantage.cross_ci95 = r4(metrics[`${k}_ci95`] ?? Number.NaN);
  }
  for (const m of models) advantage[`${m}_category_frac`] = r4(cat(m));
  // Routing: early regions against their pRFs everywhere; category regions only where the truth is a routing map.
  if (f.transformer) {
    const routing = routingScores(sim.system, regionAttention(f.transformer, sim.test.features), sim.test.coverage);
    sim.system.regions.forEach((reg, ri) => {
      if (reg.kind === 'category' && s !== 'attention') return;
      metrics[`test_${s}_${reg.name.toLowerCase()}_routing`] = routing[ri];
      rows[ri].routing = r4(routing[ri]);
    });
    metrics[`test_${s}_early_routing`] = mean(
      sim.system.regions.flatMap((r, i) => (r.kind === 'early' ? [routing[i]] : [])),
    );
    if (s === 'attention')
      metrics.test_attention_category_routing = mean(
        sim.system.regions.flatMap((r, i) => (r.kind === 'category' ? [routing[i]] : [])),
      );
  }
  for (const [model, p] of Object.entries(f.params)) metrics[`params_${metricName(model)}`] = p!;
  for (const [model, sec] of Object.entries(f.seconds)) metrics[`seconds_${s}_${metricName(model)}`] = sec!;
  return { metrics, rows, advantage };
}

/** The summary sentence: where the transformer's advantage over the best baseline holds (interval above zero). */
export function summarise(cfg: BrainEncoderConfig, metrics: Record<string, number>, adv: EncoderRow[]): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}`;
  const parts = adv.map((a) => {
    const s = a.simulator as string;
    const d = metrics[`test_${s}_category_transformer_minus_baseline`];
    const ci = metrics[`test_${s}_category_transformer_minus_baseline_ci95`];
    if (d === undefined) return `${s}: no transformer/baseline pair`;
    const verdict = ci === undefined ? 'no interval' : d - ci > 0 ? 'holds' : d + ci < 0 ? 'reversed' : 'not resolved';
    const cross = metrics[`test_${s}_category_transformer_minus_cross_only`];
    const crossCi = metrics[`test_${s}_category_transformer_minus_cross_only_ci95`];
    return (
      `${s}: transformer ${pct(metrics[`test_${s}_category_transformer_frac_ceiling`])}% of the ceiling vs ${a.baseline} ` +
      `${pct(metrics[`test_${s}_category_${metricName(String(a.baseline))}_frac_ceiling`])}% ` +
      `(difference ${pct(d)} ± ${ci === undefined ? '?' : pct(ci)} points: ${verdict})` +
      (cross === undefined ? '' : `, vs cross-only ${pct(cross)} ± ${crossCi === undefined ? '?' : pct(crossCi)}`)
    );
  });
  const p = (m: string) => metrics[`params_${metricName(m)}`];
  return (
    `Category regions, fraction of the noise ceiling on held-out test images, per simulator (baseline chosen on validation): ` +
    `${parts.join('; ')}. Parameters: ` +
    cfg.models
      .filter((m) => p(m) !== undefined)
      .map((m) => `${m} ${p(m)}`)
      .join(', ') +
    (metrics.test_attention_category_routing !== undefined
      ? `. Routing score (attention vs truth, attention simulator): early ${metrics.test_attention_early_routing.toFixed(2)}, category ${metrics.test_attention_category_routing.toFixed(2)}.`
      : '.')
  );
}

export async function runBrainEncoder(
  cfg: BrainEncoderConfig,
  ctx: ExperimentContext,
): Promise<ExperimentOutput<BrainEncoderArtifacts>> {
  const sims = simulateVariants(simulationConfig(cfg), ctx.seed, cfg.simulators);
  const bySimulator: Partial<Record<CategoryResponse, FittedEncoders>> = {};
  const dispose = () => {
    for (const s of sims) disposeSimulation(s);
    for (const f of Object.values(bySimulator)) disposeEncoders(f!);
  };
  try {
    const metrics: Record<string, number> = { test_ceiling_analytic: sims[0].analyticCeiling };
    const regions: EncoderRow[] = [];
    const advantage: EncoderRow[] = [];
    const t0 = performance.now();
    const ridge = cfg.models.includes('ridge') ? fitSharedRidge(sims, cfg.ridgeScales) : undefined;
    if (ridge) metrics.seconds_ridge = (performance.now() - t0) / 1000; // one fit for every simulator
    for (const [i, sim] of sims.entries()) {
      const s = sim.config.categoryResponse!;
      const f = await fitEncoders(cfg, sim, ctx.seed, { progress: ctx.progress, log: ctx.log, ridge: ridge?.[i] });
      bySimulator[s] = f;
      const scored = scoreEncoders(f, { bootstrap: cfg.bootstrap, seed: ctx.seed });
      Object.assign(metrics, scored.metrics);
      regions.push(...scored.rows);
      advantage.push(scored.advantage);
    }
    return {
      metrics,
      tables: { advantage, regions },
      summary: summarise(cfg, metrics, advantage),
      artifacts: { simulators: [...cfg.simulators], bySimulator, dispose },
    };
  } catch (e) {
    dispose();
    throw e;
  }
}

const base = {
  imageSize: 32,
  grid: 8,
  channels: 32,
  snr: 1,
  tau: 6,
  repeats: 3,
  dModel: 64,
  heads: 4,
  ffn: 85,
  batch: 64,
  lr: 3e-3,
  weightDecay: 1e-4,
  l1: 1e-3,
};

export const BRAIN_ENCODER_QUICK: BrainEncoderConfig = {
  ...base,
  voxelsPerRegion: 12,
  train: 500,
  validation: 200,
  test: 200,
  steps: 150,
  simulators: ['attention', 'conjunction'],
  models: ['ridge', 'cross-only', 'transformer'],
  ridgeScales: [0.1, 1, 10],
  bootstrap: 200,
};

export const BRAIN_ENCODER_FULL: BrainEncoderConfig = {
  ...base,
  voxelsPerRegion: 24,
  train: 1500,
  validation: 300,
  test: 300,
  steps: 600,
  simulators: ['attention', 'max', 'conjunction', 'prf'],
  models: ['oracle', 'ridge', 'factorised', 'cross-only', 'transformer'],
  ridgeScales: [1e-2, 0.03, 0.1, 0.3, 1, 3, 10],
  bootstrap: 500,
};

/**
 * The `brain-encoder` experiment: simulate the visual system, fit every model on the training split (ridge chooses λ
 * on the validation split), and score held-out test stimuli against the repeat-averaged responses.
 *
 * Metrics: `test_{region}_{model}_r` (mean Pearson r over the region's voxels), `test_{region}_{model}_frac_ceiling`
 * (mean r / mean noise ceiling of the region), `test_{region}_ceiling`, `test_{region}_routing` (transformer attention
 * vs the true routing), group means `test_{early|category}_{model}_frac_ceiling`, `params_{model}`, `seconds_{model}`.
 * Artifacts: the simulation and every fitted model, with their training losses (`FittedEncoders`).
 */
import * as tf from '@tensorflow/tfjs';
import type { ExperimentContext, ExperimentOutput } from '../../../../experiments/contract.js';
import type { ProgressMode } from '../../../../train/progress.js';
import { disposeSimulation, type Simulation, type SimulationConfig, simulate } from '../simulate/dataset.js';
import { DEFAULT_SCENES } from '../simulate/scenes.js';
import { trueRoutedFeatures } from '../simulate/voxels.js';
import { type Mat, mean, pearsonColumns } from '../stats.js';
import { createFactorisedReadout } from './factorised.js';
import { type EncodingModel, fitEncoding, predictAll } from './model.js';
import { fitOracle, predictOracle } from './oracle.js';
import { fitRidge, type RidgeFit, ridgeModel } from './ridge.js';
import { regionAttention, routingScores } from './routing.js';
import { createTransformerEncoder, type TransformerEncoder } from './transformer.js';

export type EncoderModelName = 'oracle' | 'ridge' | 'factorised' | 'transformer';

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
  models: EncoderModelName[];
  dModel: number;
  heads: number;
  steps: number;
  batch: number;
  lr: number;
  weightDecay: number;
  /** L1 weight on the factorised readout's spatial masks. */
  l1: number;
  ridgeScales: number[];
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

export interface FittedEncoders {
  sim: Simulation;
  /** Test predictions [n, V] per model. */
  predictions: Partial<Record<EncoderModelName, Mat>>;
  params: Partial<Record<EncoderModelName, number>>;
  seconds: Partial<Record<EncoderModelName, number>>;
  transformer?: TransformerEncoder;
  ridge?: RidgeFit;
  /** Other trained models, kept for the notebook (the factorised readout). */
  models: EncodingModel[];
  losses: Partial<Record<EncoderModelName, number[]>>;
}

/** Simulate and fit every model in the config; the caller disposes with disposeEncoders. */
export async function fitEncoders(
  cfg: BrainEncoderConfig,
  seed: number,
  opts: { progress?: ProgressMode; log?: (s: string) => void } = {},
): Promise<FittedEncoders> {
  const log = opts.log ?? (() => undefined);
  const sim = simulate(simulationConfig(cfg), seed);
  const out: FittedEncoders = { sim, predictions: {}, params: {}, seconds: {}, models: [], losses: {} };
  const V = sim.system.voxelCount;
  const fit = { steps: cfg.steps, batch: cfg.batch, lr: cfg.lr, weightDecay: cfg.weightDecay };
  const regions = sim.system.regions.map((r) => ({ name: r.name, voxels: r.voxels }));
  for (const name of cfg.models) {
    const t0 = performance.now();
    log(`brain-encoder: fitting ${name}`);
    if (name === 'oracle') {
      const tr = trueRoutedFeatures(sim.system, sim.train.features, sim.train.coverage);
      const te = trueRoutedFeatures(sim.system, sim.test.features, sim.test.coverage);
      out.predictions.oracle = predictOracle(fitOracle(tr, sim.train.responses), te);
      out.params.oracle = (cfg.channels + 1) * V;
      tf.dispose([tr, te]);
    } else if (name === 'ridge') {
      out.ridge = fitRidge(sim.train.features, sim.train.responses, sim.validation.features, sim.validation.responses, {
        scales: cfg.ridgeScales,
      });
      const m = ridgeModel(out.ridge);
      out.predictions.ridge = predictAll(m, sim.test.features);
      out.params.ridge = m.paramCount;
      m.dispose();
    } else {
      const model =
        name === 'factorised'
          ? createFactorisedReadout({ grid: cfg.grid, channels: cfg.channels, l1: cfg.l1 }, V, seed)
          : createTransformerEncoder(
              { grid: cfg.grid, channels: cfg.channels, dModel: cfg.dModel, heads: cfg.heads },
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
      out.params[name] = model.paramCount;
      if (name === 'transformer') out.transformer = model as TransformerEncoder;
      else out.models.push(model);
    }
    out.seconds[name] = (performance.now() - t0) / 1000;
  }
  return out;
}

/** The experiment's artifacts (for the notebook): the simulation and every fitted model; `dispose` frees them. */
export type BrainEncoderArtifacts = FittedEncoders & { dispose(): void };

export function disposeEncoders(f: FittedEncoders): void {
  f.transformer?.dispose();
  for (const m of f.models) m.dispose();
  disposeSimulation(f.sim);
}

export type EncoderRow = Record<string, string | number>;

/** Per region and model: r, the ceiling and the fraction; and the transformer's routing score per region. */
export function scoreEncoders(f: FittedEncoders): {
  metrics: Record<string, number>;
  rows: EncoderRow[];
  routing: number[];
} {
  const { sim } = f;
  const metrics: Record<string, number> = { test_ceiling_analytic: sim.analyticCeiling };
  const rows: EncoderRow[] = [];
  const r4 = (x: number) => +x.toFixed(4);
  const routing = f.transformer
    ? routingScores(sim.system, regionAttention(f.transformer, sim.test.features), sim.test.coverage)
    : [];
  const byModel = Object.fromEntries(
    Object.entries(f.predictions).map(([k, p]) => [k, pearsonColumns(p!, sim.test.responses)]),
  );
  const groups: Record<string, Record<string, number[]>> = { early: {}, category: {} };
  sim.system.regions.forEach((reg, ri) => {
    const ceil = mean(reg.voxels.map((v) => sim.ceiling[v]));
    const key = reg.name.toLowerCase();
    metrics[`test_${key}_ceiling`] = ceil;
    const row: EncoderRow = { region: reg.name, kind: reg.kind, voxels: reg.voxels.length, ceiling: r4(ceil) };
    for (const [model, r] of Object.entries(byModel)) {
      const rm = mean(reg.voxels.map((v) => r[v]));
      metrics[`test_${key}_${model}_r`] = rm;
      metrics[`test_${key}_${model}_frac_ceiling`] = rm / ceil;
      row[`${model}_r`] = r4(rm);
      row[`${model}_frac`] = r4(rm / ceil);
      (groups[reg.kind][model] ??= []).push(rm / ceil);
    }
    if (routing.length) {
      metrics[`test_${key}_routing`] = routing[ri];
      row.routing = r4(routing[ri]);
    }
    rows.push(row);
  });
  for (const [kind, models] of Object.entries(groups))
    for (const [model, fr] of Object.entries(models)) metrics[`test_${kind}_${model}_frac_ceiling`] = mean(fr);
  for (const [model, p] of Object.entries(f.params)) metrics[`params_${model}`] = p!;
  for (const [model, s] of Object.entries(f.seconds)) metrics[`seconds_${model}`] = s!;
  if (routing.length) {
    metrics.test_early_routing = mean(sim.system.regions.flatMap((r, i) => (r.kind === 'early' ? [routing[i]] : [])));
    metrics.test_category_routing = mean(
      sim.system.regions.flatMap((r, i) => (r.kind === 'category' ? [routing[i]] : [])),
    );
  }
  return { metrics, rows, routing };
}

export async function runBrainEncoder(
  cfg: BrainEncoderConfig,
  ctx: ExperimentContext,
): Promise<ExperimentOutput<BrainEncoderArtifacts>> {
  const f = await fitEncoders(cfg, ctx.seed, { progress: ctx.progress, log: ctx.log });
  try {
    const { metrics, rows } = scoreEncoders(f);
    const pct = (k: string) => (metrics[k] === undefined ? 'n/a' : `${(100 * metrics[k]).toFixed(0)}%`);
    const summary =
      `Category regions, fraction of the noise ceiling (r / ceiling): ` +
      cfg.models.map((m) => `${m} ${pct(`test_category_${m}_frac_ceiling`)}`).join(', ') +
      `; early regions: ` +
      cfg.models.map((m) => `${m} ${pct(`test_early_${m}_frac_ceiling`)}`).join(', ') +
      `. Parameters: ` +
      cfg.models.map((m) => `${m} ${metrics[`params_${m}`]}`).join(', ') +
      (metrics.test_category_routing !== undefined
        ? `. Routing score (attention vs truth): early ${metrics.test_early_routing.toFixed(2)}, category ${metrics.test_category_routing.toFixed(2)}.`
        : '.');
    return { metrics, tables: { regions: rows }, summary, artifacts: { ...f, dispose: () => disposeEncoders(f) } };
  } catch (e) {
    disposeEncoders(f);
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
  batch: 64,
  lr: 3e-3,
  weightDecay: 1e-4,
  l1: 1e-3,
};

export const BRAIN_ENCODER_QUICK: BrainEncoderConfig = {
  ...base,
  voxelsPerRegion: 24,
  train: 1000,
  validation: 250,
  test: 200,
  steps: 450,
  models: ['oracle', 'ridge', 'factorised', 'transformer'],
  ridgeScales: [1e-2, 0.1, 0.3, 1, 3, 10],
};

export const BRAIN_ENCODER_FULL: BrainEncoderConfig = {
  ...base,
  voxelsPerRegion: 48,
  train: 3000,
  validation: 500,
  test: 500,
  steps: 2000,
  models: ['oracle', 'ridge', 'factorised', 'transformer'],
  ridgeScales: [1e-3, 1e-2, 0.03, 0.1, 0.3, 1, 3, 10, 30],
};

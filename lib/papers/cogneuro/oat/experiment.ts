/**
 * The registered experiment `oat-scanpath`: OAT against the baselines on simulated shelves, on two held-out splits
 * (unseen layouts, unseen targets), with the simulator's own variability as the ceiling and the 1-D position-encoding
 * ablation.
 *
 * Metric names: `test_{layout|target}_{model}_{metric}` with metrics seq_score, edit_distance, found_rate,
 * fix_to_target, length, delta, step_acc and (for models with probabilities) nll. Models: oat and oat-sample (greedy
 * and sampled decoding), oat-1d and oat-1d-sample (the ablation), random, nearest, similarity, pixel, and `ceiling`: a
 * second simulated scanpath on each display scored like a model (its step_acc draws the simulator's next fixation on
 * the true prefix; its nll is the simulator's own, the lowest possible). `bayes_step_acc` is the simulator's most
 * likely next fixation: the best possible per-step accuracy. `human_*` are the test scanpaths' own statistics.
 * `train_{model}_loss` (mean per-batch loss over the last 5% of steps), `params_{model}`, `seconds_{model}`.
 * The OAT models use the fixation-history bias (historyLags, our addition); `oat-paper` (full config) is the 2-D model
 * with the paper's pointer, without it. The artifacts (for the notebook) are the splits, the trained models and each
 * split's evaluation with every model's scanpaths.
 */

import { CATALOGUE, featureDim } from '../../../data/visual-search/displays.js';
import {
  DEFAULT_SEARCHER,
  fixationDistribution,
  type SearcherParams,
  sampleFixation,
  simulateScanpath,
} from '../../../data/visual-search/searcher.js';
import {
  makeSplits,
  type Trial,
  type VisualSearchConfig,
  type VisualSearchSplits,
} from '../../../data/visual-search/splits.js';
import { defineExperiment, type ExperimentContext, type ExperimentOutput } from '../../../experiments/contract.js';
import { bool, int, list, num, obj, oneOf, tuple } from '../../../experiments/schema.js';
import { train } from '../../../train/loop.js';
import type { ProgressMode } from '../../../train/progress.js';
import { hashSeed, Rng } from '../../../util/random.js';
import {
  createPixelModel,
  disposePixelModel,
  nearestPolicy,
  type PixelModel,
  type Policy,
  pixelLoss,
  pixelPolicy,
  policyStepPredictions,
  randomPolicy,
  rollout,
  similarityPolicy,
} from './baselines.js';
import { decodeScanpaths, oatStepPredictions } from './decode.js';
import { behaviourDelta, type ScanpathSummary, stepAccuracy, summarize } from './metrics.js';
import {
  createOat,
  disposeOat,
  disposeOatInputs,
  disposeOatTargets,
  type OatConfig,
  type OatModel,
  oatInputs,
  oatLoss,
  oatParameterCount,
  oatTargets,
} from './model.js';
import type { PositionKind } from './position.js';

/** The model's size comes from OatConfig (one place for their meaning); the rest is data, training and evaluation. */
export interface OatExperimentConfig
  extends Pick<OatConfig, 'dModel' | 'encoderLayers' | 'decoderLayers' | 'heads' | 'caHeads' | 'mlpRatio'> {
  layout: 'shelf' | 'clutter';
  sizes: [number, number][];
  similarFraction: number;
  heldOutTargets: number;
  searcher: SearcherParams;
  /** Training trials and test trials per split. */
  train: number;
  test: number;
  peSize: number;
  steps: number;
  batch: number;
  lr: number;
  pixelSteps: number;
  /** Sampled OAT scanpaths per test display (the paper uses 100). */
  samples: number;
  /** Also train OAT with 1-D sinusoidal position codes (the ablation). */
  ablation: boolean;
  /** Lags of the fixation-history bias on the pointer (0 = the paper's model; see OatConfig.historyLags). */
  historyLags: number;
  /** Also train `oat-paper`: the 2-D code with the paper's pointer (no history bias), to measure what the bias adds. */
  paperPointer: boolean;
}

export const dataConfig = (cfg: OatExperimentConfig): VisualSearchConfig => ({
  layout: cfg.layout,
  sizes: cfg.sizes,
  similarFraction: cfg.similarFraction,
  heldOutTargets: cfg.heldOutTargets,
  searcher: cfg.searcher,
});

export function oatConfig(cfg: OatExperimentConfig, position: PositionKind, seed: number): OatConfig {
  return {
    featureDim: featureDim(CATALOGUE),
    dModel: cfg.dModel,
    encoderLayers: cfg.encoderLayers,
    decoderLayers: cfg.decoderLayers,
    heads: cfg.heads,
    caHeads: cfg.caHeads,
    mlpRatio: cfg.mlpRatio,
    position,
    peSize: cfg.peSize,
    historyLags: cfg.historyLags,
    seed,
  };
}

export interface TrainedOat {
  model: OatModel;
  losses: number[];
  seconds: number;
}

/** Train OAT with teacher forcing on the training trials (seeded, length-bucketed batches). */
export async function trainOat(
  cfg: OatExperimentConfig,
  position: PositionKind,
  trials: Trial[],
  opts: { seed: number; progress: ProgressMode },
): Promise<TrainedOat> {
  const t0 = performance.now();
  const model = createOat(oatConfig(cfg, position, opts.seed));
  const batches = bucketedBatches(trials, cfg.steps, cfg.batch, opts.seed);
  const run = await train({
    variables: model.params,
    steps: cfg.steps,
    optimizer: { type: 'adam', lr: cfg.lr },
    schedule: { type: 'cosine', warmup: Math.round(cfg.steps * 0.05) },
    clipNorm: 1,
    seed: opts.seed,
    progress: opts.progress,
    dataframe: false,
    loss: (step) => {
      const part = batches[step];
      const x = oatInputs(
        model,
        part.map((t) => t.display),
      );
      const t = oatTargets(
        part.map((tr) => tr.scanpath),
        x.N,
      );
      try {
        return oatLoss(model, x, t);
      } finally {
        disposeOatTargets(t);
        disposeOatInputs(x);
      }
    },
  });
  if (run.stopped) {
    disposeOat(model);
    throw new Error(`oat-scanpath (${position}): training stopped: ${run.stopped.message}`);
  }
  return { model, losses: run.records.map((r) => r.loss), seconds: (performance.now() - t0) / 1000 };
}

/**
 * `steps` batches of `batch` trials: seeded epochs of shuffles, cut into pools of 16 batches, each pool sorted by
 * (objects, scanpath length) before cutting, and the batches shuffled again. Trials in a batch then have similar
 * sizes, so little of each step is spent on padding; every trial is still seen once per epoch.
 */
export function bucketedBatches(trials: Trial[], steps: number, batch: number, seed: number): Trial[][] {
  const rng = new Rng(hashSeed(seed) ^ 0xba7c4);
  const order: number[] = [];
  while (order.length < steps * batch) order.push(...rng.shuffle(Array.from({ length: trials.length }, (_, i) => i)));
  const size = (i: number) => trials[i].display.objects.length * 1000 + trials[i].scanpath.length;
  const out: Trial[][] = [];
  const pool = 16 * batch;
  for (let s = 0; s < steps * batch; s += pool) {
    const part = order.slice(s, Math.min(s + pool, steps * batch)).sort((a, b) => size(a) - size(b));
    const cut: Trial[][] = [];
    for (let k = 0; k < part.length; k += batch) cut.push(part.slice(k, k + batch).map((i) => trials[i]));
    out.push(...rng.shuffle(cut));
  }
  return out;
}

export async function trainPixel(
  cfg: OatExperimentConfig,
  trials: Trial[],
  opts: { seed: number; progress: ProgressMode },
): Promise<{ model: PixelModel; losses: number[]; seconds: number }> {
  const t0 = performance.now();
  const model = createPixelModel(cfg.dModel, opts.seed);
  const batches = bucketedBatches(trials, cfg.pixelSteps, cfg.batch, opts.seed + 1);
  const run = await train({
    variables: model.params,
    steps: cfg.pixelSteps,
    optimizer: { type: 'adam', lr: cfg.lr },
    clipNorm: 1,
    seed: opts.seed,
    progress: opts.progress,
    dataframe: false,
    loss: (step) => pixelLoss(model, batches[step]),
  });
  if (run.stopped) {
    disposePixelModel(model);
    throw new Error(`oat-scanpath (pixel): training stopped: ${run.stopped.message}`);
  }
  return { model, losses: run.records.map((r) => r.loss), seconds: (performance.now() - t0) / 1000 };
}

export interface ModelScores extends ScanpathSummary {
  delta: number;
  step_acc: number;
  /** Mean −log p(true next fixation | true prefix) over steps, for models that give probabilities. */
  nll?: number;
}

/** The ceiling: a second simulated scanpath per display, and the simulator's next-step draws and modes on the true prefixes. */
export function ceilingScores(
  trials: Trial[],
  params: SearcherParams,
  seed: number,
): { second: ModelScores; bayesStepAcc: number; secondScanpaths: number[][] } {
  const rng = new Rng(hashSeed(seed) ^ 0xce111);
  const human = trials.map((t) => t.scanpath),
    targets = trials.map((t) => t.display.target);
  const secondScanpaths = trials.map((t) => simulateScanpath(t.display, rng, params));
  const drawn: number[][] = [],
    mode: number[][] = [];
  let nll = 0,
    steps = 0;
  for (const t of trials) {
    const d: number[] = [],
      m: number[] = [];
    for (let s = 0; s <= t.scanpath.length; s++) {
      const dist = fixationDistribution(t.display, t.scanpath.slice(0, s), params);
      nll -= Math.log(s < t.scanpath.length ? dist.next[t.scanpath[s]] : dist.end);
      steps++;
      d.push(sampleFixation(dist, rng));
      let best = -1,
        p = dist.end;
      dist.next.forEach((q, j) => {
        if (q > p) {
          p = q;
          best = j;
        }
      });
      m.push(best);
    }
    drawn.push(d);
    mode.push(m);
  }
  const sum = summarize(secondScanpaths, human, targets);
  return {
    second: {
      ...sum,
      delta: behaviourDelta(sum, summarize(human, human, targets)),
      step_acc: stepAccuracy(drawn, human),
      nll: nll / steps,
    },
    bayesStepAcc: stepAccuracy(mode, human),
    secondScanpaths,
  };
}

/** Scores of a policy on trials: rolled-out scanpaths and per-step predictions on the true prefixes. */
export function policyScores(
  policy: Policy,
  trials: Trial[],
  seed: number,
): { scores: ModelScores; scanpaths: number[][] } {
  const rng = new Rng(hashSeed(seed) ^ 0x9011c7);
  const human = trials.map((t) => t.scanpath),
    targets = trials.map((t) => t.display.target);
  const scanpaths = trials.map((t) => rollout(policy, t.display, rng));
  const sum = summarize(scanpaths, human, targets);
  return {
    scores: {
      ...sum,
      delta: behaviourDelta(sum, summarize(human, human, targets)),
      step_acc: stepAccuracy(policyStepPredictions(policy, trials, rng), human),
    },
    scanpaths,
  };
}

/** Scores of OAT on trials: greedy or `samples` sampled scanpaths per display, and teacher-forced step accuracy. */
export function oatScores(
  model: OatModel,
  trials: Trial[],
  mode: 'greedy' | 'sample',
  opts: { samples: number; maxFixations: number; seed: number },
): { scores: ModelScores; scanpaths: number[][] } {
  const human = trials.map((t) => t.scanpath),
    targets = trials.map((t) => t.display.target);
  const k = mode === 'greedy' ? 1 : opts.samples;
  const displays = trials.flatMap((t) => Array.from({ length: k }, () => t.display));
  const scanpaths = decodeScanpaths(model, displays, {
    mode,
    maxFixations: opts.maxFixations,
    rng: new Rng(hashSeed(opts.seed) ^ 0x5a3e),
  });
  const sum = summarize(scanpaths, human, targets);
  const steps = oatStepPredictions(model, trials);
  const probs = steps.probTrue.flat();
  const nll = -probs.reduce((a, p) => a + Math.log(Math.max(p, 1e-12)), 0) / probs.length;
  return {
    scores: {
      ...sum,
      delta: behaviourDelta(sum, summarize(human, human, targets)),
      step_acc: stepAccuracy(steps.predicted, human),
      nll,
    },
    scanpaths,
  };
}

export const SCORE_KEYS = [
  'seq_score',
  'edit_distance',
  'found_rate',
  'fix_to_target',
  'length',
  'delta',
  'step_acc',
  'nll',
] as const;
export const SPLITS = { layout: 'unseen layouts', target: 'unseen targets' } as const;

/** Every trained model of a run: OAT, the 1-D ablation (when configured) and the pixel baseline. */
export interface TrainedModels {
  oat: Map<string, TrainedOat>;
  pixel: { model: PixelModel; losses: number[]; seconds: number };
}

export async function trainModels(
  cfg: OatExperimentConfig,
  train: Trial[],
  ctx: Pick<ExperimentContext, 'seed' | 'progress' | 'log'>,
): Promise<TrainedModels> {
  const variants: { name: string; position: PositionKind; historyLags: number }[] = [
    { name: 'oat', position: 'gaussian2d', historyLags: cfg.historyLags },
  ];
  if (cfg.ablation) variants.push({ name: 'oat-1d', position: 'sinusoidal1d', historyLags: cfg.historyLags });
  if (cfg.paperPointer) variants.push({ name: 'oat-paper', position: 'gaussian2d', historyLags: 0 });
  const oat = new Map<string, TrainedOat>();
  try {
    for (const v of variants) {
      ctx.log(
        `oat-scanpath: training ${v.name} (${cfg.steps} steps, batch ${cfg.batch}, ${train.length} training trials)`,
      );
      oat.set(
        v.name,
        await trainOat({ ...cfg, historyLags: v.historyLags }, v.position, train, {
          seed: ctx.seed,
          progress: ctx.progress,
        }),
      );
    }
    ctx.log(`oat-scanpath: training the pixel baseline (${cfg.pixelSteps} steps)`);
    return { oat, pixel: await trainPixel(cfg, train, { seed: ctx.seed, progress: ctx.progress }) };
  } catch (e) {
    for (const t of oat.values()) disposeOat(t.model);
    throw e;
  }
}

export function disposeModels(m: TrainedModels): void {
  for (const t of m.oat.values()) disposeOat(t.model);
  disposePixelModel(m.pixel.model);
}

/** One split's evaluation: every model's scores and scanpaths (`{model}-sample`: `samples` per trial, trial by trial). */
export interface SplitEvaluation {
  scores: Record<string, ModelScores>;
  scanpaths: Record<string, number[][]>;
  /** The simulator's most likely next fixation on the true prefixes: the best possible step accuracy. */
  bayesStepAcc: number;
}

/** Every model's scores on one split's trials, the ceiling first. Also returns each model's scanpaths (for plots). */
export function evaluateSplit(
  cfg: OatExperimentConfig,
  models: TrainedModels,
  trials: Trial[],
  seed: number,
): SplitEvaluation {
  const maxFixations = cfg.searcher.maxFixations;
  const ceiling = ceilingScores(trials, cfg.searcher, seed);
  const scores: Record<string, ModelScores> = { ceiling: ceiling.second };
  const scanpaths: Record<string, number[][]> = { ceiling: ceiling.secondScanpaths };
  for (const [name, t] of models.oat) {
    for (const mode of ['greedy', 'sample'] as const) {
      const r = oatScores(t.model, trials, mode, { samples: cfg.samples, maxFixations, seed });
      const key = mode === 'greedy' ? name : `${name}-sample`;
      scores[key] = r.scores;
      scanpaths[key] = r.scanpaths;
    }
  }
  const policies = [
    randomPolicy(maxFixations),
    nearestPolicy(maxFixations),
    similarityPolicy(maxFixations),
    pixelPolicy(
      models.pixel.model,
      trials.map((t) => t.display),
      maxFixations,
    ),
  ];
  for (const p of policies) {
    const r = policyScores(p, trials, seed);
    scores[p.name] = r.scores;
    scanpaths[p.name] = r.scanpaths;
  }
  return { scores, scanpaths, bayesStepAcc: ceiling.bayesStepAcc };
}

/** What a run returns for the notebook: the data, the trained models and each held-out split's evaluation. */
export interface OatArtifacts {
  splits: VisualSearchSplits;
  models: TrainedModels;
  evaluations: Record<keyof typeof SPLITS, SplitEvaluation>;
  /** Disposes every model. */
  dispose(): void;
}

export async function runOatExperiment(
  cfg: OatExperimentConfig,
  ctx: ExperimentContext,
): Promise<ExperimentOutput<OatArtifacts>> {
  const splits = makeSplits(dataConfig(cfg), { train: cfg.train, test: cfg.test }, ctx.seed);
  const metrics: Record<string, number> = {};
  const rows: Record<string, string | number>[] = [];
  const models = await trainModels(cfg, splits.train, ctx);
  const evaluations = {} as OatArtifacts['evaluations'];
  try {
    for (const [name, t] of models.oat) {
      const tail = t.losses.slice(-Math.max(1, Math.round(cfg.steps * 0.05)));
      metrics[`train_${name}_loss`] = tail.reduce((a, b) => a + b, 0) / tail.length;
      metrics[`params_${name}`] = oatParameterCount(t.model);
      metrics[`seconds_${name}`] = t.seconds;
    }
    const pl = models.pixel.losses.slice(-10);
    metrics.train_pixel_loss = pl.reduce((a, b) => a + b, 0) / pl.length;
    metrics.seconds_pixel = models.pixel.seconds;
    for (const [split, trials] of [
      ['layout', splits.testLayout],
      ['target', splits.testTarget],
    ] as const) {
      const human = summarize(
        trials.map((t) => t.scanpath),
        trials.map((t) => t.scanpath),
        trials.map((t) => t.display.target),
      );
      for (const k of ['found_rate', 'fix_to_target', 'length', 'search', 'refix', 'revisit'] as const)
        metrics[`test_${split}_human_${k}`] = human[k];
      const r = evaluateSplit(cfg, models, trials, ctx.seed);
      evaluations[split] = r;
      metrics[`test_${split}_bayes_step_acc`] = r.bayesStepAcc;
      for (const [model, s] of Object.entries(r.scores)) {
        for (const k of SCORE_KEYS) if (Number.isFinite(s[k])) metrics[`test_${split}_${model}_${k}`] = s[k]!;
        rows.push(scoreRow(SPLITS[split], model, s));
      }
    }
  } catch (e) {
    disposeModels(models);
    throw e;
  }
  const artifacts: OatArtifacts = { splits, models, evaluations, dispose: () => disposeModels(models) };
  return { metrics, tables: { results: rows }, summary: summarizeRun(cfg, metrics), artifacts };
}

/** One table row: the split, the model and its scores rounded to 4 places. */
export function scoreRow(split: string, model: string, s: ModelScores): Record<string, string | number> {
  const round = (v: number | undefined) => (v === undefined ? '' : Number.isFinite(v) ? +v.toFixed(4) : v);
  return { split, model, ...Object.fromEntries(SCORE_KEYS.map((k) => [k, round(s[k])])) };
}

export const BASELINES = ['random', 'nearest', 'similarity', 'pixel'] as const;

function summarizeRun(cfg: OatExperimentConfig, m: Record<string, number>): string {
  const f = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(3));
  const parts = Object.entries(SPLITS).map(([split, label]) => {
    const best = Math.max(...BASELINES.map((b) => m[`test_${split}_${b}_seq_score`] ?? -Infinity));
    const abl =
      (cfg.ablation ? `, 1-D PE ${f(m[`test_${split}_oat-1d_seq_score`])}` : '') +
      (cfg.paperPointer ? `, paper pointer ${f(m[`test_${split}_oat-paper_seq_score`])}` : '');
    return `${label}: OAT ${f(m[`test_${split}_oat_seq_score`])} (sampled ${f(m[`test_${split}_oat-sample_seq_score`])}${abl}) vs best baseline ${f(best)}, ceiling ${f(m[`test_${split}_ceiling_seq_score`])}`;
  });
  return `Sequence score (Needleman-Wunsch / max length) on held-out displays; ${parts.join('; ')}.`;
}

const base: Omit<OatExperimentConfig, 'train' | 'test' | 'steps' | 'pixelSteps' | 'samples' | 'dModel' | 'batch'> = {
  layout: 'shelf',
  sizes: [
    [3, 6],
    [3, 8],
    [4, 6],
  ],
  similarFraction: 0.3,
  heldOutTargets: 0.2,
  searcher: DEFAULT_SEARCHER,
  encoderLayers: 2,
  decoderLayers: 2,
  heads: 4,
  caHeads: 2,
  mlpRatio: 2,
  peSize: 16,
  lr: 3e-3,
  ablation: true,
  historyLags: 20,
  paperPointer: false,
};

export const OAT_EXPERIMENT: { quick: OatExperimentConfig; full: OatExperimentConfig } = {
  quick: {
    ...base,
    train: 10000,
    test: 150,
    dModel: 64,
    encoderLayers: 1,
    decoderLayers: 1,
    batch: 32,
    steps: 600,
    pixelSteps: 150,
    samples: 2,
  },
  full: {
    ...base,
    train: 30000,
    test: 500,
    dModel: 64,
    batch: 64,
    steps: 3000,
    pixelSteps: 1000,
    samples: 10,
    lr: 2e-3,
    paperPointer: true,
  },
};

export const oatConfigSchema = obj<OatExperimentConfig>({
  dModel: int({ min: 1 }),
  encoderLayers: int({ min: 1 }),
  decoderLayers: int({ min: 1 }),
  heads: int({ min: 1 }),
  caHeads: int({ min: 1 }),
  mlpRatio: int({ min: 1 }),
  layout: oneOf('shelf', 'clutter'),
  sizes: list(tuple<[number, number]>(int({ min: 1 }), int({ min: 1 })), { min: 1 }),
  similarFraction: num({ min: 0, max: 1 }),
  heldOutTargets: num({ gt: 0, max: 0.99 }),
  searcher: obj({
    guidance: num({ min: 0 }),
    weights: obj({ colour: num({ min: 0 }), shape: num({ min: 0 }), size: num({ min: 0 }), category: num({ min: 0 }) }),
    visibility: num({ gt: 0 }),
    proximity: num({ gt: 0 }),
    iorStrength: num({ min: 0 }),
    iorDecay: num({ gt: 0 }),
    refixation: num({ min: 0, max: 1 }),
    detection: num({ min: 0, max: 1 }),
    maxFixations: int({ min: 1 }),
    temperature: num({ gt: 0 }),
  }),
  train: int({ min: 1 }),
  test: int({ min: 1 }),
  peSize: int({ min: 1 }),
  steps: int({ min: 1 }),
  batch: int({ min: 1 }),
  lr: num({ gt: 0 }),
  pixelSteps: int({ min: 1 }),
  samples: int({ min: 1 }),
  ablation: bool(),
  historyLags: int({ min: 1 }),
  paperPointer: bool(),
});

export const oatScanpath = defineExperiment<OatExperimentConfig, OatArtifacts>({
  name: 'oat-scanpath',
  schema: oatConfigSchema,
  paper:
    'Fang, Yu, Zhang, van der Lans, Shi 2024, OAT: Object-Level Attention Transformer for Gaze Scanpath Prediction, ECCV, https://arxiv.org/abs/2407.13335',
  description:
    'Object-level scanpaths on simulated shelves: OAT (Gaussian 2-D position codes, and the 1-D sinusoidal ablation) vs random, nearest-neighbour, target-similarity and pixel-level baselines on unseen layouts and unseen targets, with the simulator ceiling.',
  quick: OAT_EXPERIMENT.quick,
  full: OAT_EXPERIMENT.full,
  run: runOatExperiment,
});

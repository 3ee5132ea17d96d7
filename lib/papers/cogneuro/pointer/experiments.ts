/**
 * The four registered experiments: `pointer-hull`, `pointer-delaunay`, `pointer-tsp`, `pointer-sort`.
 *
 * Each trains every model kind in the config on the same training examples (n drawn from `n_train`), then decodes a
 * test set drawn from a different seed at every size in `n_test` (sizes above the training range test generalisation)
 * and scores it with the task's metrics. Metric names: `test_n{N}_{model}_{metric}`, `train_{model}_loss`,
 * `params_{model}`, `seconds_{model}`; the `results` table has one row per (model, n). The paper's numbers (Vinyals
 * et al.'s Tables 1 and 2) come back as `references` beside the metrics they compare with; the trained models, their
 * decoded answers and the test sets as artifacts.
 */
import * as tf from '@tensorflow/tfjs';
import {
  defineExperiment,
  type Experiment,
  type ExperimentContext,
  type ExperimentOutput,
  type PaperReference,
} from '../../../experiments/contract.js';
import { int, list, num, obj, oneOf, opt, tuple } from '../../../experiments/schema.js';
import { type StepRecord, train } from '../../../train/loop.js';
import type { ProgressMode } from '../../../train/progress.js';
import { Rng } from '../../../util/random.js';
import { beamDecode, greedyDecode } from './decode.js';
import { taskMetrics } from './metrics.js';
import {
  createPointerModel,
  disposePointerModel,
  outputPositions,
  type PointerModel,
  type PointerModelKind,
  parameterCount,
  sequenceLoss,
} from './model.js';
import { disposeBatch, type Example, makeBatch, makeExamples, TASKS, type TaskName } from './tasks.js';
import { HELD_KARP_MAX, nearestNeighbour, twoOpt } from './tsp.js';

export interface PointerExperimentConfig {
  task: TaskName;
  /** Training sizes: n drawn uniformly from [lo, hi] per example. */
  n_train: [number, number];
  /** Test sizes; those above n_train[1] measure generalisation. */
  n_test: number[];
  models: PointerModelKind[];
  hidden: number;
  /** Transformer encoder (pointer-transformer). */
  layers: number;
  heads: number;
  steps: number;
  batch: number;
  lr: number;
  clipNorm: number;
  /** Test examples per size. */
  testCount: number;
  /** Beam width at test time (1 = greedy). */
  beam: number;
  /**
   * The paper's TSP table trains one Ptr-Net per size (n = 5 on n = 5, n = 10 on n = 10). When set, a Ptr-Net is also
   * trained on exactly each of these sizes for `steps` steps and tested at that size: model `pointer-n{N}`.
   */
  perSize?: { n: number[]; steps: number };
}

export interface TrainedPointer {
  kind: PointerModelKind;
  model: PointerModel;
  records: StepRecord[];
  seconds: number;
}

/** Seeds of the two splits: training and test examples never share a generator. */
export const trainSeed = (seed: number): number => seed * 1_000_003 + 11;
export const testSeed = (seed: number): number => seed * 1_000_003 + 977;

/** The fixed-vocabulary baselines can name points up to the largest test size (EOS is class 0). */
export function vocabFor(cfg: PointerExperimentConfig): number {
  return Math.max(cfg.n_train[1], ...cfg.n_test) + 1;
}

/** The training examples (steps × batch), shared by every model of a run. */
export function trainingSet(cfg: PointerExperimentConfig, seed: number): Example[] {
  return makeExamples(TASKS[cfg.task], cfg.steps * cfg.batch, cfg.n_train[0], cfg.n_train[1], new Rng(trainSeed(seed)));
}

/** The test examples of size n. */
export function testSet(cfg: PointerExperimentConfig, seed: number, n: number): Example[] {
  return makeExamples(TASKS[cfg.task], cfg.testCount, n, n, new Rng(testSeed(seed) + n));
}

export async function trainPointer(
  cfg: PointerExperimentConfig,
  kind: PointerModelKind,
  examples: Example[],
  opts: { seed: number; progress: ProgressMode },
): Promise<TrainedPointer> {
  const t0 = performance.now();
  const task = TASKS[cfg.task];
  const model = createPointerModel({
    kind,
    coordDim: task.coordDim,
    hidden: cfg.hidden,
    vocab: vocabFor(cfg),
    layers: cfg.layers,
    heads: cfg.heads,
    seed: opts.seed,
    // Only the TSP label depends on the input order (it starts at point 0).
    orderCodes: cfg.task === 'tsp',
  });
  const run = await train({
    variables: model.params,
    steps: cfg.steps,
    optimizer: { type: 'adam', lr: cfg.lr },
    schedule: { type: 'cosine', warmup: Math.round(cfg.steps * 0.02) },
    clipNorm: cfg.clipNorm,
    seed: opts.seed,
    progress: opts.progress,
    dataframe: false,
    loss: (step) => {
      const ex = examples.slice(step * cfg.batch, (step + 1) * cfg.batch);
      const n = Math.max(...ex.map((e) => e.points.length));
      const batch = makeBatch(task, ex, outputPositions(model, n));
      try {
        return sequenceLoss(model, batch);
      } finally {
        disposeBatch(batch);
      }
    },
  });
  if (run.stopped) {
    disposePointerModel(model);
    throw new Error(`pointer-${cfg.task} (${kind}): training stopped: ${run.stopped.message}`);
  }
  return { kind, model, records: run.records, seconds: (performance.now() - t0) / 1000 };
}

/** Decode with the config's beam width and score with the task's metrics; also returns the decoded answers. */
export function evaluatePointer(
  cfg: PointerExperimentConfig,
  model: PointerModel,
  examples: Example[],
): { metrics: Record<string, number>; answers: number[][] } {
  const task = TASKS[cfg.task];
  const out = cfg.beam > 1 ? beamDecode(model, task, examples, cfg.beam) : greedyDecode(model, task, examples);
  const answers = out.map((d) => d.answer);
  return { metrics: taskMetrics(cfg.task, examples, answers), answers };
}

/** Non-learned TSP references on the same test set: nearest neighbour and 2-opt. */
function tspHeuristics(examples: Example[]): Record<string, Record<string, number>> {
  return {
    'nearest-neighbour': taskMetrics(
      'tsp',
      examples,
      examples.map((e) => nearestNeighbour(e.points)),
    ),
    '2-opt': taskMetrics(
      'tsp',
      examples,
      examples.map((e) => twoOpt(e.points)),
    ),
  };
}

export type ResultRow = { model: string; n: number } & Record<string, number | string>;

/** A trained model of a run and its decoded test answers (point indices) per test size. */
export interface PointerRunModel extends TrainedPointer {
  answers: Map<number, number[][]>;
}

/** What a run returns for the notebook: every trained model and the test sets they were decoded on. */
export interface PointerArtifacts {
  /** By name: each kind of `models`, and `pointer-n{N}` for the per-size models. */
  models: Record<string, PointerRunModel>;
  /** Test examples per size: every size of `n_test`, and the per-size models' sizes. */
  tests: Map<number, Example[]>;
  /** Disposes every model. */
  dispose(): void;
}

/**
 * Vinyals et al.'s numbers for the Ptr-Net, in our units (fractions; mean tour length in the unit square): Table 1 (convex
 * hull), Table 2 (TSP); the Delaunay numbers are in the text of section 4.3, not in a table.
 */
const PAPER_VALUES: Record<TaskName, { n: number; metric: string; paper: number; source: string }[]> = {
  hull: [
    {
      n: 5,
      metric: 'accuracy',
      paper: 0.92,
      source: 'Vinyals et al. 2015, Table 1, convex hull: Ptr-Net trained on n = 5-50, exact accuracy at n = 5',
    },
    {
      n: 10,
      metric: 'accuracy',
      paper: 0.87,
      source: 'Vinyals et al. 2015, Table 1, convex hull: Ptr-Net trained on n = 5-50, exact accuracy at n = 10',
    },
    {
      n: 10,
      metric: 'area_coverage',
      paper: 0.998,
      source: 'Vinyals et al. 2015, Table 1, convex hull: Ptr-Net trained on n = 5-50, area coverage at n = 10',
    },
  ],
  delaunay: [
    {
      n: 5,
      metric: 'accuracy',
      paper: 0.807,
      source: 'Vinyals et al. 2015, section 4.3 (text), Delaunay: Ptr-Net trained and tested at n = 5, exact accuracy',
    },
    {
      n: 5,
      metric: 'triangle_coverage',
      paper: 0.93,
      source:
        'Vinyals et al. 2015, section 4.3 (text), Delaunay: Ptr-Net trained and tested at n = 5, triangle coverage',
    },
  ],
  tsp: [
    {
      n: 5,
      metric: 'tour_length',
      paper: 2.12,
      source: 'Vinyals et al. 2015, Table 2, TSP: Ptr-Net trained and tested at n = 5, mean tour length',
    },
    {
      n: 5,
      metric: 'ref_length',
      paper: 2.12,
      source: 'Vinyals et al. 2015, Table 2, TSP: optimal mean tour length at n = 5 (ours: Held-Karp on our test set)',
    },
    {
      n: 10,
      metric: 'tour_length',
      paper: 2.88,
      source: 'Vinyals et al. 2015, Table 2, TSP: Ptr-Net trained and tested at n = 10, mean tour length',
    },
    {
      n: 10,
      metric: 'ref_length',
      paper: 2.87,
      source: 'Vinyals et al. 2015, Table 2, TSP: optimal mean tour length at n = 10 (ours: Held-Karp on our test set)',
    },
  ],
  sort: [],
};

/**
 * The paper's numbers beside the metrics of ours they compare with: the Ptr-Net trained at that size alone when the
 * config has one (`pointer-n{N}`, the paper's setting for Delaunay and TSP), else the Ptr-Net trained on `n_train`.
 */
function paperReferences(cfg: PointerExperimentConfig, metrics: Record<string, number>): PaperReference[] {
  return PAPER_VALUES[cfg.task].flatMap(({ n, metric, paper, source }) => {
    const model = cfg.perSize?.n.includes(n) ? `pointer-n${n}` : 'pointer';
    const key = `test_n${n}_${model}_${metric}`;
    return key in metrics ? [{ metric: key, paper, source }] : [];
  });
}

export async function runPointerExperiment(
  cfg: PointerExperimentConfig,
  ctx: ExperimentContext,
): Promise<ExperimentOutput<PointerArtifacts>> {
  const examples = trainingSet(cfg, ctx.seed);
  const tests = new Map(cfg.n_test.map((n) => [n, testSet(cfg, ctx.seed, n)]));
  const models: Record<string, PointerRunModel> = {};
  const artifacts: PointerArtifacts = {
    models,
    tests: new Map(tests),
    dispose: () => Object.values(models).forEach((m) => disposePointerModel(m.model)),
  };
  const metrics: Record<string, number> = {};
  const rows: ResultRow[] = [];
  const round = (v: number) => (Number.isFinite(v) ? +v.toFixed(4) : v);
  const record = (name: string, n: number, m: Record<string, number>) => {
    for (const [k, v] of Object.entries(m)) if (Number.isFinite(v)) metrics[`test_n${n}_${name}_${k}`] = v;
    rows.push({ model: name, n, ...Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round(v)])) });
  };
  /** Train `kind` on `sized`'s examples, test it at `sizes`, and record it as `name`; the model joins the artifacts. */
  const fitAndScore = async (
    name: string,
    sized: PointerExperimentConfig,
    kind: PointerModelKind,
    train: Example[],
    sizes: [number, Example[]][],
    trainLoss: boolean,
  ) => {
    ctx.log(
      `pointer-${cfg.task}: training ${name} (${sized.steps} steps, batch ${sized.batch}, n ${sized.n_train.join('-')})`,
    );
    const trained = await trainPointer(sized, kind, train, { seed: ctx.seed, progress: ctx.progress });
    const answers = new Map<number, number[][]>();
    models[name] = { ...trained, answers };
    if (trainLoss) {
      const last = trained.records.slice(-Math.max(1, Math.round(sized.steps * 0.05)));
      metrics[`train_${name}_loss`] = last.reduce((a, r) => a + r.loss, 0) / last.length;
    }
    metrics[`params_${name}`] = parameterCount(trained.model);
    metrics[`seconds_${name}`] = trained.seconds;
    for (const [n, test] of sizes) {
      const r = tf.tidy(() => evaluatePointer(cfg, trained.model, test));
      answers.set(n, r.answers);
      record(name, n, r.metrics);
    }
  };
  try {
    for (const kind of cfg.models) await fitAndScore(kind, cfg, kind, examples, [...tests], true);
    for (const n of cfg.perSize?.n ?? []) {
      const sized: PointerExperimentConfig = { ...cfg, n_train: [n, n], steps: cfg.perSize!.steps };
      const test = tests.get(n) ?? testSet(cfg, ctx.seed, n);
      artifacts.tests.set(n, test);
      await fitAndScore(`pointer-n${n}`, sized, 'pointer', trainingSet(sized, ctx.seed), [[n, test]], false);
    }
    if (cfg.task === 'tsp') {
      for (const [n, test] of tests) for (const [name, m] of Object.entries(tspHeuristics(test))) record(name, n, m);
    }
  } catch (e) {
    artifacts.dispose();
    throw e;
  }
  return {
    metrics,
    tables: { results: rows },
    references: paperReferences(cfg, metrics),
    summary: summarize(cfg, metrics),
    artifacts,
  };
}

const HEADLINE: Record<TaskName, string> = {
  hull: 'accuracy',
  delaunay: 'triangle_coverage',
  tsp: 'gap',
  sort: 'accuracy',
};

function summarize(cfg: PointerExperimentConfig, metrics: Record<string, number>): string {
  const key = HEADLINE[cfg.task];
  const fmt = (v: number | undefined) =>
    v === undefined ? 'n/a' : cfg.task === 'tsp' ? `${(100 * v).toFixed(1)}%` : v.toFixed(3);
  const parts = cfg.n_test.map(
    (n) =>
      `n=${n}: ${[...cfg.models, ...(cfg.perSize?.n.includes(n) ? [`pointer-n${n}`] : [])].map((k) => `${k} ${fmt(metrics[`test_n${n}_${k}_${key}`])}`).join(', ')}`,
  );
  const ref = cfg.task === 'tsp' ? ` (gap to Held-Karp up to n=${HELD_KARP_MAX}, to 2-opt beyond)` : '';
  return `${cfg.task}, trained on n=${cfg.n_train.join('-')}; test ${key}${ref}: ${parts.join('; ')}.`;
}

const PAPER = 'Vinyals, Fortunato, Jaitly 2015, Pointer Networks, https://arxiv.org/abs/1506.03134';
const ALL: PointerModelKind[] = ['pointer', 'pointer-transformer', 'seq2seq', 'seq2seq-attn'];

const base = { hidden: 128, layers: 2, heads: 4, lr: 2e-3, clipNorm: 2, beam: 1 } as const;
/** Quick configs: a small model, the Ptr-Net against the plain seq2seq baseline, within two minutes on 2 cores. */
const quick = {
  ...base,
  hidden: 64,
  batch: 64,
  lr: 3e-3,
  testCount: 200,
  models: ['pointer', 'seq2seq'] as PointerModelKind[],
};

export const POINTER_EXPERIMENTS: Record<
  TaskName,
  { quick: PointerExperimentConfig; full: PointerExperimentConfig; description: string }
> = {
  hull: {
    description:
      'Convex hull: Ptr-Net (LSTM and transformer encoders) vs seq2seq and seq2seq+attention; exact accuracy, area coverage and invalid outputs up to n = 50.',
    quick: { ...quick, task: 'hull', n_train: [5, 10], n_test: [5, 10, 20], steps: 250 },
    full: {
      ...base,
      task: 'hull',
      n_train: [5, 10],
      n_test: [5, 10, 20, 50],
      models: ALL,
      steps: 2000,
      batch: 128,
      testCount: 500,
    },
  },
  delaunay: {
    description:
      'Delaunay triangulation as a sequence of triangles: triangle coverage and exact accuracy at n = 5..10.',
    quick: { ...quick, task: 'delaunay', n_train: [5, 6], n_test: [5, 6, 8], steps: 450 },
    // perSize: measured for n = 5 (seed 0, 500 test point sets, greedy): triangle coverage 75.9%, exact 39.2% (paper 93.0%, 80.7%).
    full: {
      ...base,
      task: 'delaunay',
      n_train: [5, 7],
      n_test: [5, 7, 10],
      models: ALL,
      steps: 2000,
      batch: 128,
      testCount: 500,
      perSize: { n: [5], steps: 4000 },
    },
  },
  tsp: {
    description: 'Planar TSP: mean tour length and gap to the Held-Karp optimum, against nearest neighbour and 2-opt.',
    quick: { ...quick, task: 'tsp', n_train: [5, 8], n_test: [5, 8, 10], steps: 600 },
    // perSize: measured for n = 10 (seed 0, test split of 500): gap 1.06% greedy, 0.96% with beam 5 (paper 2.88 vs 2.87).
    full: {
      ...base,
      task: 'tsp',
      n_train: [5, 10],
      n_test: [5, 10, 12, 20],
      models: ALL,
      steps: 2000,
      batch: 128,
      testCount: 500,
      beam: 5,
      perSize: { n: [5, 10], steps: 6000 },
    },
  },
  sort: {
    description:
      'Sorting numbers by pointing (not in the paper; the simplest pointer task): exact and per-position accuracy.',
    quick: {
      ...quick,
      task: 'sort',
      n_train: [5, 10],
      n_test: [5, 10, 15],
      steps: 150,
      models: ['pointer', 'pointer-transformer', 'seq2seq'],
    },
    full: {
      ...base,
      task: 'sort',
      n_train: [5, 10],
      n_test: [5, 10, 20],
      models: ALL,
      steps: 1500,
      batch: 128,
      testCount: 500,
    },
  },
};

export const pointerConfigSchema = obj<PointerExperimentConfig>({
  task: oneOf<TaskName>('hull', 'delaunay', 'tsp', 'sort'),
  n_train: tuple<[number, number]>(int({ min: 3 }), int({ min: 3 })),
  n_test: list(int({ min: 3 }), { min: 1 }),
  models: list(oneOf<PointerModelKind>(...ALL), { min: 1, unique: true }),
  hidden: int({ min: 1 }),
  layers: int({ min: 1 }),
  heads: int({ min: 1 }),
  steps: int({ min: 1 }),
  batch: int({ min: 1 }),
  lr: num({ gt: 0 }),
  clipNorm: num({ gt: 0 }),
  testCount: int({ min: 1 }),
  beam: int({ min: 1 }),
  perSize: opt(obj({ n: list(int({ min: 3 }), { min: 1 }), steps: int({ min: 1 }) })),
});

/** One experiment per task: `pointer-hull`, `pointer-delaunay`, `pointer-tsp`, `pointer-sort`. */
export const pointerExperiments: Record<
  TaskName,
  Experiment<PointerExperimentConfig, PointerArtifacts>
> = Object.fromEntries(
  (Object.entries(POINTER_EXPERIMENTS) as [TaskName, (typeof POINTER_EXPERIMENTS)[TaskName]][]).map(([task, e]) => [
    task,
    defineExperiment<PointerExperimentConfig, PointerArtifacts>({
      name: `pointer-${task}`,
      paper: PAPER,
      description: e.description,
      schema: pointerConfigSchema,
      quick: e.quick,
      full: e.full,
      run: runPointerExperiment,
    }),
  ]),
) as Record<TaskName, Experiment<PointerExperimentConfig, PointerArtifacts>>;

/**
 * Experiment `mqar-frontier`: multi-query associative recall (MQAR) accuracy on held-out sequences against model width
 * and against recurrent state bytes (Zoology, Arora et al., ICLR 2024, Fig. 2; BASED, Arora et al., ICML 2024, Fig. 2).
 *
 * Claims tested: (1) attention solves MQAR at every width, while the gated convolution (BaseConv) needs width that
 * grows with the number of pairs; a conv + attention hybrid recovers attention's recall; (2) at equal recurrent
 * state, BASED (Taylor linear attention + sliding window + short convolution) recalls at least as well as the other
 * fixed-state models (sliding window, elu+1 linear attention, Flowformer).
 *
 * Setting. Two-layer models, no MLP (the official sweeps' identity state mixer), layer 0 a BaseConv with kernel 3 and
 * layer 1 the mixer under test (the official Hybrid layout, model.ts `mixerStack`); the pure attention baseline has two
 * attention layers and learned positions. MQAR rows from lib/data/mqar-powerlaw.ts (the official power-law query
 * spacing, a = 0.01). Each (model, width) is trained with Adam at every learning rate of `lrs`; the one with the best
 * validation accuracy is kept and scored once on the test rows. Accuracy is per query; its 95% CI is over test rows
 * (1.96 · sd of the per-row accuracy / √rows). State bytes are measured by running the model's step form over one
 * full test row and counting the bytes of the state tensors it keeps after the last token (attention and the long
 * convolution keep every past token, so theirs grows with the sequence).
 *
 * How ours differs from the papers: 32 key and 32 value tokens (vocabSize 36) instead of 8,192; one task (seq 32, 4
 * pairs) instead of the papers' panels ((64, 4) to (256, 16) in Zoology; up to (1024, 256) at test time in BASED); a few
 * hundred steps on fresh batches instead of 64 epochs (Zoology) / 32 epochs (BASED) over 100k examples; widths 16-64
 * instead of 64-512; the BaseConv long kernel is an explicit parameter (LongConvolution), not the implicit filter of the
 * BASED sweeps; BASED's two attentions share layer 1 (the paper stacks them in separate layers); no dropout. The
 * attention row uses the official BASED sweep's layout [BaseConv k=3, attention] without positions; a plain two-layer
 * attention with learned positions ('attention-pe') needs more steps than our budget (0.43 validation accuracy after
 * 300 steps at d 32). The quick config trains one width (d 16); its summary says when attention itself has not learned
 * the task.
 */

import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import { type MqarSplit, mqarPowerLaw } from '../../../data/mqar-powerlaw.js';
import { defineExperiment, type ExperimentContext, type PaperReference } from '../../../experiments/contract.js';
import { int, list, num, obj, oneOf } from '../../../experiments/schema.js';
import { train } from '../../../train/loop.js';
import { hashSeed } from '../../../util/random.js';
import { meanCi } from '../../../util/stats.js';
import { MODEL_NAMES, type ModelName, MqarModel, mixerStack, runRecurrent } from './model.js';
import { paperFigureRows, zoologyReferences } from './paper-figures.js';

export interface FrontierConfig {
  /** Task tokens: keys are the lower half of [4, vocabSize), values the upper half. */
  vocabSize: number;
  seqLen: number;
  numPairs: number;
  /** Models of the width sweep. */
  models: ModelName[];
  widths: number[];
  /** Feature dim d' of linear-elu and BASED in the width sweep. */
  featureDim: number;
  /** Window of the sliding-window model and BASED in the width sweep. */
  window: number;
  /** The state sweep: BASED at width `stateWidth` over featureDims x windows, sliding window over windows. */
  stateWidth: number;
  stateFeatureDims: number[];
  stateWindows: number[];
  steps: number;
  batch: number;
  lrs: number[];
  validationRows: number;
  testRows: number;
}

/** One trained model. */
export interface FrontierRow {
  /** Which sweep it belongs to. */
  sweep: 'width' | 'state';
  model: ModelName;
  dModel: number;
  featureDim: number | null;
  window: number | null;
  params: number;
  /** Recurrent state bytes per sequence after a full row (measured from the step form's state tensors). */
  stateBytes: number;
  lr: number;
  validation_accuracy: number;
  test_accuracy: number;
  test_accuracy_ci95: number;
  seconds: number;
}

export interface FrontierArtifacts {
  rows: FrontierRow[];
  /** Per-step training loss of each row, by `${model}-d${dModel}[-f..][-w..]`. */
  curves: Record<string, number[]>;
  dispose(): void;
}

export const frontierSchema = obj<FrontierConfig>({
  vocabSize: int({ min: 8, max: 8192 }),
  seqLen: int({ min: 8, max: 512 }),
  numPairs: int({ min: 1, max: 128 }),
  models: list(oneOf(...MODEL_NAMES), { min: 1, unique: true }),
  widths: list(int({ min: 4, max: 256 }), { min: 1, unique: true }),
  featureDim: int({ min: 1, max: 32 }),
  window: int({ min: 1, max: 512 }),
  stateWidth: int({ min: 4, max: 256 }),
  stateFeatureDims: list(int({ min: 1, max: 32 }), { min: 0, unique: true }),
  stateWindows: list(int({ min: 1, max: 512 }), { min: 0, unique: true }),
  steps: int({ min: 1, max: 100_000 }),
  batch: int({ min: 1, max: 1024 }),
  lrs: list(num({ min: 1e-6, max: 1 }), { min: 1, unique: true }),
  validationRows: int({ min: 8, max: 100_000 }),
  testRows: int({ min: 8, max: 100_000 }),
});

/** Masked cross-entropy over the graded positions: logits [b, T, V], targets [b, T] int32, mask [b, T]. */
function recallLoss(logits: tf.Tensor3D, targets: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const picked = logp.mul(tf.oneHot(targets as tf.Tensor2D, logits.shape[2])).sum(-1);
    return picked.mul(mask).sum().div(mask.sum()).neg() as tf.Scalar;
  });
}

/** Per-row accuracy on graded positions, in chunks of 256 rows. */
function rowAccuracies(model: MqarModel, cfg: FrontierConfig, split: MqarSplit, rows: number, seed: number): number[] {
  const out: number[] = [];
  for (let start = 0; start < rows; start += 256) {
    const n = Math.min(256, rows - start);
    const data = mqarPowerLaw({
      batch: n,
      seqLen: cfg.seqLen,
      vocabSize: cfg.vocabSize,
      numPairs: cfg.numPairs,
      seed: hashSeed(seed * 7919 + start),
      split,
    });
    const pred = tf.tidy(() => {
      const { inputs } = data.toTensors();
      return model.forward(inputs).argMax(-1);
    });
    const p = pred.dataSync();
    pred.dispose();
    for (let r = 0; r < n; r++) {
      let hit = 0;
      let all = 0;
      for (let t = 0; t < cfg.seqLen; t++) {
        const i = r * cfg.seqLen + t;
        if (data.lossMask[i] === 0) continue;
        all++;
        if (p[i] === data.targets[i]) hit++;
      }
      out.push(hit / all);
    }
  }
  return out;
}

interface Spec {
  sweep: 'width' | 'state';
  model: ModelName;
  dModel: number;
  featureDim: number;
  window: number;
}

function label(s: Pick<Spec, 'model' | 'dModel'> & { featureDim: number | null; window: number | null }): string {
  const f = s.model === 'linear-elu' || s.model === 'based' ? `-f${s.featureDim}` : '';
  const w = s.model === 'sliding' || s.model === 'based' ? `-w${s.window}` : '';
  return `${s.model}-d${s.dModel}${f}${w}`;
}

async function trainOne(
  spec: Spec,
  cfg: FrontierConfig,
  ctx: ExperimentContext,
): Promise<{ row: FrontierRow; curve: number[] }> {
  const t0 = performance.now();
  const stack = mixerStack(spec.model, { featureDim: spec.featureDim, window: spec.window });
  let best: { model: MqarModel; lr: number; acc: number; curve: number[] } | undefined;
  for (const lr of cfg.lrs) {
    const model = new MqarModel({
      vocabSize: cfg.vocabSize,
      seqLen: cfg.seqLen,
      dModel: spec.dModel,
      seed: ctx.seed,
      ...stack,
    });
    const res = await train({
      variables: model.params(),
      steps: cfg.steps,
      optimizer: { type: 'adamw', lr, weightDecay: 0.1 },
      schedule: { type: 'cosine', warmup: Math.min(50, Math.floor(cfg.steps / 10)) },
      clipNorm: 1,
      seed: ctx.seed,
      progress: false,
      dataframe: false,
      loss: (step) => {
        const data = mqarPowerLaw({
          batch: cfg.batch,
          seqLen: cfg.seqLen,
          vocabSize: cfg.vocabSize,
          numPairs: cfg.numPairs,
          seed: hashSeed(stepSeed(ctx.seed, step)),
          split: 'train',
        });
        const { inputs, targets, lossMask } = data.toTensors();
        return recallLoss(model.forward(inputs), targets, lossMask);
      },
    });
    const acc = meanCi(rowAccuracies(model, cfg, 'validation', cfg.validationRows, ctx.seed + 1)).mean;
    const curve = res.records.map((r) => r.loss);
    ctx.log(
      `${label(spec)} lr ${lr}: validation accuracy ${acc.toFixed(3)}${res.stopped ? ` (${res.stopped.reason})` : ''}`,
    );
    if (!best || acc > best.acc) {
      best?.model.dispose();
      best = { model, lr, acc, curve };
    } else model.dispose();
  }
  if (!best) throw new Error('mqar-frontier: lrs is empty');
  const test = meanCi(rowAccuracies(best.model, cfg, 'test', cfg.testRows, ctx.seed + 2));
  const one = mqarPowerLaw({
    batch: 1,
    seqLen: cfg.seqLen,
    vocabSize: cfg.vocabSize,
    numPairs: cfg.numPairs,
    seed: ctx.seed + 3,
    split: 'test',
  });
  const inputs = tf.tensor2d(one.inputs, [1, cfg.seqLen], 'int32');
  const rec = runRecurrent(best.model, inputs);
  tf.dispose([inputs, rec.logits]);
  const row: FrontierRow = {
    sweep: spec.sweep,
    model: spec.model,
    dModel: spec.dModel,
    featureDim: spec.model === 'linear-elu' || spec.model === 'based' ? spec.featureDim : null,
    window: spec.model === 'sliding' || spec.model === 'based' ? spec.window : null,
    params: best.model.paramCount(),
    stateBytes: rec.bytes[rec.bytes.length - 1],
    lr: best.lr,
    validation_accuracy: best.acc,
    test_accuracy: test.mean,
    test_accuracy_ci95: test.ci95,
    seconds: (performance.now() - t0) / 1000,
  };
  best.model.dispose();
  return { row, curve: best.curve };
}

/** The paper values we can read as numbers, attached to our rows at the papers' claim (attention solves MQAR). */
function references(rows: FrontierRow[], cfg: FrontierConfig): PaperReference[] {
  return rows
    .filter((r) => r.sweep === 'width' && r.model === 'attention')
    .map((r) => ({
      metric: `attention.d${r.dModel}.test_accuracy`,
      paper: 1,
      source:
        'Zoology (Arora et al., ICLR 2024) Fig. 2 and Sec. 3: attention solves MQAR (accuracy ≈ 1.0) at every d_model 64-512 for (seq, pairs) (64, 4), (128, 8), (256, 16), vocab 8,192; read off the figure, approximate',
      setting:
        `ours: 2 layers [BaseConv k=3, attention], no MLP, d ${r.dModel}; one task (seq ${cfg.seqLen}, ${cfg.numPairs} pairs, ` +
        `vocab ${cfg.vocabSize}), ${cfg.steps} Adam steps of ${cfg.batch} fresh rows per learning rate. Paper: d 64-512, ` +
        'vocab 8,192, (seq, pairs) (64, 4) to (256, 16), 64 epochs over 100k training examples',
    }));
}

function summarize(rows: FrontierRow[], cfg: FrontierConfig): string {
  const width = rows.filter((r) => r.sweep === 'width');
  const at = (m: ModelName) => width.filter((r) => r.model === m).sort((a, b) => a.dModel - b.dModel);
  const fmt = (r: FrontierRow) => `${r.test_accuracy.toFixed(2)}±${r.test_accuracy_ci95.toFixed(2)}`;
  const parts: string[] = [];
  for (const m of cfg.models) {
    const rs = at(m);
    if (rs.length) parts.push(`${m} ${rs.map((r) => `d${r.dModel} ${fmt(r)}`).join(', ')}`);
  }
  const attn = at('attention');
  const learned = attn.length > 0 && Math.max(...attn.map((r) => r.test_accuracy)) > 0.9;
  let s = `MQAR (seq ${cfg.seqLen}, ${cfg.numPairs} pairs) test accuracy: ${parts.join('; ')}.`;
  if (!learned && attn.length)
    s += ` Attention itself stays below 0.9 here, so this run is too small (too few steps) to test the papers' claims.`;
  const state = rows.filter((r) => r.sweep === 'state');
  const point = (r: FrontierRow) => `${label(r)} ${r.stateBytes} B → ${r.test_accuracy.toFixed(2)}`;
  if (state.length) s += ` State sweep at d ${cfg.stateWidth} (bytes → accuracy): ${state.map(point).join('; ')}.`;
  return s;
}

export const mqarFrontier = defineExperiment<FrontierConfig, FrontierArtifacts>({
  name: 'mqar-frontier',
  paper:
    'Arora et al., "Zoology: Measuring and Improving Recall in Efficient Language Models", ICLR 2024, https://arxiv.org/abs/2312.04927; Arora et al., "Simple linear attention language models balance the recall-throughput tradeoff" (BASED), ICML 2024, https://arxiv.org/abs/2402.18668',
  description:
    'MQAR recall on held-out sequences vs. model width for attention, BaseConv, a conv+attention hybrid, sliding window, elu+1 linear attention, BASED and Flowformer; and BASED (feature dim x window) vs. sliding window on accuracy vs. measured recurrent state bytes.',
  schema: frontierSchema,
  quick: {
    vocabSize: 36,
    seqLen: 32,
    numPairs: 4,
    models: ['attention', 'baseconv', 'hybrid', 'sliding', 'linear-elu', 'based', 'flowformer'],
    widths: [16],
    featureDim: 8,
    window: 4,
    stateWidth: 16,
    stateFeatureDims: [2],
    stateWindows: [4],
    steps: 300,
    batch: 32,
    lrs: [1e-2],
    validationRows: 128,
    testRows: 512,
  },
  full: {
    vocabSize: 36,
    seqLen: 32,
    numPairs: 4,
    models: ['attention', 'baseconv', 'hybrid', 'sliding', 'linear-elu', 'based', 'flowformer'],
    widths: [16, 32, 64],
    featureDim: 8,
    window: 4,
    stateWidth: 32,
    stateFeatureDims: [2, 4],
    stateWindows: [4, 8],
    steps: 400,
    batch: 32,
    lrs: [3e-3, 1e-2],
    validationRows: 256,
    testRows: 1000,
  },
  async run(cfg, ctx) {
    const specs: Spec[] = [];
    for (const model of cfg.models)
      for (const dModel of cfg.widths)
        specs.push({ sweep: 'width', model, dModel, featureDim: cfg.featureDim, window: cfg.window });
    for (const window of cfg.stateWindows) {
      specs.push({ sweep: 'state', model: 'sliding', dModel: cfg.stateWidth, featureDim: 0, window });
      for (const featureDim of cfg.stateFeatureDims)
        specs.push({ sweep: 'state', model: 'based', dModel: cfg.stateWidth, featureDim, window });
    }
    const rows: FrontierRow[] = [];
    const curves: Record<string, number[]> = {};
    const done = new Map<string, { row: FrontierRow; curve: number[] }>();
    for (const spec of specs) {
      // A state-sweep point that the width sweep already trained is reused, not retrained.
      const same = done.get(label(spec));
      const { row, curve } = same
        ? { row: { ...same.row, sweep: spec.sweep }, curve: same.curve }
        : await trainOne(spec, cfg, ctx);
      done.set(label(spec), { row, curve });
      rows.push(row);
      curves[`${spec.sweep}:${label(spec)}`] = curve;
      ctx.log(
        `${spec.sweep} ${label(spec)}: test ${row.test_accuracy.toFixed(3)} ± ${row.test_accuracy_ci95.toFixed(3)}, state ${row.stateBytes} B, ${row.seconds.toFixed(1)} s`,
      );
    }
    const metrics: Record<string, number> = {};
    for (const r of rows) {
      const key = r.sweep === 'width' ? `${r.model}.d${r.dModel}` : `state.${label(r)}`;
      metrics[`${key}.test_accuracy`] = r.test_accuracy;
      metrics[`${key}.test_accuracy_ci95`] = r.test_accuracy_ci95;
      metrics[`${key}.validation_accuracy`] = r.validation_accuracy;
    }
    metrics.params_total = rows.reduce((a, r) => a + r.params, 0);
    const table = rows.map((r) => ({ ...r }));
    return {
      metrics,
      tables: { frontier: table, paper_figures: paperFigureRows() },
      references: [
        ...references(rows, cfg),
        ...zoologyReferences(rows.filter((r) => r.sweep === 'width' && r.model === 'baseconv')),
      ],
      summary: summarize(rows, cfg),
      artifacts: { rows, curves, dispose: () => undefined },
    };
  },
});

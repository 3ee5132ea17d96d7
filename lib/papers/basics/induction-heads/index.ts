/**
 * Induction heads need two layers.
 *
 * Paper: Olsson et al., 2022, "In-context Learning and Induction Heads", https://arxiv.org/abs/2209.11895
 * (after Elhage et al., 2021, "A Mathematical Framework for Transformer Circuits").
 *
 * Task (lib/data/repeat.ts): a segment of random tokens repeated, its length varying per row. Predicting the repeat needs an
 * induction circuit: a previous-token head (layer 1) writes "the token before me was A" into each position, and an
 * induction head (layer 2) at the current token A attends to the position after A's previous occurrence and copies
 * it. A one-layer model cannot compose the two and stays far below. The induction score of a head is its mean
 * attention mass from each graded position t to the tokens after the earlier occurrences of the current token
 * (t - L + 1, t - 2L + 1, ...), on test rows.
 */

import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import { type RepeatBatch, repeatTask } from '../../../data/repeat.js';
import { artifactCodec, tokenBatchKind, toyLMKind } from '../../../experiments/codecs.js';
import { defineExperiment, type ExperimentContext } from '../../../experiments/contract.js';
import { int, list, num, obj } from '../../../experiments/schema.js';
import { ToyLM } from '../../../layers/toylm.js';
import { type StepRecord, train } from '../../../train/loop.js';
import { transformerRecipe } from '../../../train/recipe.js';

export interface InductionExperimentConfig {
  seqLen: number;
  vocabSize: number;
  /** Segment lengths drawn from [minLen, maxLen]. */
  minLen: number;
  maxLen: number;
  batch: number;
  steps: number;
  lr: number;
  dModel: number;
  heads: number;
  /** Models compared, by layer count. */
  layers: number[];
  testRows: number;
}

export interface InductionModelResult {
  layers: number;
  test_accuracy: number;
  test_loss: number;
  train_loss: number;
  /** Best head's induction score and where it is. */
  test_induction_score: number;
  best_head: string;
  /** [layer][head] induction scores on the test split. */
  scores: number[][];
  params: number;
  seconds: number;
}

/** One trained model of a run: what the notebook draws its curves and attention patterns from. */
export interface InductionTrained {
  layers: number;
  model: ToyLM;
  records: StepRecord[];
  /** [layer][head] induction scores and previous-token scores (attention from t to t - 1) on the test split. */
  scores: number[][];
  previousTokenScores: number[][];
}

/** The experiment's artifacts: every trained model and the held-out rows they were scored on. */
export interface InductionArtifacts {
  /** In the config's order of `layers`. */
  models: InductionTrained[];
  test: RepeatBatch;
  /** Disposes every model. */
  dispose(): void;
}

/** Train one model and score it on `test`; returns its metrics and the trained model (caller disposes). */
export async function trainInductionModel(
  cfg: InductionExperimentConfig,
  layers: number,
  test: RepeatBatch,
  ctx: Pick<ExperimentContext, 'seed' | 'progress'>,
): Promise<{ trained: InductionTrained; result: InductionModelResult }> {
  const t0 = performance.now();
  const model = new ToyLM({
    vocab: cfg.vocabSize,
    dModel: cfg.dModel,
    heads: cfg.heads,
    layers,
    maxLen: cfg.seqLen,
    positional: 'learned',
    seed: ctx.seed,
  });
  const task = { seqLen: cfg.seqLen, vocabSize: cfg.vocabSize, minLen: cfg.minLen, maxLen: cfg.maxLen };
  const batches = function* () {
    for (let step = 0; ; step++)
      yield repeatTask({ ...task, batch: cfg.batch, seed: stepSeed(ctx.seed, step), split: 'train' });
  };
  const run = await train({
    variables: model.variables(),
    batches: batches(),
    steps: cfg.steps,
    ...transformerRecipe(cfg.steps, cfg.lr),
    seed: ctx.seed,
    progress: ctx.progress,
    dataframe: false,
    loss: (_step, b) => {
      const t = b.toTensors();
      return model.loss(t.inputs, t.targets, t.lossMask);
    },
  });
  if (run.stopped) throw new Error(`induction (${layers} layer): training stopped: ${run.stopped.message}`);
  const { accuracy, loss, scores, previousTokenScores } = evaluateInduction(model, test);
  let best = { s: -1, at: '' };
  scores.forEach((row, l) => row.forEach((s, h) => (s > best.s ? (best = { s, at: `L${l}H${h}` }) : undefined)));
  const last = run.records.slice(-Math.max(1, Math.round(cfg.steps * 0.05)));
  return {
    trained: { layers, model, records: run.records, scores, previousTokenScores },
    result: {
      layers,
      test_accuracy: accuracy,
      test_loss: loss,
      train_loss: last.reduce((a, r) => a + r.loss, 0) / last.length,
      test_induction_score: best.s,
      best_head: best.at,
      scores,
      params: model.parameterCount(),
      seconds: (performance.now() - t0) / 1000,
    },
  };
}

/**
 * Accuracy and loss over the graded positions, and per head its induction score and its previous-token score (mean
 * attention from each graded position t to t - 1), on a batch.
 */
export function evaluateInduction(
  model: ToyLM,
  batch: RepeatBatch,
): { accuracy: number; loss: number; scores: number[][]; previousTokenScores: number[][] } {
  const { inputs, targets, lossMask } = batch.toTensors();
  const { logits, cache } = model.runWithCache(inputs);
  try {
    const [accuracy, loss] = tf.tidy(() => {
      const n = lossMask.sum();
      const hit = logits.argMax(-1).toInt().equal(targets).toFloat().mul(lossMask).sum().div(n);
      const ce = tf
        .logSoftmax(logits)
        .mul(tf.oneHot(targets, batch.vocabSize))
        .sum(-1)
        .mul(lossMask)
        .sum()
        .div(n)
        .neg();
      return [hit.dataSync()[0], ce.dataSync()[0]];
    });
    const S = batch.seqLen;
    const H = model.config.heads;
    const patterns = Array.from({ length: model.config.layers }, (_, l) =>
      cache.get(`blocks.${l}.attn.hook_pattern`).dataSync(),
    ); // [b, h, q, k]
    /** Mean total attention from each graded position t to the keys `keys(t, L)`, per layer and head. */
    const headScores = (keys: (t: number, L: number, add: (j: number) => void) => void) =>
      patterns.map((w) =>
        Array.from({ length: H }, (_, h) => {
          let acc = 0;
          let count = 0;
          batch.lengths.forEach((L, b) => {
            for (let t = L + 1; t < S; t++) {
              keys(t, L, (j) => (acc += w[((b * H + h) * S + t) * S + j]));
              count++;
            }
          });
          return acc / count;
        }),
      );
    // Every earlier copy's successor: t - L + 1, t - 2L + 1, ... (the segment may have repeated several times).
    const scores = headScores((t, L, add) => {
      for (let j = t + 1 - L; j >= 1; j -= L) add(j);
    });
    const previousTokenScores = headScores((t, _L, add) => add(t - 1));
    return { accuracy, loss, scores, previousTokenScores };
  } finally {
    tf.dispose([inputs, targets, lossMask, logits]);
    cache.dispose();
  }
}

export const inductionConfigSchema = obj<InductionExperimentConfig>({
  seqLen: int({ min: 4, max: 4096 }),
  vocabSize: int({ min: 4 }),
  minLen: int({ min: 1 }),
  maxLen: int({ min: 1 }),
  batch: int({ min: 1 }),
  steps: int({ min: 1 }),
  lr: num({ gt: 0 }),
  dModel: int({ min: 1 }),
  heads: int({ min: 1 }),
  layers: list(int({ min: 1, max: 12 }), { min: 1, unique: true }),
  testRows: int({ min: 1 }),
});

export const inductionHeads = defineExperiment<InductionExperimentConfig, InductionArtifacts>({
  name: 'induction-heads',
  schema: inductionConfigSchema,
  paper: 'Olsson et al. 2022, In-context Learning and Induction Heads, https://arxiv.org/abs/2209.11895',
  description:
    'One-layer vs two-layer ToyLM on repeated random segments of varying length: test accuracy on the repeats and the best head’s induction score.',
  quick: {
    seqLen: 24,
    vocabSize: 16,
    minLen: 3,
    maxLen: 8,
    batch: 32,
    steps: 400,
    lr: 5e-3,
    dModel: 32,
    heads: 4,
    layers: [1, 2],
    testRows: 128,
  },
  full: {
    seqLen: 64,
    vocabSize: 36,
    minLen: 4,
    maxLen: 24,
    batch: 64,
    steps: 1500,
    lr: 2e-3,
    dModel: 64,
    heads: 4,
    layers: [1, 2],
    testRows: 512,
  },
  artifactCodec: artifactCodec([toyLMKind, tokenBatchKind]),
  async run(cfg, ctx) {
    const rows: InductionModelResult[] = [];
    const test = repeatTask({
      seqLen: cfg.seqLen,
      vocabSize: cfg.vocabSize,
      minLen: cfg.minLen,
      maxLen: cfg.maxLen,
      batch: cfg.testRows,
      seed: ctx.seed,
      split: 'test',
    });
    const models: InductionTrained[] = [];
    const artifacts: InductionArtifacts = { models, test, dispose: () => models.forEach((m) => m.model.dispose()) };
    try {
      for (const layers of cfg.layers) {
        ctx.log(`training the ${layers}-layer model (${cfg.steps} steps)`);
        const { trained, result } = await trainInductionModel(cfg, layers, test, ctx);
        models.push(trained);
        rows.push(result);
      }
    } catch (e) {
      artifacts.dispose();
      throw e;
    }
    const metrics: Record<string, number> = {};
    for (const r of rows) {
      metrics[`test_accuracy_${r.layers}layer`] = r.test_accuracy;
      metrics[`test_loss_${r.layers}layer`] = r.test_loss;
      metrics[`train_loss_${r.layers}layer`] = r.train_loss;
      metrics[`test_induction_score_${r.layers}layer`] = r.test_induction_score;
      metrics[`params_${r.layers}layer`] = r.params;
    }
    // Guessing uniformly among the segment's tokens seen so far is the best a model without induction can do cheaply.
    metrics.test_chance_accuracy = 1 / ((cfg.minLen + cfg.maxLen) / 2);
    const [one, two] = [rows.find((r) => r.layers === 1), rows.find((r) => r.layers === 2)];
    return {
      metrics,
      tables: {
        models: rows.map(({ scores: _s, ...r }) => ({
          ...r,
          test_accuracy: +r.test_accuracy.toFixed(4),
          test_induction_score: +r.test_induction_score.toFixed(4),
        })),
        heads: models.flatMap((m) =>
          m.scores.flatMap((hs, l) =>
            hs.map((s, h) => ({
              layers: m.layers,
              layer: l,
              head: h,
              induction_score: +s.toFixed(4),
              previous_token_score: +m.previousTokenScores[l][h].toFixed(4),
            })),
          ),
        ),
      },
      summary:
        one && two
          ? `On held-out test rows the 2-layer model predicts the repeats with accuracy ${two.test_accuracy.toFixed(3)} (best head ${two.best_head}, induction score ${two.test_induction_score.toFixed(2)}); the 1-layer model reaches ${one.test_accuracy.toFixed(3)} (its best head scores ${one.test_induction_score.toFixed(2)}).`
          : `Accuracy by layer count: ${rows.map((r) => `${r.layers}: ${r.test_accuracy.toFixed(3)}`).join(', ')}.`,
      artifacts,
    };
  },
});

/**
 * routing-lm: dense vs local vs Routing Transformer attention in a small char-level LM, and on a planted long-range
 * recall task where local attention cannot see the answer.
 *
 * Paper: Roy, Saffar, Vaswani & Grangier, TACL 2021, "Efficient Content-Based Sparse Attention with Routing
 * Transformers", https://arxiv.org/abs/2003.05997
 *
 * (a) Char LM on Moby-Dick: test-split bits per character and training time at equal steps.
 * (b) Planted recall (lib/data `recallTask`): `pairs` value-key pairs right after BOS, filler, then the keys are asked again at
 *     the end of the row and the model must output each key's value. The pairs are far before the questions, outside
 *     the local window, so local attention is at chance (1 / values). The stored pair is written value first so that the
 *     lookup is content-based routing's own strength: a local head writes "the value before me" into the key's
 *     position, and a routing head with shared queries/keys puts the asked key and its earlier occurrence (the same
 *     token) in one cluster and reads that value. (Written key first, the asked key would have to match the position
 *     *after* its earlier occurrence, a token of different content, which shared-QK clustering does not group.)
 */

import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import { textDataset } from '../../../data/corpus.js';
import { type RecallConfig, recallTask } from '../../../data/recall.js';
import { defineExperiment, type ExperimentContext } from '../../../experiments/contract.js';
import { int, list, num, obj, oneOf } from '../../../experiments/schema.js';
import { train } from '../../../train/loop.js';
import type { AttentionKind } from '../method.js';
import { lmKindOf, lmMethods } from '../methods.js';
import { SparseLM } from '../model.js';

export interface RoutingLMConfig {
  models: AttentionKind[];
  dModel: number;
  heads: number;
  layers: number;
  window: number;
  clusters: number;
  decay: number;
  lr: number;
  lm: { seqLen: number; batch: number; steps: number; testBatches: number };
  recall: RecallConfig & { batch: number; steps: number; testRows: number };
}

function makeModel(cfg: RoutingLMConfig, kind: AttentionKind, vocab: number, seed: number): SparseLM {
  return new SparseLM({
    vocab,
    dModel: cfg.dModel,
    heads: cfg.heads,
    layers: cfg.layers,
    attention: kind,
    window: cfg.window,
    clusters: cfg.clusters,
    decay: cfg.decay,
    seed,
  });
}

async function fit(
  model: SparseLM,
  steps: number,
  lr: number,
  next: (step: number) => { inputs: tf.Tensor; targets: tf.Tensor; lossMask: tf.Tensor },
  ctx: Pick<ExperimentContext, 'seed' | 'progress'>,
) {
  const routing = model.config.attention === 'routing';
  const run = await train({
    variables: model.variables(),
    steps,
    optimizer: { type: 'adamw', lr, weightDecay: 0.01 },
    schedule: { type: 'cosine', warmup: Math.round(steps * 0.05) },
    clipNorm: 1,
    seed: ctx.seed,
    progress: ctx.progress,
    dataframe: false,
    loss: (step) => {
      const b = next(step);
      try {
        return model.loss(b.inputs, b.targets, b.lossMask, { collect: routing });
      } finally {
        tf.dispose([b.inputs, b.targets, b.lossMask]);
      }
    },
    onStep: () => {
      if (routing) model.updateCentroids();
    },
  });
  if (run.stopped) throw new Error(`routing-lm (${model.config.attention}): training stopped: ${run.stopped.message}`);
  const last = run.records.slice(-Math.max(1, Math.round(steps * 0.05)));
  return {
    trainLoss: last.reduce((a, r) => a + r.loss, 0) / last.length,
    seconds: run.records[run.records.length - 1]?.seconds ?? 0,
  };
}

export interface RoutingLMRow {
  model: AttentionKind;
  test_bpc: number;
  train_bpc: number;
  lm_seconds: number;
  test_recall_accuracy: number;
  recall_seconds: number;
  params: number;
}

export const routingLmSchema = obj<RoutingLMConfig>({
  models: list(oneOf(...lmMethods().map(lmKindOf)), { min: 1, unique: true }),
  dModel: int({ min: 1 }),
  heads: int({ min: 1 }),
  layers: int({ min: 1 }),
  window: int({ min: 1 }),
  clusters: int({ min: 1 }),
  decay: num({ min: 0, max: 1 }),
  lr: num({ gt: 0 }),
  lm: obj({ seqLen: int({ min: 2 }), batch: int({ min: 1 }), steps: int({ min: 1 }), testBatches: int({ min: 1 }) }),
  recall: obj({
    seqLen: int({ min: 2 }),
    pairs: int({ min: 1 }),
    keys: int({ min: 1 }),
    values: int({ min: 1 }),
    filler: int({ min: 1 }),
    batch: int({ min: 1 }),
    steps: int({ min: 1 }),
    testRows: int({ min: 1 }),
  }),
});

export const routingLm = defineExperiment<RoutingLMConfig>({
  schema: routingLmSchema,
  name: 'routing-lm',
  paper:
    'Roy et al. 2021, Efficient Content-Based Sparse Attention with Routing Transformers, https://arxiv.org/abs/2003.05997',
  description:
    'Char LM on Moby-Dick (test bits per character, training time) and planted long-range recall (accuracy) for dense, local and routing attention at equal steps.',
  quick: {
    models: ['dense', 'local', 'routing'],
    dModel: 64,
    heads: 4,
    layers: 2,
    window: 16,
    clusters: 4,
    decay: 0.95,
    lr: 3e-3,
    lm: { seqLen: 128, batch: 8, steps: 30, testBatches: 2 },
    recall: { seqLen: 64, pairs: 2, keys: 8, values: 8, filler: 8, batch: 16, steps: 80, testRows: 64 },
  },
  full: {
    models: ['dense', 'local', 'routing'],
    dModel: 64,
    heads: 4,
    layers: 2,
    window: 16,
    clusters: 4,
    decay: 0.99,
    lr: 2e-3,
    lm: { seqLen: 128, batch: 16, steps: 300, testBatches: 16 },
    recall: { seqLen: 128, pairs: 4, keys: 16, values: 8, filler: 16, batch: 32, steps: 600, testRows: 256 },
  },
  async run(cfg, ctx) {
    const trainSet = textDataset({ tokenizer: 'char', split: 'train' });
    const testSet = textDataset({ tokenizer: 'char', split: 'test' });
    const vocab = trainSet.tokenizer.vocabSize;
    const rows: RoutingLMRow[] = [];
    for (const kind of cfg.models) {
      ctx.log(`${kind}: char LM, ${cfg.lm.steps} steps`);
      const lm = makeModel(cfg, kind, vocab, ctx.seed);
      const lmFit = await fit(
        lm,
        cfg.lm.steps,
        cfg.lr,
        (step) => trainSet.sample({ batch: cfg.lm.batch, seqLen: cfg.lm.seqLen, seed: ctx.seed, step }).toTensors(),
        ctx,
      );
      let ce = 0;
      for (let i = 0; i < cfg.lm.testBatches; i++) {
        const t = testSet.sample({ batch: cfg.lm.batch, seqLen: cfg.lm.seqLen, seed: 12345, step: i }).toTensors();
        const l = lm.loss(t.inputs, t.targets, t.lossMask);
        ce += l.dataSync()[0] / cfg.lm.testBatches;
        tf.dispose([l, t.inputs, t.targets, t.lossMask]);
      }
      const params = lm.parameterCount();
      lm.dispose();
      ctx.log(`${kind}: planted recall, ${cfg.recall.steps} steps`);
      const rc = cfg.recall;
      const probe = recallTask(rc, 1, 0, 'train');
      const rm = makeModel(cfg, kind, probe.vocabSize, ctx.seed + 1);
      const rFit = await fit(
        rm,
        rc.steps,
        cfg.lr,
        (step) => recallTask(rc, rc.batch, stepSeed(ctx.seed, step), 'train').toTensors(),
        ctx,
      );
      const test = recallTask(rc, rc.testRows, ctx.seed, 'test').toTensors();
      const acc = tf.tidy(() => {
        const logits = rm.forward(test.inputs);
        const hit = logits
          .argMax(-1)
          .toInt()
          .equal(test.targets)
          .toFloat()
          .mul(test.lossMask)
          .sum()
          .div(test.lossMask.sum());
        return hit.dataSync()[0];
      });
      tf.dispose([test.inputs, test.targets, test.lossMask]);
      rm.dispose();
      rows.push({
        model: kind,
        test_bpc: ce / Math.LN2,
        train_bpc: lmFit.trainLoss / Math.LN2,
        lm_seconds: lmFit.seconds,
        test_recall_accuracy: acc,
        recall_seconds: rFit.seconds,
        params,
      });
    }
    const metrics: Record<string, number> = { test_recall_chance: 1 / cfg.recall.values };
    for (const r of rows) {
      metrics[`test_bpc_${r.model}`] = r.test_bpc;
      metrics[`train_bpc_${r.model}`] = r.train_bpc;
      metrics[`test_recall_accuracy_${r.model}`] = r.test_recall_accuracy;
      metrics[`seconds_lm_${r.model}`] = r.lm_seconds;
      metrics[`seconds_recall_${r.model}`] = r.recall_seconds;
      metrics[`params_${r.model}`] = r.params;
    }
    const f = (x: number) => +x.toFixed(4);
    return {
      metrics,
      tables: {
        models: rows.map((r) => ({
          ...r,
          test_bpc: f(r.test_bpc),
          train_bpc: f(r.train_bpc),
          test_recall_accuracy: f(r.test_recall_accuracy),
          lm_seconds: f(r.lm_seconds),
          recall_seconds: f(r.recall_seconds),
        })),
      },
      summary: `Test bits/char: ${rows.map((r) => `${r.model} ${r.test_bpc.toFixed(3)}`).join(', ')}. Planted recall accuracy (chance ${(1 / cfg.recall.values).toFixed(3)}): ${rows.map((r) => `${r.model} ${r.test_recall_accuracy.toFixed(3)}`).join(', ')}.`,
    };
  },
});

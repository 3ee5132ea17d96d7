/**
 * Experiment `retrieval-heads` (Wu et al., ICLR 2025, https://arxiv.org/abs/2404.15574): a few heads do the
 * copy-paste of long-context retrieval; masking them collapses needle retrieval, masking as many random heads does not.
 *
 * A ToyLM (4 layers x 4 heads) trains on language modelling of Markov-chain filler plus needle copy (lib/data/needles.ts:
 * `SEP k v1..vm` needles in the haystack, `QUERY k` asks for one, the answer copies its values). Retrieval scores per
 * head are measured on the validation split (top-1 attention inside the needle on the token being emitted, the
 * official definition); the heads are ranked there. On the test split: needle exact-match accuracy (every value right;
 * one teacher-forced pass, which for exact match equals greedy decoding) with the top-k heads masked (their outputs
 * zeroed through hook_z) against k random heads drawn from the rest (several draws), with 95% confidence intervals.
 *
 * How ours differs from the paper: the paper scores pretrained 7B-70B models on natural-text Needle-in-a-Haystack over
 * 1K-100K contexts and masks tens of heads out of about a thousand; we train a 16-head toy model on a synthetic task
 * with contexts of tens of tokens, so "k heads" is a much larger share of the model (k = 1 is 6% of the heads), and
 * random masks are drawn from the heads outside the top k (as the paper masks random non-retrieval heads). Like the
 * paper's NIAH, quick and full hide one needle per haystack (the generator takes more: with two keyed needles, 48
 * tokens and 1000 steps our 4x4 model reached only 0.07 exact match, too little to mask). In contexts this short,
 * top-1 hits inside the needle come easily, so far more heads clear the paper's 0.1 threshold than its under 5%: the
 * ranking, not the threshold, is what carries over. The paper's numbers beside ours: that share (abstract and §3).
 */
import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import { type NeedleBatch, needleTask } from '../../../data/needles.js';
import { artifactCodec, tokenBatchKind, toyLMKind } from '../../../experiments/codecs.js';
import { defineExperiment, type PaperReference } from '../../../experiments/contract.js';
import { int, list, num, obj } from '../../../experiments/schema.js';
import { ToyLM } from '../../../layers/toylm.js';
import { type StepRecord, train } from '../../../train/loop.js';
import { transformerRecipe } from '../../../train/recipe.js';
import { Rng } from '../../../util/random.js';
import { proportionCi95, sharedRowsCi95 } from '../../../util/stats.js';
import { maskHeads, rankHeads, recordPatterns, retrievalScores } from './scores.js';

export interface RetrievalHeadsConfig {
  seqLen: number;
  needles: number;
  valueLen: number;
  keys: number;
  values: number;
  vocabSize: number;
  dModel: number;
  heads: number;
  layers: number;
  steps: number;
  batch: number;
  lr: number;
  /** Weight of the answer tokens against the filler tokens in the training loss. */
  answerWeight: number;
  validationRows: number;
  testRows: number;
  /** Numbers of heads masked. */
  maskK: number[];
  /** Random head sets drawn per k. */
  randomDraws: number;
}

export interface RetrievalHeadsArtifacts {
  model: ToyLM;
  /** [layer][head] retrieval scores on the validation split (they rank the heads) and on the test split. */
  scores: number[][];
  testScores: number[][];
  /** Heads, best first (validation ranking), as [layer, head]. */
  ranking: [number, number][];
  test: NeedleBatch;
  records: StepRecord[];
  dispose(): void;
}

interface Eval {
  exact: number;
  tokens: number;
  rows: number;
}

/** Needle exact-match and per-token accuracy of `model` on `batch` (one teacher-forced pass). */
export function needleAccuracy(model: ToyLM, batch: NeedleBatch): Eval {
  const { inputs, targets, lossMask } = batch.toTensors();
  lossMask.dispose();
  const pred = tf.tidy(() => {
    const logits = model.forward(inputs);
    return logits.argMax(-1).arraySync() as number[][];
  });
  const tg = targets.arraySync() as number[][];
  tf.dispose([inputs, targets]);
  let exact = 0;
  let tokens = 0;
  let count = 0;
  batch.rows.forEach((r, b) => {
    let all = true;
    for (let i = 0; i < r.values.length; i++) {
      const ok = pred[b][r.answerStart + i] === tg[b][r.answerStart + i];
      tokens += ok ? 1 : 0;
      count++;
      all &&= ok;
    }
    exact += all ? 1 : 0;
  });
  return { exact: exact / batch.batch, tokens: tokens / count, rows: batch.batch };
}

/** Whether masking the top-k heads hurts more than k random others beyond both CIs, for some k. */
function maskingVerdict(m: Record<string, number>, maskK: number[], base: number): string {
  if (base < 0.3)
    return `The unmasked model retrieves only ${base.toFixed(2)} of the test needles: too little to show what masking does.`;
  const shown = maskK.filter(
    (k) =>
      m[`test_exact_mask_random${k}`] - m[`test_exact_mask_random${k}_ci95`] >
      m[`test_exact_mask_top${k}`] + m[`test_exact_mask_top${k}_ci95`],
  );
  return shown.length
    ? `Masking the top retrieval heads hurts more than masking random others beyond both 95% CIs at k = ${shown.join(', ')}.`
    : "At no k does masking the top retrieval heads hurt more than random others beyond the 95% CIs: this run does not show the paper's contrast.";
}

function scoresOn(model: ToyLM, batch: NeedleBatch): number[][] {
  const { inputs, targets, lossMask } = batch.toTensors();
  const rows = Array.from({ length: batch.batch }, (_, b) =>
    Array.from(batch.inputs.subarray(b * batch.seqLen, (b + 1) * batch.seqLen)),
  );
  try {
    const { patterns, emitted } = recordPatterns(model, inputs);
    return retrievalScores(patterns, rows, emitted, batch.rows);
  } finally {
    tf.dispose([inputs, targets, lossMask]);
  }
}

export const retrievalHeadsSchema = obj<RetrievalHeadsConfig>({
  seqLen: int({ min: 8, max: 1024 }),
  needles: int({ min: 1 }),
  valueLen: int({ min: 1 }),
  keys: int({ min: 1 }),
  values: int({ min: 2 }),
  vocabSize: int({ min: 8 }),
  dModel: int({ min: 4 }),
  heads: int({ min: 1 }),
  layers: int({ min: 1, max: 12 }),
  steps: int({ min: 1 }),
  batch: int({ min: 1 }),
  lr: num({ gt: 0 }),
  answerWeight: num({ gt: 0 }),
  validationRows: int({ min: 1 }),
  testRows: int({ min: 1 }),
  maskK: list(int({ min: 1 }), { min: 1, unique: true }),
  randomDraws: int({ min: 1 }),
});

export const retrievalHeadsExperiment = defineExperiment<RetrievalHeadsConfig, RetrievalHeadsArtifacts>({
  name: 'retrieval-heads',
  paper:
    'Wu et al. 2025, Retrieval Head Mechanistically Explains Long-Context Factuality, https://arxiv.org/abs/2404.15574',
  description:
    'A 4x4 ToyLM trained on LM + needle copy: retrieval score per head, and needle exact-match accuracy with the top-k retrieval heads masked vs k random other heads.',
  schema: retrievalHeadsSchema,
  quick: {
    seqLen: 24,
    needles: 1,
    valueLen: 2,
    keys: 4,
    values: 12,
    vocabSize: 28,
    dModel: 32,
    heads: 4,
    layers: 4,
    steps: 300,
    batch: 32,
    lr: 6e-3,
    answerWeight: 4,
    validationRows: 128,
    testRows: 256,
    maskK: [1, 2],
    randomDraws: 4,
  },
  full: {
    seqLen: 48,
    needles: 1,
    valueLen: 2,
    keys: 4,
    values: 12,
    vocabSize: 28,
    dModel: 32,
    heads: 4,
    layers: 4,
    steps: 800,
    batch: 32,
    lr: 6e-3,
    answerWeight: 4,
    validationRows: 256,
    testRows: 1024,
    maskK: [1, 2, 4],
    randomDraws: 6,
  },
  artifactCodec: artifactCodec([toyLMKind, tokenBatchKind]),
  async run(cfg, ctx) {
    const t0 = performance.now();
    const heads = cfg.layers * cfg.heads;
    for (const k of cfg.maskK)
      if (k >= heads)
        throw new Error(
          `retrieval-heads: config.maskK entries must be below the model's ${heads} heads (layers x heads), got ${k}`,
        );
    const task = {
      seqLen: cfg.seqLen,
      needles: cfg.needles,
      valueLen: cfg.valueLen,
      keys: cfg.keys,
      values: cfg.values,
      vocabSize: cfg.vocabSize,
    };
    const model = new ToyLM({
      vocab: cfg.vocabSize,
      dModel: cfg.dModel,
      heads: cfg.heads,
      layers: cfg.layers,
      maxLen: cfg.seqLen,
      positional: 'learned',
      seed: ctx.seed,
    });
    const validation = needleTask({ ...task, batch: cfg.validationRows, seed: ctx.seed, split: 'validation' });
    const test = needleTask({ ...task, batch: cfg.testRows, seed: ctx.seed, split: 'test' });
    try {
      ctx.log(`training a ${cfg.layers}x${cfg.heads} ToyLM on LM + needle copy (${cfg.steps} steps)`);
      const batches = function* () {
        for (let step = 0; ; step++) {
          const b = needleTask({ ...task, batch: cfg.batch, seed: stepSeed(ctx.seed, step), split: 'train' });
          const w = new Float32Array(b.lossMask.length);
          for (let i = 0; i < w.length; i++) w[i] = b.answerMask[i] * cfg.answerWeight + b.lmMask[i];
          const t = b.toTensors();
          t.lossMask.dispose();
          yield { inputs: t.inputs, targets: t.targets, weights: tf.tensor2d(w, [cfg.batch, cfg.seqLen]) };
        }
      };
      const run = await train({
        variables: model.variables(),
        batches: batches(),
        steps: cfg.steps,
        ...transformerRecipe(cfg.steps, cfg.lr),
        seed: ctx.seed,
        progress: ctx.progress,
        dataframe: false,
        loss: (_step, b) => model.loss(b.inputs, b.targets, b.weights),
      });
      if (run.stopped) throw new Error(`retrieval-heads: training stopped: ${run.stopped.message}`);
      const trainSeconds = (performance.now() - t0) / 1000;

      const scores = scoresOn(model, validation);
      const testScores = scoresOn(model, test);
      const ranking = rankHeads(scores);
      const base = needleAccuracy(model, test);
      const valBase = needleAccuracy(model, validation);
      const rng = new Rng(ctx.seed).fork('retrieval-heads:random-masks');
      const rows: Record<string, string | number>[] = [
        {
          masked: 'none',
          k: 0,
          test_exact: base.exact,
          test_exact_ci95: proportionCi95(base.exact, base.rows),
          test_token_accuracy: base.tokens,
          draws: 1,
        },
      ];
      const metrics: Record<string, number> = {
        test_exact: base.exact,
        test_exact_ci95: proportionCi95(base.exact, base.rows),
        test_token_accuracy: base.tokens,
        validation_exact: valBase.exact,
        validation_retrieval_heads: scores.flat().filter((s) => s > 0.1).length,
        validation_retrieval_head_share: scores.flat().filter((s) => s > 0.1).length / heads,
        validation_top_score: Math.max(...scores.flat()),
        test_top_head_score: testScores[ranking[0][0]][ranking[0][1]],
        train_loss: run.records.slice(-10).reduce((a, r) => a + r.loss, 0) / Math.min(10, run.records.length),
        params: model.parameterCount(),
        seconds_train: trainSeconds,
      };
      for (const k of cfg.maskK) {
        const top = ranking.slice(0, k);
        const remove = maskHeads(model, top);
        const m = needleAccuracy(model, test);
        remove();
        const rest = ranking.slice(k);
        const draws: Eval[] = [];
        for (let d = 0; d < cfg.randomDraws; d++) {
          const pick = rng.sample(rest.length, k).map((i) => rest[i]);
          const r = maskHeads(model, pick);
          draws.push(needleAccuracy(model, test));
          r();
        }
        const rand = draws.reduce((a, e) => a + e.exact, 0) / draws.length;
        const randTokens = draws.reduce((a, e) => a + e.tokens, 0) / draws.length;
        const randCi = sharedRowsCi95(
          draws.map((e) => e.exact),
          test.batch,
        );
        rows.push({
          masked: `top-${k} retrieval (${top.map(([l, h]) => `L${l}H${h}`).join(' ')})`,
          k,
          test_exact: m.exact,
          test_exact_ci95: proportionCi95(m.exact, m.rows),
          test_token_accuracy: m.tokens,
          draws: 1,
        });
        rows.push({
          masked: `${k} random others`,
          k,
          test_exact: rand,
          test_exact_ci95: randCi,
          test_token_accuracy: randTokens,
          draws: cfg.randomDraws,
          min_exact: Math.min(...draws.map((e) => e.exact)),
          max_exact: Math.max(...draws.map((e) => e.exact)),
        });
        metrics[`test_exact_mask_top${k}`] = m.exact;
        metrics[`test_exact_mask_top${k}_ci95`] = proportionCi95(m.exact, m.rows);
        metrics[`test_exact_mask_random${k}`] = rand;
        metrics[`test_exact_mask_random${k}_ci95`] = randCi;
      }
      metrics.seconds = (performance.now() - t0) / 1000;
      const references: PaperReference[] = [
        {
          metric: 'validation_retrieval_head_share',
          paper: 0.05,
          source:
            'Wu et al. 2025, abstract and §3: under 5% of heads score > 0.1 (Llama-2, Yi, Qwen, Mistral, 6B-70B, NIAH 1K-100K)',

          setting:
            `ours: a ${cfg.layers}-layer, ${cfg.heads}-head ToyLM (d ${cfg.dModel}, ${cfg.layers * cfg.heads} heads in all) trained ${cfg.steps} steps on ` +
            `synthetic ${cfg.seqLen}-token haystacks with ${cfg.needles} keyed needle(s); share of heads scoring > 0.1 on ${cfg.validationRows} validation rows. ` +
            'Paper: pretrained 6B-70B models (about a thousand heads) on natural-text NIAH, 1K-100K tokens',
        },
      ];
      const artifacts: RetrievalHeadsArtifacts = {
        model,
        scores,
        testScores,
        ranking,
        test,
        records: run.records,
        dispose: () => model.dispose(),
      };
      return {
        metrics,
        tables: {
          masking: rows.map((r) =>
            Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'number' ? +v.toFixed(4) : v])),
          ),
          heads: scores.flatMap((row, l) =>
            row.map((s, h) => ({
              layer: l,
              head: h,
              validation_score: +s.toFixed(4),
              test_score: +testScores[l][h].toFixed(4),
            })),
          ),
        },
        references,
        summary:
          `Needle exact match on ${test.batch} test rows: ${base.exact.toFixed(3)} unmasked. ` +
          cfg.maskK
            .map(
              (k) =>
                `Masking the top-${k} retrieval head(s) (validation ranking): ${metrics[`test_exact_mask_top${k}`].toFixed(3)} ± ${metrics[`test_exact_mask_top${k}_ci95`].toFixed(3)}; ` +
                `${k} random other head(s): ${metrics[`test_exact_mask_random${k}`].toFixed(3)} ± ${metrics[`test_exact_mask_random${k}_ci95`].toFixed(3)} (mean of ${cfg.randomDraws} draws).`,
            )
            .join(' ') +
          ` ${metrics.validation_retrieval_heads} of ${heads} heads score > 0.1 (top ${metrics.validation_top_score.toFixed(2)}). ` +
          maskingVerdict(metrics, cfg.maskK, base.exact),
        artifacts,
      };
    } catch (e) {
      model.dispose();
      throw e;
    }
  },
});

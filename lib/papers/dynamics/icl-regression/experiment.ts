/**
 * Experiment `icl-regression`: one-layer multi-head softmax attention trained on in-context linear regression
 * (He, Pan, Chen, Yang, ICML 2025, https://arxiv.org/abs/2503.12734).
 *
 * Claims tested: (1) the trained KQ matrices are diagonal and homogeneous on the x-block (±ω·I) and the OV vectors
 * read only the y entry with opposite signs across heads (zero-sum); (2) multi-head attention beats a single head and
 * tracks the debiased one-step GD predictor, close to the Bayes-optimal ridge predictor up to a factor; (3) trained at
 * one context length, softmax attention generalises to longer contexts (n = 64) better than linear attention.
 *
 * Setting. The headline (`full`) is the official notebook's: d = 5, n = L = 8d = 40 context pairs, σ² = 0.1,
 * x ~ N(0, I), β ~ N(0, I/d), the official parametrisation and PyTorch-default init (model.ts), MSE loss, Adam.
 * How ours differs: the official runs train 500,001 steps of batch 256 at lr 1e-3 (the Config class's default
 * optimiser is SGD, but every run in icl_linear.ipynb passes method='Adam'); we train a few thousand steps at a higher
 * learning rate picked on validation from `lrs` (3000 steps of batch 128 in `full`; `quick` is the same setting at 600
 * steps of batch 64 and one learning rate), so the weights are close to, but not at, the end of training. Paper
 * numbers are attached only at the paper's setting (d = 5, n = 40, σ² = 0.1). Test MSE includes the label noise σ²
 * (as the official validation loss does). The `linear` baseline is the linear transformer the paper compares with;
 * `linear-mean` (scores divided by n) is our addition, to show that the length-generalisation gap is the missing
 * normalisation.
 *
 * Splits: training prompts, validation prompts (learning rate, GD step size) and test prompts come from disjoint
 * random streams (lib/data/linear-regression.ts). Evaluation lengths `evalN` reuse the trained weights unchanged.
 */

import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import { type LinearRegressionBatch, linearRegressionTask } from '../../../data/linear-regression.js';
import { artifactCodec, weightsKind } from '../../../experiments/codecs.js';
import { defineExperiment, type ExperimentContext, type PaperReference } from '../../../experiments/contract.js';
import { int, list, num, obj, oneOf } from '../../../experiments/schema.js';
import { type StepRecord, train } from '../../../train/loop.js';
import {
  fitGdStep,
  gdPredict,
  type IclAttentionKind,
  IclAttentionModel,
  type IclModelOptions,
  type KqPattern,
  kqPattern,
  mseWithCi,
  type OvPattern,
  ovPattern,
  ridgePredict,
} from './model.js';

export interface IclExperimentConfig {
  /** Covariate dimension. */
  d: number;
  /** Context pairs per training prompt. */
  trainN: number;
  /** Label noise σ. */
  noiseStd: number;
  /** Softmax models compared, by head count. */
  heads: number[];
  /**
   * Single-head linear-attention baselines for length generalisation: 'linear' (the linear transformer, no
   * normalisation) and/or 'linear-mean' (scores divided by n).
   */
  linear: ('linear' | 'linear-mean')[];
  steps: number;
  batch: number;
  /** Adam learning rates tried per model; the one with the lowest validation MSE is kept. */
  lrs: number[];
  /** Context lengths the test MSE is measured at (trainN and 64 for length generalisation). */
  evalN: number[];
  validationRows: number;
  testRows: number;
}

/** One trained model and what was measured on it. */
export interface IclTrained {
  /** 'softmax-h2', 'linear-h1', ... */
  label: string;
  kind: IclAttentionKind;
  heads: number;
  model: IclAttentionModel;
  /** The learning rate picked on validation, and the validation MSE of each lr tried. */
  lr: number;
  validationByLr: Record<string, number>;
  records: StepRecord[];
  /** The weights' pattern during training, about 100 snapshots: per head ω_h (KQ x-block diagonal mean) and μ_h. */
  dynamics: IclSnapshot[];
  /** Per head: KQ matrix [e][e] and OV vector [e]. */
  kq: number[][][];
  ov: number[][];
  kqPatterns: KqPattern[];
  ovPattern: OvPattern;
  /** Test MSE and its 95% CI at each evaluation length. */
  testByN: { n: number; mse: number; ci95: number }[];
}

/** One snapshot of the weights' pattern during training. */
export interface IclSnapshot {
  /** Updates applied so far (0: the initial weights). */
  step: number;
  /** Per head: mean of the KQ x-block diagonal. */
  omega: number[];
  /** Per head: the OV vector's y entry. */
  mu: number[];
  /** Per head: off-diagonal rms of the KQ x-block over |ω|. */
  offDiagonalRatio: number[];
}

export interface IclArtifacts {
  models: IclTrained[];
  /** Baselines' test MSE at each evaluation length: ridge (Bayes), ols, gd, debiased-gd. */
  baselines: { name: string; n: number; mse: number; ci95: number; eta?: number }[];
  dispose(): void;
}

const splitSeed = (seed: number, n: number) => seed * 1_000 + n;

function evalSet(cfg: IclExperimentConfig, seed: number, n: number, split: 'validation' | 'test', rows: number) {
  return linearRegressionTask({ batch: rows, n, d: cfg.d, noiseStd: cfg.noiseStd, seed: splitSeed(seed, n), split });
}

function predict(model: IclAttentionModel, set: LinearRegressionBatch): Float32Array {
  const { z, zq, yq } = set.toTensors();
  try {
    return tf.tidy(() => model.predict(zq, z).dataSync() as Float32Array);
  } finally {
    tf.dispose([z, zq, yq]);
  }
}

/** Paired difference a − b of per-row squared errors: its mean and 95% CI half-width. */
function pairedDiff(pa: ArrayLike<number>, pb: ArrayLike<number>, target: ArrayLike<number>) {
  const m = target.length;
  const diffs = Array.from({ length: m }, (_, i) => (pa[i] - target[i]) ** 2 - (pb[i] - target[i]) ** 2);
  const mean = diffs.reduce((a, v) => a + v, 0) / m;
  const sd = Math.sqrt(diffs.reduce((a, v) => a + (v - mean) ** 2, 0) / Math.max(1, m - 1));
  return { mean, ci95: (1.96 * sd) / Math.sqrt(m) };
}

function snapshot(model: IclAttentionModel, step: number, d: number): IclSnapshot {
  const kq = model.kq().map((m) => kqPattern(m, d));
  return {
    step,
    omega: kq.map((k) => k.omega),
    mu: ovPattern(model.ov()).mu,
    offDiagonalRatio: kq.map((k) => k.offDiagonalRatio),
  };
}

async function trainOne(
  cfg: IclExperimentConfig,
  kind: IclAttentionKind,
  heads: number,
  lr: number,
  validation: LinearRegressionBatch,
  ctx: Pick<ExperimentContext, 'seed' | 'progress'>,
): Promise<{ model: IclAttentionModel; records: StepRecord[]; dynamics: IclSnapshot[]; validationMse: number }> {
  const model = new IclAttentionModel({ d: cfg.d, heads, kind, seed: ctx.seed });
  const dynamics: IclSnapshot[] = [snapshot(model, 0, cfg.d)];
  const every = Math.max(1, Math.round(cfg.steps / 100));
  try {
    const batches = function* () {
      for (let step = 0; ; step++)
        yield linearRegressionTask({
          batch: cfg.batch,
          n: cfg.trainN,
          d: cfg.d,
          noiseStd: cfg.noiseStd,
          seed: stepSeed(ctx.seed, step),
          split: 'train',
        }).toTensors();
    };
    const run = await train({
      variables: model.variables(),
      batches: batches(),
      steps: cfg.steps,
      optimizer: { type: 'adam', lr },
      schedule: { type: 'cosine', warmup: Math.round(cfg.steps * 0.02) },
      seed: ctx.seed,
      progress: ctx.progress,
      dataframe: false,
      onStep: (record) => {
        if (record.step % every === 0 || record.step === cfg.steps - 1)
          dynamics.push(snapshot(model, record.step + 1, cfg.d));
      },
      loss: (_step, b) => model.loss(b.zq, b.z, b.yq),
    });
    if (run.stopped && run.stopped.reason === 'nan')
      return { model, records: run.records, dynamics, validationMse: Number.POSITIVE_INFINITY };
    const validationMse = mseWithCi(predict(model, validation), validation.yq).mse;
    return { model, records: run.records, dynamics, validationMse };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Contribution-weighted mean of a per-head score: heads that do little to the prediction (dummy heads) weigh little. */
function weighted(values: number[], weights: number[]): number {
  const tot = weights.reduce((a, v) => a + v, 0);
  return tot > 0 ? values.reduce((a, v, i) => a + v * weights[i], 0) / tot : Number.NaN;
}

/**
 * The official notebook's validation MSE (d = 5, L = 40, σ² = 0.1, Adam 1e-3, batch 256): the mean of the ten values
 * it prints at 50k, 100k, ..., 500k steps, each on one batch of 256 prompts (their 95% CI of the mean: ±0.029, ±0.018,
 * ±0.013; the final values alone are 0.4278, 0.2151, 0.2268).
 */
const NOTEBOOK_MSE: Record<number, number> = { 1: 0.4136, 2: 0.2353, 4: 0.2339 };

export const iclConfigSchema = obj<IclExperimentConfig>({
  d: int({ min: 1, max: 16 }),
  trainN: int({ min: 2, max: 512 }),
  noiseStd: num({ min: 0, max: 10 }),
  heads: list(int({ min: 1, max: 16 }), { min: 1, unique: true }),
  linear: list(oneOf('linear', 'linear-mean'), { unique: true }),
  steps: int({ min: 1 }),
  batch: int({ min: 1 }),
  lrs: list(num({ gt: 0, max: 1 }), { min: 1, unique: true }),
  evalN: list(int({ min: 1, max: 1024 }), { min: 1, unique: true }),
  validationRows: int({ min: 2 }),
  testRows: int({ min: 2 }),
});

export const iclRegression = defineExperiment<IclExperimentConfig, IclArtifacts>({
  name: 'icl-regression',
  paper:
    'He, Pan, Chen, Yang 2025, In-Context Linear Regression Demystified: Training Dynamics and Mechanistic Interpretability of Multi-Head Softmax Attention, ICML 2025, https://arxiv.org/abs/2503.12734',
  description:
    'One-layer H-head softmax attention (H = 1, 2, 4) and linear attention trained on in-context linear regression: test MSE vs context length against ridge (Bayes), OLS and one-step (debiased) GD; the learned KQ (diagonal, homogeneous) and OV (last-entry, zero-sum) patterns; length generalisation to n = 64.',
  schema: iclConfigSchema,
  quick: {
    d: 5,
    trainN: 40,
    noiseStd: Math.sqrt(0.1),
    heads: [1, 2, 4],
    linear: ['linear', 'linear-mean'],
    steps: 600,
    batch: 64,
    lrs: [0.02],
    evalN: [5, 10, 20, 40, 64],
    validationRows: 1000,
    testRows: 2000,
  },
  full: {
    d: 5,
    trainN: 40,
    noiseStd: Math.sqrt(0.1),
    heads: [1, 2, 4],
    linear: ['linear', 'linear-mean'],
    steps: 3000,
    batch: 128,
    lrs: [0.01, 0.03],
    evalN: [5, 10, 20, 40, 64],
    validationRows: 2000,
    testRows: 8000,
  },
  artifactCodec: artifactCodec([
    weightsKind('IclAttentionModel', IclAttentionModel, (c: IclModelOptions) => new IclAttentionModel(c), {
      configOf: (m) => ({ d: m.d, heads: m.heads, kind: m.kind, seed: 0 }),
    }),
  ]),
  async run(cfg, ctx) {
    const e = cfg.d + 1;
    const evalN = [...new Set([...cfg.evalN, cfg.trainN])].sort((a, b) => a - b);
    const validation = evalSet(cfg, ctx.seed, cfg.trainN, 'validation', cfg.validationRows);
    const tests = new Map(evalN.map((n) => [n, evalSet(cfg, ctx.seed, n, 'test', cfg.testRows)]));
    const models: IclTrained[] = [];
    const artifacts: IclArtifacts = {
      models,
      baselines: [],
      dispose: () => {
        for (const m of models) m.model.dispose();
      },
    };
    const specs: { kind: IclAttentionKind; heads: number }[] = [
      ...cfg.heads.map((h) => ({ kind: 'softmax' as const, heads: h })),
      ...cfg.linear.map((kind) => ({ kind, heads: 1 })),
    ];
    const preds = new Map<string, Map<number, Float32Array>>();
    try {
      for (const { kind, heads } of specs) {
        const label = `${kind}-h${heads}`;
        let best: Awaited<ReturnType<typeof trainOne>> | undefined;
        let bestLr = cfg.lrs[0];
        const validationByLr: Record<string, number> = {};
        for (const lr of cfg.lrs) {
          ctx.log(`training ${label} at lr ${lr} (${cfg.steps} steps)`);
          const r = await trainOne(cfg, kind, heads, lr, validation, ctx);
          validationByLr[String(lr)] = r.validationMse;
          if (!best || r.validationMse < best.validationMse) {
            best?.model.dispose();
            best = r;
            bestLr = lr;
          } else r.model.dispose();
        }
        if (!best) throw new Error('icl-regression: no learning rate to try');
        const { model } = best;
        const byN = new Map<number, Float32Array>();
        const testByN = evalN.map((n) => {
          const set = tests.get(n) as LinearRegressionBatch;
          const p = predict(model, set);
          byN.set(n, p);
          return { n, ...mseWithCi(p, set.yq) };
        });
        preds.set(label, byN);
        const kq = model.kq();
        const ov = model.ov();
        models.push({
          label,
          kind,
          heads,
          model,
          lr: bestLr,
          validationByLr,
          records: best.records,
          dynamics: best.dynamics,
          kq,
          ov,
          kqPatterns: kq.map((m) => kqPattern(m, cfg.d)),
          ovPattern: ovPattern(ov),
          testByN,
        });
      }
    } catch (err) {
      artifacts.dispose();
      throw err;
    }

    // Baselines: the GD step sizes are fitted on validation prompts of the same length, never on test.
    const basePreds = new Map<string, Map<number, Float64Array>>();
    for (const name of ['ridge', 'ols', 'gd', 'debiased-gd']) basePreds.set(name, new Map());
    for (const n of evalN) {
      const set = tests.get(n) as LinearRegressionBatch;
      const val = n === cfg.trainN ? validation : evalSet(cfg, ctx.seed, n, 'validation', cfg.validationRows);
      const etaGd = fitGdStep(val, false);
      const etaDgd = fitGdStep(val, true);
      const lambda = cfg.noiseStd ** 2 * cfg.d;
      const rows: [string, Float64Array, number?][] = [
        ['ridge', ridgePredict(set, lambda)],
        ['ols', ridgePredict(set, 0)],
        ['gd', gdPredict(set, etaGd), etaGd],
        ['debiased-gd', gdPredict(set, etaDgd, true), etaDgd],
      ];
      for (const [name, p, eta] of rows) {
        basePreds.get(name)?.set(n, p);
        artifacts.baselines.push({ name, n, ...mseWithCi(p, set.yq), ...(eta !== undefined ? { eta } : {}) });
      }
    }

    const metrics: Record<string, number> = {};
    for (const m of models) {
      for (const t of m.testByN) {
        metrics[`test_mse_${m.label}_n${t.n}`] = t.mse;
        metrics[`test_mse_${m.label}_n${t.n}_ci95`] = t.ci95;
      }
      metrics[`validation_mse_${m.label}`] = Math.min(...Object.values(m.validationByLr));
      const contrib = m.kqPatterns.map((k, h) => Math.abs(k.omega * m.ovPattern.mu[h]));
      metrics[`train_kq_offdiag_ratio_${m.label}`] = weighted(
        m.kqPatterns.map((k) => k.offDiagonalRatio),
        contrib,
      );
      metrics[`train_kq_diag_spread_${m.label}`] = weighted(
        m.kqPatterns.map((k) => k.diagonalSpread),
        contrib,
      );
      metrics[`train_ov_last_entry_share_${m.label}`] = weighted(m.ovPattern.lastEntryShare, contrib);
      metrics[`train_ov_zero_sum_${m.label}`] = m.ovPattern.zeroSum;
      metrics[`params_${m.label}`] = m.model.parameterCount();
    }
    for (const b of artifacts.baselines) {
      metrics[`test_mse_${b.name}_n${b.n}`] = b.mse;
      metrics[`test_mse_${b.name}_n${b.n}_ci95`] = b.ci95;
    }

    // Paired comparisons on the same test prompts.
    const pm = (label: string, n: number) => preds.get(label)?.get(n);
    const target = (n: number) => (tests.get(n) as LinearRegressionBatch).yq;
    const comparisons: { what: string; a: string; b: string; n: number }[] = [];
    const multi = cfg.heads.filter((h) => h > 1).map((h) => `softmax-h${h}`);
    if (cfg.heads.includes(1))
      for (const a of multi) comparisons.push({ what: 'multi-head vs single head', a, b: 'softmax-h1', n: cfg.trainN });
    const longN = Math.max(...evalN);
    for (const kind of cfg.linear)
      for (const h of cfg.heads)
        comparisons.push({ what: `softmax vs ${kind}, longest n`, a: `softmax-h${h}`, b: `${kind}-h1`, n: longN });
    const diffRows = comparisons.flatMap((c) => {
      const [pa, pb] = [pm(c.a, c.n), pm(c.b, c.n)];
      if (!pa || !pb) return [];
      const d = pairedDiff(pa, pb, target(c.n));
      metrics[`test_mse_diff_${c.a}_minus_${c.b}_n${c.n}`] = d.mean;
      metrics[`test_mse_diff_${c.a}_minus_${c.b}_n${c.n}_ci95`] = d.ci95;
      return [
        { comparison: c.what, a: c.a, b: c.b, n: c.n, mse_a_minus_b: +d.mean.toFixed(4), ci95: +d.ci95.toFixed(4) },
      ];
    });
    // How far each model is from the debiased-GD predictor: MSE between the two predictions, relative to E[ŷ_dgd²].
    for (const m of models) {
      const p = pm(m.label, cfg.trainN);
      const g = basePreds.get('debiased-gd')?.get(cfg.trainN);
      if (!p || !g) continue;
      let num = 0;
      let den = 0;
      for (let i = 0; i < g.length; i++) {
        num += (p[i] - g[i]) ** 2;
        den += g[i] ** 2;
      }
      metrics[`test_gap_to_debiased_gd_${m.label}`] = num / den;
    }

    const at = (label: string, n: number) => metrics[`test_mse_${label}_n${n}`];
    const h2 = cfg.heads.includes(2) ? 'softmax-h2' : multi[0];
    const n0 = cfg.trainN;
    const claims: Record<string, string | number | boolean | null>[] = [];
    if (h2) {
      const kqOff = metrics[`train_kq_offdiag_ratio_${h2}`];
      const kqSpread = metrics[`train_kq_diag_spread_${h2}`];
      claims.push({
        claim: `KQ x-block is diagonal and homogeneous (${h2})`,
        paper: 'W_h ≈ ω_h·I on the x-block, from random init',
        ours: `off-diagonal rms / |ω| = ${kqOff.toFixed(3)}, diagonal sd / |ω| = ${kqSpread.toFixed(3)}`,
        holds: kqOff < 0.25 && kqSpread < 0.25,
      });
      const share = metrics[`train_ov_last_entry_share_${h2}`];
      const zs = metrics[`train_ov_zero_sum_${h2}`];
      claims.push({
        claim: `OV reads only the y entry, zero-sum across heads (${h2})`,
        paper: 'u_h ≈ (0, …, 0, μ_h), Σ_h μ_h ≈ 0',
        ours: `|μ_h|/‖u_h‖ = ${share.toFixed(3)}, |Σμ|/Σ|μ| = ${zs.toFixed(3)}`,
        holds: share > 0.9 && zs < 0.2,
      });
      const signs = models.find((m) => m.label === h2)?.kqPatterns.map((k) => Math.sign(k.omega)) ?? [];
      claims.push({
        claim: `heads have opposite-sign ω (${h2})`,
        paper: 'ω_1 = −ω_2 for the active pair',
        ours: `ω = ${models
          .find((m) => m.label === h2)
          ?.kqPatterns.map((k) => k.omega.toFixed(3))
          .join(', ')}`,
        holds: signs.includes(1) && signs.includes(-1),
      });
    }
    for (const r of diffRows)
      claims.push({
        claim: `${r.a} has lower test MSE than ${r.b} at n = ${r.n}`,
        paper:
          r.b === 'softmax-h1'
            ? 'multi-head beats single head'
            : r.b === 'linear-h1'
              ? 'softmax generalises to longer n than linear attention'
              : 'not in the paper: linear attention divided by n',
        ours: `MSE difference ${r.mse_a_minus_b} ± ${r.ci95} (95% CI, paired)`,
        holds: r.mse_a_minus_b + r.ci95 < 0,
      });
    if (h2) {
      const ratio = at(h2, n0) / at('ridge', n0);
      claims.push({
        claim: `${h2} is near Bayes-optimal up to a factor at n = ${n0}`,
        paper: 'close to ridge (Bayes) up to a proportional factor; ≈ one-step GD',
        ours: `MSE ${at(h2, n0).toFixed(4)} vs ridge ${at('ridge', n0).toFixed(4)} (×${ratio.toFixed(2)}), debiased GD ${at('debiased-gd', n0).toFixed(4)}`,
        holds: null,
      });
    }

    const paperSetting = cfg.d === 5 && cfg.trainN === 40 && Math.abs(cfg.noiseStd ** 2 - 0.1) < 1e-9;
    const references: PaperReference[] = paperSetting
      ? cfg.heads
          .filter((h) => h in NOTEBOOK_MSE)
          .map((h) => ({
            metric: `test_mse_softmax-h${h}_n40`,
            paper: NOTEBOOK_MSE[h],
            source:
              'XintianPan/ICL_linear icl_linear.ipynb printed output: mean validation MSE of the 10 logs at 50k..500k Adam steps (lr 1e-3, batch 256; each log one batch of 256 prompts), d = 5, L = 40, σ² = 0.1',
            setting:
              `ours: the paper's task and model (d = 5, n = 40, σ² = 0.1, one layer, ${h} head${h === 1 ? '' : 's'}), trained ${cfg.steps} Adam steps of batch ${cfg.batch} ` +
              `at a learning rate picked on validation from [${cfg.lrs.join(', ')}], MSE on ${cfg.testRows} test prompts. Paper: 500,001 steps of batch 256 at lr 1e-3, ` +
              'MSE averaged over 10 logged batches late in training',
          }))
      : [];

    const table = [
      ...models.flatMap((m) => m.testByN.map((t) => ({ model: m.label, n: t.n, test_mse: t.mse, ci95: t.ci95 }))),
      ...artifacts.baselines.map((b) => ({ model: b.name, n: b.n, test_mse: b.mse, ci95: b.ci95 })),
    ].map((r) => ({ ...r, test_mse: +r.test_mse.toFixed(4), ci95: +r.ci95.toFixed(4) }));

    const h1 = cfg.heads.includes(1) ? at('softmax-h1', n0) : undefined;
    return {
      metrics,
      references,
      tables: {
        mse_vs_n: table,
        heads: models.flatMap((m) =>
          m.kqPatterns.map((k, h) => ({
            model: m.label,
            head: h,
            omega: +k.omega.toFixed(4),
            kq_offdiag_ratio: +k.offDiagonalRatio.toFixed(3),
            kq_diag_spread: +k.diagonalSpread.toFixed(3),
            mu: +m.ovPattern.mu[h].toFixed(4),
            ov_last_entry_share: +m.ovPattern.lastEntryShare[h].toFixed(3),
          })),
        ),
        models: models.map((m) => ({
          model: m.label,
          lr: m.lr,
          validation_mse: +Math.min(...Object.values(m.validationByLr)).toFixed(4),
          [`test_mse_n${n0}`]: +at(m.label, n0).toFixed(4),
          [`test_mse_n${longN}`]: +at(m.label, longN).toFixed(4),
          ov_zero_sum: +m.ovPattern.zeroSum.toFixed(3),
          params: m.model.parameterCount(),
        })),
        comparisons: diffRows,
        claims,
        ...(paperSetting
          ? {
              paper: references.map((r) => ({
                metric: r.metric,
                paper: r.paper,
                ours: +metrics[r.metric].toFixed(4),
                ours_ci95: +metrics[`${r.metric}_ci95`].toFixed(4),
              })),
            }
          : {}),
      },
      summary:
        `At n = ${n0} (d = ${cfg.d}, e = ${e} token features) test MSE: ` +
        models.map((m) => `${m.label} ${at(m.label, n0).toFixed(3)}`).join(', ') +
        `; ridge (Bayes) ${at('ridge', n0).toFixed(3)}, debiased GD ${at('debiased-gd', n0).toFixed(3)}` +
        (h1 !== undefined && h2 ? `. ${h2} vs single head: ${at(h2, n0).toFixed(3)} vs ${h1.toFixed(3)}` : '') +
        (cfg.linear.length && h2
          ? `; at n = ${longN}: ${h2} ${at(h2, longN).toFixed(3)} vs ${cfg.linear.map((k) => `${k} ${at(`${k}-h1`, longN).toFixed(3)}`).join(', ')}`
          : '') +
        '.',
      artifacts,
    };
  },
});

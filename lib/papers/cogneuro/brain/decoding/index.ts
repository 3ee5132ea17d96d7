/**
 * Whole-brain decoding by image–fMRI contrastive learning (as in WAVE, Wang et al. 2024, "Whole-brain fMRI decoding
 * via image-fMRI contrastive learning", https://arxiv.org/abs/2411.07121): an encoder maps a whole-brain parcel
 * response to the space of fixed image embeddings, trained with the symmetric InfoNCE loss over a batch,
 *
 *   z_i = normalise(f(x_i)),  e_i = image embedding (unit),  S_ij = z_i · e_j / τ
 *   L = ½ [ CE(S, I) + CE(Sᵀ, I) ]        (the matching pair is the positive, the rest of the batch negatives)
 *
 * and decoding is retrieval: rank held-out images by z · e. f is a two-layer MLP (GELU); with a validation set, the
 * weights of the evaluation with the lowest validation InfoNCE are kept (early stopping). Comparing all parcels with
 * the visual ones alone shows what the non-visual (semantic) parcels add.
 *
 * Shape legend: b batch, P parcels, H hidden, D embedding dim, n candidates.
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../../backend/ops.js';
import { gelu } from '../../../../layers/functional.js';
import { ParamFactory } from '../../../../layers/params.js';
import { type StepRecord, train } from '../../../../train/loop.js';
import type { ProgressMode } from '../../../../train/progress.js';
import { Rng } from '../../../../util/random.js';
import { fmt, ShapeError } from '../../../../util/shapes.js';
import { l2normalise } from '../scuba/index.js';

export interface ContrastiveConfig {
  hidden: number;
  temperature: number;
  steps: number;
  batch: number;
  lr: number;
  weightDecay: number;
}

export interface ContrastiveEncoder {
  params: Record<string, tf.Variable>;
  /** Standardisation of the inputs, from the training responses. */
  mean: tf.Tensor1D;
  std: tf.Tensor1D;
  /** x [b, P] -> unit embeddings [b, D]. */
  encode(x: tf.Tensor2D): tf.Tensor2D;
  dispose(): void;
}

/** Symmetric InfoNCE of unit embeddings z [b, D] and e [b, D] (row i of each is a pair). */
export function infoNce(z: tf.Tensor2D, e: tf.Tensor2D, temperature: number): tf.Scalar {
  if (z.rank !== 2 || e.rank !== 2 || z.shape[0] !== e.shape[0] || z.shape[1] !== e.shape[1]) {
    throw new ShapeError(`infoNce: z ${fmt(z.shape)} and e ${fmt(e.shape)} must both be [b, D]`);
  }
  return tf.tidy(() => {
    const logits = tf.div(tf.matMul(z, e, false, true), temperature); // [b, b]
    const labels = tf.oneHot(tf.range(0, z.shape[0], 1, 'int32'), z.shape[0]);
    return tf.mul(
      tf.add(tf.losses.softmaxCrossEntropy(labels, logits), tf.losses.softmaxCrossEntropy(labels, logits.transpose())),
      0.5,
    ) as tf.Scalar;
  });
}

/** Reference InfoNCE in float64 loops. */
export function infoNceNaive(z: number[][], e: number[][], temperature: number): number {
  const b = z.length;
  const s = z.map((zi) => e.map((ej) => zi.reduce((a, x, k) => a + x * ej[k], 0) / temperature));
  const ce = (rows: number[][]) =>
    rows.reduce((acc, row, i) => {
      const m = Math.max(...row);
      return acc + (Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0)) + m - row[i]);
    }, 0) / b;
  const t = s[0].map((_, j) => s.map((row) => row[j]));
  return 0.5 * (ce(s) + ce(t));
}

/** Held-out pairs for model selection: the weights with the lowest InfoNCE over all of them are kept. */
export interface ContrastiveValidation {
  x: Float32Array;
  images: tf.Tensor2D;
  /** Evaluate every this many steps. */
  every: number;
}

export async function trainContrastive(
  x: Float32Array,
  parcels: number,
  images: tf.Tensor2D,
  cfg: ContrastiveConfig,
  opts: { seed: number; progress?: ProgressMode; validation?: ContrastiveValidation },
): Promise<{ encoder: ContrastiveEncoder; records: StepRecord[]; bestStep?: number }> {
  const n = images.shape[0];
  const D = images.shape[1];
  if (x.length !== n * parcels)
    throw new ShapeError(
      `trainContrastive: responses have ${x.length} values, expected [${n}, ${parcels}] to match images ${fmt(images.shape)}`,
    );
  const p = new ParamFactory({
    scope: 'brain-decoder',
    seed: { kind: 'mixed', seed: opts.seed, prefix: 'brain-decoder' },
  });
  const params = {
    w1: p.variable('w1', [parcels, cfg.hidden], 'glorotUniform'),
    b1: p.variable('b1', [cfg.hidden], 'zeros'),
    w2: p.variable('w2', [cfg.hidden, D], 'glorotUniform'),
    b2: p.variable('b2', [D], 'zeros'),
  };
  const xt = tf.tensor2d(x, [n, parcels]);
  const { mean, variance } = tf.moments(xt, 0);
  const std = tf.tidy(() => tf.sqrt(tf.add(variance, 1e-6))) as tf.Tensor1D;
  variance.dispose();
  const encode = (v: tf.Tensor2D) =>
    tf.tidy(() => {
      if (v.rank !== 2 || v.shape[1] !== parcels)
        throw new ShapeError(`ContrastiveEncoder: responses must be [b, ${parcels}], got ${fmt(v.shape)}`);
      const h = gelu(tf.add(matmul(tf.div(tf.sub(v, mean), std), params.w1), params.b1));
      return l2normalise(tf.add(matmul(h, params.w2), params.b2) as tf.Tensor2D);
    });
  const rng = new Rng(opts.seed).fork('decoder-batches');
  let order: number[] = [];
  const val = opts.validation;
  const xv = val ? tf.tensor2d(val.x, [val.images.shape[0], parcels]) : undefined;
  let best: { loss: number; step: number; values: tf.Tensor[] } | undefined;
  const evaluate = (step: number) => {
    const loss = infoNce(encode(xv!), val!.images, cfg.temperature).dataSync()[0];
    if (!best || loss < best.loss) {
      tf.dispose(best?.values ?? []);
      best = { loss, step, values: Object.values(params).map((p) => tf.keep(p.clone())) };
    }
    return { validation_infonce: loss };
  };
  try {
    const run = await train({
      variables: params,
      steps: cfg.steps,
      optimizer: { type: 'adamw', lr: cfg.lr, weightDecay: cfg.weightDecay },
      schedule: { type: 'cosine', warmup: Math.round(cfg.steps * 0.05) },
      seed: opts.seed,
      progress: opts.progress ?? false,
      dataframe: false,
      ...(val ? { evaluate, evalEvery: val.every } : {}),
      loss: () => {
        if (order.length < cfg.batch) order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
        const idx = tf.tensor1d(order.splice(0, cfg.batch), 'int32');
        return infoNce(
          encode(tf.gather(xt, idx) as tf.Tensor2D),
          tf.gather(images, idx) as tf.Tensor2D,
          cfg.temperature,
        );
      },
    });
    if (run.stopped) throw new Error(`trainContrastive: ${run.stopped.message}`);
    if (best) Object.values(params).forEach((p, i) => p.assign(best!.values[i]));
    return {
      encoder: {
        params,
        mean: mean as tf.Tensor1D,
        std,
        encode,
        dispose: () => tf.dispose([...Object.values(params), mean, std]),
      },
      records: run.records,
      bestStep: best?.step,
    };
  } finally {
    tf.dispose([xt, ...(xv ? [xv] : []), ...(best?.values ?? [])]);
  }
}

/**
 * Retrieval among candidates: query i's correct candidate is i. Returns top-k accuracy for each k and the rank of the
 * correct candidate for each query (0 = first).
 */
export function retrieval(
  queries: tf.Tensor2D,
  candidates: tf.Tensor2D,
  ks: readonly number[] = [1, 5],
): { topk: Record<number, number>; ranks: number[] } {
  if (queries.shape[0] !== candidates.shape[0])
    throw new ShapeError(
      `retrieval: ${queries.shape[0]} queries for ${candidates.shape[0]} candidates; query i must match candidate i`,
    );
  const sims = tf.tidy(() => tf.matMul(queries, candidates, false, true).arraySync() as number[][]);
  const ranks = sims.map((row, i) => row.filter((s) => s > row[i]).length);
  const topk: Record<number, number> = {};
  for (const k of ks) topk[k] = ranks.filter((r) => r < k).length / ranks.length;
  return { topk, ranks };
}

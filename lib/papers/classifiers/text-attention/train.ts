/**
 * Training and evaluation of the text classifier on sentiment sentences (lib/data/sentiment.ts), shared by the
 * `attention-at` and `lama` experiments.
 *
 *   const task = sentimentTask({ minLen: 8, maxLen: 12, sentimentWords: 3, topicWords: 0, fillerPerSplit: 200 });
 *   const model = new TextClassifier({ vocabSize: task.vocabSize, ..., pooling: { kind: 'additive', dim: 16 } });
 *   await trainTextClassifier(model, task.sample('train', 2000, seed), { steps: 300, batch: 32, lr: 3e-3, seed });
 *   const ev = evaluateTextClassifier(model, task.sample('test', 1000, seed + 1));   // ev.accuracy, ev.weights
 */
import * as tf from '@tensorflow/tfjs';
import type { SentimentBatch } from '../../../data/sentiment.js';
import { type StepRecord, train } from '../../../train/loop.js';
import { Rng } from '../../../util/random.js';
import { crossEntropy, sentenceTensors, type TextClassifier } from './model.js';

export interface TextTrainOptions {
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  /**
   * A score perturbation for the batch (Attention AT / iAT), computed before the step from the current weights and
   * held constant in the loss; the loss then adds `lambda` · L(scores + r).
   */
  perturbation?: (tokens: tf.Tensor2D, mask: tf.Tensor2D, labels: tf.Tensor1D) => tf.Tensor2D;
  lambda?: number;
  progress?: boolean | 'auto';
}

interface Batch {
  tokens: tf.Tensor2D;
  mask: tf.Tensor2D;
  labels: tf.Tensor1D;
  r?: tf.Tensor2D;
}

/** Trains `model` on `data` with Adam (shuffled mini-batches, epoch after epoch); returns the step records. */
export async function trainTextClassifier(
  model: TextClassifier,
  data: SentimentBatch,
  opts: TextTrainOptions,
): Promise<{ records: StepRecord[]; seconds: number }> {
  if (!Number.isInteger(opts.batch) || opts.batch < 2 || opts.batch > data.n)
    throw new Error(`trainTextClassifier: batch must be an integer in [2, ${data.n}], got ${opts.batch}`);
  const rng = new Rng(opts.seed).fork('text-classifier:batches');
  const T = data.maxLen;
  const lambda = opts.lambda ?? 1;
  function* batches(): Generator<Batch> {
    for (;;) {
      const order = rng.shuffle(Array.from({ length: data.n }, (_, i) => i));
      for (let k = 0; k + opts.batch <= data.n; k += opts.batch) {
        const rows = order.slice(k, k + opts.batch);
        const tok = new Int32Array(rows.length * T);
        const msk = new Float32Array(rows.length * T);
        rows.forEach((r, i) => {
          tok.set(data.tokens.subarray(r * T, (r + 1) * T), i * T);
          msk.set(data.mask.subarray(r * T, (r + 1) * T), i * T);
        });
        const b: Batch = {
          tokens: tf.tensor2d(tok, [rows.length, T], 'int32'),
          mask: tf.tensor2d(msk, [rows.length, T]),
          labels: tf.tensor1d(Int32Array.from(rows.map((r) => data.label[r])), 'int32'),
        };
        // computed here, outside the step's gradient tape, so r is a constant of the loss
        if (opts.perturbation) b.r = opts.perturbation(b.tokens, b.mask, b.labels);
        yield b;
      }
    }
  }
  const pooling = model.options.pooling;
  const penaltyWeight = pooling.kind === 'structured' ? pooling.penalty : 0;
  const t0 = performance.now();
  const result = await train<Batch>({
    variables: model.variables(),
    batches: batches(),
    steps: opts.steps,
    optimizer: { type: 'adam', lr: opts.lr },
    seed: opts.seed,
    progress: opts.progress ?? false,
    dataframe: false,
    loss: (_step, b) => {
      const embedded = model.embed(b.tokens);
      const out = model.forwardEmbedded(embedded, b.mask);
      let loss = crossEntropy(out.logits, b.labels);
      if (penaltyWeight > 0) loss = tf.add(loss, tf.mul(out.penalty, penaltyWeight));
      if (b.r && lambda > 0)
        loss = tf.add(
          loss,
          tf.mul(crossEntropy(model.forwardEmbedded(embedded, b.mask, b.r).logits, b.labels), lambda),
        );
      return loss as tf.Scalar;
    },
  });
  if (result.stopped?.reason === 'nan') throw new Error(`trainTextClassifier: ${result.stopped.message}`);
  return { records: result.records, seconds: (performance.now() - t0) / 1000 };
}

export interface TextEvaluation {
  n: number;
  maxLen: number;
  heads: number;
  accuracy: number;
  /** 95% normal-approximation half-width of the accuracy. */
  accuracyCi95: number;
  loss: number;
  /** Per sentence: 1 when predicted right. */
  correct: Uint8Array;
  predictions: Int32Array;
  /** Attention weights [n, m, T]. */
  weights: Float32Array;
}

/** Accuracy, loss and attention weights of `model` on every sentence of `data` (in chunks of `chunk`). */
export function evaluateTextClassifier(
  model: TextClassifier,
  data: SentimentBatch,
  chunk = 256,
  delta?: (tokens: tf.Tensor2D, mask: tf.Tensor2D, labels: tf.Tensor1D) => tf.Tensor2D,
): TextEvaluation {
  const m = model.heads;
  const T = data.maxLen;
  const correct = new Uint8Array(data.n);
  const predictions = new Int32Array(data.n);
  const weights = new Float32Array(data.n * m * T);
  let lossSum = 0;
  for (let from = 0; from < data.n; from += chunk) {
    const count = Math.min(chunk, data.n - from);
    const x = sentenceTensors(data, from, count);
    const [pred, w, loss] = tf.tidy(() => {
      const r = delta ? delta(x.tokens, x.mask, x.labels) : undefined;
      const out = model.forward(x.tokens, x.mask, r);
      return [tf.argMax(out.logits, 1), out.weights, crossEntropy(out.logits, x.labels)];
    });
    const p = pred.dataSync();
    for (let i = 0; i < count; i++) {
      predictions[from + i] = p[i];
      correct[from + i] = p[i] === data.label[from + i] ? 1 : 0;
    }
    weights.set(w.dataSync(), from * m * T);
    lossSum += loss.dataSync()[0] * count;
    tf.dispose([pred, w, loss, x.tokens, x.mask, x.labels]);
  }
  const accuracy = correct.reduce((s, c) => s + c, 0) / data.n;
  return {
    n: data.n,
    maxLen: T,
    heads: m,
    accuracy,
    accuracyCi95: 1.96 * Math.sqrt((accuracy * (1 - accuracy)) / data.n),
    loss: lossSum / data.n,
    correct,
    predictions,
    weights,
  };
}

/** Mean attention mass on the marked words (e.g. `important`), per head: [m] means and their 95% half-widths. */
export function attentionMass(ev: TextEvaluation, marked: Uint8Array): { mean: number[]; ci95: number[] } {
  const { n, heads: m, maxLen: T } = ev;
  const mean: number[] = [];
  const ci95: number[] = [];
  for (let j = 0; j < m; j++) {
    const xs = new Float64Array(n);
    for (let i = 0; i < n; i++)
      for (let t = 0; t < T; t++) xs[i] += ev.weights[(i * m + j) * T + t] * marked[i * T + t];
    const mu = xs.reduce((s, x) => s + x, 0) / n;
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mu) ** 2, 0) / Math.max(1, n - 1));
    mean.push(mu);
    ci95.push((1.96 * sd) / Math.sqrt(n));
  }
  return { mean, ci95 };
}

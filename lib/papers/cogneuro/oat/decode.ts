/**
 * OAT inference: greedy and sampled scanpaths (the paper reports both; its "multi" row averages 100 samples), and the
 * teacher-forced next-fixation predictions that per-step accuracy scores.
 */
import * as tf from '@tensorflow/tfjs';
import type { SearchDisplay } from '../../../data/visual-search/displays.js';
import type { Trial } from '../../../data/visual-search/splits.js';
import type { Rng } from '../../../util/random.js';
import { ShapeError } from '../../../util/shapes.js';
import { maskLogits } from '../pointer/model.js';
import {
  decodeOat,
  decoderInputs,
  disposeOatBatch,
  disposeOatInputs,
  encodeOat,
  historyBias,
  type OatAttention,
  type OatModel,
  oatBatch,
  oatInputs,
  oatLogits,
  pointerLogits,
  sourceTokens,
} from './model.js';

export interface DecodeOptions {
  mode: 'greedy' | 'sample';
  /** Longest scanpath; END is forced after it. */
  maxFixations: number;
  /** Sampling only (required there). */
  rng?: Rng;
  /** Displays per forward pass (default 128). */
  chunk?: number;
}

/** One scanpath per display (object indices; END not included). */
export function decodeScanpaths(model: OatModel, displays: SearchDisplay[], opts: DecodeOptions): number[][] {
  if (opts.mode === 'sample' && !opts.rng)
    throw new ShapeError("decodeScanpaths: mode 'sample' needs opts.rng (a seeded Rng)");
  if (!(Number.isInteger(opts.maxFixations) && opts.maxFixations >= 1))
    throw new ShapeError(`decodeScanpaths: maxFixations must be a positive integer, got ${opts.maxFixations}`);
  const chunk = opts.chunk ?? 128;
  const out: number[][] = [];
  for (let s = 0; s < displays.length; s += chunk) out.push(...decodeChunk(model, displays.slice(s, s + chunk), opts));
  return out;
}

function decodeChunk(model: OatModel, displays: SearchDisplay[], opts: DecodeOptions): number[][] {
  const x = oatInputs(model, displays);
  const b = displays.length,
    N = x.N,
    p = N + 1;
  const [tokens, memory] = tf.tidy(() => {
    const t = sourceTokens(model, x);
    return [t, encodeOat(model, x, t)];
  });
  const paths: number[][] = displays.map(() => []);
  const done = new Array<boolean>(b).fill(false);
  try {
    for (let t = 0; t <= opts.maxFixations && done.includes(false); t++) {
      const probs = tf.tidy(() => {
        const prev = tf.tensor3d(prevOneHot(paths, t + 1, N), [b, t + 1, N]);
        const h = decodeOat(model, x, memory, decoderInputs(model, tokens, prev));
        const last = h.slice([0, t, 0], [b, 1, h.shape[2]]) as tf.Tensor3D;
        let logits = pointerLogits(model, last, memory);
        if (model.config.historyLags) logits = logits.add(historyBias(model, prev).slice([0, t, 0], [b, 1, p]));
        return tf.softmax(maskLogits(logits, x.pointerValid)).reshape([b, p]);
      });
      const pr = probs.dataSync();
      probs.dispose();
      for (let r = 0; r < b; r++) {
        if (done[r]) continue;
        const row = pr.subarray(r * p, (r + 1) * p);
        const k = t === opts.maxFixations ? 0 : opts.mode === 'greedy' ? argmax(row) : sample(row, opts.rng!);
        if (k === 0) done[r] = true;
        else paths[r].push(k - 1);
      }
    }
  } finally {
    tf.dispose([tokens, memory]);
    disposeOatInputs(x);
  }
  return paths;
}

/** [b, m, N] one-hot of the object fixated before each of the first m steps. */
function prevOneHot(paths: number[][], m: number, N: number): Float32Array {
  const a = new Float32Array(paths.length * m * N);
  paths.forEach((s, r) => {
    for (let i = 1; i < m && i - 1 < s.length; i++) a[(r * m + i) * N + s[i - 1]] = 1;
  });
  return a;
}

function argmax(row: ArrayLike<number>): number {
  let k = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[k]) k = j;
  return k;
}

function sample(row: ArrayLike<number>, rng: Rng): number {
  let u = rng.next();
  let last = 0;
  for (let j = 0; j < row.length; j++) {
    if (row[j] <= 0) continue;
    last = j;
    if (u < row[j]) return j;
    u -= row[j];
  }
  return last;
}

/**
 * Teacher-forced next-fixation predictions: for each trial, at each step i (0..len), the model's most likely next
 * fixation given the true prefix (-1 = END). Also the probability the model gave the true next fixation.
 */
export function oatStepPredictions(
  model: OatModel,
  trials: Trial[],
  chunk = 128,
): { predicted: number[][]; probTrue: number[][] } {
  const predicted: number[][] = [];
  const probTrue: number[][] = [];
  for (let s = 0; s < trials.length; s += chunk) {
    const part = trials.slice(s, s + chunk);
    const { x, t } = oatBatch(model, part);
    const probs = tf.tidy(() => tf.softmax(maskLogits(oatLogits(model, x, t.prev), x.pointerValid)));
    const pr = probs.dataSync();
    const p = x.N + 1;
    part.forEach((tr, r) => {
      const pred: number[] = [],
        pt: number[] = [];
      for (let i = 0; i <= tr.scanpath.length; i++) {
        const row = pr.subarray((r * t.m + i) * p, (r * t.m + i + 1) * p);
        pred.push(argmax(row) - 1);
        pt.push(row[i < tr.scanpath.length ? tr.scanpath[i] + 1 : 0]);
      }
      predicted.push(pred);
      probTrue.push(pt);
    });
    probs.dispose();
    disposeOatBatch({ x, t });
  }
  return { predicted, probTrue };
}

/**
 * Attention maps of one trial under teacher forcing, as nested arrays: encoder self-attention `enc.{l}.attn`
 * [H][S][S], decoder cross-attention `dec.{l}.cross` [H][m][S] (source 0 is the target token), and the pointer's
 * output distribution `pointer` [m][p] (END first).
 */
export function oatAttentionMaps(model: OatModel, trial: Trial): Record<string, number[][][] | number[][]> {
  const { x, t } = oatBatch(model, [trial]);
  const cache: OatAttention = {};
  try {
    const probs = tf.tidy(() => tf.softmax(maskLogits(oatLogits(model, x, t.prev, cache), x.pointerValid)));
    const out: Record<string, number[][][] | number[][]> = { pointer: (probs.arraySync() as number[][][])[0] };
    probs.dispose();
    for (const [k, v] of Object.entries(cache)) if (!k.includes('.self')) out[k] = (v.arraySync() as number[][][][])[0];
    return out;
  } finally {
    tf.dispose(Object.values(cache));
    disposeOatBatch({ x, t });
  }
}

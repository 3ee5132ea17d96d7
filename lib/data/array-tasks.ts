/**
 * Real-valued array tasks for value generalisation (Back de Luca et al., ICML 2025, "Positional Attention",
 * https://arxiv.org/abs/2410.01686): a row is `length` numbers, the target at every position is
 *
 *   cumsum  y_i = x_0 + ... + x_i                (cumulative sum)
 *   min     y_i = min_j x_j                      (the array's minimum, at every position)
 *   sum     y_i = Σ_j x_j                        (the array's sum, at every position)
 *   sort    y   = x sorted ascending
 *
 * Worked example (cumsum, length 4): x = [0.5, -1.0, 1.5, 0.25] -> y = [0.5, -0.5, 1.0, 1.25]; the same x gives
 * min y = [-1, -1, -1, -1], sum y = [1.25, 1.25, 1.25, 1.25], sort y = [-1, 0.25, 0.5, 1.5].
 *
 * Values (as the authors' generator draws them): the training domain is [-base, base] (base 2, the paper's [-2, 2]);
 * at scale c each row first draws its own sub-range [lo, hi] (two uniform endpoints in [-base·c, base·c], ordered) and
 * then its values uniformly from [lo, hi], so rows differ in both location and spread. At c > 1 a row is drawn again
 * when its sub-range lies inside the training domain (as the authors do) or when all its values do (which they do
 * not check): every out-of-distribution row has a value outside [-base, base].
 *
 * Splits: each split has its own random stream, AND a row belongs to the split its values hash into (float32 bit
 * patterns; 6/8 train, 1/8 validation, 1/8 test), so no test row can occur in training or validation, whatever seeds
 * are used.
 */
import * as tf from '@tensorflow/tfjs';
import { hashSeed, hashString, Rng } from '../util/random.js';

export const ARRAY_TASKS = ['cumsum', 'min', 'sum', 'sort'] as const;
export type ArrayTaskName = (typeof ARRAY_TASKS)[number];
export type ArraySplit = 'train' | 'validation' | 'test';

export interface ArrayTaskConfig {
  task: ArrayTaskName;
  /** Rows. */
  batch: number;
  /** Numbers per row (every row of a batch has the same length). */
  length: number;
  seed: number;
  /** Value scale c: sub-ranges are drawn in [-base·c, base·c]; default 1 (the training domain). */
  scale?: number;
  /** Half-width of the training domain; default 2. */
  base?: number;
  /** Default 'train'. */
  split?: ArraySplit;
}

/** A batch of rows, row-major `[batch, length]`. */
export interface ArrayBatch {
  task: ArrayTaskName;
  batch: number;
  length: number;
  scale: number;
  split: ArraySplit;
  /** `[batch, length]` inputs. */
  x: Float32Array;
  /** `[batch, length]` targets (computed in float64, stored float32). */
  y: Float32Array;
  /** New tensors `[batch, length, 1]`; the caller disposes them. */
  toTensors(): { x: tf.Tensor3D; y: tf.Tensor3D };
  row(b: number): { x: number[]; y: number[] };
}

/** The targets of one row (float64). */
export function arrayTarget(task: ArrayTaskName, x: ArrayLike<number>): number[] {
  const v = Array.from(x);
  switch (task) {
    case 'cumsum': {
      let acc = 0;
      return v.map((a) => (acc += a));
    }
    case 'min': {
      const m = Math.min(...v);
      return v.map(() => m);
    }
    case 'sum': {
      const s = v.reduce((a, b) => a + b, 0);
      return v.map(() => s);
    }
    case 'sort':
      return v.sort((a, b) => a - b);
    default:
      throw new RangeError(`arrayTarget: task must be one of ${ARRAY_TASKS.join(', ')}, got '${String(task)}'`);
  }
}

const SHARES: Record<ArraySplit, number[]> = { train: [0, 1, 2, 3, 4, 5], validation: [6], test: [7] };

/** The split a row belongs to, from a hash of its values' float32 bit patterns. */
export function arraySplitOf(x: Float32Array): ArraySplit {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < bits.length; i++) {
    h ^= bits[i];
    h = Math.imul(h, 0x01000193);
  }
  const bucket = hashSeed(h) % 8;
  return bucket === 7 ? 'test' : bucket === 6 ? 'validation' : 'train';
}

function check(cfg: ArrayTaskConfig): Required<ArrayTaskConfig> {
  const fn = 'arrayTask';
  const { task, batch, length, seed } = cfg;
  const scale = cfg.scale ?? 1;
  const base = cfg.base ?? 2;
  const split = cfg.split ?? 'train';
  if (!(ARRAY_TASKS as readonly string[]).includes(task))
    throw new RangeError(`${fn}: task must be one of ${ARRAY_TASKS.join(', ')}, got '${String(task)}'`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`${fn}: batch must be an integer >= 1, got ${batch}`);
  if (!Number.isInteger(length) || length < 1)
    throw new RangeError(`${fn}: length must be an integer >= 1, got ${length}`);
  if (!Number.isFinite(seed)) throw new RangeError(`${fn}: seed must be a finite number, got ${seed}`);
  if (!(Number.isFinite(scale) && scale >= 1)) throw new RangeError(`${fn}: scale must be a number >= 1, got ${scale}`);
  if (!(Number.isFinite(base) && base > 0)) throw new RangeError(`${fn}: base must be a number > 0, got ${base}`);
  if (!(split in SHARES))
    throw new RangeError(`${fn}: split must be 'train', 'validation' or 'test', got '${String(split)}'`);
  return { task, batch, length, seed, scale, base, split };
}

const MAX_DRAWS = 1000;

/** A seeded batch of one array task at one value scale; see the module header for the distribution and splits. */
export function arrayTask(config: ArrayTaskConfig): ArrayBatch {
  const cfg = check(config);
  const { task, batch, length, scale, base, split } = cfg;
  const rng = new Rng(hashSeed(cfg.seed) ^ hashString(`array:${task}:${split}:${length}:${scale}:${base}`));
  const x = new Float32Array(batch * length);
  const y = new Float32Array(batch * length);
  const row = new Float32Array(length);
  const half = base * scale;
  for (let b = 0; b < batch; b++) {
    let draws = 0;
    for (;;) {
      if (++draws > MAX_DRAWS)
        throw new RangeError(`arrayTask: no ${split} row in ${MAX_DRAWS} draws (length ${length}, scale ${scale})`);
      let lo = -half + 2 * half * rng.next();
      let hi = -half + 2 * half * rng.next();
      if (lo > hi) [lo, hi] = [hi, lo];
      if (scale > 1 && lo >= -base && hi <= base) continue;
      let outside = false;
      for (let i = 0; i < length; i++) {
        row[i] = lo + (hi - lo) * rng.next();
        outside ||= Math.abs(row[i]) > base;
      }
      if (scale > 1 && !outside) continue;
      if (arraySplitOf(row) === split) break;
    }
    x.set(row, b * length);
    y.set(arrayTarget(task, row), b * length);
  }
  return {
    task,
    batch,
    length,
    scale,
    split,
    x,
    y,
    toTensors: () => ({
      x: tf.tensor3d(x, [batch, length, 1], 'float32'),
      y: tf.tensor3d(y, [batch, length, 1], 'float32'),
    }),
    row(b: number) {
      if (!Number.isInteger(b) || b < 0 || b >= batch)
        throw new RangeError(`arrayTask: row ${b} is outside [0, ${batch})`);
      return {
        x: Array.from(x.subarray(b * length, (b + 1) * length)),
        y: Array.from(y.subarray(b * length, (b + 1) * length)),
      };
    },
  };
}

/**
 * The batch type every generator in `lib/data` returns, plus the argument checks and the train/test split rule they share.
 *
 * Framing (the same for every task and for the text batcher): a task builds a full token sequence of length `seqLen + 1`
 * per row; `inputs` is its first `seqLen` tokens and `targets` its last `seqLen`, so `targets[b, t] === inputs[b, t + 1]`
 * (next-token prediction). `lossMask[b, t]` is 1 where the target is determined by the task (the copied tokens, the
 * recalled value, the passkey digits, the sorted tokens) and 0 elsewhere, so a masked mean of the per-position loss
 * grades exactly the task. Targets where the mask is 0 are still valid token ids (never -100), so they can go straight
 * into `tf.oneHot` or a sparse cross-entropy.
 */
import * as tf from '@tensorflow/tfjs';
import { hashSeed, Rng } from '../util/random.js';

/** Which stream of examples to draw. See {@link splitOf} for why train and test never overlap. */
export type Split = 'train' | 'test';

/** A batch of token sequences, row-major `[batch, seqLen]`. */
export interface TokenBatch {
  /** Which generator made it (`'copy'`, `'mqar'`, `'text'`, ...). */
  task: string;
  batch: number;
  seqLen: number;
  vocabSize: number;
  /** `[batch, seqLen]` token ids. */
  inputs: Int32Array;
  /** `[batch, seqLen]` next-token ids: `targets[b, t] === inputs[b, t + 1]`. */
  targets: Int32Array;
  /** `[batch, seqLen]` 1 where the loss counts, else 0. */
  lossMask: Float32Array;
  /** New tensors `[batch, seqLen]` (inputs and targets int32, lossMask float32); the caller disposes them. */
  toTensors(): { inputs: tf.Tensor2D; targets: tf.Tensor2D; lossMask: tf.Tensor2D };
  /** Row `b` as plain arrays, for printing and tests. */
  row(b: number): { inputs: number[]; targets: number[]; lossMask: number[] };
}

/** Token ids that every synthetic task reserves. Task tokens start at {@link FIRST_TASK_TOKEN}. */
export const SPECIAL = { PAD: 0, BOS: 1, SEP: 2, QUERY: 3 } as const;
export const FIRST_TASK_TOKEN = 4;

/**
 * Builds a {@link TokenBatch} from full sequences `[batch, seqLen + 1]` and a mask over the `seqLen` target positions.
 */
export function makeBatch(
  task: string,
  full: Int32Array,
  lossMask: Float32Array,
  batch: number,
  seqLen: number,
  vocabSize: number,
): TokenBatch {
  const inputs = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const src = b * (seqLen + 1);
    inputs.set(full.subarray(src, src + seqLen), b * seqLen);
    targets.set(full.subarray(src + 1, src + seqLen + 1), b * seqLen);
  }
  return withTokenBatchMethods({ task, batch, seqLen, vocabSize, inputs, targets, lossMask });
}

/**
 * A token batch's data with its methods (`toTensors`, `row`) over its own arrays: how {@link makeBatch} finishes a
 * batch, and how the experiment cache rebuilds a stored one. Other fields of `data` (a generator's extras) are kept.
 */
export function withTokenBatchMethods<F extends Omit<TokenBatch, 'toTensors' | 'row'>>(data: F): F & TokenBatch {
  const { task, batch, seqLen, inputs, targets, lossMask } = data;
  return {
    ...data,
    toTensors: () => ({
      inputs: tf.tensor2d(inputs, [batch, seqLen], 'int32'),
      targets: tf.tensor2d(targets, [batch, seqLen], 'int32'),
      lossMask: tf.tensor2d(lossMask, [batch, seqLen], 'float32'),
    }),
    row(b: number) {
      if (!Number.isInteger(b) || b < 0 || b >= batch)
        throw new RangeError(`${task}: row ${b} is outside [0, ${batch})`);
      const s = b * seqLen;
      return {
        inputs: Array.from(inputs.subarray(s, s + seqLen)),
        targets: Array.from(targets.subarray(s, s + seqLen)),
        lossMask: Array.from(lossMask.subarray(s, s + seqLen)),
      };
    },
  };
}

/** Throws unless `value` is an integer >= `min`, naming the function and the argument. */
export function checkInt(fn: string, arg: string, value: unknown, min: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${fn}: ${arg} must be an integer >= ${min}, got ${String(value)}`);
  }
}

export function checkSeed(fn: string, seed: unknown): asserts seed is number {
  if (typeof seed !== 'number' || !Number.isFinite(seed))
    throw new RangeError(`${fn}: seed must be a finite number, got ${String(seed)}`);
}

export function checkSplit(fn: string, split: unknown): asserts split is Split {
  if (split !== 'train' && split !== 'test')
    throw new RangeError(`${fn}: split must be 'train' or 'test', got ${String(split)}`);
}

/** The three-way split of generators that hold out a validation set. */
export type Split3 = 'train' | 'validation' | 'test';

export function checkSplit3(fn: string, split: unknown): asserts split is Split3 {
  if (split !== 'train' && split !== 'validation' && split !== 'test')
    throw new RangeError(`${fn}: split must be 'train', 'validation' or 'test', got ${String(split)}`);
}

/**
 * The seed of training step `step`'s batch in a run seeded `seed`: every experiment draws a fresh training batch per
 * step from it, so a run is reproducible from its seed and two runs with different seeds share no batch.
 */
export function stepSeed(seed: number, step: number): number {
  return seed * 100_003 + step;
}

/** One test example in this many: the share of the example space that belongs to the test split. */
export const TEST_SHARE = 8;

/**
 * The split an example belongs to, from a hash of the tokens that define it (for copy: the copied string; for passkey:
 * the passkey; for MQAR: the whole sequence). The generators draw until an example lands in the requested split, so a
 * test example can never appear in training, whatever the seeds. About 1 in {@link TEST_SHARE} examples are test.
 */
export function splitOf(tokens: ArrayLike<number>): Split {
  let h = 0x811c9dc5;
  for (let i = 0; i < tokens.length; i++) {
    h ^= tokens[i] & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= tokens[i] >>> 16;
    h = Math.imul(h, 0x01000193);
  }
  return hashSeed(h) % TEST_SHARE === 0 ? 'test' : 'train';
}

const MAX_DRAWS = 10_000;

/**
 * Draws from `draw` until the example's key lands in `split`. Each split also has its own random stream
 * (`new Rng(seed).fork(task + ':' + split)`), so train and test of one seed do not even share draws.
 */
export function drawInSplit<T>(
  fn: string,
  split: Split,
  rng: Rng,
  draw: (rng: Rng) => T,
  key: (example: T) => ArrayLike<number>,
  space: string,
): T {
  for (let i = 0; i < MAX_DRAWS; i++) {
    const example = draw(rng);
    if (splitOf(key(example)) === split) return example;
  }
  throw new RangeError(
    `${fn}: no ${split} example in ${MAX_DRAWS} draws; the example space (${space}) is too small to split`,
  );
}

/** The random stream of one task and split. */
export function streamFor(task: string, seed: number, split: Split): Rng {
  return new Rng(seed).fork(`${task}:${split}`);
}

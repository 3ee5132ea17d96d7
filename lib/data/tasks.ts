/**
 * Seeded synthetic tasks for attention experiments: copy, induction, multi-query associative recall (MQAR), passkey
 * retrieval and sorting.
 *
 * Every generator takes a plain JSON config and returns a {@link TokenBatch} in the next-token framing described in
 * `batch.ts`: `inputs` and `targets` are `[batch, seqLen]`, `targets[b, t] === inputs[b, t + 1]`, and `lossMask` is 1
 * exactly at the positions the task grades.
 *
 * Determinism: the same config gives the same batch, on every platform (mulberry32 via `Rng`).
 * Splits: `split: 'test'` draws from its own stream (`new Rng(seed).fork(task + ':test')`) AND keeps only examples whose
 * defining tokens hash into the test share (`splitOf`), so no test example can appear in training whatever seeds
 * are used. For the passkey task the hash covers the passkey alone: test passkeys are never seen in training.
 *
 * Token ids: 0 PAD, 1 BOS, 2 SEP, 3 QUERY are reserved (`SPECIAL`); task tokens start at 4 (`FIRST_TASK_TOKEN`).
 */
import type { Rng } from '../util/random.js';
import {
  checkInt,
  checkSeed,
  checkSplit,
  drawInSplit,
  FIRST_TASK_TOKEN,
  makeBatch,
  SPECIAL,
  type Split,
  streamFor,
  type TokenBatch,
} from './batch.js';

/** Fields every task config has. */
export interface BaseTaskConfig {
  /** Rows per batch. */
  batch: number;
  seed: number;
  /** Default 'train'. */
  split?: Split;
}

export interface CopyConfig extends BaseTaskConfig {
  /** Tokens to copy; `seqLen = 2 * length + 1`. */
  length: number;
  /** Content tokens are `[4, vocabSize)`. */
  vocabSize: number;
}

export interface InductionConfig extends BaseTaskConfig {
  seqLen: number;
  /** Content tokens are `[4, vocabSize)`. */
  vocabSize: number;
}

export interface MqarConfig extends BaseTaskConfig {
  seqLen: number;
  /** Keys are the lower half of `[4, vocabSize)`, values the upper half. */
  vocabSize: number;
  /** Key-value pairs at the start of each row. */
  numPairs: number;
  /** Keys queried after the pairs (distinct); default `numPairs`. */
  numQueries?: number;
}

export interface PasskeyConfig extends BaseTaskConfig {
  seqLen: number;
  /** Digits in the passkey; default 5. */
  digits?: number;
  /** Where the passkey sits in the filler: 0 = right after BOS, 1 = right before the question. Omitted: uniform per row. */
  depth?: number;
  /** Distinct filler tokens; default 16. `vocabSize = 14 + fillerVocab`. */
  fillerVocab?: number;
  /**
   * Draw the digits without replacement (default false; needs digits <= 10). Small models copy the passkey with an
   * induction head (find the current digit in the key, emit the one after it); a digit that occurs twice in the key
   * makes that lookup ambiguous, so with repeats the task also tests counting, not only retrieval.
   */
  distinct?: boolean;
}

export interface SortConfig extends BaseTaskConfig {
  /** Tokens to sort; `seqLen = 2 * length + 1`. */
  length: number;
  /** Content tokens are `[4, vocabSize)`; repeats are allowed. */
  vocabSize: number;
}

/** A task and its config, as one JSON object: what an experiment config stores. */
export type TaskSpec =
  | ({ task: 'copy' } & CopyConfig)
  | ({ task: 'induction' } & InductionConfig)
  | ({ task: 'mqar' } & MqarConfig)
  | ({ task: 'passkey' } & PasskeyConfig)
  | ({ task: 'sort' } & SortConfig);

export type TaskName = TaskSpec['task'];
export const TASK_NAMES: readonly TaskName[] = ['copy', 'induction', 'mqar', 'passkey', 'sort'];

/** Generates one batch of any task from its spec. */
export function generateTask(spec: TaskSpec): TokenBatch {
  switch (spec.task) {
    case 'copy':
      return copyTask(spec);
    case 'induction':
      return inductionTask(spec);
    case 'mqar':
      return mqarTask(spec);
    case 'passkey':
      return passkeyTask(spec);
    case 'sort':
      return sortTask(spec);
    default:
      throw new RangeError(
        `generateTask: task must be one of ${TASK_NAMES.join(', ')}, got ${String((spec as { task: unknown }).task)}`,
      );
  }
}

function checkBase(fn: string, cfg: BaseTaskConfig): Split {
  checkInt(fn, 'batch', cfg.batch, 1);
  checkSeed(fn, cfg.seed);
  const split = cfg.split ?? 'train';
  checkSplit(fn, split);
  return split;
}

/** Draws `n` content tokens uniformly from `[lo, hi)`. */
function tokens(rng: Rng, n: number, lo: number, hi: number): number[] {
  return Array.from({ length: n }, () => rng.int(lo, hi));
}

/** BOS x SEP f(x): the layout shared by copy and sort. */
function sourceThenAnswer(fn: string, cfg: CopyConfig | SortConfig, answer: (x: number[]) => number[]): TokenBatch {
  const split = checkBase(fn, cfg);
  checkInt(fn, 'length', cfg.length, 1);
  checkInt(fn, 'vocabSize', cfg.vocabSize, FIRST_TASK_TOKEN + 2);
  const { batch, length: L, vocabSize } = cfg;
  const seqLen = 2 * L + 1;
  const rng = streamFor(fn, cfg.seed, split);
  const full = new Int32Array(batch * (seqLen + 1));
  const mask = new Float32Array(batch * seqLen);
  const space = `length ${L}, vocabSize ${vocabSize}`;
  for (let b = 0; b < batch; b++) {
    const x = drawInSplit(
      fn,
      split,
      rng,
      (r) => tokens(r, L, FIRST_TASK_TOKEN, vocabSize),
      (x) => x,
      space,
    );
    full.set([SPECIAL.BOS, ...x, SPECIAL.SEP, ...answer(x)], b * (seqLen + 1));
    // The answer's tokens are the targets at input positions L+1 .. 2L (SEP's position predicts the first one).
    mask.fill(1, b * seqLen + L + 1, (b + 1) * seqLen);
  }
  return makeBatch(fn, full, mask, batch, seqLen, vocabSize);
}

/**
 * Copy: a random string, a separator, then the string again; graded on the repeat.
 *
 * Worked example (`{ length: 3, vocabSize: 10 }`, string 7 4 9):
 * ```
 * full     BOS 7 4 9 SEP 7 4 9      = 1 7 4 9 2 7 4 9
 * inputs   1 7 4 9 2 7 4            (seqLen = 2*3+1 = 7)
 * targets  7 4 9 2 7 4 9
 * lossMask 0 0 0 0 1 1 1
 * ```
 */
export function copyTask(cfg: CopyConfig): TokenBatch {
  return sourceThenAnswer('copy', cfg, (x) => x);
}

/**
 * Sorting: a random multiset, a separator, then its tokens in ascending order; graded on the sorted part.
 *
 * Worked example (`{ length: 4, vocabSize: 10 }`, tokens 8 5 9 5):
 * ```
 * full     BOS 8 5 9 5 SEP 5 5 8 9  = 1 8 5 9 5 2 5 5 8 9
 * inputs   1 8 5 9 5 2 5 5 8        (seqLen = 2*4+1 = 9)
 * targets  8 5 9 5 2 5 5 8 9
 * lossMask 0 0 0 0 0 1 1 1 1
 * ```
 */
export function sortTask(cfg: SortConfig): TokenBatch {
  return sourceThenAnswer('sort', cfg, (x) => [...x].sort((a, b) => a - b));
}

/**
 * Induction (Olsson et al. 2022, https://arxiv.org/abs/2209.11895): a pair A B appears once in random tokens; the row
 * ends with A again and the model must predict B. A appears exactly twice (filler never contains A), A != B, and the
 * first A B is somewhere in `[1, seqLen - 2)`.
 *
 * Worked example (`{ seqLen: 7, vocabSize: 10 }`, A = 6, B = 9):
 * ```
 * full     BOS 5 6 9 7 4 6 9        = 1 5 6 9 7 4 6 9
 * inputs   1 5 6 9 7 4 6
 * targets  5 6 9 7 4 6 9
 * lossMask 0 0 0 0 0 0 1
 * ```
 */
export function inductionTask(cfg: InductionConfig): TokenBatch {
  const fn = 'induction';
  const split = checkBase(fn, cfg);
  checkInt(fn, 'seqLen', cfg.seqLen, 4);
  checkInt(fn, 'vocabSize', cfg.vocabSize, FIRST_TASK_TOKEN + 3);
  const { batch, seqLen, vocabSize } = cfg;
  const rng = streamFor(fn, cfg.seed, split);
  const full = new Int32Array(batch * (seqLen + 1));
  const mask = new Float32Array(batch * seqLen);
  const draw = (r: Rng): number[] => {
    const [a, bTok] = r.sample(vocabSize - FIRST_TASK_TOKEN, 2).map((t) => t + FIRST_TASK_TOKEN);
    const row: number[] = [SPECIAL.BOS];
    for (let t = 1; t < seqLen - 1; t++) {
      // Filler from the content tokens other than A: shift the draw past A.
      const f = r.int(FIRST_TASK_TOKEN, vocabSize - 1);
      row.push(f >= a ? f + 1 : f);
    }
    const p = r.int(1, seqLen - 2);
    row[p] = a;
    row[p + 1] = bTok;
    row.push(a, bTok);
    return row;
  };
  for (let b = 0; b < batch; b++) {
    full.set(
      drawInSplit(fn, split, rng, draw, (row) => row, `seqLen ${seqLen}, vocabSize ${vocabSize}`),
      b * (seqLen + 1),
    );
    mask[b * seqLen + seqLen - 1] = 1;
  }
  return makeBatch(fn, full, mask, batch, seqLen, vocabSize);
}

/**
 * Multi-query associative recall (Arora et al. 2023, Zoology, https://arxiv.org/abs/2312.04927): `numPairs` key-value
 * pairs, then `numQueries` distinct keys from them, each followed by its value, at random even offsets in the rest of the
 * row (PAD between). Graded only where a queried key predicts its value. Keys and values are drawn without replacement
 * from disjoint halves of the vocabulary.
 *
 * Worked example (`{ seqLen: 10, vocabSize: 12, numPairs: 2, numQueries: 2 }`; keys 4..7, values 8..11; pairs 5:9, 7:8;
 * query slots 0 and 2 of 3):
 * ```
 * full     5 9 7 8 | 7 8 PAD PAD 5 9 PAD   = 5 9 7 8 7 8 0 0 5 9 0
 * inputs   5 9 7 8 7 8 0 0 5 9
 * targets  9 7 8 7 8 0 0 5 9 0
 * lossMask 0 0 0 0 1 0 0 0 1 0
 * ```
 */
export function mqarTask(cfg: MqarConfig): TokenBatch {
  const fn = 'mqar';
  const split = checkBase(fn, cfg);
  checkInt(fn, 'seqLen', cfg.seqLen, 2);
  checkInt(fn, 'vocabSize', cfg.vocabSize, FIRST_TASK_TOKEN + 2);
  checkInt(fn, 'numPairs', cfg.numPairs, 1);
  const numQueries = cfg.numQueries ?? cfg.numPairs;
  checkInt(fn, 'numQueries', numQueries, 1);
  const { batch, seqLen, vocabSize, numPairs } = cfg;
  const mid = FIRST_TASK_TOKEN + Math.floor((vocabSize - FIRST_TASK_TOKEN) / 2);
  const numKeys = mid - FIRST_TASK_TOKEN;
  if (numPairs > numKeys) {
    throw new RangeError(
      `${fn}: numPairs (${numPairs}) exceeds the ${numKeys} keys of vocabSize (${vocabSize}); keys are [${FIRST_TASK_TOKEN}, ${mid})`,
    );
  }
  if (numQueries > numPairs)
    throw new RangeError(`${fn}: numQueries (${numQueries}) exceeds numPairs (${numPairs}); queried keys are distinct`);
  if (2 * numPairs + 2 * numQueries > seqLen + 1) {
    throw new RangeError(
      `${fn}: numPairs (${numPairs}) * 2 + numQueries (${numQueries}) * 2 exceeds seqLen (${seqLen}) + 1; each pair and each query takes two tokens`,
    );
  }
  const slots = Math.floor((seqLen + 1 - 2 * numPairs) / 2);
  const rng = streamFor(fn, cfg.seed, split);
  const full = new Int32Array(batch * (seqLen + 1));
  const mask = new Float32Array(batch * seqLen);
  const draw = (r: Rng): { row: Int32Array; queryAt: number[] } => {
    const keys = r.sample(numKeys, numPairs).map((k) => k + FIRST_TASK_TOKEN);
    const values = r.sample(vocabSize - mid, numPairs).map((v) => v + mid);
    const row = new Int32Array(seqLen + 1); // PAD = 0
    keys.forEach((k, i) => row.set([k, values[i]], 2 * i));
    const queried = r.sample(numPairs, numQueries);
    const offsets = r.sample(slots, numQueries).sort((a, b) => a - b);
    const queryAt = offsets.map((s, j) => {
      const at = 2 * numPairs + 2 * s;
      row.set([keys[queried[j]], values[queried[j]]], at);
      return at;
    });
    return { row, queryAt };
  };
  for (let b = 0; b < batch; b++) {
    const ex = drawInSplit(
      fn,
      split,
      rng,
      draw,
      (e) => e.row,
      `seqLen ${seqLen}, vocabSize ${vocabSize}, numPairs ${numPairs}`,
    );
    full.set(ex.row, b * (seqLen + 1));
    for (const at of ex.queryAt) mask[b * seqLen + at] = 1;
  }
  return makeBatch(fn, full, mask, batch, seqLen, vocabSize);
}

/** Passkey token ids: digit `d` is `PASSKEY_DIGIT0 + d`; filler tokens follow the digits. */
export const PASSKEY_DIGIT0 = FIRST_TASK_TOKEN;
export const PASSKEY_FIRST_FILLER = PASSKEY_DIGIT0 + 10;

/**
 * Passkey retrieval (Mohtashami & Jaggi 2023, https://arxiv.org/abs/2305.16300): a digit string between two SEPs hidden
 * in random filler at a chosen depth; the row ends with QUERY and the model must output the digits. Graded on the
 * digits after QUERY. The filler has `seqLen - 3 - 2 * digits` tokens, `round(depth * that)` of them before the passkey.
 *
 * Worked example (`{ seqLen: 14, digits: 3, depth: 0.5, fillerVocab: 4 }`; digits 0..9 are ids 4..13, filler 14..17;
 * passkey 703; 5 filler tokens, 3 before):
 * ```
 * full     BOS 15 14 17 SEP 11 4 7 SEP 16 15 QUERY 11 4 7   = 1 15 14 17 2 11 4 7 2 16 15 3 11 4 7
 * inputs   1 15 14 17 2 11 4 7 2 16 15 3 11 4
 * targets  15 14 17 2 11 4 7 2 16 15 3 11 4 7
 * lossMask 0 0 0 0 0 0 0 0 0 0 0 1 1 1
 * ```
 */
export function passkeyTask(cfg: PasskeyConfig): TokenBatch {
  const fn = 'passkey';
  const split = checkBase(fn, cfg);
  const digits = cfg.digits ?? 5;
  const fillerVocab = cfg.fillerVocab ?? 16;
  checkInt(fn, 'digits', digits, 1);
  checkInt(fn, 'fillerVocab', fillerVocab, 1);
  checkInt(fn, 'seqLen', cfg.seqLen, 1);
  if (cfg.distinct && digits > 10) throw new RangeError(`${fn}: distinct digits need digits <= 10, got ${digits}`);
  const { batch, seqLen, depth } = cfg;
  if (depth !== undefined && !(typeof depth === 'number' && depth >= 0 && depth <= 1)) {
    throw new RangeError(`${fn}: depth must be a number in [0, 1] or omitted, got ${String(depth)}`);
  }
  const fillerLen = seqLen - 3 - 2 * digits;
  if (fillerLen < 0) {
    throw new RangeError(
      `${fn}: seqLen (${seqLen}) is too short for digits (${digits}); it needs at least 2 * digits + 3 = ${2 * digits + 3}`,
    );
  }
  const vocabSize = PASSKEY_FIRST_FILLER + fillerVocab;
  const rng = streamFor(fn, cfg.seed, split);
  const full = new Int32Array(batch * (seqLen + 1));
  const mask = new Float32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const draw = (r: Rng) =>
      cfg.distinct
        ? r.sample(10, digits).map((d) => d + PASSKEY_DIGIT0)
        : tokens(r, digits, PASSKEY_DIGIT0, PASSKEY_FIRST_FILLER);
    const key = drawInSplit(fn, split, rng, draw, (k) => k, `${digits} digits`);
    const before = Math.round((depth ?? rng.next()) * fillerLen);
    const filler = tokens(rng, fillerLen, PASSKEY_FIRST_FILLER, vocabSize);
    const row = [
      SPECIAL.BOS,
      ...filler.slice(0, before),
      SPECIAL.SEP,
      ...key,
      SPECIAL.SEP,
      ...filler.slice(before),
      SPECIAL.QUERY,
      ...key,
    ];
    full.set(row, b * (seqLen + 1));
    mask.fill(1, (b + 1) * seqLen - digits, (b + 1) * seqLen);
  }
  return makeBatch(fn, full, mask, batch, seqLen, vocabSize);
}

/** The passkey digits of each row as strings (`'703'`), read from the graded targets. */
export function passkeyAnswers(batch: TokenBatch): string[] {
  const out: string[] = [];
  for (let b = 0; b < batch.batch; b++) {
    const { targets, lossMask } = batch.row(b);
    out.push(
      targets
        .filter((_, t) => lossMask[t] === 1)
        .map((id) => String(id - PASSKEY_DIGIT0))
        .join(''),
    );
  }
  return out;
}

/**
 * Repeated random segments of varying length: the canonical probe for induction heads (Olsson et al. 2022, §2).
 *
 * A row is BOS, a segment x of L distinct random tokens (L drawn per row from [minLen, maxLen]), then x repeated until
 * the row is full. From the second token of the first repeat on, every next token is predictable by looking up the
 * previous occurrence of the current token and copying what followed it. Because L varies per row, no fixed positional
 * offset solves it: the lookup has to be by content.
 *
 * Worked example (`{ seqLen: 8, vocabSize: 10 }`, L = 3, x = 7 4 9):
 * ```
 * full     BOS 7 4 9 7 4 9 7 4     = 1 7 4 9 7 4 9 7 4
 * inputs   1 7 4 9 7 4 9 7
 * targets  7 4 9 7 4 9 7 4
 * lossMask 0 0 0 0 1 1 1 1       (graded from input position L+1, whose token 7 has a previous occurrence)
 * ```
 */
import {
  checkInt,
  checkSeed,
  drawInSplit,
  FIRST_TASK_TOKEN,
  makeBatch,
  SPECIAL,
  type Split,
  streamFor,
  type TokenBatch,
} from './batch.js';

export interface RepeatConfig {
  batch: number;
  seqLen: number;
  vocabSize: number;
  minLen: number;
  maxLen: number;
  seed: number;
  split?: Split;
}

export interface RepeatBatch extends TokenBatch {
  /** Segment length of each row. */
  lengths: number[];
}

export function repeatTask(cfg: RepeatConfig): RepeatBatch {
  const fn = 'repeatTask';
  checkInt(fn, 'batch', cfg.batch, 1);
  checkSeed(fn, cfg.seed);
  checkInt(fn, 'minLen', cfg.minLen, 2);
  checkInt(fn, 'maxLen', cfg.maxLen, cfg.minLen);
  checkInt(fn, 'vocabSize', cfg.vocabSize, FIRST_TASK_TOKEN + cfg.maxLen);
  checkInt(fn, 'seqLen', cfg.seqLen, 2 * cfg.maxLen + 2);
  const split = cfg.split ?? 'train';
  const { batch, seqLen, vocabSize } = cfg;
  const rng = streamFor(fn, cfg.seed, split);
  const full = new Int32Array(batch * (seqLen + 1));
  const mask = new Float32Array(batch * seqLen);
  const lengths: number[] = [];
  for (let b = 0; b < batch; b++) {
    const x = drawInSplit(
      fn,
      split,
      rng,
      (r) => r.sample(vocabSize - FIRST_TASK_TOKEN, r.int(cfg.minLen, cfg.maxLen + 1)).map((t) => t + FIRST_TASK_TOKEN),
      (x) => x,
      `segments of ${cfg.minLen}-${cfg.maxLen} distinct tokens from ${vocabSize - FIRST_TASK_TOKEN}`,
    );
    const L = x.length;
    lengths.push(L);
    const row = full.subarray(b * (seqLen + 1), (b + 1) * (seqLen + 1));
    row[0] = SPECIAL.BOS;
    for (let i = 1; i <= seqLen; i++) row[i] = x[(i - 1) % L];
    mask.fill(1, b * seqLen + L + 1, (b + 1) * seqLen);
  }
  return { ...makeBatch(fn, full, mask, batch, seqLen, vocabSize), lengths };
}

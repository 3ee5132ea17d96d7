/**
 * Multi-query associative recall with power-law query spacing, as Zoology generates it (Arora et al., ICLR 2024,
 * https://arxiv.org/abs/2312.04927; HazyResearch/zoology, data/associative_recall.py `multiquery_ar`). The uniform-
 * spacing MQAR of `tasks.ts` stays as it is; this file adds the official spacing and a validation split.
 *
 * A row: `numPairs` key-value pairs (keys distinct, from the lower half of the task tokens; values from the upper half),
 * then every key asked once, in random order, at gap g ∈ [0, space) pairs after the context, where
 * space = (seqLen - 2·numPairs) / 2 and P(g) ∝ (g + 1)^(a - 1) (`powerA` a = 0.01, the official value: most queries sit
 * soon after the pairs, a few far). The token after a query is its value; every other position is a random task token.
 * Graded: the value after each query.
 *
 * Differences from the official generator: the official input after a query is random (the label alone holds the
 * value); here the value sits there, so `targets[b, t] === inputs[b, t + 1]` as for every TokenBatch (each key is
 * asked once, so no later query can read it). Random filler is drawn from all task tokens, as the official
 * `random_non_queries` draws from the whole vocabulary.
 *
 * Splits: 'train', 'validation' and 'test' rows come from their own random streams AND from disjoint hash classes of
 * the whole row (test: `splitOf` of batch.ts, 1 in 8; validation: 1 in 7 of the rest under a second hash), so no
 * evaluation row can occur in training whatever the seeds.
 *
 * Worked example (`{ seqLen: 12, numPairs: 2, vocabSize: 12 }`; keys 4..7, values 8..11; space 4; gaps 0 and 2):
 * ```
 * inputs   5 9 7 10 | 7 10 x x 5 9 x x        (x: random task tokens; the context is `5 9 7 10`)
 * targets  9 7 10 7 | 10 x x 5 9 x x x
 * lossMask 0 0 0 0  | 1 0 0 0 1 0 0 0
 * ```
 */
import { hashSeed, Rng } from '../util/random.js';
import { checkInt, checkSeed, checkSplit3, FIRST_TASK_TOKEN, makeBatch, splitOf, type TokenBatch } from './batch.js';

export type MqarSplit = 'train' | 'validation' | 'test';

export interface MqarPowerLawConfig {
  batch: number;
  seqLen: number;
  /** Keys are the lower half of `[4, vocabSize)`, values the upper half. */
  vocabSize: number;
  numPairs: number;
  /** Exponent a of P(gap) ∝ (gap + 1)^(a - 1); default 0.01 (the official train and test value). */
  powerA?: number;
  seed: number;
  split?: MqarSplit;
}

/** Which split a row belongs to (see the module header). */
export function mqarSplitOf(row: ArrayLike<number>): MqarSplit {
  if (splitOf(row) === 'test') return 'test';
  let h = 0x9e3779b9;
  for (let i = 0; i < row.length; i++) h = Math.imul(h ^ row[i], 0x85ebca6b) >>> 0;
  return hashSeed(h) % 7 === 0 ? 'validation' : 'train';
}

/** P(gap = g) for g in [0, space), ∝ (g + 1)^(a - 1) (Zoology's power-law query spacing). */
export function powerLawGaps(space: number, a: number): Float64Array {
  const p = Float64Array.from({ length: space }, (_, g) => a * (g + 1) ** (a - 1));
  const s = p.reduce((x, y) => x + y, 0);
  return p.map((x) => x / s);
}

/** `k` distinct draws from the distribution `p` (sequential sampling without replacement, as numpy's choice). */
function sampleWithout(rng: Rng, p: Float64Array, k: number): number[] {
  const w = Float64Array.from(p);
  const out: number[] = [];
  for (let n = 0; n < k; n++) {
    let total = 0;
    for (const x of w) total += x;
    let u = rng.next() * total;
    let g = 0;
    while (g < w.length - 1 && (u >= w[g] || w[g] === 0)) {
      u -= w[g];
      g++;
    }
    out.push(g);
    w[g] = 0;
  }
  return out;
}

const MAX_DRAWS = 10_000;

/** A batch of power-law MQAR rows (see the module header). */
export function mqarPowerLaw(cfg: MqarPowerLawConfig): TokenBatch {
  const fn = 'mqarPowerLaw';
  checkInt(fn, 'batch', cfg.batch, 1);
  checkInt(fn, 'seqLen', cfg.seqLen, 4);
  checkInt(fn, 'vocabSize', cfg.vocabSize, FIRST_TASK_TOKEN + 2);
  checkInt(fn, 'numPairs', cfg.numPairs, 1);
  checkSeed(fn, cfg.seed);
  const split = cfg.split ?? 'train';
  checkSplit3(fn, split);
  const a = cfg.powerA ?? 0.01;
  if (!(a > 0 && a <= 1)) throw new RangeError(`${fn}: powerA must be in (0, 1], got ${a}`);
  const { batch, seqLen, vocabSize, numPairs } = cfg;
  const mid = FIRST_TASK_TOKEN + Math.floor((vocabSize - FIRST_TASK_TOKEN) / 2);
  const numKeys = mid - FIRST_TASK_TOKEN;
  const numValues = vocabSize - mid;
  if (numPairs > numKeys || numPairs > numValues)
    throw new RangeError(
      `${fn}: numPairs (${numPairs}) exceeds the ${numKeys} keys / ${numValues} values of vocabSize ${vocabSize}`,
    );
  const context = 2 * numPairs;
  const space = Math.floor((seqLen + 1 - context) / 2);
  if (space < numPairs)
    throw new RangeError(
      `${fn}: seqLen (${seqLen}) leaves ${space} query slots after the ${numPairs} pairs; needs seqLen >= 4 * numPairs - 1 = ${4 * numPairs - 1}`,
    );
  const p = powerLawGaps(space, a);
  const rng = new Rng(cfg.seed).fork(`${fn}:${split}`);
  const full = new Int32Array(batch * (seqLen + 1));
  const mask = new Float32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    let row: Int32Array | undefined;
    let queryAt: number[] = [];
    for (let tries = 0; tries < MAX_DRAWS && !row; tries++) {
      const r = new Int32Array(seqLen + 1);
      const keys = rng.sample(numKeys, numPairs).map((k) => k + FIRST_TASK_TOKEN);
      const values = rng.sample(numValues, numPairs).map((v) => v + mid);
      keys.forEach((k, i) => r.set([k, values[i]], 2 * i));
      const free = new Uint8Array(seqLen + 1).fill(1);
      free.fill(0, 0, context);
      const gaps = sampleWithout(rng, p, numPairs);
      const order = rng.shuffle(keys.map((_, i) => i));
      const at = gaps.map((g, j) => {
        const pos = context + 2 * g;
        r.set([keys[order[j]], values[order[j]]], pos);
        free[pos] = 0;
        free[pos + 1] = 0;
        return pos;
      });
      for (let i = 0; i <= seqLen; i++) if (free[i]) r[i] = rng.int(FIRST_TASK_TOKEN, vocabSize);
      if (mqarSplitOf(r) === split) {
        row = r;
        queryAt = at;
      }
    }
    if (!row) throw new RangeError(`${fn}: no ${split} row in ${MAX_DRAWS} draws; the example space is too small`);
    full.set(row, b * (seqLen + 1));
    for (const q of queryAt) mask[b * seqLen + q] = 1;
  }
  return makeBatch('mqar-powerlaw', full, mask, batch, seqLen, vocabSize);
}

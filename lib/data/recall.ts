/**
 * Planted long-range recall (routing-lm's task): value-key pairs right after BOS, filler, then the keys asked again at
 * the end of the row; the model must output each asked key's value. The pairs sit far before the questions, outside a
 * local window, so local attention is at chance (1 / values). A pair is written value first, so the lookup is a
 * content match: the asked key and its earlier occurrence are the same token, and the value sits just before it.
 *
 * Ids: 0 BOS, keys [1, 1+K), values [1+K, 1+K+V), filler after. Graded: the values after the repeated keys.
 * Train and test rows come from different random streams of the same seed.
 *
 * Example (P = 2, K = 4, V = 4, seqLen 12): inputs `BOS 7 2 5 4 f f f 4 5 2 7`, after the second `4` the target is `5`.
 */
import { Rng } from '../util/random.js';
import { makeBatch, type Split, type TokenBatch } from './batch.js';

export interface RecallConfig {
  seqLen: number;
  /** Value-key pairs per row. */
  pairs: number;
  /** Key ids to draw the pairs' keys from (distinct within a row). */
  keys: number;
  values: number;
  /** Filler token ids. */
  filler: number;
}

/** `batch` rows of the recall task (see the module header); vocabSize = 1 + keys + values + filler. */
export function recallTask(cfg: RecallConfig, batch: number, seed: number, split: Split): TokenBatch {
  const { seqLen, pairs, keys, values, filler } = cfg;
  if (seqLen < 4 * pairs + 2)
    throw new RangeError(`recallTask: seqLen (${seqLen}) must be at least 4 * pairs + 2 = ${4 * pairs + 2}`);
  if (pairs > keys) throw new RangeError(`recallTask: pairs (${pairs}) cannot exceed keys (${keys})`);
  const rng = new Rng(seed * 2 + (split === 'test' ? 1 : 0) + 1_000_003);
  const vocab = 1 + keys + values + filler;
  const full = new Int32Array(batch * (seqLen + 1));
  const lossMask = new Float32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const ks = rng.sample(keys, pairs).map((x) => 1 + x);
    const vs = ks.map(() => 1 + keys + rng.int(0, values));
    const row: number[] = [0];
    ks.forEach((k, i) => row.push(vs[i], k));
    const tail: number[] = [];
    const order = rng.shuffle(ks.map((_, i) => i));
    for (const i of order) tail.push(ks[i], vs[i]);
    while (row.length + tail.length < seqLen + 1) row.push(1 + keys + values + rng.int(0, filler));
    full.set([...row, ...tail].slice(0, seqLen + 1), b * (seqLen + 1));
    // Graded: the targets that are values answering a repeated key.
    const start = seqLen + 1 - tail.length;
    for (let j = 0; j < tail.length; j += 2) lossMask[b * seqLen + start + j] = 1;
  }
  return makeBatch('recall', full, lossMask, batch, seqLen, vocab);
}

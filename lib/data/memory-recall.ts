/**
 * Associative recall beyond a local window (the test-time-memory task of Titans / Miras): key-value pairs written far
 * back in a row of filler, then every key asked again at the end. The pairs sit at least `window` tokens before the
 * first question, so a sliding window of that size never sees them; each pair may be written `repeats` times, and a
 * fraction of those writes can be flagged as corrupted (the experiment adds a large outlier to their value).
 *
 * Ids: keys [0, K), values [K, K+V), filler [K+V, K+V+F), which repeats as a cycle f0 f1 ... f(F-1) f0 ... A pair is written key then value. Each question is one key
 * token among the last `pairs` positions; its answer is the pair's value id. Rows of the three splits come from
 * different random streams of the same seed, so train, validation and test rows are drawn independently.
 *
 * Example (pairs 2, repeats 1, window 4, seqLen 14; k0=0, k1=1, v=K+...):
 *   tokens  f 1 9 f f 0 5 f f f f f 0 1     (f: the filler cycle) questions at positions 12 (answer 5) and 13 (answer 9)
 */
import { Rng } from '../util/random.js';

export type MemoryRecallSplit = 'train' | 'validation' | 'test';

export interface MemoryRecallConfig {
  seqLen: number;
  pairs: number;
  keys: number;
  values: number;
  filler: number;
  /** Tokens before the questions that hold no pair (>= the window the task should defeat). */
  window: number;
  /** Times each pair is written (default 1). */
  repeats?: number;
  /** Fraction of pair writes flagged as corrupted (default 0). */
  outlierFraction?: number;
}

export interface MemoryRecallBatch {
  rows: number;
  seqLen: number;
  vocab: number;
  /** Token ids [rows * seqLen]. */
  tokens: Int32Array;
  /** 1 at a value token whose write is corrupted [rows * seqLen]. */
  outlier: Uint8Array;
  /** Per row, the `pairs` questions: answer value ids [rows * pairs] and distance to the pair's last write. */
  answers: Int32Array;
  distances: Int32Array;
}

/** `rows` rows of the task (see the module header). */
export function memoryRecallTask(
  cfg: MemoryRecallConfig,
  rows: number,
  seed: number,
  split: MemoryRecallSplit,
): MemoryRecallBatch {
  const { seqLen, pairs, keys, values, filler, window } = cfg;
  const repeats = cfg.repeats ?? 1;
  const frac = cfg.outlierFraction ?? 0;
  const fn = 'memoryRecallTask';
  if (pairs > keys) throw new RangeError(`${fn}: pairs (${pairs}) cannot exceed keys (${keys})`);
  if (filler < 1) throw new RangeError(`${fn}: filler must be >= 1, got ${filler}`);
  if (!(frac >= 0 && frac <= 1)) throw new RangeError(`${fn}: outlierFraction must be in [0, 1], got ${frac}`);
  const region = seqLen - pairs - window;
  const slots = Math.floor(region / 2);
  if (slots < pairs * repeats)
    throw new RangeError(
      `${fn}: seqLen (${seqLen}) leaves ${slots} two-token slots before the window, fewer than pairs * repeats = ${pairs * repeats}`,
    );
  const rng = new Rng(seed * 3 + { train: 0, validation: 1, test: 2 }[split] + 7_000_003);
  const tokens = new Int32Array(rows * seqLen);
  const outlier = new Uint8Array(rows * seqLen);
  const answers = new Int32Array(rows * pairs);
  const distances = new Int32Array(rows * pairs);
  const nOut = Math.round(frac * pairs * repeats);
  for (let r = 0; r < rows; r++) {
    const o = r * seqLen;
    // Filler is a fixed cycle (predictable: a surprise-driven memory stops writing it), at a random phase per row.
    const phase = rng.int(0, filler);
    for (let t = 0; t < seqLen; t++) tokens[o + t] = keys + values + ((t + phase) % filler);
    const ks = rng.sample(keys, pairs);
    const vs = ks.map(() => keys + rng.int(0, values));
    const where = rng.sample(slots, pairs * repeats).map((s) => 2 * s);
    const last = new Array<number>(pairs).fill(-1);
    const bad = new Set(rng.sample(pairs * repeats, nOut));
    where.forEach((pos, i) => {
      const p = i % pairs;
      tokens[o + pos] = ks[p];
      tokens[o + pos + 1] = vs[p];
      if (bad.has(i)) outlier[o + pos + 1] = 1;
      last[p] = Math.max(last[p], pos + 1);
    });
    const order = rng.shuffle(ks.map((_, i) => i));
    order.forEach((p, j) => {
      const pos = seqLen - pairs + j;
      tokens[o + pos] = ks[p];
      answers[r * pairs + j] = vs[p];
      distances[r * pairs + j] = pos - last[p];
    });
  }
  return { rows, seqLen, vocab: keys + values + filler, tokens, outlier, answers, distances };
}

/**
 * Text with embedded key-value facts and retrieval queries at the end (MEAP's toy setting): each row is a stretch of
 * text from a fixed random "language" (a first-order Markov chain over word ids) with F facts `value key` inserted at
 * chosen depths, followed by F queries `QUERY key value`, one per fact in random order. A key is a word; a value is a
 * value id drawn uniformly for each fact. A row's keys never occur in its text, so each key is seen exactly once
 * before its query: answering means finding that occurrence and copying the token just before it. The text gives the
 * language-model loss something to learn besides retrieval.
 *
 * Ids: 0 PAD, 1 BOS, 2 SEP (unused), 3 QUERY, values [4, 4+V), words [4+V, 4+V+W); vocabSize = 4 + V + W. A row of
 * `seqLen + 1` tokens: BOS, the context (C = seqLen - 3F tokens: text and facts), the queries (3F tokens). A fact's
 * depth is its start within the context as a fraction of the last possible start: 0 = right after BOS, 1 = right
 * before the queries. `textMask` marks the targets the language drew freely after a text word (where the chain had to
 * avoid a key, the draw is left out), so its best possible loss there is the language's entropy.
 *
 * Splits: train, validation and test rows come from different random streams of the seed, and their facts are
 * disjoint: a fact's key decides its split ({@link keySplit}: words w with w mod 8 < 6 are training keys, 6 validation,
 * 7 test), so no test fact, not even its key, is ever a training fact, and since values are uniform there is no
 * key-value association to memorise: the answer must be read from the context. Every word still occurs in the text
 * of other rows of every split, so a test key's embedding is trained (as text), just never as a key. The language is
 * the same in every split.
 *
 * Example (V = 8, W = 24, facts 2, seqLen 14, seed 2, train; values 4-11, words 12-35):
 *   full row   BOS 24 9 22 32 29 26 6 12 QUERY 22 9 QUERY 12 6
 *   facts      (value 9, key 22) at 2-3, depth 1/6; (value 6, key 12) at 7-8, depth 6/6 = 1
 *   graded     the targets after the queried keys: 9 at input position 10, 6 at input position 13
 *   queries    [{ row 0, pos 10, factPos 3, depth 1/6 }, { row 0, pos 13, factPos 8, depth 1 }]
 */
import { Rng } from '../util/random.js';
import { checkInt, checkSeed, makeBatch, SPECIAL, type TokenBatch } from './batch.js';

export type KvFactsSplit = 'train' | 'validation' | 'test';
export const KV_FACTS_SPLITS: readonly KvFactsSplit[] = ['train', 'validation', 'test'];

export interface KvFactsConfig {
  /** Input positions per row. */
  seqLen: number;
  /** Value ids V. */
  values: number;
  /** Text word ids W; every split needs `facts` key words, so W >= 8 · facts. */
  words: number;
  /** Facts per row, each queried once at the end (their keys are distinct). */
  facts: number;
  /** Successors of each word in the text language (default 3), drawn with probabilities ∝ 2^-j. */
  branching?: number;
  /** The text language's seed (default 0); the same language in every split. */
  languageSeed?: number;
  /**
   * Fact i starts at depth depths[i] (a fraction in [0, 1]) of the context; length `facts`, rounded to the nearest
   * start and moved right past an earlier fact. Default: the facts are placed uniformly at random.
   */
  depths?: number[];
}

/** One query of a batch: where its answer is graded and where its fact sits. */
export interface KvQuery {
  row: number;
  /** Input position whose target is the answer (lossMask is 1 there). */
  pos: number;
  /** Input position of the fact's key (its value is the token before). */
  factPos: number;
  /** The fact's depth in [0, 1] (see the module header). */
  depth: number;
}

export interface KvFactsBatch extends TokenBatch {
  split: KvFactsSplit;
  /** Every query, row by row in the order they appear. */
  queries: KvQuery[];
  /** `[batch, seqLen]` 1 where the target is a text word the language drew freely after a text word (the LM loss). */
  textMask: Float32Array;
}

/** The id ranges of a config, half-open `[lo, hi)`. */
export function kvFactsVocab(cfg: Pick<KvFactsConfig, 'values' | 'words'>): {
  vocabSize: number;
  values: [number, number];
  words: [number, number];
} {
  const v0 = 4;
  const w0 = v0 + cfg.values;
  return { vocabSize: w0 + cfg.words, values: [v0, w0], words: [w0, w0 + cfg.words] };
}

/** The split whose facts use word index `w` as their key: w mod 8 < 6 train, 6 validation, 7 test. */
export function keySplit(w: number): KvFactsSplit {
  const slot = w % 8;
  return slot === 6 ? 'validation' : slot === 7 ? 'test' : 'train';
}

/** The text language: each word's successors and their probabilities (the same vector for every word). */
export function kvFactsLanguage(cfg: Pick<KvFactsConfig, 'words' | 'branching' | 'languageSeed'>): {
  successors: number[][];
  probs: number[];
} {
  const branching = cfg.branching ?? 3;
  const rng = new Rng(cfg.languageSeed ?? 0).fork('kv-facts:language');
  const raw = Array.from({ length: branching }, (_, j) => 2 ** -j);
  const z = raw.reduce((a, b) => a + b, 0);
  return {
    successors: Array.from({ length: cfg.words }, () => rng.sample(cfg.words, branching)),
    probs: raw.map((p) => p / z),
  };
}

/** The best possible loss on a text token that follows a text word (nats): the entropy of the transition probabilities. */
export function kvFactsTextEntropy(cfg: Pick<KvFactsConfig, 'words' | 'branching' | 'languageSeed'>): number {
  return -kvFactsLanguage(cfg).probs.reduce((a, p) => a + p * Math.log(p), 0);
}

function checkConfig(fn: string, cfg: KvFactsConfig): void {
  checkInt(fn, 'seqLen', cfg.seqLen, 4);
  checkInt(fn, 'values', cfg.values, 1);
  checkInt(fn, 'facts', cfg.facts, 1);
  checkInt(fn, 'words', cfg.words, 8 * cfg.facts);
  const branching = cfg.branching ?? 3;
  checkInt(fn, 'branching', branching, 1);
  if (branching > cfg.words) throw new RangeError(`${fn}: branching must be <= words (${cfg.words}), got ${branching}`);
  const context = cfg.seqLen - 3 * cfg.facts;
  if (context < 2 * cfg.facts)
    throw new RangeError(
      `${fn}: seqLen must be >= 5 · facts = ${5 * cfg.facts} (context for the facts plus the queries), got ${cfg.seqLen}`,
    );
  if (cfg.depths !== undefined) {
    if (!Array.isArray(cfg.depths) || cfg.depths.length !== cfg.facts)
      throw new RangeError(
        `${fn}: depths must be a list of ${cfg.facts} fractions (one per fact), got ${JSON.stringify(cfg.depths)}`,
      );
    for (const d of cfg.depths)
      if (typeof d !== 'number' || !(d >= 0 && d <= 1))
        throw new RangeError(`${fn}: depths must lie in [0, 1], got ${JSON.stringify(cfg.depths)}`);
  }
}

/** Fact starts within the context (offsets 0..C-2), in the order of the facts. */
function placeFacts(cfg: KvFactsConfig, context: number, rng: Rng): number[] {
  const F = cfg.facts;
  const last = context - 2;
  if (cfg.depths) {
    const order = cfg.depths.map((d, i) => ({ i, want: Math.round(d * last) })).sort((a, b) => a.want - b.want);
    const starts = new Array<number>(F);
    let free = 0;
    for (const { i, want } of order) {
      starts[i] = Math.max(want, free);
      free = starts[i] + 2;
    }
    // Facts pushed past the end move back left, keeping their order.
    let limit = last;
    for (let j = order.length - 1; j >= 0; j--) {
      const i = order[j].i;
      starts[i] = Math.min(starts[i], limit);
      limit = starts[i] - 2;
    }
    return starts;
  }
  // F facts among T = C - 2F text tokens: choose which of the T + F items are facts; each earlier fact adds a token.
  const items = rng.sample(context - F, F).sort((a, b) => a - b);
  return rng.shuffle(items.map((a, i) => a + i));
}

/** `batch` rows of the task (see the module header) from `seed` and `split`. */
export function kvFactsTask(cfg: KvFactsConfig, batch: number, seed: number, split: KvFactsSplit): KvFactsBatch {
  const fn = 'kvFactsTask';
  checkConfig(fn, cfg);
  checkInt(fn, 'batch', batch, 1);
  checkSeed(fn, seed);
  if (!KV_FACTS_SPLITS.includes(split))
    throw new RangeError(`${fn}: split must be one of ${KV_FACTS_SPLITS.join(', ')}, got ${String(split)}`);
  const { seqLen: S, facts: F } = cfg;
  const vocab = kvFactsVocab(cfg);
  const { successors, probs } = kvFactsLanguage(cfg);
  const keyWords = Array.from({ length: cfg.words }, (_, w) => w).filter((w) => keySplit(w) === split);
  const context = S - 3 * F;
  const rng = new Rng(seed).fork(`kv-facts:${split}`);
  const full = new Int32Array(batch * (S + 1));
  const lossMask = new Float32Array(batch * S);
  const textMask = new Float32Array(batch * S);
  const queries: KvQuery[] = [];
  /** The next word after w, never one of `banned`; `free` is false when a banned successor had to be avoided. */
  const nextWord = (w: number, banned: Set<number>): { word: number; free: boolean } => {
    const allowed = successors[w].map((x, j) => (banned.has(x) ? 0 : probs[j]));
    const z = allowed.reduce((a, p) => a + p, 0);
    const free = z > 1 - 1e-12;
    if (z === 0) {
      const others = Array.from({ length: cfg.words }, (_, x) => x).filter((x) => !banned.has(x));
      return { word: others[rng.int(0, others.length)], free };
    }
    let u = rng.next() * z;
    let last = 0;
    for (let j = 0; j < allowed.length; j++) {
      if (allowed[j] === 0) continue;
      last = j;
      u -= allowed[j];
      if (u < 0) return { word: successors[w][j], free };
    }
    return { word: successors[w][last], free };
  };
  for (let b = 0; b < batch; b++) {
    const keys = rng.sample(keyWords.length, F).map((i) => keyWords[i]);
    const values = keys.map(() => rng.int(0, cfg.values));
    const starts = placeFacts(cfg, context, rng);
    const factAt = new Map(starts.map((s, i) => [s, i]));
    const row = new Int32Array(S + 1);
    const text = new Uint8Array(S + 1); // 1 at the text words drawn from the language unconstrained
    const banned = new Set(keys); // a row's keys never occur in its text: each key is seen once before its query
    row[0] = SPECIAL.BOS;
    const start = Array.from({ length: cfg.words }, (_, x) => x).filter((x) => !banned.has(x));
    let word = start[rng.int(0, start.length)];
    let first = true;
    for (let c = 0; c < context; c++) {
      const f = factAt.get(c);
      if (f !== undefined) {
        row[1 + c] = vocab.values[0] + values[f];
        row[2 + c] = vocab.words[0] + keys[f];
        c++;
        continue;
      }
      let free = false; // the first word has no predecessor in the text
      if (!first) ({ word, free } = nextWord(word, banned));
      first = false;
      row[1 + c] = vocab.words[0] + word;
      text[1 + c] = free ? 1 : 2;
    }
    const order = rng.shuffle(Array.from({ length: F }, (_, i) => i));
    order.forEach((f, j) => {
      const q = 1 + context + 3 * j;
      row[q] = SPECIAL.QUERY;
      row[q + 1] = vocab.words[0] + keys[f];
      row[q + 2] = vocab.values[0] + values[f];
      lossMask[b * S + q + 1] = 1;
      queries.push({ row: b, pos: q + 1, factPos: 2 + starts[f], depth: context > 2 ? starts[f] / (context - 2) : 0 });
    });
    // LM loss positions: a text word followed by a text word the language drew freely (so its entropy is the floor).
    for (let t = 0; t < S; t++) if (text[t] && text[t + 1] === 1) textMask[b * S + t] = 1;
    full.set(row, b * (S + 1));
  }
  queries.sort((a, b) => a.row - b.row || a.pos - b.pos);
  return { ...makeBatch('kv-facts', full, lossMask, batch, S, vocab.vocabSize), split, queries, textMask };
}

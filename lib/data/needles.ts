/**
 * Needle copy ("needle in a haystack" with a copy-paste answer, after Wu et al. 2025's retrieval-head probe): a
 * haystack of Markov-chain filler (learnable next-token statistics, so a model also does plain language modelling)
 * holds `needles` needles `SEP k v1 .. vm`, each a key token and m value tokens; the row ends with `QUERY k` and the
 * answer is that needle's values copied, v1 .. vm.
 *
 * Token ids: PAD 0, BOS 1, SEP 2 (needle start), QUERY 3, then `keys` key tokens, `values` value tokens, and the filler
 * tokens up to vocabSize. Each filler token has `branching` possible successors (fixed by `grammarSeed`), drawn uniformly.
 *
 * Worked example (`{ seqLen: 15, needles: 2, valueLen: 2, keys: 4, values: 6, vocabSize: 20, branching: 2 }`;
 * keys 4..7, values 8..13, filler 14..19):
 * ```
 * full       BOS 15 17 SEP 5 9 12 SEP 6 11 8 14 QUERY 6 11 8        (16 tokens = seqLen + 1)
 * inputs     BOS 15 17 SEP 5 9 12 SEP 6 11 8 14 QUERY 6 11
 * targets    15 17 SEP 5 9 12 SEP 6 11 8 14 QUERY 6 11 8
 * answerMask 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1     (the queried needle's values, predicted from `6` and from `11`)
 * lmMask     0 1 0 0 0 0 0 0 0 0 0 0 0 0 0     (filler -> filler transitions, predictable from the grammar)
 * rows[0]    needleSpan [8, 11) (the queried needle's key and values), valueStart 9, answerStart 13
 * ```
 * lossMask is answerMask (what the task grades). Splits: the queried needle (its key and values) decides the split
 * (test: splitOf, about 1 in 8; validation: about 1 in 8 of the rest; train: the others), and each split draws from
 * its own stream, so no test needle is ever trained on.
 */

import { Rng } from '../util/random.js';
import { checkInt, checkSeed, checkSplit3, makeBatch, SPECIAL, splitOf, type TokenBatch } from './batch.js';

export type NeedleSplit = 'train' | 'validation' | 'test';

export interface NeedleConfig {
  batch: number;
  seqLen: number;
  /** Needles in the haystack (one is queried). */
  needles: number;
  /** Values per needle (the answer's length). */
  valueLen: number;
  keys: number;
  values: number;
  vocabSize: number;
  /** Successors per filler token (default 2). */
  branching?: number;
  /** Seed of the filler grammar (default 0): shared by all splits. */
  grammarSeed?: number;
  seed: number;
  split?: NeedleSplit;
}

export interface NeedleRow {
  /** Input positions [start, end) of the queried needle's key and values in the haystack. */
  needleSpan: [number, number];
  /** Input position of the queried needle's first value (needleSpan[0] + 1). */
  valueStart: number;
  /** Input position of the answer's key token (QUERY k): the answer's first value is predicted there. */
  answerStart: number;
  key: number;
  values: number[];
}

export interface NeedleBatch extends TokenBatch {
  rows: NeedleRow[];
  /** [batch, seqLen] 1 at the answer's targets (= lossMask). */
  answerMask: Float32Array;
  /** [batch, seqLen] 1 at filler -> filler targets (language modelling). */
  lmMask: Float32Array;
  /** First key, value and filler token ids. */
  firstKey: number;
  firstValue: number;
  firstFiller: number;
}

/** The split of a needle, from its key and values (see the module comment). */
export function needleSplit(key: number, values: readonly number[]): NeedleSplit {
  const id = [key, ...values];
  if (splitOf(id) === 'test') return 'test';
  return splitOf([...id, 0x5eed]) === 'test' ? 'validation' : 'train';
}

/** The filler grammar: successors[f - firstFiller] lists the successors of filler token f. */
export function fillerGrammar(
  firstFiller: number,
  vocabSize: number,
  branching: number,
  grammarSeed: number,
): number[][] {
  const n = vocabSize - firstFiller;
  const rng = new Rng(grammarSeed).fork('needles:grammar');
  return Array.from({ length: n }, () => rng.sample(n, Math.min(branching, n)).map((i) => firstFiller + i));
}

/**
 * One row being written left to right: BOS, then runs of filler (a walk on the grammar that starts afresh after each
 * inserted span) and inserted spans (needles, links, the query tail).
 */
class RowWriter {
  readonly row: number[];
  at = 1;
  private prev = -1;

  constructor(
    length: number,
    private readonly rng: Rng,
    private readonly grammar: number[][],
    private readonly firstFiller: number,
    private readonly vocabSize: number,
  ) {
    this.row = new Array<number>(length);
    this.row[0] = SPECIAL.BOS;
  }

  filler(n: number): void {
    const { rng, grammar, firstFiller } = this;
    for (let i = 0; i < n; i++) {
      const f =
        this.prev < 0
          ? firstFiller + rng.int(0, this.vocabSize - firstFiller)
          : grammar[this.prev - firstFiller][rng.int(0, grammar[this.prev - firstFiller].length)];
      this.row[this.at++] = f;
      this.prev = f;
    }
  }

  put(...tokens: number[]): void {
    for (const t of tokens) this.row[this.at++] = t;
    this.prev = -1;
  }

  /** The finished row; throws if the layout did not fill it exactly. */
  done(fn: string): number[] {
    if (this.at !== this.row.length) throw new Error(`${fn}: internal layout error (${this.at} != ${this.row.length})`);
    return this.row;
  }
}

export function needleTask(cfg: NeedleConfig): NeedleBatch {
  const fn = 'needleTask';
  checkInt(fn, 'batch', cfg.batch, 1);
  checkSeed(fn, cfg.seed);
  checkInt(fn, 'needles', cfg.needles, 1);
  checkInt(fn, 'valueLen', cfg.valueLen, 1);
  checkInt(fn, 'keys', cfg.keys, cfg.needles);
  checkInt(fn, 'values', cfg.values, 2);
  const branching = cfg.branching ?? 2;
  checkInt(fn, 'branching', branching, 1);
  const firstKey = SPECIAL.QUERY + 1;
  const firstValue = firstKey + cfg.keys;
  const firstFiller = firstValue + cfg.values;
  checkInt(fn, 'vocabSize', cfg.vocabSize, firstFiller + 2);
  const needleLen = cfg.valueLen + 2;
  const minSeq = 1 + cfg.needles * needleLen + needleLen + 1;
  checkInt(fn, 'seqLen', cfg.seqLen, minSeq);
  const split = cfg.split ?? 'train';
  checkSplit3(fn, split);
  const { batch, seqLen, vocabSize } = cfg;
  const grammar = fillerGrammar(firstFiller, vocabSize, branching, cfg.grammarSeed ?? 0);
  const rng = new Rng(cfg.seed).fork(`${fn}:${split}`);
  const full = new Int32Array(batch * (seqLen + 1));
  const answerMask = new Float32Array(batch * seqLen);
  const lmMask = new Float32Array(batch * seqLen);
  const rows: NeedleRow[] = [];
  const body = seqLen + 1 - 1 - needleLen; // between BOS and the QUERY tail
  for (let b = 0; b < batch; b++) {
    // The queried needle first, drawn until it lands in the split.
    let key = 0;
    let values: number[] = [];
    for (let tries = 0; ; tries++) {
      if (tries > 10_000)
        throw new RangeError(`${fn}: no ${split} needle in 10000 draws; keys/values too few to split`);
      key = firstKey + rng.int(0, cfg.keys);
      values = Array.from({ length: cfg.valueLen }, () => firstValue + rng.int(0, cfg.values));
      if (needleSplit(key, values) === split) break;
    }
    const otherKeys = rng
      .sample(cfg.keys - 1, cfg.needles - 1)
      .map((i) => firstKey + (i >= key - firstKey ? i + 1 : i));
    const needles = [
      { key, values },
      ...otherKeys.map((k) => ({
        key: k,
        values: Array.from({ length: cfg.valueLen }, () => firstValue + rng.int(0, cfg.values)),
      })),
    ];
    rng.shuffle(needles);
    // Needle start offsets inside the body: gaps of filler between them.
    const free = body - cfg.needles * needleLen;
    const cuts = Array.from({ length: cfg.needles }, () => rng.int(0, free + 1)).sort((x, y) => x - y);
    const w = new RowWriter(seqLen + 1, rng, grammar, firstFiller, vocabSize);
    let used = 0;
    let queried: NeedleRow | undefined;
    needles.forEach((nd, i) => {
      w.filler(cuts[i] - used);
      used = cuts[i];
      const start = w.at;
      w.put(SPECIAL.SEP, nd.key, ...nd.values);
      if (nd.key === key && !queried)
        queried = { needleSpan: [start + 1, w.at], valueStart: start + 2, answerStart: 0, key, values };
    });
    w.filler(free - used);
    w.put(SPECIAL.QUERY);
    queried!.answerStart = w.at;
    w.put(key, ...values);
    const row = w.done(fn);
    full.set(row, b * (seqLen + 1));
    for (let t = 0; t < seqLen; t++) {
      const isAnswer = t >= queried!.answerStart && t < queried!.answerStart + cfg.valueLen;
      answerMask[b * seqLen + t] = isAnswer ? 1 : 0;
      lmMask[b * seqLen + t] = row[t] >= firstFiller && row[t + 1] >= firstFiller ? 1 : 0;
    }
    rows.push(queried!);
  }
  const base = makeBatch('needle', full, answerMask, batch, seqLen, vocabSize);
  return { ...base, rows, answerMask, lmMask, firstKey, firstValue, firstFiller };
}

/**
 * RazorAttention's probe for echo and induction heads: rows `BOS x1 .. xL x1 .. xL` of L distinct random tokens from
 * [lo, hi) (length 2L + 1). At the second x_i (position L + i) an echo head attends to the first x_i (position i), an
 * induction head to the token after it (position i + 1). Example (L = 3, x = 7 4 9): `1 7 4 9 7 4 9`.
 */
export function repeatedRandomTokens(batch: number, L: number, lo: number, hi: number, seed: number): number[][] {
  const fn = 'repeatedRandomTokens';
  checkInt(fn, 'batch', batch, 1);
  checkInt(fn, 'L', L, 2);
  checkInt(fn, 'lo', lo, 0);
  checkInt(fn, 'hi', hi, lo + L);
  checkSeed(fn, seed);
  const rng = new Rng(seed).fork(fn);
  return Array.from({ length: batch }, () => {
    const x = rng.sample(hi - lo, L).map((i) => lo + i);
    return [SPECIAL.BOS, ...x, ...x];
  });
}

export interface TraceConfig {
  batch: number;
  seqLen: number;
  /** Chains of definitions in a row (one is asked about). */
  chains: number;
  /** Links per chain: a root `SEP r v` plus hops - 1 aliases `SEP a_{i+1} a_i` (hops >= 1). */
  hops: number;
  /** Variable names and values. */
  vars: number;
  values: number;
  vocabSize: number;
  branching?: number;
  grammarSeed?: number;
  seed: number;
  split?: NeedleSplit;
}

export interface TraceRow {
  /** Input positions of each link's `SEP` of the queried chain, root first. */
  links: number[];
  /** The chain's variables, root first, and its value. */
  names: number[];
  value: number;
  /** Input position of the asked variable (QUERY a): the value is predicted there. */
  answerStart: number;
}

export interface TraceBatch extends TokenBatch {
  rows: TraceRow[];
  answerMask: Float32Array;
  lmMask: Float32Array;
  firstVar: number;
  firstValue: number;
  firstFiller: number;
}

/**
 * Multi-hop "reasoning traces" (LazyEviction's setting, in miniature): a root definition `SEP r v` early, aliases
 * `SEP a1 r`, `SEP a2 a1`, ... at irregular later positions (each refers back to the previous link, so a link becomes
 * important again each time the chain is extended), Markov filler in between, and a final `QUERY a_last v`: the answer
 * needs every hop. Several chains interleave; all their names are distinct.
 *
 * Worked example (`{ seqLen: 15, chains: 1, hops: 2, vars: 4, values: 4, vocabSize: 18 }`; vars 4..7, values 8..11,
 * filler 12..17):
 * ```
 * full      BOS 13 SEP 5 9 14 16 SEP 7 5 12 15 17 QUERY 7 9 (16 tokens)   root 5 = 9, then 7 = 5
 * lossMask  0 0 0 0 0 0 0 0 0 0 0 0 0 0 1                    (the value, predicted at `7` after QUERY)
 * rows[0]   links [2, 7], names [5, 7], value 9, answerStart 14
 * ```
 * Splits by the queried chain (names and value), as needleTask.
 */
export function traceTask(cfg: TraceConfig): TraceBatch {
  const fn = 'traceTask';
  checkInt(fn, 'batch', cfg.batch, 1);
  checkSeed(fn, cfg.seed);
  checkInt(fn, 'chains', cfg.chains, 1);
  checkInt(fn, 'hops', cfg.hops, 1);
  checkInt(fn, 'vars', cfg.vars, cfg.chains * cfg.hops);
  checkInt(fn, 'values', cfg.values, 2);
  const branching = cfg.branching ?? 2;
  checkInt(fn, 'branching', branching, 1);
  const firstVar = SPECIAL.QUERY + 1;
  const firstValue = firstVar + cfg.vars;
  const firstFiller = firstValue + cfg.values;
  checkInt(fn, 'vocabSize', cfg.vocabSize, firstFiller + 2);
  const links = cfg.chains * cfg.hops;
  checkInt(fn, 'seqLen', cfg.seqLen, 1 + 3 * links + 3);
  const split = cfg.split ?? 'train';
  checkSplit3(fn, split);
  const { batch, seqLen, vocabSize } = cfg;
  const grammar = fillerGrammar(firstFiller, vocabSize, branching, cfg.grammarSeed ?? 0);
  const rng = new Rng(cfg.seed).fork(`${fn}:${split}`);
  const full = new Int32Array(batch * (seqLen + 1));
  const answerMask = new Float32Array(batch * seqLen);
  const lmMask = new Float32Array(batch * seqLen);
  const rows: TraceRow[] = [];
  const body = seqLen + 1 - 1 - 3;
  for (let b = 0; b < batch; b++) {
    let names: number[] = [];
    let value = 0;
    let all: number[] = [];
    for (let tries = 0; ; tries++) {
      if (tries > 10_000) throw new RangeError(`${fn}: no ${split} chain in 10000 draws; vars/values too few to split`);
      all = rng.sample(cfg.vars, links).map((i) => firstVar + i);
      names = all.slice(0, cfg.hops);
      value = firstValue + rng.int(0, cfg.values);
      if (needleSplit(value, names) === split) break;
    }
    // Chain c's links in order; interleave the chains' links randomly, keeping each chain's order.
    const chainNames = Array.from({ length: cfg.chains }, (_, c) => all.slice(c * cfg.hops, (c + 1) * cfg.hops));
    const chainValues = [value, ...Array.from({ length: cfg.chains - 1 }, () => firstValue + rng.int(0, cfg.values))];
    const order: number[] = rng.shuffle(chainNames.flatMap((_, c) => Array<number>(cfg.hops).fill(c)));
    const next = new Array<number>(cfg.chains).fill(0);
    const free = body - 3 * links;
    const cuts = Array.from({ length: links }, () => rng.int(0, free + 1)).sort((x, y) => x - y);
    const w = new RowWriter(seqLen + 1, rng, grammar, firstFiller, vocabSize);
    let used = 0;
    const linkAt: number[] = [];
    order.forEach((c, i) => {
      w.filler(cuts[i] - used);
      used = cuts[i];
      const h = next[c]++;
      if (c === 0) linkAt.push(w.at);
      w.put(SPECIAL.SEP, chainNames[c][h], h === 0 ? chainValues[c] : chainNames[c][h - 1]);
    });
    w.filler(free - used);
    w.put(SPECIAL.QUERY);
    const answerStart = w.at;
    w.put(names[cfg.hops - 1], value);
    const row = w.done(fn);
    full.set(row, b * (seqLen + 1));
    for (let t = 0; t < seqLen; t++) {
      answerMask[b * seqLen + t] = t === answerStart ? 1 : 0;
      lmMask[b * seqLen + t] = row[t] >= firstFiller && row[t + 1] >= firstFiller ? 1 : 0;
    }
    rows.push({ links: linkAt, names, value, answerStart });
  }
  const base = makeBatch('trace', full, answerMask, batch, seqLen, vocabSize);
  return { ...base, rows, answerMask, lmMask, firstVar, firstValue, firstFiller };
}

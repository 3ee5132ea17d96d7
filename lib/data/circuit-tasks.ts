/**
 * Prompt tasks for circuit analysis (lib/papers/interp): an IOI-like task, a coloured-objects task and multiple choice
 * with letter labels, in one shared vocabulary so one ToyLM learns all three. Every prompt has the same length
 * (CIRCUIT_PROMPT_LEN, left-padded with PAD), the answer is the next token after the last position, and each clean prompt comes
 * with a corrupted twin of the same length (positions line up for patching).
 *
 *   ioi  [BOS IOI WHEN A AND B WENT S GAVE O TO] -> the name of A, B that S is not (S repeats A or B: ABBA / BABA);
 *        corrupted: S replaced by a third name C ("ABC"), wrong = S.
 *   co   [BOS CO c1 o1 c2 o2 c3 o3 QUERY oq] -> the colour before oq's earlier occurrence;
 *        corrupted: oq asks for another listed object, wrong = that object's colour.
 *   mcq  [BOS MCQ Q subj L1 a1 L2 a2 L3 a3 L4 a4 ANSWER] -> the label Lk whose option ak = FACT[subj] (a fixed lookup
 *        table learned in training); labels A B C D, or with a mutation random distinct letters ('random-letters') or
 *        A-D in a random order ('shuffled'); corrupted: the options reordered so the fact sits under another label,
 *        wrong = that label.
 *
 * Splits: the prompt's defining tokens hash to train (6/8), validation (1/8) or test (1/8), so no prompt of one split
 * is in another, whatever the seeds; each split also draws from its own random stream.
 *
 * Worked example:
 *   const p = circuitPrompts({ task: 'ioi', batch: 2, seed: 0, split: 'test' });
 *   p.describe(0)   // 'BOS IOI WHEN N3 AND N7 WENT N7 GAVE O2 TO -> N3 | corrupted ... N11 ... (wrong N7)'
 *   p.correct[0]    // token id of N3, p.wrong[0] the id of N7
 *   const b = circuitTrainingBatch({ tasks: ['ioi', 'co', 'mcq'], batch: 32, seed: 5 }); // a TokenBatch, loss on the answer
 */
import * as tf from '@tensorflow/tfjs';
import { hashSeed, hashString, Rng } from '../util/random.js';
import { checkSplit3, makeBatch, SPECIAL, type TokenBatch } from './batch.js';

export type CircuitTask = 'ioi' | 'co' | 'mcq';
export type CircuitSplit = 'train' | 'validation' | 'test';
export type LabelMutation = 'none' | 'random-letters' | 'shuffled';

/** Token ids of the shared vocabulary. */
export const CIRCUIT_TOKENS = (() => {
  const t = {
    PAD: SPECIAL.PAD,
    BOS: SPECIAL.BOS,
    QUERY: SPECIAL.QUERY,
    IOI: 4,
    CO: 5,
    MCQ: 6,
    WHEN: 7,
    AND: 8,
    WENT: 9,
    GAVE: 10,
    TO: 11,
    IS: 12,
    ANSWER: 13,
    Q: 14,
    names: range(15, 20),
    colours: range(35, 8),
    objects: range(43, 10),
    letters: range(53, 12),
    subjects: range(65, 24),
    facts: range(89, 12),
    vocab: 101,
  };
  return t;
})();

function range(from: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => from + i);
}

/** Every prompt's length (the longest task, mcq, is 13 tokens). */
export const CIRCUIT_PROMPT_LEN = 13;

/** The fact of each MCQ subject: CIRCUIT_FACTS[i] is the index into CIRCUIT_TOKENS.facts of subject i's answer. */
export const CIRCUIT_FACTS: number[] = (() => {
  const rng = new Rng(20231);
  return CIRCUIT_TOKENS.subjects.map(() => rng.int(0, CIRCUIT_TOKENS.facts.length));
})();

/** Which split a prompt's defining tokens belong to (6/8 train, 1/8 validation, 1/8 test). */
export function circuitSplitOf(tokens: ArrayLike<number>): CircuitSplit {
  let h = 0x811c9dc5;
  for (let i = 0; i < tokens.length; i++) {
    h ^= tokens[i];
    h = Math.imul(h, 0x01000193);
  }
  const r = hashSeed(h ^ 0x5bd1e995) % 8;
  return r === 0 ? 'test' : r === 1 ? 'validation' : 'train';
}

/** One prompt pair. Positions index the padded prompt. */
export interface CircuitExample {
  clean: number[];
  corrupted: number[];
  correct: number;
  wrong: number;
  /** Where the correct answer's token sits in the clean prompt (IO name, the colour, the correct label). */
  answerPos: number;
  /** The competitors' positions (IOI: S1 and S2; co: the other colours; mcq: the other labels). */
  distractorPos: number[];
  /** Positions of the tokens that define the answer's slot (IOI: the names; co: the objects; mcq: the options). */
  itemPos: number[];
}

export interface CircuitPrompts {
  task: CircuitTask;
  split: CircuitSplit;
  mutation: LabelMutation;
  batch: number;
  seqLen: number;
  vocabSize: number;
  examples: CircuitExample[];
  /** [batch, seqLen] row-major. */
  clean: Int32Array;
  corrupted: Int32Array;
  correct: Int32Array;
  wrong: Int32Array;
  /** New int32 tensors [batch, seqLen]; the caller disposes them. */
  toTensors(): { clean: tf.Tensor2D; corrupted: tf.Tensor2D };
  /** Row b in words. */
  describe(b: number): string;
}

export interface CircuitPromptOptions {
  task: CircuitTask;
  batch: number;
  seed: number;
  split: CircuitSplit;
  /** MCQ labels (default 'none': A B C D). */
  mutation?: LabelMutation;
}

const TASKS: CircuitTask[] = ['ioi', 'co', 'mcq'];
const MUTATIONS: LabelMutation[] = ['none', 'random-letters', 'shuffled'];

function pad(tokens: number[]): { out: number[]; shift: number } {
  const shift = CIRCUIT_PROMPT_LEN - tokens.length;
  return { out: [...Array(shift).fill(CIRCUIT_TOKENS.PAD), ...tokens], shift };
}

function drawIoi(rng: Rng): { ex: CircuitExample; key: number[] } {
  const T = CIRCUIT_TOKENS;
  const [a, b, c] = rng.sample(T.names.length, 3).map((i) => T.names[i]);
  const o = T.objects[rng.int(0, T.objects.length)];
  const sIsA = rng.next() < 0.5;
  const s = sIsA ? a : b;
  const io = sIsA ? b : a;
  const body = (s2: number) => [T.BOS, T.IOI, T.WHEN, a, T.AND, b, T.WENT, s2, T.GAVE, o, T.TO];
  const { out: clean, shift } = pad(body(s));
  const { out: corrupted } = pad(body(c));
  const aPos = shift + 3;
  const bPos = shift + 5;
  return {
    ex: {
      clean,
      corrupted,
      correct: io,
      wrong: s,
      answerPos: sIsA ? bPos : aPos,
      distractorPos: [sIsA ? aPos : bPos, shift + 7],
      itemPos: [aPos, bPos, shift + 7],
    },
    key: [a, b, s, o],
  };
}

function drawCo(rng: Rng): { ex: CircuitExample; key: number[] } {
  const T = CIRCUIT_TOKENS;
  const cs = rng.sample(T.colours.length, 3).map((i) => T.colours[i]);
  const os = rng.sample(T.objects.length, 3).map((i) => T.objects[i]);
  const q = rng.int(0, 3);
  const q2 = (q + 1 + rng.int(0, 2)) % 3;
  const body = (k: number) => [T.BOS, T.CO, cs[0], os[0], cs[1], os[1], cs[2], os[2], T.QUERY, os[k]];
  const { out: clean, shift } = pad(body(q));
  const { out: corrupted } = pad(body(q2));
  const colourPos = [0, 1, 2].map((i) => shift + 2 + 2 * i);
  return {
    ex: {
      clean,
      corrupted,
      correct: cs[q],
      wrong: cs[q2],
      answerPos: colourPos[q],
      distractorPos: colourPos.filter((_, i) => i !== q),
      itemPos: [0, 1, 2].map((i) => shift + 3 + 2 * i),
    },
    key: [...cs, ...os, q],
  };
}

function drawMcq(rng: Rng, mutation: LabelMutation): { ex: CircuitExample; key: number[] } {
  const T = CIRCUIT_TOKENS;
  const subj = rng.int(0, T.subjects.length);
  const fact = CIRCUIT_FACTS[subj];
  const others = rng
    .sample(T.facts.length - 1, 3)
    .map((i) => (i >= fact ? i + 1 : i))
    .map((i) => T.facts[i]);
  const k = rng.int(0, 4);
  const k2 = (k + 1 + rng.int(0, 3)) % 4;
  const options = [...others];
  options.splice(k, 0, T.facts[fact]);
  // Corrupted: the fact swaps places with the option at k2.
  const options2 = [...options];
  [options2[k], options2[k2]] = [options2[k2], options2[k]];
  const labels =
    mutation === 'random-letters'
      ? rng.sample(T.letters.length, 4).map((i) => T.letters[i])
      : mutation === 'shuffled'
        ? rng.shuffle([0, 1, 2, 3]).map((i) => T.letters[i])
        : T.letters.slice(0, 4);
  const body = (opts: number[]) => [
    T.BOS,
    T.MCQ,
    T.Q,
    T.subjects[subj],
    ...opts.flatMap((o, i) => [labels[i], o]),
    T.ANSWER,
  ];
  const { out: clean, shift } = pad(body(options));
  const { out: corrupted } = pad(body(options2));
  const labelPos = [0, 1, 2, 3].map((i) => shift + 4 + 2 * i);
  return {
    ex: {
      clean,
      corrupted,
      correct: labels[k],
      wrong: labels[k2],
      answerPos: labelPos[k],
      distractorPos: labelPos.filter((_, i) => i !== k),
      itemPos: labelPos.map((p) => p + 1),
    },
    key: [subj, ...options, ...labels],
  };
}

function checkOptions(fn: string, o: { task?: unknown; batch?: unknown; seed?: unknown; split?: unknown }): void {
  if (!TASKS.includes(o.task as CircuitTask))
    throw new RangeError(`${fn}: task must be one of ${TASKS.join(', ')}, got ${String(o.task)}`);
  if (!Number.isInteger(o.batch) || (o.batch as number) < 1)
    throw new RangeError(`${fn}: batch must be an integer >= 1, got ${String(o.batch)}`);
  if (typeof o.seed !== 'number' || !Number.isFinite(o.seed))
    throw new RangeError(`${fn}: seed must be a finite number, got ${String(o.seed)}`);
  checkSplit3(fn, o.split);
}

function drawExample(task: CircuitTask, rng: Rng, split: CircuitSplit, mutation: LabelMutation): CircuitExample {
  for (let i = 0; i < 10_000; i++) {
    const d = task === 'ioi' ? drawIoi(rng) : task === 'co' ? drawCo(rng) : drawMcq(rng, mutation);
    if (circuitSplitOf([TASKS.indexOf(task), ...d.key]) === split) return d.ex;
  }
  throw new Error(`circuitPrompts: no ${task} prompt of split '${split}' in 10000 draws`);
}

/** `batch` prompt pairs of one task and split (see the header). */
export function circuitPrompts(opts: CircuitPromptOptions): CircuitPrompts {
  const fn = 'circuitPrompts';
  checkOptions(fn, opts);
  const mutation = opts.mutation ?? 'none';
  if (!MUTATIONS.includes(mutation))
    throw new RangeError(`${fn}: mutation must be one of ${MUTATIONS.join(', ')}, got ${String(mutation)}`);
  if (mutation !== 'none' && opts.task !== 'mcq')
    throw new RangeError(`${fn}: mutation applies to task 'mcq' only, got task '${opts.task}' with '${mutation}'`);
  const rng = new Rng(hashSeed(opts.seed) ^ hashString(`${opts.task}:${opts.split}:${mutation}`));
  const examples = Array.from({ length: opts.batch }, () => drawExample(opts.task, rng, opts.split, mutation));
  const n = opts.batch;
  const clean = new Int32Array(n * CIRCUIT_PROMPT_LEN);
  const corrupted = new Int32Array(n * CIRCUIT_PROMPT_LEN);
  examples.forEach((e, i) => {
    clean.set(e.clean, i * CIRCUIT_PROMPT_LEN);
    corrupted.set(e.corrupted, i * CIRCUIT_PROMPT_LEN);
  });
  return {
    task: opts.task,
    split: opts.split,
    mutation,
    batch: n,
    seqLen: CIRCUIT_PROMPT_LEN,
    vocabSize: CIRCUIT_TOKENS.vocab,
    examples,
    clean,
    corrupted,
    correct: Int32Array.from(examples.map((e) => e.correct)),
    wrong: Int32Array.from(examples.map((e) => e.wrong)),
    toTensors: () => ({
      clean: tf.tensor2d(clean, [n, CIRCUIT_PROMPT_LEN], 'int32'),
      corrupted: tf.tensor2d(corrupted, [n, CIRCUIT_PROMPT_LEN], 'int32'),
    }),
    describe: (b: number) => {
      if (!Number.isInteger(b) || b < 0 || b >= n) throw new RangeError(`${fn}: row ${b} is outside [0, ${n})`);
      const e = examples[b];
      const w = (ts: number[]) =>
        ts
          .filter((t) => t !== CIRCUIT_TOKENS.PAD)
          .map(circuitTokenName)
          .join(' ');
      return `${w(e.clean)} -> ${circuitTokenName(e.correct)} | corrupted ${w(e.corrupted)} (wrong ${circuitTokenName(e.wrong)})`;
    },
  };
}

/** A readable name for a token id of the shared vocabulary. */
export function circuitTokenName(t: number): string {
  const T = CIRCUIT_TOKENS;
  const fixed: Record<number, string> = {
    [T.PAD]: 'PAD',
    [T.BOS]: 'BOS',
    [T.QUERY]: 'QUERY',
    [T.IOI]: 'IOI',
    [T.CO]: 'CO',
    [T.MCQ]: 'MCQ',
    [T.WHEN]: 'WHEN',
    [T.AND]: 'AND',
    [T.WENT]: 'WENT',
    [T.GAVE]: 'GAVE',
    [T.TO]: 'TO',
    [T.IS]: 'IS',
    [T.ANSWER]: 'ANSWER',
    [T.Q]: 'Q',
  };
  if (t in fixed) return fixed[t];
  const groups: [number[], (i: number) => string][] = [
    [T.names, (i) => `N${i}`],
    [T.colours, (i) => ['red', 'blue', 'green', 'yellow', 'black', 'white', 'pink', 'brown'][i]],
    [T.objects, (i) => `obj${i}`],
    [T.letters, (i) => String.fromCharCode(65 + i)],
    [T.subjects, (i) => `S${i}`],
    [T.facts, (i) => `F${i}`],
  ];
  for (const [g, f] of groups) if (t >= g[0] && t <= g[g.length - 1]) return f(t - g[0]);
  return `?${t}`;
}

export interface CircuitTrainingOptions {
  tasks: CircuitTask[];
  batch: number;
  seed: number;
  /** Share of MCQ prompts with mutated labels (half random letters, half shuffled); default 0. */
  mutationShare?: number;
  /** Default 'train'; 'validation' for a validation loss. */
  split?: CircuitSplit;
}

/**
 * A next-token batch of clean prompts from `tasks` (rows cycle through the tasks), framed as every generator in lib/data
 * (inputs = the prompt, targets shifted by one, lossMask 1 only where the target is the answer).
 */
export function circuitTrainingBatch(opts: CircuitTrainingOptions): TokenBatch {
  const fn = 'circuitTrainingBatch';
  if (!Array.isArray(opts.tasks) || opts.tasks.length === 0 || opts.tasks.some((t) => !TASKS.includes(t)))
    throw new RangeError(
      `${fn}: tasks must be a non-empty list of ${TASKS.join(', ')}, got ${JSON.stringify(opts.tasks)}`,
    );
  const split = opts.split ?? 'train';
  checkOptions(fn, { task: opts.tasks[0], batch: opts.batch, seed: opts.seed, split });
  const share = opts.mutationShare ?? 0;
  if (!(share >= 0 && share <= 1)) throw new RangeError(`${fn}: mutationShare must be in [0, 1], got ${share}`);
  const rng = new Rng(hashSeed(opts.seed) ^ hashString(`circuit-train:${split}`));
  const full = new Int32Array(opts.batch * (CIRCUIT_PROMPT_LEN + 1));
  const mask = new Float32Array(opts.batch * CIRCUIT_PROMPT_LEN);
  for (let b = 0; b < opts.batch; b++) {
    const task = opts.tasks[b % opts.tasks.length];
    const u = rng.next();
    const mutation: LabelMutation =
      task !== 'mcq' || u >= share ? 'none' : u < share / 2 ? 'random-letters' : 'shuffled';
    const e = drawExample(task, rng, split, mutation);
    full.set([...e.clean, e.correct], b * (CIRCUIT_PROMPT_LEN + 1));
    mask[b * CIRCUIT_PROMPT_LEN + CIRCUIT_PROMPT_LEN - 1] = 1;
  }
  return makeBatch('circuits', full, mask, opts.batch, CIRCUIT_PROMPT_LEN, CIRCUIT_TOKENS.vocab);
}

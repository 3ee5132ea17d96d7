import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  ByteTokenizer,
  CharTokenizer,
  copyTask,
  drawInSplit,
  FIRST_TASK_TOKEN,
  generateTask,
  inductionTask,
  loadCorpus,
  mqarTask,
  PASSKEY_DIGIT0,
  passkeyAnswers,
  passkeyTask,
  SPECIAL,
  sampleWindows,
  sequentialWindows,
  sortTask,
  splitOf,
  TASK_NAMES,
  type TaskSpec,
  type TokenBatch,
  textDataset,
  tokenizerFromJSON,
} from '../lib/data/index.js';
import { Rng } from '../lib/util/random.js';

/** One small spec per task, the matrix every generic test runs over. */
const SPECS: Record<string, TaskSpec> = {
  copy: { task: 'copy', batch: 16, length: 6, vocabSize: 20, seed: 1 },
  induction: { task: 'induction', batch: 16, seqLen: 24, vocabSize: 20, seed: 1 },
  mqar: { task: 'mqar', batch: 16, seqLen: 32, vocabSize: 40, numPairs: 6, numQueries: 4, seed: 1 },
  passkey: { task: 'passkey', batch: 16, seqLen: 40, digits: 4, seed: 1 },
  sort: { task: 'sort', batch: 16, length: 6, vocabSize: 20, seed: 1 },
};

/** The full row `[seqLen + 1]` that inputs and targets were cut from. */
function fullRow(b: TokenBatch, r: number): number[] {
  const { inputs, targets } = b.row(r);
  return [...inputs, targets[targets.length - 1]];
}

/** The tokens whose hash decides the split, per task (mirrors the generators' documented rule). */
function splitKey(task: string, b: TokenBatch, r: number): number[] {
  const full = fullRow(b, r);
  if (task === 'copy' || task === 'sort') return full.slice(1, (b.seqLen + 1) / 2);
  if (task === 'passkey') return b.row(r).targets.filter((_, t) => b.row(r).lossMask[t] === 1);
  return full;
}

describe.each(Object.keys(SPECS))('task %s', (name) => {
  const spec = SPECS[name];
  const batch = generateTask(spec);

  it('has the documented shapes, token range and next-token framing', () => {
    const { batch: B, seqLen: S, vocabSize: V } = batch;
    expect(B).toBe(spec.batch);
    expect(batch.task).toBe(name);
    for (const a of [batch.inputs, batch.targets, batch.lossMask]) expect(a.length).toBe(B * S);
    for (const a of [batch.inputs, batch.targets]) for (const id of a) expect(id >= 0 && id < V).toBe(true);
    for (let r = 0; r < B; r++) {
      const { inputs, targets, lossMask } = batch.row(r);
      expect(targets.slice(0, -1)).toEqual(inputs.slice(1));
      expect(lossMask.every((m) => m === 0 || m === 1)).toBe(true);
      expect(lossMask.some((m) => m === 1)).toBe(true);
    }
  });

  it('is deterministic per seed, and seeds and splits give different data', () => {
    const again = generateTask(JSON.parse(JSON.stringify(spec)) as TaskSpec);
    expect(again.inputs).toEqual(batch.inputs);
    expect(again.lossMask).toEqual(batch.lossMask);
    expect(generateTask({ ...spec, seed: 2 }).inputs).not.toEqual(batch.inputs);
    expect(generateTask({ ...spec, split: 'test' }).inputs).not.toEqual(batch.inputs);
  });

  it('puts every train row in the train share and every test row in the test share', () => {
    const test = generateTask({ ...spec, split: 'test' });
    for (let r = 0; r < spec.batch; r++) {
      expect(splitOf(splitKey(name, batch, r))).toBe('train');
      expect(splitOf(splitKey(name, test, r))).toBe('test');
    }
  });

  it('toTensors returns [batch, seqLen] tensors that the caller owns', () => {
    const before = tf.memory().numTensors;
    const t = batch.toTensors();
    expect(t.inputs.shape).toEqual([batch.batch, batch.seqLen]);
    expect(t.inputs.dtype).toBe('int32');
    expect(t.targets.dtype).toBe('int32');
    expect(t.lossMask.dtype).toBe('float32');
    expect(Array.from(t.targets.dataSync())).toEqual(Array.from(batch.targets));
    tf.dispose(t);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('task semantics', () => {
  const graded = (b: TokenBatch, r: number): number[] => b.row(r).targets.filter((_, t) => b.row(r).lossMask[t] === 1);

  it('copy: BOS x SEP x, graded on the repeat', () => {
    const b = copyTask({ batch: 8, length: 5, vocabSize: 12, seed: 3 });
    expect(b.seqLen).toBe(11);
    for (let r = 0; r < b.batch; r++) {
      const full = fullRow(b, r);
      expect(full[0]).toBe(SPECIAL.BOS);
      expect(full[6]).toBe(SPECIAL.SEP);
      expect(graded(b, r)).toEqual(full.slice(1, 6));
      expect(b.row(r).lossMask).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
      for (const x of full.slice(1, 6)) expect(x).toBeGreaterThanOrEqual(FIRST_TASK_TOKEN);
    }
  });

  it('sort: graded tokens are the source sorted ascending', () => {
    const b = sortTask({ batch: 8, length: 7, vocabSize: 9, seed: 3 });
    for (let r = 0; r < b.batch; r++) {
      const src = fullRow(b, r).slice(1, 8);
      expect(graded(b, r)).toEqual([...src].sort((x, y) => x - y));
    }
  });

  it('induction: A occurs exactly twice and the last target is the token after the first A', () => {
    const b = inductionTask({ batch: 32, seqLen: 16, vocabSize: 12, seed: 4 });
    for (let r = 0; r < b.batch; r++) {
      const full = fullRow(b, r);
      const a = full[15];
      const at = full.flatMap((x, i) => (x === a ? [i] : []));
      expect(at.length).toBe(2);
      expect(at[0]).toBeLessThan(14);
      expect(full[16]).toBe(full[at[0] + 1]);
      expect(full[16]).not.toBe(a);
      expect(b.row(r).lossMask.indexOf(1)).toBe(15);
      expect(graded(b, r)).toEqual([full[16]]);
    }
  });

  it('mqar: each graded target is the value paired with the queried key; keys distinct, queries distinct', () => {
    const numPairs = 5;
    const b = mqarTask({ batch: 32, seqLen: 30, vocabSize: 30, numPairs, numQueries: 3, seed: 5 });
    for (let r = 0; r < b.batch; r++) {
      const { inputs, targets, lossMask } = b.row(r);
      const pairs = new Map<number, number>();
      for (let i = 0; i < numPairs; i++) pairs.set(inputs[2 * i], inputs[2 * i + 1]);
      expect(pairs.size).toBe(numPairs);
      expect(new Set(pairs.values()).size).toBe(numPairs);
      const queried: number[] = [];
      lossMask.forEach((m, t) => {
        if (m !== 1) return;
        expect(t).toBeGreaterThanOrEqual(2 * numPairs);
        expect(targets[t]).toBe(pairs.get(inputs[t]));
        queried.push(inputs[t]);
      });
      expect(queried.length).toBe(3);
      expect(new Set(queried).size).toBe(3);
      // Outside the query slots the query region is PAD.
      const slotTokens = new Set(lossMask.flatMap((m, t) => (m === 1 ? [t, t + 1] : [])));
      for (let t = 2 * numPairs; t < b.seqLen; t++) if (!slotTokens.has(t)) expect(inputs[t]).toBe(SPECIAL.PAD);
    }
  });

  it('passkey: the answer is the digits between the SEPs, placed at the requested depth', () => {
    for (const depth of [0, 0.5, 1]) {
      const b = passkeyTask({ batch: 4, seqLen: 30, digits: 5, depth, fillerVocab: 8, seed: 6 });
      expect(b.vocabSize).toBe(PASSKEY_DIGIT0 + 10 + 8);
      const fillerLen = 30 - 3 - 10;
      for (let r = 0; r < b.batch; r++) {
        const full = fullRow(b, r);
        const sep = full.indexOf(SPECIAL.SEP);
        expect(sep).toBe(1 + Math.round(depth * fillerLen));
        expect(full[sep + 6]).toBe(SPECIAL.SEP);
        expect(graded(b, r)).toEqual(full.slice(sep + 1, sep + 6));
        expect(full[30 - 5]).toBe(SPECIAL.QUERY);
      }
    }
    const b = passkeyTask({ batch: 3, seqLen: 20, digits: 3, seed: 1 });
    const answers = passkeyAnswers(b);
    expect(answers.length).toBe(3);
    for (const a of answers) expect(a).toMatch(/^\d{3}$/);
  });

  it('passkey: distinct draws no digit twice and keeps the split disjoint', () => {
    const answers = passkeyAnswers(passkeyTask({ batch: 200, seqLen: 30, digits: 6, distinct: true, seed: 3 }));
    for (const a of answers) expect(new Set(a).size).toBe(6);
    const test = passkeyAnswers(
      passkeyTask({ batch: 100, seqLen: 30, digits: 6, distinct: true, seed: 3, split: 'test' }),
    );
    expect(test.filter((a) => answers.includes(a))).toEqual([]);
    expect(() => passkeyTask({ batch: 1, seqLen: 40, digits: 11, distinct: true, seed: 0 })).toThrow(
      /passkey: distinct digits need digits <= 10, got 11/,
    );
  });

  it('passkey: test passkeys never occur among train passkeys', () => {
    const train = new Set(passkeyAnswers(passkeyTask({ batch: 400, seqLen: 12, digits: 2, seed: 0 })));
    const test = new Set(passkeyAnswers(passkeyTask({ batch: 100, seqLen: 12, digits: 2, seed: 0, split: 'test' })));
    for (const k of test) expect(train.has(k)).toBe(false);
  });
});

describe('task argument errors name the argument and the value', () => {
  it.each<[string, () => unknown, RegExp]>([
    [
      'mqar too long',
      () => mqarTask({ batch: 1, seqLen: 64, vocabSize: 200, numPairs: 40, seed: 0 }),
      /mqar: numPairs \(40\) \* 2 \+ numQueries \(40\) \* 2 exceeds seqLen \(64\)/,
    ],
    [
      'mqar vocab',
      () => mqarTask({ batch: 1, seqLen: 64, vocabSize: 10, numPairs: 4, seed: 0 }),
      /mqar: numPairs \(4\) exceeds the 3 keys of vocabSize \(10\)/,
    ],
    [
      'mqar queries',
      () => mqarTask({ batch: 1, seqLen: 64, vocabSize: 64, numPairs: 4, numQueries: 5, seed: 0 }),
      /numQueries \(5\) exceeds numPairs \(4\)/,
    ],
    [
      'copy length',
      () => copyTask({ batch: 1, length: 0, vocabSize: 10, seed: 0 }),
      /copy: length must be an integer >= 1, got 0/,
    ],
    [
      'copy batch',
      () => copyTask({ batch: 2.5, length: 3, vocabSize: 10, seed: 0 }),
      /copy: batch must be an integer >= 1, got 2.5/,
    ],
    [
      'sort vocab',
      () => sortTask({ batch: 1, length: 3, vocabSize: 5, seed: 0 }),
      /sort: vocabSize must be an integer >= 6, got 5/,
    ],
    [
      'induction seqLen',
      () => inductionTask({ batch: 1, seqLen: 3, vocabSize: 10, seed: 0 }),
      /induction: seqLen must be an integer >= 4, got 3/,
    ],
    [
      'passkey seqLen',
      () => passkeyTask({ batch: 1, seqLen: 10, digits: 5, seed: 0 }),
      /passkey: seqLen \(10\) is too short for digits \(5\)/,
    ],
    [
      'passkey depth',
      () => passkeyTask({ batch: 1, seqLen: 30, depth: 1.5, seed: 0 }),
      /passkey: depth must be a number in \[0, 1\] or omitted, got 1.5/,
    ],
    [
      'seed',
      () => copyTask({ batch: 1, length: 3, vocabSize: 10, seed: NaN }),
      /copy: seed must be a finite number, got NaN/,
    ],
    [
      'split',
      () => copyTask({ batch: 1, length: 3, vocabSize: 10, seed: 0, split: 'val' as 'test' }),
      /copy: split must be 'train' or 'test', got val/,
    ],
    [
      'tiny space',
      () =>
        drawInSplit(
          'copy',
          'test',
          new Rng(0),
          () => [4],
          (x) => x,
          'length 1, vocabSize 5',
        ),
      /copy: no test example in 10000 draws; the example space \(length 1, vocabSize 5\) is too small/,
    ],
    [
      'unknown task',
      () => generateTask({ task: 'nope' } as unknown as TaskSpec),
      /generateTask: task must be one of copy, induction, mqar, passkey, sort, got nope/,
    ],
  ])('%s', (_, call, message) => {
    expect(call).toThrow(message);
  });

  it('every task name has a spec in this matrix', () => {
    expect(Object.keys(SPECS).sort()).toEqual([...TASK_NAMES].sort());
  });
});

describe('text corpus and tokenizers', () => {
  const corpus = loadCorpus();

  it('splits Moby Dick 90/5/5 into contiguous ranges that cover it', () => {
    expect(corpus.length).toBeGreaterThan(1_200_000);
    const { train, validation, test } = corpus.ranges;
    expect(train[0]).toBe(0);
    expect(validation[0]).toBe(train[1]);
    expect(test[0]).toBe(validation[1]);
    expect(test[1]).toBe(corpus.length);
    expect(train[1] / corpus.length).toBeCloseTo(0.9, 3);
    expect(corpus.text('train').startsWith('CONTENTS')).toBe(true);
    expect(corpus.text('train').length + corpus.text('validation').length + corpus.text('test').length).toBe(
      corpus.length,
    );
    expect(loadCorpus({ fractions: [0.8, 0.1, 0.1] }).ranges.train[1]).toBe(Math.round(0.8 * corpus.length));
    expect(() => loadCorpus({ fractions: [0.8, 0.1, 0.2] })).toThrow(
      /loadCorpus: fractions must be three positive shares summing to 1, got \[0.8,0.1,0.2\]/,
    );
  });

  it('char tokenizer round-trips the train split and maps unseen characters to UNK', () => {
    const tok = CharTokenizer.fromText(corpus.text('train'));
    expect(tok.vocabSize).toBeGreaterThan(60);
    expect(tok.vocabSize).toBeLessThan(100);
    const train = corpus.text('train');
    expect(tok.decode(tok.encode(train))).toBe(train);
    const ids = tok.encode('whale€');
    expect(ids[5]).toBe(CharTokenizer.UNK);
    expect(tok.decode(ids)).toBe('whale\uFFFD');
    const again = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(Array.from(again.encode('Call me Ishmael.'))).toEqual(Array.from(tok.encode('Call me Ishmael.')));
    expect(() => tok.decode([tok.vocabSize])).toThrow(
      `CharTokenizer.decode: ids[0] (${tok.vocabSize}) is outside the vocabulary [0, ${tok.vocabSize})`,
    );
  });

  it('char tokenizer treats an astral character as one token', () => {
    const tok = CharTokenizer.fromText('a🐋b');
    expect(tok.vocabSize).toBe(4);
    expect(tok.encode('🐋').length).toBe(1);
    expect(tok.decode(tok.encode('b🐋a'))).toBe('b🐋a');
  });

  it('byte tokenizer round-trips any well-formed text, including non-ASCII', () => {
    const tok = new ByteTokenizer();
    const text = `${corpus.text('train').slice(0, 20_000)} חן ϰητος WHŒL — 🐋`;
    const ids = tok.encode(text);
    expect(ids.length).toBeGreaterThan(text.length);
    expect(Math.max(...ids)).toBeLessThan(256);
    expect(tok.decode(ids)).toBe(text);
    expect(tokenizerFromJSON(tok.toJSON()).vocabSize).toBe(256);
    expect(() => tok.decode([300])).toThrow('ByteTokenizer.decode: ids[0] (300) is not a byte in [0, 256)');
  });

  it('samples seeded windows of seqLen + 1 consecutive tokens', () => {
    const ds = textDataset({ tokenizer: 'char', split: 'validation' });
    expect(ds.ids.length).toBe(corpus.text('validation').length);
    const a = ds.sample({ batch: 8, seqLen: 32, seed: 7, step: 3 });
    expect(ds.sample({ batch: 8, seqLen: 32, seed: 7, step: 3 }).inputs).toEqual(a.inputs);
    expect(ds.sample({ batch: 8, seqLen: 32, seed: 7, step: 4 }).inputs).not.toEqual(a.inputs);
    expect(a.vocabSize).toBe(ds.tokenizer.vocabSize);
    expect(a.lossMask.every((m) => m === 1)).toBe(true);
    const text = corpus.text('validation');
    for (let r = 0; r < a.batch; r++) {
      const window = ds.tokenizer.decode(fullRow(a, r));
      expect(window.length).toBe(33);
      expect(text.includes(window)).toBe(true);
    }
    expect(() => sampleWindows(new Int32Array(10), 5, { batch: 1, seqLen: 10, seed: 0 })).toThrow(
      'sampleWindows: ids has 10 tokens, fewer than seqLen (10) + 1',
    );
  });

  it('sequential windows visit every target once, in order', () => {
    const ids = Int32Array.from({ length: 23 }, (_, i) => i);
    const batches = [...sequentialWindows(ids, 23, { batch: 2, seqLen: 5 })];
    expect(batches.map((b) => b.batch)).toEqual([2, 2]);
    const targets = batches.flatMap((b) => Array.from(b.targets));
    expect(targets).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('byte dataset ids are the UTF-8 bytes of the split', () => {
    const ds = textDataset({ tokenizer: 'byte', split: 'test' });
    expect(ds.tokenizer.decode(ds.ids)).toBe(corpus.text('test'));
  });
});

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import {
  CIRCUIT_FACTS,
  CIRCUIT_PROMPT_LEN,
  CIRCUIT_TOKENS,
  type CircuitTask,
  circuitPrompts,
  circuitSplitOf,
  circuitTrainingBatch,
} from '../lib/data/circuit-tasks.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { circuitsExperiment } from '../lib/papers/interp/circuits/experiment.js';
import { discoverCircuit, jaccard, meanCi } from '../lib/papers/interp/circuits/model.js';
import { handBuiltCopier, handBuiltPair } from '../lib/papers/interp/patching/handbuilt.js';
import { headLabel } from '../lib/papers/interp/patching/index.js';

const T = CIRCUIT_TOKENS;
const TASKS: CircuitTask[] = ['ioi', 'co', 'mcq'];

describe('circuit tasks (lib/data/circuit-tasks.ts)', () => {
  it('answers are right by construction; corrupted prompts line up and change the answer', () => {
    for (const task of TASKS) {
      const p = circuitPrompts({ task, batch: 64, seed: 3, split: 'train' });
      expect(p.clean.length).toBe(64 * CIRCUIT_PROMPT_LEN);
      p.examples.forEach((e) => {
        expect(e.clean.length).toBe(CIRCUIT_PROMPT_LEN);
        expect(e.corrupted.length).toBe(CIRCUIT_PROMPT_LEN);
        expect(e.clean[e.answerPos]).toBe(e.correct);
        expect(e.correct).not.toBe(e.wrong);
        const diff = e.clean.filter((t, i) => t !== e.corrupted[i]).length;
        if (task === 'ioi') {
          // IO appears once among the names, S twice; the corrupted S2 is a third name.
          const names = [e.clean[e.itemPos[0]], e.clean[e.itemPos[1]], e.clean[e.itemPos[2]]];
          expect(names.filter((n) => n === e.correct).length).toBe(1);
          expect(names.filter((n) => n === e.wrong).length).toBe(2);
          expect(diff).toBe(1);
          expect(names).not.toContain(e.corrupted[e.itemPos[2]]);
        } else if (task === 'co') {
          // The colour right before the queried object's first occurrence.
          const q = e.clean[CIRCUIT_PROMPT_LEN - 1];
          const at = e.clean.indexOf(q);
          expect(e.clean[at - 1]).toBe(e.correct);
          const q2 = e.corrupted[CIRCUIT_PROMPT_LEN - 1];
          expect(e.corrupted[e.corrupted.indexOf(q2) - 1]).toBe(e.wrong);
          expect(diff).toBe(1);
        } else {
          const subj = e.clean[3] - T.subjects[0];
          expect(e.clean[e.answerPos + 1]).toBe(T.facts[CIRCUIT_FACTS[subj]]);
          expect(e.clean.slice(4, 12).filter((_, i) => i % 2 === 0)).toEqual(T.letters.slice(0, 4));
          // Corrupted: the fact sits under the wrong label.
          const wrongPos = e.corrupted.indexOf(e.wrong);
          expect(e.corrupted[wrongPos + 1]).toBe(T.facts[CIRCUIT_FACTS[subj]]);
        }
      });
    }
  });

  it('label mutations: random distinct letters, or A-D shuffled', () => {
    const r = circuitPrompts({ task: 'mcq', batch: 50, seed: 1, split: 'test', mutation: 'random-letters' });
    const s = circuitPrompts({ task: 'mcq', batch: 50, seed: 1, split: 'test', mutation: 'shuffled' });
    let nonCanonical = 0;
    for (const e of r.examples) {
      const labels = [4, 6, 8, 10].map((i) => e.clean[i]);
      expect(new Set(labels).size).toBe(4);
      for (const l of labels) expect(T.letters).toContain(l);
      if (labels.some((l) => l > T.letters[3])) nonCanonical++;
    }
    expect(nonCanonical).toBeGreaterThan(40);
    let reordered = 0;
    for (const e of s.examples) {
      const labels = [4, 6, 8, 10].map((i) => e.clean[i]);
      expect([...labels].sort((a, b) => a - b)).toEqual(T.letters.slice(0, 4));
      if (labels.join() !== T.letters.slice(0, 4).join()) reordered++;
    }
    expect(reordered).toBeGreaterThan(40);
  });

  it('splits are disjoint and seeded; the training batch grades only the answer', () => {
    const keys = (split: 'train' | 'validation' | 'test') =>
      new Set(
        TASKS.flatMap((task) =>
          circuitPrompts({ task, batch: 200, seed: 9, split }).examples.map((e) => e.clean.join(',')),
        ),
      );
    const [tr, va, te] = [keys('train'), keys('validation'), keys('test')];
    for (const k of va) expect(tr.has(k)).toBe(false);
    for (const k of te) {
      expect(tr.has(k)).toBe(false);
      expect(va.has(k)).toBe(false);
    }
    expect(circuitSplitOf([1, 2, 3])).toBe(circuitSplitOf([1, 2, 3]));
    const a = circuitPrompts({ task: 'ioi', batch: 5, seed: 4, split: 'test' });
    const b = circuitPrompts({ task: 'ioi', batch: 5, seed: 4, split: 'test' });
    expect(Array.from(a.clean)).toEqual(Array.from(b.clean));
    expect(a.describe(0)).toMatch(/^BOS IOI WHEN N\d+ AND N\d+ WENT N\d+ GAVE obj\d+ TO -> N\d+ \| corrupted/);
    const batch = circuitTrainingBatch({ tasks: TASKS, batch: 6, seed: 2, mutationShare: 0.5 });
    for (let r = 0; r < 6; r++) {
      const row = batch.row(r);
      expect(row.lossMask.slice(0, -1).every((m) => m === 0)).toBe(true);
      expect(row.lossMask[CIRCUIT_PROMPT_LEN - 1]).toBe(1);
      expect(row.inputs[CIRCUIT_PROMPT_LEN - 1 - (r % 3 === 1 ? 0 : 0)]).toBeGreaterThan(0);
    }
    expect(() => circuitPrompts({ task: 'xyz' as CircuitTask, batch: 2, seed: 0, split: 'test' })).toThrow(
      /circuitPrompts: task must be one of ioi, co, mcq, got xyz/,
    );
    expect(() => circuitPrompts({ task: 'ioi', batch: 0, seed: 0, split: 'test' })).toThrow(
      /circuitPrompts: batch must be an integer >= 1, got 0/,
    );
    expect(() => circuitPrompts({ task: 'ioi', batch: 2, seed: 0, split: 'dev' as 'test' })).toThrow(
      /circuitPrompts: split must be 'train', 'validation' or 'test', got dev/,
    );
    expect(() => circuitPrompts({ task: 'co', batch: 2, seed: 0, split: 'test', mutation: 'shuffled' })).toThrow(
      /circuitPrompts: mutation applies to task 'mcq' only, got task 'co' with 'shuffled'/,
    );
    expect(() => circuitTrainingBatch({ tasks: TASKS, batch: 2, seed: 0, mutationShare: 2 })).toThrow(
      /circuitTrainingBatch: mutationShare must be in \[0, 1\], got 2/,
    );
  });
});

describe('circuit discovery and the experiment', () => {
  beforeAll(async () => backend.setBackend('wasm-native').catch(() => backend.setBackend('wasm')));

  it('iterated path patching recovers the hand-built circuit: mover L1H0, fed through its values by L0H0', () => {
    const model = handBuiltCopier();
    const pair = handBuiltPair();
    const before = tf.memory().numTensors;
    const c = discoverCircuit(model, pair, { threshold: 0.1 });
    expect(tf.memory().numTensors).toBe(before);
    expect(c.movers.map(headLabel)).toEqual(['L1H0']);
    expect(c.inhibition).toEqual([]); // nothing reaches L1H0 through its query
    expect(c.heads.map(headLabel)).toEqual(['L0H0', 'L1H0']);
    expect(c.edges.find((e) => e.sender === 'L0H0')?.receiver).toBe('L1H0 (kv)');
    expect(c.scores[0][1]).toBe(0);
    expect(jaccard(c.heads, [{ layer: 1, head: 0 }])).toBeCloseTo(0.5);
    expect(jaccard([], [])).toBe(1);
    expect(meanCi([1, 0, 1, 0]).mean).toBe(0.5);
    tf.dispose([pair.clean, pair.corrupted]);
    model.dispose();
  });

  it('runs end to end with tiny overrides: split-prefixed metrics, tables, references, no leaks', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(circuitsExperiment, {
      quick: true,
      overrides: { steps: 20, dModel: 16, batch: 12, discoveryRows: 8, testRows: 16, ranks: [1, 3] },
    });
    expect(tf.memory().numTensors).toBe(before);
    for (const k of [
      'test_accuracy_ioi',
      'test_accuracy_co_ci95',
      'test_head_jaccard_ioi_co',
      'test_co_accuracy_before',
      'test_co_intervention_gain_ci95',
      'test_mcq_none_dla_share_top',
      'test_mcq_random_letters_accuracy_rank3',
      'test_mcq_none_accuracy_rank3_ratio',
    ])
      expect(Number.isFinite(r.metrics[k]), k).toBe(true);
    expect(r.tables?.overlap).toHaveLength(2);
    expect(r.tables?.intervention).toHaveLength(2);
    expect(r.tables?.mutations).toHaveLength(3);
    expect(r.references?.map((x) => x.metric)).toContain('test_co_accuracy_after');
    const kept = await runExperimentWith(circuitsExperiment, {
      quick: true,
      keep: true,
      overrides: { steps: 5, dModel: 16, batch: 6, discoveryRows: 6, testRows: 8, ranks: [1] },
    });
    const a = kept.artifacts!;
    expect(a.patching.ioi).toHaveLength(2);
    expect(a.mcqDla[0]).toHaveLength(4);
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expect(runExperimentWith(circuitsExperiment, { quick: true, overrides: { threshold: 0 } })).rejects.toThrow(
      /config.threshold must be a number > 0/,
    );
  });
});

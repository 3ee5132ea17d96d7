/**
 * Pointer Networks, the paper's setting (#17): unconstrained decoding (masks, training softmax, greedy and beam), the
 * paper's FAIL on invalid hulls, out-of-range indices of a fixed-vocabulary baseline, one n per batch, the TSP gap's
 * interval, and the experiment's paper rows with their references and `setting` sentences.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { runExperiment } from '../lib/catalog.js';
import {
  beamDecode,
  createPointerModel,
  delaunayMetrics,
  disposeBatch,
  disposePointerModel,
  type Example,
  greedyDecode,
  HULL_FAIL_SHARE,
  hullMetrics,
  makeBatch,
  makeExamples,
  maskOptions,
  outputPositions,
  PAPER_VALUES,
  POINTER_EXPERIMENTS,
  type PointerArtifacts,
  type PointerModel,
  type PointerModelKind,
  paperRunName,
  randomPoints,
  sequenceLoss,
  TASKS,
  type TaskName,
  teacherForcedLogits,
  tourLength,
  tspMetrics,
  validPositions,
} from '../lib/papers/cogneuro/pointer/index.js';
import { Rng } from '../lib/util/random.js';
import { expectNoLeak } from './helpers.js';

function tiny(kind: PointerModelKind, seed = 0): PointerModel {
  return createPointerModel({ kind, coordDim: 2, hidden: 8, vocab: 9, layers: 1, heads: 2, seed, initScale: 0.5 });
}

/** Teacher-forced logits for `answers` (as decoded), read back as [b][m][p] numbers. */
function logitsFor(model: PointerModel, examples: Example[], answers: number[][]): number[][][] {
  const task = TASKS.hull;
  const n = Math.max(...examples.map((e) => e.points.length));
  // The decoded answers as labels (EOS appended by the task), so decIn feeds back exactly what greedy fed back.
  const batch = makeBatch(
    task,
    examples.map((e, i) => ({ points: e.points, answer: answers[i] })),
    outputPositions(model, n),
    maskOptions(model, 'unconstrained'),
  );
  const out = tf.tidy(() => teacherForcedLogits(model, batch).arraySync());
  disposeBatch(batch);
  return out;
}

describe('unconstrained decoding (the paper hull and Delaunay)', () => {
  beforeAll(() => backend.ready());

  it('keeps every point and EOS valid at every step, and only the step budget ends the answer', () => {
    const task = TASKS.hull; // n = 5, padded to p = 8 positions
    const masked = validPositions(task, 5, 8, [2, 3]);
    expect([...masked]).toEqual([0, 1, 0, 0, 1, 1, 0, 0]); // used 2 and 3 masked, EOS not before step 3
    const free = validPositions(task, 5, 8, [2, 3], { decoding: 'unconstrained' });
    expect([...free]).toEqual([1, 1, 1, 1, 1, 1, 0, 0]); // padding only
    // A fixed vocabulary of 8 classes may name points 5 and 6 of a 5-point input.
    expect([...validPositions(task, 5, 8, [2], { decoding: 'unconstrained', fixedVocabulary: true })]).toEqual([
      1, 1, 1, 1, 1, 1, 1, 1,
    ]);
    // The last step of the budget (n + 1 for hull) may only end a masked answer; without masks the budget just stops.
    expect([...validPositions(task, 5, 8, [1, 2, 3, 4, 5])]).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect([...validPositions(task, 5, 8, [1, 1, 1, 1, 1], { decoding: 'unconstrained' })]).toEqual([
      1, 1, 1, 1, 1, 1, 0, 0,
    ]);
    // Delaunay: EOS in the middle of a triangle is allowed only without masks.
    expect(validPositions(TASKS.delaunay, 5, 6, [1, 2])[0]).toBe(0);
    expect(validPositions(TASKS.delaunay, 5, 6, [1, 2], { decoding: 'unconstrained' })[0]).toBe(1);
  });

  it('greedy picks the argmax over every real position at every step (repeats allowed), masked greedy never repeats', () => {
    const ex = makeExamples(TASKS.hull, 12, 4, 7, new Rng(5));
    for (const kind of ['pointer', 'seq2seq'] as const) {
      const model = tiny(kind, 3);
      const free = greedyDecode(model, TASKS.hull, ex, { decoding: 'unconstrained' });
      const logits = logitsFor(
        model,
        ex,
        free.map((d) => d.answer),
      );
      free.forEach((d, r) => {
        const n = ex[r].points.length;
        const last = kind === 'seq2seq' ? logits[r][0].length - 1 : n;
        expect(d.positions.length).toBeLessThanOrEqual(TASKS.hull.maxSteps(n));
        d.positions.forEach((pos, i) => {
          const row = logits[r][i].slice(0, last + 1);
          expect(pos).toBe(row.indexOf(Math.max(...row)));
        });
      });
      for (const d of greedyDecode(model, TASKS.hull, ex)) expect(new Set(d.answer).size).toBe(d.answer.length);
      disposePointerModel(model);
    }
  });

  it('an untrained model decoded without masks produces the invalid hulls that masks hide', () => {
    const ex = makeExamples(TASKS.hull, 40, 5, 8, new Rng(9));
    const model = tiny('pointer', 1);
    const free = hullMetrics(
      ex,
      greedyDecode(model, TASKS.hull, ex, { decoding: 'unconstrained' }).map((d) => d.answer),
    );
    const beam = beamDecode(model, TASKS.hull, ex, 3, { decoding: 'unconstrained' });
    expect(beam).toHaveLength(40);
    expect(free.invalid).toBeGreaterThan(0.5);
    expect(free.fail).toBe(1);
    disposePointerModel(model);
  });

  it('the unconstrained training loss is the cross-entropy over every real position (float64 reference)', () => {
    const ex = makeExamples(TASKS.hull, 3, 4, 6, new Rng(2));
    const model = tiny('pointer', 4);
    const n = 6;
    const batch = makeBatch(TASKS.hull, ex, n + 1, maskOptions(model, 'unconstrained'));
    const masked = makeBatch(TASKS.hull, ex, n + 1);
    const loss = sequenceLoss(model, batch).dataSync()[0];
    const maskedLoss = sequenceLoss(model, masked).dataSync()[0];
    const logits = tf.tidy(() => teacherForcedLogits(model, batch).arraySync());
    let sum = 0;
    let count = 0;
    ex.forEach((e, r) => {
      const targets = [...e.answer.map((i) => i + 1), 0];
      targets.forEach((t, i) => {
        const row = logits[r][i].slice(0, e.points.length + 1); // EOS and the real points, no padding
        const mx = Math.max(...row);
        const lse = mx + Math.log(row.reduce((a, u) => a + Math.exp(u - mx), 0));
        sum += lse - row[t];
        count++;
      });
    });
    expect(loss).toBeCloseTo(sum / count, 4);
    expect(loss).toBeGreaterThan(maskedLoss); // masks remove competitors, so the masked loss is lower
    disposeBatch(batch);
    disposeBatch(masked);
    disposePointerModel(model);
  });

  it('leaks no tensors', () => {
    const ex = makeExamples(TASKS.delaunay, 4, 5, 6, new Rng(8));
    const model = tiny('seq2seq', 2);
    expectNoLeak(() => void greedyDecode(model, TASKS.delaunay, ex, { decoding: 'unconstrained' }), 2);
    expectNoLeak(() => void beamDecode(model, TASKS.delaunay, ex, 2, { decoding: 'unconstrained' }), 2);
    disposePointerModel(model);
  });
});

describe("the paper's metrics on invalid answers", () => {
  const square: Example = {
    points: [
      [0, 0],
      [1, 0],
      [1, 1],
      [0, 1],
      [0.5, 0.5],
    ],
    answer: [0, 1, 2, 3],
  };

  it('hull: repeated, unknown or too few points are invalid; FAIL when more than 1% are', () => {
    const many = (k: number, bad: number[]) => {
      const ex = Array.from({ length: k }, () => square);
      const pred = ex.map((_, i) => (i < bad.length ? [bad[i] === 0 ? 0 : 9, 1, 2, 3] : [1, 2, 3, 0]));
      return hullMetrics(ex, pred);
    };
    expect(many(100, []).fail).toBe(0);
    expect(many(100, [1]).invalid).toBeCloseTo(0.01); // one out-of-range index in 100
    expect(many(100, [1]).fail).toBe(0); // exactly 1%: not more than HULL_FAIL_SHARE
    expect(many(100, [1, 1]).fail).toBe(1);
    expect(HULL_FAIL_SHARE).toBe(0.01);
    const m = hullMetrics(
      [square, square, square],
      [
        [0, 1, 1, 3],
        [0, 1],
        [1, 2, 3, 0],
      ],
    );
    expect(m.invalid).toBeCloseTo(2 / 3);
    expect(m.accuracy).toBeCloseTo(1 / 3); // [1, 2, 3, 0] is the same cycle
    expect(m.area_coverage).toBe(1);
    expect(m.accuracy_ci95).toBeCloseTo(1.96 * Math.sqrt(((1 / 3) * (2 / 3)) / 3), 10);
  });

  it('Delaunay: a triangle naming a point the input lacks is simply wrong', () => {
    const ex: Example = { points: square.points, answer: [0, 1, 4, 1, 2, 4, 2, 3, 4, 3, 0, 4] };
    const m = delaunayMetrics([ex, ex], [[4, 1, 0, 9, 2, 4], ex.answer]);
    expect(m.triangle_coverage).toBeCloseTo((1 / 4 + 1) / 2);
    expect(m.accuracy).toBe(0.5);
  });

  it("TSP: the gap's interval is the paired differences' interval over the reference length", () => {
    const rng = new Rng(4);
    const ex = makeExamples(TASKS.tsp, 30, 6, 6, rng);
    // Every third tour swaps its 2nd and 4th points (a valid, longer tour).
    const pred = ex.map((e, i) => {
      const [a, b, c, d, ...rest] = e.answer;
      return i % 3 ? e.answer : [a, d, c, b, ...rest];
    });
    const m = tspMetrics(ex, pred);
    const d = ex.map((e, i) => tourLength(e.points, pred[i]) - tourLength(e.points, e.answer));
    const ref = ex.reduce((a, e) => a + tourLength(e.points, e.answer), 0) / ex.length;
    const md = d.reduce((a, x) => a + x, 0) / d.length;
    const sd = Math.sqrt(d.reduce((a, x) => a + (x - md) ** 2, 0) / (d.length - 1));
    expect(m.invalid).toBe(0);
    expect(m.gap).toBeGreaterThan(0);
    expect(m.gap).toBeCloseTo(md / ref, 10);
    expect(m.gap_ci95).toBeCloseTo((1.96 * sd) / Math.sqrt(d.length) / ref, 10);
  });
});

describe('training sets', () => {
  it('one n per block of sameSize examples, and sameSize 1 draws exactly as before', () => {
    const ex = makeExamples(TASKS.sort, 40, 5, 50, new Rng(3), 8);
    for (let b = 0; b < 5; b++) expect(new Set(ex.slice(b * 8, b * 8 + 8).map((e) => e.points.length)).size).toBe(1);
    expect(new Set(ex.map((e) => e.points.length)).size).toBeGreaterThan(1);
    const rng = new Rng(6);
    const manual = Array.from({ length: 5 }, () => randomPoints(rng, rng.int(5, 11), 1));
    expect(makeExamples(TASKS.sort, 5, 5, 10, new Rng(6)).map((e) => e.points)).toEqual(manual);
    expect(() => makeExamples(TASKS.sort, 5, 5, 10, new Rng(6), 0)).toThrow(
      /makeExamples: sameSize must be a positive integer, got 0/,
    );
  });
});

describe("the experiments' paper rows", () => {
  beforeAll(() => backend.ready());

  it("hull: paper rows decode without masks, sit beside the paper's numbers with a setting, ours stay masked", async () => {
    const before = tf.memory().numTensors;
    const r = await runExperiment('pointer-hull', {
      quick: true,
      seed: 1,
      progress: false,
      keep: true,
      overrides: {
        steps: 2,
        batch: 4,
        hidden: 8,
        testCount: 30,
        n_train: [5, 6],
        n_test: [5],
        models: ['pointer'],
        paper: [
          { kind: 'seq2seq', n_train: [5, 5], n_test: [5], steps: 2, decoding: 'unconstrained', beam: 1 },
          { kind: 'seq2seq', n_train: [10, 10], n_test: [10], steps: 2, decoding: 'unconstrained', beam: 1 },
        ],
      },
    });
    expect(paperRunName({ kind: 'seq2seq', n_train: [5, 5] })).toBe('paper-seq2seq-n5');
    expect(paperRunName({ kind: 'pointer', n_train: [5, 50] })).toBe('paper-pointer-n5-50');
    const refs = r.references!;
    expect(refs.map((x) => [x.metric, x.paper])).toEqual([
      ['test_n5_paper-seq2seq-n5_accuracy', 0.877],
      ['test_n5_paper-seq2seq-n5_area_coverage', 0.996],
      ['test_n5_paper-seq2seq-n5_fail', 0],
      ['test_n10_paper-seq2seq-n10_accuracy', 0.299],
      ['test_n10_paper-seq2seq-n10_fail', 1],
    ]);
    for (const x of refs) {
      expect(x.setting).toMatch(/^ours: seq2seq with 8 LSTM units, .* unconstrained greedy decoding, .*; paper: /);
      expect(r.metrics).toHaveProperty([x.metric]);
    }
    const a = r.artifacts as PointerArtifacts;
    expect(Object.keys(a.models)).toEqual(['paper-seq2seq-n5', 'paper-seq2seq-n10', 'pointer']);
    expect(a.models['paper-seq2seq-n5'].spec.vocab).toBe(6); // its own sizes: EOS + 5 points
    // Untrained, the paper's rows name repeated or unknown points; ours, masked, never repeat one.
    expect(r.metrics['test_n10_paper-seq2seq-n10_invalid']).toBeGreaterThan(0.5);
    for (const ans of a.models.pointer.answers.get(5)!) expect(new Set(ans).size).toBe(ans.length);
    const rows = r.tables!.results;
    expect(rows.filter((x) => x.setting === 'paper').length).toBe(2);
    expect(rows.filter((x) => x.setting === 'ours').length).toBe(1);
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('every reference value names its table, and the registered full configs train its row (bar the n = 50 ones)', () => {
    for (const [task, values] of Object.entries(PAPER_VALUES) as [TaskName, (typeof PAPER_VALUES)[TaskName]][]) {
      const full = POINTER_EXPERIMENTS[task].full.paper;
      for (const v of values) {
        expect(v.source).toMatch(/Vinyals et al\. 2015, (Table [12]|section 4\.3)/);
        const trained = full.some(
          (r) => r.kind === v.kind && r.n_train.join() === v.n_train.join() && r.n_test.includes(v.n),
        );
        expect(trained).toBe(v.n_train[0] !== 50);
      }
    }
    // TSP n = 10: the paper's 2.88 (Ptr-Net) vs 2.87 (optimal) is in the experiment's references when a Ptr-Net is
    // trained at n = 10, as the registered quick and full configs do.
    expect(PAPER_VALUES.tsp.filter((v) => v.n === 10).map((v) => [v.metric, v.paper])).toEqual([
      ['tour_length', 2.88],
      ['ref_length', 2.87],
    ]);
  });
});

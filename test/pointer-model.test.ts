/**
 * Pointer network: the LSTM step and the pointer scores against float64 loops (outputs and gradients), step-wise
 * decoding against the teacher-forced pass, masks, greedy vs beam, overfitting a fixed batch, leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { listExperiments, runExperiment } from '../lib/catalog.js';
import {
  beamDecode,
  createPointerModel,
  decodeStep,
  disposeBatch,
  disposePointerModel,
  encode,
  greedyDecode,
  isTour,
  lstmStep,
  makeBatch,
  makeExamples,
  outputPositions,
  POINTER_MODEL_KINDS,
  type PointerArtifacts,
  type PointerModel,
  type PointerModelKind,
  pointerScores,
  sequenceLoss,
  TASKS,
  type TaskSpec,
  taskMetrics,
  teacherForcedLogits,
  validPositions,
} from '../lib/papers/cogneuro/pointer/index.js';
import { Rng } from '../lib/util/random.js';
import { ShapeError } from '../lib/util/shapes.js';
import {
  BACKENDS,
  expectClose,
  expectNoLeak,
  numericGrad,
  randomArray,
  type Tolerance,
  useBackend,
} from './helpers.js';

/** float32 kernels against float64 loops. */
const TOL: Tolerance = { rtol: 1e-4, atol: 2e-5 };
/** Finite differences of a float64 loop against float32 autodiff. */
const GRAD_TOL: Tolerance = { rtol: 2e-3, atol: 2e-4 };

const sig = (x: number) => 1 / (1 + Math.exp(-x));

/** One LSTM step in float64: xw [b, 4h] (input already times W_x), h, c [b, h], wh [h, 4h], bias [4h]. */
function naiveLstm(
  xw: ArrayLike<number>,
  h: ArrayLike<number>,
  c: ArrayLike<number>,
  wh: ArrayLike<number>,
  bias: ArrayLike<number>,
  b: number,
  H: number,
) {
  const h2 = new Float64Array(b * H);
  const c2 = new Float64Array(b * H);
  for (let r = 0; r < b; r++) {
    const g = new Float64Array(4 * H);
    for (let k = 0; k < 4 * H; k++) {
      let s = xw[r * 4 * H + k] + bias[k];
      for (let j = 0; j < H; j++) s += h[r * H + j] * wh[j * 4 * H + k];
      g[k] = s;
    }
    for (let j = 0; j < H; j++) {
      const [i, f, gg, o] = [g[j], g[H + j], g[2 * H + j], g[3 * H + j]];
      c2[r * H + j] = sig(f) * c[r * H + j] + sig(i) * Math.tanh(gg);
      h2[r * H + j] = sig(o) * Math.tanh(c2[r * H + j]);
    }
  }
  return { h2, c2 };
}

/** u[b, i, j] = Σ_k v_k tanh(keys[b, j, k] + Σ_l d[b, i, l] w2[l, k]), in float64. */
function naiveScores(
  keys: ArrayLike<number>,
  d: ArrayLike<number>,
  w2: ArrayLike<number>,
  v: ArrayLike<number>,
  b: number,
  m: number,
  p: number,
  H: number,
) {
  const u = new Float64Array(b * m * p);
  for (let r = 0; r < b; r++)
    for (let i = 0; i < m; i++) {
      const q = new Float64Array(H);
      for (let k = 0; k < H; k++) for (let l = 0; l < H; l++) q[k] += d[(r * m + i) * H + l] * w2[l * H + k];
      for (let j = 0; j < p; j++) {
        let s = 0;
        for (let k = 0; k < H; k++) s += v[k] * Math.tanh(keys[(r * p + j) * H + k] + q[k]);
        u[(r * m + i) * p + j] = s;
      }
    }
  return u;
}

function tinyModel(kind: PointerModelKind, task: TaskSpec, hidden = 8, seed = 0): PointerModel {
  return createPointerModel({
    kind,
    coordDim: task.coordDim,
    hidden,
    vocab: 16,
    layers: 1,
    heads: 2,
    seed,
    initScale: 0.5,
  });
}

for (const name of BACKENDS) {
  describe(`pointer math on ${name}`, () => {
    beforeAll(() => useBackend(name));

    it('lstmStep equals the float64 loop, outputs and gradients', () => {
      const [b, H] = [3, 4];
      const xw = randomArray(b * 4 * H, 1),
        h = randomArray(b * H, 2),
        c = randomArray(b * H, 3);
      const wh = randomArray(H * 4 * H, 4, 0.5),
        bias = randomArray(4 * H, 5);
      const T = (a: Float64Array, s: number[]) => tf.tensor(Array.from(a), s);
      const [h2, c2] = tf.tidy(() =>
        lstmStep(
          T(xw, [b, 4 * H]) as tf.Tensor2D,
          T(h, [b, H]) as tf.Tensor2D,
          T(c, [b, H]) as tf.Tensor2D,
          T(wh, [H, 4 * H]),
          T(bias, [4 * H]),
        ),
      );
      const ref = naiveLstm(xw, h, c, wh, bias, b, H);
      expectClose(h2, ref.h2, TOL, 'h');
      expectClose(c2, ref.c2, TOL, 'c');
      tf.dispose([h2, c2]);
      // Gradient of Σ w·h' + Σ w'·c' with respect to every input.
      const wH = randomArray(b * H, 6),
        wC = randomArray(b * H, 7);
      const objective = () => {
        const r = naiveLstm(xw, h, c, wh, bias, b, H);
        return r.h2.reduce((a, x, i) => a + x * wH[i], 0) + r.c2.reduce((a, x, i) => a + x * wC[i], 0);
      };
      const grads = tf.tidy(() =>
        tf.grads((a: tf.Tensor, hh: tf.Tensor, cc: tf.Tensor, w: tf.Tensor, bb: tf.Tensor) => {
          const [x1, x2] = lstmStep(a as tf.Tensor2D, hh as tf.Tensor2D, cc as tf.Tensor2D, w, bb);
          return x1
            .mul(T(wH, [b, H]))
            .sum()
            .add(x2.mul(T(wC, [b, H])).sum());
        })([T(xw, [b, 4 * H]), T(h, [b, H]), T(c, [b, H]), T(wh, [H, 4 * H]), T(bias, [4 * H])]),
      );
      [xw, h, c, wh, bias].forEach((arr, i) =>
        expectClose(grads[i], numericGrad(objective, arr), GRAD_TOL, `grad ${i}`),
      );
      tf.dispose(grads);
    });

    it('pointerScores equals vᵀ tanh(W1 e_j + W2 d_i) by loops, outputs and gradients', () => {
      const [b, m, p, H] = [2, 3, 4, 5];
      const keys = randomArray(b * p * H, 11),
        d = randomArray(b * m * H, 12),
        w2 = randomArray(H * H, 13, 0.5),
        v = randomArray(H, 14);
      const T = (a: Float64Array, s: number[]) => tf.tensor(Array.from(a), s);
      const u = tf.tidy(() =>
        pointerScores(T(keys, [b, p, H]) as tf.Tensor3D, T(d, [b, m, H]) as tf.Tensor3D, T(w2, [H, H]), T(v, [H, 1])),
      );
      expect(u.shape).toEqual([b, m, p]);
      expectClose(u, naiveScores(keys, d, w2, v, b, m, p, H), TOL, 'u');
      u.dispose();
      const wu = randomArray(b * m * p, 15);
      const objective = () => naiveScores(keys, d, w2, v, b, m, p, H).reduce((a, x, i) => a + x * wu[i], 0);
      const grads = tf.tidy(() =>
        tf.grads((k: tf.Tensor, dd: tf.Tensor, w: tf.Tensor, vv: tf.Tensor) =>
          pointerScores(k as tf.Tensor3D, dd as tf.Tensor3D, w, vv)
            .mul(T(wu, [b, m, p]))
            .sum(),
        )([T(keys, [b, p, H]), T(d, [b, m, H]), T(w2, [H, H]), T(v, [H, 1])]),
      );
      [keys, d, w2, v].forEach((arr, i) => expectClose(grads[i], numericGrad(objective, arr), GRAD_TOL, `grad ${i}`));
      tf.dispose(grads);
    });

    it('step-by-step decoding equals the teacher-forced pass, for every model kind', () => {
      const task = TASKS.hull;
      const ex = makeExamples(task, 3, 4, 7, new Rng(21));
      for (const kind of POINTER_MODEL_KINDS) {
        const model = tinyModel(kind, task);
        const n = Math.max(...ex.map((e) => e.points.length));
        const batch = makeBatch(task, ex, outputPositions(model, n));
        tf.tidy(() => {
          const full = teacherForcedLogits(model, batch); // [b, m, p]
          const enc = encode(model, batch.x, batch.lengths);
          let state = { h: enc.h, c: enc.c };
          const steps = tf.unstack(batch.decIn, 1).map((x) => {
            const s = decodeStep(model, enc, state, x as tf.Tensor2D);
            state = s.state;
            return s.logits;
          });
          expectClose(tf.stack(steps, 1), full, { rtol: 1e-5, atol: 1e-5 }, kind);
        });
        disposeBatch(batch);
        disposePointerModel(model);
      }
    });
  });
}

describe('pointer model', () => {
  beforeAll(() => backend.ready());

  it('padding changes nothing: a row encodes the same alone and padded next to a longer row', () => {
    const task = TASKS.tsp;
    const [short, long] = [makeExamples(task, 1, 5, 5, new Rng(31)), makeExamples(task, 1, 9, 9, new Rng(32))];
    for (const kind of ['pointer', 'pointer-transformer', 'seq2seq-attn'] as const) {
      const model = tinyModel(kind, task);
      const alone = makeBatch(task, short, outputPositions(model, 5));
      const padded = makeBatch(task, [...short, ...long], outputPositions(model, 9));
      tf.tidy(() => {
        const a = teacherForcedLogits(model, alone); // [1, 5, p]
        const b = teacherForcedLogits(model, padded).slice([0, 0, 0], [1, 5, a.shape[2]]);
        expectClose(b, a, { rtol: 1e-4, atol: 1e-5 }, kind);
      });
      [alone, padded].forEach(disposeBatch);
      disposePointerModel(model);
    }
  });

  it('the output is a distribution over exactly the valid positions: padding, used points and misplaced EOS get 0', () => {
    for (const task of [TASKS.hull, TASKS.delaunay, TASKS.tsp]) {
      const ex = makeExamples(task, 6, 4, 8, new Rng(41));
      const model = tinyModel('pointer', task);
      const out = greedyDecode(model, task, ex, { record: true });
      const p = Math.max(...ex.map((e) => e.points.length)) + 1;
      out.forEach((o, r) => {
        const n = ex[r].points.length;
        o.probs!.forEach((dist, step) => {
          const valid = validPositions(task, n, p, o.positions.slice(0, step));
          expect(dist.reduce((a, x) => a + x, 0)).toBeCloseTo(1, 5);
          dist.forEach((x, j) =>
            valid[j] ? undefined : expect(x, `${task.name} row ${r} step ${step} position ${j}`).toBe(0),
          );
          for (let j = n + 1; j < p; j++) expect(valid[j]).toBe(0); // padding
        });
        expect(o.answer.every((i) => i >= 0 && i < n)).toBe(true);
        if (task.maskChosen) expect(new Set(o.answer).size).toBe(o.answer.length);
        if (task.name === 'tsp') expect(isTour(o.answer, n)).toBe(true);
        if (task.name === 'delaunay') expect(o.answer.length % 3).toBe(0);
      });
      disposePointerModel(model);
    }
  });

  it('beam search with width 1 equals greedy decoding', () => {
    for (const [task, kind] of [
      [TASKS.hull, 'pointer'],
      [TASKS.delaunay, 'pointer-transformer'],
      [TASKS.tsp, 'seq2seq-attn'],
      [TASKS.sort, 'seq2seq'],
    ] as const) {
      const ex = makeExamples(task, 8, 4, 9, new Rng(51));
      const model = tinyModel(kind, task, 8, 3);
      const g = greedyDecode(model, task, ex);
      const b1 = beamDecode(model, task, ex, 1);
      expect(
        b1.map((d) => d.positions),
        `${task.name} ${kind}`,
      ).toEqual(g.map((d) => d.positions));
      b1.forEach((d, i) => expect(d.logp).toBeCloseTo(g[i].logp, 5));
      // A wider beam still returns valid answers, at least as probable as greedy's in most rows.
      const b3 = beamDecode(model, task, ex, 3);
      if (task.maskChosen) b3.forEach((d) => expect(new Set(d.answer).size).toBe(d.answer.length));
      expect(b3.filter((d, i) => d.logp >= g[i].logp - 1e-5).length).toBeGreaterThanOrEqual(6);
      disposePointerModel(model);
    }
  });

  it('a tiny model overfits a fixed batch (loss falls by more than half)', async () => {
    const { train } = await import('../lib/train/loop.js');
    const task = TASKS.hull;
    const ex = makeExamples(task, 8, 5, 6, new Rng(61));
    const model = createPointerModel({ kind: 'pointer', coordDim: 2, hidden: 32, seed: 1 });
    const batch = makeBatch(task, ex);
    const run = await train({
      variables: model.params,
      steps: 80,
      optimizer: { type: 'adam', lr: 1e-2 },
      clipNorm: 2,
      progress: false,
      dataframe: false,
      loss: () => sequenceLoss(model, batch),
    });
    const first = run.records[0].loss;
    const last = run.records[run.records.length - 1].loss;
    expect(last).toBeLessThan(first / 2);
    disposeBatch(batch);
    disposePointerModel(model);
  });

  it('loss, its gradient and both decoders leak no tensors', () => {
    const task = TASKS.hull;
    const ex = makeExamples(task, 4, 4, 6, new Rng(71));
    for (const kind of POINTER_MODEL_KINDS) {
      const model = tinyModel(kind, task);
      const batch = makeBatch(task, ex, outputPositions(model, Math.max(...ex.map((e) => e.points.length))));
      expectNoLeak(
        () =>
          tf.tidy(() => {
            tf.variableGrads(() => sequenceLoss(model, batch), Object.values(model.params));
          }),
        2,
      );
      expectNoLeak(() => void greedyDecode(model, task, ex), 2);
      expectNoLeak(() => void beamDecode(model, task, ex, 2), 2);
      disposeBatch(batch);
      disposePointerModel(model);
    }
  });

  it('errors name the argument and the shapes', () => {
    const model = tinyModel('pointer', TASKS.hull);
    const x = tf.zeros([2, 4, 1]) as tf.Tensor3D;
    expect(() => encode(model, x, [4, 4])).toThrow(ShapeError);
    expect(() => encode(model, x, [4, 4])).toThrow(/x has 1 coordinates per point .* the model takes 2/);
    const x2 = tf.zeros([2, 4, 2]) as tf.Tensor3D;
    expect(() => encode(model, x2, [4, 5])).toThrow(/lengths must give b = 2 values in \[1, 4\]/);
    expect(() => createPointerModel({ kind: 'seq2seq', coordDim: 2, hidden: 4, seed: 0 })).toThrow(/needs vocab/);
    tf.dispose([x, x2]);
    disposePointerModel(model);
  });
});

describe('pointer experiments', () => {
  beforeAll(() => backend.ready());

  it('are registered and report split-prefixed metrics for each model and test size', async () => {
    const names = listExperiments().map((e) => e.name);
    for (const t of ['hull', 'delaunay', 'tsp', 'sort']) expect(names).toContain(`pointer-${t}`);
    const before = tf.memory().numTensors;
    const r = await runExperiment('pointer-tsp', {
      quick: true,
      seed: 3,
      progress: false,
      keep: true,
      overrides: {
        steps: 3,
        batch: 8,
        hidden: 8,
        testCount: 6,
        n_train: [4, 5],
        n_test: [5, 6],
        models: ['pointer', 'seq2seq'],
        beam: 2,
        paper: [{ kind: 'pointer', n_train: [6, 6], n_test: [6], steps: 2, decoding: 'masked', beam: 2 }],
      },
    });
    const cfg = r.config as { task: string; n_train: number[]; n_test: number[] };
    expect(cfg.task).toBe('tsp');
    expect(cfg.n_test).toEqual([5, 6]);
    for (const k of [
      'test_n5_pointer_gap',
      'test_n5_pointer_gap_ci95',
      'test_n6_seq2seq_tour_length',
      'test_n6_2-opt_gap',
      'train_pointer_loss',
      'params_seq2seq',
      'test_n6_paper-pointer-n6_gap',
      'seconds_paper-pointer-n6',
    ])
      expect(r.metrics).toHaveProperty([k]);
    // Two models and two heuristics at two sizes, plus the paper's row: a Ptr-Net trained on n = 6 only.
    expect(r.tables!.results.length).toBe(2 * 2 + 2 * 2 + 1);
    expect(r.tables!.results.map((row) => row.setting)).toContain('paper');
    expect(r.summary).toContain('paper-pointer-n6');
    // The artifacts: every trained model with the answers the metrics scored, and the test sets.
    const a = r.artifacts as PointerArtifacts;
    expect(Object.keys(a.models)).toEqual(['paper-pointer-n6', 'pointer', 'seq2seq']);
    expect([...a.tests.keys()].sort()).toEqual([5, 6]);
    expect(a.models.pointer.records).toHaveLength(3);
    expect([...a.models['paper-pointer-n6'].answers.keys()]).toEqual([6]);
    for (const [name, n] of [
      ['pointer', 5],
      ['pointer', 6],
      ['paper-pointer-n6', 6],
    ] as const) {
      const answers = a.models[name].answers.get(n)!;
      expect(answers).toHaveLength(6);
      expect(taskMetrics('tsp', a.tests.get(n)!, answers).tour_length).toBe(
        r.metrics[`test_n${n}_${name}_tour_length`],
      );
    }
    // Vinyals et al.'s TSP numbers sit only beside a paper row of the same training size (none here: n = 6).
    expect(r.references).toEqual([]);
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

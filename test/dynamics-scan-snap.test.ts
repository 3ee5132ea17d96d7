/** Scan and Snap (paper #13): the Y/Z model against its float64 reference, the sequence classes, GroupSgd, the
 * training-dynamics recorder, train()'s `update` option, and the `scan-snap` experiment at a tiny size. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type SequenceSplit,
  sequenceClassBatch,
  sequenceClasses,
  sequenceSplitOf,
} from '../lib/data/sequence-classes.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import {
  entropy,
  expectedTokenAttention,
  GroupSgd,
  meanCi,
  ScanSnapModel,
  scanSnapExperiment,
  scanSnapForward,
  scanSnapLoss,
  scanSnapReference,
  snapStep,
} from '../lib/papers/dynamics/scan-snap/index.js';
import { train } from '../lib/train/loop.js';
import { Adam } from '../lib/train/optim.js';
import { Recorder } from '../lib/train/recorder.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const M = 7;
const B = 3;
const T = 5;
const Yd = randomArray(M * M, 11, 1.5);
const Zd = randomArray(M * M, 12, 2);
const ctxs = Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 3) % M);
const qs = Int32Array.from([1, 4, 1]);
const tgts = Int32Array.from([2, 6, 0]);

function tensors() {
  return {
    Y: tf.tensor2d(Float32Array.from(Yd), [M, M]),
    Z: tf.tensor2d(Float32Array.from(Zd), [M, M]),
    c: tf.tensor2d(ctxs, [B, T], 'int32'),
    q: tf.tensor1d(qs, 'int32'),
    t: tf.tensor1d(tgts, 'int32'),
  };
}

for (const be of BACKENDS) {
  describe(`scanSnapForward on ${be}`, () => {
    beforeAll(() => useBackend(be));

    for (const opts of [{}, { normalize: false }, { residual: true }, { normalize: false, residual: true }]) {
      it(`matches the float64 reference: outputs and loss (${JSON.stringify(opts)})`, () => {
        const x = tensors();
        const out = scanSnapForward({ Y: x.Y, Z: x.Z }, x.c, x.q, opts);
        const ref = scanSnapReference(Yd, Zd, M, ctxs, qs, tgts, opts);
        expectClose(out.logits, ref.logits, {}, 'logits');
        expectClose(out.attention, ref.attention, {}, 'attention');
        expectClose(out.tokenAttention, ref.tokenAttention, {}, 'tokenAttention');
        const loss = scanSnapLoss({ Y: x.Y, Z: x.Z }, x.c, x.q, x.t, opts);
        expectClose(loss, [ref.loss], {}, 'loss');
        tf.dispose([x, out, loss]);
      });

      it(`gradients match central differences of the reference (${JSON.stringify(opts)})`, () => {
        const x = tensors();
        const g = tf.grads((Y: tf.Tensor, Z: tf.Tensor) =>
          scanSnapLoss({ Y: Y as tf.Tensor2D, Z: Z as tf.Tensor2D }, x.c, x.q, x.t, opts),
        )([x.Y, x.Z]);
        const y64 = Float64Array.from(Yd);
        const z64 = Float64Array.from(Zd);
        const f = () => scanSnapReference(y64, z64, M, ctxs, qs, tgts, opts).loss;
        expectClose(g[0], numericGrad(f, y64), { rtol: 1e-3, atol: 1e-4 }, 'dY');
        expectClose(g[1], numericGrad(f, z64), { rtol: 1e-3, atol: 1e-4 }, 'dZ');
        tf.dispose([x, g]);
      });
    }

    it('has no positional encoding: permuting the context leaves the logits unchanged', () => {
      const x = tensors();
      const perm = new Int32Array(B * T);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) perm[b * T + t] = ctxs[b * T + ((t * 2 + 1) % T)];
      const c2 = tf.tensor2d(perm, [B, T], 'int32');
      const a = scanSnapForward({ Y: x.Y, Z: x.Z }, x.c, x.q);
      const b = scanSnapForward({ Y: x.Y, Z: x.Z }, c2, x.q);
      expectClose(b.logits, a.logits, {}, 'permuted logits');
      tf.dispose([x, c2, a, b]);
    });

    it('does not leak tensors (forward, loss, gradients)', () => {
      const x = tensors();
      const p = { Y: tf.variable(x.Y), Z: tf.variable(x.Z) };
      expectNoLeak(() => {
        const out = scanSnapForward(p, x.c, x.q, { residual: true });
        tf.dispose(out);
        const { value, grads } = tf.variableGrads(() => scanSnapLoss(p, x.c, x.q, x.t), [p.Y, p.Z]);
        tf.dispose([value, grads]);
      });
      tf.dispose([x, p.Y, p.Z]);
    });
  });
}

describe('scan-snap argument errors', () => {
  it('name the function, the argument, the expected and the actual value', () => {
    const x = tensors();
    const bad = tf.zeros([M, M + 1]) as tf.Tensor2D;
    expect(() => scanSnapForward({ Y: x.Y, Z: bad }, x.c, x.q)).toThrow(
      /scanSnapForward: Z must be a square \[M, M\] matrix, got shape \[7,8\]/,
    );
    expect(() => scanSnapForward({ Y: bad, Z: x.Z }, x.c, x.q)).toThrow(/scanSnapForward: Y must have shape \[7, 7\]/);
    const fc = tf.zeros([B, T]) as tf.Tensor2D;
    expect(() => scanSnapForward({ Y: x.Y, Z: x.Z }, fc, x.q)).toThrow(/contexts must be int32, got float32/);
    const q2 = tf.tensor1d([1, 2], 'int32');
    expect(() => scanSnapForward({ Y: x.Y, Z: x.Z }, x.c, q2)).toThrow(/queries must be \[3\].*got \[2\]/);
    expect(() => new ScanSnapModel(1)).toThrow(/ScanSnapModel: vocabSize must be an integer >= 2, got 1/);
    expect(() => new GroupSgd([], 1)).toThrow(/GroupSgd: momentum must lie in \[0, 1\), got 1/);
    expect(() => entropy([0, 0])).toThrow(/entropy: p must have a positive sum/);
    tf.dispose([x, bad, fc, q2]);
  });
});

describe('expectedTokenAttention (the paper c_n)', () => {
  it('is the token attention of a context whose counts follow P(l|n) exactly', () => {
    const cls = { query: 1, tokens: [0, 2, 5], probs: [0.5, 0.25, 0.25] };
    const context = [0, 0, 2, 5]; // counts 2:1:1
    const ref = scanSnapReference(Yd, Zd, M, context, [1], null);
    const c = expectedTokenAttention(Zd, M, cls);
    expectClose(
      c,
      cls.tokens.map((l) => ref.tokenAttention[l]),
      {},
      'c_n',
    );
  });

  it('equals P(l|n) when Z is zero', () => {
    const cls = { query: 0, tokens: [1, 3], probs: [0.2, 0.8] };
    expectClose(expectedTokenAttention(new Float64Array(M * M), M, cls), cls.probs, {}, 'uniform attention');
  });
});

describe('GroupSgd', () => {
  it('is PyTorch SGD with momentum, with its own learning rate per group', () => {
    const a = tf.variable(tf.tensor1d([1, -2]));
    const b = tf.variable(tf.tensor1d([3]));
    const sgd = new GroupSgd(
      [
        { variables: [a], lr: 0.1 },
        { variables: [b], lr: 0.5 },
      ],
      0.9,
    );
    // f = ½‖a‖² + ½‖b‖²: g = p. Reference loop in float64.
    const ref = { a: [1, -2], b: [3], ba: [0, 0], bb: [0] };
    for (let s = 0; s < 4; s++) {
      const { grads } = tf.variableGrads(
        () => tf.add(tf.sum(tf.square(a)), tf.sum(tf.square(b))).mul(0.5) as tf.Scalar,
      );
      sgd.apply(grads);
      tf.dispose(grads);
      ref.ba = ref.ba.map((v, i) => (s === 0 ? ref.a[i] : 0.9 * v + ref.a[i]));
      ref.bb = ref.bb.map((v, i) => (s === 0 ? ref.b[i] : 0.9 * v + ref.b[i]));
      ref.a = ref.a.map((v, i) => v - 0.1 * ref.ba[i]);
      ref.b = ref.b.map((v, i) => v - 0.5 * ref.bb[i]);
    }
    expectClose(a, ref.a, {}, 'a');
    expectClose(b, ref.b, {}, 'b');
    const before = tf.memory().numTensors;
    sgd.dispose();
    expect(tf.memory().numTensors).toBe(before - 2);
    expect(
      () =>
        new GroupSgd([
          { variables: [a], lr: 1 },
          { variables: [a], lr: 2 },
        ]),
    ).toThrow(/in two groups/);
    tf.dispose([a, b]);
  });
});

describe('sequence classes', () => {
  const data = sequenceClasses({ numQueries: 4, classesPerQuery: 2, numCommon: 10, numDistinct: 6 });

  it('lays out K = 8 classes: 10 common + 6 distinct tokens each, a query shared by 2 classes', () => {
    expect(data.classes.length).toBe(8);
    expect(data.vocabSize).toBe(10 + 8 * 6 + 4 + 8);
    for (const c of data.classes) {
      expect(c.probs.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12);
      expect(c.tokens.filter((_, i) => c.distinct[i]).length).toBe(6);
      expect(data.kind[c.query]).toBe('query');
      expect(data.kind[c.next]).toBe('next');
    }
    for (let q = data.queries[0]; q < data.queries[1]; q++)
      expect(data.classes.filter((c) => c.query === q).length).toBe(2);
    const owners = new Map<number, number>();
    data.classes.forEach((c, k) => {
      for (const [i, l] of c.tokens.entries()) {
        if (!c.distinct[i]) continue;
        expect(owners.has(l), `distinct token ${l} in two classes`).toBe(false);
        owners.set(l, k);
      }
    });
    // Weights: common 1, distinct linspace(0.1, 1).
    const c0 = data.classes[0];
    expect(c0.probs[10] / c0.probs[0]).toBeCloseTo(0.1, 12);
    expect(c0.probs[15] / c0.probs[0]).toBeCloseTo(1, 12);
  });

  it('draws rows of the class: context from its support, its query, its next token; splits never share a row', () => {
    const seen = new Map<string, SequenceSplit>();
    for (const split of ['train', 'validation', 'test'] as const) {
      const b = sequenceClassBatch(data, { batch: 200, contextLen: 12, seed: 3, split });
      const again = sequenceClassBatch(data, { batch: 200, contextLen: 12, seed: 3, split });
      expect(Array.from(again.contexts)).toEqual(Array.from(b.contexts));
      const problems: string[] = [];
      for (let r = 0; r < b.batch; r++) {
        const c = data.classes[b.classes[r]];
        const row = b.contexts.subarray(r * 12, (r + 1) * 12);
        if (b.queries[r] !== c.query || b.targets[r] !== c.next)
          problems.push(`row ${r}: query/target not its class's`);
        if (!row.every((l) => c.tokens.includes(l))) problems.push(`row ${r}: a token outside the class's support`);
        if (sequenceSplitOf(row, b.queries[r]) !== split) problems.push(`row ${r}: hashes to another split`);
        const key = `${Array.from(row)}|${b.queries[r]}`;
        if (seen.has(key) && seen.get(key) !== split) problems.push(`row ${r}: also in ${seen.get(key)}`);
        seen.set(key, split);
      }
      expect(problems).toEqual([]);
    }
  });

  it('rejects bad settings with the argument and the value', () => {
    expect(() => sequenceClasses({ numQueries: 0, classesPerQuery: 2, numCommon: 1, numDistinct: 1 })).toThrow(
      /sequenceClasses: numQueries must be an integer >= 1, got 0/,
    );
    expect(() =>
      sequenceClasses({ numQueries: 1, classesPerQuery: 2, numCommon: 1, numDistinct: 2, distinctWeightRange: [0, 1] }),
    ).toThrow(/distinctWeightRange must be \[min, max\] with 0 < min <= max, got \[0, 1\]/);
    expect(() => sequenceClassBatch(data, { batch: 2, contextLen: 3, seed: 0, split: 'dev' as SequenceSplit })).toThrow(
      /sequenceClassBatch: split must be one of train, validation, test, got dev/,
    );
  });
});

describe('snapStep and meanCi', () => {
  it('finds the step after which the curve stays slower than the rate', () => {
    const steps = [0, 1, 2, 3, 4, 5, 6];
    const h = [2, 1.8, 1.6, 1.55, 1.549, 1.5485, 1.548];
    expect(snapStep(steps, h, 0.01)).toBe(3);
    expect(snapStep(steps, h, 0.5)).toBe(0); // never that fast
    expect(Number.isNaN(snapStep(steps, [6, 5, 4, 3, 2, 1, 0], 0.5))).toBe(true); // still falling at the end
    expect(() => snapStep([0, 1], [1], 0.1)).toThrow(/snapStep: steps and values must have the same length/);
  });

  it('gives the 95% normal interval of the mean', () => {
    const { mean, ci95 } = meanCi([1, 2, 3]);
    expect(mean).toBe(2);
    expect(ci95).toBeCloseTo((1.96 * 1) / Math.sqrt(3), 12);
  });
});

describe('train({ update }) and the Recorder', () => {
  beforeAll(() => useBackend('cpu'));

  it('train applies a custom update in place of the optimizer', async () => {
    const w = tf.variable(tf.scalar(0));
    const opt = new Adam([w], { lr: 1 });
    const r = await train({
      variables: [w],
      steps: 5,
      optimizer: opt,
      loss: () => tf.square(tf.sub(w, 3)) as tf.Scalar,
      update: (grads, lr) => {
        const g = grads[w.name];
        w.assign(tf.sub(w, tf.mul(g, 0.25 * lr)));
      },
      progress: false,
      dataframe: false,
    });
    // Plain gradient descent on (w-3)²: w ← w - 0.25·2(w-3) = (w+3)/2, so w_5 = 3 - 3/32.
    expect(w.dataSync()[0]).toBeCloseTo(3 - 3 / 32, 5);
    expect(r.steps).toBe(5);
    expect(opt.step).toBe(0);
    expect(opt.numTensors).toBe(0);
    tf.dispose(w);
  });

  it('records stats and weight blocks every N steps, without leaking', async () => {
    const a = tf.variable(
      tf.tensor2d([
        [1, 0],
        [0, 1],
      ]),
    );
    const b = tf.variable(
      tf.tensor2d([
        [0.5, 0.5],
        [0, 1],
      ]),
    );
    const rec = new Recorder({
      every: 2,
      stats: (step) => ({ validation_norm: tf.norm(a).dataSync()[0], twice: 2 * step }),
      blocks: { KQ: () => tf.matMul(a, b, false, true), A: () => a },
    });
    rec.capture(0);
    const before = tf.memory().numTensors;
    await train({
      variables: [a, b],
      steps: 5,
      optimizer: { type: 'adam', lr: 0.1 },
      loss: () => tf.sum(tf.square(tf.sub(tf.matMul(a, b), 1))) as tf.Scalar,
      onStep: rec.onStep,
      progress: false,
      dataframe: false,
    });
    rec.capture(5);
    expect(tf.memory().numTensors).toBe(before);
    expect(rec.rows.map((r) => r.step)).toEqual([0, 2, 4, 5]);
    expect(rec.rows.map((r) => r.twice)).toEqual([0, 4, 8, 10]);
    expect(Number.isNaN(rec.rows[0].loss)).toBe(true);
    expect(Number.isFinite(rec.rows[1].loss)).toBe(true);
    expect(rec.series('validation_norm').value[0]).toBeCloseTo(Math.SQRT2, 6);
    const kq = rec.frames('KQ');
    expect(kq.map((f) => f.step)).toEqual([0, 2, 4, 5]);
    expect(kq[0].shape).toEqual([2, 2]);
    expectClose(kq[0].values, [0.5, 0, 0.5, 1], {}, 'KQ at step 0');
    expectClose(rec.frames('A')[3].values, a.dataSync(), {}, 'A at the end');
    expect(a.isDisposed).toBe(false);
    expect(rec.blockRows('KQ').length).toBe(16);
    const df = await rec.toDataFrame();
    expect(df.columns).toEqual(['step', 'loss', 'validation_norm', 'twice']);
    expect(() => rec.frames('OV')).toThrow(/Recorder.frames: no block named "OV" \(blocks: KQ, A\)/);
    expect(() => rec.capture(5)).toThrow(/step must increase, got 5 after 5/);
    expect(() => new Recorder({ every: 0 })).toThrow(/Recorder: every must be a positive integer, got 0/);
    tf.dispose([a, b]);
  });
});

describe('scan-snap experiment (tiny)', () => {
  it('runs, cites the paper, and shows the scan (entropy down, distinct/common up)', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(scanSnapExperiment, {
      quick: true,
      overrides: { steps: 30, batch: 64, seeds: 2, ratios: [1, 10], validationRows: 32, testRows: 64 },
    });
    expect(tf.memory().numTensors).toBe(before);
    const m = r.metrics;
    expect(m.test_cn_entropy_end).toBeLessThan(m.test_cn_entropy_start);
    expect(m.test_distinct_common_end).toBeGreaterThan(m.test_distinct_common_start);
    expect(m.test_accuracy).toBeGreaterThan(0.9);
    expect(m['fig6.r10.test_cn_entropy']).toBeGreaterThan(m['fig6.r1.test_cn_entropy']);
    expect(r.references?.map((x) => x.metric)).toEqual([
      'fig6.r1.test_cn_entropy',
      'fig6.r10.test_cn_entropy',
      'test_cn_entropy_gain',
    ]);
    expect(r.tables?.sweep.length).toBe(2);
    expect(r.artifacts).toBeUndefined();
  });

  it('rejects a bad override before any work', async () => {
    await expect(runExperimentWith(scanSnapExperiment, { quick: true, overrides: { ratios: [1] } })).rejects.toThrow(
      /config.ratios must have length >= 2/,
    );
  });
});

import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { sdpa } from '../lib/attention/sdpa.js';
import { needleTask } from '../lib/data/needles.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { ToyLM } from '../lib/layers/toylm.js';
import * as masks from '../lib/masks/index.js';
import { duoAttention, duoAttentionReference, streamingAllows } from '../lib/papers/inference/duo/attention.js';
import {
  applyDuoGates,
  distillLoss,
  duoSchedule,
  headsFromGates,
  optimiseGates,
} from '../lib/papers/inference/duo/gates.js';
import { decodeDuo, duoPolicy } from '../lib/papers/inference/duo/policy.js';
import {
  kvBudget,
  needleEvalSet,
  retrievalHeadCount,
  scoreDecode,
} from '../lib/papers/inference/experiments/kv-budget.js';
import { decodeWithPolicy } from '../lib/papers/inference/kv/decode.js';
import { FullPolicy } from '../lib/papers/inference/kv/policy.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

interface Case {
  b: number;
  h: number;
  g: number;
  s: number;
  t: number;
  d: number;
  sinks: number;
  recent: number;
}

const CASES: Case[] = [
  { b: 2, h: 2, g: 2, s: 9, t: 9, d: 4, sinks: 2, recent: 3 },
  { b: 1, h: 4, g: 2, s: 7, t: 7, d: 3, sinks: 1, recent: 2 }, // grouped-query
  { b: 1, h: 2, g: 1, s: 3, t: 10, d: 4, sinks: 2, recent: 4 }, // queries end-aligned after a cache
  { b: 1, h: 2, g: 2, s: 6, t: 6, d: 2, sinks: 0, recent: 1 }, // streaming = attend to self only
];

function data(c: Case, seed: number) {
  const q = randomArray(c.b * c.h * c.s * c.d, seed, 1.5);
  const k = randomArray(c.b * c.g * c.t * c.d, seed + 1, 1.5);
  const v = randomArray(c.b * c.g * c.t * c.d, seed + 2);
  const alpha = Array.from(randomArray(c.g, seed + 3), (x) => (x + 1) / 2);
  return { q, k, v, alpha };
}

const tensors = (c: Case, x: ReturnType<typeof data>) => ({
  q: tf.tensor4d(Float32Array.from(x.q), [c.b, c.h, c.s, c.d]),
  k: tf.tensor4d(Float32Array.from(x.k), [c.b, c.g, c.t, c.d]),
  v: tf.tensor4d(Float32Array.from(x.v), [c.b, c.g, c.t, c.d]),
  alpha: tf.tensor1d(x.alpha),
});

describe.each(BACKENDS)('duoAttention on %s', (name) => {
  it('matches the float64 reference (MHA, GQA, end-aligned queries, window of one)', async () => {
    await useBackend(name);
    CASES.forEach((c, i) => {
      const x = data(c, 10 + i);
      const t = tensors(c, x);
      const out = duoAttention(t.q, t.k, t.v, t.alpha, c);
      const ref = duoAttentionReference(x.q, x.k, x.v, x.alpha, c, c);
      expectClose(out, ref, { rtol: 1e-4, atol: 1e-5 }, `case ${i}`);
      tf.dispose([out, t.q, t.k, t.v, t.alpha]);
    });
  });

  it('alpha = 1 is full causal attention, alpha = 0 is sink + recent attention', async () => {
    await useBackend(name);
    const c = CASES[0];
    const x = data(c, 3);
    const t = tensors(c, x);
    const ones = tf.ones([c.g]) as tf.Tensor1D;
    const zeros = tf.zeros([c.g]) as tf.Tensor1D;
    const a = duoAttention(t.q, t.k, t.v, ones, c);
    const full = sdpa(t.q, t.k, t.v, { mask: masks.causal() });
    const z = duoAttention(t.q, t.k, t.v, zeros, c);
    const stream = sdpa(t.q, t.k, t.v, { mask: masks.sinkWindow(c.sinks, c.recent) });
    expectClose(a, full, {}, 'alpha 1');
    expectClose(z, stream, {}, 'alpha 0');
    // The two differ on this case (otherwise the checks above could not fail).
    expect(tf.sub(full, stream).abs().max().dataSync()[0]).toBeGreaterThan(1e-3);
    tf.dispose([a, full, z, stream, ones, zeros, t.q, t.k, t.v, t.alpha]);
  });

  it('is causal: later keys and values do not change earlier outputs', async () => {
    await useBackend(name);
    const c = CASES[0];
    const x = data(c, 5);
    const y = { ...x, k: Float64Array.from(x.k), v: Float64Array.from(x.v) };
    const cut = 5;
    for (let bi = 0; bi < c.b; bi++)
      for (let gi = 0; gi < c.g; gi++)
        for (let j = cut; j < c.t; j++)
          for (let e = 0; e < c.d; e++) {
            y.k[((bi * c.g + gi) * c.t + j) * c.d + e] += 3;
            y.v[((bi * c.g + gi) * c.t + j) * c.d + e] -= 2;
          }
    const [t1, t2] = [tensors(c, x), tensors(c, y)];
    const [o1, o2] = [duoAttention(t1.q, t1.k, t1.v, t1.alpha, c), duoAttention(t2.q, t2.k, t2.v, t2.alpha, c)];
    const early = (o: tf.Tensor) => o.slice([0, 0, 0, 0], [c.b, c.h, cut, c.d]);
    expectClose(early(o2), early(o1), {}, 'prefix');
    expect(tf.sub(o1, o2).abs().max().dataSync()[0]).toBeGreaterThan(1e-3);
    tf.dispose([o1, o2, t1.q, t1.k, t1.v, t1.alpha, t2.q, t2.k, t2.v, t2.alpha]);
  });

  it('gradients w.r.t. q, k, v and alpha match float64 central differences', async () => {
    await useBackend(name);
    for (const c of [CASES[1], CASES[2]]) {
      const x = data(c, 21);
      const w = randomArray(c.b * c.h * c.s * c.d, 99);
      const f = () => {
        const o = duoAttentionReference(x.q, x.k, x.v, x.alpha, c, c);
        let acc = 0;
        for (let i = 0; i < o.length; i++) acc += o[i] * w[i];
        return acc;
      };
      const t = tensors(c, x);
      const wt = tf.tensor4d(Float32Array.from(w), [c.b, c.h, c.s, c.d]);
      const grads = tf.grads((q, k, v, a) =>
        duoAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, a as tf.Tensor1D, c)
          .mul(wt)
          .sum(),
      )([t.q, t.k, t.v, t.alpha]);
      const alpha = Float64Array.from(x.alpha);
      const xa = { ...x, alpha };
      const fa = () => {
        const o = duoAttentionReference(x.q, x.k, x.v, alpha, c, c);
        let acc = 0;
        for (let i = 0; i < o.length; i++) acc += o[i] * w[i];
        return acc;
      };
      const tol = { rtol: 2e-3, atol: 2e-4 };
      expectClose(grads[0], numericGrad(f, x.q), tol, 'dq');
      expectClose(grads[1], numericGrad(f, x.k), tol, 'dk');
      expectClose(grads[2], numericGrad(f, x.v), tol, 'dv');
      expectClose(grads[3], numericGrad(fa, xa.alpha), tol, 'dalpha');
      tf.dispose([...grads, wt, t.q, t.k, t.v, t.alpha]);
    }
  });

  it('leaks no tensors', async () => {
    await useBackend(name);
    const c = CASES[1];
    const t = tensors(c, data(c, 1));
    expectNoLeak(() => duoAttention(t.q, t.k, t.v, t.alpha, c).dispose());
    tf.dispose([t.q, t.k, t.v, t.alpha]);
  });
});

describe('duoAttention arguments', () => {
  it('rejects bad shapes and windows with the function, argument, expected and actual value', async () => {
    await useBackend('cpu');
    const q = tf.zeros([1, 2, 4, 3]) as tf.Tensor4D;
    const k = tf.zeros([1, 2, 4, 3]) as tf.Tensor4D;
    const a = tf.zeros([2]) as tf.Tensor1D;
    expect(() => duoAttention(q, k, k, tf.zeros([3]) as tf.Tensor1D, { sinks: 1, recent: 2 })).toThrow(
      /duoAttention: alpha must have shape \[kvHeads\] = \[2\], got \[3\]/,
    );
    expect(() => duoAttention(q, k, k, a, { sinks: -1, recent: 2 })).toThrow(
      /duoAttention: window.sinks must be an integer >= 0, got -1/,
    );
    expect(() => duoAttention(q, k, k, a, { sinks: 1, recent: 0 })).toThrow(
      /duoAttention: window.recent must be an integer >= 1, got 0/,
    );
    expect(() => duoAttention(tf.zeros([1, 3, 4, 3]) as tf.Tensor4D, k, k, a, { sinks: 1, recent: 2 })).toThrow(
      /query heads \(3\) must be a multiple of kv heads \(2\)/,
    );
    expect(() => duoAttention(tf.zeros([1, 2, 5, 3]) as tf.Tensor4D, k, k, a, { sinks: 1, recent: 2 })).toThrow(
      /5 queries but only 4 keys/,
    );
    expect(streamingAllows(3, 0, 4, 4, { sinks: 1, recent: 2 })).toBe(true);
    expect(streamingAllows(3, 1, 4, 4, { sinks: 1, recent: 2 })).toBe(false);
    expect(streamingAllows(3, 2, 4, 4, { sinks: 1, recent: 2 })).toBe(true);
    tf.dispose([q, k, a]);
  });
});

const MODEL = { vocab: 11, dModel: 16, heads: 2, layers: 2, maxLen: 24, seed: 3 };

describe('DuoAttention gates on a ToyLM', () => {
  it('gates 1 give the plain forward; gates 0 give a sink + recent model with the same weights', async () => {
    await useBackend('cpu');
    const model = new ToyLM(MODEL);
    const streaming = new ToyLM({ ...MODEL, window: 3, sinks: 2 });
    const tokens = tf.tensor2d(
      Array.from({ length: 2 * 14 }, (_, i) => (i * 7) % 11),
      [2, 14],
      'int32',
    );
    const plain = model.forward(tokens);
    const ones = tf.ones([2, 2]);
    let remove = applyDuoGates(model, ones, { sinks: 2, recent: 3 });
    const gated1 = model.forward(tokens);
    remove();
    const zeros = tf.zeros([2, 2]);
    remove = applyDuoGates(model, zeros, { sinks: 2, recent: 3 });
    const gated0 = model.forward(tokens);
    // with a KV cache (prefill 9, then one token at a time) the gated model gives the same logits as without
    const cache = model.newCache();
    const parts = [model.forward(tokens.slice([0, 0], [2, 9]), { cache })];
    for (let i = 9; i < 14; i++) parts.push(model.forward(tokens.slice([0, i], [2, 1]), { cache }));
    const cached = tf.concat(parts, 1);
    remove();
    const ref = streaming.forward(tokens);
    expectClose(gated1, plain, {}, 'gates 1');
    expectClose(gated0, ref, { rtol: 1e-4, atol: 2e-5 }, 'gates 0');
    expectClose(cached, gated0, { rtol: 1e-4, atol: 2e-5 }, 'gates 0, cached');
    expect(tf.sub(plain, ref).abs().max().dataSync()[0]).toBeGreaterThan(1e-4);
    expect(model.hooks.size).toBe(0);
    cache.dispose();
    tf.dispose([tokens, plain, ones, gated1, zeros, gated0, cached, ...parts, ref]);
    model.dispose();
    streaming.dispose();
  });

  it('rejects gates of the wrong shape', async () => {
    await useBackend('cpu');
    const model = new ToyLM(MODEL);
    const g = tf.ones([3, 2]);
    expect(() => applyDuoGates(model, g, { sinks: 1, recent: 2 })).toThrow(
      /applyDuoGates: gates must have shape \[layers, kvHeads\] = \[2,2\], got \[3,2\]/,
    );
    g.dispose();
    model.dispose();
  });

  it('distillLoss is the masked mean over positions of the mean squared difference', async () => {
    await useBackend('cpu');
    const a = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 4]);
    const b = tf.tensor3d([1, 2, 3, 4, 6, 6, 7, 10], [1, 2, 4]);
    const m = tf.tensor2d([[0, 1]]);
    const l = distillLoss(a, b, m);
    expect(l.dataSync()[0]).toBeCloseTo((1 + 4) / 4, 6);
    tf.dispose([a, b, m, l]);
  });

  it('optimiseGates: the L1 term closes gates whose heads lose nothing; the model is unchanged; no leaks', async () => {
    await useBackend('cpu');
    const model = new ToyLM(MODEL);
    const before = model.variables().map((v) => v.dataSync().slice());
    const batches = function* () {
      for (let i = 0; ; i++) {
        const inputs = tf.tensor2d(
          Array.from({ length: 2 * 8 }, (_, j) => (j * 5 + i) % 11),
          [2, 8],
          'int32',
        );
        const answerMask = tf.tensor2d(
          Array.from({ length: 16 }, (_, j) => (j % 8 >= 5 ? 1 : 0)),
          [2, 8],
        );
        yield { inputs, answerMask };
      }
    };
    // sinks + recent cover all 8 positions: streaming = full, the distillation loss is 0, only L1 acts.
    const warm = batches().next().value as { inputs: tf.Tensor2D; answerMask: tf.Tensor2D };
    model.forward(warm.inputs).dispose();
    tf.dispose([warm.inputs, warm.answerMask]);
    const n0 = tf.memory().numTensors;
    const free = await optimiseGates(model, { batches: batches(), steps: 25, window: { sinks: 2, recent: 8 } });
    expect(tf.memory().numTensors).toBe(n0);
    for (const row of free.gates) for (const a of row) expect(a).toBeLessThan(0.9);
    expect(free.finalDistill).toBeLessThan(1e-8);
    // a tiny window: distillation pushes back against L1 (gates end higher than with nothing to lose)
    const tight = await optimiseGates(model, {
      batches: batches(),
      steps: 25,
      window: { sinks: 0, recent: 1 },
      regWeight: 0.05,
    });
    for (const a of tight.gates.flat()) {
      expect(a).toBeGreaterThanOrEqual(0);
      expect(a).toBeLessThanOrEqual(1);
    }
    const meanOf = (g: number[][]) => g.flat().reduce((s, x) => s + x, 0) / g.flat().length;
    expect(meanOf(tight.gates)).toBeGreaterThan(meanOf(free.gates));
    model.variables().forEach((v, i) => expect(Array.from(v.dataSync())).toEqual(Array.from(before[i])));
    expect(model.hooks.size).toBe(0);
    model.dispose();
  });

  it('duoSchedule warms up, holds and decays to no less than 0.1', () => {
    expect(duoSchedule(0, 100)).toBeCloseTo(0.1, 6);
    expect(duoSchedule(9, 100)).toBeCloseTo(0.5, 6);
    expect(duoSchedule(50, 100)).toBe(1);
    expect(duoSchedule(99, 100)).toBeCloseTo(0.1, 6);
  });

  it('headsFromGates keeps the largest fraction, ties to the lower index', () => {
    expect(
      headsFromGates(
        [
          [0.9, 0.1],
          [0.5, 0.5],
        ],
        0.5,
      ),
    ).toEqual([
      [true, false],
      [true, false],
    ]);
    expect(headsFromGates([[0.2, 0.3]], 0)).toEqual([[false, false]]);
    expect(() => headsFromGates([[1]], 1.5)).toThrow(/headsFromGates: fraction must be in \[0, 1\], got 1.5/);
  });
});

describe('DuoAttention deployed (decodeDuo)', () => {
  it('all streaming heads = a sink + recent model; all retrieval heads = the full model; bytes measured', async () => {
    await useBackend('cpu');
    const cfg = { vocab: 24, dModel: 16, heads: 2, layers: 2, maxLen: 20, positional: 'rope' as const, seed: 5 };
    const model = new ToyLM(cfg);
    const streaming = new ToyLM({ ...cfg, window: 4, sinks: 2 });
    const batch = needleTask({
      batch: 4,
      seqLen: 20,
      needles: 2,
      valueLen: 2,
      keys: 4,
      values: 6,
      vocabSize: 24,
      seed: 9,
      split: 'validation',
    });
    const set = needleEvalSet(batch);
    const inputs = tf.tensor2d(batch.inputs, [4, 20], 'int32');
    const argmaxOf = (m: ToyLM) => {
      const l = m.forward(inputs);
      const a = l.argMax(-1).arraySync() as number[][];
      l.dispose();
      return a;
    };
    const Q = set.prompt.shape[1];
    const check = (tokens: number[][], ref: number[][]) =>
      tokens.forEach((row, b) => row.forEach((tok, t) => expect(tok, `row ${b} step ${t}`).toBe(ref[b][Q - 1 + t])));
    const window = { sinks: 2, recent: 4 };
    const none = [
      [false, false],
      [false, false],
    ];
    const all = [
      [true, true],
      [true, true],
    ];
    const s = decodeDuo(model, set.prompt, set.steps, none, window, { teacher: set.teacher });
    const f = decodeDuo(model, set.prompt, set.steps, all, window, { teacher: set.teacher });
    expectNoLeak(() => {
      decodeDuo(model, set.prompt, set.steps, none, window, { teacher: set.teacher });
      decodeDuo(model, set.prompt, set.steps, all, window, { teacher: set.teacher });
    }, 1);
    check(s.tokens, argmaxOf(streaming));
    check(f.tokens, argmaxOf(model));
    // streaming heads hold sinks + recent - 1 tokens (float32 keys and values, 4 rows, 2 layers x 2 heads, dim 8)
    expect(s.stored.flat().every((n) => n === 2 + 3)).toBe(true);
    expect(s.bytes[s.bytes.length - 1]).toBe(4 * 2 * 2 * 5 * 8 * 4 * 2);
    expect(f.bytes[f.bytes.length - 1]).toBe(4 * 2 * 2 * (Q + set.steps - 1) * 8 * 4 * 2);
    expect(model.hooks.size).toBe(0);
    expect(() => decodeDuo(model, set.prompt, 2, [[true]], window)).toThrow(
      /decodeDuo: retrieval must be a \[layers 2\]\[kvHeads 2\]/,
    );
    expect(() => duoPolicy(none, { sinks: 1, recent: 1 })).toThrow(/duoPolicy: window must be/);
    tf.dispose(inputs);
    set.dispose();
    model.dispose();
    streaming.dispose();
  });
});

describe('kv-budget evaluation', () => {
  it('the full policy through the cache predicts what one teacher-forced forward pass predicts', async () => {
    await useBackend('cpu');
    const model = new ToyLM({ vocab: 24, dModel: 16, heads: 2, layers: 2, maxLen: 20, positional: 'rope', seed: 1 });
    const batch = needleTask({
      batch: 6,
      seqLen: 20,
      needles: 2,
      valueLen: 2,
      keys: 4,
      values: 6,
      vocabSize: 24,
      seed: 3,
      split: 'test',
    });
    const set = needleEvalSet(batch);
    const d = decodeWithPolicy(model, set.prompt, set.steps, new FullPolicy(), { teacher: set.teacher });
    const inputs = tf.tensor2d(batch.inputs, [6, 20], 'int32');
    const logits = model.forward(inputs);
    const argmax = logits.argMax(-1).arraySync() as number[][];
    batch.rows.forEach((r, b) =>
      r.values.forEach((_, i) => expect(d.tokens[b][set.answerSteps[i]]).toBe(argmax[b][r.answerStart + i])),
    );
    // the graded targets are the needle's values
    batch.rows.forEach((r, b) => expect(set.answers[b]).toEqual(r.values));
    for (let i = 0; i < set.answerSteps.length; i++)
      expect(batch.targets[0 * 20 + batch.rows[0].answerStart + i]).toBe(batch.rows[0].values[i]);
    const score = scoreDecode(set, d);
    expect(score.bytes.length).toBe(set.steps);
    tf.dispose([inputs, logits]);
    set.dispose();
    model.dispose();
  });

  it('retrievalHeadCount spends the budget on full heads beyond the streaming tokens', () => {
    expect(retrievalHeadCount(0.5, 40, 8, 16)).toBe(Math.round((16 * (20 - 8)) / 32));
    expect(retrievalHeadCount(0.1, 40, 8, 16)).toBe(0);
    expect(retrievalHeadCount(0.99, 40, 8, 16)).toBe(16);
  });
});

describe('kv-budget experiment', () => {
  it('runs with tiny overrides: every policy at every budget on both tasks, measured bytes below full, no leaks', async () => {
    await useBackend(BACKENDS[BACKENDS.length - 1]);
    const n0 = tf.memory().numTensors;
    const r = await runExperimentWith(kvBudget, {
      quick: true,
      progress: false,
      overrides: {
        steps: 6,
        batch: 8,
        repeatRows: 4,
        traceRows: 4,
        gateSteps: 2,
        gateBatch: 4,
        validationRows: 8,
        testRows: 12,
        randomDraws: 1,
        lazyWindows: [4],
        budgets: [0.3, 0.7],
      },
    });
    expect(tf.memory().numTensors).toBe(n0);
    const rows = r.tables?.budgets ?? [];
    const policies = [
      'window',
      'sinks',
      'h2o',
      'lazy-eviction',
      'duo-gates',
      'duo-retrieval-score',
      'duo-random',
      'razor',
      'razor-no-compensation',
    ];
    for (const task of ['needle', 'trace']) {
      expect(rows.find((x) => x.task === task && x.policy === 'full')?.kv_fraction).toBe(1);
      for (const b of [0.3, 0.7])
        for (const p of policies) {
          const row = rows.find((x) => x.task === task && x.policy === p && x.budget === b);
          expect(row, `${task} ${p} ${b}`).toBeDefined();
          expect(row!.kv_fraction as number).toBeGreaterThan(0);
          expect(row!.kv_fraction as number).toBeLessThan(b === 0.3 ? 0.75 : 1);
          expect(row!.test_accuracy as number).toBeGreaterThanOrEqual(0);
        }
      // the smaller budget stores fewer bytes than the larger one, for the cache-size policies
      for (const p of ['window', 'sinks', 'h2o'])
        expect(
          rows.find((x) => x.task === task && x.policy === p && x.budget === 0.3)!.kv_fraction as number,
        ).toBeLessThan(rows.find((x) => x.task === task && x.policy === p && x.budget === 0.7)!.kv_fraction as number);
    }
    expect(r.metrics.test_accuracy_needle_full).toBeGreaterThanOrEqual(0);
    expect(r.metrics.test_accuracy_trace_full).toBeGreaterThanOrEqual(0);
    expect((r.references ?? []).map((x) => x.metric)).toContain('test_kv_saved_needle_razor_30');
    expect(r.tables?.heads?.length).toBe(8);
  }, 90000);

  it('rejects a bad config before any work', async () => {
    await expect(runExperimentWith(kvBudget, { quick: true, overrides: { budgets: [1.5] } })).rejects.toThrow(
      /budgets/,
    );
  });
});

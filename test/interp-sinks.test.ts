import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { sinkEmergence } from '../lib/papers/interp/sinks/experiment.js';
import {
  importance,
  importanceNaive,
  proxyWeights,
  SINK_VARIANTS,
  type SinkVariant,
  sinkAttention,
  sinkAttentionNaive,
  sinkRate,
} from '../lib/papers/interp/sinks/index.js';
import { SinkLM } from '../lib/papers/interp/sinks/model.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const [B, H, S, D] = [2, 2, 5, 4];
const SHAPE: [number, number, number, number] = [B, H, S, D];
const N = B * H * S * D;

/** A hand-made causal pattern [1, 2, 4, 4]: head 0 puts `p` on key 0 in every row, head 1 attends to itself. */
function handPattern(p: number): tf.Tensor4D {
  const S4 = 4;
  const w = new Float32Array(2 * S4 * S4);
  for (let t = 0; t < S4; t++) {
    if (t === 0) w[0] = 1;
    else {
      w[t * S4] = p;
      for (let j = 1; j <= t; j++) w[t * S4 + j] = (1 - p) / t;
    }
    w[S4 * S4 + t * S4 + t] = 1;
  }
  return tf.tensor4d(w, [1, 2, S4, S4]);
}

describe.each(BACKENDS)('sink metrics and attention variants on %s', (backendName) => {
  beforeAll(async () => {
    await useBackend(backendName);
  });

  it('importance: the mean attention a key gets from the queries that see it, on patterns with a known answer', () => {
    const w = handPattern(0.5);
    // Head 0: rows 0..3 give key 0 the masses 1, 0.5, 0.5, 0.5 -> 0.625; head 1 (self-attention) gives it 1 / 4.
    expectClose(importance(w, 0), [0.625, 0.25], { atol: 1e-6 }, 'key 0');
    // Key 2 is seen by rows 2 and 3: head 0 gives it (0.25 + 1/6) / 2, head 1 gives (1 + 0) / 2.
    expectClose(importance(w, 2), [(0.25 + 0.5 / 3) / 2, 0.5], { atol: 1e-6 }, 'key 2');
    expectClose(importance(w, 0), importanceNaive(w.dataSync(), [1, 2, 4, 4], 0), { atol: 1e-6 }, 'vs naive');
    w.dispose();
  });

  it('importance matches the float64 reference on random softmax weights', () => {
    const q = tf.tensor4d(Float32Array.from(randomArray(N, 1)), SHAPE);
    const k = tf.tensor4d(Float32Array.from(randomArray(N, 2)), SHAPE);
    const { output, weights } = sinkAttention(q, k, k, { variant: 'softmax' });
    for (const key of [0, 1, 4]) {
      const got = importance(weights, key);
      expectClose(got, importanceNaive(weights.dataSync(), [B, H, S, S], key), {}, `key ${key}`);
      got.dispose();
    }
    tf.dispose([q, k, output, weights]);
  });

  it('sinkRate counts heads above epsilon, in %', () => {
    expect(
      sinkRate([
        [0.9, 0.1],
        [0.31, 0.3],
      ]),
    ).toBe(50);
    expect(
      sinkRate(
        [
          [0.9, 0.1],
          [0.31, 0.3],
        ],
        0.05,
      ),
    ).toBe(100);
    expect(sinkRate([[0.2]])).toBe(0);
    expect(() => sinkRate([])).toThrow(/sinkRate: importances is empty/);
    expect(() => sinkRate([[0.5]], 1.5)).toThrow(/sinkRate: epsilon must be in \[0, 1\], got 1.5/);
    expect(() => sinkRate([[Number.NaN]])).toThrow(/finite numbers, got NaN/);
  });

  it('a sink pattern scores 100% and a diagonal one 0% (the paper metric on known patterns)', () => {
    const sink = handPattern(0.9);
    const imp = importance(sink, 0);
    const [h0, h1] = Array.from(imp.dataSync());
    expect(sinkRate([[h0]])).toBe(100); // 0.925 > 0.3
    expect(sinkRate([[h1]])).toBe(0); // 0.25 <= 0.3
    tf.dispose([sink, imp]);
  });

  it.each(SINK_VARIANTS as SinkVariant[])(
    '%s attention: outputs and weights match the float64 reference',
    (variant) => {
      const qa = randomArray(N, 11);
      const ka = randomArray(N, 12);
      const va = randomArray(N, 13);
      const kb = randomArray(H * D, 14);
      const vb = randomArray(H * D, 15);
      const [q, k, v] = [qa, ka, va].map((a) => tf.tensor4d(Float32Array.from(a), SHAPE));
      const kBias = tf.tensor2d(Float32Array.from(kb), [H, D]);
      const vBias = tf.tensor2d(Float32Array.from(vb), [H, D]);
      const r = sinkAttention(q, k, v, { variant, kBias, vBias });
      const ref = sinkAttentionNaive(qa, ka, va, SHAPE, { variant, kBias: kb, vBias: vb });
      expectClose(r.output, ref.output, {}, `${variant} output`);
      expectClose(r.weights, ref.weights, {}, `${variant} weights`);
      // Normalised variants sum to 1 per row (including the bias slot); the plain sigmoid does not.
      const sums = r.weights.sum(-1);
      const rows = Array.from(sums.dataSync());
      if (variant === 'sigmoid') expect(Math.max(...rows)).toBeGreaterThan(1.01);
      else expectClose(rows, new Array(rows.length).fill(1), { atol: 1e-5 }, `${variant} row sums`);
      tf.dispose([q, k, v, kBias, vBias, r.output, r.weights, sums]);
    },
  );

  it.each(SINK_VARIANTS as SinkVariant[])('%s attention: gradients match the float64 reference', (variant) => {
    const qa = randomArray(N, 21);
    const ka = randomArray(N, 22);
    const va = randomArray(N, 23);
    const kb = randomArray(H * D, 24);
    const vb = randomArray(H * D, 25);
    const ra = randomArray(N, 26); // d loss / d output
    const f64 = () => {
      const o = sinkAttentionNaive(qa, ka, va, SHAPE, { variant, kBias: kb, vBias: vb }).output;
      return o.reduce((acc, x, i) => acc + x * ra[i], 0);
    };
    const R = tf.tensor4d(Float32Array.from(ra), SHAPE);
    const f = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, kBias: tf.Tensor, vBias: tf.Tensor) =>
      sinkAttention(q, k, v, { variant, kBias, vBias }).output.mul(R).sum() as tf.Scalar;
    const inputs = [
      tf.tensor4d(Float32Array.from(qa), SHAPE),
      tf.tensor4d(Float32Array.from(ka), SHAPE),
      tf.tensor4d(Float32Array.from(va), SHAPE),
      tf.tensor2d(Float32Array.from(kb), [H, D]),
      tf.tensor2d(Float32Array.from(vb), [H, D]),
    ];
    // The biases take part in kv-bias only (tf.grads refuses inputs that do not reach the output).
    const used = variant === 'kv-bias' ? 5 : 3;
    const grads = tf.grads((...xs: tf.Tensor[]) => f(xs[0], xs[1], xs[2], inputs[3], inputs[4]))(inputs.slice(0, 3));
    if (used === 5)
      grads.push(
        ...tf.grads((kBias: tf.Tensor, vBias: tf.Tensor) => f(inputs[0], inputs[1], inputs[2], kBias, vBias))([
          inputs[3],
          inputs[4],
        ]),
      );
    const arrays = [qa, ka, va, kb, vb];
    const names = ['q', 'k', 'v', 'kBias', 'vBias'];
    grads.forEach((g, i) => {
      expectClose(g, numericGrad(f64, arrays[i]), { rtol: 1e-3, atol: 1e-4 }, `${variant} d/d${names[i]}`);
    });
    tf.dispose([R, ...inputs, ...grads]);
  });

  it('attention is causal: changing a later key or value leaves earlier outputs unchanged', () => {
    for (const variant of SINK_VARIANTS) {
      const q = tf.tensor4d(Float32Array.from(randomArray(N, 31)), SHAPE);
      const k = tf.tensor4d(Float32Array.from(randomArray(N, 32)), SHAPE);
      const v = tf.tensor4d(Float32Array.from(randomArray(N, 33)), SHAPE);
      const bias = tf.tensor2d(Float32Array.from(randomArray(H * D, 34)), [H, D]);
      const k2 = k.clone();
      const v2 = tf.tidy(() => tf.concat([v.slice([0, 0, 0, 0], [-1, -1, S - 1, -1]), tf.fill([B, H, 1, D], 7)], 2));
      const k3 = tf.tidy(() => tf.concat([k.slice([0, 0, 0, 0], [-1, -1, S - 1, -1]), tf.fill([B, H, 1, D], -3)], 2));
      const a = sinkAttention(q, k2, v, { variant, kBias: bias, vBias: bias });
      const b = sinkAttention(q, k3, v2, { variant, kBias: bias, vBias: bias });
      const early = (t: tf.Tensor) => t.slice([0, 0, 0, 0], [-1, -1, S - 1, -1]);
      const [ea, eb] = [early(a.output), early(b.output)];
      expectClose(ea, eb, { atol: 1e-6 }, `${variant} causal`);
      tf.dispose([q, k, v, bias, k2, v2, k3, a.output, a.weights, b.output, b.weights, ea, eb]);
    }
  });

  it('proxyWeights normalises rows; bad input names the function and the argument', () => {
    const w = tf.tensor4d([0.5, 0.5, 0, 1, 1, 2, 0, 0], [1, 1, 2, 4]);
    const pw = proxyWeights(w);
    expectClose(pw, [0.25, 0.25, 0, 0.5, 1 / 3, 2 / 3, 0, 0], { atol: 1e-6 });
    const q = tf.zeros([1, 2, 3, 4]);
    const k = tf.zeros([1, 2, 4, 4]);
    expect(() => sinkAttention(q, k, k, { variant: 'softmax' })).toThrow(
      /sinkAttention: q, k and v must have the same shape/,
    );
    expect(() => sinkAttention(q, q, q, { variant: 'kv-bias' })).toThrow(
      /sinkAttention: variant 'kv-bias' needs options.kBias of shape \[2, 4\].*got nothing/,
    );
    expect(() => sinkAttention(q, q, q, { variant: 'tanh' as SinkVariant })).toThrow(
      /variant must be one of .*got 'tanh'/,
    );
    expect(() => importance(w, 0)).toThrow(/importance: weights must have shape .* got \[1,1,2,4\]/);
    expect(() => importance(handPattern(0.5), 4)).toThrow(
      /importance: key must be an integer position in \[0, 3\], got 4/,
    );
    tf.dispose([w, pw, q, k]);
  });

  it('leaks no tensors', () => {
    const q = tf.tensor4d(Float32Array.from(randomArray(N, 41)), SHAPE);
    const bias = tf.tensor2d(Float32Array.from(randomArray(H * D, 42)), [H, D]);
    expectNoLeak(() => {
      for (const variant of SINK_VARIANTS) {
        const r = sinkAttention(q, q, q, { variant, kBias: bias, vBias: bias });
        const tokens = variant === 'kv-bias' ? r.weights.slice([0, 0, 0, 1]) : r.weights;
        const i = importance(tokens, 0);
        tf.dispose([r.output, r.weights, tokens, i]);
      }
    });
    tf.dispose([q, bias]);
  });
});

describe('SinkLM', () => {
  beforeAll(async () => {
    await useBackend(BACKENDS[BACKENDS.length - 1]); // the fastest one here
  });

  it('is causal, records one pattern per layer and applies an edit to the weights', () => {
    const model = new SinkLM({ vocab: 11, dModel: 8, heads: 2, layers: 2, maxLen: 6, variant: 'kv-bias', seed: 3 });
    const a = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
    const b = tf.tensor2d([[1, 2, 3, 4, 5, 9]], [1, 6], 'int32');
    const ra = model.forward(a, { record: true });
    const rb = model.forward(b);
    expect(ra.weights.map((w) => w.shape)).toEqual([
      [1, 2, 6, 7],
      [1, 2, 6, 7],
    ]);
    const early = (t: tf.Tensor) => t.slice([0, 0, 0], [1, 5, -1]);
    expectClose(early(ra.logits), early(rb.logits), { atol: 1e-6 }, 'causal');
    // The edit reaches the values: zeroing every weight changes the logits.
    const edited = model.forward(a, { edit: (_l, w) => w.mul(0) as tf.Tensor4D });
    expect(Array.from(edited.logits.dataSync()).some((x, i) => Math.abs(x - ra.logits.dataSync()[i]) > 1e-6)).toBe(
      true,
    );
    expect(model.variables().length).toBeGreaterThan(10);
    expect(() => model.forward(tf.zeros([1, 7], 'int32'))).toThrow(
      /SinkLM.forward: tokens must have shape .*1..6 positions/,
    );
    expect(
      () => new SinkLM({ vocab: 11, dModel: 9, heads: 2, layers: 1, maxLen: 4, variant: 'softmax', seed: 0 }),
    ).toThrow(/SinkLM: config.dModel \(9\) must be divisible by config.heads \(2\)/);
    tf.dispose([a, b, ra.logits, rb.logits, edited.logits, ...ra.weights]);
    model.dispose();
  });
});

describe('sink-emergence experiment', () => {
  beforeAll(async () => {
    await useBackend(BACKENDS[BACKENDS.length - 1]); // the fastest one here
  });

  it('runs tiny, reports split-named metrics, curves and references', async () => {
    const r = await runExperimentWith(sinkEmergence, {
      quick: true,
      keep: true,
      overrides: {
        layers: 1,
        dModel: 8,
        heads: 2,
        seqLen: 8,
        batch: 4,
        steps: 4,
        evalEvery: 2,
        evalWindows: 4,
        testWindows: 8,
      },
    });
    for (const v of ['softmax', 'sigmoid', 'sigmoid_norm', 'kv_bias']) {
      expect(r.metrics[`test_sink1_${v}`]).toBeGreaterThanOrEqual(0);
      expect(r.metrics[`test_sink1_${v}`]).toBeLessThanOrEqual(100);
      expect(Number.isFinite(r.metrics[`validation_loss_${v}`])).toBe(true);
      // Bootstrap CIs over the test windows.
      expect(r.metrics[`test_sink1_${v}_ci95`]).toBeGreaterThanOrEqual(0);
      expect(r.metrics[`test_first_token_importance_${v}_ci95`]).toBeGreaterThanOrEqual(0);
    }
    expect(r.metrics.test_bias_sink_kv_bias).toBeGreaterThanOrEqual(0);
    const a = r.artifacts!;
    expect(a.models.map((m) => m.curve.map((p) => p.step))).toEqual(new Array(4).fill([2, 4]));
    expect(a.testInputs.shape).toEqual([8, 8]);
    expect(r.references!.map((x) => x.metric)).toContain('test_sink1_softmax');
    expect(r.tables!.variants).toHaveLength(4);
    a.dispose();
  });
});

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Dense, type NaiveOptions, naiveAttention, type SdpaOptions, sdpa } from '../lib/attention/index.js';
import * as masks from '../lib/masks/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

interface Case {
  name: string;
  b: number;
  h: number;
  g: number;
  q: number;
  k: number;
  d: number;
  e?: number;
  mask?: masks.Mask;
  scoring?: SdpaOptions['scoring'];
  bias?: boolean;
}

const CASES: Case[] = [
  { name: 'no mask', b: 2, h: 2, g: 2, q: 5, k: 5, d: 4 },
  { name: 'causal', b: 2, h: 2, g: 2, q: 6, k: 6, d: 4, mask: masks.causal() },
  { name: 'causal, queries < keys (KV cache)', b: 1, h: 2, g: 2, q: 2, k: 7, d: 4, mask: masks.causal() },
  { name: 'sliding window', b: 1, h: 2, g: 2, q: 7, k: 7, d: 4, mask: masks.slidingWindow(3) },
  { name: 'sink + window', b: 1, h: 2, g: 2, q: 7, k: 7, d: 4, mask: masks.sinkWindow(1, 2) },
  { name: 'padding (one row fully masked)', b: 3, h: 2, g: 2, q: 4, k: 5, d: 4, mask: masks.padding([5, 2, 0]) },
  { name: 'block diagonal', b: 1, h: 2, g: 2, q: 7, k: 7, d: 4, mask: masks.blockDiagonal([3, 4]) },
  { name: 'causal & padding', b: 2, h: 2, g: 2, q: 5, k: 5, d: 4, mask: masks.causal().and(masks.padding([5, 3])) },
  { name: 'GQA 4 heads on 2 kv heads, value dim 3', b: 2, h: 4, g: 2, q: 4, k: 6, d: 4, e: 3, mask: masks.causal() },
  { name: 'MQA 3 heads on 1 kv head', b: 1, h: 3, g: 1, q: 4, k: 4, d: 4 },
  { name: 'sigmoid scoring, causal', b: 1, h: 2, g: 2, q: 5, k: 5, d: 4, mask: masks.causal(), scoring: 'sigmoid' },
  {
    name: 'softmax with sink logit, sliding',
    b: 2,
    h: 2,
    g: 1,
    q: 5,
    k: 5,
    d: 4,
    mask: masks.slidingWindow(2),
    scoring: 'softmax-sink',
  },
  { name: 'additive bias', b: 1, h: 2, g: 2, q: 4, k: 6, d: 4, bias: true, mask: masks.causal() },
];

const f32 = (a: Float64Array, shape: number[]) => tf.tensor(Float32Array.from(a), shape);

function setup(c: Case, seed: number) {
  const e = c.e ?? c.d;
  const qa = randomArray(c.b * c.h * c.q * c.d, seed + 1);
  const ka = randomArray(c.b * c.g * c.k * c.d, seed + 2);
  const va = randomArray(c.b * c.g * c.k * e, seed + 3);
  const ba = c.bias ? randomArray(c.h * c.q * c.k, seed + 4) : undefined;
  const sa = c.scoring === 'softmax-sink' ? randomArray(c.h, seed + 5) : undefined;
  const ra = randomArray(c.b * c.h * c.q * e, seed + 6); // loss weights: loss = Σ out * r
  const shapes = { q: [c.b, c.h, c.q, c.d], k: [c.b, c.g, c.k, c.d], v: [c.b, c.g, c.k, e], bias: [1, c.h, c.q, c.k] };
  return { e, qa, ka, va, ba, sa, ra, shapes };
}

describe.each(BACKENDS)('sdpa on %s', (name) => {
  beforeAll(async () => useBackend(name));

  it.each(CASES)('$name: output and weights equal the naive reference', (c) => {
    const s = setup(c, 11);
    const naiveOpts: NaiveOptions = {
      mask: c.mask,
      scoring: c.scoring,
      sinkLogit: s.sa,
      bias: s.ba ? { data: s.ba, shape: s.shapes.bias } : undefined,
    };
    const ref = naiveAttention(
      { data: s.qa, shape: s.shapes.q },
      { data: s.ka, shape: s.shapes.k },
      { data: s.va, shape: s.shapes.v },
      naiveOpts,
    );
    tf.tidy(() => {
      const { output, weights } = sdpa(f32(s.qa, s.shapes.q), f32(s.ka, s.shapes.k), f32(s.va, s.shapes.v), {
        mask: c.mask,
        scoring: c.scoring,
        sinkLogit: s.sa ? f32(s.sa, [c.h]) : undefined,
        bias: s.ba ? f32(s.ba, s.shapes.bias) : undefined,
        returnWeights: true,
      });
      expect(output.shape).toEqual([c.b, c.h, c.q, s.e]);
      expect(weights.shape).toEqual([c.b, c.h, c.q, c.k]);
      expect(Array.from(output.dataSync()).some(Number.isNaN)).toBe(false);
      expectClose(output, ref.output, {}, `${c.name} output`);
      expectClose(weights, ref.weights, {}, `${c.name} weights`);
    });
  });

  it.each(CASES)('$name: gradients equal finite differences of the naive reference', (c) => {
    const s = setup(c, 23);
    const dense = (data: Float64Array, shape: number[]): Dense => ({ data, shape });
    const lossOf = () => {
      const { output } = naiveAttention(dense(s.qa, s.shapes.q), dense(s.ka, s.shapes.k), dense(s.va, s.shapes.v), {
        mask: c.mask,
        scoring: c.scoring,
        sinkLogit: s.sa,
        bias: s.ba ? dense(s.ba, s.shapes.bias) : undefined,
      });
      let l = 0;
      for (let i = 0; i < output.length; i++) l += output[i] * s.ra[i];
      return l;
    };
    const inputs: [string, Float64Array, number[]][] = [
      ['q', s.qa, s.shapes.q],
      ['k', s.ka, s.shapes.k],
      ['v', s.va, s.shapes.v],
    ];
    if (s.ba) inputs.push(['bias', s.ba, s.shapes.bias]);
    if (s.sa) inputs.push(['sinkLogit', s.sa, [c.h]]);
    const expected = inputs.map(([, arr]) => numericGrad(lossOf, arr));
    tf.tidy(() => {
      const r = f32(s.ra, [c.b, c.h, c.q, s.e]);
      const f = (...xs: tf.Tensor[]) => {
        const byName = Object.fromEntries(inputs.map(([n], i) => [n, xs[i]]));
        return sdpa(byName.q, byName.k, byName.v, {
          mask: c.mask,
          scoring: c.scoring,
          sinkLogit: byName.sinkLogit,
          bias: byName.bias,
        })
          .mul(r)
          .sum() as tf.Scalar;
      };
      const grads = tf.grads(f)(inputs.map(([, arr, shape]) => f32(arr, shape)));
      grads.forEach((g, i) => expectClose(g, expected[i], { rtol: 2e-3, atol: 2e-4 }, `${c.name} d${inputs[i][0]}`));
    });
  });

  it('fully masked rows give zeros, not NaN, in outputs and gradients', () => {
    tf.tidy(() => {
      const q = tf.randomNormal([1, 1, 3, 4], 0, 1, 'float32', 1);
      const k = tf.randomNormal([1, 1, 3, 4], 0, 1, 'float32', 2);
      const v = tf.randomNormal([1, 1, 3, 4], 0, 1, 'float32', 3);
      const mask = masks.padding([0]);
      expect(Array.from(sdpa(q, k, v, { mask }).dataSync())).toEqual(new Array(12).fill(0));
      const g = tf.grad((x: tf.Tensor) => sdpa(x, k, v, { mask }).sum())(q);
      expect(Array.from(g.dataSync())).toEqual(new Array(12).fill(0));
    });
  });

  it('accepts a bool tensor mask equal to the typed mask', () => {
    tf.tidy(() => {
      const q = tf.randomNormal([2, 2, 5, 4], 0, 1, 'float32', 4);
      const k = tf.randomNormal([2, 2, 5, 4], 0, 1, 'float32', 5);
      const v = tf.randomNormal([2, 2, 5, 4], 0, 1, 'float32', 6);
      const m = masks.causal();
      expectClose(sdpa(q, k, v, { mask: m.materialize(5, 5) }), sdpa(q, k, v, { mask: m }), {}, 'tensor mask');
    });
  });

  it('does not leak tensors', () => {
    const q = tf.randomNormal([1, 4, 8, 8]);
    const k = tf.randomNormal([1, 2, 8, 8]);
    const v = tf.randomNormal([1, 2, 8, 8]);
    const sink = tf.zeros([4]);
    expectNoLeak(() => sdpa(q, k, v, { mask: masks.causal() }).dispose());
    expectNoLeak(() => {
      const r = sdpa(q, k, v, {
        mask: masks.slidingWindow(2),
        returnWeights: true,
        scoring: 'softmax-sink',
        sinkLogit: sink,
      });
      r.output.dispose();
      r.weights.dispose();
    });
    expectNoLeak(() =>
      tf
        .grads((a: tf.Tensor, b: tf.Tensor) => sdpa(a, b, v, { mask: masks.causal() }).sum())([q, k])
        .forEach((g) => g.dispose()),
    );
    tf.dispose([q, k, v, sink]);
  });
});

describe.each(BACKENDS)('sdpa argument errors on %s', (name) => {
  beforeAll(async () => useBackend(name));
  const t = (shape: number[]) => tf.zeros(shape);
  it('names the arguments and both shapes', () => {
    expect(() => sdpa(t([2, 4, 16, 8]), t([2, 4, 16, 16]), t([2, 4, 16, 16]))).toThrow(
      'sdpa: q has shape [2,4,16,8] but k has [2,4,16,16]; head dims must match',
    );
    expect(() => sdpa(t([2, 16, 8]), t([2, 4, 16, 8]), t([2, 4, 16, 8]))).toThrow(
      'sdpa: q must have rank 4 [batch, heads, queries, dim], but has shape [2,16,8]',
    );
    expect(() => sdpa(t([1, 3, 4, 8]), t([1, 2, 4, 8]), t([1, 2, 4, 8]))).toThrow('kvHeads must divide heads');
    expect(() => sdpa(t([1, 2, 4, 8]), t([1, 2, 4, 8]), t([1, 2, 5, 8]))).toThrow(
      'k has shape [1,2,4,8] but v has [1,2,5,8]',
    );
    expect(() => sdpa(t([1, 2, 4, 8]), t([1, 2, 4, 8]), t([1, 2, 4, 8]), { mask: masks.padding([1, 2]) })).toThrow(
      'is for batch 2, but q has batch 1',
    );
    expect(() => sdpa(t([1, 2, 4, 8]), t([1, 2, 4, 8]), t([1, 2, 4, 8]), { bias: t([3, 4, 4]) })).toThrow(
      'sdpa: bias has shape [3,4,4]',
    );
    expect(() => sdpa(t([0, 2, 4, 8]), t([0, 2, 4, 8]), t([0, 2, 4, 8]))).toThrow('sdpa: q is empty');
    expect(() => sdpa(t([1, 2, 4, 8]), t([1, 2, 4, 8]), t([1, 2, 4, 8]), { scoring: 'softmax-sink' })).toThrow(
      'needs options.sinkLogit of shape [2]',
    );
    expect(() => sdpa(t([1, 2, 4, 8]), t([1, 2, 3, 8]), t([1, 2, 3, 8]), { mask: masks.causal() })).toThrow(
      'keys must be an integer >= queries',
    );
  });
});

describe('masks', () => {
  it('materialize end-aligns queries with keys', () => {
    expect(masks.causal().toArray(2, 4)).toEqual([
      [1, 1, 1, 0],
      [1, 1, 1, 1],
    ]);
    expect(masks.slidingWindow(2).toArray(4)).toEqual([
      [1, 0, 0, 0],
      [1, 1, 0, 0],
      [0, 1, 1, 0],
      [0, 0, 1, 1],
    ]);
    expect(masks.sinkWindow(1, 1).toArray(4)).toEqual([
      [1, 0, 0, 0],
      [1, 1, 0, 0],
      [1, 0, 1, 0],
      [1, 0, 0, 1],
    ]);
    expect(masks.blockDiagonal([1, 2]).toArray(3)).toEqual([
      [1, 0, 0],
      [0, 1, 1],
      [0, 1, 1],
    ]);
    expect(masks.padding([2, 3]).toArray(3, 3, 0)).toEqual([
      [1, 1, 0],
      [1, 1, 0],
      [1, 1, 0],
    ]);
  });
  it('intersection composes and flattens', () => {
    const m = masks.causal().and(masks.padding([2]), masks.slidingWindow(5));
    expect(m.spec.kind).toBe('and');
    expect(m.describe()).toBe('causal & padding([2]) & slidingWindow(5)');
    expect(m.toArray(3)).toEqual([
      [1, 0, 0],
      [1, 1, 0],
      [1, 1, 0],
    ]);
    const t = m.materialize(3, 3);
    expect(t.shape).toEqual([1, 1, 3, 3]);
    expect(t.dtype).toBe('bool');
    t.dispose();
  });
  it('rejects bad arguments with the argument named', () => {
    expect(() => masks.slidingWindow(0)).toThrow('masks.slidingWindow: window must be a positive integer, got 0');
    expect(() => masks.padding([3, -1])).toThrow('masks.padding: lengths[1] must be an integer >= 0, got -1');
    expect(() => masks.blockDiagonal([2, 2]).materialize(3, 3)).toThrow('sum to 4, but there are 3 keys');
    expect(() => masks.padding([5]).materialize(3, 3)).toThrow('lengths[0] = 5 exceeds the 3 keys');
    expect(() => masks.and(masks.padding([1]), masks.padding([1, 2]))).toThrow('different batch sizes');
  });
});

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { activeName } from '../lib/backend/index.js';
import {
  addLearnedPositions,
  alibiBias,
  alibiSlopes,
  applyRope,
  LearnedPositionEmbedding,
  positionRange,
  rope,
  ropeCosSin,
  ropeFrequencies,
  sinusoidal,
} from '../lib/positional/index.js';
import {
  BACKENDS,
  expectClose,
  expectNoLeak,
  numericGrad,
  randomArray,
  type Tolerance,
  useBackend,
} from './helpers.js';

/** float32 kernels against float64 loops: one tolerance for every comparison in this file. */
const TOL: Tolerance = { rtol: 1e-4, atol: 2e-5 };

// ---- Naive references: plain loops over float64 JS arrays ----

function naiveSinusoidal(positions: ArrayLike<number>, dim: number, base = 10000): Float64Array {
  const out = new Float64Array(positions.length * dim);
  for (let p = 0; p < positions.length; p++) {
    for (let i = 0; 2 * i < dim; i++) {
      const angle = positions[p] / base ** ((2 * i) / dim);
      out[p * dim + 2 * i] = Math.sin(angle);
      if (2 * i + 1 < dim) out[p * dim + 2 * i + 1] = Math.cos(angle);
    }
  }
  return out;
}

/** x [b, h, s, d]; positions[bi][si] (one row shared by all batches when given as a flat array). */
function naiveRope(
  x: ArrayLike<number>,
  [b, h, s, d]: number[],
  positions: ArrayLike<number> | ArrayLike<number>[],
  base = 10000,
): Float64Array {
  const out = new Float64Array(b * h * s * d);
  const half = d / 2;
  const posOf = (bi: number, si: number): number =>
    typeof positions[0] === 'number'
      ? (positions as ArrayLike<number>)[si]
      : (positions as ArrayLike<number>[])[bi][si];
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++)
      for (let si = 0; si < s; si++) {
        const o = ((bi * h + hi) * s + si) * d;
        for (let i = 0; i < half; i++) {
          const a = posOf(bi, si) * base ** ((-2 * i) / d);
          const x1 = x[o + i];
          const x2 = x[o + i + half];
          out[o + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
          out[o + i + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
        }
      }
  return out;
}

/** A literal port of the ALiBi authors' get_slopes. */
function naiveSlopes(n: number): number[] {
  const powerOf2 = (m: number): number[] => {
    const start = 2 ** -(2 ** -(Math.log2(m) - 3));
    return Array.from({ length: m }, (_, i) => start * start ** i);
  };
  if (Number.isInteger(Math.log2(n))) return powerOf2(n);
  const closest = 2 ** Math.floor(Math.log2(n));
  return [
    ...powerOf2(closest),
    ...naiveSlopes(2 * closest)
      .filter((_, i) => i % 2 === 0)
      .slice(0, n - closest),
  ];
}

function naiveAlibi(
  slopes: ArrayLike<number>,
  queries: number,
  keys: number,
  future: 'symmetric' | 'zero' = 'symmetric',
): Float64Array {
  const h = slopes.length;
  const out = new Float64Array(h * queries * keys);
  for (let hi = 0; hi < h; hi++)
    for (let i = 0; i < queries; i++)
      for (let j = 0; j < keys; j++) {
        const dist = keys - queries + i - j;
        const d = dist >= 0 ? dist : future === 'symmetric' ? -dist : 0;
        out[(hi * queries + i) * keys + j] = -slopes[hi] * d;
      }
  return out;
}

function naiveLearned(
  x: ArrayLike<number>,
  [b, s, d]: number[],
  table: ArrayLike<number>,
  offset: number,
): Float64Array {
  const out = new Float64Array(b * s * d);
  for (let bi = 0; bi < b; bi++)
    for (let si = 0; si < s; si++)
      for (let di = 0; di < d; di++)
        out[(bi * s + si) * d + di] = x[(bi * s + si) * d + di] + table[(offset + si) * d + di];
  return out;
}

const dot = (a: ArrayLike<number>, w: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * w[i];
  return s;
};
const f32 = (a: ArrayLike<number>, shape: number[]) => tf.tensor(Float32Array.from(a), shape);

describe.each(BACKENDS)('positional on %s', (backendName) => {
  beforeAll(async () => useBackend(backendName));

  it('runs on the requested backend', () => {
    expect(activeName()).toBe(backendName);
  });

  describe('sinusoidal', () => {
    it.each([
      { n: 7, dim: 8 },
      { n: 5, dim: 7 },
      { n: 3, dim: 1 },
    ])('matches the reference for n=$n, dim=$dim', ({ n, dim }) => {
      const pe = sinusoidal(n, dim);
      expect(pe.shape).toEqual([n, dim]);
      expectClose(pe, naiveSinusoidal(positionRange(0, n), dim), TOL, 'count');
      pe.dispose();
    });

    it('takes explicit positions (arrays and tensors) and a base', () => {
      const positions = [0, 3, 1000, 17];
      tf.tidy(() => {
        expectClose(sinusoidal(positions, 16, { base: 500 }), naiveSinusoidal(positions, 16, 500), TOL, 'array');
        expectClose(sinusoidal(tf.tensor1d([0, 3, 17.5]), 6), naiveSinusoidal([0, 3, 17.5], 6), TOL, 'tensor');
      });
    });

    it('gradient in tensor positions matches finite differences of the reference', () => {
      const pos = [0.5, 3, 7.25, 12];
      const dim = 6;
      const r = randomArray(pos.length * dim, 3);
      const g = tf.grad((p: tf.Tensor) => tf.sum(tf.mul(sinusoidal(p as tf.Tensor1D, dim), f32(r, [pos.length, dim]))));
      const got = g(tf.tensor1d(pos));
      expectClose(
        got,
        numericGrad(() => dot(naiveSinusoidal(pos, dim), r), pos),
        TOL,
        'd/dpositions',
      );
      got.dispose();
    });

    it('does not leak', () => {
      expectNoLeak(() => tf.dispose(sinusoidal(9, 4)));
      const p = tf.tensor1d([1, 2, 3]);
      expectNoLeak(() => tf.dispose(sinusoidal(p, 5)));
      p.dispose();
    });

    it('names the argument in errors', () => {
      expect(() => sinusoidal(4, 0)).toThrow('sinusoidal: dim must be a positive integer, got 0');
      expect(() => sinusoidal(-1, 4)).toThrow(
        'sinusoidal: positions must be a count >= 0, an array or a [n] tensor, got -1',
      );
      const p = tf.zeros([2, 2]);
      expect(() => sinusoidal(p as tf.Tensor1D, 4)).toThrow(
        'sinusoidal: positions must have rank 1 [n], but has shape [2,2]',
      );
      p.dispose();
    });
  });

  describe('LearnedPositionEmbedding', () => {
    const [B, S, D, MAX] = [2, 3, 4, 8];
    const xa = randomArray(B * S * D, 21);
    const ta = randomArray(MAX * D, 22);
    const r = randomArray(B * S * D, 23);

    it.each([0, 2, 5])('addLearnedPositions: output and gradients match the reference at offset %i', (offset) => {
      const ref = naiveLearned(xa, [B, S, D], ta, offset);
      const out = tf.tidy(() => addLearnedPositions(f32(xa, [B, S, D]), f32(ta, [MAX, D]), offset));
      expectClose(out, ref, TOL, 'output');
      out.dispose();
      const grads = tf.grads((x: tf.Tensor, t: tf.Tensor) =>
        tf.sum(tf.mul(addLearnedPositions(x, t, offset), f32(r, [B, S, D]))),
      );
      const [gx, gt] = grads([f32(xa, [B, S, D]), f32(ta, [MAX, D])]);
      const x64 = Float64Array.from(xa);
      const t64 = Float64Array.from(ta);
      const loss = () => dot(naiveLearned(x64, [B, S, D], t64, offset), r);
      expectClose(gx, numericGrad(loss, x64), TOL, 'd/dx');
      expectClose(gt, numericGrad(loss, t64), TOL, 'd/dtable');
      tf.dispose([gx, gt]);
    });

    it('the layer adds its table, with positionOffset for a KV cache', () => {
      const layer = new LearnedPositionEmbedding({ maxPositions: MAX, seed: 7 });
      const x = f32(xa, [B, S, D]);
      const full = layer.apply(x) as tf.Tensor;
      const table = layer.getWeights()[0];
      expect(table.shape).toEqual([MAX, D]);
      const t = Array.from(table.dataSync());
      expectClose(full, naiveLearned(xa, [B, S, D], t, 0), TOL, 'offset 0');
      const later = layer.apply(x, { positionOffset: 4 }) as tf.Tensor;
      expectClose(later, naiveLearned(xa, [B, S, D], t, 4), TOL, 'offset 4');
      expect(() => layer.apply(x, { positionOffset: 6 })).toThrow(
        "addLearnedPositions: positions [6, 9) of x [2,3,4] exceed the table's maxPositions (8); offset must be an integer in [0, 5]",
      );
      expectNoLeak(() => tf.dispose(layer.apply(x, { positionOffset: 1 }) as tf.Tensor));
      tf.dispose([x, full, later]);
      layer.dispose();
    });

    it('a seed gives the same initial table', () => {
      const make = () => {
        const l = new LearnedPositionEmbedding({ maxPositions: 5, seed: 3 });
        tf.tidy(() => void l.apply(tf.zeros([1, 2, 6])));
        const w = Array.from(l.getWeights()[0].dataSync());
        l.dispose();
        return w;
      };
      const a = make();
      expect(make()).toEqual(a);
      expect(Math.max(...a.map(Math.abs))).toBeLessThan(0.2);
    });

    it('serializes: getConfig is JSON, a saved and loaded model gives identical outputs, and fit trains it', async () => {
      const model = tf.sequential({
        layers: [new LearnedPositionEmbedding({ maxPositions: MAX, inputShape: [S, D], seed: 1, name: 'pos' })],
      });
      const config = JSON.parse(JSON.stringify(model.getLayer('pos').getConfig()));
      expect(config).toMatchObject({ maxPositions: MAX, stddev: 0.02, seed: 1, name: 'pos' });
      let saved: tf.io.ModelArtifacts | undefined;
      await model.save(
        tf.io.withSaveHandler(async (artifacts) => {
          saved = artifacts;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
      const x = f32(xa, [B, S, D]);
      const a = model.predict(x) as tf.Tensor;
      const b = loaded.predict(x) as tf.Tensor;
      expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
      expect(loaded.layers[0]).toBeInstanceOf(LearnedPositionEmbedding);

      model.compile({ optimizer: tf.train.sgd(0.5), loss: 'meanSquaredError' });
      const before = Array.from(model.getWeights()[0].dataSync());
      const y = tf.zerosLike(x);
      await model.fit(x, y, { epochs: 1, verbose: 0 });
      expect(Array.from(model.getWeights()[0].dataSync())).not.toEqual(before);
      tf.dispose([x, y, a, b]);
      model.dispose();
      loaded.dispose();
    });

    it('names the argument in errors', () => {
      expect(() => new LearnedPositionEmbedding({ maxPositions: 0 })).toThrow(
        'LearnedPositionEmbedding: maxPositions must be a positive integer, got 0',
      );
      tf.tidy(() => {
        expect(() => addLearnedPositions(tf.zeros([2, 3]), tf.zeros([4, 3]))).toThrow(
          'addLearnedPositions: x must have rank 3 [batch, seq, dim], but has shape [2,3]',
        );
        expect(() => addLearnedPositions(tf.zeros([1, 2, 3]), tf.zeros([4, 5]))).toThrow(
          'addLearnedPositions: table has shape [4,5] but x has [1,2,3]; the dims must match',
        );
      });
    });
  });

  describe('rope', () => {
    const shape = [2, 3, 5, 8];
    const n = shape.reduce((a, b) => a * b, 1);
    const xa = randomArray(n, 31);
    const r = randomArray(n, 32);

    it('ropeFrequencies are base^(-2i/dim)', () => {
      expect(Array.from(ropeFrequencies(8))).toEqual([1, 10000 ** -0.25, 10000 ** -0.5, 10000 ** -0.75]);
      expect(Array.from(ropeFrequencies(4, 100))).toEqual([1, 0.1]);
    });

    it.each([
      { name: 'positions 0..seq-1', positions: [0, 1, 2, 3, 4] },
      { name: 'cache offset', positions: positionRange(37, 5) },
      { name: 'arbitrary positions', positions: [9, 2, 0, 511, 3] },
    ])('output and gradient match the reference: $name', ({ positions }) => {
      const out = tf.tidy(() => rope(f32(xa, shape), positions));
      expect(out.shape).toEqual(shape);
      expectClose(out, naiveRope(xa, shape, positions), TOL, 'output');
      out.dispose();
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(rope(x, positions), f32(r, shape))));
      const gx = g(f32(xa, shape));
      const x64 = Float64Array.from(xa);
      expectClose(
        gx,
        numericGrad(() => dot(naiveRope(x64, shape, positions), r), x64),
        TOL,
        'd/dx',
      );
      gx.dispose();
    });

    it('tensor positions, shared [seq] and per row [batch, seq], match the reference (with gradients in positions)', () => {
      const perRow = [
        [0, 1, 2, 3, 4],
        [7, 8, 9, 10, 11],
      ];
      tf.tidy(() => {
        expectClose(
          rope(f32(xa, shape), tf.tensor1d([3, 4, 5, 6, 7], 'int32')),
          naiveRope(xa, shape, [3, 4, 5, 6, 7]),
          TOL,
          '[seq]',
        );
        expectClose(rope(f32(xa, shape), tf.tensor2d(perRow)), naiveRope(xa, shape, perRow), TOL, '[batch, seq]');
      });
      const pos = [0.5, 1, 2.25, 3, 4];
      const g = tf.grad((p: tf.Tensor) => tf.sum(tf.mul(rope(f32(xa, shape), p as tf.Tensor1D), f32(r, shape))));
      const gp = g(tf.tensor1d(pos));
      expectClose(
        gp,
        numericGrad(() => dot(naiveRope(xa, shape, pos), r), pos),
        { rtol: 1e-3, atol: 1e-4 },
        'd/dpositions',
      );
      gp.dispose();
    });

    it('is relative: <rope(q, m), rope(k, n)> depends only on m - n', () => {
      const d = 16;
      const qa = randomArray(d, 41);
      const ka = randomArray(d, 42);
      const positions = [0, 1, 5, 20, 21, 25, 100, 101, 105];
      const rotate = (v: ArrayLike<number>) =>
        tf.tidy(() => rope(tf.tile(f32(v, [1, 1, 1, d]), [1, 1, positions.length, 1]), positions).dataSync());
      const q = rotate(qa);
      const k = rotate(ka);
      const score = (m: number, nIdx: number) =>
        dot(q.subarray(m * d, (m + 1) * d), k.subarray(nIdx * d, (nIdx + 1) * d));
      // Index triples at shifts 0, 20, 100: (0,1,5), (20,21,25), (100,101,105).
      for (const [i, j] of [
        [0, 1],
        [1, 0],
        [2, 0],
        [0, 2],
        [1, 2],
      ]) {
        const base = score(i, j);
        expect(Math.abs(score(i + 3, j + 3) - base)).toBeLessThan(1e-4 * d);
        expect(Math.abs(score(i + 6, j + 6) - base)).toBeLessThan(1e-4 * d);
      }
      expect(Math.abs(score(0, 0) - dot(qa, ka))).toBeLessThan(1e-4 * d); // position 0 is the identity
    });

    it('decoding with a cache equals the full pass, and rotations keep norms', () => {
      tf.tidy(() => {
        const x = f32(xa, shape);
        const full = rope(x, positionRange(0, 5));
        const last2 = rope(tf.slice(x, [0, 0, 3, 0], [-1, -1, 2, -1]), positionRange(3, 2));
        expectClose(last2, tf.slice(full, [0, 0, 3, 0], [-1, -1, 2, -1]), TOL, 'cache');
        expectClose(tf.norm(full, 'euclidean', -1), tf.norm(x, 'euclidean', -1), TOL, 'norm');
        const { cos, sin } = ropeCosSin([0, 1, 2, 3, 4], 8);
        expect(cos.shape).toEqual([5, 4]);
        expectClose(applyRope(x, cos, sin), full, TOL, 'applyRope');
      });
    });

    it('does not leak', () => {
      const x = f32(xa, shape);
      const p = tf.tensor2d([
        [0, 1, 2, 3, 4],
        [1, 2, 3, 4, 5],
      ]);
      expectNoLeak(() => tf.dispose(rope(x, [0, 1, 2, 3, 4])));
      expectNoLeak(() => tf.dispose(rope(x, p)));
      tf.dispose([x, p]);
    });

    it('names the argument and shapes in errors', () => {
      tf.tidy(() => {
        expect(() => rope(tf.zeros([1, 2, 3, 5]), [0, 1, 2])).toThrow(
          'rope: the last axis (dim) must be even for rotate-half RoPE, but shape is [1,2,3,5]',
        );
        expect(() => rope(tf.zeros([1, 2, 3, 4]), [0, 1, 2, 3])).toThrow(
          'rope: positions has shape [4] but x has shape [1,2,3,4] [batch, heads, seq, dim]; expected [3] or [1,3]',
        );
        expect(() => rope(tf.zeros([2, 3, 4]), [0, 1, 2])).toThrow(
          'rope: x must have rank 4 [batch, heads, seq, dim], but has shape [2,3,4]',
        );
        expect(() => applyRope(tf.zeros([1, 1, 3, 4]), tf.zeros([3, 4]), tf.zeros([3, 2]))).toThrow(
          'applyRope: cos has shape [3,4] but x has shape [1,1,3,4]; expected [3,2] or [1,1,3,2]',
        );
      });
    });
  });

  describe('alibi', () => {
    it('slopes follow the paper, including the non-power-of-2 rule', () => {
      expect(alibiSlopes(8)).toEqual([1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256]);
      expect(alibiSlopes(6)).toEqual([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]);
      for (const h of [1, 2, 3, 5, 7, 12, 16, 24])
        expectClose(alibiSlopes(h), naiveSlopes(h), { rtol: 1e-12, atol: 0 }, `heads ${h}`);
    });

    it.each([
      { heads: 4, queries: 5, keys: 5, future: 'symmetric' as const },
      { heads: 3, queries: 2, keys: 7, future: 'symmetric' as const },
      { heads: 6, queries: 4, keys: 6, future: 'zero' as const },
      { heads: 2, queries: 1, keys: 9, future: 'zero' as const },
    ])(
      'bias matches the reference: $heads heads, $queries queries x $keys keys, future $future',
      ({ heads, queries, keys, future }) => {
        const bias = alibiBias(heads, queries, keys, { future });
        expect(bias.shape).toEqual([1, heads, queries, keys]);
        expectClose(bias, naiveAlibi(naiveSlopes(heads), queries, keys, future), TOL, 'bias');
        // The end-aligned diagonal (query at its own position) has zero bias.
        const data = bias.dataSync();
        for (let i = 0; i < queries; i++) expect(data[i * keys + keys - queries + i]).toBe(0);
        bias.dispose();
      },
    );

    it('gradient in tensor slopes matches finite differences of the reference', () => {
      const [heads, queries, keys] = [3, 4, 6];
      const slopes = [0.5, 0.3, 0.1];
      const r = randomArray(heads * queries * keys, 51);
      const g = tf.grad((m: tf.Tensor) =>
        tf.sum(
          tf.mul(alibiBias(heads, queries, keys, { slopes: m as tf.Tensor1D }), f32(r, [1, heads, queries, keys])),
        ),
      );
      const gm = g(tf.tensor1d(slopes));
      expectClose(
        gm,
        numericGrad(() => dot(naiveAlibi(slopes, queries, keys), r), slopes),
        TOL,
        'd/dslopes',
      );
      gm.dispose();
    });

    it('does not leak', () => {
      expectNoLeak(() => tf.dispose(alibiBias(4, 3, 5)));
      const m = tf.tensor1d([1, 2]);
      expectNoLeak(() => tf.dispose(alibiBias(2, 3, 3, { slopes: m })));
      m.dispose();
    });

    it('names the argument and shapes in errors', () => {
      expect(() => alibiSlopes(0)).toThrow('alibiSlopes: heads must be a positive integer, got 0');
      expect(() => alibiBias(4, 0, 3)).toThrow('alibiBias: queries must be a positive integer, got 0');
      expect(() => alibiBias(4, 2, 3, { slopes: [1, 2] })).toThrow(
        'alibiBias: slopes has shape [2] but heads is 4; expected [4]',
      );
    });
  });
});

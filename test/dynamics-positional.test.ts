import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ARRAY_TASKS, arraySplitOf, arrayTarget, arrayTask } from '../lib/data/array-tasks.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import {
  ArrayTransformer,
  arrayPositions,
  positionalAttention,
  positionalAttentionExperiment,
  positionalAttentionReference,
  positionalWeights,
} from '../lib/papers/dynamics/positional-attention/index.js';
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
/** Gradients: float32 backprop against float64 central differences. */
const GRAD_TOL: Tolerance = { rtol: 2e-3, atol: 2e-4 };

const [B, N, M, P, H, E] = [2, 5, 4, 6, 2, 3]; // batch, positions, width, positional width, heads, q/k head dim
const shapes = {
  wq: [P, H * E],
  wk: [P, H * E],
  bq: [H * E],
  bk: [H * E],
  wv: [M, M],
  bv: [M],
  wo: [M, M],
  bo: [M],
} as const;
type Name = keyof typeof shapes;
const names = Object.keys(shapes) as Name[];

function problem() {
  const arrays = Object.fromEntries(
    names.map((k, i) => [
      k,
      randomArray(
        shapes[k].reduce((a: number, d: number) => a * d, 1),
        11 + i,
        0.8,
      ),
    ]),
  ) as Record<Name, Float64Array>;
  return { x: randomArray(B * N * M, 3), pos: randomArray(N * P, 5), arrays };
}

const f32 = (a: ArrayLike<number>) => Float32Array.from(a);

function tensors(pr: ReturnType<typeof problem>) {
  const params = Object.fromEntries(names.map((k) => [k, tf.tensor(f32(pr.arrays[k]), [...shapes[k]])])) as Record<
    Name,
    tf.Tensor
  >;
  return { x: tf.tensor3d(f32(pr.x), [B, N, M]), P: tf.tensor2d(f32(pr.pos), [N, P]), params };
}

describe.each(BACKENDS)('positional attention on %s', (backendName) => {
  it('matches the float64 reference: outputs and weights', async () => {
    await useBackend(backendName);
    const pr = problem();
    const t = tensors(pr);
    const { output, weights } = positionalAttention(t.x, t.P, t.params, H);
    const ref = positionalAttentionReference(pr.x, [B, N, M], pr.pos, P, pr.arrays, H);
    expect(output.shape).toEqual([B, N, M]);
    expect(weights.shape).toEqual([H, N, N]);
    expectClose(output, ref.output, TOL, 'output');
    expectClose(weights, ref.weights, TOL, 'weights');
    const alone = positionalWeights(t.P, t.params, H);
    expectClose(alone, ref.weights, TOL, 'positionalWeights');
    tf.dispose([output, weights, alone, t.x, t.P, ...Object.values(t.params)]);
  });

  it('gradients of every input and parameter match float64 central differences of the reference', async () => {
    await useBackend(backendName);
    const pr = problem();
    const t = tensors(pr);
    const R = randomArray(B * N * M, 99);
    const objective = () => {
      const o = positionalAttentionReference(pr.x, [B, N, M], pr.pos, P, pr.arrays, H).output;
      return o.reduce((a, v, i) => a + v * R[i], 0);
    };
    const Rt = tf.tensor3d(f32(R), [B, N, M]);
    const order = ['x', 'P', ...names] as const;
    const grads = tf.grads((...args: tf.Tensor[]) => {
      const [x, Pt, ...ps] = args;
      const params = Object.fromEntries(names.map((k, i) => [k, ps[i]])) as Record<Name, tf.Tensor>;
      return positionalAttention(x as tf.Tensor3D, Pt as tf.Tensor2D, params, H)
        .output.mul(Rt)
        .sum();
    })([t.x, t.P, ...names.map((k) => t.params[k])]);
    const arrays: Record<string, Float64Array> = { x: pr.x, P: pr.pos, ...pr.arrays };
    order.forEach((k, i) => {
      expectClose(grads[i], numericGrad(objective, arrays[k]), GRAD_TOL, `d/d${k}`);
    });
    tf.dispose([...grads, Rt, t.x, t.P, ...Object.values(t.params)]);
  });

  it('leaks no tensors', async () => {
    await useBackend(backendName);
    const t = tensors(problem());
    expectNoLeak(() => {
      const r = positionalAttention(t.x, t.P, t.params, H);
      tf.dispose([r.output, r.weights]);
      tf.dispose(
        tf.grads((x: tf.Tensor) => positionalAttention(x as tf.Tensor3D, t.P, t.params, H).output.sum())([t.x]),
      );
    });
    tf.dispose([t.x, t.P, ...Object.values(t.params)]);
  });
});

describe('positional attention: argument errors name the function, the argument and the values', () => {
  it('rejects mismatched shapes', () => {
    const t = tensors(problem());
    expect(() => positionalAttention(t.x, t.P, { ...t.params, wq: tf.zeros([P + 1, H * E]) }, H)).toThrow(
      /positionalAttention: wq must be \[p, h\*e\] with p = 6 \(P's width\), got \[7,6\]/,
    );
    expect(() => positionalAttention(t.x, t.P, t.params, 4)).toThrow(
      /positionalAttention: wq's width 6 must be divisible by heads \(4\)/,
    );
    expect(() => positionalAttention(t.x.slice([0, 0, 0], [B, N - 1, M]), t.P, t.params, H)).toThrow(
      /positionalAttention: x has 4 positions but P has 5 rows/,
    );
    expect(
      () =>
        new ArrayTransformer({
          attention: 'dynamic' as never,
          maxLen: 8,
          dModel: 8,
          heads: 1,
          layers: 1,
          mlpHidden: 8,
          seed: 0,
        }),
    ).toThrow(/ArrayTransformer: attention must be 'positional' or 'standard', got 'dynamic'/);
    expect(() => arrayTask({ task: 'max' as never, batch: 1, length: 4, seed: 0 })).toThrow(
      /arrayTask: task must be one of cumsum, min, sum, sort, got 'max'/,
    );
    expect(() => arrayTask({ task: 'sum', batch: 1, length: 4, seed: 0, scale: 0.5 })).toThrow(
      /arrayTask: scale must be a number >= 1, got 0.5/,
    );
    tf.dispose([t.x, t.P, ...Object.values(t.params)]);
  });
});

describe('ArrayTransformer', () => {
  const cfg = { maxLen: 8, scratch: 1, dModel: 8, heads: 2, layers: 2, mlpHidden: 16, seed: 3 };

  it('positional attention does not depend on the input values; standard attention does', () => {
    const x1 = tf.tensor3d(f32(randomArray(3 * 6, 1, 2)), [3, 6, 1]);
    const x2 = tf.tensor3d(f32(randomArray(3 * 6, 2, 20)), [3, 6, 1]);
    for (const attention of ['positional', 'standard'] as const) {
      const model = new ArrayTransformer({ attention, ...cfg });
      const [p1, p2]: tf.Tensor[][] = [[], []];
      const y1 = model.forward(x1, p1);
      const y2 = model.forward(x2, p2);
      expect(y1.shape).toEqual([3, 6, 1]);
      expect(p1).toHaveLength(cfg.layers);
      const gap = Math.max(...p1.map((w, l) => tf.tidy(() => w.sub(p2[l]).abs().max().dataSync()[0])));
      if (attention === 'positional') {
        expect(p1[0].shape).toEqual([2, 7, 7]); // [h, n + scratch, n + scratch]
        expect(gap).toBe(0);
        const maps = model.attentionMaps(6);
        maps.forEach((w, l) => expectClose(w, p1[l], TOL, `attentionMaps layer ${l}`));
        expectClose(
          tf.tidy(() => maps[0].sum(-1)),
          new Float64Array(2 * 7).fill(1),
          TOL,
          'rows sum to 1',
        );
        tf.dispose(maps);
      } else {
        expect(p1[0].shape).toEqual([3, 2, 7, 7]);
        expect(gap).toBeGreaterThan(1e-3);
        expect(() => model.attentionMaps(6)).toThrow(
          /attentionMaps: a standard model's attention depends on its input/,
        );
      }
      tf.dispose([y1, y2, ...p1, ...p2]);
      model.dispose();
    }
    tf.dispose([x1, x2]);
  });

  it('one-hot positions keep the scratch rows whatever the length', () => {
    const e = arrayPositions(3, 5, 2);
    expect(e.shape).toEqual([5, 7]);
    expect(Array.from(e.argMax(-1).dataSync())).toEqual([0, 1, 2, 5, 6]);
    tf.dispose(e);
    expect(() => arrayPositions(6, 5, 1)).toThrow(/arrayPositions: n must be an integer in \[1, maxLen = 5\], got 6/);
  });

  it('equal width and depth: the standard model differs only by its q/k projections and its input layer', () => {
    const pos = new ArrayTransformer({ attention: 'positional', ...cfg, qkDim: 4 });
    const std = new ArrayTransformer({ attention: 'standard', ...cfg });
    const p = cfg.maxLen + cfg.scratch;
    const m = cfg.dModel;
    const qk = (inW: number, width: number) => cfg.layers * 2 * (inW * width + width);
    expect(std.parameterCount() - pos.parameterCount()).toBe(qk(m, m) - qk(p, cfg.heads * 4) + p * m);
    pos.dispose();
    std.dispose();
  });

  it('trains a step without leaking tensors', () => {
    const model = new ArrayTransformer({ attention: 'positional', ...cfg });
    const b = arrayTask({ task: 'cumsum', batch: 4, length: 5, seed: 0 });
    const { x, y } = b.toTensors();
    const vars = Object.values(model.variables());
    expectNoLeak(() => {
      const { value, grads } = tf.variableGrads(() => model.loss(x, y), vars);
      tf.dispose([value, ...Object.values(grads)]);
    });
    tf.dispose([x, y]);
    model.dispose();
  });
});

describe('array tasks', () => {
  it('targets are the cumulative sum, minimum, sum and sorted array of each row', () => {
    expect(arrayTarget('cumsum', [0.5, -1, 1.5, 0.25])).toEqual([0.5, -0.5, 1, 1.25]);
    expect(arrayTarget('min', [0.5, -1, 1.5, 0.25])).toEqual([-1, -1, -1, -1]);
    expect(arrayTarget('sum', [0.5, -1, 1.5, 0.25])).toEqual([1.25, 1.25, 1.25, 1.25]);
    expect(arrayTarget('sort', [0.5, -1, 1.5, 0.25])).toEqual([-1, 0.25, 0.5, 1.5]);
    for (const task of ARRAY_TASKS) {
      const b = arrayTask({ task, batch: 8, length: 6, seed: 1 });
      for (let r = 0; r < 8; r++) {
        const { x, y } = b.row(r);
        expectClose(y, arrayTarget(task, x), TOL, `${task} row ${r}`);
      }
    }
  });

  it('values stay in [-2, 2] at scale 1 and every row leaves it at scale > 1', () => {
    const inside = arrayTask({ task: 'sum', batch: 200, length: 8, seed: 2 });
    expect(Math.max(...inside.x.map(Math.abs))).toBeLessThanOrEqual(2);
    const out = arrayTask({ task: 'sum', batch: 200, length: 8, seed: 2, scale: 5, split: 'test' });
    expect(Math.max(...out.x.map(Math.abs))).toBeLessThanOrEqual(10);
    for (let r = 0; r < 200; r++) expect(Math.max(...out.row(r).x.map(Math.abs))).toBeGreaterThan(2);
  });

  it('splits are disjoint by hash, deterministic by seed', () => {
    for (const split of ['train', 'validation', 'test'] as const) {
      const b = arrayTask({ task: 'min', batch: 50, length: 8, seed: 4, split });
      for (let r = 0; r < 50; r++) expect(arraySplitOf(Float32Array.from(b.row(r).x))).toBe(split);
    }
    const a = arrayTask({ task: 'sort', batch: 3, length: 8, seed: 9 });
    const c = arrayTask({ task: 'sort', batch: 3, length: 8, seed: 9 });
    expect(Array.from(a.x)).toEqual(Array.from(c.x));
  });
});

describe('positional-attention experiment', () => {
  it('runs a tiny config: metrics by split, both models on the same rows, the claims table, no leaks', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(positionalAttentionExperiment, {
      quick: true,
      progress: false,
      overrides: {
        tasks: ['sum'],
        scales: [1, 10],
        steps: 4,
        batch: 8,
        dModel: 8,
        layers: 1,
        mlpHidden: 8,
        evalRowsPerLength: 6,
        lrs: [1e-3, 3e-3],
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    for (const k of [
      'test_mse_sum_positional_x1',
      'test_mse_sum_standard_x10',
      'test_mse_ci95_sum_positional_x10',
      'validation_mse_sum_standard',
      'test_mse_ratio_sum_x10',
      'params_sum_positional',
    ])
      expect(Number.isFinite(r.metrics[k]), k).toBe(true);
    expect(r.tables?.results).toHaveLength(4);
    expect(r.tables?.comparison).toHaveLength(2);
    expect(r.tables?.claims).toHaveLength(3);
    expect(r.metrics.test_mse_ratio_sum_x10).toBeCloseTo(
      r.metrics.test_mse_sum_standard_x10 / r.metrics.test_mse_sum_positional_x10,
      6,
    );
    await expect(
      runExperimentWith(positionalAttentionExperiment, { quick: true, overrides: { scales: [2, 3] } }),
    ).rejects.toThrow(/scales must include 1/);
  });
});

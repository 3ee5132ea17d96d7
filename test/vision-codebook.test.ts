/** Codebook bottleneck (Eftekhar et al. 2024): the mechanism against its float64 reference (outputs, gradients, dropout), the grid world, the policy, the experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { distractorTypes, GridWorld, layoutSplit } from '../lib/data/gridworld.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import {
  codebookBottleneck,
  codebookBottleneckReference,
  codebookNav,
  linearProbe,
  NavPolicy,
  scoreDropoutMask,
} from '../lib/papers/vision/codebook/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const f32 = (x: ArrayLike<number>) => Float32Array.from(x);
const [b, K, Dc] = [3, 5, 4];

describe.each(BACKENDS)('codebook bottleneck on %s', (name) => {
  it('matches the float64 reference: probabilities, output, convexity', async () => {
    await useBackend(name);
    const s = randomArray(b * K, 1, 2);
    const c = randomArray(K * Dc, 2);
    const ref = codebookBottleneckReference(s, c, b, K, Dc);
    const [probs, out] = tf.tidy(() => {
      const o = codebookBottleneck(tf.tensor2d(f32(s), [b, K]), tf.tensor2d(f32(c), [K, Dc]));
      return [o.probs.dataSync(), o.out.dataSync()];
    });
    expectClose(probs, ref.probs, {}, 'probs');
    expectClose(out, ref.out, {}, 'out');
    for (let i = 0; i < b; i++) {
      const row = Array.from(ref.probs.slice(i * K, (i + 1) * K));
      expect(row.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 10);
      // Each output coordinate lies within the codes' range along it (a convex combination).
      for (let d = 0; d < Dc; d++) {
        const col = Array.from({ length: K }, (_, k) => c[k * Dc + d]);
        expect(out[i * Dc + d]).toBeGreaterThanOrEqual(Math.min(...col) - 1e-5);
        expect(out[i * Dc + d]).toBeLessThanOrEqual(Math.max(...col) + 1e-5);
      }
    }
  });

  it('gradients w.r.t. scores and codes match central differences of the reference', async () => {
    await useBackend(name);
    const s = randomArray(b * K, 3, 2);
    const c = randomArray(K * Dc, 4);
    const w = randomArray(b * Dc, 5); // loss = sum(out * w)
    const lossRef = () => codebookBottleneckReference(s, c, b, K, Dc).out.reduce((a, v, i) => a + v * w[i], 0);
    const gs = numericGrad(lossRef, s);
    const gc = numericGrad(lossRef, c);
    const [dS, dC] = tf.tidy(() => {
      const g = tf.grads((st: tf.Tensor, ct: tf.Tensor) =>
        codebookBottleneck(st as tf.Tensor2D, ct as tf.Tensor2D)
          .out.mul(tf.tensor2d(f32(w), [b, Dc]))
          .sum(),
      )([tf.tensor2d(f32(s), [b, K]), tf.tensor2d(f32(c), [K, Dc])]);
      return g.map((t) => t.dataSync());
    });
    expectClose(dS, gs, { rtol: 2e-3, atol: 2e-4 }, 'd/dscores');
    expectClose(dC, gc, { rtol: 2e-3, atol: 2e-4 }, 'd/dcodes');
  });

  it('dropout on the scores: seeded, matches the reference with the same mask, zero rate is the identity', async () => {
    await useBackend(name);
    const s = randomArray(b * K, 6, 2);
    const c = randomArray(K * Dc, 7);
    const mask = tf.tidy(() => scoreDropoutMask(b, K, 0.4, 11).dataSync());
    for (const m of mask) expect(m === 0 || Math.abs(m - 1 / 0.6) < 1e-6).toBe(true);
    const ref = codebookBottleneckReference(s, c, b, K, Dc, mask);
    const run = (seed: number) =>
      tf.tidy(() =>
        codebookBottleneck(tf.tensor2d(f32(s), [b, K]), tf.tensor2d(f32(c), [K, Dc]), {
          dropout: 0.4,
          seed,
        }).out.dataSync(),
      );
    expectClose(run(11), ref.out, {}, 'dropout out');
    expectClose(run(11), run(11), {}, 'same seed');
    const plain = tf.tidy(() =>
      codebookBottleneck(tf.tensor2d(f32(s), [b, K]), tf.tensor2d(f32(c), [K, Dc]), { dropout: 0 }).out.dataSync(),
    );
    expectClose(plain, codebookBottleneckReference(s, c, b, K, Dc).out, {}, 'rate 0');
  });

  it('names the argument on bad input and leaks no tensors', async () => {
    await useBackend(name);
    const s = tf.zeros([b, K]) as tf.Tensor2D;
    const c = tf.zeros([K + 1, Dc]) as tf.Tensor2D;
    expect(() => codebookBottleneck(s, c)).toThrow(/codebookBottleneck: codes must have K = 5 rows.*got 6/);
    expect(() => codebookBottleneck(s, tf.zeros([K, Dc]) as tf.Tensor2D, { dropout: 1 })).toThrow(
      /options.dropout must be in \[0, 1\), got 1/,
    );
    const c2 = tf.ones([K, Dc]) as tf.Tensor2D;
    expectNoLeak(() => {
      const o = codebookBottleneck(s, c2, { dropout: 0.2, seed: 3 });
      tf.dispose([o.probs, o.out]);
    });
    tf.dispose([s, c, c2]);
  });
});

describe('grid world', () => {
  it('follows the worked example of its doc comment', () => {
    const w = new GridWorld({ size: 3, goals: 2, otherGoals: 0, distractors: 0, featureDim: 1, noiseStd: 0 });
    const ep = {
      start: [0, 0] as [number, number],
      goal: 1,
      goalCell: [2, 1] as [number, number],
      objects: [{ cell: [2, 1] as [number, number], type: 1 }],
      noiseSeed: 1,
    };
    const s = w.reset(ep);
    const obs = w.observe(s);
    const wall = w.feature(-1)[0];
    expect(Array.from(obs)).toEqual([wall, wall, wall, wall, 0, 0, wall, 0, 0].map((v) => Math.fround(v)));
    const actions: number[] = [];
    while (!s.done) {
      const a = w.oracle(s);
      actions.push(a);
      w.step(s, a);
    }
    expect(actions).toEqual([1, 1, 3]);
    expect(s.success).toBe(true);
  });

  it('the oracle succeeds from every layout, splits share no layout, bad input names the argument', () => {
    const w = new GridWorld({ size: 7, distractors: 6 });
    const splits = {
      train: w.episodes(200, 1, 'train'),
      validation: w.episodes(200, 1, 'validation'),
      test: w.episodes(200, 1, 'test'),
    };
    const keys = (eps: typeof splits.train) => new Set(eps.map((e) => JSON.stringify([e.start, e.objects])));
    const tr = keys(splits.train);
    for (const e of [...splits.validation, ...splits.test])
      expect(tr.has(JSON.stringify([e.start, e.objects]))).toBe(false);
    expect(splits.test.every((e) => layoutSplit(e) === 2)).toBe(true);
    for (const e of splits.test) {
      const s = w.reset(e);
      while (!s.done) w.step(s, w.oracle(s));
      expect(s.success).toBe(true);
    }
    expect(() => new GridWorld({ size: 6 })).toThrow(/GridWorld: size must be an odd integer >= 3, got 6/);
    expect(() => w.step(w.reset(splits.train[0]), 4)).toThrow(/GridWorld.step: action must be 0, 1, 2 or 3, got 4/);
    expect(distractorTypes(4, 3, 3)).toEqual([7, 8, 9]);
  });
});

describe('policy and probe', () => {
  it('the codebook policy routes through K codes; a linear probe separates a separable label', () => {
    const p = new NavPolicy({
      obsDim: 10,
      goals: 3,
      hidden: 8,
      codebook: { codes: 6, dim: 4, dropout: 0.1 },
      actions: 4,
      seed: 1,
    });
    const before = tf.memory().numTensors;
    const f = p.forward(tf.ones([2, 10]) as tf.Tensor2D, tf.tensor1d([0, 2], 'int32'));
    expect(f.logits.shape).toEqual([2, 4]);
    expect(f.bottleneck?.shape).toEqual([2, 4]);
    expect(f.probs?.shape).toEqual([2, 6]);
    tf.dispose(Object.values(f) as tf.Tensor[]);
    expect(() => p.forward(tf.ones([2, 9]) as tf.Tensor2D, tf.tensor1d([0, 1], 'int32'))).toThrow(
      /obs must be \[b, 10\], got shape \[2,9\]/,
    );
    p.dispose();
    expect(tf.memory().numTensors).toBeLessThanOrEqual(before + 3);
    const x = randomArray(200, 9);
    const y = Int32Array.from({ length: 100 }, (_, i) => (x[2 * i] > 0 ? 1 : 0));
    const r = linearProbe(f32(x), y, f32(x), y, 2, 2, 100);
    expect(r.accuracy).toBeGreaterThan(0.95);
  });
});

describe('codebook-nav experiment', () => {
  it('runs a tiny config: metrics, tables, trajectories', async () => {
    const r = await runExperimentWith(codebookNav, {
      quick: true,
      keep: true,
      progress: false,
      overrides: {
        trainEpisodes: 30,
        steps: 20,
        batch: 16,
        hidden: 8,
        codes: 8,
        codeDim: 4,
        evalEvery: 10,
        validationEpisodes: 10,
        testEpisodes: 20,
        probeStates: 60,
        probeSteps: 10,
      },
    });
    try {
      for (const v of ['plain', 'codebook']) {
        const s = r.metrics[`${v}.test_success`];
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThanOrEqual(1);
        expect(r.metrics[`${v}.test_probe_hidden_goal_visible_accuracy`]).toBeGreaterThanOrEqual(0);
      }
      expect(r.metrics['codebook.test_probe_bottleneck_distractor_accuracy']).toBeGreaterThanOrEqual(0);
      expect(r.tables?.policies).toHaveLength(2);
      expect(r.tables?.probes).toHaveLength(6);
      expect(r.artifacts?.curves.codebook.map((c) => c.step)).toEqual([10, 20]);
      expect(r.artifacts?.trajectories.plain[0].path[0]).toEqual(r.artifacts?.trajectories.plain[0].episode.start);
    } finally {
      r.artifacts?.dispose();
    }
  });
});

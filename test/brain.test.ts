/** Brain encoders (lib/papers/cogneuro/brain): the simulator, the noise ceiling, the fast paths against references, leaks. */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import * as brain from '../lib/papers/cogneuro/brain/index.js';
import { Rng } from '../lib/util/random.js';
import { BACKENDS, expectClose, expectNoLeak, randomArray, useBackend } from './helpers.js';

const small: brain.SimulationConfig = {
  ...brain.DEFAULT_SIMULATION,
  voxelsPerRegion: 6,
  train: 400,
  validation: 100,
  test: 200,
  repeats: 4,
  snr: 1,
};

describe('simulated visual system', () => {
  let sim: brain.Simulation;
  beforeAll(async () => {
    await backend.ready();
    sim = brain.simulate(small, 3);
  });
  afterAll(() => brain.disposeSimulation(sim));

  it('draws scenes whose labels match their objects and coverage sums to the labelled area', () => {
    const s = brain.drawScene(brain.DEFAULT_SCENES, new Rng(1));
    const cov = brain.coverage(s, 8);
    const labelled = s.labels.reduce((a, l) => a + (l >= 0 ? 1 : 0), 0);
    const covered = cov.reduce((a, m) => a + m.reduce((x, y) => x + y, 0), 0) * (32 / 8) ** 2;
    expect(covered).toBeCloseTo(labelled, 3);
    for (const o of s.objects) expect(brain.CATEGORIES).toContain(o.category);
  });

  it('voxels correlate with their planted signal as the SNR says (r = sqrt(SNR/(1+SNR)) per presentation)', () => {
    const r = brain.mean(brain.pearsonColumns(sim.train.signal, sim.train.responses));
    expect(r).toBeCloseTo(Math.sqrt(small.snr / (1 + small.snr)), 1);
    // The repeat-averaged test response: the analytic ceiling.
    const rt = brain.mean(brain.pearsonColumns(sim.test.signal, sim.test.responses));
    expect(Math.abs(rt - sim.analyticCeiling)).toBeLessThan(0.03);
  });

  it('estimates the noise ceiling from repeats in agreement with the analytic one', () => {
    expect(Math.abs(brain.mean(sim.ceiling) - sim.analyticCeiling)).toBeLessThan(0.03);
    expect(() => brain.noiseCeiling([sim.test.responses])).toThrow('at least 2 repeats');
  });

  it('category voxels respond more when their category is present, early voxels follow their pRF', () => {
    const totals = sim.train.coverage.sum(2).arraySync() as number[][]; // [n, K]
    for (const reg of sim.system.regions.filter((r) => r.kind === 'category')) {
      const k = brain.CATEGORIES.indexOf(reg.category!);
      const present = totals.map((t) => t[k] >= 1);
      const meanOf = (cond: boolean) =>
        brain.mean(
          totals.flatMap((_, i) =>
            present[i] === cond ? reg.voxels.map((v) => sim.train.signal.data[i * sim.system.voxelCount + v]) : [],
          ),
        );
      expect(meanOf(true), reg.name).toBeGreaterThan(meanOf(false) + 0.3);
    }
    const N = 64;
    for (const v of sim.system.regions[0].voxels)
      expect(sim.system.prf.subarray(v * N, (v + 1) * N).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it("the batched signal equals each voxel's weights on its truly routed features (per-voxel reference)", () => {
    const n = 12;
    const f = tf.slice(sim.test.features, [0, 0, 0], [n, -1, -1]) as tf.Tensor3D;
    const c = tf.slice(sim.test.coverage, [0, 0, 0], [n, -1, -1]) as tf.Tensor3D;
    const routed = brain.trueRoutedFeatures(sim.system, f, c).arraySync() as number[][][]; // [n, V, C]
    const { voxelCount: V, channels: C } = sim.system;
    const ref = routed.flatMap((row) =>
      row.map((z, v) => {
        let s = 0;
        for (let k = 0; k < C; k++) s += sim.system.weights[v * C + k] * z[k];
        return (s - sim.system.signalMean[v]) / sim.system.signalStd[v];
      }),
    );
    expectClose(brain.signal(sim.system, f, c), ref, { rtol: 1e-3, atol: 1e-3 }, 'signal');
    expect(ref.length).toBe(n * V);
    tf.dispose([f, c]);
  });

  it('a model given the true routing reaches the noise ceiling', () => {
    const tr = brain.trueRoutedFeatures(sim.system, sim.train.features, sim.train.coverage);
    const te = brain.trueRoutedFeatures(sim.system, sim.test.features, sim.test.coverage);
    const r = brain.pearsonColumns(
      brain.predictOracle(brain.fitOracle(tr, sim.train.responses), te),
      sim.test.responses,
    );
    tf.dispose([tr, te]);
    for (const reg of sim.system.regions) {
      const frac = brain.mean(reg.voxels.map((v) => r[v])) / brain.mean(reg.voxels.map((v) => sim.ceiling[v]));
      expect(frac, reg.name).toBeGreaterThan(0.93);
    }
  });

  it('is reproducible for a seed (a shorter run draws the same first stimuli and noise)', () => {
    const a = brain.simulate({ ...small, train: 20, validation: 10, test: 10 }, 3);
    const V = sim.system.voxelCount;
    expect(Array.from(a.train.responses.data)).toEqual(Array.from(sim.train.responses.data.subarray(0, 20 * V)));
    brain.disposeSimulation(a);
  });
});

describe.each(BACKENDS)('transformer brain encoder on %s', (name) => {
  beforeAll(async () => {
    await useBackend(name);
  });

  const regions = [
    { name: 'A', voxels: [0, 3, 4] },
    { name: 'B', voxels: [1, 2] },
    { name: 'C', voxels: [5] },
  ];

  it('batched block-sparse readout equals the per-region loop, outputs and gradients', () => {
    const [b, R, d, V] = [3, 3, 4, 6];
    const tokens = tf.tensor3d(Float32Array.from(randomArray(b * R * d, 1)), [b, R, d]);
    const w = tf.tensor2d(Float32Array.from(randomArray(R * d * V, 2)), [R * d, V]);
    const bias = tf.tensor1d(Float32Array.from(randomArray(V, 3)));
    const mask = brain.readoutMask(regions, d, V);
    const up = tf.tensor2d(Float32Array.from(randomArray(b * V, 4)), [b, V]);
    const f = (fn: (t: tf.Tensor3D, w: tf.Tensor2D) => tf.Tensor2D) =>
      tf.grads((t: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.mul(fn(t as tf.Tensor3D, ww as tf.Tensor2D), up)));
    const fast = (t: tf.Tensor3D, ww: tf.Tensor2D) => brain.readoutBatched(t, ww, mask, bias);
    const ref = (t: tf.Tensor3D, ww: tf.Tensor2D) => brain.readoutLoop(t, ww, regions, bias);
    expectClose(fast(tokens, w), ref(tokens, w), {}, 'readout');
    const [gf, gr] = [f(fast)([tokens, w]), f(ref)([tokens, w])];
    expectClose(gf[0], gr[0], {}, 'd tokens');
    // The reference never reads off-region weights; the mask zeroes their gradient in the batched path too.
    expectClose(gf[1], tf.mul(gr[1], mask), {}, 'd weights');
    tf.dispose([tokens, w, bias, mask, up, ...gf, ...gr]);
  });

  it('routes with attention maps that sum to 1 and does not leak tensors', () => {
    const model = brain.createTransformerEncoder({ grid: 4, channels: 5, dModel: 8, heads: 2 }, regions, 6, 0);
    const x = tf.tensor3d(Float32Array.from(randomArray(2 * 16 * 5, 5)), [2, 16, 5]);
    const a = model.attention(x);
    expect(a.shape).toEqual([2, 2, 3, 16]);
    expectClose(tf.sum(a, 3), tf.ones([2, 2, 3]), {}, 'attention rows');
    expect(model.predict(x).shape).toEqual([2, 6]);
    expect(() => model.predict(tf.zeros([2, 16, 4]) as tf.Tensor3D)).toThrow(
      'features must be [b, 16, 5], got [2,16,4]',
    );
    expectNoLeak(() => {
      tf.dispose([model.predict(x), model.attention(x)]);
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.square(model.predict(x))) as tf.Scalar,
        Object.values(model.params),
      );
      tf.dispose([value, grads]);
    });
    expect(() =>
      brain.createTransformerEncoder(
        { grid: 4, channels: 5, dModel: 8, heads: 2 },
        [{ name: 'A', voxels: [0, 9] }],
        6,
        0,
      ),
    ).toThrow("region 'A' names voxel 9, outside [0, 6)");
    tf.dispose([a, x]);
    model.dispose();
  });
});

describe('ridge closed form', () => {
  beforeAll(async () => {
    await backend.ready();
  });

  it('primal and dual forms agree, and the chosen W solves the normal equations in float64', () => {
    const [n, P, V] = [30, 12, 3];
    const x = tf.tensor2d(Float32Array.from(randomArray(n * P, 7)), [n, P]);
    const y = brain.mat(n, V, randomArray(n * V, 8));
    const xv = tf.tensor2d(Float32Array.from(randomArray(10 * P, 9)), [10, P]);
    const yv = brain.mat(10, V, randomArray(10 * V, 10));
    const opts = { scales: [0.5] };
    const primal = brain.fitRidge(x, y, xv, yv, { ...opts, form: 'primal' });
    const dual = brain.fitRidge(x, y, xv, yv, { ...opts, form: 'dual' });
    expectClose(primal.weights, dual.weights, { rtol: 1e-3, atol: 1e-4 }, 'primal vs dual');
    // Gradient of ‖Yc − Xc W‖² + λ‖W‖² is zero: Xcᵀ(Xc W − Yc) + λ W = 0 (float64).
    const X = x.arraySync() as number[][];
    const mu = Array.from({ length: P }, (_, j) => X.reduce((a, r) => a + r[j], 0) / n);
    const my = Array.from(
      { length: V },
      (_, v) => Array.from({ length: n }, (_, i) => y.data[i * V + v]).reduce((a, b) => a + b, 0) / n,
    );
    const lam = primal.lambda[0];
    for (let v = 0; v < V; v++) {
      const w = Array.from({ length: P }, (_, j) => primal.weights[j * V + v]);
      const resid = X.map((r, i) => r.reduce((a, xij, j) => a + (xij - mu[j]) * w[j], 0) - (y.data[i * V + v] - my[v]));
      const grad = mu.map((m, j) => X.reduce((a, r, i) => a + (r[j] - m) * resid[i], 0) + lam * w[j]);
      expect(Math.max(...grad.map(Math.abs)), `voxel ${v}`).toBeLessThan(1e-3 * lam);
    }
    expect(() => brain.fitRidge(x, brain.mat(5, V), xv, yv)).toThrow('xTrain has 30 stimuli but yTrain has 5 rows');
    tf.dispose([x, xv]);
  });
});

describe('BrainSCUBA projection and InfoNCE', () => {
  beforeAll(async () => {
    await backend.ready();
  });

  it('the projection returns convex combinations of the embedding set, equal to the per-voxel reference', () => {
    const [V, M, D] = [4, 50, 6];
    const rng = new Rng(2);
    const natural = brain.l2normalise(
      tf.tensor2d(
        Array.from({ length: M * D }, () => rng.normal()),
        [M, D],
      ),
    );
    const w = tf.tensor2d(
      Array.from({ length: V * D }, () => rng.normal()),
      [V, D],
    );
    const { projected, mixing } = brain.projectToManifold(w, natural, 0.1);
    const p = mixing.arraySync() as number[][];
    for (const row of p) {
      expect(row.every((x) => x >= 0)).toBe(true);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
    expectClose(projected, tf.matMul(mixing, natural), {}, 'projected = mixing · natural');
    expectClose(
      projected,
      brain.projectNaive(w.arraySync() as number[][], natural.arraySync() as number[][], 0.1).flat(),
      { rtol: 1e-3, atol: 1e-5 },
      'naive',
    );
    // Very low temperature: the single most similar natural embedding.
    const hard = brain.projectToManifold(w, natural, 1e-4).projected.arraySync() as number[][];
    const sims = tf.matMul(brain.l2normalise(w), natural, false, true).arraySync() as number[][];
    const nat = natural.arraySync() as number[][];
    hard.forEach((h, v) => expectClose(h, nat[sims[v].indexOf(Math.max(...sims[v]))], { atol: 1e-4 }, 'argmax'));
    expect(() => brain.projectToManifold(w, tf.zeros([5, 3]) as tf.Tensor2D, 0.1)).toThrow(
      'weights [4,6] and natural embeddings [5,3]',
    );
    tf.dispose([natural, w, projected, mixing]);
  });

  it('InfoNCE equals the float64 reference and retrieval ranks the matching candidate', () => {
    const rng = new Rng(4);
    const z = brain.l2normalise(
      tf.tensor2d(
        Array.from({ length: 5 * 3 }, () => rng.normal()),
        [5, 3],
      ),
    );
    const e = brain.l2normalise(
      tf.tensor2d(
        Array.from({ length: 5 * 3 }, () => rng.normal()),
        [5, 3],
      ),
    );
    expectClose(
      [brain.infoNce(z, e, 0.2).dataSync()[0]],
      [brain.infoNceNaive(z.arraySync() as number[][], e.arraySync() as number[][], 0.2)],
      { rtol: 1e-4 },
      'infoNce',
    );
    const r = brain.retrieval(e, e, [1, 5]);
    expect(r.topk[1]).toBe(1);
    expectNoLeak(() => tf.dispose(brain.infoNce(z, e, 0.2)));
    tf.dispose([z, e]);
  });
});

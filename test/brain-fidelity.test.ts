/**
 * Brain encoder fidelity (#17): the official decoder layer against its float64 reference (outputs and gradients), the
 * encoder built on it, and the simulator's category-response variants against plain-loop references.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import {
  createTransformerEncoder,
  type DecoderLayerDims,
  type DecoderLayerParams,
  decoderLayerForward,
  decoderLayerKeys,
  decoderLayerNaive,
} from '../lib/papers/cogneuro/brain/encoder/transformer.js';
import {
  disposeSimulation,
  type Simulation,
  type SimulationConfig,
  simulate,
  simulateVariants,
} from '../lib/papers/cogneuro/brain/simulate/dataset.js';
import { DEFAULT_SCENES } from '../lib/papers/cogneuro/brain/simulate/scenes.js';
import {
  type CategoryResponse,
  createVisualSystem,
  defaultRegions,
  trueRoutedFeatures,
} from '../lib/papers/cogneuro/brain/simulate/voxels.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const dims: DecoderLayerDims = { b: 2, N: 4, C: 3, d: 4, heads: 2, R: 3, f: 5 };

/** Every parameter's shape under its key. */
function shapes({ C, d, R, f }: DecoderLayerDims): Record<string, number[]> {
  const out: Record<string, number[]> = { w_in: [C, d], b_in: [d], queries: [R, d], target: [d] };
  for (const k of ['wq', 'wk', 'wv', 'wo']) out[`cross.${k}`] = [d, d];
  for (const k of ['bq', 'bk', 'bv', 'bo']) out[`cross.${k}`] = [d];
  for (const n of ['ln2', 'ln3', 'ln_out']) {
    out[`${n}.gamma`] = [d];
    out[`${n}.beta`] = [d];
  }
  Object.assign(out, { 'mlp.w1': [d, f], 'mlp.b1': [f], 'mlp.w2': [f, d], 'mlp.b2': [d] });
  return out;
}

function layerParams(t: Record<string, tf.Tensor>): DecoderLayerParams {
  const norm = (n: string) => ({ gamma: t[`${n}.gamma`], beta: t[`${n}.beta`] });
  return {
    wIn: t.w_in,
    bIn: t.b_in,
    queries: t.queries,
    target: t.target,
    cross: {
      wq: t['cross.wq'],
      wk: t['cross.wk'],
      wv: t['cross.wv'],
      wo: t['cross.wo'],
      bq: t['cross.bq'],
      bk: t['cross.bk'],
      bv: t['cross.bv'],
      bo: t['cross.bo'],
    },
    ln2: norm('ln2'),
    mlp: { w1: t['mlp.w1'], b1: t['mlp.b1'], w2: t['mlp.w2'], b2: t['mlp.b2'] },
    ln3: norm('ln3'),
    lnOut: norm('ln_out'),
  };
}

describe.each(BACKENDS)('official decoder layer on %s', (name) => {
  beforeAll(async () => {
    await useBackend(name);
  });

  it('equals the float64 reference, outputs and gradients of every parameter and the features', () => {
    const sh = shapes(dims);
    expect(Object.keys(sh).sort()).toEqual([...decoderLayerKeys].sort());
    // Random values everywhere (gains around 1), so no sublayer hides behind a zero or an identity.
    const w: Record<string, Float64Array> = {};
    Object.entries(sh).forEach(([k, s], i) => {
      const n = s.reduce((a, c) => a * c, 1);
      w[k] = k.endsWith('gamma') ? randomArray(n, 100 + i, 0.5).map((x) => 1 + x) : randomArray(n, 100 + i, 0.8);
    });
    const { b, N, C, d, R } = dims;
    const x = randomArray(b * N * C, 7);
    const pe = randomArray(N * d, 8, 0.5);
    const up = randomArray(b * R * d, 9);
    const keys = Object.keys(sh);
    const tensors = () => Object.fromEntries(keys.map((k) => [k, tf.tensor(Float32Array.from(w[k]), sh[k])]));
    const t = tensors();
    const xt = tf.tensor3d(Float32Array.from(x), [b, N, C]);
    const pet = tf.tensor2d(Float32Array.from(pe), [N, d]);
    const upt = tf.tensor3d(Float32Array.from(up), [b, R, d]);
    const out = decoderLayerForward(layerParams(t), xt, pet, dims.heads);
    expectClose(out, decoderLayerNaive(w, x, pe, dims), { rtol: 1e-4, atol: 1e-5 }, 'tokens');
    const loss = () => decoderLayerNaive(w, x, pe, dims).reduce((a, o, i) => a + o * up[i], 0);
    const g = tf.grads((...args: tf.Tensor[]) => {
      const tt = Object.fromEntries(keys.map((k, i) => [k, args[i]]));
      return tf.sum(tf.mul(decoderLayerForward(layerParams(tt), args[keys.length] as tf.Tensor3D, pet, 2), upt));
    })([...keys.map((k) => t[k]), xt]);
    const tol = { rtol: 2e-3, atol: 2e-4 };
    keys.forEach((k, i) => expectClose(g[i], numericGrad(loss, w[k]), tol, `d ${k}`));
    expectClose(g[keys.length], numericGrad(loss, x), tol, 'd features');
    // The target's gain-free start z_0 = β1 reaches the output through both residuals.
    expect(Math.max(...Array.from(g[keys.indexOf('target')].dataSync(), Math.abs))).toBeGreaterThan(1e-3);
    tf.dispose([...Object.values(t), xt, pet, upt, out, ...g]);
  });

  it('the encoder on it: tokens, attention rows that sum to 1, parameter count, no leaks, bad layer named', () => {
    const regions = [
      { name: 'A', voxels: [0, 3, 4] },
      { name: 'B', voxels: [1, 2] },
      { name: 'C', voxels: [5] },
    ];
    const cfg = { grid: 4, channels: 5, dModel: 8, heads: 2 };
    const model = createTransformerEncoder(cfg, regions, 6, 0);
    expect(model.name).toBe('transformer');
    expect(model.config).toMatchObject({ layer: 'official', ffn: 11 });
    const x = tf.tensor3d(Float32Array.from(randomArray(2 * 16 * 5, 5)), [2, 16, 5]);
    const a = model.attention(x);
    expect(a.shape).toEqual([2, 2, 3, 16]);
    expectClose(tf.sum(a, 3), tf.ones([2, 2, 3]), {}, 'attention rows');
    // Region tokens come out of the final LayerNorm (gain 1, bias 0 at init): zero mean, unit variance per token.
    const tok = model.regionTokens(x);
    expectClose(tf.mean(tok, 2), tf.zeros([2, 3]), { atol: 1e-5 }, 'token mean');
    expect(model.predict(x).shape).toEqual([2, 6]);
    const sizes = Object.entries(model.params).reduce((s, [k, v]) => s + (k === 'readout' ? 0 : v.size), 0);
    expect(model.paramCount).toBe(sizes + 8 * 6);
    expectNoLeak(() => {
      tf.dispose([model.predict(x), model.attention(x)]);
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.square(model.predict(x))) as tf.Scalar,
        Object.values(model.params),
      );
      // Every parameter of the official layer is on the path to the prediction.
      expect(Object.keys(grads).length).toBe(Object.keys(model.params).length);
      tf.dispose([value, grads]);
    });
    const cross = createTransformerEncoder({ ...cfg, layer: 'cross-only' }, regions, 6, 0);
    expect(cross.name).toBe('cross-only');
    expect(cross.paramCount).toBe(5 * 8 + 8 + 3 * 8 + 2 * 64 + 8 * 6 + 6);
    expect(() => createTransformerEncoder({ ...cfg, layer: 'self' as 'official' }, regions, 6, 0)).toThrow(
      `createTransformerEncoder: layer must be 'official' or 'cross-only', got "self"`,
    );
    tf.dispose([a, x, tok]);
    model.dispose();
    cross.dispose();
  });
});

describe('simulator category-response variants', () => {
  const cfg: SimulationConfig = {
    scenes: DEFAULT_SCENES,
    features: { imageSize: 32, grid: 8, hidden: 24, channels: 32 },
    voxelsPerRegion: 3,
    snr: 1,
    tau: 6,
    selectivity: 2,
    prfScatter: 0.6,
    train: 40,
    validation: 10,
    test: 30,
    repeats: 2,
  };
  beforeAll(async () => {
    await backend.ready();
  });

  it('each variant matches its plain-loop formula, shares the weights, and only attention/prf have an oracle', () => {
    const base = simulate(cfg, 4);
    const x = base.test.features.dataSync();
    const [n, N, C] = base.test.features.shape;
    const responses: CategoryResponse[] = ['attention', 'max', 'conjunction', 'prf'];
    const list = simulateVariants(cfg, 4, responses);
    const sims = Object.fromEntries(responses.map((r, i) => [r, list[i]])) as Record<CategoryResponse, Simulation>;
    for (const r of responses) {
      const sim = sims[r];
      expect(sim.test.features).toBe(list[0].test.features); // shared, not recomputed
      const sys = sim.system;
      expect(Array.from(sys.weights)).toEqual(Array.from(base.system.weights));
      // Float64 raw signal of every category voxel from the weights, standardised with the system's own statistics.
      for (const v of sys.regions.filter((g) => g.kind === 'category').flatMap((g) => g.voxels)) {
        for (let i = 0; i < n; i++) {
          const dot = (wts: Float32Array, cell: number) => {
            let s = 0;
            for (let c = 0; c < C; c++) s += wts[v * C + c] * x[(i * N + cell) * C + c];
            return s;
          };
          let raw: number;
          if (r === 'max') raw = Math.max(...Array.from({ length: N }, (_, j) => dot(sys.weights, j)));
          else if (r === 'conjunction') {
            let a = 0;
            let b2 = 0;
            for (let j = 0; j < N; j++) {
              a += Math.max(dot(sys.weights, j), 0) / N;
              b2 += Math.max(dot(sys.partnerWeights, j), 0) / N;
            }
            raw = a * b2;
          } else if (r === 'prf') {
            raw = 0;
            for (let j = 0; j < N; j++) raw += sys.prf[v * N + j] * dot(sys.weights, j);
          } else continue;
          const want = (raw - sys.signalMean[v]) / sys.signalStd[v];
          expect(
            Math.abs(sim.test.signal.data[i * sys.voxelCount + v] - want),
            `${r} voxel ${v} image ${i}`,
          ).toBeLessThan(1e-3 * (1 + Math.abs(want)));
        }
      }
    }
    // The default is the attention simulator, responses and all; early voxels are the same in every variant.
    expect(Array.from(sims.attention.test.responses.data)).toEqual(Array.from(base.test.responses.data));
    const V = base.system.voxelCount;
    const early = base.system.regions.filter((g) => g.kind === 'early').flatMap((g) => g.voxels);
    for (let i = 0; i < n; i++)
      for (const v of early)
        expect(sims.max.test.signal.data[i * V + v]).toBeCloseTo(base.test.signal.data[i * V + v], 5);
    expect(() => trueRoutedFeatures(sims.max.system, sims.max.test.features, sims.max.test.coverage)).toThrow(
      "trueRoutedFeatures: the true routing is a per-voxel linear map only for categoryResponse 'attention' or 'prf', got 'max'",
    );
    const sysCfg = { regions: defaultRegions(1, 8), snr: 1, tau: 6, selectivity: 2, prfScatter: 0.6 };
    expect(() =>
      createVisualSystem({ ...sysCfg, categoryResponse: 'sum' as 'max' }, base.test.features, base.test.coverage, 4),
    ).toThrow('createVisualSystem: categoryResponse must be one of attention, max, conjunction, prf, got "sum"');
    const before = tf.memory().numTensors;
    for (const s of list) disposeSimulation(s);
    // The four share one extractor (w1, w2, mean, std) and one features + coverage pair per split, freed once.
    expect(before - tf.memory().numTensors).toBe(4 + 6);
    disposeSimulation(base);
  }, 60_000);
});

/**
 * OAT fidelity (#17): the CNN appearance path (object crops of the rendered display, the CNN against a float64 loop in
 * outputs and gradients, gradients reaching every CNN weight through the OAT loss, the target token, no leaks), the
 * validation split (layouts disjoint from train and both test splits; train and test unchanged by it), and the
 * experiment's choices: the headline is the paper's model, and the learning rate and the history lags are the
 * validation-NLL minimisers, independent of the test split.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { CROP_PX, objectCrops, targetCrop } from '../lib/data/visual-search/crops.js';
import { CELL_PX, layoutKey, productId, renderDisplay, renderTarget } from '../lib/data/visual-search/displays.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { type CropCnn64, cropCnn, cropCnn64 } from '../lib/papers/cogneuro/oat/appearance.js';
import {
  appearanceTokens,
  createOat,
  DEFAULT_VISUAL_SEARCH,
  decodeScanpaths,
  disposeOat,
  disposeOatInputs,
  disposeOatTargets,
  makeDisplay,
  makeSplits,
  OAT_EXPERIMENT,
  type OatArtifacts,
  oatConfig,
  oatInputs,
  oatLoss,
  oatScanpath,
  oatStepPredictions,
  oatTargets,
  pairedDifference,
  type SearchDisplay,
  simulateScanpath,
  sourceTokens,
} from '../lib/papers/cogneuro/oat/index.js';
import { Rng } from '../lib/util/random.js';
import { ShapeError } from '../lib/util/shapes.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const tiny = {
  ...OAT_EXPERIMENT.quick,
  dModel: 16,
  heads: 2,
  encoderLayers: 1,
  decoderLayers: 1,
  cnnChannels: [2, 3] as [number, number],
};
const cnnModel = (seed = 0) =>
  createOat(oatConfig(tiny, { position: 'gaussian2d', appearance: 'cnn', historyLags: 0 }, seed));

const displays = (): SearchDisplay[] => {
  const rng = new Rng(4);
  return [makeDisplay({ rows: 3, cols: 6, target: 9 }, rng), makeDisplay({ rows: 4, cols: 6, target: 77 }, rng)];
};

describe('object crops', () => {
  it('crop j is the cell of the render around object j; the target crop is renderTarget', () => {
    for (const layout of ['shelf', 'clutter'] as const) {
      const d = makeDisplay({ layout, rows: 3, cols: 5, target: 40 }, new Rng(layout === 'shelf' ? 1 : 2));
      const img = renderDisplay(d);
      const crops = objectCrops(d);
      const s = CROP_PX;
      expect(crops).toHaveLength(d.objects.length * s * s * 3);
      d.objects.forEach((o, j) => {
        const x0 = Math.floor(o.x * CELL_PX - CELL_PX / 2),
          y0 = Math.floor(o.y * CELL_PX - CELL_PX / 2);
        for (let y = 0; y < s; y++)
          for (let x = 0; x < s; x++)
            for (let c = 0; c < 3; c++) {
              const inside = y0 + y >= 0 && y0 + y < img.height && x0 + x >= 0 && x0 + x < img.width;
              const want = inside ? img.data[((y0 + y) * img.width + x0 + x) * 3 + c] : Math.fround(0.92);
              expect(crops[((j * s + y) * s + x) * 3 + c]).toBe(want);
            }
      });
      expect(Array.from(targetCrop(d))).toEqual(Array.from(renderTarget(d).data));
      // Different products give different crops (the CNN has something to see).
      const a = crops.subarray(0, s * s * 3),
        differs = d.objects.some(
          (_, j) => j > 0 && crops.subarray(j * s * s * 3, (j + 1) * s * s * 3).some((v, i) => v !== a[i]),
        );
      expect(differs).toBe(true);
    }
  });
});

/** The tf CNN's variables as float64 arrays for the reference. */
function weights64(W: Record<string, tf.Tensor>, c1: number, c2: number, out: number): CropCnn64 {
  const f = (k: string) => Float64Array.from(W[k].dataSync());
  return { c1, c2, out, w1: f('w1'), b1: f('b1'), w2: f('w2'), b2: f('b2'), wf: f('wf'), bf: f('bf') };
}

for (const name of BACKENDS) {
  describe(`CNN appearance path on ${name}`, () => {
    beforeAll(() => useBackend(name));

    it('equals the float64 loop, outputs and gradients (every weight and the input)', () => {
      const [B, s, c1, c2, out] = [3, 8, 2, 3, 4];
      const shapes: Record<string, number[]> = {
        w1: [3, 3, 3, c1],
        b1: [c1],
        w2: [3, 3, c1, c2],
        b2: [c2],
        wf: [5 * c2, out],
        bf: [out],
      };
      const W: Record<string, tf.Tensor> = {};
      Object.entries(shapes).forEach(([k, sh], i) => {
        W[k] = tf.tensor(
          Float32Array.from(
            randomArray(
              sh.reduce((a, b) => a * b, 1),
              10 + i,
              0.6,
            ),
          ),
          sh,
        );
      });
      const x64 = randomArray(B * s * s * 3, 3, 1);
      const x = tf.tensor4d(Float32Array.from(x64), [B, s, s, 3]);
      const y = cropCnn(W as never, x);
      expect(y.shape).toEqual([B, out]);
      const ref = cropCnn64(weights64(W, c1, c2, out), x64, B, s);
      expectClose(y, ref, { rtol: 1e-4, atol: 1e-5 });
      // Gradients of L = Σ r · y against central differences of the float64 loop.
      const r = randomArray(B * out, 7, 1);
      const rT = tf.tensor2d(Float32Array.from(r), [B, out]);
      const keys = Object.keys(shapes);
      const grads = tf.grads((...args: tf.Tensor[]) => {
        const w = Object.fromEntries(keys.map((k, i) => [k, args[i]]));
        return cropCnn(w as never, args[keys.length] as tf.Tensor4D)
          .mul(rT)
          .sum();
      })([...keys.map((k) => W[k]), x]);
      const ref64 = weights64(W, c1, c2, out);
      const loss = (wts: CropCnn64, xx: Float64Array) => cropCnn64(wts, xx, B, s).reduce((a, v, i) => a + v * r[i], 0);
      keys.forEach((k, i) => {
        const arr = ref64[k as keyof CropCnn64] as Float64Array;
        expectClose(
          grads[i],
          numericGrad(() => loss(ref64, x64), arr, 1e-6),
          { rtol: 2e-3, atol: 2e-4 },
        );
      });
      expectClose(
        grads[keys.length],
        numericGrad(() => loss(ref64, x64), x64, 1e-6),
        { rtol: 2e-3, atol: 2e-4 },
      );
      tf.dispose([...Object.values(W), x, y, rT, ...grads]);
    });

    it('gives OAT source tokens [b, S, E], gradients on every CNN weight, e_T on the target token only', () => {
      const m = cnnModel();
      const ds = displays();
      const x = oatInputs(m, ds);
      expect(x.crops!.shape).toEqual([ds.length * (x.N + 1), CROP_PX, CROP_PX, 3]);
      // The CNN reads the crops centred on the background: token 1 + j of display 0 is objectCrops(d)[j] − 0.92.
      const c = CROP_PX * CROP_PX * 3;
      const got = x.crops!.dataSync().subarray(c, 2 * c);
      const want = objectCrops(ds[0]).subarray(0, c);
      for (let i = 0; i < c; i++) expect(got[i]).toBeCloseTo(want[i] - 0.92, 6);
      const tok = sourceTokens(m, x);
      expect(tok.shape).toEqual([2, x.N + 1, 16]);
      tok.dispose();
      // appearance = CNN(crop) everywhere, + e_T on token 0 (the target's template).
      const app = appearanceTokens(m, x);
      const P = m.params;
      const W = Object.fromEntries(['w1', 'b1', 'w2', 'b2', 'wf', 'bf'].map((k) => [k, P[`embed.cnn.${k}`]]));
      const plain = cropCnn(W as never, x.crops!).reshape([2, x.N + 1, 8]);
      const diff = app.sub(plain);
      const d = diff.arraySync() as number[][][];
      const eT = Array.from(P['embed.target'].dataSync());
      for (let r = 0; r < 2; r++) {
        expectClose(d[r][0], eT, { rtol: 1e-5, atol: 1e-6 });
        for (let t = 1; t <= x.N; t++) expect(Math.max(...d[r][t].map(Math.abs))).toBeLessThan(1e-6);
      }
      tf.dispose([app, plain, diff]);
      const paths = ds.map((dd, i) => simulateScanpath(dd, new Rng(i)));
      const t = oatTargets(paths, x.N);
      const { grads, value } = tf.variableGrads(() => oatLoss(m, x, t));
      const g = (key: string) => grads[m.params[key].name];
      for (const k of ['w1', 'b1', 'w2', 'b2', 'wf', 'bf'])
        expect(Math.max(...Array.from(g(`embed.cnn.${k}`).dataSync()).map(Math.abs))).toBeGreaterThan(0);
      expect(Math.max(...Array.from(g('embed.target').dataSync()).map(Math.abs))).toBeGreaterThan(0);
      expect(m.params['embed.wa']).toBeUndefined();
      tf.dispose([value, ...Object.values(grads)]);
      disposeOatTargets(t);
      disposeOatInputs(x);
      disposeOat(m);
    });

    it('leaves no tensors behind (inputs, loss and gradients, decoding, step predictions)', () => {
      const m = cnnModel(1);
      const ds = displays();
      const trials = ds.map((d, i) => ({ display: d, scanpath: simulateScanpath(d, new Rng(i)), subject: 's' }));
      expectNoLeak(() => {
        const x = oatInputs(m, ds);
        const t = oatTargets(
          trials.map((tr) => tr.scanpath),
          x.N,
        );
        tf.tidy(() => {
          tf.variableGrads(() => oatLoss(m, x, t));
        });
        disposeOatTargets(t);
        disposeOatInputs(x);
        decodeScanpaths(m, ds, { mode: 'greedy', maxFixations: 5 });
        oatStepPredictions(m, trials);
      });
      disposeOat(m);
    });
  });
}

describe('bad input names the function, the argument and the value', () => {
  it('createOat, cropCnn, appearanceTokens, pairedDifference', () => {
    expect(() =>
      createOat({
        ...oatConfig(tiny, { position: 'gaussian2d', appearance: 'cnn', historyLags: 0 }, 0),
        appearance: 'pixels' as never,
      }),
    ).toThrow(/createOat: appearance must be 'onehot' or 'cnn', got 'pixels'/);
    const W = {} as never;
    const x = tf.zeros([2, 6, 6, 3]) as tf.Tensor4D;
    expect(() => cropCnn(W, x)).toThrow(ShapeError);
    expect(() => cropCnn(W, x)).toThrow(
      /cropCnn: x must have shape \[B, s, s, 3\] with s a multiple of 4, got \[2, 6, 6, 3\]/,
    );
    x.dispose();
    const m = cnnModel();
    const onehot = createOat(oatConfig(tiny, { position: 'gaussian2d', appearance: 'onehot', historyLags: 0 }, 0));
    const inputs = oatInputs(onehot, displays()); // built for a one-hot model: no crops
    expect(() => appearanceTokens(m, inputs)).toThrow(
      /appearanceTokens: the model's appearance is 'cnn' but the inputs have no crops/,
    );
    disposeOatInputs(inputs);
    disposeOat(m);
    disposeOat(onehot);
    expect(() => pairedDifference([1, 2], [1])).toThrow(/pairedDifference: 2 values vs 1/);
    const d = pairedDifference([0.5, 0.7, 0.2], [0.4, 0.4, 0.4]);
    expect(d.mean).toBeCloseTo(0.2 / 3, 12);
  });
});

describe('validation split', () => {
  it('draws layouts disjoint from train and both test splits, and leaves train and test unchanged', () => {
    const counts = { train: 300, test: 40 };
    const a = makeSplits(DEFAULT_VISUAL_SEARCH, { ...counts, validation: 40 }, 5);
    const b = makeSplits(DEFAULT_VISUAL_SEARCH, counts, 5);
    expect(a.validation).toHaveLength(40);
    expect(b.validation).toHaveLength(0);
    const key = (ts: { display: SearchDisplay }[]) => ts.map((t) => layoutKey(t.display));
    expect(key(a.train)).toEqual(key(b.train));
    expect(key(a.testLayout)).toEqual(key(b.testLayout));
    expect(key(a.testTarget)).toEqual(key(b.testTarget));
    const val = new Set(key(a.validation));
    for (const k of [...key(a.train), ...key(a.testLayout), ...key(a.testTarget)]) expect(val.has(k)).toBe(false);
    const unseen = new Set(a.unseenTargets);
    for (const t of a.validation) {
      const o = t.display.objects[t.display.target];
      expect(unseen.has(productId(o))).toBe(false); // seen targets only
    }
  });
});

describe('oat-scanpath choices (tiny full config)', () => {
  beforeAll(async () => {
    await backend.ready();
  });

  it('headline = the paper model; lr and lags are the validation-NLL minimisers, whatever the test split', async () => {
    const overrides = {
      train: 120,
      validation: 8,
      test: 6,
      dModel: 16,
      heads: 2,
      encoderLayers: 1,
      decoderLayers: 1,
      steps: 4,
      evalEvery: 2,
      batch: 8,
      pixelSteps: 2,
      samples: 1,
      cnnChannels: [2, 3] as [number, number],
      lrs: [1e-3, 1e-2],
      historyLags: [2, 4],
    };
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(oatScanpath, { quick: false, seed: 1, progress: false, keep: true, overrides });
    const a = r.artifacts as OatArtifacts;
    expect([...a.models.oat.keys()]).toEqual(['oat', 'oat-1d', 'oat-cnn', 'oat+history']);
    const v = (k: string) => a.models.oat.get(k)!.variant;
    expect(v('oat')).toMatchObject({ position: 'gaussian2d', appearance: 'onehot', historyLags: 0 });
    expect(v('oat-1d')).toMatchObject({ position: 'sinusoidal1d', appearance: 'onehot', historyLags: 0 });
    expect(v('oat+history')).toMatchObject({ position: 'gaussian2d', appearance: 'onehot' });
    expect(v('oat-cnn')).toMatchObject({ position: 'gaussian2d', appearance: 'cnn', historyLags: 0 });
    const sel = a.models.selection;
    for (const model of ['oat', 'oat+history']) {
      const rows = sel.filter((s) => s.model === model);
      expect(rows).toHaveLength(2);
      const best = rows.reduce((p, q) => (q.validation_nll < p.validation_nll ? q : p));
      expect(rows.filter((s) => s.chosen)).toEqual([best]);
    }
    expect(v('oat').lr).toBe(r.metrics.validation_oat_lr);
    expect(v('oat-1d').lr).toBe(v('oat').lr);
    expect(v('oat+history').historyLags).toBe(r.metrics['validation_oat+history_lags']);
    for (const split of ['layout', 'target'])
      for (const k of ['seq_score_ci95', 'step_acc_ci95', 'nll_ci95'])
        expect(r.metrics[`test_${split}_oat_${k}`]).toBeGreaterThanOrEqual(0);
    expect(r.metrics).toHaveProperty('test_layout_oat_minus_oat-1d_seq_score_ci95');
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // A different test split (size) changes no choice: they are made on validation only.
    const r2 = await runExperimentWith(oatScanpath, {
      quick: false,
      seed: 1,
      progress: false,
      overrides: { ...overrides, test: 3 },
    });
    expect(r2.tables!.selection).toEqual(r.tables!.selection);
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);
});

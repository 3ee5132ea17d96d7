/**
 * OAT model: the batched pointer head and history bias against float64 loops (outputs and gradients), the one-hot
 * decoder inputs against a gather loop, padding and causality invariances, step-wise decoding against the teacher-forced
 * pass, seeded reproducibility, clear errors, no tensor leaks, overfitting a small batch, the pixel baseline, and the
 * registered experiment's metric names on a tiny config.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { getExperiment, runExperiment } from '../lib/catalog.js';
import type { OatArtifacts } from '../lib/papers/cogneuro/oat/experiment.js';
import {
  createOat,
  createPixelModel,
  DEFAULT_VISUAL_SEARCH,
  decoderInputs,
  decodeScanpaths,
  disposeOat,
  disposeOatInputs,
  disposeOatTargets,
  disposePixelModel,
  historyBias,
  makeDisplay,
  makeSplits,
  OAT_EXPERIMENT,
  type OatModel,
  oatAttentionMaps,
  oatConfig,
  oatInputs,
  oatLogits,
  oatLoss,
  oatStepPredictions,
  oatTargets,
  pixelLoss,
  pixelPolicy,
  pointerLogits,
  rollout,
  type SearchDisplay,
  simulateScanpath,
  sourceTokens,
} from '../lib/papers/cogneuro/oat/index.js';
import { Rng } from '../lib/util/random.js';
import { ShapeError } from '../lib/util/shapes.js';
import {
  BACKENDS,
  expectClose,
  expectNoLeak,
  numericGrad,
  randomArray,
  type Tolerance,
  useBackend,
} from './helpers.js';

const TOL: Tolerance = { rtol: 1e-4, atol: 2e-5 };
const GRAD_TOL: Tolerance = { rtol: 2e-3, atol: 2e-4 };

const tiny = { ...OAT_EXPERIMENT.quick, dModel: 16, heads: 2, encoderLayers: 1, decoderLayers: 1 };
/** The one-hot model with a 6-lag history bias: the pointer and history math these tests check. */
const variant = (position: 'gaussian2d' | 'sinusoidal1d' = 'gaussian2d') =>
  ({ position, appearance: 'onehot', historyLags: 6 }) as const;
const model = (seed = 0, position: 'gaussian2d' | 'sinusoidal1d' = 'gaussian2d'): OatModel =>
  createOat(oatConfig(tiny, variant(position), seed));

/** logits[b, i, 1 + j] = Σ_c r_c (h_i W_dc + b_dc)·(m_{1+j} W_ec + b_ec) / √E + r_0, END = r_0, in float64. */
function naivePointer(
  h: number[][][],
  mem: number[][][],
  P: Record<string, number[][] | number[]>,
  C: number,
): number[][][] {
  const E = h[0][0].length;
  const lin = (x: number[], w: number[][], b: number[]) =>
    w[0].map((_, k) => x.reduce((a, xv, l) => a + xv * w[l][k], b[k]));
  const r = P['ptr.readout'] as number[],
    r0 = (P['ptr.readoutBias'] as number[])[0];
  return h.map((hb, bi) =>
    hb.map((hi) => {
      const row = [r0];
      for (let j = 1; j < mem[bi].length; j++) {
        let s = r0;
        for (let c = 0; c < C; c++) {
          const q = lin(hi, P[`ptr.${c}.wd`] as number[][], P[`ptr.${c}.bd`] as number[]);
          const k = lin(mem[bi][j], P[`ptr.${c}.we`] as number[][], P[`ptr.${c}.be`] as number[]);
          s += (r[c] * q.reduce((a, qv, l) => a + qv * k[l], 0)) / Math.sqrt(E);
        }
        row.push(s);
      }
      return row;
    }),
  );
}

const displays = (): SearchDisplay[] => {
  const rng = new Rng(3);
  return [makeDisplay({ rows: 3, cols: 6, target: 11 }, rng), makeDisplay({ rows: 4, cols: 6, target: 70 }, rng)];
};

for (const name of BACKENDS) {
  describe(`OAT math on ${name}`, () => {
    beforeAll(() => useBackend(name));

    it('pointer head equals the float64 loop, outputs and gradients', () => {
      const m = model();
      const E = m.config.dModel,
        C = m.config.caHeads;
      const [b, steps, S] = [2, 3, 5];
      const hv = randomArray(b * steps * E, 1),
        mv = randomArray(b * S * E, 2);
      // Non-trivial readout so both heads matter.
      m.params['ptr.readout'].assign(tf.tensor1d([0.7, -0.4]));
      m.params['ptr.readoutBias'].assign(tf.tensor1d([0.3]));
      const P = Object.fromEntries(
        Object.entries(m.params)
          .filter(([k]) => k.startsWith('ptr.'))
          .map(([k, v]) => [k, v.arraySync() as number[][]]),
      );
      const nest = (a: Float64Array, d: number[]) =>
        tf.tidy(() => tf.tensor(Array.from(a), d).arraySync() as number[][][]);
      const got = tf.tidy(() =>
        pointerLogits(
          m,
          tf.tensor3d(Array.from(hv), [b, steps, E]),
          tf.tensor3d(Array.from(mv), [b, S, E]),
        ).arraySync(),
      );
      expectClose(
        (got as number[][][]).flat(2),
        naivePointer(nest(hv, [b, steps, E]), nest(mv, [b, S, E]), P, C).flat(2),
        TOL,
        'logits',
      );
      // d(Σ w·logits)/dh against finite differences of the float64 loop.
      const wv = randomArray(b * steps * S, 3);
      const g = tf.tidy(() =>
        tf
          .grad((h: tf.Tensor) =>
            pointerLogits(m, h as tf.Tensor3D, tf.tensor3d(Array.from(mv), [b, S, E]))
              .mul(tf.tensor3d(Array.from(wv), [b, steps, S]))
              .sum(),
          )(tf.tensor3d(Array.from(hv), [b, steps, E]))
          .dataSync(),
      );
      const h64 = Array.from(hv);
      const num = numericGrad(
        () =>
          naivePointer(nest(Float64Array.from(h64), [b, steps, E]), nest(mv, [b, S, E]), P, C)
            .flat(2)
            .reduce((a, v, i) => a + v * wv[i], 0),
        h64,
        1e-4,
      );
      expectClose(g, num, GRAD_TOL, 'dlogits/dh');
      disposeOat(m);
    });

    it('history bias equals the loop Σ_{s ≤ i} w[i − s] [f_{s-1} = j]; decoder inputs equal a gather', () => {
      const m = model();
      const w = Array.from(randomArray(6, 4));
      m.params['ptr.history'].assign(tf.tensor1d(w));
      const paths = [
        [2, 2, 0, 5],
        [1, 3],
      ];
      const t = oatTargets(paths, 6);
      const bias = tf.tidy(() => historyBias(m, t.prev).arraySync());
      const ref = paths.map((p) =>
        Array.from({ length: t.m }, (_, i) => [
          0,
          ...Array.from({ length: 6 }, (_, j) => {
            let s = 0;
            for (let k = 1; k <= i && k <= p.length; k++) if (p[k - 1] === j && i - k < 6) s += w[i - k];
            return s;
          }),
        ]),
      );
      expectClose(bias.flat(2), ref.flat(2), TOL, 'history bias');
      const ds = displays();
      const x = oatInputs(m, ds);
      const t2 = oatTargets(
        [
          [3, 1],
          [20, 20, 4],
        ],
        x.N,
      );
      const [got, tok] = tf.tidy(() => {
        const tokens = sourceTokens(m, x);
        return [decoderInputs(m, tokens, t2.prev).arraySync(), tokens.arraySync()];
      });
      const bos = m.params['dec.bos'].arraySync() as number[];
      const pe = sinusoidalRows(t2.m, m.config.dModel);
      [
        [3, 1],
        [20, 20, 4],
      ].forEach((p, r) => {
        for (let i = 0; i < t2.m; i++) {
          // Step 0 and padding steps (no previous fixation) read BOS.
          const base = i > 0 && i - 1 < p.length ? tok[r][1 + p[i - 1]] : bos;
          expectClose(
            got[r][i],
            base.map((v, k) => v + pe[i][k]),
            TOL,
            `decoder input ${r},${i}`,
          );
        }
      });
      disposeOatTargets(t);
      disposeOatTargets(t2);
      disposeOatInputs(x);
      disposeOat(m);
    });
  });
}

/** Sinusoidal codes as plain arrays (the formula of lib/positional). */
function sinusoidalRows(n: number, dim: number): number[][] {
  return Array.from({ length: n }, (_, p) =>
    Array.from({ length: dim }, (_, k) => {
      const a = p / 10000 ** ((2 * Math.floor(k / 2)) / dim);
      return k % 2 === 0 ? Math.sin(a) : Math.cos(a);
    }),
  );
}

describe('OAT model behaviour', () => {
  beforeAll(async () => {
    await backend.ready();
  });

  it("does not change a display's logits when batched with a larger one (padding), nor earlier steps when later fixations change (causality)", () => {
    const m = model();
    const [small, big] = displays();
    const path = simulateScanpath(small, new Rng(1));
    const logits = (ds: SearchDisplay[], paths: number[][]) => {
      const x = oatInputs(m, ds);
      const t = oatTargets(paths, x.N);
      const out = tf.tidy(() => oatLogits(m, x, t.prev).arraySync());
      disposeOatTargets(t);
      disposeOatInputs(x);
      return out;
    };
    const alone = logits([small], [path]);
    const batched = logits([small, big], [path, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]);
    for (let i = 0; i <= path.length; i++)
      expectClose(batched[0][i].slice(0, small.objects.length + 1), alone[0][i], TOL, `step ${i}`);
    const a = logits([small], [[4, 5, 6, 7]]),
      b = logits([small], [[4, 5, 9, 0]]);
    for (let i = 0; i <= 2; i++) expectClose(b[0][i], a[0][i], TOL, `causal step ${i}`);
    disposeOat(m);
  });

  it('decodes greedily step by step exactly as the teacher-forced argmax on its own output', () => {
    const m = model(2);
    const ds = displays();
    const paths = decodeScanpaths(m, ds, { mode: 'greedy', maxFixations: 8 });
    const trials = ds.map((d, i) => ({ display: d, scanpath: paths[i], subject: 'model' }));
    const pred = oatStepPredictions(m, trials).predicted;
    trials.forEach((t, i) => {
      const expected = [...t.scanpath, -1];
      // The forced END at the cap is not the model's choice.
      const n = t.scanpath.length === 8 ? 8 : 9;
      expect(pred[i].slice(0, n)).toEqual(expected.slice(0, n));
    });
    disposeOat(m);
  });

  it('is reproducible per seed (weights and sampled scanpaths) and rejects bad arguments clearly', () => {
    const [a, b, c] = [model(5), model(5), model(6)];
    expectClose(a.params['enc.0.attn.wq'], b.params['enc.0.attn.wq'], { rtol: 0, atol: 0 });
    expect(Array.from(a.params['enc.0.attn.wq'].dataSync())).not.toEqual(
      Array.from(c.params['enc.0.attn.wq'].dataSync()),
    );
    const ds = displays();
    const s1 = decodeScanpaths(a, ds, { mode: 'sample', maxFixations: 10, rng: new Rng(9) });
    const s2 = decodeScanpaths(b, ds, { mode: 'sample', maxFixations: 10, rng: new Rng(9) });
    expect(s2).toEqual(s1);
    expect(() => decodeScanpaths(a, ds, { mode: 'sample', maxFixations: 10 })).toThrow(/mode 'sample' needs opts.rng/);
    expect(() => createOat({ ...oatConfig(tiny, variant(), 0), dModel: 18 })).toThrow(ShapeError);
    expect(() => createOat({ ...oatConfig(tiny, variant(), 0), dModel: 18 })).toThrow(
      /dModel must be a positive multiple of 4, got 18/,
    );
    const wrong = createOat({ ...oatConfig(tiny, variant(), 0), featureDim: 7 });
    expect(() => oatInputs(wrong, ds)).toThrow(/has 15 features per object but the model takes featureDim = 7/);
    expect(() => oatTargets([[30]], 24)).toThrow(/scanpaths\[0\]\[0\] = 30 is not an object index below 24/);
    for (const m of [a, b, c, wrong]) disposeOat(m);
  });

  it('leaves no tensors behind (loss, decoding, step predictions, attention maps, pixel model)', () => {
    const m = model();
    const px = createPixelModel(16, 0);
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
      decodeScanpaths(m, ds, { mode: 'sample', maxFixations: 5, rng: new Rng(0) });
      oatStepPredictions(m, trials);
      oatAttentionMaps(m, trials[0]);
      tf.dispose(pixelLoss(px, trials));
      rollout(pixelPolicy(px, ds, 5), ds[0], new Rng(0));
    });
    disposeOat(m);
    disposePixelModel(px);
  });

  it('fits a small batch (teacher-forcing loss falls by more than half)', async () => {
    const m = model(1, 'sinusoidal1d');
    const s = makeSplits(DEFAULT_VISUAL_SEARCH, { train: 8, test: 1 }, 2);
    const x = oatInputs(
      m,
      s.train.map((t) => t.display),
    );
    const t = oatTargets(
      s.train.map((tr) => tr.scanpath),
      x.N,
    );
    const opt = tf.train.adam(1e-2);
    const first = tf.tidy(() => oatLoss(m, x, t).dataSync()[0]);
    for (let i = 0; i < 80; i++)
      tf.tidy(() => {
        opt.minimize(() => oatLoss(m, x, t), false, Object.values(m.params));
      });
    const last = tf.tidy(() => oatLoss(m, x, t).dataSync()[0]);
    expect(last).toBeLessThan(first / 2);
    opt.dispose();
    disposeOatTargets(t);
    disposeOatInputs(x);
    disposeOat(m);
  });

  it('attention maps cover the objects and the target token', () => {
    const m = model();
    const [d] = displays();
    const maps = oatAttentionMaps(m, { display: d, scanpath: [1, 2], subject: 's' });
    expect(Object.keys(maps).sort()).toEqual(['dec.0.cross', 'enc.0.attn', 'pointer']);
    const enc = maps['enc.0.attn'] as number[][][];
    expect([enc.length, enc[0].length, enc[0][0].length]).toEqual([2, d.objects.length + 1, d.objects.length + 1]);
    const ptr = maps.pointer as number[][];
    expect(ptr).toHaveLength(3);
    for (const row of ptr) expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    disposeOat(m);
  });
});

describe('oat-scanpath experiment', () => {
  beforeAll(async () => {
    await backend.ready();
  });

  it('is registered and reports every model on both splits with the ceiling (tiny config)', async () => {
    const e = getExperiment('oat-scanpath');
    expect(e.paper).toMatch(/2407\.13335/);
    const overrides = {
      train: 200,
      validation: 10,
      test: 12,
      dModel: 16,
      heads: 2,
      steps: 6,
      evalEvery: 3,
      pixelSteps: 3,
      samples: 1,
      batch: 8,
      cnnChannels: [2, 4] as [number, number],
    };
    const before = tf.memory().numTensors;
    const r = await runExperiment('oat-scanpath', { quick: true, seed: 0, progress: false, keep: true, overrides });
    for (const split of ['layout', 'target']) {
      for (const mdl of [
        'ceiling',
        'oat',
        'oat-sample',
        'oat-1d',
        'oat-1d-sample',
        'random',
        'nearest',
        'similarity',
        'pixel',
      ]) {
        for (const k of ['seq_score', 'edit_distance', 'found_rate', 'length', 'delta', 'step_acc'])
          expect(r.metrics).toHaveProperty(`test_${split}_${mdl}_${k}`);
      }
      expect(r.metrics[`test_${split}_bayes_step_acc`]).toBeGreaterThan(r.metrics[`test_${split}_random_step_acc`]);
      expect(r.metrics[`test_${split}_ceiling_delta`]).toBeLessThan(0.5);
    }
    expect(r.tables!.results).toHaveLength(22);
    expect(r.summary).toMatch(/unseen layouts: OAT .* ceiling .*; unseen targets/);
    // The artifacts: the splits, the trained models and each split's scores and scanpaths, as the metrics report them.
    const a = r.artifacts as OatArtifacts;
    expect(a.splits.train).toHaveLength(200);
    expect([...a.models.oat.keys()]).toEqual(['oat', 'oat-1d', 'oat-cnn']);
    // The headline is the paper's model (the Gaussian 2-D code, no history bias; one-hot appearance), the CNN a row.
    expect(a.models.oat.get('oat')!.variant).toMatchObject({
      appearance: 'onehot',
      position: 'gaussian2d',
      historyLags: 0,
    });
    expect(a.models.oat.get('oat-cnn')!.variant).toMatchObject({ appearance: 'cnn', historyLags: 0 });
    expect(a.models.oat.get('oat-1d')!.variant).toMatchObject({ position: 'sinusoidal1d', historyLags: 0 });
    expect(a.splits.validation).toHaveLength(10);
    expect(r.metrics.validation_oat_nll).toBeGreaterThan(0);
    expect([3, 6]).toContain(r.metrics.validation_oat_best_step);
    expect(a.models.oat.get('oat')!.losses).toHaveLength(6);
    expect(a.models.pixel.losses).toHaveLength(3);
    for (const [split, trials] of [
      ['layout', a.splits.testLayout],
      ['target', a.splits.testTarget],
    ] as const) {
      const ev = a.evaluations[split];
      expect(ev.scanpaths.oat).toHaveLength(trials.length);
      expect(ev.scanpaths['oat-sample']).toHaveLength(trials.length);
      expect(ev.bayesStepAcc).toBe(r.metrics[`test_${split}_bayes_step_acc`]);
      for (const mdl of Object.keys(ev.scores))
        expect(ev.scores[mdl].seq_score).toBe(r.metrics[`test_${split}_${mdl}_seq_score`]);
    }
    a.dispose();
    // Nothing outlives the artifacts, kept or not.
    expect(tf.memory().numTensors).toBe(before);
    await runExperiment('oat-scanpath', { quick: true, seed: 0, progress: false, overrides });
    expect(tf.memory().numTensors).toBe(before);
  });
});

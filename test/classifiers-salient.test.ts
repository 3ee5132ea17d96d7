/** Salient Relevance (Li, Tian, Mueller, Chen 2017): LRP rules against float64 references, conservation, LRP-0 = gradient x input on linear models, the CNN, SR against its reference, the mask metrics, the clutter images and the experiment. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { ConfigError } from '../lib/experiments/schema.js';
import {
  type Array64,
  array64,
  clutterImages,
  conv2dSame,
  insideShape,
  type LrpRule,
  lrpConv2d,
  lrpConv2dReference,
  lrpDense,
  lrpDenseReference,
  lrpMaxPool,
  lrpMaxPoolReference,
  lrpVariantRules,
  maskAuc,
  pointingGame,
  SmallCnn,
  salientRelevance,
  salientRelevanceExperiment,
  salientRelevanceReference,
  smallCnnReference,
  topFractionIou,
} from '../lib/papers/classifiers/salient-relevance/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const RULES: [string, LrpRule][] = [
  ['LRP-0', { kind: 'epsilon', epsilon: 0 }],
  ['epsilon 0.1', { kind: 'epsilon', epsilon: 0.1 }],
  ['alpha1 beta0', { kind: 'alphabeta', alpha: 1, beta: 0 }],
  ['alpha2 beta1', { kind: 'alphabeta', alpha: 2, beta: 1 }],
];

const a64 = (n: number, shape: number[], seed: number, scale = 1): Array64 =>
  array64(randomArray(n, seed, scale), shape);
const t = (a: Array64): tf.Tensor => tf.tensor(Float32Array.from(a.data), a.shape);
const sum = (a: ArrayLike<number>): number => Array.from(a).reduce((x, y) => x + y, 0);

describe.each(BACKENDS)('LRP rules on %s', (backendName) => {
  beforeAll(async () => {
    await useBackend(backendName);
  });

  it.each(RULES)('dense %s matches the float64 reference (mixed-sign inputs, with bias)', (_name, rule) => {
    const x = a64(3 * 5, [3, 5], 1);
    const w = a64(5 * 4, [5, 4], 2);
    const b = a64(4, [4], 3, 0.3);
    const r = a64(3 * 4, [3, 4], 4);
    const got = tf.tidy(() =>
      lrpDense(t(x) as tf.Tensor2D, t(w) as tf.Tensor2D, t(b) as tf.Tensor1D, t(r) as tf.Tensor2D, rule).dataSync(),
    );
    expectClose(got, lrpDenseReference(x, w, b, r, rule).data, { rtol: 1e-3, atol: 1e-4 }, 'lrpDense');
  });

  it.each(RULES)('conv %s matches the float64 reference, same and valid padding', (_name, rule) => {
    const x = array64(
      Array.from(randomArray(2 * 6 * 6 * 2, 5), (v) => (rule.kind === 'alphabeta' ? Math.abs(v) : v)),
      [2, 6, 6, 2],
    );
    const w = a64(3 * 3 * 2 * 3, [3, 3, 2, 3], 6, 0.5);
    const b = a64(3, [3], 7, 0.2);
    for (const padding of ['same', 'valid'] as const) {
      const o = padding === 'same' ? 6 : 4;
      const r = a64(2 * o * o * 3, [2, o, o, 3], 8);
      const got = tf.tidy(() =>
        lrpConv2d(
          t(x) as tf.Tensor4D,
          t(w) as tf.Tensor4D,
          t(b) as tf.Tensor1D,
          t(r) as tf.Tensor4D,
          rule,
          padding,
        ).dataSync(),
      );
      expectClose(
        got,
        lrpConv2dReference(x, w, b, r, rule, padding).data,
        { rtol: 1e-3, atol: 1e-4 },
        `conv ${padding}`,
      );
    }
  });

  it('max-pool matches the reference, ties split equally, relevance conserved', () => {
    const x = a64(2 * 4 * 4 * 3, [2, 4, 4, 3], 9);
    x.data[0] = 5;
    x.data[3] = 5; // (0,0) and (0,1) of channel 0 tie for their window's maximum
    const r = a64(2 * 2 * 2 * 3, [2, 2, 2, 3], 10);
    const got = tf.tidy(() => lrpMaxPool(t(x) as tf.Tensor4D, t(r) as tf.Tensor4D, 2).dataSync());
    const ref = lrpMaxPoolReference(x, r, 2);
    expectClose(got, ref.data, { rtol: 1e-5, atol: 1e-6 }, 'lrpMaxPool');
    expect(ref.data[0]).toBeCloseTo(r.data[0] / 2, 12);
    expect(sum(got)).toBeCloseTo(sum(r.data), 4);
  });

  it('conserves relevance with zero bias: LRP-0 and alpha-beta on dense and conv layers', () => {
    const x = array64(Array.from(randomArray(2 * 5 * 5 * 2, 11), Math.abs), [2, 5, 5, 2]);
    const w = a64(3 * 3 * 2 * 4, [3, 3, 2, 4], 12);
    const r = a64(2 * 5 * 5 * 4, [2, 5, 5, 4], 13);
    const xd = array64(Array.from(randomArray(4 * 6, 14), Math.abs), [4, 6]);
    const wd = a64(6 * 3, [6, 3], 15);
    const rd = a64(4 * 3, [4, 3], 16);
    for (const [, rule] of RULES.filter(([n]) => n !== 'epsilon 0.1')) {
      const conv = tf.tidy(() =>
        lrpConv2d(t(x) as tf.Tensor4D, t(w) as tf.Tensor4D, null, t(r) as tf.Tensor4D, rule).dataSync(),
      );
      expect(Math.abs(sum(conv) - sum(r.data))).toBeLessThan(1e-3 * (1 + Math.abs(sum(r.data))));
      const dense = tf.tidy(() =>
        lrpDense(t(xd) as tf.Tensor2D, t(wd) as tf.Tensor2D, null, t(rd) as tf.Tensor2D, rule).dataSync(),
      );
      expect(Math.abs(sum(dense) - sum(rd.data))).toBeLessThan(1e-4 * (1 + Math.abs(sum(rd.data))));
    }
  });

  it('LRP-0 equals gradient x input on a linear model (conv then dense, no bias, no ReLU)', () => {
    const x = tf.tensor4d(Float32Array.from(randomArray(2 * 6 * 6, 17)), [2, 6, 6, 1]);
    const w1 = tf.tensor4d(Float32Array.from(randomArray(3 * 3 * 3, 18, 0.6)), [3, 3, 1, 3]);
    const w2 = tf.tensor2d(Float32Array.from(randomArray(6 * 6 * 3 * 2, 19, 0.3)), [6 * 6 * 3, 2]);
    const f = (xx: tf.Tensor4D): tf.Tensor2D => tf.matMul(tf.conv2d(xx, w1, 1, 'same').reshape([2, -1]), w2);
    const pick = tf.tensor2d([1, 0, 0, 1], [2, 2]);
    const lrp0: LrpRule = { kind: 'epsilon', epsilon: 0 };
    const [got, expected] = tf.tidy(() => {
      const h = tf.conv2d(x, w1, 1, 'same');
      const out = f(x);
      const r1 = lrpDense(h.reshape([2, -1]) as tf.Tensor2D, w2, null, tf.mul(out, pick) as tf.Tensor2D, lrp0);
      const r0 = lrpConv2d(x, w1, null, r1.reshape(h.shape) as tf.Tensor4D, lrp0);
      const gx = tf.mul(tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(f(xx as tf.Tensor4D), pick)))(x), x);
      return [r0.dataSync(), gx.dataSync()];
    });
    expectClose(got, expected, { rtol: 1e-3, atol: 1e-4 }, 'LRP-0 vs gradient x input');
    tf.dispose([x, w1, w2, pick]);
  });

  it('does not leak tensors', () => {
    const x = tf.abs(tf.randomNormal([2, 8, 8, 1])) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 1, 2]) as tf.Tensor4D;
    const r = tf.randomNormal([2, 8, 8, 2]) as tf.Tensor4D;
    for (const [, rule] of RULES) expectNoLeak(() => lrpConv2d(x, w, null, r, rule).dispose());
    const rp = tf.randomNormal([2, 4, 4, 2]) as tf.Tensor4D;
    expectNoLeak(() => lrpMaxPool(r, rp).dispose());
    tf.dispose([x, w, r, rp]);
  });
});

describe('LRP argument errors', () => {
  it('name the function, the argument, the expected and the actual value', () => {
    const x = tf.zeros([2, 3]) as tf.Tensor2D;
    expect(() =>
      lrpDense(x, tf.zeros([4, 2]) as tf.Tensor2D, null, tf.zeros([2, 2]) as tf.Tensor2D, RULES[0][1]),
    ).toThrow(/lrpDense: w must have shape \[3,\*\], got \[4,2\]/);
    expect(() =>
      lrpDense(x, tf.zeros([3, 2]) as tf.Tensor2D, null, tf.zeros([2, 2]) as tf.Tensor2D, {
        kind: 'alphabeta',
        alpha: 2,
        beta: 2,
      }),
    ).toThrow(/lrpDense: rule must have alpha - beta = 1, got alpha 2, beta 2/);
    expect(() => lrpMaxPool(tf.zeros([1, 5, 4, 1]) as tf.Tensor4D, tf.zeros([1, 2, 2, 1]) as tf.Tensor4D)).toThrow(
      /lrpMaxPool: x's height and width must be multiples of k = 2, got \[1,5,4,1\]/,
    );
    expect(() => salientRelevance(tf.zeros([1, 6, 6]) as tf.Tensor3D, { scales: [4] })).toThrow(
      /salientRelevance: options.scales must be integers >= 1 dividing the map's height 6/,
    );
    expect(() => clutterImages({ count: 0, seed: 0 })).toThrow(/clutterImages: count must be an integer >= 1, got 0/);
  });
});

describe.each(BACKENDS)('SmallCnn on %s', (backendName) => {
  beforeAll(async () => {
    await useBackend(backendName);
  });

  it('conv2dSame equals tf.conv2d same; logits match the float64 reference', () => {
    const x = tf.tensor4d(Float32Array.from(randomArray(2 * 8 * 8 * 3, 20)), [2, 8, 8, 3]);
    const w = tf.tensor4d(Float32Array.from(randomArray(3 * 3 * 3 * 4, 21)), [3, 3, 3, 4]);
    expectClose(
      tf.tidy(() => conv2dSame(x, w).dataSync()),
      tf.tidy(() => tf.conv2d(x, w, 1, 'same').dataSync()),
      {},
      'conv',
    );
    tf.dispose([x, w]);
    const cnn = new SmallCnn({ size: 8, channels: [3, 4], classes: 3, seed: 1 });
    for (const v of Object.values(cnn.variables()))
      v.assign(tf.add(v, tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 3), 0.1)));
    const img = randomArray(64, 22).map(Math.abs);
    const got = tf.tidy(() => cnn.logits(tf.tensor4d(Float32Array.from(img), [1, 8, 8, 1])).dataSync());
    expectClose(got, smallCnnReference(cnn.weights64(), img, 8), { rtol: 1e-4, atol: 1e-5 }, 'logits');
    cnn.dispose();
  });

  it('conv2dSame gradients (input and filter) match float64 numeric gradients', () => {
    const [b, h, c, o] = [2, 5, 2, 3];
    const x = randomArray(b * h * h * c, 30);
    const w = randomArray(9 * c * o, 31);
    const g = randomArray(b * h * h * o, 32);
    // f = Σ g · conv(x, w), in float64.
    const f = (): number => {
      let s = 0;
      for (let n = 0; n < b; n++)
        for (let i = 0; i < h; i++)
          for (let j = 0; j < h; j++)
            for (let oc = 0; oc < o; oc++) {
              let z = 0;
              for (let dy = 0; dy < 3; dy++)
                for (let dx = 0; dx < 3; dx++) {
                  const ii = i + dy - 1;
                  const jj = j + dx - 1;
                  if (ii < 0 || ii >= h || jj < 0 || jj >= h) continue;
                  for (let ic = 0; ic < c; ic++)
                    z += x[((n * h + ii) * h + jj) * c + ic] * w[((dy * 3 + dx) * c + ic) * o + oc];
                }
              s += z * g[((n * h + i) * h + j) * o + oc];
            }
      return s;
    };
    const [gx, gw] = tf.tidy(() => {
      const gt = tf.tensor4d(Float32Array.from(g), [b, h, h, o]);
      const grads = tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
        tf.sum(tf.mul(conv2dSame(xx as tf.Tensor4D, ww as tf.Tensor4D), gt)),
      )([tf.tensor4d(Float32Array.from(x), [b, h, h, c]), tf.tensor4d(Float32Array.from(w), [3, 3, c, o])]);
      return grads.map((t) => t.dataSync());
    });
    expectClose(gx, numericGrad(f, x), { rtol: 1e-3, atol: 1e-4 }, 'd/dx');
    expectClose(gw, numericGrad(f, w), { rtol: 1e-3, atol: 1e-4 }, 'd/dw');
  });

  it('gradient saliency matches the float64 numeric gradient of the reference', () => {
    const cnn = new SmallCnn({ size: 8, channels: [3, 4], classes: 3, seed: 2 });
    const img = randomArray(64, 23).map(Math.abs);
    const got = tf.tidy(() => cnn.gradient(tf.tensor4d(Float32Array.from(img), [1, 8, 8, 1]), [1]).dataSync());
    const w = cnn.weights64();
    const num = numericGrad(() => smallCnnReference(w, img, 8)[1], img, 1e-6);
    expectClose(got, num, { rtol: 1e-3, atol: 1e-4 }, 'gradient');
    cnn.dispose();
  });

  it('relevance sums to the explained logit when the biases are 0 (official and alpha-beta rules); no leak', () => {
    const cnn = new SmallCnn({ size: 8, channels: [3, 4], classes: 3, seed: 3 });
    const x = tf.tensor4d(Float32Array.from(randomArray(2 * 64, 24).map(Math.abs)), [2, 8, 8, 1]);
    const logits = tf.tidy(() => cnn.logits(x).arraySync());
    for (const rules of [lrpVariantRules('official', 0), lrpVariantRules('alphabeta', 0)]) {
      const r = cnn.relevance(x, rules, [0, 2]);
      const rows = r.reshape([2, 64]).arraySync() as number[][];
      expect(sum(rows[0])).toBeCloseTo(logits[0][0], 3);
      expect(sum(rows[1])).toBeCloseTo(logits[1][2], 3);
      r.dispose();
    }
    expectNoLeak(() => cnn.relevance(x, lrpVariantRules('epsilon', 0.1)).dispose());
    expectNoLeak(() => cnn.gradient(x).dispose());
    x.dispose();
    cnn.dispose();
  });
});

describe.each(BACKENDS)('salientRelevance on %s', (backendName) => {
  beforeAll(async () => {
    await useBackend(backendName);
  });

  it.each([
    [8, { scales: [1, 2], k: 4 }],
    [16, { scales: [1, 2, 4], k: 16, patchRadius: 1 }],
    [16, { scales: [2], k: 8, patchRadius: 2, c: 1, focusThreshold: 0.6 }],
  ])('size %i %j matches the float64 reference', (size, opts) => {
    const maps = [
      randomArray(size * size, 25),
      Float64Array.from({ length: size * size }, (_, i) => (i % size < 3 ? 1 : 0.05 * Math.sin(i))),
    ];
    const got = tf.tidy(() =>
      salientRelevance(
        tf.tensor3d(Float32Array.from(maps.flatMap((m) => Array.from(m))), [2, size, size]),
        opts,
      ).arraySync(),
    ) as number[][][];
    maps.forEach((m, i) => {
      const ref = salientRelevanceReference(m, size, size, opts);
      expectClose(got[i].flat(), ref, { rtol: 1e-3, atol: 2e-3 }, `SR map ${i}`);
      expect(Math.max(...ref)).toBeCloseTo(1, 9);
      expect(Math.min(...ref)).toBeGreaterThanOrEqual(0);
    });
  });

  it('marks the area around a distinct blob, not only its pixels; an all-zero map stays zero; no leak', () => {
    const size = 16;
    const m = new Float64Array(size * size);
    for (let y = 5; y < 9; y++) for (let x = 5; x < 9; x++) m[y * size + x] = 1;
    const sr = salientRelevanceReference(m, size, size);
    const at = (y: number, x: number): number => sr[y * size + x];
    expect(at(6, 6)).toBeGreaterThan(at(14, 14));
    expect(at(4, 6)).toBeGreaterThan(0.3); // a context pixel next to the blob
    expect(at(4, 6)).toBeGreaterThan(at(14, 14));
    const zero = tf.zeros([1, 8, 8]) as tf.Tensor3D;
    expect(Math.max(...salientRelevance(zero).dataSync())).toBe(0);
    expectNoLeak(() => salientRelevance(zero).dispose());
    zero.dispose();
  });
});

describe('mask metrics', () => {
  it('pointing game, AUC and IoU on hand-computed cases', () => {
    const mask = [0, 1, 1, 0];
    expect(pointingGame([0, 0.2, 0.9, 0.1], mask, 2)).toBe(1);
    expect(pointingGame([0.9, 0.2, 0.1, 0.1], mask, 2)).toBe(0);
    expect(pointingGame([0.9, 0.9, 0, 0], mask, 2)).toBe(0.5);
    expect(pointingGame([0.9, 0.2, 0.1, 0.1], mask, 2, 1)).toBe(1);
    expect(maskAuc([0, 0.2, 0.9, 0.1], mask)).toBe(1);
    expect(maskAuc([1, 0.2, 0.9, 0.1], mask)).toBe(0.5);
    expect(maskAuc([1, 1, 1, 1], mask)).toBe(0.5);
    expect(maskAuc([1, 1, 1, 1], [0, 0, 0, 0])).toBeNaN();
    expect(topFractionIou([0, 0.2, 0.9, 0.1], mask, 0.5)).toBe(1);
    expect(topFractionIou([0, 0.2, 0.9, 0.1], mask, 0.25)).toBe(0.5);
    expect(topFractionIou([0.3, 0.2, 0.9, 0.1], mask, 0.5)).toBeCloseTo(1 / 3, 12);
  });
});

describe('clutterImages', () => {
  it('follows the worked example', () => {
    expect([2, 3, 4].every((x) => insideShape('square', x + 0.5 - 3.5, 0, 1.5))).toBe(true);
    expect(insideShape('square', 1 + 0.5 - 3.5, 0, 1.5) || insideShape('square', 5 + 0.5 - 3.5, 0, 1.5)).toBe(false);
  });

  it('is seeded, has disjoint splits, and every mask pixel holds the object', () => {
    const a = clutterImages({ count: 20, seed: 4, split: 'test', noiseStd: 0 });
    const b = clutterImages({ count: 20, seed: 4, split: 'test', noiseStd: 0 });
    const v = clutterImages({ count: 20, seed: 4, split: 'validation', noiseStd: 0 });
    expect(a.images).toEqual(b.images);
    expect(a.images).not.toEqual(v.images);
    for (let i = 0; i < a.count; i++) {
      const px = a.size * a.size;
      const idx = Array.from({ length: px }, (_, j) => j).filter((j) => a.masks[i * px + j]);
      expect(idx.length).toBeGreaterThan(20);
      const values = new Set(idx.map((j) => a.images[i * px + j]));
      expect(values.size).toBe(1); // without noise the object is one flat intensity
      expect([...values][0]).toBeGreaterThanOrEqual(0.5);
    }
    expect(new Set(a.labels).size).toBeGreaterThan(1);
    const { x, y } = a.toTensors();
    expect(x.shape).toEqual([20, 32, 32, 1]);
    expect(y.dtype).toBe('int32');
    tf.dispose([x, y]);
  });
});

describe('salient-relevance experiment', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  const tiny = {
    channels: [4, 4],
    trainImages: 64,
    validationImages: 8,
    testImages: 12,
    steps: 6,
    batch: 16,
    ks: [4, 8],
    scales: [2, 4],
    examples: 2,
  };

  it('runs, reports every method with its CI and picks on validation; no leaked tensors', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(salientRelevanceExperiment, { quick: true, progress: false, overrides: tiny });
    expect(tf.memory().numTensors).toBe(before);
    const methods = r.tables?.methods.map((row) => row.method);
    expect(methods).toEqual(['gradient', 'lrp-official', 'lrp-epsilon', 'sr-official', 'sr-epsilon']);
    for (const m of ['gradient', 'lrp_official', 'sr_official'])
      for (const what of ['pointing', 'auc', 'iou']) {
        expect(r.metrics[`test_${what}_${m}`]).toBeGreaterThanOrEqual(0);
        expect(r.metrics[`test_${what}_${m}`]).toBeLessThanOrEqual(1);
        expect(r.metrics[`test_${what}_${m}_ci95`]).toBeGreaterThanOrEqual(0);
      }
    expect(Number.isFinite(r.metrics.test_auc_sr_official_minus_lrp_official)).toBe(true);
    expect([4, 8]).toContain(r.tables?.methods.find((row) => row.method === 'sr-official')?.sr_k);
    expect(r.summary).toMatch(/test accuracy/);
  });

  it('keeps the model and example maps when asked', async () => {
    const r = await runExperimentWith(salientRelevanceExperiment, {
      quick: true,
      keep: true,
      progress: false,
      overrides: tiny,
    });
    const art = r.artifacts;
    expect(art?.examples).toHaveLength(2);
    expect(Object.keys(art?.examples[0].maps ?? {})).toEqual(art?.methods);
    expect(art?.examples[0].maps['sr-official']).toHaveLength(32);
    art?.dispose();
  });

  it('rejects a bad config before any work', async () => {
    await expect(
      runExperimentWith(salientRelevanceExperiment, { quick: true, overrides: { lrpVariants: ['gamma'] } }),
    ).rejects.toThrow(ConfigError);
  });
});

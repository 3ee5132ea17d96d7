import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BACKGROUND,
  DEFAULT_RIG,
  type FlatlandRig,
  flatlandViews,
  PALETTE,
  project,
  renderView,
  sceneKey,
} from '../lib/data/flatland.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { dragviewFlatland } from '../lib/papers/vision/dragview/experiment.js';
import {
  crossAttention,
  crossAttentionReference,
  psnr,
  rayPointsInView,
  sample1d,
  sample1dReference,
  ssim1d,
} from '../lib/papers/vision/dragview/index.js';
import { DragViewModel, type DragViewModelConfig, makeBatch } from '../lib/papers/vision/dragview/model.js';
import { Rng } from '../lib/util/random.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const RIG: FlatlandRig = { ...DEFAULT_RIG, width: 12 };

describe('flatland', () => {
  it('renders a centred disc in the middle pixels and the background at the edges', () => {
    const scene = { discs: [{ x: 0, y: 0, r: 0.3, color: PALETTE[0] }], background: BACKGROUND };
    const img = renderView(scene, 1.1, RIG);
    expect(Array.from(img.slice(5 * 3, 6 * 3))).toEqual(PALETTE[0]);
    expect(Array.from(img.slice(0, 3))).toEqual(BACKGROUND);
    expect(Array.from(img.slice(11 * 3, 12 * 3))).toEqual(BACKGROUND);
  });

  it('the nearer disc occludes the farther one', () => {
    // Camera at angle 0 sits at (3, 0) looking at -x: the disc at x = 1 is in front of the one at x = -1.
    const scene = {
      discs: [
        { x: -1, y: 0, r: 0.3, color: PALETTE[1] },
        { x: 1, y: 0, r: 0.3, color: PALETTE[2] },
      ],
      background: BACKGROUND,
    };
    expect(Array.from(renderView(scene, 0, RIG).slice(6 * 3, 7 * 3))).toEqual(PALETTE[2]);
    expect(Array.from(renderView(scene, Math.PI, RIG).slice(6 * 3, 7 * 3))).toEqual(PALETTE[1]);
  });

  it('is seeded, and its splits share no scene', () => {
    const o = { seed: 3, count: 200, width: 8, supports: 2, maxDrag: 1 };
    const a = flatlandViews({ ...o, split: 'train' });
    expect(flatlandViews({ ...o, split: 'train' }).map((e) => e.drag)).toEqual(a.map((e) => e.drag));
    const keys = (s: 'train' | 'validation' | 'test') =>
      new Set(flatlandViews({ ...o, split: s }).map((e) => sceneKey(e.scene)));
    const [tr, va, te] = [keys('train'), keys('validation'), keys('test')];
    for (const k of va) expect(tr.has(k) || te.has(k)).toBe(false);
    for (const k of te) expect(tr.has(k)).toBe(false);
    for (const e of a) {
      expect(Math.abs(e.drag)).toBeLessThanOrEqual(1);
      expect(e.supports).toHaveLength(2);
      expect(e.scene.discs.length).toBeGreaterThanOrEqual(2);
    }
  });

  it('names the argument in its errors', () => {
    expect(() =>
      flatlandViews({ seed: 0, split: 'dev' as 'test', count: 1, width: 8, supports: 1, maxDrag: 1 }),
    ).toThrow(/flatlandViews: split must be .*got "dev"/);
    expect(() => renderView({ discs: [], background: BACKGROUND }, 0, { ...RIG, width: 1 })).toThrow(
      /renderView: rig.width must be an integer >= 2, got 1/,
    );
  });
});

describe('dragview geometry', () => {
  const depths = [2.2, 2.9, 3.6];

  it('points on a camera’s own rays project to their pixel centres at their depths', () => {
    const rp = rayPointsInView(0.7, 0.7, RIG, depths);
    for (let u = 0; u < RIG.width; u++)
      for (let k = 0; k < depths.length; k++) {
        expect(rp.u[u * 3 + k]).toBeCloseTo(u, 9);
        expect(rp.depth[u * 3 + k]).toBeCloseTo(depths[k], 9);
        expect(rp.inView[u * 3 + k]).toBe(1);
      }
  });

  it('matches flatland’s own projection of the world points, and only the drag matters', () => {
    const [theta, drag] = [2.1, 0.9];
    const a = rayPointsInView(theta + drag, theta, RIG, depths);
    const b = rayPointsInView(drag, 0, RIG, depths);
    const tan = Math.tan(RIG.fov / 2);
    const t = theta + drag;
    const [cx, cy] = [RIG.cameraRadius * Math.cos(t), RIG.cameraRadius * Math.sin(t)];
    const [fx, fy] = [-Math.cos(t), -Math.sin(t)];
    for (let u = 0; u < RIG.width; u++) {
      const s = (2 * (u + 0.5)) / RIG.width - 1;
      depths.forEach((z, k) => {
        const x = cx + z * (fx + s * tan * fy);
        const y = cy + z * (fy - s * tan * fx);
        const ref = project(x, y, theta, RIG);
        expect(a.u[u * 3 + k]).toBeCloseTo(ref.u, 9);
        expect(a.depth[u * 3 + k]).toBeCloseTo(ref.depth, 9);
        expect(b.u[u * 3 + k]).toBeCloseTo(ref.u, 9);
      });
    }
  });

  it('names the argument in its errors', () => {
    expect(() => rayPointsInView(0, 0, RIG, [])).toThrow(/rayPointsInView: depths must be a non-empty list/);
    expect(() => rayPointsInView(Number.NaN, 0, RIG, [1])).toThrow(
      /rayPointsInView: targetAngle must be a finite number, got NaN/,
    );
  });
});

describe.each(BACKENDS)('dragview tensors on %s', (name) => {
  beforeAll(async () => {
    await useBackend(name);
  });

  const [b, W, C, N] = [2, 6, 3, 5];
  const feats = randomArray(b * W * C, 11);
  // Inside, on pixel centres, outside on both sides (clamped), and at the last pixel.
  const coords = Float64Array.from([0.3, 2.5, 4.99, -1.2, 5, 1, 3.25, 7.5, 0, 4.5]);

  it('sample1d matches its float64 reference, outputs and gradients', () => {
    const f = tf.tensor3d(Array.from(feats), [b, W, C]);
    const c = tf.tensor2d(Array.from(coords), [b, N]);
    expectClose(sample1d(f, c), sample1dReference(feats, [b, W, C], coords, N), {}, 'sample1d');
    const r = randomArray(b * N * C, 12);
    const rT = tf.tensor3d(Array.from(r), [b, N, C]);
    const g = tf.grad((x: tf.Tensor) => sample1d(x, c).mul(rT).sum())(f);
    const x = Float64Array.from(feats);
    const ref = numericGrad(() => {
      const o = sample1dReference(x, [b, W, C], coords, N);
      return o.reduce((a, v, i) => a + v * r[i], 0);
    }, x);
    expectClose(g, ref, { rtol: 1e-3, atol: 1e-4 }, 'sample1d grad');
    tf.dispose([f, c, rT, g]);
  });

  it('sample1d leaks nothing and names bad arguments', () => {
    const f = tf.tensor3d(Array.from(feats), [b, W, C]);
    const c = tf.tensor2d(Array.from(coords), [b, N]);
    expectNoLeak(() =>
      tf
        .grad((x: tf.Tensor) => sample1d(x, c).sum())(f)
        .dispose(),
    );
    expect(() => sample1d(f.reshape([b * W, C]), c)).toThrow(/sample1d: features must have rank 3/);
    expect(() => sample1d(f, c.slice([0, 0], [1, N]))).toThrow(/sample1d: coords has batch 1/);
    tf.dispose([f, c]);
  });

  const dims = { b: 2, n: 3, m: 4, d: 5, e: 3 };
  const q = randomArray(dims.b * dims.n * dims.d, 21);
  const k = randomArray(dims.b * dims.m * dims.d, 22);
  const v = randomArray(dims.b * dims.m * dims.e, 23);
  const mask = Float64Array.from([1, 0, 1, 1, 0, 0, 0, 0]); // the second example drops every key

  for (const masked of [false, true]) {
    it(`crossAttention matches its float64 reference${masked ? ' with a key mask' : ''}, outputs and gradients`, () => {
      const T = (a: Float64Array, r: number, c: number) => tf.tensor3d(Array.from(a), [dims.b, r, c]);
      const [qt, kt, vt] = [T(q, dims.n, dims.d), T(k, dims.m, dims.d), T(v, dims.m, dims.e)];
      const mt = masked ? tf.tensor2d(Array.from(mask), [dims.b, dims.m]) : undefined;
      const m = masked ? mask : undefined;
      expectClose(crossAttention(qt, kt, vt, mt), crossAttentionReference(q, k, v, dims, m), {}, 'crossAttention');
      const r = randomArray(dims.b * dims.n * dims.e, 24);
      const rT = tf.tensor3d(Array.from(r), [dims.b, dims.n, dims.e]);
      const grads = tf.grads((a: tf.Tensor, bb: tf.Tensor, c: tf.Tensor) => crossAttention(a, bb, c, mt).mul(rT).sum())(
        [qt, kt, vt],
      );
      const arrays = [Float64Array.from(q), Float64Array.from(k), Float64Array.from(v)];
      const f = () =>
        crossAttentionReference(arrays[0], arrays[1], arrays[2], dims, m).reduce((a, x, i) => a + x * r[i], 0);
      arrays.forEach((x, i) => expectClose(grads[i], numericGrad(f, x), { rtol: 1e-3, atol: 1e-4 }, `grad ${i}`));
      expectNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor) => crossAttention(a, kt, vt, mt).sum())([qt])));
      tf.dispose([qt, kt, vt, rT, ...grads, ...(mt ? [mt] : [])]);
    });
  }

  it('crossAttention names bad arguments', () => {
    const a = tf.zeros([2, 3, 4]);
    const bb = tf.zeros([2, 5, 6]);
    expect(() => crossAttention(a, bb, bb)).toThrow(/crossAttention: q has shape \[2,3,4\] but k has \[2,5,6\]/);
    expect(() => crossAttention(a, a, a, tf.ones([2, 2]))).toThrow(/crossAttention: keyMask must have shape \[2,3\]/);
    tf.dispose([a, bb]);
  });
});

describe('dragview metrics', () => {
  it('psnr and ssim1d are perfect on identical images and drop on different ones', () => {
    const a = Float64Array.from(randomArray(24, 5).map((x) => 0.5 + 0.4 * x));
    const b = a.map((x) => 1 - x);
    expect(psnr(a, a)).toBe(60);
    expect(ssim1d(a, a)).toBeCloseTo(1, 9);
    expect(psnr(a, b)).toBeLessThan(20);
    expect(ssim1d(a, b)).toBeLessThan(0.5);
    expect(psnr(new Float64Array(3).fill(0.1), new Float64Array(3))).toBeCloseTo(20, 9);
  });
});

describe.each(BACKENDS)('DragViewModel on %s', (name) => {
  beforeAll(async () => {
    await useBackend(name);
  });

  const examples = flatlandViews({ seed: 1, split: 'train', count: 3, width: 8, supports: 2, maxDrag: 1.2 });
  for (const variant of ['dragview', 'source-only', 'noisy-pose'] as const) {
    it(`${variant}: forward shape, finite gradients for every variable, no leaks`, () => {
      const cfg: DragViewModelConfig = {
        variant,
        rig: { ...DEFAULT_RIG, width: 8 },
        points: 4,
        depthSpan: 1.5,
        dModel: 8,
        heads: 2,
        supports: 2,
        seed: 2,
      };
      const model = new DragViewModel(cfg);
      const batch = makeBatch(examples, cfg, { poseNoise: 0.1, rng: new Rng(1) });
      const y = model.forward(batch);
      expect(y.shape).toEqual([3, 8, 3]);
      const vals = y.dataSync();
      expect(vals.every((x) => x > 0 && x < 1)).toBe(true);
      y.dispose();
      const { value, grads } = tf.variableGrads(() => model.loss(batch), model.variables());
      const used = Object.values(grads).filter((g) => tf.tidy(() => g.abs().sum().dataSync()[0]) > 0).length;
      expect(Object.values(grads).every((g) => g.dataSync().every(Number.isFinite))).toBe(true);
      // The pixel-position embedding feeds only DragView's support keys; source-only has no support attention at all
      // (pos, ln.gamma, ln.beta, wq, wk, wv, wo unused).
      expect(used).toBe(model.variables().length - { dragview: 0, 'noisy-pose': 1, 'source-only': 7 }[variant]);
      tf.dispose([value, ...Object.values(grads)]);
      expectNoLeak(() => {
        const r = tf.variableGrads(() => model.loss(batch), model.variables());
        tf.dispose([r.value, ...Object.values(r.grads)]);
      });
      model.dispose();
    });
  }

  it('DragView’s output depends on the support views; source-only’s does not', () => {
    const mk = (variant: 'dragview' | 'source-only') =>
      new DragViewModel({
        variant,
        rig: { ...DEFAULT_RIG, width: 8 },
        points: 4,
        depthSpan: 1.5,
        dModel: 8,
        heads: 2,
        supports: 2,
        seed: 3,
      });
    for (const variant of ['dragview', 'source-only'] as const) {
      const model = mk(variant);
      const cfg = model.config;
      const b1 = makeBatch(examples, cfg);
      const b2 = { ...b1, supports: b1.supports.map((x) => 1 - x) };
      const [y1, y2] = [model.forward(b1), model.forward(b2)];
      const diff = tf.tidy(() => y1.sub(y2).abs().max().dataSync()[0]);
      if (variant === 'dragview') expect(diff).toBeGreaterThan(1e-4);
      else expect(diff).toBe(0);
      tf.dispose([y1, y2]);
      model.dispose();
    }
  });
});

describe('dragview-flatland experiment', () => {
  const tiny = {
    width: 8,
    points: 4,
    dModel: 8,
    heads: 2,
    batch: 4,
    steps: 3,
    lrs: [1e-3, 3e-3],
    validationScenes: 4,
    testScenes: 6,
    dragBins: 2,
  };

  it('trains the three models, reports PSNR / SSIM with CIs, paired gains and drag bins, and frees its models', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(dragviewFlatland, { quick: true, overrides: tiny, keep: true });
    for (const v of ['dragview', 'source-only', 'noisy-pose', 'noisy-pose-exact-poses']) {
      expect(r.metrics[`test_psnr_${v}`]).toBeGreaterThan(0);
      expect(r.metrics[`test_psnr_${v}_ci95`]).toBeGreaterThanOrEqual(0);
      expect(r.metrics[`test_ssim_${v}`]).toBeLessThanOrEqual(1);
    }
    expect(Number.isFinite(r.metrics['test_psnr_gain_vs_source-only'])).toBe(true);
    expect(r.tables?.models.map((m) => m.model)).toEqual([
      'dragview',
      'source-only',
      'noisy-pose',
      'noisy-pose-exact-poses',
    ]);
    expect(r.tables?.drag_bins.map((b) => b.n).reduce((a, n) => (a as number) + (n as number), 0)).toBe(6);
    const art = r.artifacts;
    if (!art) throw new Error('no artifacts');
    expect(art.models.map((m) => m.predictions.length)).toEqual([6, 6, 6]);
    // The paired gain is the mean of per-example differences of the reported PSNRs.
    const [d, s] = [art.models[0], art.models[1]];
    const gain = d.psnr.reduce((a, x, i) => a + x - s.psnr[i], 0) / 6;
    expect(r.metrics['test_psnr_gain_vs_source-only']).toBeCloseTo(gain, 9);
    art.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a bad config before any work', async () => {
    await expect(
      runExperimentWith(dragviewFlatland, { quick: true, overrides: { ...tiny, models: ['gnt'] } }),
    ).rejects.toThrow(/config.models\[0\] must be one of "dragview", "source-only", "noisy-pose", got "gnt"/);
  });
});

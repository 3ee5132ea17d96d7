/**
 * The ToyVLM and its scenes: the generator's rows, splits and prior; the model's shapes, causality, steerable attention
 * against a float64 reference (outputs and gradients), the checkpoint round trip; and both experiments at tiny sizes.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import {
  captionOf,
  colourQuestion,
  drawScenes,
  leadingQuestion,
  makeExample,
  PRIOR_COLOUR,
  packExamples,
  parseCaption,
  sceneSplitOf,
  sceneTask,
  TEXT_LEN,
  wordsOf,
} from '../lib/data/scenes.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { HookRegistry } from '../lib/layers/hooks.js';
import { imagesOf, tokensOf } from '../lib/papers/multimodal/experiments/eval.js';
import { toyvlmHallucination } from '../lib/papers/multimodal/experiments/hallucination.js';
import { TRAIN_MIX } from '../lib/papers/multimodal/experiments/shared.js';
import { toyvlmSycophancy } from '../lib/papers/multimodal/experiments/sycophancy.js';
import { MASKED, steerableAttend, ToyVLM, trainToyVLM } from '../lib/papers/multimodal/toyvlm/index.js';
import { Rng } from '../lib/util/random.js';
import { expectClose, expectNoLeak, numericGrad, randomArray } from './helpers.js';

await backend.ready();

describe('scenes', () => {
  it('packs the worked example: bos prompt answer pad, loss on the answer only', () => {
    const scene = {
      objects: [
        { cell: 5, shape: 0, colour: 2 },
        { cell: 10, shape: 1, colour: 2 },
      ],
      pixels: new Float32Array(32 * 32 * 3),
    };
    expect(wordsOf(colourQuestion(0))).toBe('bos what colour is the circle ?');
    expect(wordsOf(leadingQuestion(0, 0))).toBe('bos the circle is red . what colour is the circle ?');
    expect(wordsOf(captionOf(scene.objects))).toBe('blue circle blue square end');
    expect(parseCaption(captionOf(scene.objects))).toEqual([
      { colour: 2, shape: 0 },
      { colour: 2, shape: 1 },
    ]);
    const ex = makeExample(scene, 'caption', new Rng(0));
    const b = packExamples([ex]);
    expect(wordsOf(Array.from(b.inputs))).toBe('bos describe . blue circle blue square end pad pad pad pad');
    expect(Array.from(b.lossMask)).toEqual([0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
    expect(wordsOf(Array.from(b.targets).slice(2, 7))).toBe('blue circle blue square end');
    expect(b.inputs.length).toBe(TEXT_LEN);
  });

  it('keeps train, validation and test layouts disjoint, is seeded, and plants the colour prior', () => {
    const keys = (split: 'train' | 'validation' | 'test') =>
      new Set(drawScenes(300, 3, split).map((s) => JSON.stringify(s.objects)));
    const [tr, va, te] = [keys('train'), keys('validation'), keys('test')];
    for (const k of va) expect(tr.has(k)).toBe(false);
    for (const k of te) expect(tr.has(k) || va.has(k)).toBe(false);
    for (const s of drawScenes(50, 4, 'test')) expect(sceneSplitOf(s.objects)).toBe('test');
    expect(drawScenes(3, 9, 'train')[2].pixels).toEqual(drawScenes(3, 9, 'train')[2].pixels);
    const objs = drawScenes(2000, 5, 'train', { prior: 0.9 }).flatMap((s) => s.objects);
    const share = objs.filter((o) => o.colour === PRIOR_COLOUR[o.shape]).length / objs.length;
    expect(share).toBeGreaterThan(0.87);
    expect(share).toBeLessThan(0.93);
    const batch = sceneTask({ batch: 64, seed: 1, split: 'train', mix: TRAIN_MIX });
    expect(new Set(batch.examples.map((e) => e.kind)).size).toBe(4);
    expect(() => drawScenes(2, 0, 'dev' as 'test')).toThrow(
      /drawScenes: split must be 'train', 'validation' or 'test', got "dev"/,
    );
    expect(() => makeExample(drawScenes(1, 0, 'test')[0], 'leading', new Rng(0), { cueCorrect: 2 })).toThrow(
      /makeExample: opts.cueCorrect must be in \[0, 1\], got 2/,
    );
  });
});

/** Float64 attention with the same mask: softmax(q kᵀ/√d + mask) v for one [s, d] head. */
function attentionNaive(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  s: number,
  d: number,
  causal: boolean,
): Float64Array {
  const out = new Float64Array(s * d);
  for (let i = 0; i < s; i++) {
    const sc = new Float64Array(s);
    let mx = -Infinity;
    for (let j = 0; j < s; j++) {
      let a = 0;
      for (let x = 0; x < d; x++) a += q[i * d + x] * k[j * d + x];
      sc[j] = a / Math.sqrt(d) + (causal && j > i ? MASKED : 0);
      mx = Math.max(mx, sc[j]);
    }
    let z = 0;
    for (let j = 0; j < s; j++) z += sc[j] = Math.exp(sc[j] - mx);
    for (let j = 0; j < s; j++) for (let x = 0; x < d; x++) out[i * d + x] += (sc[j] / z) * v[j * d + x];
  }
  return out;
}

describe('ToyVLM', () => {
  it('steerable attention equals the float64 reference, outputs and gradients, and uses what its hooks return', () => {
    const [s, d] = [5, 4];
    const q = randomArray(s * d, 1);
    const k = randomArray(s * d, 2);
    const v = randomArray(s * d, 3);
    const T = (x: Float64Array) => tf.tensor4d(Float32Array.from(x), [1, 1, s, d]);
    const [tq, tk, tv] = [T(q), T(k), T(v)];
    const hooks = new HookRegistry();
    for (const causal of [false, true]) {
      const attend = steerableAttend(hooks, 'x', causal);
      const out = attend(tq, tk, tv);
      expectClose(out, attentionNaive(q, k, v, s, d, causal), { rtol: 1e-4, atol: 1e-5 }, `causal ${causal}`);
      const r = randomArray(s * d, 4);
      const g = tf.grad((x: tf.Tensor) =>
        attend(x as tf.Tensor4D, tk, tv)
          .mul(T(r))
          .sum(),
      )(tq);
      const num = numericGrad(() => attentionNaive(q, k, v, s, d, causal).reduce((a, y, i) => a + y * r[i], 0), q);
      expectClose(g, num, { rtol: 1e-3, atol: 1e-3 }, `gradient causal ${causal}`);
      tf.dispose([out, g]);
    }
    // a pattern hook that returns uniform weights makes every output row the mean of v
    const remove = hooks.add('x.hook_pattern', (w) => tf.onesLike(w).div(s));
    const out = steerableAttend(hooks, 'x', false)(tq, tk, tv);
    const mean = Array.from({ length: d }, (_, x) => v.filter((_, i) => i % d === x).reduce((a, y) => a + y, 0) / s);
    expectClose(out, Array.from({ length: s }, () => mean).flat(), { rtol: 1e-4, atol: 1e-5 }, 'uniform hook');
    remove();
    tf.dispose([tq, tk, tv, out]);
  });

  it('maps images and text to logits, causally in the text, and reads the image', () => {
    const model = new ToyVLM({ dModel: 16, heads: 2, encoderLayers: 1, decoderLayers: 2, seed: 3 });
    const scenes = drawScenes(2, 2, 'test');
    const images = imagesOf(scenes);
    const a = tokensOf([colourQuestion(0), colourQuestion(1)]);
    const b = tokensOf([colourQuestion(0).slice(0, 4).concat([9, 9, 9]), colourQuestion(1)]);
    const la = model.forward(images, a);
    const lb = model.forward(images, b);
    expect(la.shape).toEqual([2, 7, 22]);
    // changing text positions 4.. leaves the logits at positions 0..3 unchanged
    expectClose(la.slice([0, 0, 0], [1, 4, -1]), lb.slice([0, 0, 0], [1, 4, -1]), {}, 'causal');
    const other = imagesOf(drawScenes(2, 99, 'test'));
    const lc = model.forward(other, a);
    expect(Math.max(...Array.from(tf.tidy(() => lc.sub(la).abs()).dataSync()))).toBeGreaterThan(1e-6);
    expectNoLeak(() => model.forward(images, a).dispose());
    expect(() => model.forward(images, tokensOf([colourQuestion(0)]))).toThrow(
      /ToyVLM.forward: tokens must have shape \[2, 1..12\]/,
    );
    expect(() => new ToyVLM({ dModel: 10, heads: 3, encoderLayers: 1, decoderLayers: 1, seed: 0 })).toThrow(
      /ToyVLM: config.dModel \(10\) must be divisible by config.heads \(3\)/,
    );
    tf.dispose([images, a, b, la, lb, other, lc]);
    model.dispose();
  });

  it('trains, saves a checkpoint and loads the same weights', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'toyvlm-'));
    try {
      const cfg = {
        dModel: 16,
        heads: 2,
        encoderLayers: 1,
        decoderLayers: 1,
        steps: 3,
        batch: 4,
        lr: 1e-3,
        prior: 0.9,
        cueCorrect: 0.8,
        mix: TRAIN_MIX,
      };
      const first = await trainToyVLM(cfg, { seed: 7 }, dir);
      expect(first.loaded).toBe(false);
      expect(first.records).toHaveLength(3);
      const second = await trainToyVLM(cfg, { seed: 7 }, dir);
      expect(second.loaded).toBe(true);
      const images = imagesOf(drawScenes(2, 1, 'test'));
      const tokens = tokensOf([colourQuestion(0), colourQuestion(2)]);
      const [l1, l2] = [first.model.nextLogits(images, tokens), second.model.nextLogits(images, tokens)];
      expectClose(l2, l1, { rtol: 0, atol: 0 }, 'restored');
      tf.dispose([images, tokens, l1, l2]);
      first.model.dispose();
      second.model.dispose();
      // An experiment's context names the run's cache folder: the checkpoint goes there, or nowhere when it is off.
      const viaCtx = await trainToyVLM({ ...cfg, steps: 2 }, { seed: 7, cacheDir: dir });
      expect(viaCtx.checkpoint?.startsWith(join(dir, 'toyvlm'))).toBe(true);
      expect(existsSync(viaCtx.checkpoint!)).toBe(true);
      // ... even where ATTNLAB_CACHE names a folder (the default an experiment's run overrides).
      const env = process.env.ATTNLAB_CACHE;
      process.env.ATTNLAB_CACHE = join(dir, 'default');
      const off = await trainToyVLM({ ...cfg, steps: 1 }, { seed: 7, cacheDir: undefined }).finally(() => {
        if (env === undefined) delete process.env.ATTNLAB_CACHE;
        else process.env.ATTNLAB_CACHE = env;
      });
      expect(off.checkpoint).toBeUndefined();
      expect(existsSync(join(dir, 'default'))).toBe(false);
      viaCtx.model.dispose();
      off.model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('experiments (tiny)', () => {
  const tiny = { dModel: 16, heads: 2, encoderLayers: 2, decoderLayers: 1, steps: 4, batch: 8 };

  it('toyvlm-hallucination reports every method on the test split with CIs and the papers’ numbers', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(toyvlmHallucination, {
      quick: true,
      progress: false,
      overrides: {
        ...tiny,
        validationItems: 8,
        testItems: 8,
        testCaptions: 2,
        grid: { causalmm: [0.5], pai: [0.5], paint: [0.7], var: [0.6] },
      },
    });
    for (const m of ['greedy', 'causalmm_paper', 'pai_tuned', 'paint_paper', 'var_tuned'])
      for (const k of ['test_conflict_accuracy', 'test_inprior_accuracy', 'test_chair_i', 'test_pope_accuracy'])
        expect(Number.isFinite(r.metrics[`${k}_${m}`]), `${k}_${m}`).toBe(true);
    expect(r.metrics.test_conflict_gain_greedy).toBe(0);
    expect(r.tables?.results).toHaveLength(9);
    expect(r.references?.map((x) => x.metric)).toContain('test_chair_i_reduction_paint_paper');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('toyvlm-sycophancy reports flip rates for greedy, LQCD and the neutralised query', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(toyvlmSycophancy, {
      quick: true,
      progress: false,
      keep: true,
      overrides: { ...tiny, validationItems: 8, testItems: 16, alphas: [0.5, 2] },
    });
    // flip rates are over the questions greedy answers right when neutral: NaN when a 4-step model gets none right
    const rightNeutral = r.metrics.test_neutral_accuracy_greedy > 0;
    for (const m of ['greedy', 'lqcd_paper', 'lqcd_tuned', 'neutralised']) {
      const f = r.metrics[`test_flip_rate_${m}`];
      expect(rightNeutral ? f >= 0 && f <= 1 : Number.isNaN(f), `test_flip_rate_${m} = ${f}`).toBe(true);
      expect(r.metrics[`test_misleading_accuracy_${m}`]).toBeGreaterThanOrEqual(0);
    }
    // LQCD leaves a neutral query's answer unchanged; the neutralised query answers as the neutral one
    expect(r.metrics.test_neutral_accuracy_lqcd_paper).toBe(r.metrics.test_neutral_accuracy_greedy);
    expect(r.metrics.test_misleading_accuracy_neutralised).toBe(r.metrics.test_neutral_accuracy_greedy);
    if (rightNeutral) expect(r.metrics.test_flip_rate_neutralised).toBe(0);
    expect(r.artifacts?.examples).toHaveLength(4);
    r.artifacts?.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

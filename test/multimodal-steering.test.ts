/**
 * Attention steering on the ToyVLM: CausalMM's counterfactual attention and logit combination, PAI/PAINT's score
 * boosts and token selection, LQCD's contrast, VAR's sinks and redistribution. Outputs (and gradients where the map is
 * differentiable) against the float64 references, no-op settings equal the unmodified model, no leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { colourQuestion, drawScenes } from '../lib/data/scenes.js';
import {
  COUNTERFACTUAL_KINDS,
  causalCombine,
  causalCombineNaive,
  counterfactualAttention,
  counterfactualAttentionNaive,
} from '../lib/papers/multimodal/causalmm/index.js';
import { imagesOf, tokensOf } from '../lib/papers/multimodal/experiments/eval.js';
import { STEER_METHODS, steeredLogits } from '../lib/papers/multimodal/experiments/steer.js';
import { lqcdLogits, lqcdLogitsNaive } from '../lib/papers/multimodal/lqcd/index.js';
import {
  boostScores,
  boostScoresNaive,
  informedTokens,
  paiBoost,
  paintBoost,
} from '../lib/papers/multimodal/paint/index.js';
import { IMAGE_TOKENS, ToyVLM } from '../lib/papers/multimodal/toyvlm/index.js';
import {
  columnMeanSinks,
  redistributeAttention,
  redistributeAttentionNaive,
  sinkDimensions,
  sinkScores,
} from '../lib/papers/multimodal/var/index.js';
import { expectClose, expectNoLeak, numericGrad, randomArray } from './helpers.js';

await backend.ready();

const shape: [number, number, number, number] = [2, 3, 4, 6];
const size = shape.reduce((a, v) => a * v, 1);

/** Row-softmaxed random weights [b, h, s, t], causal (keys j <= i + t - s) when asked. */
function weights(seed: number, causal = false): Float64Array {
  const [b, h, s, t] = shape;
  const x = randomArray(size, seed, 2);
  const out = new Float64Array(size);
  for (let r = 0; r < b * h * s; r++) {
    const i = r % s;
    const n = causal ? i + (t - s) + 1 : t;
    let z = 0;
    for (let j = 0; j < n; j++) z += Math.exp(x[r * t + j]);
    for (let j = 0; j < n; j++) out[r * t + j] = Math.exp(x[r * t + j]) / z;
  }
  return out;
}

describe('CausalMM', () => {
  it('counterfactual attention matches the reference, keeps rows normalised and masked keys at 0', () => {
    for (const causal of [false, true])
      for (const kind of COUNTERFACTUAL_KINDS) {
        const w = weights(3, causal);
        const t = tf.tensor4d(Float32Array.from(w), shape);
        const got = counterfactualAttention(t, kind, { causal, seed: 5, fromRow: 1 });
        const want = counterfactualAttentionNaive(Float32Array.from(w), shape, kind, { causal, seed: 5, fromRow: 1 });
        expectClose(got, want, { rtol: 1e-5, atol: 1e-6 }, `${kind} causal=${causal}`);
        const d = got.dataSync();
        const [, , s, tk] = shape;
        for (let r = 0; r < size / tk; r++) {
          let sum = 0;
          for (let j = 0; j < tk; j++) sum += d[r * tk + j];
          expect(sum).toBeCloseTo(1, 5);
          const i = r % s;
          if (causal) for (let j = i + (tk - s) + 1; j < tk; j++) expect(d[r * tk + j]).toBe(0);
          if (i < 1) for (let j = 0; j < tk; j++) expect(d[r * tk + j]).toBeCloseTo(w[r * tk + j], 6); // row 0 untouched
        }
        tf.dispose([t, got]);
      }
  });

  it('uniform is 1/n over allowed keys; shuffle permutes each row', () => {
    const w = weights(4, true);
    const u = counterfactualAttentionNaive(w, shape, 'uniform', { causal: true });
    const [, , s, t] = shape;
    expect(u[0]).toBeCloseTo(1 / (t - s + 1), 12);
    const sh = counterfactualAttentionNaive(w, shape, 'shuffle', { seed: 2 });
    for (let r = 0; r < size / t; r++) {
      const a = [...w.subarray(r * t, r * t + t)].sort();
      const c = [...sh.subarray(r * t, r * t + t)].sort();
      expect(c).toEqual(a);
    }
  });

  it('combines logits as (1 + kγ)ℓ − γΣℓ_cf with the plausibility cut, outputs and gradients', () => {
    const V = 7;
    const l = randomArray(2 * V, 11, 3);
    const c1 = randomArray(2 * V, 12, 3);
    const c2 = randomArray(2 * V, 13, 3);
    const o = { gamma: 0.5, epsilon: 0.1 };
    const T = (x: Float64Array) => tf.tensor2d(Float32Array.from(x), [2, V]);
    const [tl, t1, t2] = [T(l), T(c1), T(c2)];
    const got = causalCombine(tl, [t1, t2], o);
    const want = causalCombineNaive(Float32Array.from(l), [Float32Array.from(c1), Float32Array.from(c2)], V, o);
    const gd = got.dataSync();
    for (let i = 0; i < want.length; i++) {
      if (want[i] === -Infinity) expect(gd[i]).toBe(-Infinity);
      else expect(Math.abs(gd[i] - want[i])).toBeLessThan(1e-4 * (1 + Math.abs(want[i])));
    }
    // gradient of Σ r·ℓ* over the kept entries with respect to the factual and a counterfactual logits
    const r = randomArray(2 * V, 14);
    const kept = Float32Array.from(want, (v) => (v === -Infinity ? 0 : 1));
    const [gl, g1] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf
        .where(tf.tensor2d(kept, [2, V]).cast('bool'), causalCombine(a as tf.Tensor2D, [b as tf.Tensor2D, t2], o), 0)
        .mul(tf.tensor2d(Float32Array.from(r), [2, V]))
        .sum(),
    )([tl, t1]);
    const f = (x: Float64Array, which: 0 | 1) => () => {
      const out = which === 0 ? causalCombineNaive(x, [c1, c2], V, o) : causalCombineNaive(l, [x, c2], V, o);
      return out.reduce((a, v, i) => a + (kept[i] ? v * r[i] : 0), 0);
    };
    expectClose(gl, numericGrad(f(l, 0), l), { rtol: 1e-3, atol: 1e-3 }, 'dℓ');
    expectClose(g1, numericGrad(f(c1, 1), c1), { rtol: 1e-3, atol: 1e-3 }, 'dℓ_cf');
    expectNoLeak(() => causalCombine(tl, [t1, t2], o).dispose());
    const flat = tf.tidy(() => tf.softmax(tf.ones(shape))) as tf.Tensor4D;
    expectNoLeak(() => counterfactualAttention(flat, 'shuffle').dispose());
    flat.dispose();
    tf.dispose([tl, t1, t2, got, gl, g1]);
  });

  it('names the function, argument and value in errors', () => {
    const t = tf.zeros([2, 3]);
    expect(() => counterfactualAttention(t as unknown as tf.Tensor4D, 'uniform')).toThrow(
      /counterfactualAttention: w must have shape/,
    );
    expect(() => counterfactualAttentionNaive([0], [1, 1, 1, 1], 'bogus' as 'uniform')).toThrow(
      /kind must be one of .* got "bogus"/,
    );
    expect(() => causalCombine(t as tf.Tensor2D, [], { gamma: -1 })).toThrow(
      /causalCombine: gamma must be a number >= 0, got -1/,
    );
    t.dispose();
  });
});

describe('PAI and PAINT', () => {
  it('boostScores matches the reference, outputs and gradients; boost 0 is the identity', () => {
    const x = randomArray(size, 21, 2);
    const boost = randomArray(2 * shape[3], 22).map(Math.abs);
    const ts = tf.tensor4d(Float32Array.from(x), shape);
    const tb = tf.tensor2d(Float32Array.from(boost), [2, shape[3]]);
    for (const from of [undefined, 1]) {
      const got = boostScores(ts, tb, from);
      expectClose(
        got,
        boostScoresNaive(Float32Array.from(x), shape, Float32Array.from(boost), from),
        {},
        `from ${from}`,
      );
      got.dispose();
    }
    const r = randomArray(size, 23);
    const g = tf.grad((s: tf.Tensor) =>
      boostScores(s as tf.Tensor4D, tb, 1)
        .mul(tf.tensor4d(Float32Array.from(r), shape))
        .sum(),
    )(ts);
    const num = numericGrad(() => boostScoresNaive(x, shape, boost, 1).reduce((a, v, i) => a + v * r[i], 0), x);
    expectClose(g, num, { rtol: 1e-3, atol: 1e-3 }, 'gradient');
    const zero = tf.zeros([1, shape[3]]) as tf.Tensor2D;
    const same = boostScores(ts, zero);
    expectClose(same, ts, {}, 'boost 0');
    expectNoLeak(() => boostScores(ts, tb).dispose());
    expect(() => boostScores(ts, tf.zeros([2, 5]) as tf.Tensor2D)).toThrow(
      /boostScores: boost must have shape \[2 or 1, 6\], got \[2,5\]/,
    );
    tf.dispose([ts, tb, g, zero, same]);
  });

  it('PAI boosts every image token by α; PAINT picks top and outlier tokens as the official code does', () => {
    const pai = paiBoost(6, 1, 4, 0.5);
    expect(Array.from(pai.dataSync())).toEqual([0, 0.5, 0.5, 0.5, 0, 0]);
    pai.dispose();
    // 8 patches: early attention ranks 7, 6 top (25% of 8 = 2); late attention has one outlier, patch 6
    const early = [0.1, 0.2, 0.05, 0.1, 0.1, 0.1, 0.5, 0.6];
    const late = [0.1, 0.11, 0.09, 0.1, 0.1, 0.12, 0.9, 0.1];
    const sel = informedTokens(early, late, 0.25);
    expect(sel).toEqual({ top: [7], bottom: [6] });
    const b = paintBoost([sel], 10, 1, 0.7, 0.3);
    const d = Array.from(b.dataSync());
    expect(d[8]).toBeCloseTo(0.7);
    expect(d[7]).toBeCloseTo(0.3);
    expect(d.filter((v) => v !== 0)).toHaveLength(2);
    b.dispose();
    expect(() => informedTokens([1, 2], [1], 0.25)).toThrow(/informedTokens: early has 2 patches but late has 1/);
  });
});

describe('LQCD', () => {
  it('contrasts neutral and leading logits under the plausibility cut, outputs and gradients; α 0 keeps the neutral argmax', () => {
    const V = 6;
    const n = randomArray(3 * V, 31, 3);
    const l = randomArray(3 * V, 32, 3);
    const tn = tf.tensor2d(Float32Array.from(n), [3, V]);
    const tl = tf.tensor2d(Float32Array.from(l), [3, V]);
    const got = lqcdLogits(tn, tl, { alpha: 1.5, beta: 0.2 });
    const want = lqcdLogitsNaive(Float32Array.from(n), Float32Array.from(l), V, { alpha: 1.5, beta: 0.2 });
    const gd = got.dataSync();
    const kept = Float32Array.from(want, (v) => (v === -Infinity ? 0 : 1));
    for (let i = 0; i < want.length; i++)
      if (kept[i]) expect(Math.abs(gd[i] - want[i])).toBeLessThan(1e-4 * (1 + Math.abs(want[i])));
      else expect(gd[i]).toBe(-Infinity);
    const r = randomArray(3 * V, 33);
    const gl = tf.grad((x: tf.Tensor) =>
      tf
        .where(tf.tensor2d(kept, [3, V]).cast('bool'), lqcdLogits(tn, x as tf.Tensor2D, { alpha: 1.5, beta: 0.2 }), 0)
        .mul(tf.tensor2d(Float32Array.from(r), [3, V]))
        .sum(),
    )(tl);
    const num = numericGrad(
      () => lqcdLogitsNaive(n, l, V, { alpha: 1.5, beta: 0.2 }).reduce((a, v, i) => a + (kept[i] ? v * r[i] : 0), 0),
      l,
    );
    expectClose(gl, num, { rtol: 1e-3, atol: 1e-3 }, 'd leading');
    const a0 = lqcdLogits(tn, tl, { alpha: 0 });
    expect(Array.from(a0.argMax(-1).dataSync())).toEqual(Array.from(tn.argMax(-1).dataSync()));
    expectNoLeak(() => lqcdLogits(tn, tl, { alpha: 1 }).dispose());
    expect(() => lqcdLogits(tn, tl, { alpha: 1, beta: 2 })).toThrow(/lqcdLogits: beta must be in \(0, 1\], got 2/);
    tf.dispose([tn, tl, got, gl, a0]);
  });
});

describe('VAR', () => {
  const sink = Float32Array.from({ length: shape[0] * shape[3] }, (_, k) => (k % shape[3] === 0 || k === 8 ? 1 : 0));
  const image = Float32Array.from({ length: shape[3] }, (_, j) => (j < 4 ? 1 : 0));

  it('redistributes sink attention in image-centric heads, matching the reference, outputs and gradients', () => {
    const w = weights(41);
    const o = { p: 0.6, rho: 0.3, minImage: 0.2, fromRow: 1 };
    const tw = tf.tensor4d(Float32Array.from(w), shape);
    const ts = tf.tensor2d(sink, [shape[0], shape[3]]);
    const ti = tf.tensor1d(image);
    const got = redistributeAttention(tw, ts, ti, o);
    const want = redistributeAttentionNaive(Float32Array.from(w), shape, sink, image, o);
    expectClose(got, want, { rtol: 1e-4, atol: 1e-6 }, 'output');
    // rows keep their sums, and something moved
    const d = got.dataSync();
    const t = shape[3];
    let moved = 0;
    for (let r = 0; r < size / t; r++) {
      let a = 0;
      for (let j = 0; j < t; j++) {
        a += d[r * t + j];
        moved += Math.abs(d[r * t + j] - w[r * t + j]);
      }
      expect(a).toBeCloseTo(1, 5);
    }
    expect(moved).toBeGreaterThan(0.01);
    const r = randomArray(size, 42);
    const g = tf.grad((x: tf.Tensor) =>
      redistributeAttention(x as tf.Tensor4D, ts, ti, o)
        .mul(tf.tensor4d(Float32Array.from(r), shape))
        .sum(),
    )(tw);
    const num = numericGrad(
      () => redistributeAttentionNaive(w, shape, sink, image, o).reduce((a, v, i) => a + v * r[i], 0),
      w,
      1e-6,
    );
    expectClose(g, num, { rtol: 1e-3, atol: 1e-3 }, 'gradient');
    const same = redistributeAttention(tw, ts, ti, { ...o, p: 0 });
    expectClose(same, tw, {}, 'p 0');
    expectNoLeak(() => redistributeAttention(tw, ts, ti, o).dispose());
    expect(() => redistributeAttention(tw, ts, ti, { p: 1.5, rho: 0.5 })).toThrow(
      /redistributeAttention: p must be in \[0, 1\], got 1.5/,
    );
    tf.dispose([tw, ts, ti, got, g, same]);
  });

  it('finds massive dims, scores φ = max |x_d| / RMS(x), and column-mean sinks', () => {
    const x = [0.1, -50, 0.2, 3];
    expect(sinkDimensions(x, 2)).toEqual([1, 3]);
    const phi = sinkScores([...x, 1, 1, 1, 1], 4, [1]);
    const rms = Math.sqrt((0.01 + 2500 + 0.04 + 9) / 4);
    expect(phi[0]).toBeCloseTo(50 / rms, 10);
    expect(phi[1]).toBeCloseTo(1, 10);
    // one head, one row, keys [0.5, 0.1, 0.1, 0.3]: candidates 0..2, mean 0.233; ratio 2 -> key 0 only
    const cm = columnMeanSinks([0.5, 0.1, 0.1, 0.3], [1, 1, 1, 4], [1, 1, 1, 0], 2);
    expect(Array.from(cm)).toEqual([1, 0, 0, 0]);
    expect(() => sinkScores([1, 2, 3], 2, [0])).toThrow(/sinkScores: hidden has 3 values, not a multiple of m = 2/);
  });
});

describe('steering a ToyVLM', () => {
  it('zero-strength settings leave the model unchanged; others change it; no leaks', () => {
    const model = new ToyVLM({ dModel: 16, heads: 2, encoderLayers: 2, decoderLayers: 2, seed: 1 });
    const scenes = drawScenes(3, 1, 'test');
    const images = imagesOf(scenes);
    const tokens = tokensOf(scenes.map((s) => colourQuestion(s.objects[0].shape)));
    const plain = model.nextLogits(images, tokens);
    for (const method of STEER_METHODS) {
      const zero = steeredLogits(model, images, tokens, { method, strength: 0 });
      if (method === 'causalmm') {
        // γ 0: the factual logits wherever the plausibility cut keeps them
        const z = zero.dataSync();
        const p = plain.dataSync();
        for (let i = 0; i < z.length; i++) if (z[i] !== -Infinity) expect(z[i]).toBeCloseTo(p[i], 5);
      } else expectClose(zero, plain, { rtol: 1e-5, atol: 1e-5 }, `${method} at 0`);
      zero.dispose();
      expectNoLeak(() => steeredLogits(model, images, tokens, { method, strength: 0.7 }).dispose(), 1);
      expect(model.hooks.size, `${method} removed its hooks`).toBe(0);
    }
    const boosted = steeredLogits(model, images, tokens, { method: 'pai', strength: 5 });
    expect(Math.max(...Array.from(tf.tidy(() => boosted.sub(plain).abs()).dataSync()))).toBeGreaterThan(1e-6);
    expect(IMAGE_TOKENS).toBe(17);
    tf.dispose([images, tokens, plain, boosted]);
    model.dispose();
  });
});

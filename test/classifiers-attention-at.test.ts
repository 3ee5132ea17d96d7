/** Attention AT / iAT (Kitada & Iyatomi 2021): the score perturbations against their float64 references, the score gradient, Kendall τ, the experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { sentimentTask } from '../lib/data/sentiment.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { ConfigError } from '../lib/experiments/schema.js';
import {
  adversarialLoss,
  adversarialPerturbation,
  atPerturbation,
  atPerturbationReference,
  attentionAt,
  gradientImportance,
  iatPerturbation,
  iatPerturbationReference,
  kendallTau,
  scoreGradient,
} from '../lib/papers/classifiers/attention-at/index.js';
import { crossEntropy, sentenceTensors, TextClassifier } from '../lib/papers/classifiers/text-attention/index.js';
import { BACKENDS, expectClose, expectNoLeak, randomArray, useBackend } from './helpers.js';

const f32 = (x: ArrayLike<number>) => Float32Array.from(x);

function maskOf(b: number, T: number): Float64Array {
  const m = new Float64Array(b * T);
  for (let i = 0; i < b; i++) for (let t = 0; t < T - (i % 3); t++) m[i * T + t] = 1;
  return m;
}

const rowNorms = (x: ArrayLike<number>, b: number, T: number) =>
  Array.from({ length: b }, (_, i) => Math.hypot(...Array.from({ length: T }, (_, t) => x[i * T + t])));

describe.each(BACKENDS)('perturbations on %s', (name) => {
  it('AT: r = ε g/‖g‖ per sentence, 0 on padding, as the reference', async () => {
    await useBackend(name);
    const [b, T, eps] = [4, 6, 1.5];
    const g = randomArray(b * T, 3);
    const mask = maskOf(b, T);
    const ref = atPerturbationReference(g, mask, b, T, eps);
    const r = tf.tidy(() => atPerturbation(tf.tensor2d(f32(g), [b, T]), tf.tensor2d(f32(mask), [b, T]), eps));
    expectClose(r, ref, {}, 'AT perturbation');
    const rv = r.dataSync();
    for (const n of rowNorms(rv, b, T)) expect(n).toBeCloseTo(eps, 4);
    for (let i = 0; i < b * T; i++) if (mask[i] === 0) expect(rv[i]).toBe(0);
    r.dispose();
  });

  it('iAT: matches the reference, has norm <= ε·√(b−1) (‖α‖ = ε, ‖d_j‖ <= 1) and lies in the span of the differences to other sentences', async () => {
    await useBackend(name);
    const [b, T, eps] = [4, 5, 2];
    const s = randomArray(b * T, 4, 2);
    const g = randomArray(b * T, 5);
    const mask = maskOf(b, T);
    const ref = iatPerturbationReference(s, g, mask, b, T, eps);
    const r = tf.tidy(() =>
      iatPerturbation(tf.tensor2d(f32(s), [b, T]), tf.tensor2d(f32(g), [b, T]), tf.tensor2d(f32(mask), [b, T]), eps),
    );
    expectClose(r, ref, { rtol: 1e-3, atol: 1e-4 }, 'iAT perturbation');
    for (const n of rowNorms(ref, b, T)) expect(n).toBeLessThanOrEqual(eps * Math.sqrt(b - 1) * (1 + 1e-9));
    // with two sentences the only direction is toward the other one: r ∥ (s_1 − s_0) on sentence 0's words
    const two = iatPerturbationReference(
      s.subarray(0, 2 * T),
      g.subarray(0, 2 * T),
      mask.subarray(0, 2 * T),
      2,
      T,
      eps,
    );
    const diff = Array.from({ length: T }, (_, t) => (s[T + t] * mask[T + t] - s[t]) * mask[t]);
    const cos =
      diff.reduce((acc, x, t) => acc + x * two[t], 0) / (Math.hypot(...diff) * Math.hypot(...two.subarray(0, T)));
    expect(Math.abs(cos)).toBeCloseTo(1, 6);
    r.dispose();
  });

  it('reject bad input', async () => {
    await useBackend(name);
    const a = tf.zeros([1, 3]);
    const m = tf.ones([1, 4]);
    expect(() => atPerturbation(a, m, 1)).toThrow(/atPerturbation: mask must be \[1,3\] like grad, got \[1,4\]/);
    expect(() => atPerturbation(a, tf.ones([1, 3]), -1)).toThrow(
      /atPerturbation: eps must be a finite number >= 0, got -1/,
    );
    expect(() => iatPerturbation(a, a, tf.ones([1, 3]), 1)).toThrow(/iatPerturbation: scores must hold >= 2 sentences/);
    tf.dispose([a, m]);
  });
});

describe('score gradient and adversarial loss', () => {
  const task = sentimentTask({ minLen: 4, maxLen: 6, sentimentWords: 2, topicWords: 0, fillerPerSplit: 40 });

  it('the score gradient matches finite differences of the model loss, and AT raises the loss', async () => {
    await useBackend('cpu');
    const model = new TextClassifier({
      vocabSize: task.vocabSize,
      embedDim: 5,
      hidden: 4,
      classes: 2,
      pooling: { kind: 'additive', dim: 5 },
      seed: 3,
    });
    const x = sentenceTensors(task.sample('train', 5, 1));
    const [b, T] = x.mask.shape;
    const { grad, scores } = scoreGradient(model, x.tokens, x.mask, x.labels);
    expect(scores.shape).toEqual([b, T]);
    const loss = (delta: Float32Array) =>
      tf.tidy(
        () => crossEntropy(model.forward(x.tokens, x.mask, tf.tensor2d(delta, [b, T])).logits, x.labels).dataSync()[0],
      );
    const g = grad.dataSync();
    const h = 1e-2;
    for (const idx of [0, 3, 7, 12]) {
      const dp = new Float32Array(b * T);
      dp[idx] = h;
      const dm = new Float32Array(b * T);
      dm[idx] = -h;
      expect(Math.abs((loss(dp) - loss(dm)) / (2 * h) - g[idx])).toBeLessThan(2e-3);
    }
    const r = adversarialPerturbation(model, x.tokens, x.mask, x.labels, 'at', 1);
    const zero = adversarialPerturbation(model, x.tokens, x.mask, x.labels, 'vanilla', 1);
    expect(tf.sum(tf.abs(zero)).dataSync()[0]).toBe(0);
    expect(loss(r.dataSync() as Float32Array)).toBeGreaterThan(loss(new Float32Array(b * T)));
    const l1 = adversarialLoss(model, x.tokens, x.mask, x.labels, r, 1).dataSync()[0];
    expect(l1).toBeCloseTo(loss(new Float32Array(b * T)) + loss(r.dataSync() as Float32Array), 4);
    expect(() => adversarialPerturbation(model, x.tokens, x.mask, x.labels, 'fgsm' as never, 1)).toThrow(
      /adversarialPerturbation: mode must be 'vanilla', 'at' or 'iat', got "fgsm"/,
    );
    expectNoLeak(() => {
      tf.dispose(adversarialPerturbation(model, x.tokens, x.mask, x.labels, 'iat', 1));
      tf.dispose(gradientImportance(model, x.tokens, x.mask));
    });
    const imp = gradientImportance(model, x.tokens, x.mask);
    const iv = imp.dataSync();
    const mv = x.mask.dataSync();
    for (let i = 0; i < b * T; i++) if (mv[i] === 0) expect(iv[i]).toBe(0);
    tf.dispose([grad, scores, r, zero, imp, x.tokens, x.mask, x.labels]);
    model.dispose();
  });
});

describe('kendallTau', () => {
  it('is 1 for the same order, −1 for the reverse, τ-b with ties', () => {
    expect(kendallTau([1, 2, 3, 4], [10, 20, 30, 40])).toBeCloseTo(1, 12);
    expect(kendallTau([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 12);
    // pairs: (1,2) concordant, (1,3) concordant, (2,3) tie in b → (2 − 0)/√(3·2)
    expect(kendallTau([1, 2, 3], [1, 2, 2])).toBeCloseTo(2 / Math.sqrt(6), 12);
    expect(Number.isNaN(kendallTau([1, 1], [1, 2]))).toBe(true);
    expect(() => kendallTau([1], [1, 2])).toThrow(/kendallTau: a and b must be equally long, got 1 and 2/);
  });
});

describe('attention-at experiment', () => {
  const tiny = {
    minLen: 4,
    maxLen: 5,
    trainSize: 200,
    validationSize: 60,
    testSize: 80,
    embedDim: 4,
    hidden: 4,
    attentionDim: 4,
    steps: 6,
    batch: 16,
    epsilons: [0.5, 1],
  };

  it('trains the three schemes, picks ε on validation, reports split-named metrics and keeps artifacts', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(attentionAt, { quick: true, overrides: tiny, keep: true });
    for (const m of ['vanilla', 'at', 'iat'])
      for (const k of ['test_accuracy', 'test_accuracy_perturbed', 'test_kendall_tau', 'test_attention_mass_sentiment'])
        expect(Number.isFinite(r.metrics[`${m}.${k}`]), `${m}.${k}`).toBe(true);
    expect(r.tables?.tuning).toHaveLength(5);
    const results = r.tables?.results ?? [];
    expect(results.map((row) => row.method)).toEqual(['Vanilla', 'Attention AT', 'Attention iAT']);
    for (const method of ['at', 'iat']) {
      const tried = (r.tables?.tuning ?? []).filter((row) => row.method === method);
      const bestVal = Math.max(...tried.map((row) => row.validation_accuracy as number));
      expect(r.metrics[`${method}.validation_accuracy`]).toBe(bestVal);
    }
    const art = r.artifacts;
    expect(art?.models).toHaveLength(3);
    expect(art?.models[0].testWeights.length).toBe(80 * 5);
    art?.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }, 60_000);

  it('rejects a bad config before training', async () => {
    await expect(runExperimentWith(attentionAt, { quick: true, overrides: { epsilons: [] } })).rejects.toThrow(
      ConfigError,
    );
    await expect(runExperimentWith(attentionAt, { quick: true, overrides: { minLen: 6, maxLen: 5 } })).rejects.toThrow(
      /maxLen must be >= minLen = 6, got 5/,
    );
  });
});

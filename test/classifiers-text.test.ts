/** The shared BiGRU + attention text classifier: sentiment sentences, additive attention against its float64 reference, the classifier, highlighted text. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { SENTIMENT_LEXICON, sentimentTask } from '../lib/data/sentiment.js';
import {
  type AdditiveParams64,
  additiveAttention,
  additiveAttentionReference,
  attentionHtml,
  evaluateTextClassifier,
  maskedSoftmax,
  sentenceTensors,
  TextClassifier,
  trainTextClassifier,
} from '../lib/papers/classifiers/text-attention/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const CFG = { minLen: 4, maxLen: 7, sentimentWords: 2, topicWords: 1, fillerPerSplit: 30 };

describe('sentimentTask', () => {
  const task = sentimentTask(CFG);

  it('gives every split its own filler and labels sentences by the sum of valences', () => {
    const seen: Record<string, Set<number>> = {};
    for (const split of ['train', 'validation', 'test'] as const) {
      const b = task.sample(split, 200, 7);
      const [f0, f1] = task.filler[split];
      seen[split] = new Set();
      for (let i = 0; i < b.n; i++) {
        let sum = 0;
        let nImportant = 0;
        let nTopic = 0;
        for (let t = 0; t < b.maxLen; t++) {
          const id = b.tokens[i * b.maxLen + t];
          if (t >= b.lengths[i]) {
            expect(id).toBe(0);
            expect(b.mask[i * b.maxLen + t]).toBe(0);
            continue;
          }
          expect(b.mask[i * b.maxLen + t]).toBe(1);
          if (b.important[i * b.maxLen + t]) {
            nImportant++;
            sum += SENTIMENT_LEXICON[task.vocab[id]];
          } else if (b.topicMask[i * b.maxLen + t]) nTopic++;
          else {
            expect(id >= f0 && id < f1, `filler ${task.vocab[id]} of ${split}`).toBe(true);
            seen[split].add(id);
          }
        }
        expect(nImportant).toBe(CFG.sentimentWords);
        expect(nTopic).toBe(CFG.topicWords);
        expect(sum).not.toBe(0);
        expect(b.sentiment[i]).toBe(sum > 0 ? 1 : 0);
        expect(b.label[i]).toBe(2 * b.sentiment[i] + b.topic[i]);
        expect(b.lengths[i] >= CFG.minLen && b.lengths[i] <= CFG.maxLen).toBe(true);
      }
    }
    for (const id of seen.test) expect(seen.train.has(id) || seen.validation.has(id)).toBe(false);
    expect(new Set(task.vocab).size).toBe(task.vocab.length);
  });

  it('is seeded and balanced enough to learn from', () => {
    const a = task.sample('train', 400, 3);
    const b = task.sample('train', 400, 3);
    const c = task.sample('train', 400, 4);
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    expect(Array.from(a.tokens)).not.toEqual(Array.from(c.tokens));
    const pos = a.sentiment.reduce((s, x) => s + x, 0) / a.n;
    expect(pos).toBeGreaterThan(0.3);
    expect(pos).toBeLessThan(0.7);
    expect(task.words(a, 0).length).toBe(a.lengths[0]);
  });

  it('rejects bad settings, naming the argument and the value', () => {
    expect(() => sentimentTask({ ...CFG, minLen: 2 })).toThrow(
      /minLen must be >= sentimentWords \+ topicWords = 3, got 2/,
    );
    expect(() => sentimentTask({ ...CFG, maxLen: 3 })).toThrow(/maxLen must be >= minLen = 4, got 3/);
    expect(() => sentimentTask({ ...CFG, fillerPerSplit: 0 })).toThrow(/fillerPerSplit must be an integer >= 1, got 0/);
    expect(() => task.sample('dev' as never, 3, 0)).toThrow(/split must be/);
  });
});

/** Random h [b·T·d], a mask with padding at the end of rows, and parameters. */
function setup(b: number, T: number, d: number, k: number, seed: number) {
  const h = randomArray(b * T * d, seed);
  const mask = new Float64Array(b * T);
  for (let i = 0; i < b; i++) for (let t = 0; t < T - (i % 3); t++) mask[i * T + t] = 1;
  const p: AdditiveParams64 = {
    d,
    k,
    w: randomArray(d * k, seed + 1),
    c: randomArray(k, seed + 2, 0.5),
    v: randomArray(k, seed + 3),
  };
  return { h, mask, p };
}

const f32 = (x: ArrayLike<number>) => Float32Array.from(x);

describe.each(BACKENDS)('additiveAttention on %s', (name) => {
  it('matches the float64 reference (scores, weights, context, with and without δ)', async () => {
    await useBackend(name);
    const [b, T, d, k] = [4, 6, 5, 3];
    const { h, mask, p } = setup(b, T, d, k, 11);
    const delta = randomArray(b * T, 99, 2);
    for (const dl of [undefined, delta]) {
      const ref = additiveAttentionReference(h, mask, b, T, p, dl);
      const out = tf.tidy(() => {
        const o = additiveAttention(
          tf.tensor3d(f32(h), [b, T, d]),
          tf.tensor2d(f32(mask), [b, T]),
          { w: tf.tensor2d(f32(p.w), [d, k]), c: tf.tensor1d(f32(p.c)), v: tf.tensor1d(f32(p.v)) },
          dl ? tf.tensor2d(f32(dl), [b, T]) : undefined,
        );
        return [o.scores, o.weights, o.context];
      });
      expectClose(out[0], ref.scores, {}, 'scores');
      expectClose(out[1], ref.weights, {}, 'weights');
      expectClose(out[2], ref.context, {}, 'context');
      const w = out[1].dataSync();
      for (let i = 0; i < b * T; i++) if (mask[i] === 0) expect(w[i]).toBe(0);
      tf.dispose(out);
    }
  });

  it('has the gradients of the reference (h, W, c, v, δ)', async () => {
    await useBackend(name);
    const [b, T, d, k] = [3, 5, 4, 3];
    const { h, mask, p } = setup(b, T, d, k, 21);
    const delta = randomArray(b * T, 5, 0.5);
    const probe = randomArray(b * d, 8);
    const f = () => {
      const r = additiveAttentionReference(h, mask, b, T, p, delta).context;
      return r.reduce((s, x, i) => s + x * probe[i], 0);
    };
    const expected = [numericGrad(f, h), numericGrad(f, p.w as Float64Array), numericGrad(f, p.c as Float64Array)];
    expected.push(numericGrad(f, p.v as Float64Array), numericGrad(f, delta));
    const grads = tf.tidy(() => {
      const m = tf.tensor2d(f32(mask), [b, T]);
      const pr = tf.tensor2d(f32(probe), [b, d]);
      const g = tf.grads((ht, w, c, v, dl) => tf.sum(tf.mul(additiveAttention(ht, m, { w, c, v }, dl).context, pr)));
      return g([
        tf.tensor3d(f32(h), [b, T, d]),
        tf.tensor2d(f32(p.w), [d, k]),
        tf.tensor1d(f32(p.c)),
        tf.tensor1d(f32(p.v)),
        tf.tensor2d(f32(delta), [b, T]),
      ]);
    });
    const labels = ['h', 'w', 'c', 'v', 'delta'];
    grads.forEach((g, i) => expectClose(g, expected[i], { rtol: 2e-3, atol: 2e-4 }, `grad ${labels[i]}`));
    tf.dispose(grads);
  });

  it('ignores what padding holds, and leaks no tensor', async () => {
    await useBackend(name);
    const [b, T, d, k] = [3, 6, 4, 3];
    const { h, mask, p } = setup(b, T, d, k, 31);
    const h2 = Float64Array.from(h);
    for (let i = 0; i < b * T; i++) if (mask[i] === 0) for (let f = 0; f < d; f++) h2[i * d + f] = 100;
    const params = { w: tf.tensor2d(f32(p.w), [d, k]), c: tf.tensor1d(f32(p.c)), v: tf.tensor1d(f32(p.v)) };
    const m = tf.tensor2d(f32(mask), [b, T]);
    const ctx = (x: Float64Array) =>
      tf.tidy(() => additiveAttention(tf.tensor3d(f32(x), [b, T, d]), m, params).context);
    const [c1, c2] = [ctx(h), ctx(h2)];
    expectClose(c2, c1.dataSync(), {}, 'padding changed the context');
    tf.dispose([c1, c2]);
    expectNoLeak(() => {
      tf.dispose(ctx(h));
    });
    tf.dispose([m, ...Object.values(params)]);
  });
});

describe('argument errors', () => {
  it('name the function, the argument and the shapes', async () => {
    await useBackend('cpu');
    const h = tf.zeros([2, 3, 4]);
    const m = tf.ones([2, 4]);
    const p = { w: tf.zeros([4, 2]), c: tf.zeros([2]), v: tf.zeros([2]) };
    expect(() => additiveAttention(h, m, p)).toThrow(
      /additiveAttention: mask must be \[2, 3\] to match h \[2,3,4\], got \[2,4\]/,
    );
    expect(() => additiveAttention(h, tf.ones([2, 3]), { ...p, w: tf.zeros([5, 2]) })).toThrow(
      /additiveScores: w must be \[4, k\]/,
    );
    expect(() => maskedSoftmax(tf.zeros([2, 3]), m)).toThrow(
      /maskedSoftmax: mask must have the shape of scores \[2,3\]/,
    );
    expect(
      () =>
        new TextClassifier({
          vocabSize: 10,
          embedDim: 4,
          hidden: 4,
          classes: 2,
          pooling: { kind: 'dot' } as never,
          seed: 0,
        }),
    ).toThrow(/pooling.kind must be 'additive', 'structured' or 'lama', got "dot"/);
    tf.dispose([h, m, ...Object.values(p)]);
  });
});

describe('TextClassifier', () => {
  const task = sentimentTask({ minLen: 4, maxLen: 6, sentimentWords: 2, topicWords: 0, fillerPerSplit: 40 });

  it.each(['additive', 'structured', 'lama'] as const)(
    '%s: logits do not depend on padding, shapes match, no leak',
    async (kind) => {
      await useBackend('cpu');
      const pooling =
        kind === 'additive'
          ? ({ kind, dim: 6 } as const)
          : kind === 'structured'
            ? ({ kind, heads: 3, dim: 6, penalty: 0.1 } as const)
            : ({ kind, heads: 3, rank: 4 } as const);
      const model = new TextClassifier({
        vocabSize: task.vocabSize,
        embedDim: 5,
        hidden: 4,
        classes: 2,
        pooling,
        seed: 1,
      });
      const batch = task.sample('train', 6, 2);
      const x = sentenceTensors(batch);
      const tokens2 = batch.tokens.map((id, i) => (batch.mask[i] === 0 ? 3 : id));
      const t2 = tf.tensor2d(tokens2, [batch.n, batch.maxLen], 'int32');
      const a = model.forward(x.tokens, x.mask);
      const b = model.forward(t2, x.mask);
      expect(a.logits.shape).toEqual([6, 2]);
      expect(a.weights.shape).toEqual([6, model.heads, 6]);
      expectClose(b.logits, a.logits.dataSync(), {}, 'logits changed with padding tokens');
      const sums = tf.sum(a.weights, 2).dataSync();
      for (const s of sums) expect(s).toBeCloseTo(1, 5);
      tf.dispose([a, b, t2] as tf.TensorContainer[]);
      expectNoLeak(() => {
        tf.dispose(model.forward(x.tokens, x.mask) as unknown as tf.TensorContainer);
      });
      tf.dispose([x.tokens, x.mask, x.labels]);
      model.dispose();
    },
  );

  it('learns the sentiment task above chance on held-out filler', async () => {
    await useBackend('wasm');
    const model = new TextClassifier({
      vocabSize: task.vocabSize,
      embedDim: 8,
      hidden: 8,
      classes: 2,
      pooling: { kind: 'additive', dim: 8 },
      seed: 0,
    });
    const before = tf.memory().numTensors;
    await trainTextClassifier(model, task.sample('train', 600, 1), { steps: 40, batch: 32, lr: 2e-2, seed: 0 });
    expect(tf.memory().numTensors).toBe(before);
    const ev = evaluateTextClassifier(model, task.sample('test', 400, 2));
    expect(ev.accuracy - ev.accuracyCi95).toBeGreaterThan(0.55);
    model.dispose();
  }, 60_000);
});

describe('attentionHtml', () => {
  it('escapes every word and shades by weight', () => {
    const html = attentionHtml(['<script>', 'a&b', 'good'], [0.2, 0.3, 0.5], [0, 0, 1]);
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;');
    expect(html).toContain('a&amp;b');
    expect(html).toContain('rgba(230,80,40,1.000);text-decoration:underline');
    expect(() => attentionHtml(['a', 'b'], [1])).toThrow(
      /attentionHtml: weights must have one entry per word \(2\), got 1/,
    );
  });
});

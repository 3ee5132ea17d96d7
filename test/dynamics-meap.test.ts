import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { kvFactsLanguage } from '../lib/data/kv-facts.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { ToyLM } from '../lib/layers/toylm.js';
import {
  attentionEntropy,
  attentionEntropyReference,
  depthBucket,
  keySplit,
  kvFactsTask,
  kvFactsTextEntropy,
  kvFactsVocab,
  meapExperiment,
  meapLoss,
  meapLossReference,
  meapMaskBatch,
  meapMaskCount,
  meapMaskIds,
  meapMaskTensor,
  meapPositions,
  testDepths,
} from '../lib/papers/dynamics/meap/index.js';
import { expectClose, expectNoLeak, numericGrad, randomArray } from './helpers.js';

beforeAll(async () => {
  await backend.setBackend('wasm');
});

describe('meap masking (lib/data/meap.ts)', () => {
  it('masks max(1, floor(s·ratio)) distinct positions in [0, s-1), the same for a seed; ratio 0 masks none', () => {
    for (const [s, ratio, n] of [
      [40, 0.15, 6],
      [40, 0.1, 4],
      [8, 0.1, 1],
      [64, 0.15, 9],
      [16, 0, 0],
    ] as const) {
      expect(meapMaskCount(s, ratio)).toBe(n);
      const p = meapPositions(s, { ratio, maskId: 99, seed: 3 });
      expect(p).toHaveLength(n);
      expect(new Set(p).size).toBe(n);
      for (const x of p) expect(x >= 0 && x < s - 1).toBe(true);
      expect(meapPositions(s, { ratio, maskId: 99, seed: 3 })).toEqual(p);
    }
    expect(meapPositions(40, { ratio: 0.15, maskId: 1, seed: 4 })).not.toEqual(
      meapPositions(40, { ratio: 0.15, maskId: 1, seed: 3 }),
    );
  });

  it('draws positions uniformly over [0, s-1): the first position is masked, the last never', () => {
    const s = 10;
    const counts = new Array<number>(s).fill(0);
    const seeds = 2000;
    for (let seed = 0; seed < seeds; seed++)
      for (const p of meapPositions(s, { ratio: 0.2, maskId: 0, seed })) counts[p]++;
    expect(counts[s - 1]).toBe(0);
    // 2 of 9 positions per draw: each expected 2000·2/9 ≈ 444 (sd ≈ 19).
    for (let i = 0; i < s - 1; i++) expect(Math.abs(counts[i] - (seeds * 2) / 9)).toBeLessThan(80);
  });

  it('a lower ratio masks a subset of a higher ratio’s positions at the same seed', () => {
    for (let seed = 0; seed < 20; seed++) {
      const lo = meapPositions(64, { ratio: 0.1, maskId: 0, seed });
      const hi = new Set(meapPositions(64, { ratio: 0.15, maskId: 0, seed }));
      for (const p of lo) expect(hi.has(p)).toBe(true);
    }
  });

  it('replaces the inputs at the positions in every row and leaves targets and lossMask untouched', () => {
    const b = kvFactsTask({ seqLen: 20, values: 8, words: 16, facts: 2 }, 4, 1, 'train');
    const cfg = { ratio: 0.25, maskId: b.vocabSize - 1, seed: 7 };
    const positions = meapPositions(20, cfg);
    const m = meapMaskBatch(b, cfg);
    expect(Array.from(m.targets)).toEqual(Array.from(b.targets));
    expect(Array.from(m.lossMask)).toEqual(Array.from(b.lossMask));
    for (let r = 0; r < 4; r++) {
      const orig = b.row(r).inputs;
      const got = m.row(r).inputs;
      got.forEach((x, i) => expect(x).toBe(positions.includes(i) ? cfg.maskId : orig[i]));
      expect(m.row(r).targets).toEqual(b.row(r).targets);
    }
    const t = m.toTensors();
    expect(Array.from(t.targets.dataSync())).toEqual(Array.from(b.targets));
    tf.dispose([t.inputs, t.targets, t.lossMask]);
  });

  it('the tensor form equals the array form and frees what it creates', () => {
    const ids = Int32Array.from(randomArray(3 * 16, 5), (x) => Math.floor((x + 1) * 10));
    const cfg = { ratio: 0.15, maskId: 42, seed: 11 };
    const t = tf.tensor2d(ids, [3, 16], 'int32');
    const m = meapMaskTensor(t, cfg);
    expect(m.dtype).toBe('int32');
    expect(Array.from(m.dataSync())).toEqual(Array.from(meapMaskIds(ids, 3, 16, cfg)));
    m.dispose();
    expectNoLeak(() => meapMaskTensor(t, cfg).dispose());
    t.dispose();
  });

  it('names the function, the argument, the expected and the actual value on bad input', () => {
    expect(() => meapPositions(16, { ratio: 1, maskId: 0, seed: 0 })).toThrow(
      /meapPositions: ratio must be a number in \[0, 1\), got 1/,
    );
    expect(() => meapPositions(1, { ratio: 0.1, maskId: 0, seed: 0 })).toThrow(
      /meapPositions: seqLen must be an integer >= 2, got 1/,
    );
    expect(() => meapPositions(16, { ratio: 0.1, maskId: -1, seed: 0 })).toThrow(
      /meapPositions: maskId must be an integer >= 0, got -1/,
    );
    expect(() => meapMaskIds(new Int32Array(10), 2, 4, { ratio: 0.1, maskId: 0, seed: 0 })).toThrow(
      /meapMaskIds: ids has 10 entries, expected batch · seqLen = 2 · 4 = 8/,
    );
    const b = kvFactsTask({ seqLen: 20, values: 8, words: 16, facts: 2 }, 1, 0, 'train');
    expect(() => meapMaskBatch(b, { ratio: 0.1, maskId: b.vocabSize, seed: 0 })).toThrow(
      new RegExp(`meapMaskBatch: maskId must be < the batch's vocabSize ${b.vocabSize}, got ${b.vocabSize}`),
    );
    const t = tf.zeros([4], 'int32');
    expect(() => meapMaskTensor(t, { ratio: 0.1, maskId: 0, seed: 0 })).toThrow(
      /meapMaskTensor: ids must have rank 2 \[batch, seqLen\], got shape \[4\]/,
    );
    t.dispose();
  });
});

/** A float64 bigram model: logits[b][t] = E[ids[b][t]] · W. */
function bigramRef(E: Float64Array, W: Float64Array, V: number, d: number) {
  return (ids: number[][]) =>
    ids.map((row) =>
      row.map((id) =>
        Array.from({ length: V }, (_, v) => {
          let z = 0;
          for (let k = 0; k < d; k++) z += E[id * d + k] * W[k * V + v];
          return z;
        }),
      ),
    );
}

describe('meapLoss against its float64 reference', () => {
  const V = 7;
  const d = 3;
  const B = 2;
  const S = 10;
  const inputs = Array.from({ length: B }, (_, b) => Array.from({ length: S }, (_, t) => (b * 3 + t * 2) % (V - 1)));
  const targets = inputs.map((r) => r.map((x, t) => (x + t) % (V - 1)));
  const E0 = randomArray(V * d, 1, 0.8);
  const W0 = randomArray(d * V, 2, 0.8);
  const lossMaskArr = inputs.map((r) => r.map((_, t) => (t % 3 === 0 ? 0 : 1)));

  for (const withMask of [false, true]) {
    it(`outputs and gradients match (${withMask ? 'with' : 'without'} a loss mask), and masked inputs feed the [MASK] row`, () => {
      const opts = { ratio: 0.3, maskId: V - 1, seed: 5 };
      const E = tf.variable(tf.tensor2d(Float32Array.from(E0), [V, d]));
      const W = tf.variable(tf.tensor2d(Float32Array.from(W0), [d, V]));
      const model = {
        forward: (ids: tf.Tensor) =>
          tf.oneHot(ids.flatten(), V).toFloat().matMul(E).matMul(W).reshape([B, S, V]) as tf.Tensor3D,
      };
      const ids = tf.tensor2d(inputs, [B, S], 'int32');
      const tgt = tf.tensor2d(targets, [B, S], 'int32');
      const lm = withMask ? tf.tensor2d(lossMaskArr, [B, S]) : undefined;
      const { value, grads } = tf.variableGrads(() => meapLoss(model, ids, tgt, { ...opts, lossMask: lm }), [E, W]);
      const refOpts = { ...opts, lossMask: withMask ? lossMaskArr : undefined };
      const Ex = Float64Array.from(E0);
      const Wx = Float64Array.from(W0);
      const f = () => meapLossReference(bigramRef(Ex, Wx, V, d), inputs, targets, refOpts);
      expectClose([value.dataSync()[0]], [f()], { rtol: 1e-4, atol: 1e-5 }, 'loss');
      expectClose(grads[E.name], numericGrad(f, Ex), { rtol: 1e-3, atol: 1e-5 }, 'dE');
      expectClose(grads[W.name], numericGrad(f, Wx), { rtol: 1e-3, atol: 1e-5 }, 'dW');
      // The [MASK] row gets gradient; the loss differs from plain NTP on the same batch.
      const dE = grads[E.name].arraySync() as number[][];
      expect(dE[V - 1].some((x) => Math.abs(x) > 1e-6)).toBe(true);
      const ntp = meapLossReference(bigramRef(Ex, Wx, V, d), inputs, targets, { ...refOpts, ratio: 0 });
      expect(Math.abs(ntp - f())).toBeGreaterThan(1e-4);
      tf.dispose([value, ...Object.values(grads), ids, tgt, E, W]);
      lm?.dispose();
    });
  }

  it('on ToyLM equals the model’s own loss on the masked inputs; logits before the first mask are unchanged (causal)', () => {
    const model = new ToyLM({ vocab: 12, dModel: 16, heads: 2, layers: 2, maxLen: 16, seed: 3 });
    const ids = tf.tensor2d(
      Int32Array.from({ length: 2 * 16 }, (_, i) => (i * 7) % 11),
      [2, 16],
      'int32',
    );
    const tgt = tf.tensor2d(
      Int32Array.from({ length: 2 * 16 }, (_, i) => (i * 5) % 11),
      [2, 16],
      'int32',
    );
    const opts = { ratio: 0.2, maskId: 11, seed: 9 };
    const masked = meapMaskTensor(ids, opts);
    const a = meapLoss(model, ids, tgt, opts);
    const b = model.loss(masked, tgt);
    expectClose(a, b, { rtol: 1e-5, atol: 1e-6 }, 'ToyLM loss');
    const first = meapPositions(16, opts)[0];
    const l0 = model.forward(ids);
    const l1 = model.forward(masked);
    if (first > 0)
      expectClose(l1.slice([0, 0, 0], [-1, first, -1]), l0.slice([0, 0, 0], [-1, first, -1]), {}, 'before the mask');
    expect(
      tf.tidy(
        () =>
          l1
            .slice([0, first, 0], [-1, 1, -1])
            .sub(l0.slice([0, first, 0], [-1, 1, -1]))
            .abs()
            .max()
            .dataSync()[0],
      ),
    ).toBeGreaterThan(1e-6);
    expectNoLeak(() => meapLoss(model, ids, tgt, opts).dispose());
    tf.dispose([ids, tgt, masked, a, b, l0, l1]);
    model.dispose();
  });

  it('names the argument on bad shapes', () => {
    const m = { forward: (x: tf.Tensor) => x as unknown as tf.Tensor3D };
    const a = tf.zeros([2, 4], 'int32');
    const c = tf.zeros([2, 5], 'int32');
    expect(() => meapLoss(m, a, c, { ratio: 0.1, maskId: 0, seed: 0 })).toThrow(
      /meapLoss: targets must have the inputs' shape \[2,\s?4\], got shape \[2,\s?5\]/,
    );
    tf.dispose([a, c]);
  });
});

describe('attentionEntropy against its float64 reference', () => {
  const [B, H, Q] = [2, 3, 5];
  /** Random causal softmax rows, as nested arrays. */
  const pattern = (() => {
    const r = randomArray(B * H * Q * Q, 17, 2);
    return Array.from({ length: B }, (_, b) =>
      Array.from({ length: H }, (_, h) =>
        Array.from({ length: Q }, (_, q) => {
          const z = Array.from({ length: Q }, (_, k) => (k <= q ? Math.exp(r[((b * H + h) * Q + q) * Q + k]) : 0));
          const s = z.reduce((x, y) => x + y, 0);
          return z.map((x) => x / s);
        }),
      ),
    );
  })();
  const rowMask = [
    [0, 1, 0, 1, 1],
    [1, 0, 0, 0, 1],
  ];

  it('outputs and gradients match, with and without a row mask; uniform causal rows give log(q+1)', () => {
    for (const mask of [undefined, rowMask]) {
      const p = tf.tensor4d(pattern);
      const m = mask ? tf.tensor2d(mask) : undefined;
      const e = attentionEntropy(p, m);
      expectClose(e, attentionEntropyReference(pattern, mask), { rtol: 1e-4, atol: 1e-6 }, 'entropy');
      const w = [0.3, -1.1, 0.7];
      const g = tf.grad((x: tf.Tensor) => attentionEntropy(x, m).mul(tf.tensor1d(w)).sum())(p);
      const flat = Float64Array.from(pattern.flat(3));
      const f = () => {
        const nested = Array.from({ length: B }, (_, b) =>
          Array.from({ length: H }, (_, h) =>
            Array.from({ length: Q }, (_, q) =>
              Array.from(flat.subarray(((b * H + h) * Q + q) * Q, ((b * H + h) * Q + q + 1) * Q)),
            ),
          ),
        );
        return attentionEntropyReference(nested, mask).reduce((a, x, h) => a + x * w[h], 0);
      };
      const num = numericGrad(f, flat, 1e-6);
      // The causal zeros have no defined derivative of p log p; compare where p > 0.
      const gd = g.dataSync();
      const idx = Array.from(flat.keys()).filter((i) => pattern.flat(3)[i] > 0);
      expectClose(
        idx.map((i) => gd[i]),
        idx.map((i) => num[i]),
        { rtol: 1e-3, atol: 1e-4 },
        'dEntropy',
      );
      tf.dispose([p, e, g]);
      m?.dispose();
    }
    const uniform = tf.tidy(() =>
      tf.linalg
        .bandPart(tf.ones([Q, Q]), -1, 0)
        .div(tf.range(1, Q + 1).reshape([Q, 1]))
        .reshape([1, 1, Q, Q]),
    );
    const e = attentionEntropy(uniform);
    expectClose(e, [Array.from({ length: Q }, (_, q) => Math.log(q + 1)).reduce((a, b) => a + b) / Q], {}, 'uniform');
    expectNoLeak(() => attentionEntropy(uniform).dispose());
    tf.dispose([uniform, e]);
  });

  it('names the argument on bad shapes', () => {
    const p = tf.zeros([2, 3, 4]);
    expect(() => attentionEntropy(p)).toThrow(/attentionEntropy: pattern must be \[batch, heads, queries, keys\]/);
    const p4 = tf.zeros([2, 1, 4, 4]);
    const m = tf.zeros([2, 3]);
    expect(() => attentionEntropy(p4, m)).toThrow(
      /attentionEntropy: rowMask must be \[2, 4\] \(batch, queries\), got \[2,\s?3\]/,
    );
    tf.dispose([p, p4, m]);
  });
});

describe('kv-facts data (lib/data/kv-facts.ts)', () => {
  const cfg = { seqLen: 40, values: 16, words: 24, facts: 3 };

  it('reproduces the worked example of its header', () => {
    const b = kvFactsTask({ seqLen: 14, values: 8, words: 24, facts: 2 }, 1, 2, 'train');
    expect([...b.row(0).inputs, b.targets[13]]).toEqual([1, 24, 9, 22, 32, 29, 26, 6, 12, 3, 22, 9, 3, 12, 6]);
    expect(b.queries).toEqual([
      { row: 0, pos: 10, factPos: 3, depth: 1 / 6 },
      { row: 0, pos: 13, factPos: 8, depth: 1 },
    ]);
  });

  it('lays out BOS, context, queries; each answer is the token after its key in the context', () => {
    const b = kvFactsTask(cfg, 64, 2, 'train');
    const v = kvFactsVocab(cfg);
    expect(b.vocabSize).toBe(4 + 16 + 24);
    expect(b.queries).toHaveLength(64 * 3);
    for (const q of b.queries) {
      const row = b.row(q.row);
      expect(row.inputs[0]).toBe(1);
      expect(row.inputs[q.pos - 1]).toBe(3); // QUERY
      expect(row.inputs[q.factPos]).toBe(row.inputs[q.pos]); // the queried key
      expect(row.inputs.slice(0, q.pos).filter((x) => x === row.inputs[q.pos])).toHaveLength(1); // seen once before
      expect(row.lossMask[q.pos]).toBe(1);
      expect(row.targets[q.pos]).toBe(row.inputs[q.factPos - 1]); // its value, just before it
      expect(row.targets[q.pos] >= v.values[0] && row.targets[q.pos] < v.values[1]).toBe(true);
      expect(q.pos).toBeGreaterThan(cfg.seqLen - 3 * cfg.facts);
    }
    expect(b.lossMask.reduce((a, x) => a + x, 0)).toBe(64 * 3);
    // textMask: consecutive text words only, never a fact's key or value.
    const isWord = (id: number) => id >= v.words[0];
    for (let i = 0; i < b.textMask.length; i++)
      if (b.textMask[i]) expect(isWord(b.inputs[i]) && isWord(b.targets[i])).toBe(true);
    for (const q of b.queries) {
      expect(b.textMask[q.row * cfg.seqLen + q.factPos - 1]).toBe(0);
      expect(b.textMask[q.row * cfg.seqLen + q.factPos]).toBe(0);
    }
  });

  it('keeps the facts of train, validation and test disjoint by key; every key word is also text in training', () => {
    const v = kvFactsVocab(cfg);
    const keysOf: Record<string, Set<number>> = {};
    const trainText = new Set<number>();
    for (const split of ['train', 'validation', 'test'] as const) {
      const b = kvFactsTask(cfg, 200, 0, split);
      keysOf[split] = new Set();
      for (const q of b.queries) {
        const k = b.inputs[q.row * cfg.seqLen + q.pos] - v.words[0];
        expect(keySplit(k)).toBe(split);
        keysOf[split].add(k);
      }
      if (split === 'train') b.textMask.forEach((m, i) => (m ? trainText.add(b.inputs[i] - v.words[0]) : undefined));
    }
    expect([...keysOf.test].sort((a, b) => a - b)).toEqual([7, 15, 23]);
    expect([...keysOf.validation].sort((a, b) => a - b)).toEqual([6, 14, 22]);
    for (const k of keysOf.train) expect(keysOf.test.has(k) || keysOf.validation.has(k)).toBe(false);
    for (const k of [...keysOf.test, ...keysOf.validation]) expect(trainText.has(k)).toBe(true);
  });

  it('puts the facts at the requested depths; the text follows the language; its entropy is the floor', () => {
    const depths = testDepths(3);
    expect(depths).toEqual([0, 0.5, 1]);
    const b = kvFactsTask({ ...cfg, depths }, 16, 4, 'test');
    const got = new Set(b.queries.map((q) => +q.depth.toFixed(3)));
    expect([...got].sort()).toEqual([0, 0.517, 1]); // start 15 of 0..29 (round(14.5)) for the middle
    expect(b.queries.filter((q) => q.depth === 0).every((q) => q.factPos === 2)).toBe(true);
    expect(b.queries.map((q) => depthBucket(q.depth)).filter((x) => x === 'middle')).toHaveLength(16);
    const lang = kvFactsLanguage(cfg);
    const v = kvFactsVocab(cfg);
    for (let i = 0; i < b.textMask.length; i++)
      if (b.textMask[i]) expect(lang.successors[b.inputs[i] - v.words[0]]).toContain(b.targets[i] - v.words[0]);
    expect(kvFactsTextEntropy(cfg)).toBeCloseTo(
      -[4, 2, 1].map((x) => x / 7).reduce((a, p) => a + p * Math.log(p), 0),
      12,
    );
  });

  it('is deterministic per seed and split, and names bad arguments', () => {
    expect(Array.from(kvFactsTask(cfg, 4, 9, 'test').inputs)).toEqual(
      Array.from(kvFactsTask(cfg, 4, 9, 'test').inputs),
    );
    expect(Array.from(kvFactsTask(cfg, 4, 9, 'test').inputs)).not.toEqual(
      Array.from(kvFactsTask(cfg, 4, 9, 'validation').inputs),
    );
    expect(() => kvFactsTask({ ...cfg, words: 16 }, 1, 0, 'train')).toThrow(
      /kvFactsTask: words must be an integer >= 24, got 16/,
    );
    expect(() => kvFactsTask({ ...cfg, seqLen: 12 }, 1, 0, 'train')).toThrow(
      /kvFactsTask: seqLen must be >= 5 · facts = 15 .*, got 12/,
    );
    expect(() => kvFactsTask({ ...cfg, depths: [0, 1] }, 1, 0, 'train')).toThrow(
      /kvFactsTask: depths must be a list of 3 fractions \(one per fact\), got \[0,1\]/,
    );
    expect(() => kvFactsTask(cfg, 1, 0, 'dev' as 'test')).toThrow(
      /kvFactsTask: split must be one of train, validation, test, got dev/,
    );
  });
});

describe('the meap experiment (tiny config)', () => {
  const tiny = {
    seqLen: 20,
    values: 8,
    words: 24,
    facts: 3,
    dModel: 16,
    heads: 2,
    layers: 1,
    batch: 8,
    steps: 6,
    lrs: [3e-3],
    validationRows: 16,
    testRows: 32,
    evalEvery: 3,
  };

  it('reports accuracy by depth with intervals, paired gains, LM loss, entropy and the paper’s number; frees its models', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(meapExperiment, { quick: true, overrides: tiny, keep: true, progress: false });
    for (const v of ['ntp', 'meap10', 'meap15']) {
      for (const k of ['test_accuracy', 'test_lm_loss', 'test_entropy', 'validation_accuracy'])
        expect(Number.isFinite(r.metrics[`${k}_${v}`]), `${k}_${v}`).toBe(true);
      for (const k of ['test_accuracy', 'test_lm_loss', 'test_entropy'])
        expect(Number.isFinite(r.metrics[`${k}_${v}_ci95`]), `${k}_${v}_ci95`).toBe(true);
      for (const b of ['beginning', 'middle', 'end'])
        expect(r.metrics[`test_accuracy_${v}_${b}`]).toBeGreaterThanOrEqual(0);
    }
    expect(Number.isFinite(r.metrics.test_gain_meap15_middle)).toBe(true);
    expect(r.metrics.test_queries).toBe(96);
    expect(r.references).toEqual([expect.objectContaining({ metric: 'test_gain_meap15_middle', paper: 11.77 })]);
    expect(r.tables!.variants.map((x) => [x.variant, x.masked, x.headline])).toEqual([
      ['ntp', 0, false],
      ['meap10', 2, false],
      ['meap15', 3, true],
    ]);
    expect(r.tables!.depth).toHaveLength(3 * 3);
    const a = r.artifacts!;
    expect(a.variants.map((v) => v.records.filter((x) => 'validation_accuracy' in x).length)).toEqual([2, 2, 2]);
    expect(a.depths).toEqual([0, 0.5, 1]);
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects configs without the NTP baseline or with a headline ratio it does not run', async () => {
    await expect(
      runExperimentWith(meapExperiment, { quick: true, overrides: { ...tiny, ratios: [0.1, 0.15] } }),
    ).rejects.toThrow(/meap: config.ratios must include 0 \(the NTP baseline\), got \[0.1,0.15\]/);
    await expect(
      runExperimentWith(meapExperiment, { quick: true, overrides: { ...tiny, ratios: [0, 0.1] } }),
    ).rejects.toThrow(/meap: config.headlineRatio must be one of config.ratios \[0,0.1\], got 0.15/);
    await expect(runExperimentWith(meapExperiment, { quick: true, overrides: { facts: 2 } })).rejects.toThrow(
      /config.facts must be an integer >= 3, got 2/,
    );
  });
});

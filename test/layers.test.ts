import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { naiveAttention } from '../lib/attention/index.js';
import { MultiHeadAttention, scaleHeads, ToyLM, type ToyLMConfig, TransformerBlock } from '../lib/layers/index.js';
import * as masks from '../lib/masks/index.js';
import { BACKENDS, expectClose, expectNoLeak, useBackend } from './helpers.js';

/** Save a model to memory and load it back: the tfjs serialization path that file handlers use too. */
async function roundTrip(model: tf.LayersModel): Promise<tf.LayersModel> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return tf.loadLayersModel(tf.io.fromMemory(artifacts!));
}

const tokens = (b: number, s: number, vocab: number, seed: number) =>
  tf.tensor2d(
    Array.from({ length: b * s }, (_, i) => (i * 7 + seed * 13 + ((i * i) % 5)) % vocab),
    [b, s],
    'int32',
  );

const LM_VARIANTS: [string, Partial<ToyLMConfig>][] = [
  ['learned positions', { positional: 'learned' }],
  ['sinusoidal positions', { positional: 'sinusoidal' }],
  ['RoPE', { positional: 'rope' }],
  ['ALiBi', { positional: 'alibi' }],
  ['GQA (4 heads, 2 kv heads), tied embeddings', { kvHeads: 2, tieEmbeddings: true }],
  ['sliding window 3 with 1 sink', { window: 3, sinks: 1, positional: 'rope' }],
  ['softmax with learnable sink logit', { scoring: 'softmax-sink' }],
];

const base: ToyLMConfig = { vocab: 11, dModel: 16, heads: 4, layers: 2, maxLen: 12, seed: 3 };

describe.each(BACKENDS)('layers on %s', (name) => {
  beforeAll(async () => useBackend(name));

  it('MultiHeadAttention equals projections + naive attention', () => {
    const layer = new MultiHeadAttention({ dModel: 8, heads: 2, causal: true, useBias: true, seed: 1 });
    const x = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 7);
    const y = layer.apply(x) as tf.Tensor;
    const [wq, bq, wk, bk, wv, bv, wo, bo] = ['wq', 'bq', 'wk', 'bk', 'wv', 'bv', 'wo', 'bo'].map((n) =>
      layer.weights.find((w) => w.originalName.endsWith(n))!.read(),
    );
    const proj = (w: tf.Tensor, b: tf.Tensor) =>
      x.reshape([10, 8]).matMul(w).add(b).reshape([2, 5, 2, 4]).transpose([0, 2, 1, 3]);
    const dense = (t: tf.Tensor) => ({ data: t.dataSync(), shape: t.shape });
    const ref = naiveAttention(dense(proj(wq, bq)), dense(proj(wk, bk)), dense(proj(wv, bv)), { mask: masks.causal() });
    const merged = tf.tensor(Float32Array.from(ref.output), [2, 2, 5, 4]).transpose([0, 2, 1, 3]).reshape([10, 8]);
    expectClose(y, merged.matMul(wo).add(bo), {}, 'MHA');
    tf.dispose([x, y, merged]);
    layer.dispose();
  });

  it('MultiHeadAttention cross-attention takes [x, context] of another length', () => {
    const layer = new MultiHeadAttention({ dModel: 8, heads: 2, kvHeads: 1, seed: 2 });
    const out = layer.apply([tf.ones([1, 3, 8]), tf.ones([1, 6, 8])]) as tf.Tensor;
    expect(out.shape).toEqual([1, 3, 8]);
    expect(() => layer.apply([tf.ones([1, 3, 8]), tf.ones([1, 6, 5])])).toThrow(
      'MultiHeadAttention: context must have shape [batch, positions, 8], but has [1,6,5]',
    );
  });

  it.each([
    [
      'MultiHeadAttention',
      () => new MultiHeadAttention({ dModel: 8, heads: 2, kvHeads: 1, causal: true, positional: 'rope', seed: 4 }),
    ],
    [
      'TransformerBlock',
      () => new TransformerBlock({ dModel: 8, heads: 2, causal: true, positional: 'alibi', mlpRatio: 2, seed: 5 }),
    ],
  ])('%s survives save/load in a tf.sequential with identical outputs', async (_n, make) => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 8, inputShape: [6, 4] }), make()] });
    const x = tf.randomNormal([2, 6, 4], 0, 1, 'float32', 9);
    const loaded = await roundTrip(model);
    expectClose(loaded.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor, { rtol: 0, atol: 0 }, 'reloaded');
  });

  it.each(LM_VARIANTS)('ToyLM (%s): save/load round trip gives identical logits', async (_n, extra) => {
    const input = tf.input({ shape: [8], dtype: 'int32' });
    const lm = new ToyLM({ ...base, ...extra });
    const model = tf.model({ inputs: input, outputs: lm.apply(input) as tf.SymbolicTensor });
    const t = tokens(2, 8, base.vocab, 1);
    const loaded = await roundTrip(model);
    expect((loaded.layers[1] as ToyLM).config).toEqual(lm.config);
    expectClose(loaded.predict(t) as tf.Tensor, model.predict(t) as tf.Tensor, { rtol: 0, atol: 0 }, 'reloaded');
  });

  it.each(LM_VARIANTS)('ToyLM (%s): incremental decoding with the KV cache equals the full forward', (_n, extra) => {
    const lm = new ToyLM({ ...base, ...extra });
    const t = tokens(2, 9, base.vocab, 2);
    const full = lm.forward(t);
    const cache = lm.newCache();
    const parts = [lm.forward(t.slice([0, 0], [2, 4]), { cache })];
    for (let i = 4; i < 9; i++) parts.push(lm.forward(t.slice([0, i], [2, 1]), { cache }));
    expect(cache.length(0)).toBe(9);
    expectClose(tf.concat(parts, 1), full, { rtol: 1e-4, atol: 2e-5 }, 'cached');
    cache.dispose();
    lm.dispose();
  });

  it('ToyLM hooks record every head, ablate and scale heads', () => {
    const lm = new ToyLM(base);
    const t = tokens(1, 6, base.vocab, 3);
    const { logits, cache } = lm.runWithCache(t);
    expect(cache.names()).toEqual(['blocks.0.attn.hook_pattern', 'blocks.1.attn.hook_pattern']);
    const pattern = cache.get('blocks.1.attn.hook_pattern');
    expect(pattern.shape).toEqual([1, 4, 6, 6]);
    expectClose(pattern.sum(-1), tf.ones([1, 4, 6]), {}, 'rows sum to 1');
    expect(pattern.slice([0, 0, 0, 1], [1, 4, 1, 5]).abs().max().dataSync()[0]).toBe(0); // causal
    const keep = lm.hooks.add('blocks.0.attn.hook_z', scaleHeads([1, 1, 1, 1]));
    expectClose(lm.forward(t), logits, { rtol: 0, atol: 1e-6 }, 'scale 1 is identity');
    keep();
    const ablate = lm.hooks.add('blocks.0.attn.hook_z', scaleHeads([1, 0, 1, 1]));
    expect(lm.forward(t).sub(logits).abs().max().dataSync()[0]).toBeGreaterThan(1e-6);
    ablate();
    lm.hooks.add('blocks.0.hook_resid_pre', (x) => x.slice([0, 0, 0], [1, 1, 16]));
    expect(() => lm.forward(t)).toThrow(
      "hook 'blocks.0.hook_resid_pre' returned shape [1,1,16] but the activation has shape [1,6,16]",
    );
    // A run that fails after block 0's pattern was recorded leaves no recorder behind and no recorded tensor alive.
    lm.hooks.clear();
    lm.hooks.add('blocks.1.hook_resid_pre', (x) => x.slice([0, 0, 0], [1, 1, 16]));
    const before = tf.memory().numTensors;
    expect(() => lm.runWithCache(t)).toThrow(/'blocks\.1\.hook_resid_pre' returned shape \[1,1,16\]/);
    expect(tf.memory().numTensors).toBe(before);
    expect(lm.hooks.size).toBe(1);
    lm.hooks.clear();
    cache.dispose();
  });

  it('ToyLM trains with model.fit', async () => {
    const input = tf.input({ shape: [8], dtype: 'int32' });
    const model = tf.model({
      inputs: input,
      outputs: new ToyLM({ ...base, layers: 1 }).apply(input) as tf.SymbolicTensor,
    });
    model.compile({
      optimizer: tf.train.adam(0.01),
      loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
    });
    const x = tokens(4, 8, base.vocab, 4);
    const y = tf.oneHot(x.slice([0, 1], [4, 7]).concat(tf.zeros([4, 1], 'int32'), 1), base.vocab); // [b, s, vocab]
    const h = await model.fit(x, y, { epochs: 8, batchSize: 4, verbose: 0 });
    const losses = h.history.loss as number[];
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] * 0.8);
  });

  it('ToyLM loss, gradients and generation do not leak tensors', () => {
    const lm = new ToyLM({ ...base, positional: 'rope' });
    const t = tokens(2, 8, base.vocab, 5);
    const inp = t.slice([0, 0], [2, 7]);
    const tgt = t.slice([0, 1], [2, 7]);
    const vars = lm.variables();
    expectNoLeak(() => lm.forward(t).dispose());
    expectNoLeak(() => {
      const { value, grads } = tf.variableGrads(() => lm.loss(inp, tgt), vars);
      value.dispose();
      tf.dispose(grads);
    });
    expectNoLeak(() => lm.generate(inp, 3).dispose());
    expectNoLeak(() => {
      const r = lm.runWithCache(t);
      r.logits.dispose();
      r.cache.dispose();
    });
  });

  it('ToyLM rejects bad input with the argument named', () => {
    const lm = new ToyLM(base);
    expect(() => lm.forward(tf.zeros([2, 3, 4], 'int32'))).toThrow(
      'ToyLM.forward: tokens must have rank 2 [batch, positions], but has shape [2,3,4]',
    );
    expect(() => lm.forward(tf.zeros([1, 13], 'int32'))).toThrow('exceed maxLen 12');
    expect(() => lm.forward(tf.tensor2d([[1, 11]], [1, 2], 'int32'))).toThrow(
      'embedding: ids[1] = 11 is outside the vocabulary [0, 11)',
    );
    expect(() => new ToyLM({ ...base, dModel: 10, heads: 4 })).toThrow('dModel (10) must be divisible by heads (4)');
  });
});

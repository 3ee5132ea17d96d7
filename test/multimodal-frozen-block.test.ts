/** Frozen LM block as a visual encoder layer (Pang et al. 2024): the adapter against its float64 reference (outputs, gradients), no mask, frozenness, the tiny ViT, the experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { runExperimentWith } from '../lib/experiments/contract.js';
import type { BlockParams } from '../lib/layers/functional.js';
import { ToyLM } from '../lib/layers/toylm.js';
import {
  disposeBlock,
  erf,
  frozenBlockAdapter,
  frozenBlockAdapterReference,
  frozenLmBlock,
  lastBlockOf,
  objectNormFraction,
  TinyViT,
} from '../lib/papers/multimodal/frozen-lm-block/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const f32 = (x: ArrayLike<number>) => Float32Array.from(x);
const [b, n, d, m, heads, hidden] = [2, 3, 4, 8, 2, 16];

const params64 = (seed: number) => ({
  d,
  m,
  heads,
  hidden,
  mapIn: randomArray(d * m, seed, 0.7),
  mapOut: randomArray(m * d, seed + 1, 0.7),
  ln1g: randomArray(m, seed + 2, 0.5).map((v) => 1 + v),
  ln1b: randomArray(m, seed + 3, 0.2),
  wq: randomArray(m * m, seed + 4, 0.5),
  wk: randomArray(m * m, seed + 5, 0.5),
  wv: randomArray(m * m, seed + 6, 0.5),
  wo: randomArray(m * m, seed + 7, 0.5),
  ln2g: randomArray(m, seed + 8, 0.5).map((v) => 1 + v),
  ln2b: randomArray(m, seed + 9, 0.2),
  w1: randomArray(m * hidden, seed + 10, 0.5),
  b1: randomArray(hidden, seed + 11, 0.2),
  w2: randomArray(hidden * m, seed + 12, 0.5),
  b2: randomArray(m, seed + 13, 0.2),
});
type P64 = ReturnType<typeof params64>;
const blockOf = (p: P64): BlockParams => ({
  ln1: { gamma: tf.tensor1d(f32(p.ln1g)), beta: tf.tensor1d(f32(p.ln1b)) },
  attn: {
    wq: tf.tensor2d(f32(p.wq), [m, m]),
    wk: tf.tensor2d(f32(p.wk), [m, m]),
    wv: tf.tensor2d(f32(p.wv), [m, m]),
    wo: tf.tensor2d(f32(p.wo), [m, m]),
  },
  ln2: { gamma: tf.tensor1d(f32(p.ln2g)), beta: tf.tensor1d(f32(p.ln2b)) },
  mlp: {
    w1: tf.tensor2d(f32(p.w1), [m, hidden]),
    b1: tf.tensor1d(f32(p.b1)),
    w2: tf.tensor2d(f32(p.w2), [hidden, m]),
    b2: tf.tensor1d(f32(p.b2)),
  },
});
const cfg = { dModel: m, heads, mlpRatio: hidden / m, causal: true, positional: 'none' as const };

describe.each(BACKENDS)('frozen block adapter on %s', (name) => {
  it('matches the float64 reference, and runs without a causal mask', async () => {
    await useBackend(name);
    const x = randomArray(b * n * d, 1);
    const p = params64(2);
    const ref = frozenBlockAdapterReference(x, b, n, p);
    const out = tf.tidy(() => {
      const blk = blockOf(p);
      return frozenBlockAdapter(tf.tensor3d(f32(x), [b, n, d]), {
        mapIn: tf.tensor2d(f32(p.mapIn), [d, m]),
        mapOut: tf.tensor2d(f32(p.mapOut), [m, d]),
        block: blk,
        blockConfig: cfg, // causal: true is overridden
      }).dataSync();
    });
    expectClose(out, ref, { rtol: 2e-4, atol: 2e-5 }, 'adapter');
    // No mask: the first token's output depends on the last token's input.
    const x2 = Float64Array.from(x);
    x2[(n - 1) * d] += 1;
    const ref2 = frozenBlockAdapterReference(x2, b, n, p);
    expect(Math.abs(ref2[0] - ref[0])).toBeGreaterThan(1e-6);
  });

  it('gradients w.r.t. the input and both mappers match central differences; the block gets none', async () => {
    await useBackend(name);
    const x = randomArray(b * n * d, 3);
    const g = randomArray(b * n * d, 4);
    const p = params64(5);
    const loss = () => frozenBlockAdapterReference(x, b, n, p).reduce((a, v, i) => a + v * g[i], 0);
    const want = [numericGrad(loss, x), numericGrad(loss, p.mapIn), numericGrad(loss, p.mapOut)];
    const got = tf.tidy(() => {
      const blk = blockOf(p);
      const gt = tf.tensor3d(f32(g), [b, n, d]);
      return tf
        .grads((xt: tf.Tensor, wi: tf.Tensor, wo: tf.Tensor) =>
          frozenBlockAdapter(xt as tf.Tensor3D, {
            mapIn: wi as tf.Tensor2D,
            mapOut: wo as tf.Tensor2D,
            block: blk,
            blockConfig: cfg,
          })
            .mul(gt)
            .sum(),
        )([tf.tensor3d(f32(x), [b, n, d]), tf.tensor2d(f32(p.mapIn), [d, m]), tf.tensor2d(f32(p.mapOut), [m, d])])
        .map((t) => t.dataSync());
    });
    ['dx', 'dW_in', 'dW_out'].forEach((l, i) => expectClose(got[i], want[i], { rtol: 3e-3, atol: 3e-4 }, l));
  });

  it('names bad arguments and leaks no tensors', async () => {
    await useBackend(name);
    const p = params64(6);
    const blk = blockOf(p);
    const mapIn = tf.tensor2d(f32(p.mapIn), [d, m]);
    const mapOut = tf.tensor2d(f32(p.mapOut), [m, d]);
    const x = tf.ones([b, n, d]) as tf.Tensor3D;
    expect(() =>
      frozenBlockAdapter(tf.ones([b, n, d + 1]) as tf.Tensor3D, { mapIn, mapOut, block: blk, blockConfig: cfg }),
    ).toThrow(/frozenBlockAdapter: p.mapIn must be \[d = 5, m\], got shape \[4,8\]/);
    expectNoLeak(() => frozenBlockAdapter(x, { mapIn, mapOut, block: blk, blockConfig: cfg }).dispose());
    disposeBlock(blk);
    tf.dispose([mapIn, mapOut, x]);
  });
});

describe('frozen block helpers', () => {
  it('erf matches known values; lastBlockOf copies the last block; the ViT does not train it', () => {
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 12);
    expect(erf(3)).toBeCloseTo(0.9999779095030014, 12);
    expect(erf(-1)).toBeCloseTo(-0.8427007929497149, 12);
    const lm = new ToyLM({ vocab: 11, dModel: 8, heads: 2, layers: 2, maxLen: 6, seed: 3 });
    const frozen = lastBlockOf(lm);
    const lastWq = lm.variables().find((v) => /blocks\.1\.attn\.wq/.test(v.name));
    expect(Array.from((frozen.block.attn.wq as tf.Tensor).dataSync())).toEqual(Array.from(lastWq?.dataSync() ?? []));
    expect(frozen.blockConfig.causal).toBe(false);
    lm.dispose();
    const vit = new TinyViT({
      patch: 4,
      size: 8,
      dModel: 6,
      heads: 2,
      layers: 1,
      classes: 3,
      variant: 'frozen-text',
      frozen,
      seed: 1,
    });
    const names = Object.keys(vit.variables());
    expect(names).toContain('map_in');
    expect(names.some((k) => k.startsWith('lm_block'))).toBe(false);
    const o = vit.forward(tf.ones([2, 4, 16]) as tf.Tensor3D);
    expect(o.logits.shape).toEqual([2, 3]);
    expect(objectNormFraction(o.tokens, tf.tensor2d([1, 1, 1, 1, 0, 0, 0, 0], [2, 4]))).toBeCloseTo(0.5, 5);
    tf.dispose([o.logits, o.tokens]);
    vit.dispose();
    const t = new TinyViT({
      patch: 4,
      size: 8,
      dModel: 6,
      heads: 2,
      layers: 1,
      classes: 3,
      variant: 'trainable',
      trainableConfig: { ...frozen.blockConfig },
      seed: 1,
    });
    expect(Object.keys(t.variables()).some((k) => k.startsWith('lm_block'))).toBe(true);
    t.dispose();
  });
});

describe('frozen-lm-block experiment', () => {
  it('runs a tiny config for every variant', async () => {
    const r = await runExperimentWith(frozenLmBlock, {
      quick: true,
      keep: true,
      progress: false,
      overrides: {
        trainImages: 40,
        validationImages: 20,
        testImages: 20,
        steps: 3,
        batch: 8,
        lmSteps: 3,
        lmSeqLen: 16,
      },
    });
    try {
      for (const v of ['vit', 'frozen-text', 'frozen-random', 'trainable']) {
        expect(r.metrics[`${v}.test_accuracy`]).toBeGreaterThanOrEqual(0);
        expect(r.metrics[`${v}.test_object_norm_share`]).toBeGreaterThan(0);
      }
      // Matched parameters: the trainable block adds exactly the frozen block's size to the adapter variants.
      expect(r.metrics['trainable.params_trainable']).toBeGreaterThan(r.metrics['frozen-text.params_trainable']);
      expect(r.metrics['frozen-text.params_trainable']).toBe(r.metrics['frozen-random.params_trainable']);
      expect(r.artifacts?.tokenNorms.vit?.[0]).toHaveLength(16);
      expect(r.references?.length).toBe(2);
    } finally {
      r.artifacts?.dispose();
    }
  });
});

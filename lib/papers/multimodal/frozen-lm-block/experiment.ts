/**
 * `frozen-lm-block`: does a frozen block from a text-trained transformer, put between two linear maps on top of a tiny
 * ViT, help image classification (Pang et al., ICLR 2024, https://arxiv.org/abs/2310.12973)?
 *
 * Text model: a ToyLM (char level) trained for `lmSteps` on the project's text corpus (Moby-Dick, train split); its
 * validation loss is reported beside an untrained copy's. Its last block is frozen (copied out as constants) and run
 * without a causal mask.
 *
 * Images: lib/data/clutter-images.ts, one of four shapes (the class) over clutter strokes and blobs, 16 x 16, cut into
 * 4 x 4 patches (16 tokens). The ViT: patch embedding + learned positions, `vitLayers` pre-norm blocks (no mask);
 * then, by variant, nothing (`vit`), or W_in -> block -> W_out with the block the frozen text block (`frozen-text`), a
 * frozen block of an untrained ToyLM of the same shape (`frozen-random`), or the same block shape trained with
 * everything else (`trainable`, the paper's control at matched parameters); then the final layer norm, mean-pooled
 * tokens, a linear head (the order of the official vit_llama.py: blocks, mappers and LM block, norm, head). All variants share the seed, data, steps and learning rate; no setting is tuned.
 *
 * Metrics: test accuracy (95% binomial interval), validation accuracy, and the share of token feature norm on object
 * patches (patches holding any object pixel) after the adapter (before the final norm), beside the share of patches that hold the object (what
 * a uniform norm would give): the paper's "information filtering" reads as a share above that baseline, higher with
 * the frozen text block.
 *
 * How ours differs from the paper. The paper inserts the last block of LLaMA-7B (4096 wide, trained on trillions of
 * tokens) into ViT-S/B and trains on ImageNet for 300 epochs (ViT-S 80.1% -> ViT-S-LLaMA 80.7% top-1, the official
 * README's model zoo); its text model is
 * a large pre-trained LLM, ours a 2-layer char-level ToyLM trained for seconds on one novel. Our images are 16 x 16
 * synthetic shapes, our ViT has one block, we pool by mean instead of a CLS token. The paper itself expects the benefit
 * to need a capable LM; at this scale it may not appear. This result is exploratory: read it as what happens at toy
 * scale, not as a test of the paper's claim.
 */
import * as tf from '@tensorflow/tfjs';
import { type ClutterImages, clutterImages } from '../../../data/clutter-images.js';
import { textDataset } from '../../../data/corpus.js';
import { artifactCodec, dataKind, hasExactly, weightsKind } from '../../../experiments/codecs.js';
import { defineExperiment, type PaperReference } from '../../../experiments/contract.js';
import { int, list, num, obj, oneOf } from '../../../experiments/schema.js';
import { type BlockConfig, type BlockParams, blockForward, layerNorm } from '../../../layers/functional.js';
import { ParamFactory } from '../../../layers/params.js';
import { ToyLM } from '../../../layers/toylm.js';
import { makeBlock } from '../../../layers/weights.js';
import { train } from '../../../train/loop.js';
import { transformerRecipe } from '../../../train/recipe.js';
import { Rng } from '../../../util/random.js';
import { disposeBlock, frozenBlockAdapter, lastBlockOf, objectNormFraction } from './core.js';

export type FrozenVariant = 'vit' | 'frozen-text' | 'frozen-random' | 'trainable';

export interface TinyViTConfig {
  /** Pixels per patch side. */
  patch: number;
  /** Image side. */
  size: number;
  dModel: number;
  heads: number;
  layers: number;
  classes: number;
  variant: FrozenVariant;
  /** The frozen block (variants frozen-text and frozen-random), owned by the ViT from then on. */
  frozen?: { block: BlockParams; blockConfig: BlockConfig };
  /** The trainable block's config (variant trainable). */
  trainableConfig?: BlockConfig;
  seed: number;
}

/** A tiny ViT with an optional LM block between two bias-free linear maps (see the module header). */
export class TinyViT {
  readonly config: TinyViTConfig;
  readonly tokens: number;
  private readonly f: ParamFactory;
  private readonly p: Record<string, tf.Variable>;
  private readonly blocks: BlockParams[];
  private readonly vitCfg: BlockConfig;
  private readonly lm?: { block: BlockParams; blockConfig: BlockConfig };

  constructor(config: TinyViTConfig) {
    const fn = 'TinyViT';
    if (config.size % config.patch !== 0)
      throw new Error(`${fn}: config.size must be a multiple of config.patch (${config.patch}), got ${config.size}`);
    this.config = config;
    this.tokens = (config.size / config.patch) ** 2;
    const d = config.dModel;
    this.f = new ParamFactory({ scope: `vit_${config.variant.replace('-', '_')}`, seed: config.seed });
    const f = this.f;
    this.vitCfg = { dModel: d, heads: config.heads, causal: false, positional: 'none' };
    this.p = {
      patchW: f.variable('patch.w', [config.patch * config.patch, d], 'glorotUniform'),
      patchB: f.variable('patch.b', [d], 'zeros'),
      pos: f.variable('pos', [this.tokens, d], { normal: 0.02 }),
      lnG: f.variable('ln_final.gamma', [d], 'ones'),
      lnB: f.variable('ln_final.beta', [d], 'zeros'),
      headW: f.variable('head.w', [d, config.classes], 'glorotUniform'),
      headB: f.variable('head.b', [config.classes], 'zeros'),
    };
    this.blocks = Array.from({ length: config.layers }, (_, i) =>
      makeBlock(f.child(`blocks.${i}`), this.vitCfg, config.layers),
    );
    if (config.variant === 'frozen-text' || config.variant === 'frozen-random') {
      if (!config.frozen)
        throw new Error(`${fn}: config.frozen must hold a block for variant '${config.variant}', got undefined`);
      this.lm = config.frozen;
    } else if (config.variant === 'trainable') {
      if (!config.trainableConfig)
        throw new Error(`${fn}: config.trainableConfig must be set for variant 'trainable', got undefined`);
      this.lm = {
        block: makeBlock(f.child('lm_block'), config.trainableConfig),
        blockConfig: { ...config.trainableConfig, causal: false },
      };
    }
    if (this.lm) {
      const m = this.lm.blockConfig.dModel;
      this.p.mapIn = f.variable('map_in', [d, m], 'glorotUniform');
      this.p.mapOut = f.variable('map_out', [m, d], 'glorotUniform');
    }
  }

  /** Trainable variables (the frozen block is not among them). */
  variables(): Record<string, tf.Variable> {
    return this.f.params();
  }

  parameterCount(): number {
    return Object.values(this.f.params()).reduce((a, v) => a + v.size, 0);
  }

  /** patches [b, n, patch²] -> logits [b, classes] and the tokens before the final norm [b, n, d]. */
  forward(patches: tf.Tensor3D): { logits: tf.Tensor2D; tokens: tf.Tensor3D } {
    const p = this.p;
    return tf.tidy(() => {
      const [b, n, k] = patches.shape;
      let x = patches
        .reshape([b * n, k])
        .matMul(p.patchW)
        .add(p.patchB)
        .reshape([b, n, -1])
        .add(p.pos) as tf.Tensor3D;
      for (const blk of this.blocks) x = blockForward(blk, x, this.vitCfg);
      // As vit_llama.py: blocks -> mapper 1 -> LM block -> mapper 2 -> final norm -> head.
      if (this.lm)
        x = frozenBlockAdapter(x, {
          mapIn: p.mapIn as tf.Tensor as tf.Tensor2D,
          mapOut: p.mapOut as tf.Tensor as tf.Tensor2D,
          block: this.lm.block,
          blockConfig: this.lm.blockConfig,
        });
      const tokens = x;
      const logits = layerNorm(x, p.lnG, p.lnB).mean(1).matMul(p.headW).add(p.headB) as tf.Tensor2D;
      return { logits, tokens };
    });
  }

  dispose(): void {
    this.f.dispose();
    if (this.config.frozen) disposeBlock(this.config.frozen.block);
  }
}

/** Images [count, size, size] -> patches [count, n, patch²] (row-major patches, row-major pixels) and object flags [count, n]. */
export function patchify(data: ClutterImages, patch: number): { patches: Float32Array; objectPatches: Float32Array } {
  const S = data.size;
  const g = S / patch;
  const n = g * g;
  const patches = new Float32Array(data.count * n * patch * patch);
  const objectPatches = new Float32Array(data.count * n);
  for (let i = 0; i < data.count; i++)
    for (let pr = 0; pr < g; pr++)
      for (let pc = 0; pc < g; pc++) {
        const t = pr * g + pc;
        for (let r = 0; r < patch; r++)
          for (let c = 0; c < patch; c++) {
            const src = i * S * S + (pr * patch + r) * S + pc * patch + c;
            patches[((i * n + t) * patch + r) * patch + c] = data.images[src];
            if (data.masks[src]) objectPatches[i * n + t] = 1;
          }
      }
  return { patches, objectPatches };
}

export interface FrozenBlockConfig {
  size: number;
  patch: number;
  strokes: number;
  blobs: number;
  noiseStd: number;
  trainImages: number;
  validationImages: number;
  testImages: number;
  dModel: number;
  heads: number;
  vitLayers: number;
  steps: number;
  batch: number;
  lr: number;
  lmWidth: number;
  lmHeads: number;
  lmLayers: number;
  lmSeqLen: number;
  lmSteps: number;
  lmBatch: number;
  lmLr: number;
  variants: FrozenVariant[];
}

export interface FrozenBlockArtifacts {
  models: Partial<Record<FrozenVariant, TinyViT>>;
  /** The test images and their patches' object flags (what the norm maps are drawn on). */
  test: ClutterImages;
  /** Per variant, per test image (first `shown`): token norms [n]. */
  tokenNorms: Partial<Record<FrozenVariant, number[][]>>;
  /** Text model training curve (step, loss). */
  lmCurve: { step: number; loss: number }[];
  dispose(): void;
}

const ci95 = (p: number, n: number) => 1.96 * Math.sqrt(Math.max(p * (1 - p), 0) / Math.max(n, 1));
const SHOWN = 8;

export const frozenBlockSchema = obj<FrozenBlockConfig>({
  size: int({ min: 16, max: 64 }),
  patch: int({ min: 1, max: 16 }),
  strokes: int({ min: 0, max: 100 }),
  blobs: int({ min: 0, max: 100 }),
  noiseStd: num({ min: 0, max: 1 }),
  trainImages: int({ min: 1 }),
  validationImages: int({ min: 1 }),
  testImages: int({ min: 1 }),
  dModel: int({ min: 2, max: 512 }),
  heads: int({ min: 1, max: 16 }),
  vitLayers: int({ min: 0, max: 8 }),
  steps: int({ min: 1 }),
  batch: int({ min: 1 }),
  lr: num({ gt: 0 }),
  lmWidth: int({ min: 2, max: 512 }),
  lmHeads: int({ min: 1, max: 16 }),
  lmLayers: int({ min: 1, max: 8 }),
  lmSeqLen: int({ min: 2, max: 512 }),
  lmSteps: int({ min: 0 }),
  lmBatch: int({ min: 1 }),
  lmLr: num({ gt: 0 }),
  variants: list(oneOf('vit', 'frozen-text', 'frozen-random', 'trainable'), { min: 1, unique: true }),
});

/** Clutter images for the experiment cache: their arrays, with `toTensors`, `image` and `mask` rebuilt over them. */
const clutterImagesKind = dataKind(
  'ClutterImages',
  (x): x is ClutterImages => hasExactly(x, ['toTensors', 'image', 'mask']) && x.images instanceof Float32Array,
  (f) => {
    const { count: n, size, images, labels, masks } = f as unknown as ClutterImages;
    const rows = (a: ArrayLike<number>, i: number): number[][] => {
      if (!(Number.isInteger(i) && i >= 0 && i < n))
        throw new RangeError(`clutterImages: image index must be in [0, ${n}), got ${i}`);
      return Array.from({ length: size }, (_, y) =>
        Array.from({ length: size }, (_, x) => a[i * size * size + y * size + x]),
      );
    };
    return {
      toTensors: () => ({ x: tf.tensor4d(images, [n, size, size, 1]), y: tf.tensor1d(labels, 'int32') }),
      image: (i: number) => rows(images, i),
      mask: (i: number) => rows(masks, i),
    };
  },
);

export const frozenLmBlock = defineExperiment<FrozenBlockConfig, FrozenBlockArtifacts>({
  name: 'frozen-lm-block',
  paper:
    'Pang et al. 2024, Frozen Transformers in Language Models Are Effective Visual Encoder Layers (ICLR), https://arxiv.org/abs/2310.12973',
  description:
    'A tiny ViT on cluttered-shape images, alone and with a block between two linear maps: the frozen last block of a ToyLM trained on text, a frozen random block, or a trainable block. Test accuracy and the share of token feature norm on object patches. Exploratory: the paper’s effect may not appear at toy scale.',
  schema: frozenBlockSchema,
  quick: {
    size: 16,
    patch: 4,
    strokes: 6,
    blobs: 3,
    noiseStd: 0.05,
    trainImages: 2000,
    validationImages: 300,
    testImages: 600,
    dModel: 32,
    heads: 4,
    vitLayers: 1,
    steps: 250,
    batch: 64,
    lr: 3e-3,
    lmWidth: 32,
    lmHeads: 4,
    lmLayers: 2,
    lmSeqLen: 48,
    lmSteps: 200,
    lmBatch: 32,
    lmLr: 3e-3,
    variants: ['vit', 'frozen-text', 'frozen-random', 'trainable'],
  },
  full: {
    size: 16,
    patch: 4,
    strokes: 6,
    blobs: 3,
    noiseStd: 0.05,
    trainImages: 8000,
    validationImages: 1000,
    testImages: 2000,
    dModel: 48,
    heads: 4,
    vitLayers: 2,
    steps: 1000,
    batch: 64,
    lr: 2e-3,
    lmWidth: 64,
    lmHeads: 4,
    lmLayers: 2,
    lmSeqLen: 64,
    lmSteps: 1000,
    lmBatch: 32,
    lmLr: 2e-3,
    variants: ['vit', 'frozen-text', 'frozen-random', 'trainable'],
  },
  artifactCodec: artifactCodec([
    weightsKind('TinyViT', TinyViT, (c: TinyViTConfig) => new TinyViT(c)),
    clutterImagesKind,
  ]),
  async run(cfg, ctx) {
    const t0 = performance.now();
    if (cfg.size % cfg.patch !== 0)
      throw new Error(
        `frozen-lm-block: config.size must be a multiple of config.patch (${cfg.patch}), got ${cfg.size}`,
      );
    if (cfg.lmWidth % cfg.lmHeads !== 0)
      throw new Error(
        `frozen-lm-block: config.lmWidth must be a multiple of lmHeads (${cfg.lmHeads}), got ${cfg.lmWidth}`,
      );
    const metrics: Record<string, number> = {};
    // 1. The text model.
    const textTrain = textDataset({ tokenizer: 'char', split: 'train' });
    const textVal = textDataset({ tokenizer: 'char', split: 'validation' });
    const lmCfg = {
      vocab: textTrain.tokenizer.vocabSize,
      dModel: cfg.lmWidth,
      heads: cfg.lmHeads,
      layers: cfg.lmLayers,
      maxLen: cfg.lmSeqLen,
      positional: 'learned' as const,
    };
    const lm = new ToyLM({ ...lmCfg, seed: ctx.seed });
    const randomLm = new ToyLM({ ...lmCfg, seed: ctx.seed + 1 });
    const valLoss = (m: ToyLM) =>
      tf.tidy(() => {
        const t = textVal.sample({ batch: 64, seqLen: cfg.lmSeqLen, seed: ctx.seed, step: 0 }).toTensors();
        return m.loss(t.inputs, t.targets, t.lossMask).dataSync()[0];
      });
    const lmCurve: { step: number; loss: number }[] = [];
    if (cfg.lmSteps > 0) {
      ctx.log(`training the text ToyLM (${cfg.lmSteps} steps)`);
      const run = await train({
        variables: lm.variables(),
        batches: (function* () {
          for (let step = 0; ; step++)
            yield textTrain.sample({ batch: cfg.lmBatch, seqLen: cfg.lmSeqLen, seed: ctx.seed, step });
        })(),
        steps: cfg.lmSteps,
        optimizer: { type: 'adamw', lr: cfg.lmLr, weightDecay: 0.01 },
        schedule: { type: 'cosine', warmup: Math.round(cfg.lmSteps * 0.05) },
        clipNorm: 1,
        seed: ctx.seed,
        progress: ctx.progress,
        dataframe: false,
        loss: (_s, b) => {
          const t = b.toTensors();
          return lm.loss(t.inputs, t.targets, t.lossMask);
        },
      });
      if (run.stopped) throw new Error(`frozen-lm-block: text training stopped: ${run.stopped.message}`);
      for (const r of run.records) lmCurve.push({ step: r.step, loss: r.loss });
    }
    metrics.validation_text_loss = valLoss(lm);
    metrics.validation_text_loss_untrained = valLoss(randomLm);
    const textBlock = () => lastBlockOf(lm);
    const randomBlock = () => lastBlockOf(randomLm);

    // 2. Images.
    const img = { size: cfg.size, strokes: cfg.strokes, blobs: cfg.blobs, noiseStd: cfg.noiseStd, seed: ctx.seed };
    const trainSet = clutterImages({ ...img, count: cfg.trainImages, split: 'train' });
    const valSet = clutterImages({ ...img, count: cfg.validationImages, split: 'validation' });
    const test = clutterImages({ ...img, count: cfg.testImages, split: 'test' });
    const P = cfg.patch * cfg.patch;
    const n = (cfg.size / cfg.patch) ** 2;
    const tr = patchify(trainSet, cfg.patch);
    const va = patchify(valSet, cfg.patch);
    const te = patchify(test, cfg.patch);
    const objectShare = te.objectPatches.reduce((a, v) => a + v, 0) / te.objectPatches.length;
    metrics.test_object_patch_share = objectShare;

    const models: FrozenBlockArtifacts['models'] = {};
    const tokenNorms: FrozenBlockArtifacts['tokenNorms'] = {};
    const artifacts: FrozenBlockArtifacts = {
      models,
      test,
      tokenNorms,
      lmCurve,
      dispose: () => Object.values(models).forEach((m) => m?.dispose()),
    };
    const rows: Record<string, string | number | boolean | null>[] = [];
    try {
      for (const variant of cfg.variants) {
        const vt0 = performance.now();
        const model = new TinyViT({
          patch: cfg.patch,
          size: cfg.size,
          dModel: cfg.dModel,
          heads: cfg.heads,
          layers: cfg.vitLayers,
          classes: 4,
          variant,
          frozen: variant === 'frozen-text' ? textBlock() : variant === 'frozen-random' ? randomBlock() : undefined,
          trainableConfig: variant === 'trainable' ? { ...lm.blockConfig, causal: false } : undefined,
          seed: ctx.seed,
        });
        models[variant] = model;
        const rng = new Rng(ctx.seed).fork(`frozen-lm-block:batches:${variant}`);
        const run = await train({
          variables: model.variables(),
          batches: (function* () {
            for (;;) {
              const idx = Array.from({ length: cfg.batch }, () => rng.int(0, trainSet.count));
              const x = new Float32Array(cfg.batch * n * P);
              idx.forEach((i, r) => x.set(tr.patches.subarray(i * n * P, (i + 1) * n * P), r * n * P));
              yield {
                x: tf.tensor3d(x, [cfg.batch, n, P]),
                y: tf.oneHot(
                  tf.tensor1d(
                    Int32Array.from(idx, (i) => trainSet.labels[i]),
                    'int32',
                  ),
                  4,
                ),
              };
            }
          })(),
          steps: cfg.steps,
          ...transformerRecipe(cfg.steps, cfg.lr),
          seed: ctx.seed,
          progress: ctx.progress,
          dataframe: false,
          loss: (_s, b) => tf.losses.softmaxCrossEntropy(b.y, model.forward(b.x).logits) as tf.Scalar,
        });
        if (run.stopped) throw new Error(`frozen-lm-block (${variant}): training stopped: ${run.stopped.message}`);
        const evaluate = (patches: Float32Array, labels: Int32Array, objects?: Float32Array) => {
          let hits = 0;
          let share = 0;
          const count = labels.length;
          for (let lo = 0; lo < count; lo += 256) {
            const k = Math.min(256, count - lo);
            tf.tidy(() => {
              const o = model.forward(tf.tensor3d(patches.subarray(lo * n * P, (lo + k) * n * P), [k, n, P]));
              const pred = o.logits.argMax(-1).dataSync();
              for (let i = 0; i < k; i++) if (pred[i] === labels[lo + i]) hits++;
              if (objects) {
                share += objectNormFraction(o.tokens, tf.tensor2d(objects.subarray(lo * n, (lo + k) * n), [k, n])) * k;
                if (lo === 0) {
                  const norms = o.tokens.square().sum(-1).sqrt().arraySync() as number[][];
                  tokenNorms[variant] = norms.slice(0, SHOWN);
                }
              }
            });
          }
          return { accuracy: hits / count, share: share / count };
        };
        const v = evaluate(va.patches, valSet.labels);
        const t = evaluate(te.patches, test.labels, te.objectPatches);
        const row = {
          variant,
          test_accuracy: t.accuracy,
          test_accuracy_ci95: ci95(t.accuracy, test.count),
          validation_accuracy: v.accuracy,
          test_object_norm_share: t.share,
          params_trainable: model.parameterCount(),
          seconds: (performance.now() - vt0) / 1000,
        };
        rows.push(row);
        for (const k of [
          'test_accuracy',
          'test_accuracy_ci95',
          'validation_accuracy',
          'test_object_norm_share',
          'params_trainable',
        ] as const)
          metrics[`${variant}.${k}`] = row[k];
        ctx.log(`${variant}: test accuracy ${t.accuracy.toFixed(3)}, object-norm share ${t.share.toFixed(3)}`);
      }
      metrics.seconds = (performance.now() - t0) / 1000;
      const ours =
        `ours: a ${cfg.vitLayers}-block ViT (width ${cfg.dModel}, mean pooling) on ${cfg.trainImages} synthetic ${cfg.size} x ${cfg.size} ` +
        `images of 4 shapes over clutter, ${cfg.steps} steps, accuracy on 4 classes`;
      const references: PaperReference[] = [];
      if ('vit.test_accuracy' in metrics)
        references.push({
          metric: 'vit.test_accuracy',
          paper: 0.801,
          source: 'ViT-Small on ImageNet-1k, top-1 80.1% (official repo, image_classification/README.md model zoo)',
          setting: `${ours}. Paper: ViT-S (12 blocks, width 384) on 224 x 224 ImageNet-1k, 1000 classes, 300 epochs`,
        });
      if ('frozen-text.test_accuracy' in metrics)
        references.push({
          metric: 'frozen-text.test_accuracy',
          paper: 0.807,
          source:
            'ViT-Small-LLaMA (frozen LLaMA-7B last block) on ImageNet-1k, top-1 80.7% (official repo, image_classification/README.md model zoo)',
          setting:
            `${ours}; the frozen block is the last of a ${cfg.lmLayers}-layer char-level ToyLM (width ${cfg.lmWidth}) trained ${cfg.lmSteps} steps on Moby-Dick. ` +
            'Paper: ViT-S on ImageNet-1k, 300 epochs, with the last block of LLaMA-7B (width 4096, trillions of tokens)',
        });
      const acc = (v: FrozenVariant) => metrics[`${v}.test_accuracy`];
      const share = (v: FrozenVariant) => metrics[`${v}.test_object_norm_share`];
      return {
        metrics,
        tables: { variants: rows },
        references,
        summary:
          `Exploratory (toy scale). Test accuracy: ${cfg.variants.map((v) => `${v} ${acc(v).toFixed(3)}`).join(', ')} (±${(metrics[`${cfg.variants[0]}.test_accuracy_ci95`] ?? 0).toFixed(3)}). ` +
          `Token-norm share on object patches: ${cfg.variants.map((v) => `${v} ${share(v).toFixed(3)}`).join(', ')} (object patches are ${objectShare.toFixed(3)} of all). ` +
          `Text model validation loss ${metrics.validation_text_loss.toFixed(2)} vs ${metrics.validation_text_loss_untrained.toFixed(2)} untrained.`,
        artifacts,
      };
    } catch (e) {
      artifacts.dispose();
      throw e;
    } finally {
      lm.dispose();
      randomLm.dispose();
    }
  },
});

/**
 * ToyVLM: the small vision-language model the multimodal papers (CausalMM, PAI/PAINT, LQCD, VAR) steer.
 *
 *   image [b, 32, 32, 3] -> 16 patches of 8x8x3 -> linear + [cls] + positions -> encoder blocks (bidirectional)
 *     -> ln -> projector -> 17 image tokens [cls, p0..p15]
 *   [image tokens; bos, text...] + positions -> causal decoder blocks -> ln -> unembed -> logits [b, text, vocab]
 *
 * A LLaVA-style layout at toy scale: a ViT encoder with a CLS token (whose attention PAINT reads as informativeness),
 * a linear projector, and a causal decoder that reads the image tokens as a prefix. Blocks come from lib/layers
 * (makeBlock / blockForward); attention goes through {@link steerableAttend}, which exposes the pre-softmax scores and
 * the weights as *replaceable* hook points, so every intervention is a small HookFn:
 *   enc.blocks.{i}.attn.hook_scores   [b, h, 17, 17]      scaled q·k before softmax (replaceable)
 *   enc.blocks.{i}.attn.hook_pattern  [b, h, 17, 17]      softmax weights (replaceable; the output uses what it returns)
 *   blocks.{i}.attn.hook_scores       [b, h, s, s]        decoder, s = 17 + text; masked entries hold -1e9
 *   blocks.{i}.attn.hook_pattern      [b, h, s, s]
 * plus lib/layers' own points (blocks.{i}.hook_resid_pre, ...; enc.blocks.{i}.* for the encoder).
 * Shape legend: b batch, h heads, s positions, m d_model, V vocab.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import {
  CELL,
  GRID,
  IMAGE_SIZE,
  type QueryKind,
  type SceneBatch,
  sceneTask,
  TEXT_LEN,
  VOCAB,
} from '../../../data/scenes.js';
import { resolveCacheDir } from '../../../experiments/cache.js';
import {
  type BlockConfig,
  type BlockParams,
  blockForward,
  linear,
  type NormParams,
  normForward,
} from '../../../layers/functional.js';
import { HookRegistry } from '../../../layers/hooks.js';
import { ParamFactory } from '../../../layers/params.js';
import { makeBlock, makeNorm } from '../../../layers/weights.js';
import { restoreCheckpoint, saveCheckpoint } from '../../../train/checkpoint.js';
import { type StepRecord, train } from '../../../train/loop.js';
import { transformerRecipe } from '../../../train/recipe.js';
import { hashString } from '../../../util/random.js';

/** Image tokens the decoder sees: the CLS token and the 16 patches. */
export const IMAGE_TOKENS = GRID * GRID + 1;
export const PATCHES = GRID * GRID;
const PATCH_DIM = CELL * CELL * 3;
/** Additive mask value for disallowed keys (finite, so |score| stays finite for boosts). */
export const MASKED = -1e9;

export interface ToyVLMConfig {
  dModel: number;
  heads: number;
  encoderLayers: number;
  decoderLayers: number;
  seed: number;
}

/**
 * Attention with replaceable score and weight hooks: scores = q·kᵀ/√d (+ MASKED above the diagonal when causal)
 * -> hooks `${prefix}.hook_scores` -> softmax -> `${prefix}.hook_pattern` -> weights · v.
 * q [b, h, s, d], k, v [b, h, t, d] -> [b, h, s, d].
 */
export function steerableAttend(hooks: HookRegistry, prefix: string, causal: boolean) {
  return (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D => {
    const [, , s, d] = q.shape;
    const t = k.shape[2];
    let scores = tf.matMul(q, k, false, true).mul(1 / Math.sqrt(d)) as tf.Tensor4D; // [b, h, s, t]
    if (causal) {
      const m = tf.linalg.bandPart(tf.ones([s, t]), -1, t - s); // keys j <= i + (t - s)
      scores = scores.add(tf.scalar(1).sub(m).mul(MASKED)) as tf.Tensor4D;
    }
    scores = hooks.run(`${prefix}.hook_scores`, scores) as tf.Tensor4D;
    const w = hooks.run(`${prefix}.hook_pattern`, tf.softmax(scores)) as tf.Tensor4D;
    return tf.matMul(w, v) as tf.Tensor4D;
  };
}

/** [b, 32, 32, 3] -> [b, 16, 192] patches in raster order (each patch row-major, channels last). */
export function patchify(images: tf.Tensor4D): tf.Tensor3D {
  const b = images.shape[0];
  return images
    .reshape([b, GRID, CELL, GRID, CELL, 3])
    .transpose([0, 1, 3, 2, 4, 5])
    .reshape([b, PATCHES, PATCH_DIM]) as tf.Tensor3D;
}

export class ToyVLM {
  readonly config: ToyVLMConfig;
  /** Hook points of the encoder (enc.*) and the decoder (blocks.*, hook_logits); see the module header. */
  readonly hooks = new HookRegistry();
  private readonly f: ParamFactory;
  private readonly p: {
    patch: tf.Variable;
    patchBias: tf.Variable;
    cls: tf.Variable;
    encPos: tf.Variable;
    enc: BlockParams[];
    encLn: NormParams;
    proj: tf.Variable;
    projBias: tf.Variable;
    embed: tf.Variable;
    pos: tf.Variable;
    dec: BlockParams[];
    lnf: NormParams;
    unembed: tf.Variable;
  };

  constructor(config: ToyVLMConfig) {
    for (const k of ['dModel', 'heads', 'encoderLayers', 'decoderLayers'] as const) {
      if (!Number.isInteger(config[k]) || config[k] <= 0)
        throw new Error(`ToyVLM: config.${k} must be a positive integer, got ${config[k]}`);
    }
    if (config.dModel % config.heads !== 0)
      throw new Error(`ToyVLM: config.dModel (${config.dModel}) must be divisible by config.heads (${config.heads})`);
    this.config = { ...config };
    const m = config.dModel;
    const f = new ParamFactory({ scope: 'toyvlm', seed: config.seed });
    this.f = f;
    const w = { normal: 0.02 };
    this.p = {
      patch: f.variable('patch.w', [PATCH_DIM, m], { normal: 1 / Math.sqrt(PATCH_DIM) }),
      patchBias: f.variable('patch.b', [m], 'zeros'),
      cls: f.variable('cls', [m], w),
      encPos: f.variable('enc.pos', [IMAGE_TOKENS, m], w),
      enc: Array.from({ length: config.encoderLayers }, (_, i) =>
        makeBlock(f.child(`enc.blocks.${i}`), this.encoderBlock, config.encoderLayers),
      ),
      encLn: makeNorm(f.child('enc.ln'), m),
      proj: f.variable('proj.w', [m, m], { normal: 1 / Math.sqrt(m) }),
      projBias: f.variable('proj.b', [m], 'zeros'),
      embed: f.variable('embed', [VOCAB, m], w),
      pos: f.variable('pos', [IMAGE_TOKENS + TEXT_LEN, m], w),
      dec: Array.from({ length: config.decoderLayers }, (_, i) =>
        makeBlock(f.child(`blocks.${i}`), this.decoderBlock, config.decoderLayers),
      ),
      lnf: makeNorm(f.child('ln_final'), m),
      unembed: f.variable('unembed', [m, VOCAB], w),
    };
  }

  get encoderBlock(): BlockConfig {
    return { dModel: this.config.dModel, heads: this.config.heads, causal: false };
  }

  get decoderBlock(): BlockConfig {
    return { dModel: this.config.dModel, heads: this.config.heads, causal: true };
  }

  /** Trainable variables by stable key (for train() and checkpoints). */
  variables(): Record<string, tf.Variable> {
    return this.f.params();
  }

  parameterCount(): number {
    return Object.values(this.variables()).reduce((n, v) => n + v.size, 0);
  }

  /** images [b, 32, 32, 3] -> image tokens [b, 17, m] in the decoder's space. */
  encode(images: tf.Tensor4D): tf.Tensor3D {
    if (images.rank !== 4 || images.shape[1] !== IMAGE_SIZE || images.shape[2] !== IMAGE_SIZE || images.shape[3] !== 3)
      throw new Error(`ToyVLM.encode: images must have shape [batch, 32, 32, 3], got [${images.shape}]`);
    return tf.tidy(() => {
      const b = images.shape[0];
      const m = this.config.dModel;
      const patches = linear(patchify(images), this.p.patch, this.p.patchBias); // [b, 16, m]
      const cls = this.p.cls.reshape([1, 1, m]).tile([b, 1, 1]);
      let x = tf.concat([cls, patches], 1).add(this.p.encPos) as tf.Tensor3D; // [b, 17, m]
      this.p.enc.forEach((blk, i) => {
        const prefix = `enc.blocks.${i}`;
        x = blockForward(blk, x, this.encoderBlock, {
          hooks: this.hooks,
          prefix,
          attend: steerableAttend(this.hooks, `${prefix}.attn`, false),
        });
      });
      return linear(normForward(this.p.encLn, x), this.p.proj, this.p.projBias) as tf.Tensor3D;
    });
  }

  /** images [b, 32, 32, 3], tokens [b, n] (bos first, n <= TEXT_LEN) -> logits [b, n, V] at the text positions. */
  forward(images: tf.Tensor4D, tokens: tf.Tensor2D): tf.Tensor3D {
    if (tokens.rank !== 2 || tokens.shape[0] !== images.shape[0] || tokens.shape[1] < 1 || tokens.shape[1] > TEXT_LEN)
      throw new Error(
        `ToyVLM.forward: tokens must have shape [${images.shape[0]}, 1..${TEXT_LEN}] (the images' batch), got [${tokens.shape}]`,
      );
    return tf.tidy(() => {
      const n = tokens.shape[1];
      const img = this.encode(images);
      const text = tf.gather(this.p.embed, tokens.toInt()); // [b, n, m]
      let x = tf.concat([img, text], 1).add(this.p.pos.slice([0, 0], [IMAGE_TOKENS + n, -1])) as tf.Tensor3D;
      x = this.hooks.run('hook_embed', x) as tf.Tensor3D;
      this.p.dec.forEach((blk, i) => {
        const prefix = `blocks.${i}`;
        x = blockForward(blk, x, this.decoderBlock, {
          hooks: this.hooks,
          prefix,
          attend: steerableAttend(this.hooks, `${prefix}.attn`, true),
        });
      });
      const h = normForward(this.p.lnf, x.slice([0, IMAGE_TOKENS, 0], [-1, n, -1]));
      return this.hooks.run('hook_logits', linear(h, this.p.unembed)) as tf.Tensor3D; // [b, n, V]
    });
  }

  /** Logits of the next token after `tokens` [b, n]: [b, V]. */
  nextLogits(images: tf.Tensor4D, tokens: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const l = this.forward(images, tokens);
      const n = tokens.shape[1];
      return l.slice([0, n - 1, 0], [-1, 1, -1]).squeeze([1]) as tf.Tensor2D;
    });
  }

  /** Masked mean cross-entropy of a packed batch (answer tokens only). */
  loss(images: tf.Tensor4D, inputs: tf.Tensor2D, targets: tf.Tensor2D, lossMask: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => {
      const logp = tf.logSoftmax(this.forward(images, inputs)); // [b, n, V]
      const picked = logp.mul(tf.oneHot(targets.toInt(), VOCAB)).sum(-1); // [b, n]
      return picked.mul(lossMask).sum().div(lossMask.sum().maximum(1)).neg() as tf.Scalar;
    });
  }

  dispose(): void {
    this.hooks.clear();
    this.f.dispose();
  }
}

/**
 * Runs `fn` with `hooks` registered on the model (name or RegExp -> HookFn), removing them afterwards even if it throws.
 */
export function withHooks<T>(
  model: ToyVLM,
  hooks: [string | RegExp, Parameters<HookRegistry['add']>[1]][],
  fn: () => T,
): T {
  const removers = hooks.map(([name, h]) => model.hooks.add(name, h));
  try {
    return fn();
  } finally {
    for (const r of removers) r();
  }
}

export interface ToyVLMTrainConfig extends Omit<ToyVLMConfig, 'seed'> {
  steps: number;
  batch: number;
  lr: number;
  /** Probability that an object takes its shape's prior colour in training. */
  prior: number;
  /** Probability that a leading cue in training is right. */
  cueCorrect: number;
  /** Shares of each query kind in training. */
  mix: Record<QueryKind, number>;
}

export interface TrainedToyVLM {
  model: ToyVLM;
  records: StepRecord[];
  /** Where the checkpoint lies, when checkpoints are on. */
  checkpoint?: string;
  /** True when the weights came from an earlier run's checkpoint. */
  loaded: boolean;
}

/** The checkpoint file of a training config and seed under `dir` (a hash of both names it). */
export function toyVLMCheckpointFile(dir: string, cfg: ToyVLMTrainConfig, seed: number): string {
  const key = (hashString(JSON.stringify({ ...cfg, seed, v: 1 })) >>> 0).toString(16);
  return join(dir, `toyvlm-${key}.ckpt`);
}

/**
 * Trains a ToyVLM on mixed scene queries (train split), or loads it from the checkpoint an earlier run with the same
 * config and seed saved. `checkpointDir` undefined: the run's experiment-cache folder (`ctx.cacheDir` when an
 * experiment passes its context, else the default of lib/experiments/cache.ts; off under vitest, so tests always
 * train); false: no checkpoint.
 */
export async function trainToyVLM(
  cfg: ToyVLMTrainConfig,
  ctx: { seed: number; progress?: boolean | 'auto'; log?: (line: string) => void; cacheDir?: string },
  checkpointDir?: string | false,
): Promise<TrainedToyVLM> {
  const model = new ToyVLM({
    dModel: cfg.dModel,
    heads: cfg.heads,
    encoderLayers: cfg.encoderLayers,
    decoderLayers: cfg.decoderLayers,
    seed: ctx.seed,
  });
  try {
    const base =
      checkpointDir === false ? undefined : (checkpointDir ?? ('cacheDir' in ctx ? ctx.cacheDir : resolveCacheDir()));
    const file = base ? toyVLMCheckpointFile(join(base, 'toyvlm'), cfg, ctx.seed) : undefined;
    if (file && existsSync(file)) {
      await restoreCheckpoint(file, { variables: model.variables() });
      ctx.log?.(`toyvlm: loaded the trained model from ${file}`);
      return { model, records: [], checkpoint: file, loaded: true };
    }
    ctx.log?.(`toyvlm: training ${cfg.steps} steps`);
    const run = await train<SceneBatch>({
      variables: model.variables(),
      batches: (function* () {
        for (let step = 0; ; step++)
          yield sceneTask({
            batch: cfg.batch,
            seed: stepSeed(ctx.seed, step),
            split: 'train',
            prior: cfg.prior,
            cueCorrect: cfg.cueCorrect,
            mix: cfg.mix,
          });
      })(),
      disposeBatches: false,
      steps: cfg.steps,
      ...transformerRecipe(cfg.steps, cfg.lr),
      seed: ctx.seed,
      progress: ctx.progress ?? false,
      dataframe: false,
      loss: (_step, b) => {
        const t = b.toTensors();
        try {
          return model.loss(t.images, t.inputs, t.targets, t.lossMask);
        } finally {
          tf.dispose([t.images, t.inputs, t.targets, t.lossMask]);
        }
      },
    });
    if (run.stopped) throw new Error(`trainToyVLM: training stopped: ${run.stopped.message}`);
    if (file) {
      mkdirSync(join(base!, 'toyvlm'), { recursive: true });
      await saveCheckpoint(file, { variables: model.variables(), config: { ...cfg, seed: ctx.seed }, step: cfg.steps });
      ctx.log?.(`toyvlm: saved to ${file}`);
    }
    return { model, records: run.records, checkpoint: file, loaded: false };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
export { type GalleryRow, sceneGalleryHtml, scenePng } from './render.js';

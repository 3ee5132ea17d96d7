/**
 * Multi-head attention and the pre-norm transformer block as real tf.layers.Layer subclasses: serializable
 * (registered class names, getConfig), usable in tf.sequential / tf.model, fit, save and load.
 */
import * as tf from '@tensorflow/tfjs';
import * as masks from '../masks/index.js';
import { fmt, ShapeError } from '../util/shapes.js';
import {
  type AttentionConfig,
  type AttentionParams,
  attentionForward,
  type BlockConfig,
  type BlockParams,
  blockForward,
  resolve,
} from './functional.js';
import { HookRegistry } from './hooks.js';
import { layerParams, makeAttention, makeBlock } from './weights.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

const CONFIG_KEYS = [
  'dModel',
  'heads',
  'kvHeads',
  'headDim',
  'causal',
  'window',
  'sinks',
  'positional',
  'ropeBase',
  'scoring',
  'useBias',
  'mlpRatio',
  'attention',
  'seed',
] as const;

function pickConfig<T extends object>(args: T): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of CONFIG_KEYS)
    if ((args as Record<string, unknown>)[k] !== undefined) out[k] = (args as Record<string, unknown>)[k];
  return out;
}

function checkInput(fn: string, arg: string, x: tf.Tensor, dModel: number): void {
  if (x.rank !== 3 || x.shape[2] !== dModel) {
    throw new ShapeError(`${fn}: ${arg} must have shape [batch, positions, ${dModel}], but has ${fmt(x.shape)}`);
  }
}

export interface MultiHeadAttentionArgs extends AttentionConfig, LayerArgs {
  seed?: number;
}

/**
 * Multi-head attention. `apply(x)` is self-attention; `apply([x, context])` is cross-attention (no causal mask).
 * x [b, s, dModel] -> [b, s, dModel]. kwargs.mask (a masks.Mask) replaces the config's mask.
 */
export class MultiHeadAttention extends tf.layers.Layer {
  static className = 'attnlab.MultiHeadAttention';
  readonly cfg: AttentionConfig & { seed: number };
  readonly hooks = new HookRegistry();
  private vars?: AttentionParams;

  constructor(args: MultiHeadAttentionArgs) {
    super(args);
    this.cfg = { ...(pickConfig(args) as unknown as AttentionConfig), seed: args.seed ?? 0 };
    resolve(this.cfg);
  }

  override build(): void {
    // GPT-2's N(0, 0.02), the output projection scaled by 1/√2 (one residual layer).
    const init = { weights: { normal: 0.02 }, output: { normal: 0.02 / Math.sqrt(2) } };
    if (!this.vars) this.vars = makeAttention(layerParams(this, this.cfg.seed), this.cfg, init);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [s[0], s[1], this.cfg.dModel];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { mask?: masks.Mask } = {}): tf.Tensor {
    return tf.tidy(() => {
      const [x, context] = Array.isArray(inputs) ? inputs : [inputs, null];
      checkInput('MultiHeadAttention', 'x', x, this.cfg.dModel);
      if (context) checkInput('MultiHeadAttention', 'context', context, this.cfg.dModel);
      this.build();
      return attentionForward(this.vars!, x, context ?? null, this.cfg, {
        hooks: this.hooks,
        prefix: 'attn',
        mask: kwargs.mask instanceof masks.Mask ? kwargs.mask : undefined,
      });
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...pickConfig(this.cfg) } as tf.serialization.ConfigDict;
  }
}

export interface TransformerBlockArgs extends BlockConfig, LayerArgs {
  seed?: number;
}

/** Pre-norm transformer block: x + attn(ln(x)), + mlp(ln(x)). [b, s, dModel] -> [b, s, dModel]. */
export class TransformerBlock extends tf.layers.Layer {
  static className = 'attnlab.TransformerBlock';
  readonly cfg: BlockConfig & { seed: number };
  readonly hooks = new HookRegistry();
  private vars?: BlockParams;

  constructor(args: TransformerBlockArgs) {
    super(args);
    this.cfg = { ...(pickConfig(args) as unknown as BlockConfig), seed: args.seed ?? 0 };
    resolve(this.cfg);
  }

  override build(): void {
    if (!this.vars) this.vars = makeBlock(layerParams(this, this.cfg.seed), this.cfg);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return inputShape as tf.Shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { mask?: masks.Mask } = {}): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      checkInput('TransformerBlock', 'x', x, this.cfg.dModel);
      this.build();
      return blockForward(this.vars!, x, this.cfg, {
        hooks: this.hooks,
        prefix: 'block',
        mask: kwargs.mask instanceof masks.Mask ? kwargs.mask : undefined,
      });
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...pickConfig(this.cfg) } as tf.serialization.ConfigDict;
  }
}

tf.serialization.registerClass(MultiHeadAttention);
tf.serialization.registerClass(TransformerBlock);

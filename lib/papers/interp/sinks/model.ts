/**
 * SinkLM: ToyLM's layout (token + learned position embedding, pre-norm GPT-2 blocks from lib/layers, final norm,
 * unembedding) with the attention of one {@link SinkVariant} in every layer, for the sink-emergence experiment; and a
 * hook on the attention weights (`edit`) for attention calibration (ACT, ../act).
 *
 * Why not ToyLM: ToyLM's scorings cover softmax, sigmoid with its -log(n) bias and softmax with a value-less sink
 * logit; the paper's sigmoid with row normalisation and its learned key *and* value (kv-bias) are not among them. The
 * blocks take the attention as a pure function (`attend`), so SinkLM is ToyLM's parameters and blocks with
 * {@link sinkAttention} in place of sdpa.
 *
 *   tokens [b, s] (int32) -> logits [b, s, vocab]; weights per layer [b, h, s, s] ([b, h, s, 1 + s] with kv-bias)
 */
import * as tf from '@tensorflow/tfjs';
import { logSoftmax } from '../../../backend/native.js';
import { embedding } from '../../../backend/ops.js';
import {
  type BlockConfig,
  type BlockParams,
  blockForward,
  linear,
  type NormParams,
  normForward,
} from '../../../layers/functional.js';
import { ParamFactory } from '../../../layers/params.js';
import { makeBlock, makeNorm } from '../../../layers/weights.js';
import { fmt, ShapeError } from '../../../util/shapes.js';
import { applyWeights, SINK_VARIANTS, type SinkVariant, sinkWeights } from './core.js';

export interface SinkLMConfig {
  vocab: number;
  dModel: number;
  heads: number;
  layers: number;
  maxLen: number;
  variant: SinkVariant;
  seed: number;
}

export interface SinkForwardOptions {
  /** Return every layer's attention weights. */
  record?: boolean;
  /** Replaces a layer's attention weights before they weigh the values (calibration); it must keep the shape. */
  edit?: (layer: number, weights: tf.Tensor4D) => tf.Tensor4D;
}

let instances = 0;

export class SinkLM {
  readonly config: SinkLMConfig;
  private readonly factory: ParamFactory;
  private readonly embed: tf.Variable;
  private readonly pos: tf.Variable;
  private readonly blocks: BlockParams[];
  /** kv-bias: the learned key and value per layer, [h, d] each. */
  private readonly kvBias: { k: tf.Variable; v: tf.Variable }[];
  private readonly lnf: NormParams;
  private readonly unembed: tf.Variable;

  constructor(config: SinkLMConfig) {
    const fn = 'SinkLM';
    for (const key of ['vocab', 'dModel', 'heads', 'layers', 'maxLen'] as const) {
      if (!Number.isInteger(config[key]) || config[key] <= 0)
        throw new ShapeError(`${fn}: config.${key} must be a positive integer, got ${config[key]}`);
    }
    if (config.dModel % config.heads !== 0)
      throw new ShapeError(
        `${fn}: config.dModel (${config.dModel}) must be divisible by config.heads (${config.heads})`,
      );
    if (!SINK_VARIANTS.includes(config.variant))
      throw new ShapeError(
        `${fn}: config.variant must be one of ${SINK_VARIANTS.join(', ')}, got '${String(config.variant)}'`,
      );
    this.config = { ...config };
    const c = this.config;
    const f = new ParamFactory({ scope: `sinklm_${instances++}`, seed: { kind: 'joined', seed: c.seed } });
    this.factory = f;
    this.embed = f.variable('embed', [c.vocab, c.dModel], { normal: 0.02 });
    this.pos = f.variable('pos_embed', [c.maxLen, c.dModel], { normal: 0.01 });
    this.blocks = Array.from({ length: c.layers }, (_, i) =>
      makeBlock(f.child(`blocks.${i}`), this.blockConfig, c.layers),
    );
    const d = c.dModel / c.heads;
    this.kvBias =
      c.variant === 'kv-bias'
        ? Array.from({ length: c.layers }, (_, i) => ({
            k: f.child(`blocks.${i}.attn`).variable('k_bias', [c.heads, d], { normal: 0.02 }),
            v: f.child(`blocks.${i}.attn`).variable('v_bias', [c.heads, d], { normal: 0.02 }),
          }))
        : [];
    this.lnf = makeNorm(f.child('ln_final'), c.dModel);
    this.unembed = f.variable('unembed', [c.dModel, c.vocab], { normal: 0.02 });
  }

  private get blockConfig(): BlockConfig {
    return { dModel: this.config.dModel, heads: this.config.heads, causal: true, positional: 'none' };
  }

  /** The trainable variables. */
  variables(): tf.Variable[] {
    return Object.values(this.factory.params());
  }

  parameterCount(): number {
    return this.variables().reduce((n, v) => n + v.size, 0);
  }

  /** tokens [b, s] -> logits [b, s, vocab] (and with `record`, weights per layer). The caller disposes them. */
  forward(tokens: tf.Tensor, opts: SinkForwardOptions = {}): { logits: tf.Tensor3D; weights: tf.Tensor4D[] } {
    const c = this.config;
    const [b, n] = tokens.shape;
    if (tokens.rank !== 2 || !n || n > c.maxLen || !b)
      throw new ShapeError(
        `SinkLM.forward: tokens must have shape [batch, positions] with 1..${c.maxLen} positions, got ${fmt(tokens.shape)}`,
      );
    const [, s] = tokens.shape as [number, number];
    return tf.tidy(() => {
      const ids = tokens.dtype === 'int32' ? tokens : tokens.toInt();
      let x = embedding(this.embed as tf.Tensor2D, ids).add(this.pos.slice([0, 0], [s, c.dModel])); // [b, s, m]
      const weights: tf.Tensor4D[] = [];
      this.blocks.forEach((p, layer) => {
        const bias = this.kvBias[layer];
        x = blockForward(p, x, this.blockConfig, {
          prefix: `blocks.${layer}`,
          attend: (q, k, v) => {
            let w = sinkWeights(q, k, { variant: c.variant, kBias: bias?.k });
            if (opts.edit) w = opts.edit(layer, w);
            if (opts.record) weights.push(w);
            return applyWeights(w, v, bias?.v); // [b, h, s, d]
          },
        });
      });
      const logits = linear(normForward(this.lnf, x), this.unembed) as tf.Tensor3D;
      return { logits, weights };
    });
  }

  /** Mean next-token cross-entropy over the positions where lossMask [b, s] is 1 (all when absent). */
  loss(inputs: tf.Tensor, targets: tf.Tensor, lossMask?: tf.Tensor): tf.Scalar {
    return tf.tidy(() => {
      const { logits } = this.forward(inputs);
      const picked = logSoftmax(logits)
        .mul(tf.oneHot(targets.toInt().flatten(), this.config.vocab).reshape(logits.shape))
        .sum(-1); // [b, s]
      return (lossMask ? picked.mul(lossMask).sum().div(lossMask.sum().maximum(1)) : picked.mean()).neg() as tf.Scalar;
    });
  }

  dispose(): void {
    this.factory.dispose();
  }
}

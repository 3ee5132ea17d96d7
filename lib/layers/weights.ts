/**
 * The building blocks' parameters, made by the seeded ParamFactory (params.ts). Each builder makes its variables in a
 * fixed order under fixed keys; a model composes the builders in its own order under its own names, because a key is
 * both the variable's seed and its checkpoint name (the same seed must keep giving the same weights).
 */

import type * as tf from '@tensorflow/tfjs';
import type {
  AttentionConfig,
  AttentionParams,
  BlockConfig,
  BlockParams,
  MlpParams,
  NormParams,
} from './functional.js';
import { resolve } from './functional.js';
import { type Init, ParamFactory } from './params.js';

/** A tf.layers.Layer's weights, seeded per key by fnv1a(`${seed}:${key}`) (the 'joined' stream its layers were drawn with). */
export function layerParams(layer: tf.layers.Layer, seed: number): ParamFactory {
  return new ParamFactory({ scope: layer.name, seed: { kind: 'joined', seed }, layer });
}

/** Inits of a sublayer's weights: `weights` for the input projections, `output` (default: weights) for the last one. */
export interface WeightInit {
  weights: Init;
  output?: Init;
}

/**
 * wq, wk, wv, wo (+ zero biases bq, bk, bv, bo with useBias, + a zero sink logit per head with softmax-sink, + the
 * Mixture-of-Head router router.wr, router.ws, router.wh with attention kind 'moh', drawn like the input projections).
 */
export function makeAttention(f: ParamFactory, cfg: AttentionConfig, init: WeightInit): AttentionParams {
  const { heads, kvHeads, headDim } = resolve(cfg);
  const m = cfg.dModel;
  const p: AttentionParams = {
    wq: f.variable('wq', [m, heads * headDim], init.weights),
    wk: f.variable('wk', [m, kvHeads * headDim], init.weights),
    wv: f.variable('wv', [m, kvHeads * headDim], init.weights),
    wo: f.variable('wo', [heads * headDim, m], init.output ?? init.weights),
  };
  if (cfg.useBias) {
    p.bq = f.variable('bq', [heads * headDim], 'zeros');
    p.bk = f.variable('bk', [kvHeads * headDim], 'zeros');
    p.bv = f.variable('bv', [kvHeads * headDim], 'zeros');
    p.bo = f.variable('bo', [m], 'zeros');
  }
  if (cfg.scoring === 'softmax-sink') p.sink = f.variable('sink', [heads], 'zeros');
  const a = cfg.attention;
  if (a?.kind === 'moh') {
    const r = f.child('router');
    p.router = { wr: r.variable('wr', [m, a.routed], init.weights) };
    if (a.shared > 1) p.router.ws = r.variable('ws', [m, a.shared], init.weights);
    if (a.shared > 0) p.router.wh = r.variable('wh', [m, 2], init.weights);
  }
  return p;
}

/** w1 [m, hidden], b1, w2 [hidden, m], b2 (zero biases). */
export function makeMlp(f: ParamFactory, dModel: number, hidden: number, init: WeightInit): MlpParams {
  return {
    w1: f.variable('w1', [dModel, hidden], init.weights),
    b1: f.variable('b1', [hidden], 'zeros'),
    w2: f.variable('w2', [hidden, dModel], init.output ?? init.weights),
    b2: f.variable('b2', [dModel], 'zeros'),
  };
}

/** Layer-norm gain (ones) and bias (zeros), under the keys `names` gives. */
export function makeNorm(
  f: ParamFactory,
  dModel: number,
  names: { gamma: string; beta: string } = { gamma: 'gamma', beta: 'beta' },
): NormParams {
  return { gamma: f.variable(names.gamma, [dModel], 'ones'), beta: f.variable(names.beta, [dModel], 'zeros') };
}

/**
 * A pre-norm block in GPT-2's layout and initialisation: keys attn.*, ln1.*, ln2.*, mlp.*; weights N(0, 0.02), the
 * residual output projections (attn.wo, mlp.w2) N(0, 0.02 / √(2 · residualLayers)).
 */
export function makeBlock(f: ParamFactory, cfg: BlockConfig, residualLayers = 1): BlockParams {
  const m = cfg.dModel;
  const init = { weights: { normal: 0.02 }, output: { normal: 0.02 / Math.sqrt(2 * residualLayers) } };
  const attn = makeAttention(f.child('attn'), cfg, init);
  const ln1 = makeNorm(f.child('ln1'), m);
  const ln2 = makeNorm(f.child('ln2'), m);
  return { attn, ln1, ln2, mlp: makeMlp(f.child('mlp'), m, Math.round((cfg.mlpRatio ?? 4) * m), init) };
}

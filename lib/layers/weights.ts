/** Creating the layers' weights: named, seeded per name (same seed, same weights), read as plain params. */
import * as tf from '@tensorflow/tfjs';
import { hashString } from '../util/random.js';
import { resolve, type AttentionConfig, type AttentionParams, type BlockConfig, type BlockParams } from './functional.js';

type LayerVariable = ReturnType<tf.layers.Layer['addWeight']>;
export type Init = 'zeros' | 'ones' | number; // a number is the std of a normal init

export class WeightMaker {
  constructor(private readonly layer: tf.layers.Layer, private readonly seed: number) {}

  add(name: string, shape: number[], init: Init): LayerVariable {
    const initializer =
      init === 'zeros'
        ? tf.initializers.zeros()
        : init === 'ones'
          ? tf.initializers.ones()
          : tf.initializers.randomNormal({ mean: 0, stddev: init, seed: hashString(`${this.seed}:${name}`) });
    // addWeight is protected in the typings but is the documented way for custom layers to own weights.
    return (this.layer as unknown as { addWeight: tf.layers.Layer['addWeight'] }).addWeight(name, shape, 'float32', initializer);
  }
}


export interface AttentionVars {
  wq: LayerVariable;
  wk: LayerVariable;
  wv: LayerVariable;
  wo: LayerVariable;
  bq?: LayerVariable;
  bk?: LayerVariable;
  bv?: LayerVariable;
  bo?: LayerVariable;
  sink?: LayerVariable;
}

/** GPT-2 initialisation: N(0, 0.02), residual output projections scaled by 1/sqrt(2 * layers). */
export function makeAttention(w: WeightMaker, prefix: string, cfg: AttentionConfig, residualLayers = 1): AttentionVars {
  const { heads, kvHeads, headDim } = resolve(cfg);
  const m = cfg.dModel;
  const std = 0.02;
  const v: AttentionVars = {
    wq: w.add(`${prefix}wq`, [m, heads * headDim], std),
    wk: w.add(`${prefix}wk`, [m, kvHeads * headDim], std),
    wv: w.add(`${prefix}wv`, [m, kvHeads * headDim], std),
    wo: w.add(`${prefix}wo`, [heads * headDim, m], std / Math.sqrt(2 * residualLayers)),
  };
  if (cfg.useBias) {
    v.bq = w.add(`${prefix}bq`, [heads * headDim], 'zeros');
    v.bk = w.add(`${prefix}bk`, [kvHeads * headDim], 'zeros');
    v.bv = w.add(`${prefix}bv`, [kvHeads * headDim], 'zeros');
    v.bo = w.add(`${prefix}bo`, [m], 'zeros');
  }
  if (cfg.scoring === 'softmax-sink') v.sink = w.add(`${prefix}sink`, [heads], 'zeros');
  return v;
}

export function readAttention(v: AttentionVars): AttentionParams {
  return {
    wq: v.wq.read(),
    wk: v.wk.read(),
    wv: v.wv.read(),
    wo: v.wo.read(),
    bq: v.bq?.read(),
    bk: v.bk?.read(),
    bv: v.bv?.read(),
    bo: v.bo?.read(),
    sink: v.sink?.read(),
  };
}

export interface BlockVars {
  attn: AttentionVars;
  ln1g: LayerVariable;
  ln1b: LayerVariable;
  ln2g: LayerVariable;
  ln2b: LayerVariable;
  w1: LayerVariable;
  b1: LayerVariable;
  w2: LayerVariable;
  b2: LayerVariable;
}

export function makeBlock(w: WeightMaker, prefix: string, cfg: BlockConfig, residualLayers = 1): BlockVars {
  const m = cfg.dModel;
  const f = Math.round((cfg.mlpRatio ?? 4) * m);
  return {
    attn: makeAttention(w, `${prefix}attn.`, cfg, residualLayers),
    ln1g: w.add(`${prefix}ln1.gamma`, [m], 'ones'),
    ln1b: w.add(`${prefix}ln1.beta`, [m], 'zeros'),
    ln2g: w.add(`${prefix}ln2.gamma`, [m], 'ones'),
    ln2b: w.add(`${prefix}ln2.beta`, [m], 'zeros'),
    w1: w.add(`${prefix}mlp.w1`, [m, f], 0.02),
    b1: w.add(`${prefix}mlp.b1`, [f], 'zeros'),
    w2: w.add(`${prefix}mlp.w2`, [f, m], 0.02 / Math.sqrt(2 * residualLayers)),
    b2: w.add(`${prefix}mlp.b2`, [m], 'zeros'),
  };
}

export function readBlock(v: BlockVars): BlockParams {
  return {
    attn: readAttention(v.attn),
    ln1g: v.ln1g.read(),
    ln1b: v.ln1b.read(),
    ln2g: v.ln2g.read(),
    ln2b: v.ln2b.read(),
    w1: v.w1.read(),
    b1: v.b1.read(),
    w2: v.w2.read(),
    b2: v.b2.read(),
  };
}

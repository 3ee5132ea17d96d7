/**
 * The BASED mixer (Arora et al., ICML 2024, "Simple linear attention language models balance the recall-throughput
 * tradeoff", https://arxiv.org/abs/2402.18668; official code HazyResearch/based and zoology/mixers/based.py):
 * causal Taylor linear attention on a small projected feature dim d' (global, fixed state) plus exact sliding-window
 * softmax attention (local, window w), their outputs summed. The short gated convolution that completes BASED is
 * BaseConv with K = 3 (lib/papers/recurrent/zoology/baseconv.ts), which the models stack before this mixer.
 *
 *   q̃ = x Wq, k̃ = x Wk  [b, T, h·d'],  v = x Wv  [b, T, m]
 *   y = LinAttn_taylor(q̃, k̃, v) Wo  +  SWA_w(x Sq, x Sk, x Sv) So
 *
 * How this differs from the paper's layout: the 360M BASED models put linear attention, sliding-window attention and
 * gated convolutions in separate layers; in our two-layer MQAR models the two attentions share one layer, side by side.
 *
 * Recurrent state per layer (what `basedStep` keeps, counted by `stateBytes`): S [b, h, D, m/h] and z [b, h, D] with
 * D = 1 + d' + d'², plus the window's last w keys and values [b, h, w, m/h] each.
 *
 * Shape legend: x [b, T, m]; h heads; d' feature dim; w window.
 */
import * as tf from '@tensorflow/tfjs';
import { sdpa } from '../../../attention/index.js';
import { linear, mergeHeads, splitHeads } from '../../../layers/functional.js';
import * as masks from '../../../masks/index.js';
import {
  type FeatureMapKind,
  type LinearAttentionState,
  linearAttentionInit,
  linearAttentionParallel,
  linearAttentionStep,
  tidyObject,
} from './linear-attention.js';

/** The KV cache of (windowed) softmax attention: the last min(t, window) keys and values [b, h, n, dh]. */
export interface KvCache {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

export function kvCacheInit(b: number, h: number, dh: number): KvCache {
  return { k: tf.zeros([b, h, 0, dh]) as tf.Tensor4D, v: tf.zeros([b, h, 0, dh]) as tf.Tensor4D };
}

/** Causal softmax attention limited to the last `window` keys (Infinity: full causal). q, k, v [b, h, T, dh]. */
export function windowAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, window: number): tf.Tensor4D {
  if (!(window >= 1)) throw new RangeError(`windowAttention: window must be >= 1 (or Infinity), got ${window}`);
  const t = q.shape[2] as number;
  const mask = window >= t ? masks.causal() : masks.slidingWindow(window);
  return sdpa(q, k, v, { mask });
}

/** One token of windowed softmax attention: q_t, k_t, v_t [b, h, dh] -> y_t [b, h, dh] and the next cache. */
export function windowAttentionStep(
  cache: KvCache,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  window: number,
): { y: tf.Tensor3D; cache: KvCache } {
  if (!(window >= 1)) throw new RangeError(`windowAttentionStep: window must be >= 1 (or Infinity), got ${window}`);
  return tidyObject(() => {
    let ks = tf.concat([cache.k, k.expandDims(2)], 2);
    let vs = tf.concat([cache.v, v.expandDims(2)], 2);
    const n = ks.shape[2] as number;
    if (n > window) {
      const w = window;
      ks = ks.slice([0, 0, n - w, 0], [-1, -1, w, -1]);
      vs = vs.slice([0, 0, n - w, 0], [-1, -1, w, -1]);
    }
    const y = sdpa(q.expandDims(2), ks, vs).squeeze([2]) as tf.Tensor3D; // every cached key is visible
    return { y, cache: { k: ks as tf.Tensor4D, v: vs as tf.Tensor4D } };
  });
}

export interface BasedParams {
  /** Linear attention: wq, wk [m, h·d'], wv, wo [m, m]. */
  wq: tf.Tensor;
  wk: tf.Tensor;
  wv: tf.Tensor;
  wo: tf.Tensor;
  /** Sliding-window softmax attention: sq, sk, sv, so [m, m]. */
  sq: tf.Tensor;
  sk: tf.Tensor;
  sv: tf.Tensor;
  so: tf.Tensor;
}

export interface BasedConfig {
  heads: number;
  featureDim: number;
  /** Sliding window (0: no window attention, linear attention alone). */
  window: number;
  /** Feature map of the linear attention; BASED's is 'taylor'. */
  featureMap?: FeatureMapKind;
}

function checkBased(fn: string, x: tf.Tensor, p: BasedParams, cfg: BasedConfig, rank: number): number {
  const m = p.wv.shape[0];
  if (x.rank !== rank || x.shape[rank - 1] !== m)
    throw new RangeError(`${fn}: x must be [${rank === 3 ? 'b, T' : 'b'}, ${m}], got [${x.shape}]`);
  if (!Number.isInteger(cfg.heads) || cfg.heads < 1 || m % cfg.heads !== 0)
    throw new RangeError(`${fn}: heads must divide the width ${m}, got ${cfg.heads}`);
  if (p.wq.shape[1] !== cfg.heads * cfg.featureDim)
    throw new RangeError(
      `${fn}: wq must be [${m}, heads·featureDim = ${cfg.heads * cfg.featureDim}], got [${p.wq.shape}]`,
    );
  if (!Number.isInteger(cfg.window) || cfg.window < 0)
    throw new RangeError(`${fn}: window must be an integer >= 0, got ${cfg.window}`);
  return m;
}

/** BASED over a sequence (parallel form): x [b, T, m] -> [b, T, m]. */
export function basedMixer(x: tf.Tensor, p: BasedParams, cfg: BasedConfig): tf.Tensor3D {
  const m = checkBased('basedMixer', x, p, cfg, 3);
  const { heads: h, featureDim: f } = cfg;
  return tf.tidy(() => {
    const la = linearAttentionParallel(
      splitHeads(linear(x, p.wq), h, f),
      splitHeads(linear(x, p.wk), h, f),
      splitHeads(linear(x, p.wv), h, m / h),
      { featureMap: cfg.featureMap ?? 'taylor' },
    );
    let y = linear(mergeHeads(la), p.wo);
    if (cfg.window > 0) {
      const [q, k, v] = [p.sq, p.sk, p.sv].map((w) => splitHeads(linear(x, w), h, m / h));
      y = y.add(linear(mergeHeads(windowAttention(q, k, v, cfg.window)), p.so));
    }
    return y as tf.Tensor3D;
  });
}

export interface BasedState {
  la: LinearAttentionState;
  kv: KvCache;
}

export function basedInit(b: number, m: number, cfg: BasedConfig): BasedState {
  return {
    la: linearAttentionInit(b, cfg.heads, cfg.featureDim, m / cfg.heads, cfg.featureMap ?? 'taylor'),
    kv: kvCacheInit(b, cfg.heads, m / cfg.heads),
  };
}

/** BASED for one token: x_t [b, m] -> y_t [b, m] and the next state (new tensors). */
export function basedStep(
  state: BasedState,
  xt: tf.Tensor,
  p: BasedParams,
  cfg: BasedConfig,
): { y: tf.Tensor2D; state: BasedState } {
  const m = checkBased('basedStep', xt, p, cfg, 2);
  const { heads: h, featureDim: f } = cfg;
  const b = xt.shape[0];
  return tidyObject(() => {
    const heads = (w: tf.Tensor, dim: number) => linear(xt, w).reshape([b, h, dim]);
    const la = linearAttentionStep(state.la, heads(p.wq, f), heads(p.wk, f), heads(p.wv, m / h), {
      featureMap: cfg.featureMap ?? 'taylor',
    });
    let y = linear(la.y.reshape([b, m]), p.wo);
    let kv = state.kv;
    if (cfg.window > 0) {
      const sw = windowAttentionStep(state.kv, heads(p.sq, m / h), heads(p.sk, m / h), heads(p.sv, m / h), cfg.window);
      y = y.add(linear(sw.y.reshape([b, m]), p.so));
      kv = sw.cache;
    } else kv = { k: state.kv.k.clone(), v: state.kv.v.clone() };
    return { y: y as tf.Tensor2D, state: { la: la.state, kv } };
  });
}

/**
 * The transformer brain encoder (Adeli, Sun, Kriegeskorte 2025, https://arxiv.org/abs/2505.17329): one learned query
 * per region reads the feature-map tokens through one transformer decoder layer (the official code's, models/
 * transformer.py TransformerDecoderLayer.forward_post with its defaults: dec_layers 1, post-norm, ReLU FFN, then the
 * decoder's final LayerNorm); each region's output token is read out linearly to that region's voxels.
 *
 *   t_n = W_in x_n + b_in                         tokens [b, N, d] (the 1x1 input projection of a CNN backbone)
 *   z_0 = LN1(0) = β1                             the target starts at zero (DETR), so LN1 leaves its bias [d]
 *   a_r = MHA(q = z_0 + Q_r, k = t + PE, v = t)   cross-attention with in/out projections and biases; the 2-D sine
 *                                                 position code goes into the keys only, as DETR's
 *   z_1 = LN2(z_0 + a_r)
 *   z_2 = LN3(z_1 + W_2 relu(W_1 z_1 + b_1) + b_2)
 *   o_r = LN_out(z_2)                             [b, R, d]
 *   ŷ_v = u_vᵀ o_{r(v)} + c_v                     readout of voxel v from its own region's token only
 *
 * The official layer has no query self-attention: the first commit had DETR's (self-attention of the queries before
 * the cross-attention), and commit faaf16c ("remove self att") took it out. With one layer and a zero target the
 * self-attention's values are all zero, so it would add the same vector to every query: a constant, not routing.
 *
 * `layer: 'cross-only'` is the simplification this project first built: the queries are already in head space and the
 * region token is the attention-weighted sum of the value projections (no query/output projections, no LayerNorm, no
 * FFN): a_r = concat_h Σ_n softmax_n(Q_r · k_n / √d_h) v_n. It is exactly attention pooling plus a linear readout.
 *
 * The readout is one block-sparse product ([b, R·d] x [R·d, V] with the off-region blocks masked to zero), the same
 * as the official shared nn.Linear(d, V) whose voxel v takes its region's token; `readoutLoop` is the per-region
 * reference it is tested against, and `decoderLayerNaive` the float64 reference of the official layer.
 *
 * Shape legend: b batch, N = G*G tokens, C channels, d model width, h heads, d_h = d / h, f FFN width, R regions,
 * V voxels.
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../../backend/ops.js';
import {
  type AttentionParams,
  attentionForward,
  linear,
  type MlpParams,
  type NormParams,
  normForward,
} from '../../../../layers/functional.js';
import { HookRegistry } from '../../../../layers/hooks.js';
import { ParamFactory } from '../../../../layers/params.js';
import { makeAttention, makeMlp, makeNorm } from '../../../../layers/weights.js';
import { fmt, ShapeError } from '../../../../util/shapes.js';
import { sinusoidal2d } from '../positional2d.js';
import type { EncodingModel, RegionVoxels } from './model.js';

/** 'official': the official decoder layer (the default); 'cross-only': one bare cross-attention (a simplification). */
export type EncoderLayer = 'official' | 'cross-only';

export interface TransformerEncoderConfig {
  grid: number;
  channels: number;
  dModel: number;
  heads: number;
  /** Default 'official'. */
  layer?: EncoderLayer;
  /** FFN width of the official layer (default round(4/3 · dModel), the official 1024 / 768). */
  ffn?: number;
}

/** The official decoder layer's parameters (after the input projection and the learned queries). */
export interface DecoderLayerParams {
  /** Input projection [C, d] and its bias [d]. */
  wIn: tf.Tensor;
  bIn: tf.Tensor;
  /** Learned query embeddings Q [R, d] (DETR's query_pos). */
  queries: tf.Tensor;
  /** β1 of LN1, the start of every region token [d]. */
  target: tf.Tensor;
  cross: AttentionParams;
  ln2: NormParams;
  mlp: MlpParams;
  ln3: NormParams;
  lnOut: NormParams;
}

/**
 * The official decoder layer as a pure function: features [b, N, C], position code pe [N, d] -> region tokens
 * [b, R, d]. Hook `attn.hook_pattern` sees the cross-attention maps [b, h, R, N].
 */
export function decoderLayerForward(
  p: DecoderLayerParams,
  features: tf.Tensor3D,
  pe: tf.Tensor2D,
  heads: number,
  hooks?: HookRegistry,
): tf.Tensor3D {
  const b = features.shape[0];
  const [R, d] = p.queries.shape;
  const t = linear(features, p.wIn, p.bIn); // [b, N, d]
  // Broadcasts rather than tiles: tile's gradient is one slice per repeat, broadcastTo's one sum.
  const q = tf.broadcastTo(tf.add(p.target, p.queries), [b, R, d]); // query = tgt + query_pos, [b, R, d]
  const a = attentionForward(p.cross, q, t, { dModel: d, heads }, { keyInput: tf.add(t, pe), hooks });
  const z1 = normForward(p.ln2, tf.add(p.target, a)); // z_0 + a
  const ffn = linear(tf.relu(linear(z1, p.mlp.w1, p.mlp.b1)), p.mlp.w2, p.mlp.b2);
  const z2 = normForward(p.ln3, tf.add(z1, ffn));
  return normForward(p.lnOut, z2) as tf.Tensor3D;
}

/** Dimensions for {@link decoderLayerNaive}. */
export interface DecoderLayerDims {
  b: number;
  N: number;
  C: number;
  d: number;
  heads: number;
  R: number;
  f: number;
}

/**
 * Float64 reference of {@link decoderLayerForward} in plain loops. `w` holds every parameter row-major under the keys
 * of {@link decoderLayerKeys}; features [b, N, C], pe [N, d] -> region tokens [b, R, d].
 */
export function decoderLayerNaive(
  w: Record<string, ArrayLike<number>>,
  features: ArrayLike<number>,
  pe: ArrayLike<number>,
  dims: DecoderLayerDims,
): Float64Array {
  const { b, N, C, d, heads, R, f } = dims;
  const dh = d / heads;
  const affine = (x: ArrayLike<number>, rows: number, wk: string, bk: string, inDim: number, outDim: number) => {
    const W = w[wk];
    const B = w[bk];
    const out = new Float64Array(rows * outDim);
    for (let i = 0; i < rows; i++)
      for (let o = 0; o < outDim; o++) {
        let s = B[o];
        for (let j = 0; j < inDim; j++) s += x[i * inDim + j] * W[j * outDim + o];
        out[i * outDim + o] = s;
      }
    return out;
  };
  const norm = (x: Float64Array, rows: number, key: string) => {
    const g = w[`${key}.gamma`];
    const be = w[`${key}.beta`];
    const out = new Float64Array(x.length);
    for (let i = 0; i < rows; i++) {
      let m = 0;
      for (let j = 0; j < d; j++) m += x[i * d + j] / d;
      let v = 0;
      for (let j = 0; j < d; j++) v += (x[i * d + j] - m) ** 2 / d;
      for (let j = 0; j < d; j++) out[i * d + j] = ((x[i * d + j] - m) / Math.sqrt(v + 1e-5)) * g[j] + be[j];
    }
    return out;
  };
  const out = new Float64Array(b * R * d);
  for (let bi = 0; bi < b; bi++) {
    const x = Array.from({ length: N * C }, (_, i) => features[bi * N * C + i]);
    const t = affine(x, N, 'w_in', 'b_in', C, d);
    const tk = t.map((v, i) => v + pe[i]);
    const k = affine(tk, N, 'cross.wk', 'cross.bk', d, d);
    const v = affine(t, N, 'cross.wv', 'cross.bv', d, d);
    const z0 = new Float64Array(R * d);
    for (let r = 0; r < R; r++) for (let j = 0; j < d; j++) z0[r * d + j] = w.target[j];
    const q = affine(
      z0.map((z, i) => z + w.queries[i]),
      R,
      'cross.wq',
      'cross.bq',
      d,
      d,
    );
    const merged = new Float64Array(R * d);
    for (let r = 0; r < R; r++)
      for (let hh = 0; hh < heads; hh++) {
        const logits = new Float64Array(N);
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let j = 0; j < dh; j++) s += q[r * d + hh * dh + j] * k[n * d + hh * dh + j];
          logits[n] = s / Math.sqrt(dh);
        }
        const mx = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - mx));
        const z = e.reduce((a, c) => a + c, 0);
        for (let n = 0; n < N; n++)
          for (let j = 0; j < dh; j++) merged[r * d + hh * dh + j] += (e[n] / z) * v[n * d + hh * dh + j];
      }
    const a = affine(merged, R, 'cross.wo', 'cross.bo', d, d);
    const z1 = norm(
      z0.map((z, i) => z + a[i]),
      R,
      'ln2',
    );
    const hidden = affine(z1, R, 'mlp.w1', 'mlp.b1', d, f).map((h) => Math.max(h, 0));
    const ffn = affine(hidden, R, 'mlp.w2', 'mlp.b2', f, d);
    const z2 = norm(
      z1.map((z, i) => z + ffn[i]),
      R,
      'ln3',
    );
    out.set(norm(z2, R, 'ln_out'), bi * R * d);
  }
  return out;
}

/** The keys of the official layer's parameters in a model's `params` (and in {@link decoderLayerNaive}'s `w`). */
export const decoderLayerKeys = [
  'w_in',
  'b_in',
  'queries',
  'target',
  'cross.wq',
  'cross.wk',
  'cross.wv',
  'cross.wo',
  'cross.bq',
  'cross.bk',
  'cross.bv',
  'cross.bo',
  'ln2.gamma',
  'ln2.beta',
  'mlp.w1',
  'mlp.b1',
  'mlp.w2',
  'mlp.b2',
  'ln3.gamma',
  'ln3.beta',
  'ln_out.gamma',
  'ln_out.beta',
] as const;

export interface TransformerEncoder extends EncodingModel {
  config: TransformerEncoderConfig;
  regions: RegionVoxels[];
  /** Per-head routing maps [b, h, R, N]. */
  attention(features: tf.Tensor3D): tf.Tensor4D;
  /** Region tokens [b, R, d]. */
  regionTokens(features: tf.Tensor3D): tf.Tensor3D;
}

/** [R·d, V] mask: 1 where voxel v's column reads region r(v)'s token. */
export function readoutMask(regions: readonly RegionVoxels[], dModel: number, voxels: number): tf.Tensor2D {
  const m = new Float32Array(regions.length * dModel * voxels);
  regions.forEach((r, ri) => {
    for (const v of r.voxels) for (let j = 0; j < dModel; j++) m[(ri * dModel + j) * voxels + v] = 1;
  });
  return tf.tensor2d(m, [regions.length * dModel, voxels]);
}

/** Batched readout: tokens [b, R, d], weights [R·d, V] (masked), bias [V] -> [b, V]. */
export function readoutBatched(
  tokens: tf.Tensor3D,
  weights: tf.Tensor2D,
  mask: tf.Tensor2D,
  bias: tf.Tensor1D,
): tf.Tensor2D {
  const [b, R, d] = tokens.shape;
  return tf.tidy(() => tf.add(matmul(tokens.reshape([b, R * d]), tf.mul(weights, mask)), bias) as tf.Tensor2D);
}

/** Reference: one product per region, scattered back to the voxel columns. */
export function readoutLoop(
  tokens: tf.Tensor3D,
  weights: tf.Tensor2D,
  regions: readonly RegionVoxels[],
  bias: tf.Tensor1D,
): tf.Tensor2D {
  const [b, , d] = tokens.shape;
  const V = bias.shape[0];
  return tf.tidy(() => {
    const cols: tf.Tensor[] = new Array(V);
    regions.forEach((r, ri) => {
      const token = tf.slice(tokens, [0, ri, 0], [b, 1, d]).reshape([b, d]);
      const w = tf.concat(
        r.voxels.map((v) => tf.slice(weights, [ri * d, v], [d, 1])),
        1,
      ); // [d, V_r]
      const y = tf.matMul(token as tf.Tensor2D, w as tf.Tensor2D); // [b, V_r]
      r.voxels.forEach((v, j) => (cols[v] = tf.slice(y, [0, j], [b, 1])));
    });
    return tf.add(tf.concat(cols, 1), bias) as tf.Tensor2D;
  });
}

export function checkRegions(fn: string, regions: readonly RegionVoxels[], voxels: number): void {
  const seen = new Int32Array(voxels).fill(-1);
  regions.forEach((r, ri) => {
    if (r.voxels.length === 0) throw new ShapeError(`${fn}: region '${r.name}' has no voxels`);
    for (const v of r.voxels) {
      if (!Number.isInteger(v) || v < 0 || v >= voxels)
        throw new ShapeError(`${fn}: region '${r.name}' names voxel ${v}, outside [0, ${voxels})`);
      if (seen[v] >= 0) throw new ShapeError(`${fn}: voxel ${v} is in both '${regions[seen[v]].name}' and '${r.name}'`);
      seen[v] = ri;
    }
  });
}

export function createTransformerEncoder(
  config: TransformerEncoderConfig,
  regions: RegionVoxels[],
  voxels: number,
  seed: number,
): TransformerEncoder {
  const { grid, channels: C, dModel: d, heads: h } = config;
  const layer = config.layer ?? 'official';
  const f = config.ffn ?? Math.round((4 / 3) * d);
  if (d % h !== 0) throw new ShapeError(`createTransformerEncoder: dModel ${d} must be divisible by heads ${h}`);
  if (layer !== 'official' && layer !== 'cross-only')
    throw new Error(`createTransformerEncoder: layer must be 'official' or 'cross-only', got ${JSON.stringify(layer)}`);
  if (!Number.isInteger(f) || f < 1) throw new Error(`createTransformerEncoder: ffn must be an integer >= 1, got ${f}`);
  checkRegions('createTransformerEncoder', regions, voxels);
  const R = regions.length;
  const N = grid * grid;
  const p = new ParamFactory({ scope: 'brain-tbe', seed: { kind: 'mixed', seed, prefix: 'brain-tbe' } });
  const wIn = p.variable('w_in', [C, d], 'glorotUniform');
  const bIn = p.variable('b_in', [d], 'zeros');
  const queries = p.variable('queries', [R, d], { normal: 1 });
  let forward: (features: tf.Tensor3D, pe: tf.Tensor2D, hooks?: HookRegistry) => tf.Tensor3D;
  if (layer === 'official') {
    const xavier = { weights: 'glorotUniform' as const };
    const lp: DecoderLayerParams = {
      wIn,
      bIn,
      queries,
      target: p.variable('target', [d], 'zeros'),
      cross: makeAttention(p.child('cross'), { dModel: d, heads: h, useBias: true }, xavier),
      ln2: makeNorm(p.child('ln2'), d),
      mlp: makeMlp(p.child('mlp'), d, f, xavier),
      ln3: makeNorm(p.child('ln3'), d),
      lnOut: makeNorm(p.child('ln_out'), d),
    };
    forward = (x, pe, hooks) => decoderLayerForward(lp, x, pe, h, hooks);
  } else {
    // The attention block without query and output projections: the learned queries are already in head space.
    const attn = { wk: p.variable('w_k', [d, d], 'glorotUniform'), wv: p.variable('w_v', [d, d], 'glorotUniform') };
    forward = (x, pe, hooks) => {
      const t = tf.add(matmul(x, wIn), bIn) as tf.Tensor3D; // [b, N, d]
      const q = tf.broadcastTo(queries, [x.shape[0], R, d]); // [b, R, d]
      return attentionForward(attn, q, t, { dModel: d, heads: h }, { keyInput: tf.add(t, pe), hooks });
    };
  }
  const readout = p.variable('readout', [R * d, voxels], { normal: 1 / Math.sqrt(d) });
  const bias = p.variable('bias', [voxels], 'zeros');
  const params = p.params();
  const pe = sinusoidal2d(grid, d);
  const mask = readoutMask(regions, d, voxels);
  const check = (features: tf.Tensor3D) => {
    if (features.rank !== 3 || features.shape[1] !== N || features.shape[2] !== C) {
      throw new ShapeError(`TransformerEncoder: features must be [b, ${N}, ${C}], got ${fmt(features.shape)}`);
    }
  };
  /** Region tokens [b, R, d]; hook `attn.hook_pattern` sees the routing maps [b, h, R, N]. */
  const attend = (features: tf.Tensor3D, hooks?: HookRegistry) => {
    check(features);
    return forward(features, pe, hooks);
  };
  const regionTokens = (features: tf.Tensor3D) => tf.tidy(() => attend(features)); // [b, R, d]
  const attention = (features: tf.Tensor3D) =>
    tf.tidy(() => {
      let maps: tf.Tensor4D | undefined;
      const hooks = new HookRegistry();
      hooks.add('attn.hook_pattern', (w) => {
        maps = w as tf.Tensor4D;
      });
      attend(features, hooks);
      return maps!;
    });
  // Every parameter counts except the readout, whose off-region blocks are masked: it counts d per voxel.
  const dense = Object.entries(params).reduce((a, [k, v]) => (k === 'readout' ? a : a + v.size), 0);
  const paramCount = dense + d * regions.reduce((a, r) => a + r.voxels.length, 0);
  return {
    name: layer === 'official' ? 'transformer' : 'cross-only',
    config: { ...config, layer, ffn: f },
    regions,
    params,
    paramCount,
    regionTokens,
    predict: (features) =>
      tf.tidy(() => readoutBatched(regionTokens(features), readout as tf.Tensor2D, mask, bias as tf.Tensor1D)),
    attention,
    dispose: () => {
      p.dispose();
      tf.dispose([pe, mask]);
    },
  };
}

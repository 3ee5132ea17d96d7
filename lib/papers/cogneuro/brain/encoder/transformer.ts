/**
 * The transformer brain encoder (Adeli, Sun, Kriegeskorte 2025): one learned query per region cross-attends over the
 * feature-map tokens, whose keys carry a 2-D sine position encoding; each region's output token is read out linearly
 * to that region's voxels.
 *
 *   t_n = W_in x_n + b_in                       tokens [b, N, d]
 *   k_n = (t_n + PE_n) W_k,   v_n = t_n W_v     position in the keys only (as DETR), so values carry content
 *   a_r = softmax_n(q_r · k_n / √d_h)           per head: region r's routing map [b, h, R, N]
 *   o_r = concat_h Σ_n a_r(n) v_n               [b, R, d]
 *   ŷ_v = u_vᵀ o_{r(v)} + c_v                   readout of voxel v from its own region's token only
 *
 * The readout is one block-sparse product ([b, R·d] x [R·d, V] with the off-region blocks masked to zero);
 * `readoutLoop` is the per-region reference it is tested against.
 *
 * Shape legend: b batch, N = G*G tokens, C channels, d model width, h heads, d_h = d / h, R regions, V voxels.
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../../backend/ops.js';
import { attentionForward } from '../../../../layers/functional.js';
import { HookRegistry } from '../../../../layers/hooks.js';
import { ParamFactory } from '../../../../layers/params.js';
import { fmt, ShapeError } from '../../../../util/shapes.js';
import { sinusoidal2d } from '../positional2d.js';
import type { EncodingModel, RegionVoxels } from './model.js';

export interface TransformerEncoderConfig {
  grid: number;
  channels: number;
  dModel: number;
  heads: number;
}

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
  if (d % h !== 0) throw new ShapeError(`createTransformerEncoder: dModel ${d} must be divisible by heads ${h}`);
  checkRegions('createTransformerEncoder', regions, voxels);
  const R = regions.length;
  const N = grid * grid;
  const p = new ParamFactory({ scope: 'brain-tbe', seed: { kind: 'mixed', seed, prefix: 'brain-tbe' } });
  const params = {
    w_in: p.variable('w_in', [C, d], 'glorotUniform'),
    b_in: p.variable('b_in', [d], 'zeros'),
    queries: p.variable('queries', [R, d], { normal: 1 }),
    w_k: p.variable('w_k', [d, d], 'glorotUniform'),
    w_v: p.variable('w_v', [d, d], 'glorotUniform'),
    readout: p.variable('readout', [R * d, voxels], { normal: 1 / Math.sqrt(d) }),
    bias: p.variable('bias', [voxels], 'zeros'),
  };
  // The attention block without query and output projections: the learned queries are already in head space.
  const attn = { wk: params.w_k, wv: params.w_v };
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
    const b = features.shape[0];
    const t = tf.add(matmul(features, params.w_in), params.b_in) as tf.Tensor3D; // [b, N, d]
    const q = tf.tile(params.queries.expandDims(0), [b, 1, 1]); // [b, R, d]
    return attentionForward(attn, q, t, { dModel: d, heads: h }, { keyInput: tf.add(t, pe), hooks });
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
  const paramCount = C * d + d + R * d + 2 * d * d + d * regions.reduce((a, r) => a + r.voxels.length, 0) + voxels;
  return {
    name: 'transformer',
    config,
    regions,
    params,
    paramCount,
    regionTokens,
    predict: (features) =>
      tf.tidy(() =>
        readoutBatched(regionTokens(features), params.readout as tf.Tensor2D, mask, params.bias as tf.Tensor1D),
      ),
    attention,
    dispose: () => tf.dispose([...Object.values(params), pe, mask]),
  };
}

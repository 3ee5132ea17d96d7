/**
 * The factorised spatial x feature readout (Klindt et al. 2017, "Neural system identification for large populations
 * separating 'what' and 'where'", https://arxiv.org/abs/1711.02653): each voxel has one spatial mask and one feature
 * vector,
 *
 *   ŷ_v = Σ_n s_v(n) f_vᵀ x_n + c_v,      with an L1 penalty on the masks s_v
 *
 * so a voxel reads the same features from the same place in every image: right for a pRF, wrong for a region that
 * follows an object wherever it is. Shape legend: b batch, N tokens, C channels, V voxels.
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../../backend/ops.js';
import { ParamFactory } from '../../../../layers/params.js';
import { fmt, ShapeError } from '../../../../util/shapes.js';
import type { EncodingModel } from './model.js';

export interface FactorisedConfig {
  grid: number;
  channels: number;
  /** L1 weight on the spatial masks (per voxel, mean over cells). */
  l1: number;
}

export function createFactorisedReadout(config: FactorisedConfig, voxels: number, seed: number): EncodingModel {
  const N = config.grid * config.grid;
  const C = config.channels;
  const p = new ParamFactory({ scope: 'brain-factorised', seed: { kind: 'mixed', seed, prefix: 'brain-factorised' } });
  const params = {
    spatial: p.variable('spatial', [N, voxels], { normal: 1 / N }),
    feature: p.variable('feature', [C, voxels], { normal: 1 / Math.sqrt(C) }),
    bias: p.variable('bias', [voxels], 'zeros'),
  };
  return {
    name: 'factorised',
    params,
    paramCount: (N + C + 1) * voxels,
    predict: (features) =>
      tf.tidy(() => {
        if (features.rank !== 3 || features.shape[1] !== N || features.shape[2] !== C) {
          throw new ShapeError(`factorised readout: features must be [b, ${N}, ${C}], got ${fmt(features.shape)}`);
        }
        const local = matmul(features, params.feature); // f_vᵀ x_n: [b, N, V]
        return tf.add(tf.sum(tf.mul(local, params.spatial), 1), params.bias) as tf.Tensor2D;
      }),
    penalty: () => tf.tidy(() => tf.mul(tf.mean(tf.sum(tf.abs(params.spatial), 0)), config.l1) as tf.Scalar),
    dispose: () => tf.dispose(Object.values(params)),
  };
}

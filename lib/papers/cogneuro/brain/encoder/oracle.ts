/**
 * The model that is given the true routing: each voxel's features routed by its true map (pRF or category softmax,
 * simulate/voxels.ts trueRoutedFeatures), then a per-voxel least-squares readout (C + 1 parameters, a tiny ridge for
 * stability). It reaches the noise ceiling when enough stimuli pin down C + 1 numbers per voxel, which is what the
 * tests check; it bounds what the learned models can do.
 *
 * Shape legend: n stimuli, V voxels, C channels.
 */
import type * as tf from '@tensorflow/tfjs';
import { fmt, ShapeError } from '../../../../util/shapes.js';
import { cholesky, choleskySolve, type Mat, mat } from '../stats.js';

export interface OracleFit {
  /** [V, C + 1]: weights then intercept. */
  coef: Float64Array;
  channels: number;
}

export function fitOracle(routed: tf.Tensor3D, y: Mat, ridge = 1e-6): OracleFit {
  const [n, V, C] = routed.shape;
  if (y.rows !== n || y.cols !== V)
    throw new ShapeError(
      `fitOracle: routed features ${fmt(routed.shape)} need responses [${n}, ${V}], got [${y.rows}, ${y.cols}]`,
    );
  const z = routed.dataSync();
  const m = C + 1;
  const coef = new Float64Array(V * m);
  for (let v = 0; v < V; v++) {
    const a = new Float64Array(m * m);
    const b = new Float64Array(m);
    const row = new Float64Array(m);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < C; c++) row[c] = z[(i * V + v) * C + c];
      row[C] = 1;
      const t = y.data[i * V + v];
      for (let p = 0; p < m; p++) {
        b[p] += row[p] * t;
        for (let q = 0; q <= p; q++) a[p * m + q] += row[p] * row[q];
      }
    }
    let trace = 0;
    for (let p = 0; p < m; p++) for (let q = p + 1; q < m; q++) a[p * m + q] = a[q * m + p];
    for (let p = 0; p < m; p++) trace += a[p * m + p];
    for (let p = 0; p < m; p++) a[p * m + p] += (ridge * trace) / m;
    coef.set(choleskySolve(cholesky(a, m), m, b, 1), v * m);
  }
  return { coef, channels: C };
}

export function predictOracle(fit: OracleFit, routed: tf.Tensor3D): Mat {
  const [n, V, C] = routed.shape;
  if (C !== fit.channels)
    throw new ShapeError(`predictOracle: routed features have ${C} channels, the fit has ${fit.channels}`);
  const z = routed.dataSync();
  const out = mat(n, V);
  for (let i = 0; i < n; i++) {
    for (let v = 0; v < V; v++) {
      let s = fit.coef[v * (C + 1) + C];
      for (let c = 0; c < C; c++) s += fit.coef[v * (C + 1) + c] * z[(i * V + v) * C + c];
      out.data[i * V + v] = s;
    }
  }
  return out;
}

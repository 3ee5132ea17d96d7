/**
 * Ridge regression on the flattened feature map, closed form, with the regularisation chosen per voxel on a
 * validation split:
 *
 *   W_λ = argmin ‖Y − X W‖² + λ ‖W‖²   (X, Y centred on the training means)
 *       = (XᵀX + λI)⁻¹ XᵀY            primal, when features P <= stimuli n
 *       = Xᵀ (XXᵀ + λI)⁻¹ Y            dual, when P > n (the same W)
 *
 * λ runs over `scales` × trace(XᵀX) / n (the summed feature variance); each voxel keeps the λ whose validation
 * predictions correlate best with its validation responses. Large products run in tfjs (float32); the solves are
 * float64 Cholesky on the JS side.
 *
 * Shape legend: n stimuli, P = N*C features, V voxels.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../../../util/shapes.js';
import { cholesky, choleskySolve, type Mat, mat, pearsonColumns } from '../stats.js';
import type { EncodingModel } from './model.js';

export const DEFAULT_RIDGE_SCALES = [1e-3, 1e-2, 0.03, 0.1, 0.3, 1, 3, 10];

export interface RidgeFit {
  /** [P, V] weights and [V] intercepts, for centred-free inputs: ŷ = x W + intercept. */
  weights: Float32Array;
  intercept: Float32Array;
  features: number;
  voxels: number;
  /** The λ each voxel chose, and the validation r of every λ per voxel [scales][V]. */
  lambda: Float64Array;
  validationR: Float64Array[];
  form: 'primal' | 'dual';
}

function flat(x: tf.Tensor): tf.Tensor2D {
  return x.reshape([x.shape[0], -1]) as tf.Tensor2D;
}

/** W for each λ (as tensors [P, V]); Xc, Yc centred. */
function solveAll(
  xc: tf.Tensor2D,
  yc: tf.Tensor2D,
  scales: readonly number[],
  form: 'primal' | 'dual',
): { lambdas: number[]; ws: tf.Tensor2D[] } {
  const [n, P] = xc.shape;
  const V = yc.shape[1];
  const gram = tf.tidy(() => (form === 'primal' ? tf.matMul(xc, xc, true, false) : tf.matMul(xc, xc, false, true)));
  const rhs = tf.tidy(() => (form === 'primal' ? tf.matMul(xc, yc, true, false) : yc.clone()));
  const m = form === 'primal' ? P : n;
  const g = Float64Array.from(gram.dataSync());
  const b = Float64Array.from(rhs.dataSync());
  tf.dispose([gram, rhs]);
  let trace = 0;
  for (let i = 0; i < m; i++) trace += g[i * m + i];
  const lambdas = scales.map((s) => (s * trace) / n); // per stimulus, so both forms get the same λ
  const ws = lambdas.map((lam) => {
    const a = Float64Array.from(g);
    for (let i = 0; i < m; i++) a[i * m + i] += lam;
    const sol = choleskySolve(cholesky(a, m), m, b, V);
    const s = tf.tensor2d(Float32Array.from(sol), [m, V]);
    if (form === 'primal') return s;
    const w = tf.matMul(xc, s, true, false) as tf.Tensor2D; // Xᵀ α
    s.dispose();
    return w;
  });
  return { lambdas, ws };
}

export interface RidgeOptions {
  scales?: readonly number[];
  /** Default: the smaller system (primal when P <= n). */
  form?: 'primal' | 'dual';
}

/** Fit on (xTrain, yTrain), choose λ per voxel on (xVal, yVal). Features [n, N, C] or [n, P]. */
export function fitRidge(
  xTrain: tf.Tensor,
  yTrain: Mat,
  xVal: tf.Tensor,
  yVal: Mat,
  opts: RidgeOptions = {},
): RidgeFit {
  const scales = opts.scales ?? DEFAULT_RIDGE_SCALES;
  const n = xTrain.shape[0];
  if (yTrain.rows !== n) throw new ShapeError(`fitRidge: xTrain has ${n} stimuli but yTrain has ${yTrain.rows} rows`);
  if (yVal.rows !== xVal.shape[0])
    throw new ShapeError(`fitRidge: xVal has ${xVal.shape[0]} stimuli but yVal has ${yVal.rows} rows`);
  if (yVal.cols !== yTrain.cols)
    throw new ShapeError(`fitRidge: yTrain has ${yTrain.cols} voxels but yVal has ${yVal.cols}`);
  const V = yTrain.cols;
  const x = flat(xTrain);
  const P = x.shape[1];
  const form = opts.form ?? (P <= n ? 'primal' : 'dual');
  const xMean = tf.mean(x, 0);
  const y = tf.tensor2d(Float32Array.from(yTrain.data), [n, V]);
  const yMean = tf.mean(y, 0);
  const xc = tf.sub(x, xMean) as tf.Tensor2D;
  const yc = tf.sub(y, yMean) as tf.Tensor2D;
  const { lambdas, ws } = solveAll(xc, yc, scales, form);
  const xv = tf.tidy(() => tf.sub(flat(xVal), xMean) as tf.Tensor2D);
  const validationR = ws.map((w) => {
    const pred = tf.tidy(() => tf.add(tf.matMul(xv, w), yMean).dataSync());
    return pearsonColumns(mat(yVal.rows, V, pred), yVal);
  });
  const best = new Int32Array(V);
  for (let v = 0; v < V; v++)
    for (let l = 1; l < lambdas.length; l++) if (validationR[l][v] > validationR[best[v]][v]) best[v] = l;
  const allW = ws.map((w) => w.dataSync());
  const weights = new Float32Array(P * V);
  for (let p = 0; p < P; p++) for (let v = 0; v < V; v++) weights[p * V + v] = allW[best[v]][p * V + v];
  const wt = tf.tensor2d(weights, [P, V]);
  const intercept = tf.tidy(
    () => tf.sub(yMean, tf.matMul(xMean.reshape([1, P]), wt).reshape([V])).dataSync() as Float32Array,
  );
  tf.dispose([x, xMean, y, yMean, xc, yc, xv, wt, ...ws]);
  return {
    weights,
    intercept,
    features: P,
    voxels: V,
    lambda: Float64Array.from(best, (b) => lambdas[b]),
    validationR,
    form,
  };
}

/** The fitted ridge as an encoding model. */
export function ridgeModel(fit: RidgeFit): EncodingModel {
  const w = tf.tensor2d(fit.weights, [fit.features, fit.voxels]);
  const b = tf.tensor1d(fit.intercept);
  return {
    name: 'ridge',
    params: {},
    paramCount: (fit.features + 1) * fit.voxels,
    predict: (features) => {
      if (features.size / features.shape[0] !== fit.features) {
        throw new ShapeError(
          `ridge: features have ${features.size / features.shape[0]} values per stimulus, the fit has ${fit.features}`,
        );
      }
      return tf.tidy(() => tf.add(tf.matMul(flat(features), w), b) as tf.Tensor2D);
    },
    dispose: () => tf.dispose([w, b]),
  };
}

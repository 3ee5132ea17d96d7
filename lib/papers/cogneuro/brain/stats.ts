/**
 * Statistics for encoding models, in float64 on the JS side: Pearson r per column, the noise ceiling from repeated
 * presentations, and a Cholesky solve for ridge regression (tfjs has no linear solver).
 *
 * Shape legend: n stimuli, v voxels, r repeats.
 */
import { ShapeError } from '../../../util/shapes.js';

/** A row-major float64 matrix. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: ArrayLike<number>): Mat {
  if (data && data.length !== rows * cols)
    throw new ShapeError(`mat: ${data.length} values for a ${rows}x${cols} matrix`);
  return { rows, cols, data: data ? Float64Array.from(data) : new Float64Array(rows * cols) };
}

/** Pearson correlation of column j of `a` with column j of `b` (both [n, v]); NaN-free: a constant column gives 0. */
export function pearsonColumns(a: Mat, b: Mat): Float64Array {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    throw new ShapeError(`pearsonColumns: predictions are ${a.rows}x${a.cols} but responses are ${b.rows}x${b.cols}`);
  }
  const { rows: n, cols: v } = a;
  const out = new Float64Array(v);
  for (let j = 0; j < v; j++) {
    let ma = 0;
    let mb = 0;
    for (let i = 0; i < n; i++) {
      ma += a.data[i * v + j];
      mb += b.data[i * v + j];
    }
    ma /= n;
    mb /= n;
    let sab = 0;
    let saa = 0;
    let sbb = 0;
    for (let i = 0; i < n; i++) {
      const x = a.data[i * v + j] - ma;
      const y = b.data[i * v + j] - mb;
      sab += x * y;
      saa += x * x;
      sbb += y * y;
    }
    out[j] = saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
  }
  return out;
}

export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return pearsonColumns(mat(x.length, 1, x), mat(y.length, 1, y))[0];
}

export function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return x.length ? s / x.length : NaN;
}

/**
 * The noise ceiling of each voxel from repeated presentations (the estimate usable on real data): the highest Pearson r
 * any model can reach against the repeat-averaged response.
 *
 *   σ²_noise = mean over stimuli of the across-repeat variance (ddof 1)
 *   σ²_signal = var over stimuli of the repeat mean − σ²_noise / r      (floored at 0)
 *   ceiling = sqrt(σ²_signal / (σ²_signal + σ²_noise / r))
 *
 * `repeats` is [r][n, v]: r presentations of the same n stimuli.
 */
export function noiseCeiling(repeats: readonly Mat[]): Float64Array {
  const r = repeats.length;
  if (r < 2) throw new ShapeError(`noiseCeiling: needs at least 2 repeats, got ${r}`);
  const { rows: n, cols: v } = repeats[0];
  for (const [i, m] of repeats.entries()) {
    if (m.rows !== n || m.cols !== v)
      throw new ShapeError(`noiseCeiling: repeat ${i} is ${m.rows}x${m.cols}, repeat 0 is ${n}x${v}`);
  }
  const out = new Float64Array(v);
  for (let j = 0; j < v; j++) {
    let noise = 0;
    const means = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (const m of repeats) s += m.data[i * v + j];
      const mu = s / r;
      means[i] = mu;
      let ss = 0;
      for (const m of repeats) ss += (m.data[i * v + j] - mu) ** 2;
      noise += ss / (r - 1);
    }
    noise /= n;
    const mu = mean(means);
    let varMean = 0;
    for (let i = 0; i < n; i++) varMean += (means[i] - mu) ** 2;
    varMean /= n - 1;
    const signal = Math.max(0, varMean - noise / r);
    out[j] = signal > 0 ? Math.sqrt(signal / (signal + noise / r)) : 0;
  }
  return out;
}

/** The ceiling implied by a known signal-to-noise ratio (signal variance / noise variance) and r averaged repeats. */
export function analyticCeiling(snr: number, repeats: number): number {
  return Math.sqrt((snr * repeats) / (snr * repeats + 1));
}

/** Mean of repeats, [n, v]. */
export function averageRepeats(repeats: readonly Mat[]): Mat {
  const out = mat(repeats[0].rows, repeats[0].cols);
  for (const m of repeats) for (let i = 0; i < out.data.length; i++) out.data[i] += m.data[i] / repeats.length;
  return out;
}

/** In-place Cholesky factor (lower) of a symmetric positive-definite n x n matrix; throws if it is not. */
export function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    const lj = j * n;
    for (let k = 0; k < j; k++) d -= l[lj + k] * l[lj + k];
    if (!(d > 0)) throw new Error(`cholesky: matrix is not positive definite (pivot ${j} is ${d})`);
    const djj = Math.sqrt(d);
    l[lj + j] = djj;
    for (let i = j + 1; i < n; i++) {
      const li = i * n;
      let s = a[li + j];
      for (let k = 0; k < j; k++) s -= l[li + k] * l[lj + k];
      l[li + j] = s / djj;
    }
  }
  return l;
}

/** Solve (L Lᵀ) X = B for X, B [n, m] row-major; returns X. */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  const x = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    const li = i * n;
    for (let k = 0; k < i; k++) {
      const f = l[li + k];
      if (f === 0) continue;
      for (let c = 0; c < m; c++) x[i * m + c] -= f * x[k * m + c];
    }
    const d = l[li + i];
    for (let c = 0; c < m; c++) x[i * m + c] /= d;
  }
  for (let i = n - 1; i >= 0; i--) {
    for (let k = i + 1; k < n; k++) {
      const f = l[k * n + i];
      if (f === 0) continue;
      for (let c = 0; c < m; c++) x[i * m + c] -= f * x[k * m + c];
    }
    const d = l[i * n + i];
    for (let c = 0; c < m; c++) x[i * m + c] /= d;
  }
  return x;
}

/** Per-column mean and standard deviation (population); a constant column gets sd 1. */
export function columnStats(m: Mat): { mean: Float64Array; std: Float64Array } {
  const mu = new Float64Array(m.cols);
  const sd = new Float64Array(m.cols);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) mu[j] += m.data[i * m.cols + j] / m.rows;
  for (let i = 0; i < m.rows; i++)
    for (let j = 0; j < m.cols; j++) sd[j] += (m.data[i * m.cols + j] - mu[j]) ** 2 / m.rows;
  for (let j = 0; j < m.cols; j++) sd[j] = Math.sqrt(sd[j]) || 1;
  return { mean: mu, std: sd };
}

export function selectRows(m: Mat, idx: readonly number[]): Mat {
  const out = mat(idx.length, m.cols);
  idx.forEach((r, i) => out.data.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols));
  return out;
}

export function selectCols(m: Mat, idx: readonly number[]): Mat {
  const out = mat(m.rows, idx.length);
  for (let i = 0; i < m.rows; i++) idx.forEach((c, j) => (out.data[i * idx.length + j] = m.data[i * m.cols + c]));
  return out;
}

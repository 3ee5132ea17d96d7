/**
 * Object position codes.
 *
 * OAT's proposal (§3.2 and `positionalEncodingLearned.py` of the official code): a table W [K, D] of codes for the grid
 * indices 0..K-1, learned *offline* so that the cosine similarity of two codes is a Gaussian of their index distance,
 *
 *   L(W) = 1 / (K (K − 1)) · ( Σ_{i,j} (cos(W_i, W_j) − exp(−(i − j)² / 2σ²))² + α Σ_i (|W_i| − mean_k |W_k|)² ),  σ = 2
 *
 * (Adam, lr 0.01, from a standard normal start; the second term keeps the norms equal). An object at (row, col) gets
 * code(row) ⊕ code(col): nearby objects get similar codes along each axis, far ones near-orthogonal codes, which a 1-D
 * sinusoidal code of the reading order cannot give (row neighbours are `cols` apart in reading order).
 * The table is fixed during training, as in the paper. Codes are scaled so both kinds have the same norm.
 */

import type { SearchDisplay } from '../../../data/visual-search/displays.js';
import { Rng } from '../../../util/random.js';
import { ShapeError } from '../../../util/shapes.js';

export type PositionKind = 'gaussian2d' | 'sinusoidal1d';

export interface GaussianPeOptions {
  /** Table rows: grid indices 0..K-1. */
  size: number;
  /** Code dimension. */
  dim: number;
  sigma?: number;
  /** α of the norm-equality term (default 1). */
  alpha?: number;
  iterations?: number;
  lr?: number;
  seed?: number;
}

/** Target similarity exp(−(i − j)² / 2σ²). */
export const gaussianSimilarity = (i: number, j: number, sigma: number): number =>
  Math.exp(-((i - j) ** 2) / (2 * sigma * sigma));

/** L(W) and dL/dW for a table W [K, D] (row-major), in float64. */
export function gaussianPeLoss(
  w: ArrayLike<number>,
  size: number,
  dim: number,
  sigma: number,
  alpha = 1,
): { loss: number; grad: Float64Array } {
  const K = size,
    D = dim;
  if (w.length !== K * D) throw new ShapeError(`gaussianPeLoss: w has ${w.length} values but size × dim = ${K} × ${D}`);
  const norms = new Float64Array(K);
  const u = new Float64Array(K * D);
  for (let i = 0; i < K; i++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += w[i * D + d] ** 2;
    norms[i] = Math.sqrt(s);
    for (let d = 0; d < D; d++) u[i * D + d] = w[i * D + d] / norms[i];
  }
  const scale = 1 / (K * (K - 1));
  const grad = new Float64Array(K * D);
  let loss = 0;
  // dL/du_i collected first, then projected through u = w / |w|: dL/dw_i = (g − (g·u_i) u_i) / |w_i|.
  const gu = new Float64Array(K * D);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) {
      let c = 0;
      for (let d = 0; d < D; d++) c += u[i * D + d] * u[j * D + d];
      const e = c - gaussianSimilarity(i, j, sigma);
      loss += e * e * scale;
      const g = 2 * e * scale;
      for (let d = 0; d < D; d++) {
        gu[i * D + d] += g * u[j * D + d];
        gu[j * D + d] += g * u[i * D + d];
      }
    }
  }
  const mean = norms.reduce((a, b) => a + b, 0) / K;
  for (let i = 0; i < K; i++) {
    loss += alpha * scale * (norms[i] - mean) ** 2;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += gu[i * D + d] * u[i * D + d];
    const gn = 2 * alpha * scale * (norms[i] - mean); // the mean's own derivative sums to zero over i
    for (let d = 0; d < D; d++) grad[i * D + d] = (gu[i * D + d] - dot * u[i * D + d]) / norms[i] + gn * u[i * D + d];
  }
  return { loss, grad };
}

export interface GaussianPe {
  size: number;
  dim: number;
  sigma: number;
  /** [size, dim] row-major. */
  table: Float32Array;
  /** Final loss and the largest |cos − target| over pairs. */
  loss: number;
  maxError: number;
}

const peCache = new Map<string, GaussianPe>();

/** Learn the table with Adam (cached per options: it is a fixed preprocessing step, like the paper's .npy file). */
export function learnGaussianPe(opts: GaussianPeOptions): GaussianPe {
  const K = opts.size,
    D = opts.dim;
  if (!(Number.isInteger(K) && K >= 2)) throw new ShapeError(`learnGaussianPe: size must be an integer >= 2, got ${K}`);
  if (!(Number.isInteger(D) && D >= 1))
    throw new ShapeError(`learnGaussianPe: dim must be a positive integer, got ${D}`);
  const sigma = opts.sigma ?? 2,
    alpha = opts.alpha ?? 1,
    iters = opts.iterations ?? 3000,
    lr = opts.lr ?? 0.01,
    seed = opts.seed ?? 0;
  const key = JSON.stringify([K, D, sigma, alpha, iters, lr, seed]);
  const hit = peCache.get(key);
  if (hit) return hit;
  const rng = new Rng(seed);
  const w = Float64Array.from({ length: K * D }, () => rng.normal());
  const m = new Float64Array(K * D),
    v = new Float64Array(K * D);
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  let loss = 0;
  for (let t = 1; t <= iters; t++) {
    const r = gaussianPeLoss(w, K, D, sigma, alpha);
    loss = r.loss;
    for (let i = 0; i < w.length; i++) {
      m[i] = b1 * m[i] + (1 - b1) * r.grad[i];
      v[i] = b2 * v[i] + (1 - b2) * r.grad[i] ** 2;
      w[i] -= (lr * (m[i] / (1 - b1 ** t))) / (Math.sqrt(v[i] / (1 - b2 ** t)) + eps);
    }
  }
  const table = new Float32Array(K * D);
  let maxError = 0;
  const unit = (i: number) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += w[i * D + d] ** 2;
    return Math.sqrt(s);
  };
  for (let i = 0; i < K; i++) {
    const ni = unit(i);
    for (let d = 0; d < D; d++) table[i * D + d] = w[i * D + d] / ni;
    for (let j = 0; j < K; j++) {
      let c = 0;
      for (let d = 0; d < D; d++) c += w[i * D + d] * w[j * D + d];
      maxError = Math.max(maxError, Math.abs(c / (ni * unit(j)) - gaussianSimilarity(i, j, sigma)));
    }
  }
  const pe = { size: K, dim: D, sigma, table, loss, maxError };
  peCache.set(key, pe);
  return pe;
}

/** Cosine similarity matrix [K][K] of a table (for plots and tests). */
export function cosineMatrix(pe: GaussianPe): number[][] {
  const { size: K, dim: D, table } = pe;
  const norm = (i: number) => Math.hypot(...table.subarray(i * D, (i + 1) * D));
  return Array.from({ length: K }, (_, i) =>
    Array.from({ length: K }, (_, j) => {
      let c = 0;
      for (let d = 0; d < D; d++) c += table[i * D + d] * table[j * D + d];
      return c / (norm(i) * norm(j));
    }),
  );
}

/** Sinusoidal code of one position, dim values (Vaswani et al. 2017), as in lib/positional. */
function sinusoid(p: number, dim: number): number[] {
  return Array.from({ length: dim }, (_, k) => {
    const a = p / 10000 ** ((2 * Math.floor(k / 2)) / dim);
    return k % 2 === 0 ? Math.sin(a) : Math.cos(a);
  });
}

/** Reading order of a display's objects (top to bottom, then left to right): the 1-D position of each object. */
export function readingOrder(d: SearchDisplay): number[] {
  const order = d.objects
    .map((_o, j) => j)
    .sort((a, b) => d.objects[a].row - d.objects[b].row || d.objects[a].x - d.objects[b].x);
  const rank = new Array<number>(d.objects.length);
  order.forEach((j, r) => (rank[j] = r));
  return rank;
}

/**
 * Position codes [n][dim] of a display's objects. gaussian2d: code(row) ⊕ code(col) from `pe` (dim = 2 · pe.dim);
 * sinusoidal1d: sinusoidal code of the reading-order index. Both have norm √(dim / 2).
 */
export function positionCodes(d: SearchDisplay, kind: PositionKind, dim: number, pe?: GaussianPe): number[][] {
  if (kind === 'sinusoidal1d') {
    const rank = readingOrder(d);
    return d.objects.map((_, j) => sinusoid(rank[j], dim));
  }
  if (!pe) throw new ShapeError('positionCodes: gaussian2d needs the learned table (learnGaussianPe)');
  if (pe.dim * 2 !== dim)
    throw new ShapeError(`positionCodes: gaussian2d gives 2 × ${pe.dim} = ${2 * pe.dim} values but dim is ${dim}`);
  const s = Math.sqrt(dim / 4); // each unit half scaled to √(dim/4): total norm √(dim/2), as the sinusoidal code
  return d.objects.map((o) => {
    if (o.row >= pe.size || o.col >= pe.size) {
      throw new ShapeError(
        `positionCodes: object at row ${o.row}, col ${o.col} of display '${d.id}' is outside the learned table (size ${pe.size}); learn a larger one`,
      );
    }
    return [
      ...Array.from(pe.table.subarray(o.row * pe.dim, (o.row + 1) * pe.dim), (x) => x * s),
      ...Array.from(pe.table.subarray(o.col * pe.dim, (o.col + 1) * pe.dim), (x) => x * s),
    ];
  });
}

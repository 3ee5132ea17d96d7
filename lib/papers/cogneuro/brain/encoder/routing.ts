/**
 * Routing scores: how well each region's attention (mean over heads) matches the true routing of the simulated
 * system. Early regions: the map averaged over images against the region's mean pRF. Category regions: per image that
 * contains the category, the map against the true category routing α_c = softmax(τ m_c); averaged over those images.
 * Both are Pearson correlations over the grid cells (1 = the same shape).
 *
 * Shape legend: n images, R regions, h heads, N grid cells.
 */
import * as tf from '@tensorflow/tfjs';
import { CATEGORIES } from '../simulate/scenes.js';
import { categoryRouting, type VisualSystem } from '../simulate/voxels.js';
import { mean, pearson } from '../stats.js';
import type { TransformerEncoder } from './transformer.js';

/** Head-averaged routing maps [n, R, N]. */
export function regionAttention(model: TransformerEncoder, features: tf.Tensor3D, batch = 256): Float32Array {
  const n = features.shape[0];
  const parts: Float32Array[] = [];
  for (let i = 0; i < n; i += batch) {
    parts.push(
      tf.tidy(
        () =>
          tf
            .mean(model.attention(tf.slice(features, [i, 0, 0], [Math.min(batch, n - i), -1, -1]) as tf.Tensor3D), 1)
            .dataSync() as Float32Array,
      ),
    );
  }
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The true map of each region: the mean pRF (early) or, per image, the category routing (category). */
export function trueRegionMaps(
  sys: VisualSystem,
  cov: tf.Tensor3D,
): { early: Map<number, Float32Array>; category: Map<number, Float32Array[]> } {
  const N = sys.grid * sys.grid;
  const n = cov.shape[0];
  const alpha = tf.tidy(() => categoryRouting(cov, sys.config.tau).dataSync() as Float32Array);
  const totals = tf.tidy(() => tf.sum(cov, 2).dataSync() as Float32Array);
  const K = CATEGORIES.length;
  const early = new Map<number, Float32Array>();
  const category = new Map<number, Float32Array[]>();
  sys.regions.forEach((r, ri) => {
    if (r.kind === 'early') {
      const m = new Float32Array(N);
      for (const v of r.voxels) for (let j = 0; j < N; j++) m[j] += sys.prf[v * N + j] / r.voxels.length;
      early.set(ri, m);
    } else {
      const k = CATEGORIES.indexOf(r.category!);
      category.set(
        ri,
        Array.from({ length: n }, (_, i) =>
          totals[i * K + k] >= 0.5 ? alpha.subarray((i * K + k) * N, (i * K + k + 1) * N) : new Float32Array(0),
        ),
      );
    }
  });
  return { early, category };
}

/** Routing score per region (in the order of sys.regions). `attn` [n, R, N] from regionAttention. */
export function routingScores(sys: VisualSystem, attn: Float32Array, cov: tf.Tensor3D): number[] {
  const N = sys.grid * sys.grid;
  const R = sys.regions.length;
  const n = cov.shape[0];
  const truth = trueRegionMaps(sys, cov);
  return sys.regions.map((_, ri) => {
    const e = truth.early.get(ri);
    if (e) {
      const m = new Float64Array(N);
      for (let i = 0; i < n; i++) for (let j = 0; j < N; j++) m[j] += attn[(i * R + ri) * N + j] / n;
      return pearson(m, e);
    }
    const maps = truth.category.get(ri)!;
    const scores: number[] = [];
    maps.forEach((t, i) => {
      if (t.length) scores.push(pearson(attn.subarray((i * R + ri) * N, (i * R + ri + 1) * N), t));
    });
    return scores.length ? mean(scores) : NaN;
  });
}

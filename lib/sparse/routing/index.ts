/**
 * Routing attention: content-based sparse attention by online k-means.
 *
 * Paper: Roy, Saffar, Vaswani & Grangier, TACL 2021, "Efficient Content-Based Sparse Attention with Routing
 * Transformers", https://arxiv.org/abs/2003.05997
 *
 * Queries and keys are shared (Q = K = x) and normalised, x̂ = √d · x / ‖x‖. Each head keeps c unit centroids μ, and
 * attention is exact softmax among the members of a cluster. Two routings:
 *   'balanced' (top-w): centroid μ_c takes the w tokens with the largest x̂ · μ_c (w ≈ n / c), so every cluster has w
 *       members; a token may sit in several clusters (its output is the mean) or none (zero output, which is why the
 *       paper mixes routing heads with local heads). Membership depends on every token, future ones included, so it is
 *       only offered without a causal mask.
 *   'nearest' (the default with causal): each token joins its nearest centroid, argmax_c x̂ · μ_c, which depends on the
 *       token alone, so a future token never changes an earlier output; inside a cluster the mask is causal.
 * Cost O(n·c·d) to route plus Σ_c |c|²·d to attend; with balanced clusters and c ≈ √n, O(n^1.5 d).
 *
 * Centroids follow the routed vectors by an exponential moving average (the paper's update with Q = K):
 *   μ_c ← normalise(λ μ_c + (1 − λ) · mean{ x̂_i/‖x̂_i‖ : argmax_c' x̂_i · μ_c' = c }),   λ = 0.999 in the paper,
 * and a commitment loss β ‖x̂/‖x̂‖ − μ(x)‖² pulls vectors towards their centroid.
 *
 * Shape legend: b batch, h heads, n positions, d head dim, e value dim, c clusters, w tokens per cluster.
 *   qk [b, h, n, d], v [b, h, n, e], centroids [h, c, d] -> output [b, h, n, e]
 * With one cluster (every token in it) the result equals dense (causal) attention on (x̂, x̂, v).
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../backend/ops.js';
import { MASKED_SCORE, checkQkv } from '../../attention/sdpa.js';
import { ShapeError, fmt } from '../../util/shapes.js';
import { checkBlock, checkScale, constant, densePairs, f64, gatherRows, naiveAttendRow, type SparseBaseOptions, type SparseResult } from '../common.js';

export interface RoutingOptions extends SparseBaseOptions {
  /** 'nearest' (default with causal) or 'balanced' top-w (default without; not allowed with causal). */
  assignment?: 'nearest' | 'balanced';
  /** Balanced routing: tokens per cluster (default ceil(n / clusters)). */
  window?: number;
}

export interface RoutingResult extends SparseResult {
  /** Members of each cluster, ascending positions: clusters[(b * h + head) * c + cluster]. */
  clusters: number[][];
}

/** x̂ = √d · x / ‖x‖ along the last axis (a parameter-free layer norm onto the sphere of radius √d). */
export function normaliseShared(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1] as number;
    return x.mul(tf.rsqrt(x.square().sum(-1, true).add(1e-12))).mul(Math.sqrt(d));
  });
}

function checkCentroids(fn: string, centroids: tf.Tensor, heads: number, dim: number): number {
  if (centroids.rank !== 3 || centroids.shape[0] !== heads || centroids.shape[2] !== dim) {
    throw new ShapeError(`${fn}: centroids must have shape [heads=${heads}, clusters, dim=${dim}], but has ${fmt(centroids.shape)}`);
  }
  return centroids.shape[1] as number;
}

/** Balanced routing: for each (b, head, centroid) the w tokens with the largest similarity, sorted by position. */
export function balancedRouting(sim: ArrayLike<number>, batch: number, heads: number, n: number, c: number, w: number): number[][] {
  const out: number[][] = [];
  for (let bh = 0; bh < batch * heads; bh++) {
    for (let cl = 0; cl < c; cl++) {
      const idx = Array.from({ length: n }, (_, i) => i);
      idx.sort((a, b) => sim[(bh * n + b) * c + cl] - sim[(bh * n + a) * c + cl] || a - b);
      out.push(idx.slice(0, w).sort((a, b) => a - b));
    }
  }
  return out;
}

/** Each token in its nearest cluster: members per (b, head, centroid), ascending positions. */
export function nearestRouting(sim: ArrayLike<number>, batch: number, heads: number, n: number, c: number): number[][] {
  const out: number[][] = Array.from({ length: batch * heads * c }, () => []);
  for (let bh = 0; bh < batch * heads; bh++) {
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let cl = 1; cl < c; cl++) if (sim[(bh * n + i) * c + cl] > sim[(bh * n + i) * c + best]) best = cl;
      out[bh * c + best].push(i);
    }
  }
  return out;
}

function route(fn: string, sim: ArrayLike<number>, s: { batch: number; heads: number }, n: number, c: number, options: RoutingOptions, causal: boolean): number[][] {
  const assignment = options.assignment ?? (causal ? 'nearest' : 'balanced');
  if (assignment === 'balanced') {
    if (causal) throw new ShapeError(`${fn}: options.assignment 'balanced' lets future tokens change earlier clusters; use 'nearest' with causal attention`);
    return balancedRouting(sim, s.batch, s.heads, n, c, Math.min(n, options.window ?? Math.ceil(n / c)));
  }
  if (assignment !== 'nearest') throw new ShapeError(`${fn}: options.assignment must be 'nearest' or 'balanced', got '${String(assignment)}'`);
  return nearestRouting(sim, s.batch, s.heads, n, c);
}

/** Routing attention; see the module header. `qk` is the shared query/key before normalisation. */
export function routingAttention(qk: tf.Tensor, v: tf.Tensor, centroids: tf.Tensor, options: RoutingOptions = {}): RoutingResult {
  const fn = 'routingAttention';
  const s = checkQkv(fn, qk, qk, v);
  const c = checkCentroids(fn, centroids, s.heads, s.dim);
  checkBlock(fn, 'window', options.window);
  const n = s.queries;
  const scale = checkScale(fn, options.scale, s.dim);
  const causal = options.causal ?? true;
  const { batch: B, heads: H, dim: D, valueDim: E } = s;
  const xh = normaliseShared(qk);
  const sim = tf.tidy(() => matmul(xh.reshape([B, H, n, D]).transpose([1, 0, 2, 3]).reshape([H, B * n, D]), centroids, false, true)
    .reshape([H, B, n, c]).transpose([1, 0, 2, 3]).dataSync()); // [b, h, n, c]
  const clusters = route(fn, sim, s, n, c, options, causal);
  const w = Math.max(1, ...clusters.map((m) => m.length));
  const rows = new Int32Array(B * H * c * w);
  const bias = new Float32Array(B * H * c * w * w);
  const allowed = new Float32Array(B * H * c * w * w);
  const count = new Int32Array(B * H * n);
  let pairs = 0;
  bias.fill(MASKED_SCORE);
  clusters.forEach((mem, ci) => {
    const bh = Math.floor(ci / c);
    for (let t = mem.length; t < w; t++) rows[ci * w + t] = bh * n;
    mem.forEach((p, t) => {
      rows[ci * w + t] = bh * n + p;
      count[bh * n + p]++;
      for (let u = 0; u < mem.length; u++) {
        const ok = !causal || mem[u] <= p;
        bias[(ci * w + t) * w + u] = ok ? 0 : MASKED_SCORE;
        allowed[(ci * w + t) * w + u] = ok ? 1 : 0;
        if (ok) pairs++;
      }
    });
  });
  // Scatter-mean back to positions: occurrence r of each token reads its r-th cluster slot (or a zero row).
  const maxOcc = Math.max(1, ...count);
  const zeroRow = B * H * c * w;
  const occ = Array.from({ length: maxOcc }, () => new Int32Array(B * H * n).fill(zeroRow));
  const seen = new Int32Array(B * H * n);
  clusters.forEach((mem, ci) => mem.forEach((p, t) => {
    const r = Math.floor(ci / c) * n + p;
    occ[seen[r]++][r] = ci * w + t;
  }));
  const inv = Float32Array.from(count, (x) => (x > 0 ? 1 / x : 0));
  const output = tf.tidy(() => {
    const xs = gatherRows(xh.reshape([B * H * n, D]) as tf.Tensor2D, rows).reshape([B * H * c, w, D]);
    const vs = gatherRows(v.reshape([B * H * n, E]) as tf.Tensor2D, rows).reshape([B * H * c, w, E]);
    const sc = matmul(xs, xs, false, true).mul(scale).add(tf.tensor3d(bias, [B * H * c, w, w]));
    const o = matmul(tf.softmax(sc).mul(tf.tensor3d(allowed, [B * H * c, w, w])), vs).reshape([B * H * c * w, E]);
    const padded = tf.concat([o, tf.zeros([1, E])], 0) as tf.Tensor2D;
    let acc = gatherRows(padded, occ[0]);
    for (let r = 1; r < maxOcc; r++) acc = acc.add(gatherRows(padded, occ[r]));
    return acc.mul(tf.tensor2d(inv, [B * H * n, 1])).reshape([B, H, n, E]) as tf.Tensor4D;
  });
  xh.dispose();
  const member = clusters.map((mem) => new Set(mem));
  return {
    output,
    clusters,
    covers: (b, h, i, j) => {
      for (let cl = 0; cl < c; cl++) {
        const set = member[(b * H + h) * c + cl];
        if (set.has(i) && set.has(j)) return true;
      }
      return false;
    },
    stats: { method: 'routing', pairs, densePairs: densePairs(s, causal), selectionPairs: B * H * n * c },
  };
}

/** Float64 loop reference of `routingAttention`: its own normalisation, similarities, routing and softmax. */
export function routingAttentionNaive(qk: tf.Tensor, v: tf.Tensor, centroids: tf.Tensor, options: RoutingOptions = {}): { output: Float64Array; clusters: number[][] } {
  const fn = 'routingAttentionNaive';
  const s = checkQkv(fn, qk, qk, v);
  const c = checkCentroids(fn, centroids, s.heads, s.dim);
  const n = s.queries;
  const scale = checkScale(fn, options.scale, s.dim);
  const causal = options.causal ?? true;
  const { batch: B, heads: H, dim: D, valueDim: E } = s;
  const x = f64(qk);
  const vv = f64(v);
  const mu = f64(centroids);
  const xh = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let nn = 0;
    for (let d = 0; d < D; d++) nn += x[r * D + d] ** 2;
    for (let d = 0; d < D; d++) xh[r * D + d] = (x[r * D + d] / Math.sqrt(nn + 1e-12)) * Math.sqrt(D);
  }
  const sim = new Float64Array(B * H * n * c);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < n; i++) for (let cl = 0; cl < c; cl++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += xh[((b * H + h) * n + i) * D + d] * mu[(h * c + cl) * D + d];
    sim[((b * H + h) * n + i) * c + cl] = dot;
  }
  const clusters = route(fn, sim, s, n, c, options, causal);
  const output = new Float64Array(B * H * n * E);
  const count = new Int32Array(B * H * n);
  const row = (a: Float64Array, bh: number, p: number, dim: number) => a.subarray((bh * n + p) * dim, (bh * n + p + 1) * dim);
  clusters.forEach((mem, ci) => {
    const bh = Math.floor(ci / c);
    for (const p of mem) {
      const keys = mem.filter((j) => !causal || j <= p);
      const { out } = naiveAttendRow(row(xh, bh, p, D), keys.map((j) => row(xh, bh, j, D)), keys.map((j) => row(vv, bh, j, E)), scale);
      for (let e = 0; e < E; e++) output[(bh * n + p) * E + e] += out[e];
      count[bh * n + p]++;
    }
  });
  for (let r = 0; r < B * H * n; r++) if (count[r] > 1) for (let e = 0; e < E; e++) output[r * E + e] /= count[r];
  return { output, clusters };
}

/** Unit vectors x / ‖x‖ of the normalised shared queries/keys, and each one's nearest centroid. */
function assign(xh: tf.Tensor, centroids: tf.Tensor): { unit: tf.Tensor; nearest: Int32Array } {
  return tf.tidy(() => {
    const [B, H, n, D] = xh.shape;
    const c = centroids.shape[1] as number;
    const unit = xh.div(xh.square().sum(-1, true).sqrt().add(1e-12));
    const sim = matmul(unit.transpose([1, 0, 2, 3]).reshape([H, B * n, D]), centroids, false, true); // [h, b*n, c]
    return { unit, nearest: Int32Array.from(sim.reshape([H, B * n, c]).argMax(-1).dataSync()) };
  });
}

/**
 * One online k-means step (no gradient): centroids [h, c, d] -> new centroids [h, c, d] from the normalised shared
 * queries/keys xh [b, h, n, d]. Clusters that received no vector keep their centroid.
 */
export function kmeansUpdate(centroids: tf.Tensor, xh: tf.Tensor, decay = 0.999): tf.Tensor3D {
  const fn = 'kmeansUpdate';
  if (xh.rank !== 4) throw new ShapeError(`${fn}: xh must have rank 4 [batch, heads, positions, dim], but has shape ${fmt(xh.shape)}`);
  const [B, H, n, D] = xh.shape;
  const c = checkCentroids(fn, centroids, H, D);
  if (!(decay >= 0 && decay <= 1)) throw new ShapeError(`${fn}: decay must be in [0, 1], got ${decay}`);
  const { unit, nearest } = assign(xh, centroids);
  const u = unit.transpose([1, 0, 2, 3]).reshape([H, B * n, D]);
  const ux = u.dataSync();
  unit.dispose();
  u.dispose();
  const mu = centroids.dataSync();
  const next = new Float32Array(H * c * D);
  for (let h = 0; h < H; h++) {
    const sum = new Float64Array(c * D);
    const cnt = new Int32Array(c);
    for (let i = 0; i < B * n; i++) {
      const cl = nearest[h * B * n + i];
      cnt[cl]++;
      for (let d = 0; d < D; d++) sum[cl * D + d] += ux[(h * B * n + i) * D + d];
    }
    for (let cl = 0; cl < c; cl++) {
      const at = (h * c + cl) * D;
      let norm = 0;
      for (let d = 0; d < D; d++) {
        const m = cnt[cl] ? decay * mu[at + d] + ((1 - decay) * sum[cl * D + d]) / cnt[cl] : mu[at + d];
        next[at + d] = m;
        norm += m * m;
      }
      const inv = norm > 0 ? 1 / Math.sqrt(norm) : 1;
      for (let d = 0; d < D; d++) next[at + d] *= inv;
    }
  }
  return tf.tensor3d(next, [H, c, D]);
}

/** Commitment loss mean ‖x̂/‖x̂‖ − μ(x)‖² over tokens and heads (centroids held fixed); multiply by β. */
export function commitmentLoss(xh: tf.Tensor, centroids: tf.Tensor): tf.Scalar {
  const [B, H, n, D] = xh.shape;
  checkCentroids('commitmentLoss', centroids, H, D);
  const { nearest } = tf.tidy(() => {
    const a = assign(xh, centroids);
    a.unit.dispose();
    return { nearest: a.nearest };
  });
  return tf.tidy(() => {
    const c = centroids.shape[1] as number;
    const rows = Int32Array.from(nearest, (cl, i) => Math.floor(i / (B * n)) * c + cl);
    const target = gatherRows(constant(centroids).reshape([H * c, D]) as tf.Tensor2D, rows).reshape([H, B, n, D]).transpose([1, 0, 2, 3]);
    const unit = xh.div(xh.square().sum(-1, true).sqrt().add(1e-12));
    return unit.sub(target).square().sum(-1).mean() as tf.Scalar;
  });
}

/** Random unit centroids [h, c, d] from a seed. */
export function initCentroids(heads: number, clusters: number, dim: number, seed = 0): tf.Tensor3D {
  return tf.tidy(() => {
    const r = tf.randomNormal([heads, clusters, dim], 0, 1, 'float32', seed);
    return r.div(r.square().sum(-1, true).sqrt()) as tf.Tensor3D;
  });
}

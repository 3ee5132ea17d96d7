/**
 * Routing attention: content-based sparse attention by online k-means.
 *
 * Paper: Roy, Saffar, Vaswani & Grangier, TACL 2021, "Efficient Content-Based Sparse Attention with Routing
 * Transformers", https://arxiv.org/abs/2003.05997 (official code: google-research/google-research,
 * routing_transformer/utils.py; a reference re-implementation: lucidrains/routing-transformer).
 *
 * Queries and keys are shared (Q = K = x) and normalised, x̂ = √d · x / ‖x‖ (the official code layer-normalises them
 * without a learned scale). Each head keeps c unit centroids μ, and attention is exact softmax among the members of a
 * cluster. A token may sit in several clusters (its output is the mean) or in none (zero output, which is why the
 * paper mixes routing heads with local heads). Three routings (`assignment`):
 *   'balanced' (top-w): centroid μ_c takes the w tokens of the whole sequence with the largest x̂ · μ_c (w ≈ n / c), so
 *       every cluster has w members, and inside a cluster the mask is causal by position. This is what the released
 *       code computes in training (`gather_cluster_attention_items`: top_k over every position, then a lower-triangular
 *       bias). Under a causal mask it LEAKS: whether token i makes its cluster's top w depends on the tokens after it,
 *       so changing a future token can push i (or one of i's keys) out of a cluster and change i's output (the test
 *       "the paper's training routing leaks" shows it). Without a causal mask it is the default; with one it needs
 *       `allowLeak: true`.
 *   'prefix' (the default with causal): the released code's decoding-time routing (`cluster_items(blank_future)` sets
 *       the distance of every position after the decoded one to 1e9 before the same top_k), applied at every position:
 *       at position i, cluster c holds the top w of the tokens 0..i; i attends inside each cluster it belongs to at its
 *       own step, to the keys j ≤ i that are still in that cluster's top w at step i. Every cluster holds exactly
 *       min(w, i + 1) members at every step (balanced), and nothing after i is read, so no future token changes an
 *       earlier output. A token joins on arrival only if it beats the weakest member; members leave when w better
 *       ones have come. Training with 'balanced' and decoding with 'prefix' (the released code's pair) therefore
 *       train and test two different functions.
 *   'nearest': each token joins its nearest centroid, argmax_c x̂ · μ_c (no balance: one cluster may take most tokens);
 *       causal like 'prefix'. This was this library's causal default before the paper's routing was implemented.
 * Cost O(n·c·d) to route (plus n·c·log w for 'prefix'), then Σ_c |c|²·d to attend: with balanced clusters and c ≈ √n,
 * O(n^1.5 d) for 'balanced'; 'prefix' keeps the members of all steps, about w·(1 + ln(n/w)) per cluster.
 *
 * Centroids follow the routed vectors by an exponential moving average of their members' unit vectors,
 *   μ_c ← normalise(λ μ_c + (1 − λ)/2 · mean{ Q̂_i ∈ c } + (1 − λ)/2 · mean{ K̂_j ∈ c }),   λ = 0.999 in the paper
 * (membership by nearest centroid, as in both codes' update; means rather than the official code's EMA of sums and
 * counts, so the step does not grow with the batch; with Q = K the halves coincide), and a commitment loss
 * β ‖x̂/‖x̂‖ − μ(x)‖² (β = 1e-4 in the paper) pulls vectors towards their centroid.
 *
 * Shape legend: b batch, h heads, n positions, d head dim, e value dim, c clusters, w tokens per cluster.
 *   q [b, h, n, d], k [b, h, n, d] (the same tensor when shared), v [b, h, n, e], centroids [h, c, d] -> output [b, h, n, e]
 * With one cluster and w = n (every token in it) the result equals dense (causal) attention on (x̂, x̂, v).
 */
import * as tf from '@tensorflow/tfjs';
import { checkQkv, MASKED_SCORE } from '../../../attention/dense.js';
import { naiveAttention } from '../../../attention/naive.js';
import { matmul } from '../../../backend/ops.js';
import { ParamFactory } from '../../../layers/params.js';
import * as masks from '../../../masks/index.js';
import { fmt, ShapeError } from '../../../util/shapes.js';
import { densePairs, type SparseResult } from '../cost.js';
import { constant, gatherRows, readTidy } from '../gather.js';
import { ropeReasons, type SparseMethod } from '../method.js';
import { f64, naiveAttendRow } from '../naive.js';
import { checkBlock, checkScale, rejectRope, type SparseBaseOptions } from '../options.js';

/** How tokens join clusters; see the module header. */
export type RoutingAssignment = 'prefix' | 'balanced' | 'nearest';
export const ROUTING_ASSIGNMENTS: readonly RoutingAssignment[] = ['prefix', 'balanced', 'nearest'];

export interface RoutingOptions extends SparseBaseOptions {
  /**
   * 'prefix' (default with causal: the released code's decoding-time routing at every position), 'balanced' (default
   * without causal: top w over the whole sequence, the released code's training-time routing; under a causal mask it
   * leaks future tokens and needs `allowLeak`), or 'nearest' (each token in its nearest cluster; unbalanced).
   */
  assignment?: RoutingAssignment;
  /** Balanced and prefix routing: tokens per cluster (default ceil(n / clusters)). */
  window?: number;
  /** Allow 'balanced' under a causal mask, where a future token can change an earlier output (see the header). */
  allowLeak?: boolean;
  /**
   * What the softmax inside a cluster compares (routing always uses the normalised vectors):
   *   'both' (default): x̂_i · x̂_j, the paper's description; every score lies in [-√d, √d] · scale, so a head cannot
   *       sharpen beyond e^{2√d·scale} (about e^8 at d = 16), which leaves a needle among a hundred keys at a third of
   *       the weight;
   *   'keys': q_i · k̂_j with unnormalised queries (Reformer's shared-QK attention, and the public Routing Transformer
   *       code), so the query's norm is a learned temperature;
   *   'none': q_i · k_j, plain attention inside the clusters (separate queries and keys in the public code).
   */
  normalise?: 'both' | 'keys' | 'none';
  /**
   * Shared queries/keys make x_i · x_i the largest score, so a token mostly attends to itself. With `excludeSelf`
   * (Reformer's rule) a token attends to itself only when no other key is in reach.
   */
  excludeSelf?: boolean;
}

export interface RoutingResult extends SparseResult {
  /** Query members of each cluster, ascending positions: clusters[(b * h + head) * c + cluster]. */
  clusters: number[][];
  /** Key members (the same arrays when q and k are shared). */
  keyClusters: number[][];
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
    throw new ShapeError(
      `${fn}: centroids must have shape [heads=${heads}, clusters, dim=${dim}], but has ${fmt(centroids.shape)}`,
    );
  }
  return centroids.shape[1] as number;
}

/** Balanced routing: for each (b, head, centroid) the w tokens with the largest similarity, sorted by position. */
export function balancedRouting(
  sim: ArrayLike<number>,
  batch: number,
  heads: number,
  n: number,
  c: number,
  w: number,
): number[][] {
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

/**
 * Prefix routing: per (b, head, centroid), the tokens that were in the cluster's top w at some step (they join on
 * arrival or never), ascending, and for each the step at which w better tokens had arrived (`leave`; n if never).
 * Token j is a member at step i exactly when j ≤ i < leave. Ties go to the earlier position, as in `balancedRouting`.
 */
export function prefixRouting(
  sim: ArrayLike<number>,
  batch: number,
  heads: number,
  n: number,
  c: number,
  w: number,
): { members: number[][]; leave: number[][] } {
  const members: number[][] = [];
  const leave: number[][] = [];
  for (let bh = 0; bh < batch * heads; bh++) {
    for (let cl = 0; cl < c; cl++) {
      const s = (i: number) => sim[(bh * n + i) * c + cl];
      // Min-heap of the current members, weakest on top: lower similarity, or the later position on a tie.
      const heap: number[] = [];
      const weaker = (a: number, b: number) => s(a) < s(b) || (s(a) === s(b) && a > b);
      const swap = (a: number, b: number) => ([heap[a], heap[b]] = [heap[b], heap[a]]);
      const up = (at: number) => {
        while (at > 0 && weaker(heap[at], heap[(at - 1) >> 1])) {
          swap(at, (at - 1) >> 1);
          at = (at - 1) >> 1;
        }
      };
      const down = (at: number) => {
        for (;;) {
          const [l, r] = [2 * at + 1, 2 * at + 2];
          let m = at;
          if (l < heap.length && weaker(heap[l], heap[m])) m = l;
          if (r < heap.length && weaker(heap[r], heap[m])) m = r;
          if (m === at) return;
          swap(at, m);
          at = m;
        }
      };
      const mem: number[] = [];
      const out = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        if (heap.length < w) {
          heap.push(i);
          up(heap.length - 1);
        } else if (w > 0 && weaker(heap[0], i)) {
          out.set(heap[0], i);
          heap[0] = i;
          down(0);
        } else continue;
        mem.push(i);
      }
      members.push(mem);
      leave.push(mem.map((j) => out.get(j) ?? n));
    }
  }
  return { members, leave };
}

/** Cluster members (ascending positions) and, for prefix routing, the step at which each leaves. */
interface Routed {
  members: number[][];
  leave?: number[][];
}

/** The routing an option set asks for, checked against the mask, and its tokens per cluster. */
function checkAssignment(
  fn: string,
  options: RoutingOptions,
  causal: boolean,
  n: number,
  c: number,
): { assignment: RoutingAssignment; w: number } {
  const assignment = options.assignment ?? (causal ? 'prefix' : 'balanced');
  if (!ROUTING_ASSIGNMENTS.includes(assignment))
    throw new ShapeError(
      `${fn}: options.assignment must be one of ${ROUTING_ASSIGNMENTS.join(', ')}, got '${String(assignment)}'`,
    );
  if (assignment === 'balanced' && causal && !options.allowLeak)
    throw new ShapeError(
      `${fn}: options.assignment 'balanced' under a causal mask lets future tokens change earlier clusters (the released code's training-time routing); use 'prefix' (its decoding-time routing, the default) or 'nearest', or pass options.allowLeak: true`,
    );
  if (assignment === 'prefix' && !causal)
    throw new ShapeError(
      `${fn}: options.assignment 'prefix' routes each query among the tokens before it and needs a causal mask; use 'balanced' without one`,
    );
  return { assignment, w: Math.min(n, options.window ?? Math.ceil(n / c)) };
}

function route(
  fn: string,
  sim: ArrayLike<number>,
  s: { batch: number; heads: number },
  n: number,
  c: number,
  options: RoutingOptions,
  causal: boolean,
): Routed {
  const { assignment, w } = checkAssignment(fn, options, causal, n, c);
  if (assignment === 'balanced') return { members: balancedRouting(sim, s.batch, s.heads, n, c, w) };
  if (assignment === 'prefix') return prefixRouting(sim, s.batch, s.heads, n, c, w);
  return { members: nearestRouting(sim, s.batch, s.heads, n, c) };
}

function similarities(xh: tf.Tensor, centroids: tf.Tensor): Float32Array {
  return readTidy(() => {
    const [B, H, n, D] = xh.shape;
    const c = centroids.shape[1] as number;
    return matmul(xh.transpose([1, 0, 2, 3]).reshape([H, B * n, D]), centroids, false, true)
      .reshape([H, B, n, c])
      .transpose([1, 0, 2, 3]); // [b, h, n, c]
  });
}

function checkRouting(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, centroids: tf.Tensor) {
  const s = checkQkv(fn, q, k, v);
  if (s.kvHeads !== s.heads || s.keys !== s.queries) {
    throw new ShapeError(
      `${fn}: q has shape ${fmt(q.shape)} and k has ${fmt(k.shape)}; routing attention needs as many key heads and keys as query heads and queries`,
    );
  }
  return { s, c: checkCentroids(fn, centroids, s.heads, s.dim) };
}

/**
 * Routing attention; see the module header. Pass the same tensor as q and k for the paper's shared queries/keys;
 * with separate ones, queries and keys are routed separately and query i sees key j when both joined the same cluster.
 */
export function routingAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  centroids: tf.Tensor,
  options: RoutingOptions = {},
): RoutingResult {
  const fn = 'routingAttention';
  rejectRope(fn, options);
  const { s, c } = checkRouting(fn, q, k, v, centroids);
  checkBlock(fn, 'window', options.window);
  const n = s.queries;
  const scale = checkScale(fn, options.scale, s.dim);
  const causal = options.causal ?? true;
  const shared = q === k;
  const { batch: B, heads: H, dim: D, valueDim: E } = s;
  const qh = normaliseShared(q);
  const kh = shared ? qh : normaliseShared(k);
  const qRouted = route(fn, similarities(qh, centroids), s, n, c, options, causal);
  const kRouted = shared ? qRouted : route(fn, similarities(kh, centroids), s, n, c, options, causal);
  const clusters = qRouted.members;
  const keyClusters = kRouted.members;
  // Key u of cluster ci is still a member at step p (prefix routing; always otherwise).
  const alive = (ci: number, u: number, p: number) => !kRouted.leave || p < kRouted.leave[ci][u];
  const qScore = options.normalise === 'keys' || options.normalise === 'none' ? q : qh;
  const kScore = options.normalise === 'none' ? k : kh;
  // Blocks of queries against keys. A cluster is one block, except under prefix routing, where its members of all steps
  // (about w·(1 + ln(n/w))) are cut into runs of w queries: the keys alive during a run are the w members at its first
  // step plus those that join during it, so each block is at most w × 2w instead of the whole cluster squared.
  const w = Math.min(n, options.window ?? Math.ceil(n / c));
  const blocks: { ci: number; qs: number[]; ks: number[] }[] = [];
  clusters.forEach((mem, ci) => {
    const keys = keyClusters[ci];
    if (!kRouted.leave) {
      if (mem.length) blocks.push({ ci, qs: mem.map((_, t) => t), ks: keys.map((_, u) => u) });
      return;
    }
    for (let t0 = 0; t0 < mem.length; t0 += w) {
      const qs = mem.slice(t0, t0 + w).map((_, t) => t0 + t);
      const [first, last] = [mem[t0], mem[qs[qs.length - 1]]];
      const ks = keys.map((_, u) => u).filter((u) => keys[u] <= last && alive(ci, u, first));
      blocks.push({ ci, qs, ks });
    }
  });
  const wq = Math.max(1, ...blocks.map((x) => x.qs.length));
  const wk = Math.max(1, ...blocks.map((x) => x.ks.length));
  const X = Math.max(1, blocks.length);
  const qRows = new Int32Array(X * wq);
  const kRows = new Int32Array(X * wk);
  const bias = new Float32Array(X * wq * wk).fill(MASKED_SCORE);
  const allowed = new Float32Array(X * wq * wk);
  const count = new Int32Array(B * H * n);
  // Scatter-mean back to positions: occurrence r of each query reads its r-th block slot (or a zero row).
  const slots: number[][] = Array.from({ length: B * H * n }, () => []);
  let pairs = 0;
  blocks.forEach(({ ci, qs, ks }, x) => {
    const bh = Math.floor(ci / c);
    const mem = clusters[ci];
    const keys = keyClusters[ci];
    const leave = kRouted.leave?.[ci];
    // The block's key positions and the step each leaves its cluster (n: never), as plain arrays for the inner loop.
    const kPos = Int32Array.from(ks, (u) => keys[u]);
    const kLeave = Int32Array.from(ks, (u) => (leave ? leave[u] : n));
    qRows.fill(bh * n, x * wq, (x + 1) * wq);
    kRows.fill(bh * n, x * wk, (x + 1) * wk);
    for (let s = 0; s < kPos.length; s++) kRows[x * wk + s] = bh * n + kPos[s];
    for (let r = 0; r < qs.length; r++) {
      const p = mem[qs[r]];
      const row = (x * wq + r) * wk;
      qRows[x * wq + r] = bh * n + p;
      count[bh * n + p]++;
      slots[bh * n + p].push(x * wq + r);
      let others = false;
      let self = -1;
      for (let s = 0; s < kPos.length; s++) {
        if ((causal && kPos[s] > p) || p >= kLeave[s]) continue;
        if (kPos[s] === p) self = s;
        else others = true;
        bias[row + s] = 0;
        allowed[row + s] = 1;
        pairs++;
      }
      if (options.excludeSelf && others && self >= 0) {
        bias[row + self] = MASKED_SCORE;
        allowed[row + self] = 0;
        pairs--;
      }
    }
  });
  const maxOcc = Math.max(1, ...count);
  const zeroRow = X * wq;
  const occ = Array.from({ length: maxOcc }, (_, o) => Int32Array.from(slots, (sl) => sl[o] ?? zeroRow));
  const inv = Float32Array.from(count, (x) => (x > 0 ? 1 / x : 0));
  const output = tf.tidy(() => {
    const qs = gatherRows(qScore.reshape([B * H * n, D]) as tf.Tensor2D, qRows).reshape([X, wq, D]);
    const ks = gatherRows(kScore.reshape([B * H * n, D]) as tf.Tensor2D, kRows).reshape([X, wk, D]);
    const vs = gatherRows(v.reshape([B * H * n, E]) as tf.Tensor2D, kRows).reshape([X, wk, E]);
    const sc = matmul(qs, ks, false, true)
      .mul(scale)
      .add(tf.tensor3d(bias, [X, wq, wk]));
    const o = matmul(tf.softmax(sc).mul(tf.tensor3d(allowed, [X, wq, wk])), vs).reshape([X * wq, E]);
    const padded = tf.concat([o, tf.zeros([1, E])], 0) as tf.Tensor2D;
    let acc = gatherRows(padded, occ[0]);
    for (let r = 1; r < maxOcc; r++) acc = acc.add(gatherRows(padded, occ[r]));
    return acc.mul(tf.tensor2d(inv, [B * H * n, 1])).reshape([B, H, n, E]) as tf.Tensor4D;
  });
  qh.dispose();
  if (!shared) kh.dispose();
  const qSets = clusters.map((mem) => new Set(mem));
  const kIndex = keyClusters.map((mem) => new Map(mem.map((j, u) => [j, u])));
  return {
    output,
    clusters,
    keyClusters,
    covers: (b, h, i, j) => {
      if (causal && j > i) return false;
      for (let cl = 0; cl < c; cl++) {
        const at = (b * H + h) * c + cl;
        const u = kIndex[at].get(j);
        if (qSets[at].has(i) && u !== undefined && alive(at, u, i)) return true;
      }
      return false;
    },
    stats: {
      method: 'routing',
      pairs,
      densePairs: densePairs(s, causal),
      selectionPairs: B * H * n * c * (shared ? 1 : 2),
    },
  };
}

/** Float64 loop reference of `routingAttention`: its own normalisation, similarities, routing and softmax. */
export function routingAttentionNaive(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  centroids: tf.Tensor,
  options: RoutingOptions = {},
): { output: Float64Array; clusters: number[][] } {
  const fn = 'routingAttentionNaive';
  rejectRope(fn, options);
  const { s, c } = checkRouting(fn, q, k, v, centroids);
  const n = s.queries;
  const scale = checkScale(fn, options.scale, s.dim);
  const causal = options.causal ?? true;
  const { batch: B, heads: H, dim: D, valueDim: E } = s;
  const vv = f64(v);
  const mu = f64(centroids);
  const norm = (t: tf.Tensor) => {
    const x = f64(t);
    const xh = new Float64Array(x.length);
    for (let r = 0; r < x.length / D; r++) {
      let nn = 0;
      for (let d = 0; d < D; d++) nn += x[r * D + d] ** 2;
      for (let d = 0; d < D; d++) xh[r * D + d] = (x[r * D + d] / Math.sqrt(nn + 1e-12)) * Math.sqrt(D);
    }
    return xh;
  };
  const sims = (xh: Float64Array) => {
    const sim = new Float64Array(B * H * n * c);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < n; i++)
          for (let cl = 0; cl < c; cl++) {
            let dot = 0;
            for (let d = 0; d < D; d++) dot += xh[((b * H + h) * n + i) * D + d] * mu[(h * c + cl) * D + d];
            sim[((b * H + h) * n + i) * c + cl] = dot;
          }
    return sim;
  };
  const qh = norm(q);
  const kh = q === k ? qh : norm(k);
  const { assignment, w } = checkAssignment(fn, options, causal, n, c);
  const [simQ, simK] = [sims(qh), q === k ? null : sims(kh)];
  // Members of cluster cl of row bh as seen at step p, by brute force: the top w of tokens 0..p ('prefix') or of all
  // tokens ('balanced'), ties to the earlier position; or the tokens whose nearest centroid is cl ('nearest').
  const membersAt = (sim: Float64Array, bh: number, cl: number, p: number): number[] => {
    const at = (i: number, cc: number) => sim[(bh * n + i) * c + cc];
    if (assignment === 'nearest')
      return Array.from({ length: n }, (_, i) => i).filter((i) => {
        for (let cc = 0; cc < c; cc++) if (at(i, cc) > at(i, cl) || (at(i, cc) === at(i, cl) && cc < cl)) return false;
        return true;
      });
    const upTo = assignment === 'prefix' ? p : n - 1;
    return Array.from({ length: upTo + 1 }, (_, i) => i)
      .sort((a, b) => at(b, cl) - at(a, cl) || a - b)
      .slice(0, w);
  };
  const qScore = options.normalise === 'keys' || options.normalise === 'none' ? f64(q) : qh;
  const kScore = options.normalise === 'none' ? f64(k) : kh;
  const output = new Float64Array(B * H * n * E);
  const count = new Int32Array(B * H * n);
  const clusters: number[][] = Array.from({ length: B * H * c }, () => []);
  const row = (a: Float64Array, bh: number, p: number, dim: number) =>
    a.subarray((bh * n + p) * dim, (bh * n + p + 1) * dim);
  for (let bh = 0; bh < B * H; bh++) {
    for (let p = 0; p < n; p++) {
      for (let cl = 0; cl < c; cl++) {
        if (!membersAt(simQ, bh, cl, p).includes(p)) continue;
        clusters[bh * c + cl].push(p);
        let keys = membersAt(simK ?? simQ, bh, cl, p).filter((j) => !causal || j <= p);
        if (options.excludeSelf && keys.some((j) => j !== p)) keys = keys.filter((j) => j !== p);
        const { out } = naiveAttendRow(
          row(qScore, bh, p, D),
          keys.map((j) => row(kScore, bh, j, D)),
          keys.map((j) => row(vv, bh, j, E)),
          scale,
          E,
        );
        for (let e = 0; e < E; e++) output[(bh * n + p) * E + e] += out[e];
        count[bh * n + p]++;
      }
    }
  }
  for (let r = 0; r < B * H * n; r++) if (count[r] > 1) for (let e = 0; e < E; e++) output[r * E + e] /= count[r];
  return { output, clusters };
}

/** Unit vectors x / ‖x‖ of the normalised shared queries/keys, and each one's nearest centroid. */
function assign(xh: tf.Tensor, centroids: tf.Tensor): { unit: tf.Tensor; nearest: Int32Array } {
  const [B, H, n, D] = xh.shape;
  const c = centroids.shape[1] as number;
  const unit = tf.tidy(() => xh.div(xh.square().sum(-1, true).sqrt().add(1e-12)));
  const nearest = Int32Array.from(
    readTidy(() =>
      matmul(unit.transpose([1, 0, 2, 3]).reshape([H, B * n, D]), centroids, false, true)
        .reshape([H, B * n, c])
        .argMax(-1),
    ),
  );
  return { unit, nearest };
}

/** Per head and cluster: the mean unit vector of the members (nearest centroid) and their count. */
function clusterMeans(xh: tf.Tensor, centroids: tf.Tensor): { mean: Float64Array; count: Int32Array } {
  const [B, H, n, D] = xh.shape;
  const c = centroids.shape[1] as number;
  const { unit, nearest } = assign(xh, centroids);
  const ux = readTidy(() => unit.transpose([1, 0, 2, 3]).reshape([H, B * n, D]));
  unit.dispose();
  const mean = new Float64Array(H * c * D);
  const count = new Int32Array(H * c);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < B * n; i++) {
      const cl = h * c + nearest[h * B * n + i];
      count[cl]++;
      for (let d = 0; d < D; d++) mean[cl * D + d] += ux[(h * B * n + i) * D + d];
    }
  }
  count.forEach((k, cl) => {
    if (k) for (let d = 0; d < D; d++) mean[cl * D + d] /= k;
  });
  return { mean, count };
}

/**
 * One online k-means step (no gradient): centroids [h, c, d] -> new unit centroids [h, c, d] from the normalised
 * queries qh and keys kh [b, h, n, d] (omit kh when they are shared):
 *   μ ← normalise(λ μ + (1−λ)/2 · mean(Q̂ ∈ μ) + (1−λ)/2 · mean(K̂ ∈ μ)),
 * where a side with no member in the cluster contributes μ itself (so an empty cluster keeps its centroid).
 */
export function kmeansUpdate(centroids: tf.Tensor, qh: tf.Tensor, decay = 0.999, kh?: tf.Tensor): tf.Tensor3D {
  const fn = 'kmeansUpdate';
  for (const [name, x] of [
    ['qh', qh],
    ['kh', kh ?? qh],
  ] as const) {
    if (x.rank !== 4)
      throw new ShapeError(
        `${fn}: ${name} must have rank 4 [batch, heads, positions, dim], but has shape ${fmt(x.shape)}`,
      );
  }
  const [, H, , D] = qh.shape;
  const c = checkCentroids(fn, centroids, H, D);
  if (!(decay >= 0 && decay <= 1)) throw new ShapeError(`${fn}: decay must be in [0, 1], got ${decay}`);
  const sides = kh ? [clusterMeans(qh, centroids), clusterMeans(kh, centroids)] : [clusterMeans(qh, centroids)];
  const mu = centroids.dataSync();
  const next = new Float32Array(H * c * D);
  for (let cl = 0; cl < H * c; cl++) {
    let norm = 0;
    for (let d = 0; d < D; d++) {
      let m = decay * mu[cl * D + d];
      for (const side of sides)
        m += ((1 - decay) / sides.length) * (side.count[cl] ? side.mean[cl * D + d] : mu[cl * D + d]);
      next[cl * D + d] = m;
      norm += m * m;
    }
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 1;
    for (let d = 0; d < D; d++) next[cl * D + d] *= inv;
  }
  return tf.tensor3d(next, [H, c, D]);
}

/** Commitment loss mean ‖x̂/‖x̂‖ − μ(x)‖² over tokens and heads (centroids held fixed); multiply by β. */
export function commitmentLoss(xh: tf.Tensor, centroids: tf.Tensor): tf.Scalar {
  const [B, H, n, D] = xh.shape;
  checkCentroids('commitmentLoss', centroids, H, D);
  const { unit: u0, nearest } = assign(xh, centroids);
  u0.dispose();
  return tf.tidy(() => {
    const c = centroids.shape[1] as number;
    const rows = Int32Array.from(nearest, (cl, i) => Math.floor(i / (B * n)) * c + cl);
    const target = gatherRows(constant(centroids).reshape([H * c, D]) as tf.Tensor2D, rows)
      .reshape([H, B, n, D])
      .transpose([1, 0, 2, 3]);
    const unit = xh.div(xh.square().sum(-1, true).sqrt().add(1e-12));
    return unit.sub(target).square().sum(-1).mean() as tf.Scalar;
  });
}

/** Random unit centroids [h, c, d] from a seed (a plain tensor: online k-means replaces it rather than training it). */
export function initCentroids(heads: number, clusters: number, dim: number, seed = 0): tf.Tensor3D {
  const f = new ParamFactory({ scope: 'routing', seed: { kind: 'counter', start: seed } });
  return tf.tidy(() => {
    const r = f.draw('centroids', [heads, clusters, dim], { normal: 1 });
    return r.div(r.square().sum(-1, true).sqrt()) as tf.Tensor3D;
  });
}

/**
 * Routing's options as a method: the routing (default: the paper's balanced top-w routing in its non-leaking 'prefix'
 * form under a causal mask) plus the number of centroids per head (`clusters`, default 8).
 */
export type RoutingMethodOptions = RoutingOptions & { clusters?: number };

/** Routing attention as a `SparseMethod` (see ../method.ts); its state is the centroids [h, c, d]. */
export const routingMethod: SparseMethod<RoutingMethodOptions, tf.Tensor3D> = {
  name: 'routing',
  kind: 'paper',
  paper: {
    citation: 'Roy et al. 2021, Efficient Content-Based Sparse Attention with Routing Transformers',
    url: 'https://arxiv.org/abs/2003.05997',
  },
  attend: (q, k, v, o, centroids) => routingAttention(q, k, v, centroids, o),
  reference: (q, k, v, o, centroids) => routingAttentionNaive(q, k, v, centroids, o).output,
  supports(q, k, _v, o) {
    const reasons = ropeReasons(o, q.shape[3] as number, false);
    if (k.shape[1] !== q.shape[1] || k.shape[2] !== q.shape[2])
      reasons.push(
        `q has shape ${fmt(q.shape)} and k has ${fmt(k.shape)}; routing attention needs as many key heads and keys as query heads and queries`,
      );
    if (o.assignment === 'balanced' && (o.causal ?? true) && !o.allowLeak)
      reasons.push(
        "options.assignment 'balanced' under a causal mask lets future tokens change earlier clusters; use 'prefix' (the default) or 'nearest', or pass options.allowLeak: true",
      );
    if (o.assignment === 'prefix' && o.causal === false)
      reasons.push("options.assignment 'prefix' needs a causal mask; use 'balanced' without one");
    return reasons;
  },
  state: {
    // The paper's online k-means follows the data it routes: fitted to each input (six full steps, decay 0).
    fitTo: 'input',
    create(o, ctx) {
      let c = initCentroids(ctx.heads, o.clusters ?? 8, ctx.dim, ctx.seed);
      if (!ctx.data) return c;
      const qh = normaliseShared(ctx.data.q);
      const kh = normaliseShared(ctx.data.k);
      for (let it = 0; it < 6; it++) {
        const next = kmeansUpdate(c, qh, 0, kh);
        c.dispose();
        c = next;
      }
      tf.dispose([qh, kh]);
      return c;
    },
    dispose: (c) => c.dispose(),
  },
  budgets: {
    // √n clusters: O(n^1.5) in all.
    timing: (n) => ({ clusters: Math.max(2, Math.round(Math.sqrt(n))) }),
    keys: (n, keys) => ({ clusters: Math.max(2, Math.round(n / keys)) }),
  },
  lm: { kind: 'routing', decodes: false },
  cases: [
    {
      label: 'shared queries and keys',
      shape: [1, 2, 24, 8],
      kvHeads: 2,
      sharedQK: true,
      exact: { clusters: 1 },
      // Prefix routing keeps every step's members: at n = 24, three clusters of w = 8 cost about dense; w = 4 does not.
      sparse: { clusters: 3, window: 4 },
      // One cluster holds every token: dense causal attention on the normalised x̂.
      equals(q, _k, v) {
        const x = normaliseShared(q);
        const dense = (t: tf.Tensor) => ({ data: t.dataSync(), shape: t.shape });
        const out = naiveAttention(dense(x), dense(x), dense(v), { mask: masks.causal() }).output;
        x.dispose();
        return out;
      },
    },
    {
      // The unbalanced routing (each token in its nearest cluster), causal like the default.
      label: "shared queries and keys, 'nearest' routing",
      shape: [1, 2, 24, 8],
      kvHeads: 2,
      sharedQK: true,
      exact: { clusters: 1, assignment: 'nearest' },
      sparse: { clusters: 3, assignment: 'nearest' },
      equals(q, _k, v) {
        const x = normaliseShared(q);
        const dense = (t: tf.Tensor) => ({ data: t.dataSync(), shape: t.shape });
        const out = naiveAttention(dense(x), dense(x), dense(v), { mask: masks.causal() }).output;
        x.dispose();
        return out;
      },
    },
  ],
};

/**
 * Salient Relevance (SR): a context-aware saliency map (Goferman, Zelnik-Manor, Tal, CVPR 2010) computed on an LRP
 * relevance map instead of on the image (Li, Tian, Mueller, Chen 2017, https://arxiv.org/abs/1712.08268, §3.2), so
 * that it marks the areas around the foci of the network's attention rather than isolated pixels.
 *
 * On the map m = |R| / max |R| (the official code draws |R|), at each scale f (m average-pooled by f):
 *
 *   d(p_i, p_j) = d_value(p_i, p_j) / (1 + c · d_position(p_i, p_j))
 *   S_i^f       = 1 − exp( −(1/K) Σ_{k=1..K} d(p_i, q_k) ),     q_k: the K patches with the smallest d to p_i (j ≠ i)
 *
 * with p_i the (2r+1) x (2r+1) patch around pixel i (zero outside the map), d_value the Euclidean distance between
 * patches divided by its largest value in the map, d_position the distance between patch centres divided by the
 * image side. S̄ = mean_f upsample(S^f), divided by its maximum. The foci of attention are the pixels with
 * S̄_i >= τ (Goferman's τ = 0.8), and the immediate context is kept by
 *
 *   SR_i = S̄_i · (1 − min(1, d_foci(i)))
 *
 * with d_foci(i) the normalised position distance from pixel i to the nearest focus. Goferman's defaults are c = 3,
 * K = 64, 7 x 7 patches at scales 100%, 80%, 50%, 30% of a 250-pixel image; our maps are 32 x 32, so the defaults
 * here are 3 x 3 patches (r = 1), K = 16 and scales 2 and 4 (integer pooling factors, so the reference can follow
 * every step exactly). Scale 1 is allowed but costs about 30x more (a [1024, 1024] distance matrix and top-K per
 * 32 x 32 map: about 0.4 s per map on one wasm thread against 0.014 s for scales 2 and 4).
 *
 * Shapes: relevance [b, h, w] (h, w multiples of every scale) -> SR [b, h, w], values in [0, 1].
 */
import * as tf from '@tensorflow/tfjs';

export interface SalientOptions {
  /** Integer downsampling factors of the relevance map (multi-scale). */
  scales: number[];
  /** Patch radius r: patches are (2r+1) x (2r+1). */
  patchRadius: number;
  /** K, the most similar patches each patch is compared with. */
  k: number;
  /** c, how strongly distance in position discounts dissimilarity. */
  c: number;
  /** τ, the share of the maximum above which a pixel is a focus of attention. */
  focusThreshold: number;
}

export const SALIENT_DEFAULTS: SalientOptions = { scales: [2, 4], patchRadius: 1, k: 16, c: 3, focusThreshold: 0.8 };

function checkOptions(fn: string, h: number, w: number, o: SalientOptions): void {
  if (!(Array.isArray(o.scales) && o.scales.length >= 1))
    throw new RangeError(`${fn}: options.scales must be a non-empty list, got ${JSON.stringify(o.scales)}`);
  for (const f of o.scales)
    if (!(Number.isInteger(f) && f >= 1 && h % f === 0 && w % f === 0 && (h / f) * (w / f) >= 2))
      throw new RangeError(
        `${fn}: options.scales must be integers >= 1 dividing the map's height ${h} and width ${w} (leaving >= 2 pixels), got ${f}`,
      );
  if (!(Number.isInteger(o.patchRadius) && o.patchRadius >= 0))
    throw new RangeError(`${fn}: options.patchRadius must be an integer >= 0, got ${o.patchRadius}`);
  if (!(Number.isInteger(o.k) && o.k >= 1))
    throw new RangeError(`${fn}: options.k must be an integer >= 1, got ${o.k}`);
  if (!(Number.isFinite(o.c) && o.c >= 0)) throw new RangeError(`${fn}: options.c must be a number >= 0, got ${o.c}`);
  if (!(Number.isFinite(o.focusThreshold) && o.focusThreshold > 0 && o.focusThreshold <= 1))
    throw new RangeError(`${fn}: options.focusThreshold must be in (0, 1], got ${o.focusThreshold}`);
}

/** Pairwise distances between the centres of an (h/f) x (w/f) grid of f x f cells, divided by max(h, w): [n, n]. */
function positionDistances(h: number, w: number, f: number): Float32Array {
  const gh = h / f;
  const gw = w / f;
  const n = gh * gw;
  const side = Math.max(h, w);
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const dy = (Math.floor(i / gw) - Math.floor(j / gw)) * f;
      const dx = ((i % gw) - (j % gw)) * f;
      out[i * n + j] = Math.sqrt(dy * dy + dx * dx) / side;
    }
  return out;
}

/** Divides each image [b, ...] by its own maximum (an all-zero image stays zero). */
function byMax(t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const axes = t.shape.slice(1).map((_, i) => i + 1);
    const m = tf.max(t, axes, true);
    return tf.div(t, tf.where(tf.greater(m, 0), m, tf.onesLike(m)));
  });
}

/** One scale's S^f for maps m [b, gh, gw] -> [b, gh, gw]. */
function scaleSaliency(m: tf.Tensor3D, f: number, h: number, w: number, o: SalientOptions): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, gh, gw] = m.shape;
    const n = gh * gw;
    const r = o.patchRadius;
    const side = 2 * r + 1;
    const padded = tf.pad(m, [
      [0, 0],
      [r, r],
      [r, r],
    ]);
    const shifts: tf.Tensor3D[] = [];
    for (let dy = 0; dy < side; dy++)
      for (let dx = 0; dx < side; dx++) shifts.push(tf.slice(padded, [0, dy, dx], [b, gh, gw]));
    const patches = tf.stack(shifts, 3).reshape([b, n, side * side]);
    // |p_i − p_j|² = |p_i|² + |p_j|² − 2 p_i·p_j: a matrix product instead of an [n, n, patch] difference.
    const sq = tf.sum(tf.square(patches), 2);
    const gram = tf.matMul(patches, patches, false, true);
    const sq2 = tf.sub(tf.add(sq.reshape([b, n, 1]), sq.reshape([b, 1, n])), tf.mul(gram, 2));
    const value = byMax(tf.sqrt(tf.relu(sq2)));
    const position = tf.tensor2d(positionDistances(h, w, f), [n, n]);
    const d = tf.div(value, tf.add(tf.mul(position, o.c), 1));
    const self = tf.mul(tf.eye(n), 1e9);
    const k = Math.min(o.k, n - 1);
    const nearest = tf.neg(tf.topk(tf.neg(tf.add(d, self)), k).values);
    const s = tf.sub(1, tf.exp(tf.neg(tf.mean(nearest, 2))));
    return s.reshape([b, gh, gw]) as tf.Tensor3D;
  });
}

/** Salient Relevance maps of relevance maps [b, h, w] (see the module header): [b, h, w] in [0, 1]. */
export function salientRelevance(relevance: tf.Tensor3D, options: Partial<SalientOptions> = {}): tf.Tensor3D {
  const fn = 'salientRelevance';
  if (relevance.rank !== 3)
    throw new RangeError(`${fn}: relevance must have shape [b,h,w], got [${relevance.shape.join(',')}]`);
  const o = { ...SALIENT_DEFAULTS, ...options };
  const [b, h, w] = relevance.shape;
  checkOptions(fn, h, w, o);
  return tf.tidy(() => {
    const m = byMax(tf.abs(relevance)) as tf.Tensor3D;
    const perScale = o.scales.map((f) => {
      const pooled =
        f === 1
          ? m
          : (tf
              .avgPool(m.reshape([b, h, w, 1]) as tf.Tensor4D, f, f, 'valid')
              .reshape([b, h / f, w / f]) as tf.Tensor3D);
      const s = scaleSaliency(pooled, f, h, w, o);
      if (f === 1) return s;
      return tf.tile(s.reshape([b, h / f, 1, w / f, 1]), [1, 1, f, 1, f]).reshape([b, h, w]);
    });
    const mean = byMax(tf.div(tf.addN(perScale), o.scales.length)).reshape([b, h * w]);
    // Distance to the nearest focus: non-foci are moved 2 (beyond any normalised distance) away before the min.
    const notFocus = tf.mul(tf.cast(tf.less(mean, o.focusThreshold), 'float32'), 2).reshape([b, 1, h * w]);
    const position = tf.tensor2d(positionDistances(h, w, 1), [h * w, h * w]);
    const toFocus = tf.min(tf.add(position, notFocus), 2);
    return tf.mul(mean, tf.sub(1, tf.minimum(toFocus, 1))).reshape([b, h, w]) as tf.Tensor3D;
  });
}

/** Float64 reference of `salientRelevance` for one map [h * w] row-major. */
export function salientRelevanceReference(
  relevance: ArrayLike<number>,
  h: number,
  w: number,
  options: Partial<SalientOptions> = {},
): Float64Array {
  const o = { ...SALIENT_DEFAULTS, ...options };
  checkOptions('salientRelevanceReference', h, w, o);
  const normalise = (a: Float64Array): Float64Array => {
    let m = 0;
    for (const v of a) m = Math.max(m, v);
    return m > 0 ? a.map((v) => v / m) : a;
  };
  const m = normalise(Float64Array.from(relevance, Math.abs));
  const side = Math.max(h, w);
  const total = new Float64Array(h * w);
  for (const f of o.scales) {
    const gh = h / f;
    const gw = w / f;
    const n = gh * gw;
    const g = new Float64Array(n);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) g[Math.floor(y / f) * gw + Math.floor(x / f)] += m[y * w + x] / (f * f);
    const r = o.patchRadius;
    const at = (i: number, dy: number, dx: number): number => {
      const y = Math.floor(i / gw) + dy;
      const x = (i % gw) + dx;
      return y >= 0 && y < gh && x >= 0 && x < gw ? g[y * gw + x] : 0;
    };
    const value = new Float64Array(n * n);
    let vmax = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) s += (at(i, dy, dx) - at(j, dy, dx)) ** 2;
        value[i * n + j] = Math.sqrt(s);
        vmax = Math.max(vmax, value[i * n + j]);
      }
    const k = Math.min(o.k, n - 1);
    const sf = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const d: number[] = [];
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        const dy = (Math.floor(i / gw) - Math.floor(j / gw)) * f;
        const dx = ((i % gw) - (j % gw)) * f;
        const pos = Math.sqrt(dy * dy + dx * dx) / side;
        d.push((vmax > 0 ? value[i * n + j] / vmax : 0) / (1 + o.c * pos));
      }
      d.sort((a, b) => a - b);
      let sum = 0;
      for (let q = 0; q < k; q++) sum += d[q];
      sf[i] = 1 - Math.exp(-sum / k);
    }
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) total[y * w + x] += sf[Math.floor(y / f) * gw + Math.floor(x / f)];
  }
  const mean = normalise(total.map((v) => v / o.scales.length));
  const foci: number[] = [];
  for (let i = 0; i < h * w; i++) if (mean[i] >= o.focusThreshold) foci.push(i);
  const out = new Float64Array(h * w);
  for (let i = 0; i < h * w; i++) {
    let best = 2;
    for (const f of foci) {
      const dy = Math.floor(i / w) - Math.floor(f / w);
      const dx = (i % w) - (f % w);
      best = Math.min(best, Math.sqrt(dy * dy + dx * dx) / side);
    }
    out[i] = mean[i] * (1 - Math.min(best, 1));
  }
  return out;
}

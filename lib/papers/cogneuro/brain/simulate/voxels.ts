/**
 * The simulated visual system: voxels in named regions whose responses are defined on the frozen feature map, with a
 * known routing.
 *
 *   early voxel v (Gaussian pRF p_v over the grid, fixed location):   s_v = Σ_n p_v(n) · w_vᵀ x_n
 *   category voxel v of region R (category c, anywhere in the image): s_v = w_vᵀ Σ_n α_c(n) x_n,
 *                                                                     α_c = softmax_n(τ · m_c(n))
 *   observed response y_v = ŝ_v + ε,  ŝ_v = s_v standardised (unit variance on reference scenes),  ε ~ N(0, 1/SNR)
 *
 * where x_n is the feature vector of grid cell n and m_c(n) the fraction of cell n covered by category c. The category
 * routing is itself a softmax attention map: on the object when the category is present, uniform when it is absent.
 * That is the transformer encoder's own functional form (attention pooling + a linear readout), so `categoryResponse`
 * offers category responses of other shapes, the same weights w_v in each (a paired comparison):
 *
 *   'attention'   s_v = w_vᵀ Σ_n α_c(n) x_n                         (above; the default)
 *   'max'         s_v = max_n w_vᵀ x_n                               max-pooling of the tuned feature (HMAX-like)
 *   'conjunction' s_v = ⟨relu(w_vᵀ x_n)⟩_n · ⟨relu(u_vᵀ x_n)⟩_n       u_v tuned to the next category: fires when both
 *                                                                     are in the scene (a multiplicative interaction)
 *   'prf'         s_v = Σ_n p_v(n) w_vᵀ x_n                          category-tuned but bound to a wide pRF p_v at a
 *                                                                     random place: linear in x, ridge's home ground
 *
 * (⟨·⟩_n is the mean over cells.) Category weights point along the category's mean feature direction (selectivity),
 * plus a per-voxel random part. With SNR the ratio of signal to noise variance, a single presentation's ceiling is
 * sqrt(SNR / (1 + SNR)).
 *
 * The whole-brain version has many parcels: visual ones (a pRF each), semantic ones (a mix of category coverages,
 * wherever the objects are) and parcels of pure noise.
 *
 * Shape legend: n images, N = G*G grid cells, C channels, V voxels, K categories, P parcels.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../../util/random.js';
import { fmt, ShapeError } from '../../../../util/shapes.js';
import { CATEGORIES, type Category, coverage, type Scene } from './scenes.js';

export interface RegionSpec {
  name: string;
  kind: 'early' | 'category';
  voxels: number;
  /** early: pRF centre of the region (grid units, row and column) and pRF width (grid cells). */
  center?: [number, number];
  prfSize?: number;
  /** category: the preferred category. */
  category?: Category;
}

/** How a category voxel responds to its category (see the header); 'attention' is the original simulator. */
export type CategoryResponse = 'attention' | 'max' | 'conjunction' | 'prf';
export const CATEGORY_RESPONSES: readonly CategoryResponse[] = ['attention', 'max', 'conjunction', 'prf'];

export interface VisualSystemConfig {
  regions: RegionSpec[];
  /** Shape of the category voxels' response (default 'attention'). */
  categoryResponse?: CategoryResponse;
  /** Signal variance / noise variance of one presentation. */
  snr: number;
  /** Sharpness of the category routing softmax (logit per fully covered cell). */
  tau: number;
  /** Weight of the category direction against the random part in a category voxel's weights. */
  selectivity: number;
  /** How far (grid cells) an early voxel's pRF centre strays from its region's centre. */
  prfScatter: number;
}

/** Four early regions (one per quadrant, growing pRFs) and four category regions (FFA, EBA, PPA, VWFA). */
export function defaultRegions(voxels: number, grid: number): RegionSpec[] {
  const q = (f: number) => (grid - 1) * f;
  return [
    { name: 'V1-UL', kind: 'early', voxels, center: [q(0.25), q(0.25)], prfSize: 0.6 },
    { name: 'V1-LR', kind: 'early', voxels, center: [q(0.75), q(0.75)], prfSize: 0.6 },
    { name: 'V2-UR', kind: 'early', voxels, center: [q(0.25), q(0.75)], prfSize: 0.9 },
    { name: 'V3-LL', kind: 'early', voxels, center: [q(0.75), q(0.25)], prfSize: 1.3 },
    { name: 'FFA', kind: 'category', voxels, category: 'face' },
    { name: 'EBA', kind: 'category', voxels, category: 'body' },
    { name: 'PPA', kind: 'category', voxels, category: 'place' },
    { name: 'VWFA', kind: 'category', voxels, category: 'word' },
  ];
}

export interface Region {
  name: string;
  kind: 'early' | 'category';
  category?: Category;
  /** Column indices of the region's voxels in the response matrix. */
  voxels: number[];
}

export interface VisualSystem {
  config: VisualSystemConfig;
  grid: number;
  channels: number;
  regions: Region[];
  voxelCount: number;
  /** Per voxel: feature weights [V, C]. */
  weights: Float32Array;
  /** Per voxel: the second feature weights u_v of a 'conjunction' category voxel [V, C] (zeros otherwise). */
  partnerWeights: Float32Array;
  /** Per voxel: pRF over the grid [V, N] (zeros for category voxels unless 'prf'), each non-zero row sums to 1. */
  prf: Float32Array;
  /** Per voxel: preferred category index, or -1 for early voxels. */
  voxelCategory: Int32Array;
  /** Standardisation of the raw signal, fixed at creation: [V] each. */
  signalMean: Float32Array;
  signalStd: Float32Array;
}

/** pRF width (grid cells) of a 'prf' category voxel: wider than the early regions', as higher areas' are. */
const CATEGORY_PRF_SIZE = 1.5;

function gaussianPrf(grid: number, row: number, col: number, sigma: number): Float32Array {
  const out = new Float32Array(grid * grid);
  let s = 0;
  for (let r = 0; r < grid; r++) {
    for (let c = 0; c < grid; c++) {
      const v = Math.exp(-((r - row) ** 2 + (c - col) ** 2) / (2 * sigma * sigma));
      out[r * grid + c] = v;
      s += v;
    }
  }
  return out.map((v) => v / s);
}

function unit(v: Float64Array | number[]): Float64Array {
  const n = Math.hypot(...v) || 1;
  return Float64Array.from(v, (x) => x / n);
}

/** Coverage of every category for every scene: [n, K, N]. */
export function coverageTensor(scenes: readonly Scene[], grid: number): tf.Tensor3D {
  const K = CATEGORIES.length;
  const N = grid * grid;
  const out = new Float32Array(scenes.length * K * N);
  scenes.forEach((s, i) => coverage(s, grid).forEach((m, k) => out.set(m, (i * K + k) * N)));
  return tf.tensor3d(out, [scenes.length, K, N]);
}

/** The true category routing α_c = softmax(τ m_c): [n, K, N]. */
export function categoryRouting(cov: tf.Tensor3D, tau: number): tf.Tensor3D {
  return tf.tidy(() => tf.softmax(tf.mul(cov, tau)) as tf.Tensor3D);
}

/**
 * Create the system: pRFs and weights drawn from `seed`; category directions and the standardisation measured on the
 * reference features/coverage (`refFeatures` [n, N, C], `refCoverage` [n, K, N]).
 */
export function createVisualSystem(
  config: VisualSystemConfig,
  refFeatures: tf.Tensor3D,
  refCoverage: tf.Tensor3D,
  seed: number,
): VisualSystem {
  const [, N, C] = refFeatures.shape;
  const grid = Math.round(Math.sqrt(N));
  if (grid * grid !== N)
    throw new ShapeError(
      `createVisualSystem: refFeatures has ${N} tokens, not a square grid (shape ${fmt(refFeatures.shape)})`,
    );
  if (refCoverage.shape[0] !== refFeatures.shape[0] || refCoverage.shape[2] !== N) {
    throw new ShapeError(
      `createVisualSystem: refCoverage ${fmt(refCoverage.shape)} does not match refFeatures ${fmt(refFeatures.shape)} ([n, K, N] vs [n, N, C])`,
    );
  }
  if (!(config.snr > 0)) throw new Error(`createVisualSystem: snr must be > 0, got ${config.snr}`);
  const response = config.categoryResponse ?? 'attention';
  if (!CATEGORY_RESPONSES.includes(response))
    throw new Error(
      `createVisualSystem: categoryResponse must be one of ${CATEGORY_RESPONSES.join(', ')}, got ${JSON.stringify(response)}`,
    );
  const rng = new Rng(seed).fork('visual-system');
  // The variants' extra draws come from their own stream, so every variant shares the weights w_v drawn above.
  const variantRng = new Rng(seed).fork('category-variant');
  // Category direction: mean features on the category's cells minus the mean over all cells.
  const directions: Float64Array[] = [];
  tf.tidy(() => {
    const x = refFeatures.reshape([-1, C]); // [n*N, C]
    const all = tf.mean(x, 0);
    CATEGORIES.forEach((_, k) => {
      const m = tf.greater(tf.slice(refCoverage, [0, k, 0], [-1, 1, -1]).reshape([-1, 1]), 0.5).asType('float32'); // [n*N, 1]
      const mu = tf.div(tf.sum(tf.mul(x, m), 0), tf.maximum(tf.sum(m), 1));
      directions.push(unit(Array.from(tf.sub(mu, all).dataSync())));
    });
  });
  const V = config.regions.reduce((a, r) => a + r.voxels, 0);
  const weights = new Float32Array(V * C);
  const partnerWeights = new Float32Array(V * C);
  const prf = new Float32Array(V * N);
  const voxelCategory = new Int32Array(V).fill(-1);
  const regions: Region[] = [];
  let v = 0;
  for (const spec of config.regions) {
    const ids: number[] = [];
    for (let i = 0; i < spec.voxels; i++, v++) {
      ids.push(v);
      const noise = unit(Array.from({ length: C }, () => rng.normal()));
      if (spec.kind === 'early') {
        if (!spec.center || !spec.prfSize)
          throw new Error(`createVisualSystem: early region ${spec.name} needs center and prfSize`);
        const [r0, c0] = spec.center;
        const s = config.prfScatter;
        const size = spec.prfSize * (0.8 + 0.4 * rng.next());
        prf.set(gaussianPrf(grid, r0 + s * (2 * rng.next() - 1), c0 + s * (2 * rng.next() - 1), size), v * N);
        weights.set(noise, v * C);
      } else {
        const k = CATEGORIES.indexOf(spec.category!);
        if (k < 0)
          throw new Error(
            `createVisualSystem: category region ${spec.name} needs a category, one of ${CATEGORIES.join(', ')}`,
          );
        voxelCategory[v] = k;
        const d = directions[k];
        weights.set(unit(Array.from(d, (x, j) => config.selectivity * x + noise[j])), v * C);
        if (response === 'conjunction') {
          const d2 = directions[(k + 1) % CATEGORIES.length];
          const noise2 = unit(Array.from({ length: C }, () => variantRng.normal()));
          partnerWeights.set(unit(Array.from(d2, (x, j) => config.selectivity * x + noise2[j])), v * C);
        } else if (response === 'prf') {
          const [r0, c0] = [variantRng.next() * (grid - 1), variantRng.next() * (grid - 1)];
          prf.set(gaussianPrf(grid, r0, c0, CATEGORY_PRF_SIZE * (0.8 + 0.4 * variantRng.next())), v * N);
        }
      }
    }
    regions.push({ name: spec.name, kind: spec.kind, category: spec.category, voxels: ids });
  }
  const sys: VisualSystem = {
    config,
    grid,
    channels: C,
    regions,
    voxelCount: V,
    weights,
    partnerWeights,
    prf,
    voxelCategory,
    signalMean: new Float32Array(V),
    signalStd: new Float32Array(V).fill(1),
  };
  const raw = rawSignal(sys, refFeatures, refCoverage);
  const [mean, std] = tf.tidy(() => {
    const m = tf.moments(raw, 0);
    return [m.mean.dataSync() as Float32Array, tf.sqrt(m.variance).dataSync() as Float32Array];
  });
  raw.dispose();
  sys.signalMean = mean;
  sys.signalStd = std.map((s) => s || 1);
  return sys;
}

/** Whether voxel v's response is a pRF-weighted sum (early voxels, and category voxels of the 'prf' variant). */
function usesPrf(sys: VisualSystem): number[] {
  const prfCategory = (sys.config.categoryResponse ?? 'attention') === 'prf';
  return Array.from(sys.voxelCategory, (k) => (k < 0 || prfCategory ? 1 : 0));
}

/** The unstandardised signal [n, V]. */
function rawSignal(sys: VisualSystem, features: tf.Tensor3D, cov: tf.Tensor3D): tf.Tensor2D {
  const [n, N, C] = features.shape;
  const V = sys.voxelCount;
  const response = sys.config.categoryResponse ?? 'attention';
  return tf.tidy(() => {
    const x = features.reshape([n * N, C]);
    const local = tf.matMul(x, tf.tensor2d(sys.weights, [V, C]), false, true).reshape([n, N, V]); // w_vᵀ x_n: [n, N, V]
    const pooled = tf.sum(tf.mul(local, tf.tensor2d(sys.prf, [V, N]).transpose()), 1); // Σ_n p_v(n) w_vᵀ x_n: [n, V]
    let category: tf.Tensor; // [n, V]
    if (response === 'max') {
      category = tf.max(local, 1);
    } else if (response === 'conjunction') {
      const partner = tf.matMul(x, tf.tensor2d(sys.partnerWeights, [V, C]), false, true).reshape([n, N, V]);
      category = tf.mul(tf.mean(tf.relu(local), 1), tf.mean(tf.relu(partner), 1));
    } else {
      const alpha = categoryRouting(cov, sys.config.tau); // [n, K, N]
      const routed = tf.matMul(alpha, local); // [n, K, V]: Σ_n α_k(n) w_vᵀ x_n
      const oneHot = tf
        .oneHot(
          tf.tensor1d(
            Array.from(sys.voxelCategory, (k) => Math.max(k, 0)),
            'int32',
          ),
          CATEGORIES.length,
        )
        .transpose(); // [K, V]
      category = tf.sum(tf.mul(routed, oneHot), 1);
    }
    const isPrf = tf.tensor1d(usesPrf(sys));
    return tf.add(tf.mul(pooled, isPrf), tf.mul(category, tf.sub(1, isPrf))) as tf.Tensor2D;
  });
}

/** The noiseless, standardised signal ŝ [n, V]. */
export function signal(sys: VisualSystem, features: tf.Tensor3D, cov: tf.Tensor3D): tf.Tensor2D {
  const fn = 'signal';
  if (features.rank !== 3 || features.shape[1] !== sys.grid * sys.grid || features.shape[2] !== sys.channels) {
    throw new ShapeError(
      `${fn}: features must be [n, ${sys.grid * sys.grid}, ${sys.channels}], got ${fmt(features.shape)}`,
    );
  }
  if (cov.rank !== 3 || cov.shape[0] !== features.shape[0] || cov.shape[2] !== sys.grid * sys.grid) {
    throw new ShapeError(
      `${fn}: coverage must be [${features.shape[0]}, K, ${sys.grid * sys.grid}], got ${fmt(cov.shape)}`,
    );
  }
  return tf.tidy(
    () =>
      tf.div(
        tf.sub(rawSignal(sys, features, cov), tf.tensor1d(sys.signalMean)),
        tf.tensor1d(sys.signalStd),
      ) as tf.Tensor2D,
  );
}

/** One presentation: signal plus Gaussian noise of variance 1/SNR, from `rng`. Returns [n, V] row-major. */
export function addNoise(clean: Float32Array, snr: number, rng: Rng): Float32Array {
  const sd = 1 / Math.sqrt(snr);
  return clean.map((s) => s + sd * rng.normal());
}

/**
 * The true routing as per-voxel routed features, the inputs of a model that knows the routing: [n, V, C] where
 * row v is Σ_n p_v(n) x_n (early, and 'prf' category voxels) or Σ_n α_c(n) x_n ('attention' category voxels). The
 * 'max' and 'conjunction' responses are not a linear readout of one routed vector, so they have no such oracle.
 */
export function trueRoutedFeatures(sys: VisualSystem, features: tf.Tensor3D, cov: tf.Tensor3D): tf.Tensor3D {
  const [_n, N] = features.shape;
  const V = sys.voxelCount;
  const response = sys.config.categoryResponse ?? 'attention';
  if (response !== 'attention' && response !== 'prf')
    throw new Error(
      `trueRoutedFeatures: the true routing is a per-voxel linear map only for categoryResponse 'attention' or 'prf', got '${response}'`,
    );
  return tf.tidy(() => {
    const alpha = categoryRouting(cov, sys.config.tau); // [n, K, N]
    const cat = tf.gather(
      alpha,
      tf.tensor1d(
        Array.from(sys.voxelCategory, (k) => Math.max(k, 0)),
        'int32',
      ),
      1,
    ); // [n, V, N]
    const isPrf = tf.tensor1d(usesPrf(sys)).reshape([1, V, 1]);
    const maps = tf.add(tf.mul(cat, tf.sub(1, isPrf)), tf.mul(tf.tensor2d(sys.prf, [V, N]).expandDims(0), isPrf)); // [n, V, N]
    return tf.matMul(maps, features) as tf.Tensor3D; // [n, V, C]
  });
}

export interface WholeBrainConfig {
  parcels: number;
  /** Fractions of parcels that carry visual (pRF) and semantic (category) signal; the rest are noise. */
  visualFraction: number;
  semanticFraction: number;
  snr: number;
}

export interface WholeBrain {
  config: WholeBrainConfig;
  /** Parcel kinds in order: 'visual' | 'semantic' | 'noise'. */
  kinds: ('visual' | 'semantic' | 'noise')[];
  visual: VisualSystem;
  /** Semantic parcels: mixing of the K category coverage totals [S, K], and its standardisation (fixed at creation). */
  semanticMix: Float32Array;
  semanticMean: Float64Array;
  semanticStd: Float64Array;
}

/** Raw semantic parcel signals [n, S]: Σ_k mix[s, k] · sqrt(cells covered by category k). */
function semanticSignal(mix: Float32Array, cov: tf.Tensor3D): Float64Array {
  const K = CATEGORIES.length;
  const n = cov.shape[0];
  const S = mix.length / K;
  const totals = tf.tidy(() => tf.sum(cov, 2).dataSync() as Float32Array); // [n, K]
  const out = new Float64Array(n * S);
  for (let i = 0; i < n; i++) {
    for (let s = 0; s < S; s++) {
      let x = 0;
      for (let k = 0; k < K; k++) x += mix[s * K + k] * Math.sqrt(totals[i * K + k]);
      out[i * S + s] = x;
    }
  }
  return out;
}

/** Many parcels; the visual ones are pRF parcels of a visual system with one voxel per parcel. */
export function createWholeBrain(
  config: WholeBrainConfig,
  refFeatures: tf.Tensor3D,
  refCoverage: tf.Tensor3D,
  seed: number,
): WholeBrain {
  const rng = new Rng(seed).fork('whole-brain');
  const grid = Math.round(Math.sqrt(refFeatures.shape[1]));
  const nVisual = Math.round(config.parcels * config.visualFraction);
  const nSemantic = Math.round(config.parcels * config.semanticFraction);
  if (nVisual < 1 || nVisual + nSemantic > config.parcels) {
    throw new Error(
      `createWholeBrain: visualFraction ${config.visualFraction} and semanticFraction ${config.semanticFraction} of ${config.parcels} parcels leave no valid split`,
    );
  }
  const regions: RegionSpec[] = Array.from({ length: nVisual }, (_, i) => ({
    name: `vis${i}`,
    kind: 'early' as const,
    voxels: 1,
    center: [rng.next() * (grid - 1), rng.next() * (grid - 1)] as [number, number],
    prfSize: 0.7 + 1.5 * rng.next(),
  }));
  const visual = createVisualSystem(
    { regions, snr: config.snr, tau: 1, selectivity: 0, prfScatter: 0 },
    refFeatures,
    refCoverage,
    seed,
  );
  const K = CATEGORIES.length;
  const semanticMix = new Float32Array(nSemantic * K);
  for (let s = 0; s < nSemantic; s++) {
    const k = s % K; // each semantic parcel prefers one category, with some mixing of the others
    for (let j = 0; j < K; j++) semanticMix[s * K + j] = j === k ? 1 : 0.3 * rng.normal();
  }
  const kinds = [
    ...Array(nVisual).fill('visual'),
    ...Array(nSemantic).fill('semantic'),
    ...Array(config.parcels - nVisual - nSemantic).fill('noise'),
  ];
  const ref = semanticSignal(semanticMix, refCoverage);
  const n = refCoverage.shape[0];
  const semanticMean = new Float64Array(nSemantic);
  const semanticStd = new Float64Array(nSemantic);
  for (let j = 0; j < nSemantic; j++) {
    for (let i = 0; i < n; i++) semanticMean[j] += ref[i * nSemantic + j] / n;
    for (let i = 0; i < n; i++) semanticStd[j] += (ref[i * nSemantic + j] - semanticMean[j]) ** 2 / n;
    semanticStd[j] = Math.sqrt(semanticStd[j]) || 1;
  }
  return { config, kinds, visual, semanticMix, semanticMean, semanticStd };
}

/** Noisy parcel responses [n, P] (one presentation); signal parcels have unit signal variance on the reference scenes. */
export function wholeBrainResponses(
  brain: WholeBrain,
  features: tf.Tensor3D,
  cov: tf.Tensor3D,
  rng: Rng,
): Float32Array {
  const n = features.shape[0];
  const P = brain.config.parcels;
  const K = CATEGORIES.length;
  const nSemantic = brain.semanticMix.length / K;
  const vis = tf.tidy(() => signal(brain.visual, features, cov).dataSync() as Float32Array);
  const sem = semanticSignal(brain.semanticMix, cov);
  for (let i = 0; i < n; i++)
    for (let s = 0; s < nSemantic; s++)
      sem[i * nSemantic + s] = (sem[i * nSemantic + s] - brain.semanticMean[s]) / brain.semanticStd[s];
  const nVisual = brain.visual.voxelCount;
  const sd = 1 / Math.sqrt(brain.config.snr);
  const out = new Float32Array(n * P);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < P; p++) {
      const s = p < nVisual ? vis[i * nVisual + p] : p < nVisual + nSemantic ? sem[i * nSemantic + p - nVisual] : 0;
      out[i * P + p] = s + (brain.kinds[p] === 'noise' ? 1 : sd) * rng.normal();
    }
  }
  return out;
}

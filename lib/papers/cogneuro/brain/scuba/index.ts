/**
 * BrainSCUBA (Luo, Henderson, Tarr, Wehbe, ICLR 2024, "BrainSCUBA: Fine-Grained Natural Language Captions of Visual
 * Cortex Selectivity", https://arxiv.org/abs/2310.04420): per-voxel linear encoders on an image-embedding space, then the
 * voxel weight is projected onto the manifold of natural-image embeddings before it is decoded into words:
 *
 *   r_v(img) ≈ w_vᵀ e(img)                                  per-voxel ridge on embeddings
 *   ê_v = Σ_j softmax_j(ŵ_v · e_j / τ) e_j,  ŵ_v = w_v/‖w_v‖   over a set of natural embeddings e_j (unpaired images)
 *
 * ê_v is a convex combination of real image embeddings, so a decoder trained on image embeddings gets an input of the
 * kind it knows; the raw weight w_v need not be. Here the "CLIP" embedding (createEmbedder) is a fixed random
 * projection of pooled frozen features plus the scene's category content, L2-normalised. Two captioners name a concept (a category, or
 * 'background' for a scene without objects): a small MLP trained on natural embeddings only (onto the category of
 * the scene's largest object, as CLIPCap's prefix MLP is trained on natural images), and the nearest concept
 * embedding (the mean embedding of single-object scenes of each category). The official projection (aluo-x/BrainSCUBA
 * projection.py) uses unit voxel weights and τ = 1/150, and rescales the result to the mixed norm of the embeddings;
 * with unit embeddings that is a rescaling to unit length, which the captioners do anyway.
 *
 * Shape legend: n images, M natural embeddings, D embedding dim, V voxels, K concepts.
 */
import * as tf from '@tensorflow/tfjs';
import { ParamFactory } from '../../../../layers/params.js';
import { train } from '../../../../train/loop.js';
import { Rng } from '../../../../util/random.js';
import { fmt, ShapeError } from '../../../../util/shapes.js';
import { extractFeatures, type FeatureExtractor } from '../simulate/features.js';
import { CATEGORIES, drawScenes, type Scene, type SceneConfig, stackPixels } from '../simulate/scenes.js';
import { coverageTensor } from '../simulate/voxels.js';

/**
 * The fixed "CLIP-like" embedding of a scene: a visual part (pooled frozen features) and a semantic part (how much of
 * each category the scene shows, as an image-text model would encode), each through a fixed Gaussian projection:
 *
 *   e = normalise( [mean_n x_n, max_n x_n] W_v  +  s · sqrt(cells covered per category) W_s )
 *
 * with W_v [2C, D], W_s [K, D] drawn from `seed` and s the weight of the semantic part.
 */
export interface Embedder {
  visual: tf.Tensor2D;
  semantic: tf.Tensor2D;
  semanticWeight: number;
  dim: number;
}

export function createEmbedder(channels: number, dim: number, seed: number, semanticWeight = 1): Embedder {
  const rng = new Rng(seed).fork('embedder');
  const K = CATEGORIES.length;
  const w = Float32Array.from({ length: 2 * channels * dim }, () => rng.normal() / Math.sqrt(2 * channels));
  const ws = Float32Array.from({ length: K * dim }, () => rng.normal());
  return { visual: tf.tensor2d(w, [2 * channels, dim]), semantic: tf.tensor2d(ws, [K, dim]), semanticWeight, dim };
}

export function disposeEmbedder(e: Embedder): void {
  tf.dispose([e.visual, e.semantic]);
}

/** features [n, N, C] and category coverage [n, K, N] -> unit embeddings [n, D]. */
export function embed(embedder: Embedder, features: tf.Tensor3D, coverage: tf.Tensor3D): tf.Tensor2D {
  if (features.rank !== 3 || features.shape[2] * 2 !== embedder.visual.shape[0]) {
    throw new ShapeError(`embed: features must be [n, N, ${embedder.visual.shape[0] / 2}], got ${fmt(features.shape)}`);
  }
  if (
    coverage.rank !== 3 ||
    coverage.shape[0] !== features.shape[0] ||
    coverage.shape[1] !== embedder.semantic.shape[0]
  ) {
    throw new ShapeError(
      `embed: coverage must be [${features.shape[0]}, ${embedder.semantic.shape[0]}, N], got ${fmt(coverage.shape)}`,
    );
  }
  return tf.tidy(() => {
    const pooled = tf.concat([tf.mean(features, 1), tf.max(features, 1)], 1);
    const semantic = tf.mul(tf.matMul(tf.sqrt(tf.sum(coverage, 2)), embedder.semantic), embedder.semanticWeight);
    return l2normalise(tf.add(tf.matMul(pooled, embedder.visual), semantic) as tf.Tensor2D);
  });
}

export function l2normalise(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.add(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D);
}

/**
 * The softmax projection: weights [V, D] onto natural embeddings [M, D] -> [V, D], each row Σ_j p_vj e_j with
 * p_v = softmax(ŵ_v · e_j / τ) (ŵ the unit weight). Also returns the mixing weights p [V, M] (rows sum to 1).
 */
export function projectToManifold(
  weights: tf.Tensor2D,
  natural: tf.Tensor2D,
  temperature: number,
): { projected: tf.Tensor2D; mixing: tf.Tensor2D } {
  if (weights.rank !== 2 || natural.rank !== 2 || weights.shape[1] !== natural.shape[1]) {
    throw new ShapeError(
      `projectToManifold: weights ${fmt(weights.shape)} and natural embeddings ${fmt(natural.shape)} must be [V, D] and [M, D] with one D`,
    );
  }
  if (!(temperature > 0)) throw new ShapeError(`projectToManifold: temperature must be > 0, got ${temperature}`);
  return tf.tidy(() => {
    const mixing = tf.softmax(
      tf.div(tf.matMul(l2normalise(weights), natural, false, true), temperature),
    ) as tf.Tensor2D; // [V, M]
    return { projected: tf.matMul(mixing, natural) as tf.Tensor2D, mixing };
  });
}

/** Reference for the projection: one voxel at a time, float64 in JS. */
export function projectNaive(weights: number[][], natural: number[][], temperature: number): number[][] {
  return weights.map((w) => {
    const n = Math.hypot(...w);
    const logits = natural.map((e) => e.reduce((a, x, i) => a + (x * w[i]) / n, 0) / temperature);
    const mx = Math.max(...logits);
    const p = logits.map((l) => Math.exp(l - mx));
    const z = p.reduce((a, b) => a + b, 0);
    return w.map((_, d) => natural.reduce((a, e, j) => a + (p[j] / z) * e[d], 0));
  });
}

export const CONCEPTS = [...CATEGORIES, 'background'] as const;
export type Concept = (typeof CONCEPTS)[number];

/** Concept embeddings [K, D]: the normalised mean embedding of `count` scenes of one category alone (or of none). */
export function conceptEmbeddings(
  embedder: Embedder,
  fx: FeatureExtractor,
  scenes: SceneConfig,
  count: number,
  seed: number,
): tf.Tensor2D {
  const rng = new Rng(seed).fork('concepts');
  const rows = CONCEPTS.map((c) => {
    const drawn = drawScenes(
      c === 'background' ? { ...scenes, minObjects: 0, maxObjects: 0 } : { ...scenes, minObjects: 1, maxObjects: 1 },
      count * 4,
      rng,
    )
      .filter((s) => c === 'background' || s.objects[0].category === c)
      .slice(0, count);
    return tf.tidy(() =>
      tf.mean(embed(embedder, extractFeatures(fx, stackPixels(drawn)), coverageTensor(drawn, fx.config.grid)), 0),
    );
  });
  const out = tf.tidy(() => l2normalise(tf.stack(rows) as tf.Tensor2D));
  tf.dispose(rows);
  return out;
}

/** The nearest concept (cosine) of each row of x [V, D], with its similarity and the runner-up. */
export function nearestConcepts(
  x: tf.Tensor2D,
  concepts: tf.Tensor2D,
): { concept: Concept; similarity: number; second: Concept }[] {
  const sims = tf.tidy(() => tf.matMul(l2normalise(x), concepts, false, true).arraySync() as number[][]);
  return sims.map((row) => {
    const order = row.map((s, k) => [s, k] as const).sort((a, b) => b[0] - a[0]);
    return { concept: CONCEPTS[order[0][1]], similarity: order[0][0], second: CONCEPTS[order[1][1]] };
  });
}

/** A one-line caption from the nearest concepts, e.g. "a face (then body)". */
export function caption(c: { concept: Concept; second: Concept }): string {
  return c.concept === 'background' ? `a textured background (then ${c.second})` : `a ${c.concept} (then ${c.second})`;
}

/** A small captioner, trained on natural embeddings only (as CLIPCap's prefix MLP is): unit embedding -> tanh MLP -> concept. */
export interface Captioner {
  w1: tf.Variable; // [D, H]
  b1: tf.Variable; // [H]
  w2: tf.Variable; // [H, K]
  b2: tf.Variable; // [K]
}

/** The label of a natural scene: the category of its largest object, or background. */
export function sceneConcept(scene: Scene): Concept {
  if (!scene.objects.length) return 'background';
  return scene.objects.reduce((a, o) => (o.size > a.size ? o : a)).category;
}

function captionerLogits(c: Captioner, x: tf.Tensor2D): tf.Tensor2D {
  return tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x, c.w1), c.b1)), c.w2), c.b2) as tf.Tensor2D;
}

/** Train the captioner on unit embeddings [M, D] with their concepts: full-batch Adam, seeded. */
export async function trainCaptioner(
  natural: tf.Tensor2D,
  labels: readonly Concept[],
  steps: number,
  seed: number,
  hidden = 64,
): Promise<Captioner> {
  const [M, D] = natural.shape;
  if (labels.length !== M) throw new ShapeError(`trainCaptioner: ${labels.length} labels for ${M} embeddings`);
  const p = new ParamFactory({ scope: 'brain-captioner', seed: { kind: 'mixed', seed, prefix: 'brain-captioner' } });
  const K = CONCEPTS.length;
  const c: Captioner = {
    w1: p.variable('w1', [D, hidden], 'glorotUniform'),
    b1: p.variable('b1', [hidden], 'zeros'),
    w2: p.variable('w2', [hidden, K], 'glorotUniform'),
    b2: p.variable('b2', [K], 'zeros'),
  };
  const y = tf.oneHot(
    tf.tensor1d(
      labels.map((l) => CONCEPTS.indexOf(l)),
      'int32',
    ),
    K,
  );
  try {
    await train({
      variables: { ...c },
      steps,
      optimizer: { type: 'adam', lr: 0.02 },
      seed,
      progress: false,
      dataframe: false,
      loss: () => tf.losses.softmaxCrossEntropy(y, captionerLogits(c, natural)) as tf.Scalar,
    });
  } finally {
    y.dispose();
  }
  return c;
}

export function disposeCaptioner(c: Captioner): void {
  tf.dispose([c.w1, c.b1, c.w2, c.b2]);
}

/** The captioner's concept for each row of x [V, D] (normalised first, as embeddings are), with its probability. */
export function captionerConcepts(
  c: Captioner,
  x: tf.Tensor2D,
): { concept: Concept; similarity: number; second: Concept }[] {
  const probs = tf.tidy(() => tf.softmax(captionerLogits(c, l2normalise(x))).arraySync() as number[][]);
  return probs.map((row) => {
    const order = row.map((s, k) => [s, k] as const).sort((a, b) => b[0] - a[0]);
    return { concept: CONCEPTS[order[0][1]], similarity: order[0][0], second: CONCEPTS[order[1][1]] };
  });
}

/** The largest cosine of each row of x [V, D] with any natural embedding [M, D]: how on-manifold x is. */
export function manifoldSimilarity(x: tf.Tensor2D, natural: tf.Tensor2D): Float32Array {
  return tf.tidy(() => tf.max(tf.matMul(l2normalise(x), natural, false, true), 1).dataSync() as Float32Array);
}

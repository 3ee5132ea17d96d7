/**
 * Baselines for object-level scanpaths. Each is a policy: the next fixation (or END) given the display and the prefix.
 * All of them stop when they fixate the target, never revisit (winner-take-all with inhibition of return, as in Itti &
 * Koch 2000, "A saliency-based search mechanism", Vision Res. 40:1489) and give up after `maxFixations`.
 *
 * - random: a uniformly random unvisited object;
 * - nearest: the unvisited object nearest to the current fixation (the display centre first);
 * - similarity (a guided-search heuristic): the unvisited object with the highest target similarity (the fraction of
 *   the four attributes it shares with the target, size as 1 − |Δsize|), minus 0.1 per cell of distance so that
 *   proximity only breaks near-ties;
 * - pixel: a saliency-style model over image patches, no objects: each 4 × 4 patch is embedded (pixels and a 2-D
 *   sinusoidal code of its place), a query from the rendered target template scores every patch (s = k·q/√E + wᵀk,
 *   top-down plus bottom-up), trained with cross-entropy on the fixated patches; its fixations are mapped to the object
 *   nearest the patch centre.
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../backend/ops.js';
import { CELL_PX, renderDisplay, renderTarget, type SearchDisplay } from '../../../data/visual-search/displays.js';
import type { Trial } from '../../../data/visual-search/splits.js';
import { ParamFactory } from '../../../layers/params.js';
import type { Rng } from '../../../util/random.js';
import { ShapeError } from '../../../util/shapes.js';

export interface Policy {
  name: string;
  /** Next fixation given the prefix: an object index, or -1 for END. */
  next(d: SearchDisplay, prefix: readonly number[], rng: Rng): number;
}

function unvisited(d: SearchDisplay, prefix: readonly number[]): number[] {
  const seen = new Set(prefix);
  return d.objects.map((_, j) => j).filter((j) => !seen.has(j));
}

/** The shared stopping rule: END after the target, at the cap, or with nothing left. */
function stops(d: SearchDisplay, prefix: readonly number[], maxFixations: number): boolean {
  return (
    (prefix.length > 0 && prefix[prefix.length - 1] === d.target) ||
    prefix.length >= maxFixations ||
    prefix.length >= d.objects.length
  );
}

function argmaxBy(items: number[], score: (j: number) => number): number {
  let best = items[0],
    s = -Infinity;
  for (const j of items) {
    const v = score(j);
    if (v > s) {
      s = v;
      best = j;
    }
  }
  return best;
}

function gaze(d: SearchDisplay, prefix: readonly number[]): { x: number; y: number } {
  return prefix.length ? d.objects[prefix[prefix.length - 1]] : { x: d.cols / 2, y: d.rows / 2 };
}

export function randomPolicy(maxFixations: number): Policy {
  return {
    name: 'random',
    next: (d, prefix, rng) =>
      stops(d, prefix, maxFixations) ? -1 : ((u) => u[rng.int(0, u.length)])(unvisited(d, prefix)),
  };
}

export function nearestPolicy(maxFixations: number): Policy {
  return {
    name: 'nearest',
    next: (d, prefix) => {
      if (stops(d, prefix, maxFixations)) return -1;
      const g = gaze(d, prefix);
      return argmaxBy(unvisited(d, prefix), (j) => -Math.hypot(d.objects[j].x - g.x, d.objects[j].y - g.y));
    },
  };
}

/** Fraction of the attributes object j shares with the target (size as 1 − |Δsize|). */
export function attributeOverlap(d: SearchDisplay, j: number): number {
  const o = d.objects[j],
    t = d.objects[d.target];
  return (
    (+(o.category === t.category) +
      +(o.colour === t.colour) +
      +(o.shape === t.shape) +
      (1 - Math.abs(o.size - t.size))) /
    4
  );
}

export function similarityPolicy(maxFixations: number, distanceCost = 0.1): Policy {
  return {
    name: 'similarity',
    next: (d, prefix) => {
      if (stops(d, prefix, maxFixations)) return -1;
      const g = gaze(d, prefix);
      return argmaxBy(
        unvisited(d, prefix),
        (j) => attributeOverlap(d, j) - distanceCost * Math.hypot(d.objects[j].x - g.x, d.objects[j].y - g.y),
      );
    },
  };
}

/** Run a policy to the end. */
export function rollout(policy: Policy, d: SearchDisplay, rng: Rng): number[] {
  const path: number[] = [];
  for (let f = policy.next(d, path, rng); f >= 0; f = policy.next(d, path, rng)) path.push(f);
  return path;
}

/** The policy's next fixation at every step of each trial's true prefix (len + 1 steps, -1 = END). */
export function policyStepPredictions(policy: Policy, trials: readonly Trial[], rng: Rng): number[][] {
  return trials.map((t) =>
    Array.from({ length: t.scanpath.length + 1 }, (_, s) => policy.next(t.display, t.scanpath.slice(0, s), rng)),
  );
}

// ---- the pixel-level model --------------------------------------------------------------------------------------

export const PATCH_PX = 4;

export interface PixelModel {
  dModel: number;
  params: Record<string, tf.Variable>;
}

const PATCH_DIM = PATCH_PX * PATCH_PX * 3;
const TEMPLATE_DIM = CELL_PX * CELL_PX * 3;

export function createPixelModel(dModel: number, seed: number): PixelModel {
  if (!(Number.isInteger(dModel) && dModel > 0 && dModel % 4 === 0))
    throw new ShapeError(`createPixelModel: dModel must be a positive multiple of 4, got ${dModel}`);
  const p = new ParamFactory({ scope: 'pixel', seed });
  p.variable('wp', [PATCH_DIM, dModel], 'xavierUniform');
  p.variable('bp', [dModel], 'zeros');
  p.variable('wpos', [dModel, dModel], 'xavierUniform');
  p.variable('wt', [TEMPLATE_DIM, dModel], 'xavierUniform');
  p.variable('bt', [dModel], 'zeros');
  p.variable('wq', [dModel, dModel], 'xavierUniform');
  p.variable('wsal', [dModel, 1], 'xavierUniform');
  return { dModel, params: p.params() };
}

export function disposePixelModel(m: PixelModel): void {
  tf.dispose(Object.values(m.params));
}

export interface PatchGrid {
  pixels: Float32Array;
  centres: [number, number][];
  object: number[];
}

const patchCache = new WeakMap<SearchDisplay, PatchGrid>();

/**
 * Patch grid of a display: pixels [P][48], centres in pixels, and the object each patch maps to (nearest centre).
 * Cached per display object (training reads each display many times).
 */
export function displayPatches(d: SearchDisplay): PatchGrid {
  const hit = patchCache.get(d);
  if (hit) return hit;
  const img = renderDisplay(d);
  const pr = Math.floor(img.height / PATCH_PX),
    pc = Math.floor(img.width / PATCH_PX);
  const pixels = new Float32Array(pr * pc * PATCH_DIM);
  const centres: [number, number][] = [];
  const object: number[] = [];
  for (let r = 0; r < pr; r++) {
    for (let c = 0; c < pc; c++) {
      const k = r * pc + c;
      for (let y = 0; y < PATCH_PX; y++) {
        const src = ((r * PATCH_PX + y) * img.width + c * PATCH_PX) * 3;
        pixels.set(img.data.subarray(src, src + PATCH_PX * 3), k * PATCH_DIM + y * PATCH_PX * 3);
      }
      const cx = (c + 0.5) * PATCH_PX,
        cy = (r + 0.5) * PATCH_PX;
      centres.push([cx, cy]);
      object.push(
        argmaxBy(
          d.objects.map((_, j) => j),
          (j) => -Math.hypot(d.objects[j].x * CELL_PX - cx, d.objects[j].y * CELL_PX - cy),
        ),
      );
    }
  }
  const grid = { pixels, centres, object };
  patchCache.set(d, grid);
  return grid;
}

/** The patch that contains object j's centre. */
export function patchOf(d: SearchDisplay, j: number): number {
  const pc = Math.floor((d.cols * CELL_PX) / PATCH_PX);
  const o = d.objects[j];
  return Math.floor((o.y * CELL_PX) / PATCH_PX) * pc + Math.floor((o.x * CELL_PX) / PATCH_PX);
}

interface PixelInputs {
  patches: tf.Tensor3D; // [b, P, 48]
  pos: tf.Tensor3D; // [b, P, E]
  template: tf.Tensor2D; // [b, 192]
  valid: tf.Tensor2D; // [b, P]
  maps: number[][]; // patch -> object per display
  P: number;
}

function sinusoid(p: number, dim: number): number[] {
  return Array.from({ length: dim }, (_, k) => {
    const a = p / 10000 ** ((2 * Math.floor(k / 2)) / dim);
    return k % 2 === 0 ? Math.sin(a) : Math.cos(a);
  });
}

const codeCache = new Map<string, Float32Array>();

/** Sinusoidal codes of the patch centres (x ⊕ y, in patch units) [P, E]; the same for every display of one size. */
function patchCodes(d: SearchDisplay, g: PatchGrid, E: number): Float32Array {
  const key = `${E}:${d.rows}x${d.cols}`;
  let c = codeCache.get(key);
  if (!c) {
    c = new Float32Array(g.centres.length * E);
    g.centres.forEach(([cx, cy], k) =>
      c!.set([...sinusoid(cx / PATCH_PX, E / 2), ...sinusoid(cy / PATCH_PX, E / 2)], k * E),
    );
    codeCache.set(key, c);
  }
  return c;
}

function pixelInputs(m: PixelModel, displays: readonly SearchDisplay[]): PixelInputs {
  const E = m.dModel;
  const grids = displays.map(displayPatches);
  const P = Math.max(...grids.map((g) => g.object.length)),
    b = displays.length;
  const patches = new Float32Array(b * P * PATCH_DIM),
    pos = new Float32Array(b * P * E),
    valid = new Float32Array(b * P);
  const template = new Float32Array(b * TEMPLATE_DIM);
  grids.forEach((g, r) => {
    patches.set(g.pixels, r * P * PATCH_DIM);
    pos.set(patchCodes(displays[r], g, E), r * P * E);
    valid.fill(1, r * P, r * P + g.object.length);
    template.set(renderTarget(displays[r]).data, r * TEMPLATE_DIM);
  });
  return {
    patches: tf.tensor3d(patches, [b, P, PATCH_DIM]),
    pos: tf.tensor3d(pos, [b, P, E]),
    template: tf.tensor2d(template, [b, TEMPLATE_DIM]),
    valid: tf.tensor2d(valid, [b, P]),
    maps: grids.map((g) => g.object),
    P,
  };
}

const disposePixelInputs = (x: PixelInputs) => tf.dispose([x.patches, x.pos, x.template, x.valid]);

/** Patch log-probabilities [b, P] (padding masked). */
function patchLogProbs(m: PixelModel, x: PixelInputs): tf.Tensor2D {
  const W = m.params,
    E = m.dModel;
  const [b, P] = x.valid.shape;
  const keys = tf.tanh(matmul(x.patches, W.wp).add(W.bp)).add(matmul(x.pos, W.wpos)); // [b, P, E]
  const q = matmul(tf.tanh(matmul(x.template, W.wt).add(W.bt)), W.wq); // [b, E]
  const topDown = matmul(keys, q.reshape([b, E, 1]))
    .reshape([b, P])
    .div(Math.sqrt(E));
  const bottomUp = matmul(keys, W.wsal).reshape([b, P]);
  return tf.logSoftmax(topDown.add(bottomUp).add(tf.sub(1, x.valid).mul(-1e9))) as tf.Tensor2D;
}

/** Cross-entropy of the fixated patches (each trial's fixations weighted equally). */
export function pixelLoss(m: PixelModel, trials: readonly Trial[]): tf.Scalar {
  const x = pixelInputs(
    m,
    trials.map((t) => t.display),
  );
  const target = new Float32Array(trials.length * x.P);
  trials.forEach((t, r) =>
    t.scanpath.forEach((j) => (target[r * x.P + patchOf(t.display, j)] += 1 / Math.max(1, t.scanpath.length))),
  );
  try {
    return tf.tidy(
      () =>
        patchLogProbs(m, x)
          .mul(tf.tensor2d(target, [trials.length, x.P]))
          .sum()
          .div(-trials.length) as tf.Scalar,
    );
  } finally {
    disposePixelInputs(x);
  }
}

/** Object priorities per display: the best score of the patches mapped to each object. */
export function pixelPriorities(m: PixelModel, displays: readonly SearchDisplay[]): number[][] {
  const x = pixelInputs(m, displays);
  try {
    const lp = tf.tidy(() => patchLogProbs(m, x));
    const v = lp.dataSync();
    lp.dispose();
    return displays.map((d, r) => {
      const pr = new Array<number>(d.objects.length).fill(-Infinity);
      x.maps[r].forEach((j, k) => (pr[j] = Math.max(pr[j], v[r * x.P + k])));
      return pr;
    });
  } finally {
    disposePixelInputs(x);
  }
}

/** Winner-take-all over the pixel model's object priorities with inhibition of return; priorities computed once per display. */
export function pixelPolicy(m: PixelModel, displays: readonly SearchDisplay[], maxFixations: number): Policy {
  const pr = new Map<SearchDisplay, number[]>();
  const chunk = 128;
  for (let s = 0; s < displays.length; s += chunk) {
    const part = displays.slice(s, s + chunk);
    pixelPriorities(m, part).forEach((p, i) => pr.set(part[i], p));
  }
  return {
    name: 'pixel',
    next: (d, prefix) => {
      const p = pr.get(d);
      if (!p)
        throw new ShapeError(`pixelPolicy: display '${d.id}' was not among the displays the policy was built for`);
      return stops(d, prefix, maxFixations) ? -1 : argmaxBy(unvisited(d, prefix), (j) => p[j]);
    },
  };
}

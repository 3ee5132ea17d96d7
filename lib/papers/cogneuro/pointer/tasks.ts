/**
 * The four pointer tasks and their batches.
 *
 * An example is a set of points and the answer as a sequence of point indices. The decoder points at positions of
 * the encoder memory: position 0 is the end symbol (EOS, a learned vector), position j >= 1 is point j - 1.
 *
 * Worked example (hull, n = 5): points [[.1,.1],[.9,.2],[.5,.5],[.8,.9],[.2,.8]]; the hull counter-clockwise from
 * the leftmost point is [0, 1, 3, 4], so the target positions are [1, 2, 4, 5, 0] (the trailing 0 is EOS) and the
 * decoder inputs are [GO, p0, p1, p3, p4].
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../../util/random.js';
import { convexHull, cross, delaunay, type Point, polygonArea } from './geometry.js';
import { HELD_KARP_MAX, heldKarp, twoOpt } from './tsp.js';

export type TaskName = 'hull' | 'delaunay' | 'tsp' | 'sort';

/**
 * Which outputs the softmax ranges over, in training and in decoding.
 * - `masked` (ours): padding, points already chosen (hull, TSP, sort), EOS where it would break the answer's structure
 *   and, for the fixed-vocabulary baselines, classes past the input's n are excluded, so every answer is well formed.
 * - `unconstrained` (the paper's hull and Delaunay): every input point and EOS at every step (only padding, which the
 *   paper's unpadded inputs did not have, is excluded); a fixed-vocabulary baseline may name any class of its
 *   vocabulary, including points the input does not have. Answers can repeat points or stop early: the metrics count
 *   those as invalid (the paper's FAIL).
 */
export type Decoding = 'masked' | 'unconstrained';

/** How `validPositions` builds a step's mask. */
export interface MaskOptions {
  decoding?: Decoding;
  /** A fixed-vocabulary model: output class j names point j - 1 even past the input's n (unconstrained only). */
  fixedVocabulary?: boolean;
}

export interface TaskSpec {
  name: TaskName;
  /** Coordinates per input element: 2 for points, 1 for numbers to sort. */
  coordDim: number;
  /** Whether the answer ends with EOS (variable length) rather than having a fixed length n. */
  eos: boolean;
  /** Whether a point may be chosen at most once (hull, TSP, sort). */
  maskChosen: boolean;
  /** Whether EOS may be chosen after `step` outputs (structure of the answer). */
  eosAllowed(step: number): boolean;
  /** Decoding steps that always suffice for n points (EOS included). */
  maxSteps(n: number): number;
  /** The exact answer as point indices (EOS not included). */
  label(points: Point[]): number[];
}

export const TASKS: Record<TaskName, TaskSpec> = {
  hull: {
    name: 'hull',
    coordDim: 2,
    eos: true,
    maskChosen: true,
    eosAllowed: (step) => step >= 3,
    maxSteps: (n) => n + 1,
    // Starting at the leftmost point (a geometric property) rather than the smallest index (the paper's choice, a
    // property of the input order) made the answer learnable within a short run; the metrics compare cycles, so
    // either start scores the same.
    label: (p) => convexHull(p, 'leftmost'),
  },
  delaunay: {
    name: 'delaunay',
    coordDim: 2,
    eos: true,
    maskChosen: false,
    eosAllowed: (step) => step >= 3 && step % 3 === 0,
    // A triangulation of n points has at most 2n - 5 triangles.
    maxSteps: (n) => 3 * Math.max(1, 2 * n - 5) + 1,
    // Triangles by the x of their centroid, each counter-clockwise from its leftmost corner: an order the decoder can
    // follow by looking at the points. (Sorted index triples, the natural order, hid the geometry behind the indices.)
    label: (p) =>
      delaunay(p)
        .map((t) => geometricTriangle(p, t))
        .sort((s, t) => centroidX(p, s) - centroidX(p, t))
        .flat(),
  },
  tsp: {
    name: 'tsp',
    coordDim: 2,
    eos: false,
    maskChosen: true,
    eosAllowed: () => false,
    maxSteps: (n) => n,
    // Held-Karp is exact up to 12 points; beyond, 2-opt is the reference (noted wherever it is reported).
    // From point 0, counter-clockwise: a direction the decoder can see (the canonical form's smaller-index neighbour
    // cannot be).
    label: (p) => counterClockwise(p, p.length <= HELD_KARP_MAX ? heldKarp(p) : twoOpt(p)),
  },
  sort: {
    name: 'sort',
    coordDim: 1,
    eos: false,
    maskChosen: true,
    eosAllowed: () => false,
    maxSteps: (n) => n,
    label: (p) => p.map((_, i) => i).sort((i, j) => p[i][0] - p[j][0]),
  },
};

const centroidX = (p: Point[], t: number[]): number => (p[t[0]][0] + p[t[1]][0] + p[t[2]][0]) / 3;

/** A triangle's corners counter-clockwise, starting at the leftmost. */
export function geometricTriangle(p: Point[], t: number[]): number[] {
  const ccw = cross(p[t[0]], p[t[1]], p[t[2]]) > 0 ? [...t] : [t[0], t[2], t[1]];
  const k = ccw.reduce((best, i, j) => (p[i][0] < p[ccw[best]][0] ? j : best), 0);
  return [...ccw.slice(k), ...ccw.slice(0, k)];
}

/** A tour from its first point (kept first), turned counter-clockwise if it ran clockwise. */
export function counterClockwise(p: Point[], tour: number[]): number[] {
  return polygonArea(p, tour) >= 0 ? tour : [tour[0], ...tour.slice(1).reverse()];
}

export interface Example {
  points: Point[];
  /** The exact answer, point indices. */
  answer: number[];
}

/** Uniform points in the unit square (or numbers in [0, 1) for sort). */
export function randomPoints(rng: Rng, n: number, coordDim: number): Point[] {
  return Array.from({ length: n }, () => Array.from({ length: coordDim }, () => rng.next()));
}

/**
 * `count` examples with n drawn uniformly from [nMin, nMax]: per example, or once per block of `sameSize`
 * consecutive examples (one n per training batch, so a batch is not padded to its longest member).
 */
export function makeExamples(
  task: TaskSpec,
  count: number,
  nMin: number,
  nMax: number,
  rng: Rng,
  sameSize = 1,
): Example[] {
  if (!(Number.isInteger(sameSize) && sameSize >= 1))
    throw new Error(`makeExamples: sameSize must be a positive integer, got ${sameSize}`);
  let n = nMin;
  return Array.from({ length: count }, (_, i) => {
    if (i % sameSize === 0) n = rng.int(nMin, nMax + 1);
    const points = randomPoints(rng, n, task.coordDim);
    return { points, answer: task.label(points) };
  });
}

/**
 * A padded batch. Shape legend: b batch, n points (padded to the longest), m decoder steps, c coordinates,
 * p = n + 1 pointer positions (EOS first).
 */
export interface PointerBatch {
  /** [b, n, c] coordinates, zero beyond each row's length. */
  x: tf.Tensor3D;
  lengths: number[];
  /** [b, m, c + 1] decoder inputs: step 0 is GO (last channel 1), then the coordinates of the previous answer. */
  decIn: tf.Tensor3D;
  /** [b, m] target positions (int32): point j is j + 1, EOS is 0. */
  targets: tf.Tensor2D;
  /** [b, m] 1 on real target steps. */
  lossMask: tf.Tensor2D;
  /** [b, m, p] 1 where a position may be chosen at that step (padding, used points and misplaced EOS are 0). */
  valid: tf.Tensor3D;
  examples: Example[];
}

/** Target positions for one example (answer + EOS when the task has one). */
export function targetPositions(task: TaskSpec, answer: number[]): number[] {
  const t = answer.map((i) => i + 1);
  return task.eos ? [...t, 0] : t;
}

/**
 * The positions valid at a decoding step, given the positions chosen before it. `p` is the padded position count;
 * at least one position is always valid (EOS when nothing else is, which only happens past the answer). With
 * `decoding: 'unconstrained'` every point (every class below p for a fixed vocabulary) and EOS are valid at every
 * step; decoding stops at EOS or after `maxSteps` outputs, whichever comes first.
 */
export function validPositions(
  task: TaskSpec,
  n: number,
  p: number,
  chosen: number[],
  opts: MaskOptions = {},
): Uint8Array {
  const v = new Uint8Array(p);
  if (opts.decoding === 'unconstrained') {
    const last = opts.fixedVocabulary ? p - 1 : n;
    for (let j = 1; j <= last; j++) v[j] = 1;
    v[0] = task.eos ? 1 : 0;
    return v;
  }
  if (task.eos && chosen.length >= task.maxSteps(n) - 1) {
    v[0] = 1; // the last step may only end the answer
    return v;
  }
  for (let j = 1; j <= n; j++) v[j] = 1;
  if (task.maskChosen) for (const c of chosen) if (c > 0) v[c] = 0;
  const rest = v.some((x) => x === 1);
  v[0] = (task.eos && task.eosAllowed(chosen.length)) || !rest ? 1 : 0;
  return v;
}

/**
 * The padded batch of `examples`; `positions` is the model's output count (`outputPositions`), `mask` the training
 * softmax's constraints (masked by default, the same masks as decoding).
 */
export function makeBatch(
  task: TaskSpec,
  examples: Example[],
  positions?: number,
  mask: MaskOptions = {},
): PointerBatch {
  const b = examples.length;
  const c = task.coordDim;
  const n = Math.max(...examples.map((e) => e.points.length));
  const p = positions ?? n + 1;
  const targetsOf = examples.map((e) => targetPositions(task, e.answer));
  const m = Math.max(...targetsOf.map((t) => t.length));
  const x = new Float32Array(b * n * c);
  const decIn = new Float32Array(b * m * (c + 1));
  const targets = new Int32Array(b * m);
  const lossMask = new Float32Array(b * m);
  const valid = new Float32Array(b * m * p);
  examples.forEach((e, r) => {
    e.points.forEach((pt, j) => pt.forEach((v, k) => (x[(r * n + j) * c + k] = v)));
    const t = targetsOf[r];
    decIn[r * m * (c + 1) + c] = 1; // GO
    for (let i = 0; i < m; i++) {
      if (i < t.length) {
        targets[r * m + i] = t[i];
        lossMask[r * m + i] = 1;
        if (i + 1 < m && t[i] > 0 && t[i] <= e.points.length)
          e.points[t[i] - 1].forEach((v, k) => (decIn[(r * m + i + 1) * (c + 1) + k] = v));
      }
      const vp = validPositions(task, e.points.length, p, t.slice(0, Math.min(i, t.length)), mask);
      valid.set(vp, (r * m + i) * p);
    }
  });
  return {
    x: tf.tensor3d(x, [b, n, c]),
    lengths: examples.map((e) => e.points.length),
    decIn: tf.tensor3d(decIn, [b, m, c + 1]),
    targets: tf.tensor2d(targets, [b, m], 'int32'),
    lossMask: tf.tensor2d(lossMask, [b, m]),
    valid: tf.tensor3d(valid, [b, m, p]),
    examples,
  };
}

export function disposeBatch(batch: PointerBatch): void {
  tf.dispose([batch.x, batch.decIn, batch.targets, batch.lossMask, batch.valid]);
}

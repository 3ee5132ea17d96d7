/**
 * The paper's metrics, on answers given as point indices.
 * - Hull: exact-sequence accuracy (the predicted cycle equals the label's, both rotated to start at their smallest
 *   index: same vertices, same counter-clockwise order),
 *   area coverage (predicted polygon area / true hull area, over outputs that are simple polygons) and the share of
 *   invalid outputs (not a simple polygon); the paper writes FAIL for area when outputs are invalid too often.
 * - Delaunay: triangle coverage (share of the true triangles predicted) and exact accuracy (same set).
 * - TSP: mean tour length of valid tours, against the reference (Held-Karp optimum, or 2-opt beyond 12 points).
 * - Sort: exact accuracy and per-position accuracy.
 */
import { canonicalTriangles, isSimplePolygon, polygonArea, rotateToMin } from './geometry.js';
import type { Example, TaskName } from './tasks.js';
import { isTour, tourLength } from './tsp.js';

export interface HullMetrics {
  accuracy: number;
  area_coverage: number;
  invalid: number;
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

function sameSequence(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function hullMetrics(examples: Example[], predicted: number[][]): HullMetrics {
  let exact = 0;
  let invalid = 0;
  const coverage: number[] = [];
  examples.forEach((e, i) => {
    const pred = predicted[i];
    if (sameSequence(rotateToMin(pred), rotateToMin(e.answer))) exact++;
    if (!isSimplePolygon(e.points, pred)) {
      invalid++;
      return;
    }
    coverage.push(Math.abs(polygonArea(e.points, pred)) / Math.abs(polygonArea(e.points, e.answer)));
  });
  return {
    accuracy: exact / examples.length,
    area_coverage: coverage.length ? mean(coverage) : 0,
    invalid: invalid / examples.length,
  };
}

export interface DelaunayMetrics {
  accuracy: number;
  triangle_coverage: number;
}

/** Consecutive triples of a flat answer; a triple with a repeated index is not a triangle and is dropped. */
export function triangles(flat: number[]): number[][] {
  const out: number[][] = [];
  for (let i = 0; i + 3 <= flat.length; i += 3) {
    const t = flat.slice(i, i + 3);
    if (new Set(t).size === 3) out.push(t);
  }
  return out;
}

export function delaunayMetrics(examples: Example[], predicted: number[][]): DelaunayMetrics {
  let exact = 0;
  const coverage: number[] = [];
  examples.forEach((e, i) => {
    const key = (t: number[]) => t.join(',');
    const truth = new Set(canonicalTriangles(triangles(e.answer)).map(key));
    const pred = new Set(canonicalTriangles(triangles(predicted[i])).map(key));
    let hit = 0;
    for (const t of pred) if (truth.has(t)) hit++;
    coverage.push(hit / truth.size);
    if (hit === truth.size && pred.size === truth.size && predicted[i].length === e.answer.length) exact++;
  });
  return { accuracy: exact / examples.length, triangle_coverage: mean(coverage) };
}

export interface TspMetrics {
  /** Mean length of the predicted tours (valid ones). */
  tour_length: number;
  /** Mean length of the reference tours. */
  ref_length: number;
  /** tour_length / ref_length - 1. */
  gap: number;
  /** Share of predicted tours equal to the reference (as cycles, either direction). */
  accuracy: number;
  invalid: number;
}

function sameCycle(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  const k = a.indexOf(b[0]);
  if (k < 0) return false;
  const n = a.length;
  const fwd = b.every((x, i) => a[(k + i) % n] === x);
  const bwd = b.every((x, i) => a[(k - i + n) % n] === x);
  return fwd || bwd;
}

export function tspMetrics(examples: Example[], predicted: number[][]): TspMetrics {
  const lens: number[] = [];
  const refs: number[] = [];
  let exact = 0;
  let invalid = 0;
  examples.forEach((e, i) => {
    const pred = predicted[i];
    if (!isTour(pred, e.points.length)) {
      invalid++;
      return;
    }
    lens.push(tourLength(e.points, pred));
    refs.push(tourLength(e.points, e.answer));
    if (sameCycle(pred, e.answer)) exact++;
  });
  const tl = mean(lens);
  const rl = mean(refs);
  return {
    tour_length: tl,
    ref_length: rl,
    gap: lens.length ? tl / rl - 1 : NaN,
    accuracy: exact / examples.length,
    invalid: invalid / examples.length,
  };
}

export interface SortMetrics {
  accuracy: number;
  position_accuracy: number;
}

export function sortMetrics(examples: Example[], predicted: number[][]): SortMetrics {
  let exact = 0;
  let pos = 0;
  let total = 0;
  examples.forEach((e, i) => {
    if (sameSequence(predicted[i], e.answer)) exact++;
    e.answer.forEach((x, j) => (pos += predicted[i][j] === x ? 1 : 0));
    total += e.answer.length;
  });
  return { accuracy: exact / examples.length, position_accuracy: pos / total };
}

/** The task's metrics as a flat record (names without split prefix). */
export function taskMetrics(task: TaskName, examples: Example[], predicted: number[][]): Record<string, number> {
  switch (task) {
    case 'hull':
      return { ...hullMetrics(examples, predicted) };
    case 'delaunay':
      return { ...delaunayMetrics(examples, predicted) };
    case 'tsp':
      return { ...tspMetrics(examples, predicted) };
    case 'sort':
      return { ...sortMetrics(examples, predicted) };
  }
}

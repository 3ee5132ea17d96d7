/**
 * The paper's metrics, on answers given as point indices. Indices outside the input (a fixed-vocabulary baseline
 * decoded without masks can name point 7 of a 5-point input) make a hull or tour invalid and a triangle wrong.
 * - Hull (Vinyals et al., section 4.2): exact-sequence accuracy (the predicted cycle equals the label's, both rotated to
 *   start at their smallest index: same vertices, same counter-clockwise order), area coverage (predicted polygon area
 *   / true hull area, over outputs that are simple polygons), the share of invalid outputs (not a simple polygon:
 *   repeated or unknown points, fewer than 3, self-crossing), and `fail`: 1 when more than 1% of the outputs are
 *   invalid, where the paper writes FAIL instead of an area.
 * - Delaunay: triangle coverage (share of the true triangles predicted) and exact accuracy (same set).
 * - TSP: mean tour length of valid tours, against the reference (Held-Karp optimum, or 2-opt beyond 12 points).
 * - Sort: exact accuracy and per-position accuracy.
 * Each `_ci95` is the normal-approximation 95% half-width over the test examples (for the TSP gap: of the paired
 * per-example length difference, divided by the mean reference length).
 */

import { meanCi, proportionCi95 } from '../../../util/stats.js';
import { canonicalTriangles, isSimplePolygon, polygonArea, rotateToMin } from './geometry.js';
import type { Example, TaskName } from './tasks.js';
import { isTour, tourLength } from './tsp.js';

export interface HullMetrics {
  accuracy: number;
  accuracy_ci95: number;
  area_coverage: number;
  area_coverage_ci95: number;
  invalid: number;
  /** 1 when more than `HULL_FAIL_SHARE` of the outputs are invalid: the paper's FAIL. */
  fail: number;
}

/** The paper reports FAIL instead of an area when more than 1% of the outputs are not simple polygons. */
export const HULL_FAIL_SHARE = 0.01;

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

function sameSequence(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Every index names one of the n points. */
const inRange = (ids: number[], n: number): boolean => ids.every((i) => Number.isInteger(i) && i >= 0 && i < n);

export function hullMetrics(examples: Example[], predicted: number[][]): HullMetrics {
  let exact = 0;
  let invalid = 0;
  const coverage: number[] = [];
  examples.forEach((e, i) => {
    const pred = predicted[i];
    if (sameSequence(rotateToMin(pred), rotateToMin(e.answer))) exact++;
    if (!inRange(pred, e.points.length) || !isSimplePolygon(e.points, pred)) {
      invalid++;
      return;
    }
    coverage.push(Math.abs(polygonArea(e.points, pred)) / Math.abs(polygonArea(e.points, e.answer)));
  });
  const N = examples.length;
  const area = meanCi(coverage);
  return {
    accuracy: exact / N,
    accuracy_ci95: proportionCi95(exact / N, N),
    area_coverage: coverage.length ? area.mean : 0,
    area_coverage_ci95: coverage.length ? area.ci95 : NaN,
    invalid: invalid / N,
    fail: invalid / N > HULL_FAIL_SHARE ? 1 : 0,
  };
}

export interface DelaunayMetrics {
  accuracy: number;
  accuracy_ci95: number;
  triangle_coverage: number;
  triangle_coverage_ci95: number;
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
  const N = examples.length;
  const cov = meanCi(coverage);
  return {
    accuracy: exact / N,
    accuracy_ci95: proportionCi95(exact / N, N),
    triangle_coverage: cov.mean,
    triangle_coverage_ci95: cov.ci95,
  };
}

export interface TspMetrics {
  /** Mean length of the predicted tours (valid ones). */
  tour_length: number;
  tour_length_ci95: number;
  /** Mean length of the reference tours (over the same examples). */
  ref_length: number;
  /** tour_length / ref_length - 1. */
  gap: number;
  /** Half-width of the gap's 95% interval: the paired length differences' interval over ref_length. */
  gap_ci95: number;
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
  const tl = meanCi(lens);
  const rl = mean(refs);
  const diff = meanCi(lens.map((l, i) => l - refs[i]));
  return {
    tour_length: tl.mean,
    tour_length_ci95: tl.ci95,
    ref_length: rl,
    gap: lens.length ? tl.mean / rl - 1 : NaN,
    gap_ci95: lens.length ? diff.ci95 / rl : NaN,
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

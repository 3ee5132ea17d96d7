/**
 * Planar (Euclidean) travelling salesman: the exact optimum by Held-Karp dynamic programming for n <= 12, and the
 * nearest-neighbour and 2-opt heuristics. Tours are permutations of point indices; the return edge is implied.
 */
import type { Point } from './geometry.js';

export const HELD_KARP_MAX = 12;

function dist(a: Point, b: Point): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

/** Closed tour length, the edge back to the start included. */
export function tourLength(points: Point[], tour: number[]): number {
  let s = 0;
  for (let i = 0; i < tour.length; i++) s += dist(points[tour[i]], points[tour[(i + 1) % tour.length]]);
  return s;
}

/** Whether `tour` visits each of the n points exactly once. */
export function isTour(tour: number[], n: number): boolean {
  return tour.length === n && new Set(tour).size === n && tour.every((i) => Number.isInteger(i) && i >= 0 && i < n);
}

/** The canonical form of a tour: starts at point 0 and goes towards the smaller of its two neighbours. */
export function canonicalTour(tour: number[]): number[] {
  const k = tour.indexOf(0);
  if (k < 0) throw new Error('canonicalTour: the tour does not visit point 0');
  const t = [...tour.slice(k), ...tour.slice(0, k)];
  return t.length > 2 && t[t.length - 1] < t[1] ? [0, ...t.slice(1).reverse()] : t;
}

/**
 * Held-Karp: best[S][j] = shortest path from 0 through the set S ending at j, over subsets S of {1..n-1};
 * O(2^n n^2) time. Returns the canonical optimal tour.
 */
export function heldKarp(points: Point[]): number[] {
  const n = points.length;
  if (n > HELD_KARP_MAX)
    throw new Error(`heldKarp: n = ${n} is above ${HELD_KARP_MAX}; use twoOpt for larger instances`);
  if (n <= 3) return canonicalTour(points.map((_, i) => i));
  const m = n - 1; // cities 1..n-1 as bits 0..m-1
  const d = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => dist(points[i], points[j])));
  const size = 1 << m;
  const best = new Float64Array(size * m).fill(Infinity);
  const parent = new Int8Array(size * m).fill(-1);
  for (let j = 0; j < m; j++) best[(1 << j) * m + j] = d[0][j + 1];
  for (let S = 1; S < size; S++) {
    for (let j = 0; j < m; j++) {
      if (!(S & (1 << j))) continue;
      const here = best[S * m + j];
      if (here === Infinity) continue;
      for (let k = 0; k < m; k++) {
        if (S & (1 << k)) continue;
        const T = S | (1 << k);
        const v = here + d[j + 1][k + 1];
        if (v < best[T * m + k]) {
          best[T * m + k] = v;
          parent[T * m + k] = j;
        }
      }
    }
  }
  const full = size - 1;
  let last = 0;
  for (let j = 1; j < m; j++) if (best[full * m + j] + d[j + 1][0] < best[full * m + last] + d[last + 1][0]) last = j;
  const tour: number[] = [];
  let S = full;
  let j = last;
  while (j >= 0) {
    tour.push(j + 1);
    const p = parent[S * m + j];
    S &= ~(1 << j);
    j = p;
  }
  return canonicalTour([0, ...tour.reverse()]);
}

/** Nearest neighbour from point `start`: always go to the closest unvisited point. */
export function nearestNeighbour(points: Point[], start = 0): number[] {
  const n = points.length;
  const used = new Uint8Array(n);
  const tour = [start];
  used[start] = 1;
  for (let step = 1; step < n; step++) {
    const here = points[tour[tour.length - 1]];
    let bestJ = -1;
    let bestD = Infinity;
    for (let j = 0; j < n; j++) {
      if (used[j]) continue;
      const dj = dist(here, points[j]);
      if (dj < bestD) [bestD, bestJ] = [dj, j];
    }
    used[bestJ] = 1;
    tour.push(bestJ);
  }
  return canonicalTour(tour);
}

/** 2-opt: reverse the segment between two edges while that shortens the tour (from `init`, or nearest neighbour). */
export function twoOpt(points: Point[], init?: number[]): number[] {
  const t = [...(init ?? nearestNeighbour(points))];
  const n = t.length;
  let improved = true;
  while (improved) {
    improved = false;
    for (let i = 0; i < n - 1; i++) {
      for (let k = i + 2; k < n; k++) {
        if (i === 0 && k === n - 1) continue; // the same pair of edges
        const a = points[t[i]],
          b = points[t[i + 1]],
          c = points[t[k]],
          e = points[t[(k + 1) % n]];
        if (dist(a, c) + dist(b, e) < dist(a, b) + dist(c, e) - 1e-12) {
          for (let lo = i + 1, hi = k; lo < hi; lo++, hi--) [t[lo], t[hi]] = [t[hi], t[lo]];
          improved = true;
        }
      }
    }
  }
  return canonicalTour(t);
}

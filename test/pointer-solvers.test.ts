/** Exact solvers and metrics of the pointer tasks, against brute force on small inputs. */
import { describe, expect, it } from 'vitest';
import {
  canonicalTour,
  canonicalTriangles,
  circumcircleIsEmpty,
  convexHull,
  cross,
  delaunay,
  delaunayMetrics,
  heldKarp,
  hullMetrics,
  inCircumcircle,
  isSimplePolygon,
  isTour,
  makeExamples,
  nearestNeighbour,
  type Point,
  polygonArea,
  sortMetrics,
  TASKS,
  tourLength,
  tspMetrics,
  twoOpt,
} from '../lib/papers/cogneuro/pointer/index.js';
import { Rng } from '../lib/util/random.js';

const pts = (rng: Rng, n: number): Point[] => Array.from({ length: n }, () => [rng.next(), rng.next()]);

/** Hull edges by brute force: (i, j) is a counter-clockwise hull edge iff every other point is strictly to its left. */
function bruteHull(p: Point[]): number[] {
  const next = new Map<number, number>();
  for (let i = 0; i < p.length; i++)
    for (let j = 0; j < p.length; j++)
      if (i !== j && p.every((q, k) => k === i || k === j || cross(p[i], p[j], q) > 0)) next.set(i, j);
  const start = Math.min(...next.keys());
  const cycle = [start];
  for (let k = next.get(start)!; k !== start; k = next.get(k)!) cycle.push(k);
  return cycle;
}

/** Delaunay by brute force: every triple whose circumcircle holds no other point (general position). */
function bruteDelaunay(p: Point[]): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < p.length; i++)
    for (let j = i + 1; j < p.length; j++)
      for (let k = j + 1; k < p.length; k++) {
        if (Math.abs(cross(p[i], p[j], p[k])) < 1e-12) continue;
        if (circumcircleIsEmpty(p, [i, j, k], 0)) out.push([i, j, k]);
      }
  return canonicalTriangles(out);
}

function permutations(xs: number[]): number[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((r) => [x, ...r]));
}

function bruteTsp(p: Point[]): number {
  const rest = p.map((_, i) => i).slice(1);
  return Math.min(...permutations(rest).map((r) => tourLength(p, [0, ...r])));
}

describe('convex hull (monotone chain)', () => {
  it('equals the brute-force hull, starts at its smallest index and turns counter-clockwise', () => {
    const rng = new Rng(1);
    for (let t = 0; t < 60; t++) {
      const p = pts(rng, 3 + (t % 10));
      const h = convexHull(p);
      expect(h).toEqual(bruteHull(p));
      expect(h[0]).toBe(Math.min(...h));
      expect(polygonArea(p, h)).toBeGreaterThan(0);
    }
  });

  it('drops collinear points on an edge and rejects fewer than 3 points', () => {
    const p: Point[] = [
      [0, 0],
      [1, 0],
      [2, 0],
      [2, 2],
      [0, 2],
    ];
    expect(convexHull(p)).toEqual([0, 2, 3, 4]);
    expect(() =>
      convexHull([
        [0, 0],
        [1, 1],
      ]),
    ).toThrow(/at least 3 points, got 2/);
  });
});

describe('Delaunay (Bowyer-Watson)', () => {
  it('equals the brute-force empty-circumcircle triangulation, with 2n - 2 - h triangles', () => {
    const rng = new Rng(2);
    for (let t = 0; t < 40; t++) {
      const p = pts(rng, 3 + (t % 8));
      const tri = delaunay(p);
      expect(tri).toEqual(bruteDelaunay(p));
      expect(tri.length).toBe(2 * p.length - 2 - convexHull(p).length);
      for (const x of tri) expect(circumcircleIsEmpty(p, x)).toBe(true);
    }
  });

  it('the incircle predicate: a point inside is positive, outside negative (counter-clockwise triangle)', () => {
    const [a, b, c] = [
      [0, 0],
      [1, 0],
      [0, 1],
    ];
    expect(inCircumcircle(a, b, c, [0.5, 0.5])).toBeGreaterThan(0);
    expect(inCircumcircle(a, b, c, [2, 2])).toBeLessThan(0);
  });
});

describe('TSP solvers', () => {
  it('Held-Karp equals brute force over all tours (n = 4..8), returned in canonical form', () => {
    const rng = new Rng(3);
    for (let t = 0; t < 25; t++) {
      const p = pts(rng, 4 + (t % 5));
      const tour = heldKarp(p);
      expect(isTour(tour, p.length)).toBe(true);
      expect(tour).toEqual(canonicalTour(tour));
      expect(tourLength(p, tour)).toBeCloseTo(bruteTsp(p), 9);
    }
    expect(() => heldKarp(pts(rng, 13))).toThrow(/n = 13 is above 12/);
  });

  it('2-opt and nearest neighbour give valid tours no shorter than the optimum; 2-opt is 2-opt-optimal', () => {
    const rng = new Rng(4);
    for (let t = 0; t < 20; t++) {
      const p = pts(rng, 9);
      const opt = tourLength(p, heldKarp(p));
      const nn = nearestNeighbour(p);
      const two = twoOpt(p);
      for (const tour of [nn, two]) {
        expect(isTour(tour, 9)).toBe(true);
        expect(tourLength(p, tour)).toBeGreaterThanOrEqual(opt - 1e-9);
      }
      expect(tourLength(p, two)).toBeLessThanOrEqual(tourLength(p, nn) + 1e-9);
      // No reversal of a segment shortens the 2-opt tour.
      for (let i = 1; i < 9; i++)
        for (let k = i + 1; k < 9; k++) {
          const r = [...two.slice(0, i), ...two.slice(i, k + 1).reverse(), ...two.slice(k + 1)];
          expect(tourLength(p, r)).toBeGreaterThanOrEqual(tourLength(p, two) - 1e-9);
        }
    }
  });

  it('canonicalTour starts at 0 and goes to the smaller neighbour', () => {
    expect(canonicalTour([3, 1, 0, 2, 4])).toEqual([0, 1, 3, 4, 2]);
    expect(canonicalTour([2, 0, 1, 3])).toEqual([0, 1, 3, 2]);
  });
});

describe('task labels', () => {
  it('TSP: the optimal tour from point 0, counter-clockwise; Delaunay: the same triangles, each counter-clockwise, by centroid x', () => {
    const rng = new Rng(6);
    for (let t = 0; t < 20; t++) {
      const p = pts(rng, 5 + (t % 5));
      const tour = TASKS.tsp.label(p);
      expect(tour[0]).toBe(0);
      expect(polygonArea(p, tour)).toBeGreaterThan(0);
      expect(tourLength(p, tour)).toBeCloseTo(tourLength(p, heldKarp(p)), 9);
      const flat = TASKS.delaunay.label(p);
      const tris = Array.from({ length: flat.length / 3 }, (_, i) => flat.slice(3 * i, 3 * i + 3));
      expect(canonicalTriangles(tris)).toEqual(delaunay(p));
      const cx = tris.map((x) => x.reduce((a, i) => a + p[i][0], 0));
      tris.forEach((x, i) => {
        expect(cross(p[x[0]], p[x[1]], p[x[2]])).toBeGreaterThan(0);
        if (i > 0) expect(cx[i]).toBeGreaterThanOrEqual(cx[i - 1]);
      });
    }
  });
});

describe('metrics', () => {
  const rng = new Rng(5);
  const hull = makeExamples(TASKS.hull, 30, 5, 12, rng);
  const del = makeExamples(TASKS.delaunay, 30, 5, 9, rng);
  const tsp = makeExamples(TASKS.tsp, 30, 5, 9, rng);
  const sort = makeExamples(TASKS.sort, 30, 5, 12, rng);

  it("give 100% on the solvers' own answers", () => {
    expect(
      hullMetrics(
        hull,
        hull.map((e) => e.answer),
      ),
    ).toMatchObject({ accuracy: 1, accuracy_ci95: 0, area_coverage: 1, invalid: 0, fail: 0 });
    expect(
      delaunayMetrics(
        del,
        del.map((e) => e.answer),
      ),
    ).toMatchObject({ accuracy: 1, triangle_coverage: 1, triangle_coverage_ci95: 0 });
    const t = tspMetrics(
      tsp,
      tsp.map((e) => e.answer),
    );
    expect(t.accuracy).toBe(1);
    expect(t.gap).toBe(0);
    expect(t.invalid).toBe(0);
    expect(
      sortMetrics(
        sort,
        sort.map((e) => e.answer),
      ),
    ).toEqual({ accuracy: 1, position_accuracy: 1 });
    // A hull given from another start, or a tour reversed, is the same answer.
    const rotated = hull.map((e) => [...e.answer.slice(1), e.answer[0]]);
    expect(hullMetrics(hull, rotated).accuracy).toBe(1);
    expect(
      tspMetrics(
        tsp,
        tsp.map((e) => [...e.answer].reverse()),
      ).accuracy,
    ).toBe(1);
  });

  it('give 0 on wrong answers', () => {
    // Clockwise hulls: same area but the wrong sequence.
    const cw = hullMetrics(
      hull,
      hull.map((e) => [e.answer[0], ...e.answer.slice(1).reverse()]),
    );
    expect(cw.accuracy).toBe(0);
    // Interior points only, or nothing: invalid.
    const bad = hullMetrics(
      hull,
      hull.map(() => [0, 1]),
    );
    expect(bad).toMatchObject({ accuracy: 0, area_coverage: 0, invalid: 1, fail: 1 });
    // Triangles through no true triangle: the first point three times is not a triangle at all.
    expect(
      delaunayMetrics(
        del,
        del.map(() => [0, 0, 0]),
      ),
    ).toMatchObject({ accuracy: 0, triangle_coverage: 0 });
    // Descending order.
    const desc = sortMetrics(
      sort,
      sort.map((e) => [...e.answer].reverse()),
    );
    expect(desc.accuracy).toBe(0);
    // A tour that is not a permutation is invalid.
    expect(
      tspMetrics(
        tsp,
        tsp.map(() => [0, 0]),
      ).invalid,
    ).toBe(1);
  });

  it('area coverage of a hull missing a vertex is below 1; a self-intersecting polygon is invalid', () => {
    const p: Point[] = [
      [0, 0],
      [1, 0],
      [1, 1],
      [0, 1],
    ];
    const ex = [{ points: p, answer: [0, 1, 2, 3] }];
    expect(hullMetrics(ex, [[0, 1, 2]])).toMatchObject({ accuracy: 0, area_coverage: 0.5, invalid: 0, fail: 0 });
    expect(isSimplePolygon(p, [0, 2, 1, 3])).toBe(false);
    expect(hullMetrics(ex, [[0, 2, 1, 3]]).invalid).toBe(1);
  });

  it('a non-optimal tour has a positive gap', () => {
    const worse = tsp.map((e) => [e.answer[0], e.answer[2], e.answer[1], ...e.answer.slice(3)]);
    const m = tspMetrics(tsp, worse);
    expect(m.gap).toBeGreaterThan(0);
    expect(m.accuracy).toBeLessThan(0.2);
  });
});

/**
 * Exact planar geometry for the pointer tasks: convex hull (Andrew's monotone chain), Delaunay triangulation
 * (Bowyer-Watson), and the predicates the metrics need (polygon area, simplicity, circumcircle tests).
 * Points are [x, y] pairs; every function returns point indices, never coordinates.
 */

export type Point = readonly number[];

/** Twice the signed area of triangle (a, b, c): > 0 when a, b, c turn counter-clockwise. */
export function cross(a: Point, b: Point, c: Point): number {
  return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
}

/**
 * Convex hull by the monotone chain: indices of the hull's vertices in counter-clockwise order, starting at the
 * smallest index (`start: 'smallest-index'`, the paper's canonical form) or at the leftmost point (`'leftmost'`,
 * where the chain itself starts). Collinear points on an edge are not vertices.
 */
export function convexHull(points: Point[], start: 'smallest-index' | 'leftmost' = 'smallest-index'): number[] {
  const n = points.length;
  if (n < 3) throw new Error(`convexHull: need at least 3 points, got ${n}`);
  const order = points.map((_, i) => i).sort((i, j) => points[i][0] - points[j][0] || points[i][1] - points[j][1]);
  const chain = (ids: number[]): number[] => {
    const out: number[] = [];
    for (const i of ids) {
      while (out.length >= 2 && cross(points[out[out.length - 2]], points[out[out.length - 1]], points[i]) <= 0)
        out.pop();
      out.push(i);
    }
    out.pop(); // the last point starts the other chain
    return out;
  };
  const hull = [...chain(order), ...chain([...order].reverse())];
  return start === 'leftmost' ? hull : rotateToMin(hull);
}

/** Rotate a cycle so that it starts at its smallest element (orientation kept). */
export function rotateToMin(cycle: number[]): number[] {
  if (cycle.length === 0) return [];
  let k = 0;
  for (let i = 1; i < cycle.length; i++) if (cycle[i] < cycle[k]) k = i;
  return [...cycle.slice(k), ...cycle.slice(0, k)];
}

/** Shoelace area of the polygon through `ids` (signed: > 0 counter-clockwise). */
export function polygonArea(points: Point[], ids: number[]): number {
  let s = 0;
  for (let i = 0; i < ids.length; i++) {
    const a = points[ids[i]];
    const b = points[ids[(i + 1) % ids.length]];
    s += a[0] * b[1] - a[1] * b[0];
  }
  return s / 2;
}

function segmentsCross(p: Point, q: Point, r: Point, s: Point): boolean {
  const d1 = cross(p, q, r);
  const d2 = cross(p, q, s);
  const d3 = cross(r, s, p);
  const d4 = cross(r, s, q);
  return ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0));
}

/** A simple polygon: at least 3 distinct vertices, non-zero area, and no two non-adjacent edges cross. */
export function isSimplePolygon(points: Point[], ids: number[]): boolean {
  const m = ids.length;
  if (m < 3 || new Set(ids).size !== m) return false;
  if (Math.abs(polygonArea(points, ids)) < 1e-12) return false;
  for (let i = 0; i < m; i++) {
    for (let j = i + 1; j < m; j++) {
      if (j === i + 1 || (i === 0 && j === m - 1)) continue; // adjacent edges share a vertex
      if (segmentsCross(points[ids[i]], points[ids[(i + 1) % m]], points[ids[j]], points[ids[(j + 1) % m]]))
        return false;
    }
  }
  return true;
}

export type Triangle = [number, number, number];

/**
 * > 0 when d lies strictly inside the circumcircle of the counter-clockwise triangle (a, b, c): the classic
 * incircle determinant. For a clockwise triangle the sign flips, so callers orient first.
 */
export function inCircumcircle(a: Point, b: Point, c: Point, d: Point): number {
  const ax = a[0] - d[0],
    ay = a[1] - d[1];
  const bx = b[0] - d[0],
    by = b[1] - d[1];
  const cx = c[0] - d[0],
    cy = c[1] - d[1];
  return (
    (ax * ax + ay * ay) * (bx * cy - cx * by) -
    (bx * bx + by * by) * (ax * cy - cx * ay) +
    (cx * cx + cy * cy) * (ax * by - bx * ay)
  );
}

/** Whether some other point lies strictly inside the circumcircle of triangle t (orientation-independent). */
export function circumcircleIsEmpty(points: Point[], t: Triangle, eps = 1e-12): boolean {
  const [a, b, c] = t.map((i) => points[i]);
  const sign = cross(a, b, c) > 0 ? 1 : -1;
  return points.every((p, i) => t.includes(i) || sign * inCircumcircle(a, b, c, p) <= eps);
}

/** Sort each triangle's indices, then the triangles lexicographically: the label order for Delaunay. */
export function canonicalTriangles(tris: number[][]): Triangle[] {
  return tris
    .map((t) => [...t].sort((x, y) => x - y) as Triangle)
    .sort((s, t) => s[0] - t[0] || s[1] - t[1] || s[2] - t[2]);
}

/**
 * Delaunay triangulation by Bowyer-Watson: start from a triangle enclosing every point, insert the points one by one,
 * remove the triangles whose circumcircle contains the new point and re-fan the hole from it. Triangles touching the
 * enclosing triangle's corners are dropped at the end. Returns canonical triangles (see canonicalTriangles).
 */
export function delaunay(points: Point[]): Triangle[] {
  const n = points.length;
  if (n < 3) throw new Error(`delaunay: need at least 3 points, got ${n}`);
  let minX = Infinity,
    minY = Infinity,
    maxX = -Infinity,
    maxY = -Infinity;
  for (const [x, y] of points) {
    minX = Math.min(minX, x);
    minY = Math.min(minY, y);
    maxX = Math.max(maxX, x);
    maxY = Math.max(maxY, y);
  }
  // The corners sit far out so that their circumcircles never cut into the real hull.
  const span = Math.max(maxX - minX, maxY - minY, 1e-9) * 1e4;
  const cx = (minX + maxX) / 2,
    cy = (minY + maxY) / 2;
  const all: Point[] = [...points, [cx - 2 * span, cy - span], [cx + 2 * span, cy - span], [cx, cy + 2 * span]];
  let tris: Triangle[] = [[n, n + 1, n + 2]]; // counter-clockwise
  for (let p = 0; p < n; p++) {
    const bad: Triangle[] = [];
    const keep: Triangle[] = [];
    for (const t of tris) (inCircumcircle(all[t[0]], all[t[1]], all[t[2]], all[p]) > 0 ? bad : keep).push(t);
    // The hole's boundary: edges of bad triangles that only one bad triangle has.
    const count = new Map<string, [number, number]>();
    const seen = new Map<string, number>();
    for (const [a, b, c] of bad) {
      for (const [u, v] of [
        [a, b],
        [b, c],
        [c, a],
      ] as [number, number][]) {
        const key = u < v ? `${u},${v}` : `${v},${u}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        count.set(key, [u, v]);
      }
    }
    for (const [key, [u, v]] of count) if (seen.get(key) === 1) keep.push([u, v, p]); // keeps counter-clockwise order
    tris = keep;
  }
  return canonicalTriangles(tris.filter((t) => t.every((i) => i < n)));
}

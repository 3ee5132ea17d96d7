/**
 * Scores of an attribution map against an object mask (both [h * w] row-major; higher map values = more relevant).
 *
 *   pointing game (Zhang et al. 2016): a hit when the map's maximum lies on the object, or within `tolerance`
 *     pixels of it (Chebyshev distance); a maximum shared by several pixels scores the share of them that hit.
 *   AUC: the probability that an object pixel outranks a background pixel (ties count half), i.e. the ROC AUC of the
 *     map as a detector of the mask.
 *   IoU: the top `fraction` of pixels by map value (every pixel >= the cut-off value) against the mask.
 */
import { meanCi as meanCiOf } from '../../../util/stats.js';

function checkPair(fn: string, map: ArrayLike<number>, mask: ArrayLike<number>): void {
  if (map.length !== mask.length || map.length === 0)
    throw new RangeError(
      `${fn}: map and mask must have the same non-zero length, got ${map.length} and ${mask.length}`,
    );
}

/** Pointing-game score of one map: 1 hit, 0 miss (fractional when the maximum is tied). */
export function pointingGame(map: ArrayLike<number>, mask: ArrayLike<number>, width: number, tolerance = 0): number {
  checkPair('pointingGame', map, mask);
  if (!(Number.isInteger(width) && width >= 1 && map.length % width === 0))
    throw new RangeError(`pointingGame: width must be a positive integer dividing ${map.length}, got ${width}`);
  if (!(Number.isInteger(tolerance) && tolerance >= 0))
    throw new RangeError(`pointingGame: tolerance must be an integer >= 0, got ${tolerance}`);
  const height = map.length / width;
  let best = -Infinity;
  for (let i = 0; i < map.length; i++) best = Math.max(best, map[i]);
  let ties = 0;
  let hits = 0;
  for (let i = 0; i < map.length; i++) {
    if (map[i] !== best) continue;
    ties++;
    const y = Math.floor(i / width);
    const x = i % width;
    let hit = false;
    for (let dy = -tolerance; dy <= tolerance && !hit; dy++)
      for (let dx = -tolerance; dx <= tolerance && !hit; dx++) {
        const yy = y + dy;
        const xx = x + dx;
        if (yy >= 0 && yy < height && xx >= 0 && xx < width && mask[yy * width + xx]) hit = true;
      }
    if (hit) hits++;
  }
  return hits / ties;
}

/** ROC AUC of the map as a detector of the mask (Mann-Whitney, ties half); NaN when the mask is empty or full. */
export function maskAuc(map: ArrayLike<number>, mask: ArrayLike<number>): number {
  checkPair('maskAuc', map, mask);
  const order = Array.from({ length: map.length }, (_, i) => i).sort((a, b) => map[a] - map[b]);
  let pos = 0;
  let rankSum = 0;
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && map[order[end + 1]] === map[order[start]]) end++;
    const rank = (start + end) / 2 + 1;
    for (let q = start; q <= end; q++)
      if (mask[order[q]]) {
        pos++;
        rankSum += rank;
      }
    start = end + 1;
  }
  const neg = map.length - pos;
  if (pos === 0 || neg === 0) return Number.NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** IoU of the top `fraction` of the map's pixels with the mask. */
export function topFractionIou(map: ArrayLike<number>, mask: ArrayLike<number>, fraction: number): number {
  checkPair('topFractionIou', map, mask);
  if (!(fraction > 0 && fraction <= 1))
    throw new RangeError(`topFractionIou: fraction must be in (0, 1], got ${fraction}`);
  const sorted = Float64Array.from(map).sort();
  const keep = Math.max(1, Math.round(fraction * map.length));
  const cut = sorted[map.length - keep];
  let inter = 0;
  let union = 0;
  for (let i = 0; i < map.length; i++) {
    const a = map[i] >= cut;
    const b = mask[i] !== 0;
    if (a && b) inter++;
    if (a || b) union++;
  }
  return union === 0 ? 0 : inter / union;
}

/** Mean and 95% normal-approximation half-width of a sample (NaNs left out). */
export function meanCi(values: readonly number[]): { mean: number; ci95: number; n: number } {
  return meanCiOf(values.filter((x) => !Number.isNaN(x)));
}

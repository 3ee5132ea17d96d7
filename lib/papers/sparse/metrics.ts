/**
 * How good is a sparse approximation? Three numbers against dense attention on the same q, k, v:
 *
 *   relative output error   ‖O_sparse − O_dense‖_F / ‖O_dense‖_F
 *   top-k recall            per query, the share of its k largest dense attention weights whose keys the method
 *                           scored (averaged over queries); k = min(k, visible keys)
 *   attention mass captured per query, Σ_{j scored} A_ij of the dense weights A (1 = nothing of weight was skipped)
 *
 * Shape legend: b batch, h heads, n queries, m keys, e value dim; weights [b, h, n, m], scored a 0/1 array of the same
 * shape (which pairs the method computed).
 */
import * as tf from '@tensorflow/tfjs';

/** ‖approx − exact‖_F / ‖exact‖_F. */
export function relativeError(approx: tf.Tensor | ArrayLike<number>, exact: tf.Tensor | ArrayLike<number>): number {
  const a = approx instanceof tf.Tensor ? approx.dataSync() : approx;
  const e = exact instanceof tf.Tensor ? exact.dataSync() : exact;
  if (a.length !== e.length) throw new Error(`relativeError: approx has ${a.length} values but exact has ${e.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - e[i]) ** 2;
    den += e[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

export interface CoverageMetrics {
  /** Mean over queries of the share of the dense top-k keys that were scored. */
  topkRecall: number;
  /** Mean over queries of the dense attention mass on scored keys. */
  massCaptured: number;
}

/**
 * Top-k recall and attention mass from dense weights [rows, m] (flattened b·h·n rows) and a predicate saying whether
 * row r scored key j. Rows with no visible key are skipped.
 */
export function coverage(
  weights: ArrayLike<number>,
  keys: number,
  scored: (row: number, key: number) => boolean,
  k: number,
): CoverageMetrics {
  const rows = weights.length / keys;
  let recall = 0;
  let mass = 0;
  let counted = 0;
  const idx: number[] = [];
  for (let r = 0; r < rows; r++) {
    idx.length = 0;
    let m = 0;
    for (let j = 0; j < keys; j++) {
      const w = weights[r * keys + j];
      if (w > 0) idx.push(j);
      if (scored(r, j)) m += w;
    }
    if (!idx.length) continue;
    idx.sort((a, b) => weights[r * keys + b] - weights[r * keys + a]);
    const top = idx.slice(0, Math.min(k, idx.length));
    recall += top.filter((j) => scored(r, j)).length / top.length;
    mass += m;
    counted++;
  }
  return { topkRecall: counted ? recall / counted : 0, massCaptured: counted ? mass / counted : 0 };
}

/** The pairs a block selection scores: selection per (row-block of `queryBlock` rows), as sets of key indices. */
export function selectionPredicate(
  keySets: Set<number>[],
  queriesPerRowGroup: number,
  queryBlock: number,
  causalOffset: number | null,
): (row: number, key: number) => boolean {
  const nb = Math.ceil(queriesPerRowGroup / queryBlock);
  return (row, key) => {
    const g = Math.floor(row / queriesPerRowGroup);
    const i = row % queriesPerRowGroup;
    if (causalOffset !== null && key > causalOffset + i) return false;
    return keySets[g * nb + Math.floor(i / queryBlock)].has(key);
  };
}

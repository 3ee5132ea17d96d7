/**
 * Ranking metrics of click models: AUC, GAUC (per-user AUC weighted by the user's impressions, over users with both a
 * click and a non-click, as in the DIN / DARE papers), the retrieval precision of a top-K search against known
 * relevance, and a bootstrap over users for their 95% confidence intervals (impressions of one user share a history,
 * so users, not impressions, are the independent units).
 */
import { Rng } from '../../../util/random.js';

/** Area under the ROC curve: P(score of a random click > score of a random non-click), ties counted 1/2. */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  if (labels.length !== n) throw new Error(`auc: labels has ${labels.length} entries but scores has ${n}`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const midRank = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) {
      if (labels[order[t]]) {
        pos++;
        rankSum += midRank;
      }
    }
    i = j + 1;
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) return Number.NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/**
 * GAUC: Σ_u w_u AUC_u / Σ_u w_u over users u with both labels, w_u = the user's impressions. `group[i]` is impression
 * i's user.
 */
export function gauc(scores: ArrayLike<number>, labels: ArrayLike<number>, group: ArrayLike<number>): number {
  const byUser = new Map<number, number[]>();
  for (let i = 0; i < scores.length; i++) {
    const g = byUser.get(group[i]);
    if (g) g.push(i);
    else byUser.set(group[i], [i]);
  }
  let num = 0;
  let den = 0;
  for (const rows of byUser.values()) {
    const a = auc(
      rows.map((i) => scores[i]),
      rows.map((i) => labels[i]),
    );
    if (Number.isNaN(a)) continue;
    num += a * rows.length;
    den += rows.length;
  }
  return den > 0 ? num / den : Number.NaN;
}

/**
 * GAUC when the impressions come in consecutive blocks of `block` per user (as in a user split or a user bootstrap
 * resample): the same value as `gauc` with group ⌊i / block⌋, by pairwise counting inside each block (no sort).
 */
export function gaucBlocks(scores: ArrayLike<number>, labels: ArrayLike<number>, block: number): number {
  if (!Number.isInteger(block) || block < 1 || scores.length % block !== 0)
    throw new Error(`gaucBlocks: block must be an integer >= 1 dividing ${scores.length}, got ${block}`);
  let num = 0;
  let den = 0;
  for (let s = 0; s < scores.length; s += block) {
    let wins = 0;
    let pairs = 0;
    for (let i = s; i < s + block; i++) {
      if (!labels[i]) continue;
      for (let j = s; j < s + block; j++) {
        if (labels[j]) continue;
        pairs++;
        wins += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      }
    }
    if (pairs === 0) continue;
    num += (wins / pairs) * block;
    den += block;
  }
  return den > 0 ? num / den : Number.NaN;
}

/**
 * Retrieval precision of a search that kept `kept[i·K .. i·K+K)` for impression i: hits / min(K, n_rel), averaged over
 * impressions with at least one relevant behaviour (with n_rel ≥ K it is precision@K; with fewer relevant behaviours,
 * the share of them that were found). `relevant(i, j)` says whether position j is relevant to impression i.
 */
export function retrievalPrecision(
  kept: ArrayLike<number>,
  K: number,
  relevantCount: ArrayLike<number>,
  relevant: (i: number, j: number) => boolean,
): { mean: number; perImpression: Float64Array } {
  const n = relevantCount.length;
  if (kept.length !== n * K)
    throw new Error(`retrievalPrecision: kept must have ${n}·${K} = ${n * K} entries, got ${kept.length}`);
  const per = new Float64Array(n).fill(Number.NaN);
  let sum = 0;
  let cnt = 0;
  for (let i = 0; i < n; i++) {
    if (relevantCount[i] === 0) continue;
    let hits = 0;
    for (let t = 0; t < K; t++) if (relevant(i, kept[i * K + t])) hits++;
    per[i] = hits / Math.min(K, relevantCount[i]);
    sum += per[i];
    cnt++;
  }
  return { mean: cnt ? sum / cnt : Number.NaN, perImpression: per };
}

/**
 * Percentile-bootstrap 95% CI of `stat` over users: each resample draws `users` users with replacement and passes the
 * impressions of the drawn users (with repeats) to `stat`. Returns the half-width (97.5th − 2.5th percentile) / 2.
 */
export function userBootstrapCi(
  users: number,
  perUser: number,
  stat: (rows: Int32Array) => number,
  resamples: number,
  seed: number,
): number {
  const rng = new Rng(seed).fork('userBootstrap');
  const values: number[] = [];
  const rows = new Int32Array(users * perUser);
  for (let r = 0; r < resamples; r++) {
    for (let u = 0; u < users; u++) {
      const pick = rng.int(0, users);
      for (let t = 0; t < perUser; t++) rows[u * perUser + t] = pick * perUser + t;
    }
    const v = stat(rows);
    if (Number.isFinite(v)) values.push(v);
  }
  if (values.length < 2) return Number.NaN;
  values.sort((a, b) => a - b);
  const q = (p: number) => values[Math.min(values.length - 1, Math.max(0, Math.round(p * (values.length - 1))))];
  return (q(0.975) - q(0.025)) / 2;
}

/**
 * Scanpath metrics of the OAT paper (its evaluation code: `nw_matching`, `_Levenshtein`, `behavior`):
 *
 * - sequence score: Needleman-Wunsch alignment with similarity 1 for equal objects, 0 otherwise and gap 0, divided by
 *   the longer length (so it is the longest common subsequence over max length, in [0, 1]);
 * - edit distance: Levenshtein distance between the object sequences;
 * - behaviour: target found (the last fixation is the target), scanpath length, fixations to the target (the first
 *   fixation on it, counted over found scanpaths), and the search / refixation / revisit ratios (each fixation is new,
 *   a repeat of the one before, or a return to an object seen earlier); `delta` = mean |model − human| / human over the
 *   five statistics found, length, search, refix, revisit (lower is better);
 * - per-step object accuracy: the predicted next fixation (or END) given the true prefix equals the true one.
 */
import { ShapeError } from '../../../util/shapes.js';

/** Needleman-Wunsch score (match 1, mismatch 0, gap 0) over max(|a|, |b|); 1 for two empty sequences. */
export function sequenceScore(a: readonly number[], b: readonly number[]): number {
  if (a.length === 0 && b.length === 0) return 1;
  const F = Array.from({ length: a.length + 1 }, () => new Float64Array(b.length + 1));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      F[i][j] = Math.max(F[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 1 : 0), F[i - 1][j], F[i][j - 1]);
    }
  }
  return F[a.length][b.length] / Math.max(a.length, b.length);
}

/** Levenshtein distance (insert, delete, substitute each cost 1). */
export function editDistance(a: readonly number[], b: readonly number[]): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

export interface Behaviour {
  found: number;
  length: number;
  /** First fixation on the target (1-based), NaN when never fixated. */
  toTarget: number;
  search: number;
  refix: number;
  revisit: number;
}

/** Behavioural statistics of one scanpath; ratios are 0 for an empty one. */
export function behaviour(scanpath: readonly number[], target: number): Behaviour {
  const n = scanpath.length;
  let search = 0,
    refix = 0,
    revisit = 0;
  const seen = new Set<number>();
  scanpath.forEach((f, i) => {
    if (i > 0 && f === scanpath[i - 1]) refix++;
    else if (seen.has(f)) revisit++;
    else search++;
    seen.add(f);
  });
  const first = scanpath.indexOf(target);
  return {
    found: n > 0 && scanpath[n - 1] === target ? 1 : 0,
    length: n,
    toTarget: first >= 0 ? first + 1 : NaN,
    search: n ? search / n : 0,
    refix: n ? refix / n : 0,
    revisit: n ? revisit / n : 0,
  };
}

export interface ScanpathSummary {
  seq_score: number;
  edit_distance: number;
  found_rate: number;
  length: number;
  /** Mean fixations to the target over scanpaths that fixated it. */
  fix_to_target: number;
  search: number;
  refix: number;
  revisit: number;
}

const BEHAVIOUR_KEYS = ['found_rate', 'length', 'search', 'refix', 'revisit'] as const;

/**
 * Mean metrics of predicted scanpaths against the human ones (one prediction per trial, or `k` per trial in order:
 * predicted[i · k + s] belongs to trial i).
 */
export function summarize(
  predicted: readonly number[][],
  human: readonly number[][],
  targets: readonly number[],
): ScanpathSummary {
  if (human.length !== targets.length)
    throw new ShapeError(`summarize: ${human.length} human scanpaths but ${targets.length} targets`);
  if (human.length === 0 || predicted.length % human.length !== 0) {
    throw new ShapeError(
      `summarize: predicted has ${predicted.length} scanpaths, which must be a positive multiple of the ${human.length} human ones`,
    );
  }
  const k = predicted.length / human.length;
  let seq = 0,
    edit = 0,
    found = 0,
    len = 0,
    search = 0,
    refix = 0,
    revisit = 0,
    toT = 0,
    nT = 0;
  predicted.forEach((p, i) => {
    const h = human[Math.floor(i / k)];
    seq += sequenceScore(p, h);
    edit += editDistance(p, h);
    const b = behaviour(p, targets[Math.floor(i / k)]);
    found += b.found;
    len += b.length;
    search += b.search;
    refix += b.refix;
    revisit += b.revisit;
    if (!Number.isNaN(b.toTarget)) {
      toT += b.toTarget;
      nT++;
    }
  });
  const n = predicted.length;
  return {
    seq_score: seq / n,
    edit_distance: edit / n,
    found_rate: found / n,
    length: len / n,
    fix_to_target: nT ? toT / nT : NaN,
    search: search / n,
    refix: refix / n,
    revisit: revisit / n,
  };
}

/** OAT's delta: mean over the five behavioural statistics of |model − human| / human (absolute where human is 0). */
export function behaviourDelta(model: ScanpathSummary, human: ScanpathSummary): number {
  let s = 0;
  for (const k of BEHAVIOUR_KEYS) s += Math.abs(model[k] - human[k]) / (human[k] !== 0 ? human[k] : 1);
  return s / BEHAVIOUR_KEYS.length;
}

/**
 * Per-step accuracy: predicted[i][s] is the predicted next fixation (-1 = END) at step s of trial i given its true
 * prefix; steps are the scanpath's fixations and its END (len + 1 per trial).
 */
export function stepAccuracy(predicted: readonly number[][], human: readonly number[][]): number {
  if (predicted.length !== human.length)
    throw new ShapeError(`stepAccuracy: ${predicted.length} predictions but ${human.length} scanpaths`);
  let hit = 0,
    total = 0;
  human.forEach((h, i) => {
    if (predicted[i].length !== h.length + 1) {
      throw new ShapeError(
        `stepAccuracy: predicted[${i}] has ${predicted[i].length} steps but scanpath ${i} has ${h.length} fixations + END = ${h.length + 1}`,
      );
    }
    for (let s = 0; s <= h.length; s++) {
      hit += +(predicted[i][s] === (s < h.length ? h[s] : -1));
      total++;
    }
  });
  return hit / total;
}

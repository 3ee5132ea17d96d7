/**
 * The normal-approximation 95% interval of a mean: mean ± 1.96 · s / √n with s the sample standard deviation (n - 1).
 * n = 0 gives NaN for both; n = 1 gives a half-width of 0 (callers that want "unknown" there say so themselves).
 */
export function meanCi(xs: ArrayLike<number>): { mean: number; ci95: number; n: number } {
  const n = xs.length;
  if (n === 0) return { mean: Number.NaN, ci95: Number.NaN, n };
  let s = 0;
  for (let i = 0; i < n; i++) s += xs[i];
  const mean = s / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i] - mean) ** 2;
  const sd = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  return { mean, ci95: (1.96 * sd) / Math.sqrt(n), n };
}

/** Normal-approximation 95% half-width of a proportion p over n trials. */
export function proportionCi95(p: number, n: number): number {
  return 1.96 * Math.sqrt(Math.max(p * (1 - p), 0) / n);
}

/**
 * 95% half-width of the mean of proportions from several draws (e.g. random head sets) each scored on the same `rows`
 * test rows: the binomial error of those rows, counted once (the draws share them, so it does not shrink with more
 * draws), plus the spread between draws. Counting draws x rows as independent trials makes the interval too narrow.
 */
export function sharedRowsCi95(proportions: readonly number[], rows: number): number {
  const d = proportions.length;
  const mean = proportions.reduce((a, b) => a + b, 0) / d;
  const within = proportions.reduce((a, p) => a + p * (1 - p), 0) / d / rows;
  const between = d > 1 ? proportions.reduce((a, p) => a + (p - mean) ** 2, 0) / (d - 1) / d : 0;
  return 1.96 * Math.sqrt(within + between);
}

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

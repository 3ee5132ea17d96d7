/**
 * Training history as a danfojs DataFrame. danfojs-node is a CommonJS package that takes ~1.5 s to import, so it is
 * loaded on first use, not when attnlab is imported.
 */
import type * as dfdTypes from 'danfojs-node';

export type DataFrame = dfdTypes.DataFrame;
type Danfo = typeof dfdTypes;

let danfo: Promise<Danfo> | undefined;

/** The danfojs-node module, imported once. */
export function loadDanfo(): Promise<Danfo> {
  danfo ??= import('danfojs-node').then((m) => {
    // Node's CJS interop exposes named exports; fall back to `default` if a bundler hides them.
    const mod = m as Danfo & { default?: Danfo };
    return mod.DataFrame ? mod : (mod.default as Danfo);
  });
  return danfo;
}

/** One row per record; keys missing from a row (metrics only measured on some steps) become NaN. */
export async function recordsToDataFrame(
  records: readonly Record<string, number>[],
  columns?: readonly string[],
): Promise<DataFrame> {
  const dfd = await loadDanfo();
  const cols = columns ?? [...new Set(records.flatMap((r) => Object.keys(r)))];
  // danfojs rejects a dict of empty columns but accepts an empty row list.
  if (records.length === 0) return new dfd.DataFrame([], { columns: [...cols] });
  const data: Record<string, number[]> = {};
  for (const c of cols) data[c] = records.map((r) => r[c] ?? NaN);
  return new dfd.DataFrame(data, { columns: [...cols] });
}

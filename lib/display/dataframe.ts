/** danfojs `DataFrame` and `Series` as an HTML table (escaped) plus aligned text; recognised by shape, not by import. */
import type { MimeBundle } from './handle.js';
import { htmlTable, type Table, textTable } from './html.js';

interface FrameLike {
  $isSeries: boolean;
  columns: unknown[];
  index: unknown[];
  values: unknown[];
  shape: number[];
}

export function isDataFrameOrSeries(x: unknown): x is FrameLike {
  if (x === null || typeof x !== 'object') return false;
  const f = x as Record<string, unknown>;
  return (
    typeof f.$isSeries === 'boolean' && Array.isArray(f.columns) && Array.isArray(f.index) && Array.isArray(f.values)
  );
}

/** Rows shown before the middle is elided, as pandas does. */
const MAX_ROWS = 60;
const EDGE_ROWS = 10;

function elide<T>(rows: T[], index: unknown[]): { rows: T[]; index: unknown[]; elided: number } {
  if (rows.length <= MAX_ROWS) return { rows, index, elided: 0 };
  const keep = [...rows.slice(0, EDGE_ROWS), ...rows.slice(-EDGE_ROWS)];
  return {
    rows: keep,
    index: [...index.slice(0, EDGE_ROWS), ...index.slice(-EDGE_ROWS)],
    elided: rows.length - 2 * EDGE_ROWS,
  };
}

export function frameTable(f: FrameLike): Table & { elided: number } {
  const rows = f.$isSeries ? (f.values as unknown[]).map((v) => [v]) : (f.values as unknown[][]);
  const cut = elide(rows, f.index);
  const kind = f.$isSeries ? 'Series' : 'DataFrame';
  const caption = `${kind} ${f.shape.join(' x ')}${cut.elided ? ` (${cut.elided} rows not shown)` : ''}`;
  return { columns: f.columns, rows: cut.rows, index: cut.index, caption, elided: cut.elided };
}

export function frameBundle(f: FrameLike): MimeBundle {
  const t = frameTable(f);
  return { 'text/plain': textTable(t), 'text/html': htmlTable(t) };
}

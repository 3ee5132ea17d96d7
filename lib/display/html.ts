/** Escaping and tables shared by the formatters: HTML for notebooks, aligned text for terminals and `text/plain`. */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escape text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** One cell as text: numbers compactly (at most 6 significant digits), everything else with String(). */
export function cellText(v: unknown): string {
  if (typeof v === 'number') {
    if (Number.isInteger(v) || !Number.isFinite(v)) return String(v);
    const abs = Math.abs(v);
    return abs !== 0 && (abs < 1e-4 || abs >= 1e6) ? v.toExponential(4) : String(Number(v.toPrecision(6)));
  }
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'object') return JSON.stringify(v) ?? String(v);
  return String(v);
}

export interface Table {
  columns: readonly unknown[];
  rows: readonly (readonly unknown[])[];
  /** Row labels shown as a first header column (a DataFrame's index). */
  index?: readonly unknown[];
  caption?: string;
}

const TABLE_STYLE = 'border-collapse:collapse;font-family:ui-monospace,monospace;font-size:12px;' + 'text-align:right';
const CELL_STYLE = 'padding:2px 8px;border-bottom:1px solid #ddd';

export function htmlTable(t: Table): string {
  const th = (v: unknown) => `<th style="${CELL_STYLE}">${escapeHtml(cellText(v))}</th>`;
  const td = (v: unknown) => `<td style="${CELL_STYLE}">${escapeHtml(cellText(v))}</td>`;
  const head = `<tr>${t.index ? th('') : ''}${t.columns.map(th).join('')}</tr>`;
  const body = t.rows.map((row, i) => `<tr>${t.index ? th(t.index[i]) : ''}${row.map(td).join('')}</tr>`).join('');
  const caption = t.caption ? `<caption style="text-align:left">${escapeHtml(t.caption)}</caption>` : '';
  return `<table style="${TABLE_STYLE}">${caption}<thead>${head}</thead><tbody>${body}</tbody></table>`;
}

export function textTable(t: Table): string {
  const header = [...(t.index ? [''] : []), ...t.columns.map(cellText)];
  const lines = t.rows.map((row, i) => [...(t.index ? [cellText(t.index[i])] : []), ...row.map(cellText)]);
  const all = [header, ...lines];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const fmt = (r: string[]) =>
    r
      .map((s, c) => s.padStart(widths[c]!))
      .join('  ')
      .trimEnd();
  return [...(t.caption ? [t.caption] : []), fmt(header), ...lines.map(fmt)].join('\n');
}

/**
 * The library's own result objects, recognised by shape so this module imports neither the experiments nor the
 * training loop: an experiment result (summary, metrics, tables) and a training result (per-step records).
 */

import { trainingCurves } from './figures.js';
import { JUPYTER_DISPLAY, type MimeBundle } from './handle.js';
import { cellText, escapeHtml, htmlTable, type Table, textTable } from './html.js';
import { figureHtml, PLOTLY_MIME } from './plotly.js';

interface ExperimentResultLike {
  experiment: string;
  seed: number;
  quick: boolean;
  metrics: Record<string, number>;
  tables?: Record<string, Record<string, string | number>[]>;
  references?: ReferenceLike[];
  summary: string;
  seconds: number;
}

/** A paper number beside one of ours (PaperReference of lib/experiments/types.ts, by shape). */
interface ReferenceLike {
  metric: string;
  paper: number;
  source: string;
  /** How our setting differs from the paper's for this row. */
  setting?: string;
}

interface TrainResultLike {
  records: { step: number; loss: number; [k: string]: number }[];
  steps: number;
  stopped?: { message: string };
}

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object';

export function isExperimentResult(x: unknown): x is ExperimentResultLike {
  return (
    isObject(x) &&
    typeof x.experiment === 'string' &&
    typeof x.summary === 'string' &&
    isObject(x.metrics) &&
    typeof x.seconds === 'number'
  );
}

export function isTrainResult(x: unknown): x is TrainResultLike {
  return isObject(x) && Array.isArray(x.records) && typeof x.steps === 'number' && 'history' in x;
}

function recordsTable(rows: Record<string, unknown>[], caption: string): Table {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return { columns, rows: rows.map((r) => columns.map((c) => r[c])), caption };
}

/** Shown where a reference row gives no `setting`. */
export const NO_SETTING = 'not stated';

/** What the reference functions read of a result. */
type WithReferences = {
  metrics: Record<string, number>;
  tables?: Record<string, readonly Record<string, unknown>[]>;
  references?: readonly ReferenceLike[];
};

/** Our side of a reference: the metric of that name, else the table holding a row of that label (named, not read). */
function oursOf(r: WithReferences, metric: string): number | string | null {
  if (metric in r.metrics) return r.metrics[metric];
  for (const [name, rows] of Object.entries(r.tables ?? {}))
    if (rows.some((row) => Object.values(row).includes(metric))) return `row of table ${name}`;
  return null;
}

/**
 * The paper-vs-ours rows of a result: one per reference, with our value (the metric of that name; for a reference
 * that names a table row, the table), the paper's, where the paper's number comes from and how our setting differs.
 */
export function referencesTable(r: WithReferences): Table {
  return {
    columns: ['metric', 'ours', 'paper', 'source', 'setting (ours vs paper)'],
    rows: (r.references ?? []).map((ref) => [
      ref.metric,
      oursOf(r, ref.metric),
      ref.paper,
      ref.source,
      ref.setting ?? NO_SETTING,
    ]),
    caption: 'paper vs ours',
  };
}

const REF_CELL = 'padding:2px 8px;border-bottom:1px solid #ddd;vertical-align:top';

/** The paper-vs-ours table as HTML: numbers right-aligned, source and setting as left-aligned prose; all escaped. */
export function referencesHtml(r: WithReferences): string {
  const t = referencesTable(r);
  if (t.rows.length === 0) return '';
  const cell = (v: unknown, i: number, tag: 'td' | 'th') =>
    `<${tag} style="${REF_CELL};text-align:${i === 1 || i === 2 ? 'right' : 'left'}${i >= 3 ? ';max-width:32em' : ''}">${escapeHtml(cellText(v))}</${tag}>`;
  const head = `<tr>${t.columns.map((c, i) => cell(c, i, 'th')).join('')}</tr>`;
  const body = t.rows
    .map(
      (row) =>
        `<tr data-reference="${escapeHtml(String(row[0]))}">${row.map((v, i) => cell(v, i, 'td')).join('')}</tr>`,
    )
    .join('');
  return (
    '<table style="border-collapse:collapse;font-size:12px" class="attnlab-references">' +
    `<caption style="text-align:left">${escapeHtml(t.caption ?? '')}</caption><thead>${head}</thead><tbody>${body}</tbody></table>`
  );
}

/** The paper-vs-ours rows as plain text: one block per row (the source and setting are sentences, not columns). */
export function referencesText(r: WithReferences): string {
  const t = referencesTable(r);
  if (t.rows.length === 0) return '';
  return [
    'paper vs ours:',
    ...t.rows.map(
      ([metric, ours, paper, source, setting]) =>
        `  ${metric}: ours ${cellText(ours)}, paper ${cellText(paper)}\n    source: ${source}\n    setting: ${setting}`,
    ),
  ].join('\n');
}

/** A value that displays a result's paper-vs-ours table in a notebook: `referencesView(run)` as a cell's last expression. */
export function referencesView(r: WithReferences): {
  table: Table;
  [JUPYTER_DISPLAY](): MimeBundle;
} {
  return {
    table: referencesTable(r),
    [JUPYTER_DISPLAY]: () => ({
      'text/plain': referencesText(r) || 'no paper numbers',
      'text/html': referencesHtml(r) || '<p>no paper numbers</p>',
    }),
  };
}

export function experimentBundle(r: ExperimentResultLike): MimeBundle {
  const metrics: Table = { columns: ['metric', 'value'], rows: Object.entries(r.metrics), caption: 'metrics' };
  const tables = Object.entries(r.tables ?? {}).map(([name, rows]) => recordsTable(rows, name));
  const head = `${r.experiment} (${r.quick ? 'quick' : 'full'}, seed ${r.seed}, ${r.seconds.toFixed(1)} s)`;
  const refText = referencesText(r);
  const refHtml = referencesHtml(r);
  return {
    'text/plain': [
      head,
      r.summary,
      ...(refText ? ['', refText] : []),
      '',
      textTable(metrics),
      ...tables.flatMap((t) => ['', textTable(t)]),
    ].join('\n'),
    'text/html':
      `<div><b>${escapeHtml(r.experiment)}</b> <small>${escapeHtml(head.slice(r.experiment.length + 1))}</small>` +
      `<p>${escapeHtml(r.summary)}</p>${refHtml ? `${refHtml}<br/>` : ''}${htmlTable(metrics)}${tables.map((t) => `<br/>${htmlTable(t)}`).join('')}</div>`,
  };
}

export function trainBundle(r: TrainResultLike): MimeBundle {
  const last = r.records[r.records.length - 1];
  const text = `Training: ${r.steps} steps${last ? `, final loss ${last.loss.toFixed(4)}` : ''}${r.stopped ? `; stopped: ${r.stopped.message}` : ''}`;
  if (!last) return { 'text/plain': text };
  const fig = trainingCurves(r.records, { metrics: ['loss'], title: 'Training loss' });
  return {
    [PLOTLY_MIME]: { data: fig.data, layout: fig.layout },
    'text/html': `<div>${escapeHtml(text)}</div>${figureHtml(fig)}`,
    'text/plain': text,
  };
}

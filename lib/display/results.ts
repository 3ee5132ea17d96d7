/**
 * The library's own result objects, recognised by shape so this module imports neither the experiments nor the
 * training loop: an experiment result (summary, metrics, tables) and a training result (per-step records).
 */

import { trainingCurves } from './figures.js';
import type { MimeBundle } from './handle.js';
import { escapeHtml, htmlTable, type Table, textTable } from './html.js';
import { figureHtml, PLOTLY_MIME } from './plotly.js';

interface ExperimentResultLike {
  experiment: string;
  seed: number;
  quick: boolean;
  metrics: Record<string, number>;
  tables?: Record<string, Record<string, string | number>[]>;
  summary: string;
  seconds: number;
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

export function experimentBundle(r: ExperimentResultLike): MimeBundle {
  const metrics: Table = { columns: ['metric', 'value'], rows: Object.entries(r.metrics), caption: 'metrics' };
  const tables = Object.entries(r.tables ?? {}).map(([name, rows]) => recordsTable(rows, name));
  const head = `${r.experiment} (${r.quick ? 'quick' : 'full'}, seed ${r.seed}, ${r.seconds.toFixed(1)} s)`;
  return {
    'text/plain': [head, r.summary, '', textTable(metrics), ...tables.flatMap((t) => ['', textTable(t)])].join('\n'),
    'text/html':
      `<div><b>${escapeHtml(r.experiment)}</b> <small>${escapeHtml(head.slice(r.experiment.length + 1))}</small>` +
      `<p>${escapeHtml(r.summary)}</p>${htmlTable(metrics)}${tables.map((t) => `<br/>${htmlTable(t)}`).join('')}</div>`,
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

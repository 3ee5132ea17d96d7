/**
 * Turning any value into a MIME bundle, and showing it.
 *
 * Order of precedence: the value's own `[Symbol.for('Jupyter.display')]()` method, then registered formatters
 * (newest first), then the built-in ones (plotly figure, tensor, danfojs DataFrame/Series, experiment and training
 * results, list of records, flat record of numbers), then `util.inspect` as `text/plain`. Every bundle has `text/plain`.
 */
import { inspect } from 'node:util';
import { frameBundle, isDataFrameOrSeries } from './dataframe.js';
import { displaySink, JUPYTER_DISPLAY, type MimeBundle } from './handle.js';
import { htmlTable, type Table, textTable } from './html.js';
import { figureBundle, isFigure } from './plotly.js';
import { experimentBundle, isExperimentResult, isTrainResult, trainBundle } from './results.js';
import { isTensor, tensorBundle, tensorSummary } from './tensor.js';

export interface Formatter<T = unknown> {
  /** Shown in error messages when the formatter throws. */
  name: string;
  test(x: unknown): x is T;
  format(x: T): MimeBundle;
}

const registered: Formatter[] = [];

/** Add a formatter that takes precedence over the built-in ones (and over earlier registrations). */
export function registerFormatter<T>(f: Formatter<T>): void {
  registered.unshift(f as Formatter);
}

function isPlainRecord(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function isScalar(v: unknown): boolean {
  return (
    v === null ||
    ['number', 'string', 'boolean', 'bigint', 'undefined'].includes(typeof v) ||
    (isTensor(v) && v.shape.length === 0)
  );
}

function cell(v: unknown): unknown {
  return isTensor(v) ? tensorSummary(v) : v;
}

/** An array of flat records with scalar values (metrics per run, rows of results) as a table. */
const records: Formatter<Record<string, unknown>[]> = {
  name: 'records',
  test: (x): x is Record<string, unknown>[] =>
    Array.isArray(x) &&
    x.length > 0 &&
    x.length <= 1000 &&
    x.every((r) => isPlainRecord(r) && Object.values(r).every(isScalar)),
  format(rows) {
    const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const t: Table = { columns, rows: rows.map((r) => columns.map((c) => cell(r[c]))), index: rows.map((_, i) => i) };
    return { 'text/plain': textTable(t), 'text/html': htmlTable(t) };
  },
};

/** A flat record of numbers (a metrics object) as a two-column table. */
const metrics: Formatter<Record<string, number>> = {
  name: 'metrics',
  test: (x): x is Record<string, number> => {
    if (!isPlainRecord(x)) return false;
    const values = Object.values(x);
    return values.length > 0 && values.length <= 100 && values.every((v) => typeof v === 'number');
  },
  format(m) {
    const t: Table = { columns: ['metric', 'value'], rows: Object.entries(m) };
    return { 'text/plain': inspect(m), 'text/html': htmlTable(t) };
  },
};

const builtins: Formatter[] = [
  { name: 'plotly', test: isFigure, format: figureBundle } as Formatter,
  { name: 'tensor', test: isTensor, format: tensorBundle } as Formatter,
  { name: 'danfojs', test: isDataFrameOrSeries, format: frameBundle } as Formatter,
  { name: 'experiment result', test: isExperimentResult, format: experimentBundle } as Formatter,
  { name: 'training result', test: isTrainResult, format: trainBundle } as Formatter,
  records as Formatter,
  metrics as Formatter,
];

function plainText(x: unknown): string {
  return typeof x === 'string' ? x : inspect(x, { depth: 4, maxArrayLength: 50, breakLength: 100 });
}

/** The MIME bundle that displays `x`. */
export function toMimeBundle(x: unknown): MimeBundle {
  let bundle: MimeBundle | undefined;
  const own = (x as { [JUPYTER_DISPLAY]?: unknown } | null | undefined)?.[JUPYTER_DISPLAY];
  if (typeof own === 'function') {
    const b = own.call(x) as unknown;
    if (!isPlainRecord(b))
      throw new TypeError(`[Symbol.for('Jupyter.display')]() returned ${inspect(b)}, not a MIME bundle object`);
    bundle = b;
  }
  if (!bundle) {
    const f = [...registered, ...builtins].find((f) => f.test(x));
    if (f) {
      try {
        bundle = f.format(x);
      } catch (e) {
        throw new Error(`display formatter '${f.name}' failed: ${(e as Error).message}`, { cause: e });
      }
    }
  }
  if (!bundle) return { 'text/plain': inspect(x, { depth: 4, maxArrayLength: 50, breakLength: 100 }) };
  return 'text/plain' in bundle ? bundle : { ...bundle, 'text/plain': plainText(x) };
}

/**
 * Show `x` in the notebook as its own output (display_data); outside a notebook, print its `text/plain` form.
 * Strings are shown as text, without quotes.
 */
export function display(x: unknown, opts: { metadata?: Record<string, unknown> } = {}): void {
  const bundle = typeof x === 'string' ? { 'text/plain': x } : toMimeBundle(x);
  const sink = displaySink();
  if (sink) sink.send(bundle, { metadata: opts.metadata });
  else console.log(String(bundle['text/plain']));
}

/** Show an HTML fragment (falls back to its text outside a notebook). */
export function html(fragment: string, text = fragment.replace(/<[^>]*>/g, '')): void {
  const sink = displaySink();
  if (sink) sink.send({ 'text/html': fragment, 'text/plain': text });
  else console.log(text);
}

/** Empty the current cell's output (with `wait`, only when the next output arrives, which avoids flicker). */
export function clearOutput(wait = false): void {
  displaySink()?.clear?.(wait);
}

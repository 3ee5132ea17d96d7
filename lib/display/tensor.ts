/**
 * `tf.Tensor` in a notebook: dtype and shape, then the values as a table (small rank 0-2), a heatmap image (large
 * rank 2), or tfjs's own truncated printout with summary statistics (rank 3 and up).
 *
 * Tensors are recognised by shape (`shape`, `dtype`, `dataSync`), so this module does not load tfjs.
 */
import type { MimeBundle } from './handle.js';
import { escapeHtml, htmlTable } from './html.js';
import { heatmapPng } from './png.js';

/** The part of `tf.Tensor` the formatter reads. */
export interface TensorLike {
  shape: number[];
  dtype: string;
  size: number;
  isDisposed?: boolean;
  dataSync(): ArrayLike<number | string>;
  toString(verbose?: boolean): string;
}

export function isTensor(x: unknown): x is TensorLike {
  if (x === null || typeof x !== 'object') return false;
  const t = x as Record<string, unknown>;
  return (
    Array.isArray(t.shape) &&
    typeof t.dtype === 'string' &&
    typeof t.dataSync === 'function' &&
    typeof t.size === 'number'
  );
}

/** Largest table shown as a table; larger matrices become heatmaps. */
const MAX_TABLE_ROWS = 32;
const MAX_TABLE_COLS = 24;
/** Heatmaps are downsampled (block means) to at most this many cells per side. */
const MAX_HEATMAP_SIDE = 512;

interface Stats {
  min: number;
  max: number;
  mean: number;
  std: number;
}

function stats(values: ArrayLike<number>): Stats {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSq += v * v;
  }
  const mean = sum / values.length;
  return { min, max, mean, std: Math.sqrt(Math.max(0, sumSq / values.length - mean * mean)) };
}

function statsText(s: Stats): string {
  const f = (v: number) => Number(v.toPrecision(4));
  return `min ${f(s.min)}  max ${f(s.max)}  mean ${f(s.mean)}  std ${f(s.std)}`;
}

function blockMean(
  values: ArrayLike<number>,
  rows: number,
  cols: number,
): { data: Float32Array; rows: number; cols: number } {
  const fr = Math.ceil(rows / MAX_HEATMAP_SIDE);
  const fc = Math.ceil(cols / MAX_HEATMAP_SIDE);
  const r2 = Math.ceil(rows / fr);
  const c2 = Math.ceil(cols / fc);
  const data = new Float32Array(r2 * c2);
  const counts = new Float32Array(r2 * c2);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = Math.floor(r / fr) * c2 + Math.floor(c / fc);
      data[k]! += values[r * cols + c]!;
      counts[k]! += 1;
    }
  }
  for (let k = 0; k < data.length; k++) data[k]! /= counts[k]!;
  return { data, rows: r2, cols: c2 };
}

export function tensorBundle(t: TensorLike): MimeBundle {
  const head = `Tensor ${t.dtype} [${t.shape.join(', ')}]`;
  if (t.isDisposed)
    return { 'text/plain': `${head} (disposed)`, 'text/html': `<div>${escapeHtml(head)} <i>(disposed)</i></div>` };
  const values = t.dataSync();
  const numeric = t.dtype !== 'string' && t.dtype !== 'complex64';
  // tfjs prints "Tensor" and then the values indented by four spaces.
  const printed = t
    .toString()
    .replace(/^Tensor\s*\n/, '')
    .replace(/^ {4}/gm, '');
  const s = numeric && t.size > 0 ? stats(values as ArrayLike<number>) : undefined;
  const text = [head, printed, ...(s && t.size > 1 ? [statsText(s)] : [])].join('\n');
  const title = `<div style="font-family:ui-monospace,monospace;font-size:12px"><b>Tensor</b> ${escapeHtml(t.dtype)} [${t.shape.join(', ')}]${
    s && t.size > 1 ? ` &nbsp; ${escapeHtml(statsText(s))}` : ''
  }</div>`;
  const [rows, cols] =
    t.shape.length === 2 ? [t.shape[0]!, t.shape[1]!] : t.shape.length === 1 ? [1, t.shape[0]!] : [1, 1];

  if (t.shape.length <= 2 && rows <= MAX_TABLE_ROWS && cols <= MAX_TABLE_COLS) {
    const cells = Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => values[r * cols + c]));
    const table =
      t.shape.length === 0
        ? `<pre>${escapeHtml(String(values[0]))}</pre>`
        : htmlTable({
            columns: Array.from({ length: cols }, (_, c) => c),
            rows: cells,
            index: t.shape.length === 2 ? cells.map((_, r) => r) : undefined,
          });
    return { 'text/plain': text, 'text/html': title + table };
  }
  if (t.shape.length === 2 && numeric) {
    const small = blockMean(values as ArrayLike<number>, rows, cols);
    const scale = Math.max(1, Math.floor(256 / Math.max(small.rows, small.cols)));
    const png = heatmapPng(small.data, small.rows, small.cols, scale).toString('base64');
    const note = small.rows < rows || small.cols < cols ? ` (block means, ${small.rows}x${small.cols})` : '';
    return {
      'text/plain': text,
      'text/html': `${title}<img alt="${escapeHtml(head)} heatmap${note}" src="data:image/png;base64,${png}" style="image-rendering:pixelated"/>`,
      'image/png': png,
    };
  }
  return { 'text/plain': text, 'text/html': `${title}<pre>${escapeHtml(printed)}</pre>` };
}

/** A small text form of a tensor for other formatters' cells: the value of a scalar, else "Tensor dtype [shape]". */
export function tensorSummary(t: TensorLike): string {
  if (t.shape.length === 0 && !t.isDisposed) return String(t.dataSync()[0]);
  return `Tensor ${t.dtype} [${t.shape.join(', ')}]`;
}

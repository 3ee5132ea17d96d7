/**
 * Figure builders for what attention work looks at most. Each returns a plain plotly figure object (`{data,
 * layout}`) that can still be changed before it is shown; a figure displays itself as the last expression of a cell.
 *
 *   heatmap(matrix, { xTitle, yTitle })              any matrix (positional encodings, masks, scores)
 *   attentionHeatmap(weights, { tokens })            one head: queries down, keys across
 *   attentionGrid(perLayer, { tokens })              layers x heads of small heatmaps sharing one colour scale
 *   trainingCurves(history)                          loss (and any other metric) against step
 *   lineChart(series) / scatterChart(series)         y against x for one or more named series
 */
import type { Figure, Layout, Trace } from './plotly.js';
import { isTensor, type TensorLike } from './tensor.js';

/** A matrix as nested arrays or a tensor. */
export type Matrix = number[][] | TensorLike;

/** Nested arrays of `t`'s values (rank >= 1). */
function nested(t: TensorLike): unknown[] {
  const values = Array.from(t.dataSync() as ArrayLike<number>);
  const build = (offset: number, dim: number): unknown[] => {
    const size = t.shape[dim]!;
    if (dim === t.shape.length - 1) return values.slice(offset, offset + size);
    const stride = t.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: size }, (_, i) => build(offset + i * stride, dim + 1));
  };
  return t.shape.length === 0 ? [values[0]] : build(0, 0);
}

function describeShape(x: unknown): string {
  if (isTensor(x)) return `a tensor of shape [${x.shape.join(', ')}]`;
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  return typeof x;
}

/**
 * The 2-D slice to draw: a [q, k] matrix as is; [h, q, k] picks `head`; [b, h, q, k] picks `batch` and `head`.
 */
function toMatrix(w: Matrix | number[][][] | number[][][][], batch: number, head: number, who: string): number[][] {
  const arr = isTensor(w) ? nested(w) : (w as unknown[]);
  let m: unknown = arr;
  const depth = (x: unknown): number => (Array.isArray(x) ? 1 + depth(x[0]) : 0);
  const d = depth(m);
  if (d === 4) m = (m as unknown[][])[batch]?.[head];
  else if (d === 3) m = (m as unknown[])[head];
  else if (d !== 2)
    throw new TypeError(`${who}: weights must be [q, k], [h, q, k] or [b, h, q, k]; got ${describeShape(w)}`);
  if (!Array.isArray(m))
    throw new RangeError(`${who}: batch ${batch} / head ${head} is out of range for ${describeShape(w)}`);
  return m as number[][];
}

export interface HeatmapOptions {
  title?: string;
  /** Token labels for both axes (self-attention); `queryLabels`/`keyLabels` override per axis. */
  tokens?: readonly string[];
  queryLabels?: readonly string[];
  keyLabels?: readonly string[];
  /** For [b, h, q, k] or [h, q, k] weights: which slice to draw (default 0). */
  batch?: number;
  head?: number;
  /** Colour range; attention probabilities default to [0, 1]. */
  zmin?: number;
  zmax?: number;
  colorscale?: string;
}

/**
 * Tick labels by position, so repeated tokens (the point of an induction task) stay separate rows and columns;
 * plotly would merge equal category names.
 */
function ticks(labels: readonly string[] | undefined, n: number): Record<string, unknown> {
  if (!labels) return {};
  if (labels.length !== n) throw new RangeError(`heatmap: ${labels.length} labels for an axis of length ${n}`);
  const every = Math.max(1, Math.ceil(n / 40));
  const idx = Array.from({ length: n }, (_, i) => i).filter((i) => i % every === 0);
  return { tickmode: 'array', tickvals: idx, ticktext: idx.map((i) => labels[i]) };
}

export interface MatrixHeatmapOptions {
  title?: string;
  xTitle?: string;
  yTitle?: string;
  xLabels?: readonly string[];
  yLabels?: readonly string[];
  /** Colour range (default: the data's range). */
  zmin?: number;
  zmax?: number;
  colorscale?: string;
  /** Row 0 at the top (matrix order, the default) or at the bottom. */
  rowsDown?: boolean;
}

/** Any matrix as a heatmap: rows down the y axis, columns across. */
export function heatmap(matrix: Matrix, opts: MatrixHeatmapOptions = {}): Figure {
  const z = toMatrix(matrix, 0, 0, 'heatmap');
  const rows = z.length;
  const cols = z[0]?.length ?? 0;
  const trace: Trace = {
    type: 'heatmap',
    z,
    colorscale: opts.colorscale ?? 'Viridis',
    hovertemplate: 'row %{y}, column %{x}: %{z:.3f}<extra></extra>',
  };
  if (opts.zmin !== undefined) trace.zmin = opts.zmin;
  if (opts.zmax !== undefined) trace.zmax = opts.zmax;
  return {
    data: [trace],
    layout: {
      title: { text: opts.title ?? '' },
      xaxis: { title: { text: opts.xTitle ?? '' }, ...ticks(opts.xLabels, cols) },
      yaxis: {
        title: { text: opts.yTitle ?? '' },
        ...(opts.rowsDown === false ? {} : { autorange: 'reversed' }),
        ...ticks(opts.yLabels, rows),
      },
    },
  };
}

export function attentionHeatmap(weights: Matrix | number[][][] | number[][][][], opts: HeatmapOptions = {}): Figure {
  const z = toMatrix(weights, opts.batch ?? 0, opts.head ?? 0, 'attentionHeatmap');
  const q = z.length;
  const k = z[0]?.length ?? 0;
  const fig = heatmap(z, {
    title: opts.title ?? 'Attention weights',
    xTitle: 'key',
    yTitle: 'query',
    xLabels: opts.keyLabels ?? opts.tokens,
    yLabels: opts.queryLabels ?? opts.tokens,
    zmin: opts.zmin ?? 0,
    zmax: opts.zmax ?? 1,
    colorscale: opts.colorscale,
  });
  fig.data[0]!.hovertemplate = 'query %{y}, key %{x}: %{z:.3f}<extra></extra>';
  const side = Math.min(720, Math.max(320, 18 * Math.max(q, k) + 120));
  Object.assign(fig.layout!, { width: side + 80, height: side });
  return fig;
}

export interface GridOptions extends Omit<HeatmapOptions, 'head'> {
  layerNames?: readonly string[];
  /** Panel titles by head (default `H0`, `H1`, ...). */
  headNames?: readonly string[];
  /** Draw only these heads (default: all). */
  heads?: readonly number[];
}

/** Pixels between attentionGrid's panels, and its panel titles' font size (a title is about 1.4x its font). */
export const GRID_GAP_PX = 26;
export const GRID_TITLE_PX = 11;

/**
 * Layers x heads of attention maps. `perLayer[l]` is one layer's weights, [b, h, q, k] or [h, q, k] (a tensor or
 * nested arrays); all panels share the colour scale.
 */
export function attentionGrid(
  perLayer: readonly (TensorLike | number[][][] | number[][][][])[],
  opts: GridOptions = {},
): Figure {
  if (perLayer.length === 0) throw new RangeError('attentionGrid: no layers given');
  const headCount = (w: TensorLike | unknown[]): number => {
    if (isTensor(w)) return w.shape.length === 4 ? w.shape[1]! : w.shape[0]!;
    const d = (x: unknown): number => (Array.isArray(x) ? 1 + d(x[0]) : 0);
    return d(w) === 4 ? (w as unknown[][])[0]!.length : w.length;
  };
  const heads = opts.heads ?? Array.from({ length: headCount(perLayer[0]!) }, (_, h) => h);
  const rows = perLayer.length;
  const cols = heads.length;
  // Panels are laid out in pixels: each panel's title sits in the gap above it (GRID_GAP_PX, more than the title's
  // height), so titles never cover the panel above, however many rows there are.
  const width = Math.min(1400, 140 + 200 * cols);
  const height = Math.min(1800, 110 + 200 * rows);
  const margin = { t: 70 + GRID_GAP_PX, l: 60, r: 20, b: 30 };
  const plotW = width - margin.l - margin.r - 40; // room for the colour bar
  const plotH = height - margin.t - margin.b;
  const panelW = (plotW - (cols - 1) * GRID_GAP_PX) / cols;
  const panelH = (plotH - (rows - 1) * GRID_GAP_PX) / rows;
  const data: Trace[] = [];
  const layout: Layout = {
    title: { text: opts.title ?? 'Attention by layer and head' },
    width,
    height,
    annotations: [],
    margin,
  };
  perLayer.forEach((w, l) => {
    heads.forEach((h, c) => {
      const i = l * cols + c + 1;
      const z = toMatrix(w as Matrix, opts.batch ?? 0, h, 'attentionGrid');
      data.push({
        type: 'heatmap',
        z,
        zmin: opts.zmin ?? 0,
        zmax: opts.zmax ?? 1,
        colorscale: opts.colorscale ?? 'Viridis',
        showscale: i === 1,
        xaxis: `x${i === 1 ? '' : i}`,
        yaxis: `y${i === 1 ? '' : i}`,
        hovertemplate: `${opts.layerNames?.[l] ?? `layer ${l}`}, ${opts.headNames?.[c] ?? `head ${h}`}<br>query %{y}, key %{x}: %{z:.3f}<extra></extra>`,
      });
      const suffix = i === 1 ? '' : String(i);
      const x0 = (c * (panelW + GRID_GAP_PX)) / plotW;
      const top = 1 - (l * (panelH + GRID_GAP_PX)) / plotH;
      layout[`xaxis${suffix}`] = {
        domain: [x0, x0 + panelW / plotW],
        anchor: `y${suffix}`,
        showticklabels: false,
        ticks: '',
      };
      layout[`yaxis${suffix}`] = {
        domain: [top - panelH / plotH, top],
        anchor: `x${suffix}`,
        autorange: 'reversed',
        showticklabels: false,
        ticks: '',
      };
      (layout.annotations as unknown[]).push({
        text: `${opts.layerNames?.[l] ?? `L${l}`} ${opts.headNames?.[c] ?? `H${h}`}`,
        xref: `x${suffix} domain`,
        yref: `y${suffix} domain`,
        x: 0.5,
        y: 1,
        yanchor: 'bottom',
        yshift: 2,
        showarrow: false,
        font: { size: GRID_TITLE_PX },
      });
    });
  });
  return { data, layout };
}

/** One record per logged step (`{ step: 10, loss: 2.3, valLoss: 2.5 }`), or one array per metric. */
export type TrainingHistory = readonly Record<string, number | undefined>[] | Record<string, readonly number[]>;

export interface CurveOptions {
  title?: string;
  /** The x field of record histories (default `step`, else the record's position). */
  x?: string;
  /** Metrics to draw (default: every numeric field but x). */
  metrics?: readonly string[];
  logY?: boolean;
}

export function trainingCurves(history: TrainingHistory, opts: CurveOptions = {}): Figure {
  const xKey = opts.x ?? 'step';
  let series: { name: string; x: number[]; y: number[] }[];
  if (Array.isArray(history)) {
    const records = history as readonly Record<string, number | undefined>[];
    const keys = opts.metrics ?? [...new Set(records.flatMap((r) => Object.keys(r)))].filter((k) => k !== xKey);
    series = keys.map((name) => {
      const points = records
        .map((r, i) => [r[xKey] ?? i, r[name]] as const)
        .filter((p): p is readonly [number, number] => typeof p[1] === 'number' && Number.isFinite(p[1]));
      return { name, x: points.map((p) => p[0]), y: points.map((p) => p[1]) };
    });
  } else {
    const cols = history as Record<string, readonly number[]>;
    const xs = cols[xKey];
    const keys = opts.metrics ?? Object.keys(cols).filter((k) => k !== xKey);
    series = keys.map((name) => ({
      name,
      y: [...(cols[name] ?? [])],
      x: xs ? [...xs] : (cols[name] ?? []).map((_, i) => i),
    }));
  }
  return {
    data: series.map((s) => ({ type: 'scatter', mode: 'lines', name: s.name, x: s.x, y: s.y })),
    layout: {
      title: { text: opts.title ?? 'Training curves' },
      xaxis: { title: { text: xKey } },
      yaxis: { title: { text: series.length === 1 ? series[0]!.name : 'value' }, type: opts.logY ? 'log' : 'linear' },
      legend: { orientation: 'h' },
    },
  };
}

export interface Series {
  y: readonly number[];
  x?: readonly (number | string)[];
  name?: string;
}

export interface ChartOptions {
  title?: string;
  xTitle?: string;
  yTitle?: string;
  logX?: boolean;
  logY?: boolean;
}

function xyChart(mode: string, series: Series | readonly Series[] | readonly number[], opts: ChartOptions): Figure {
  const list: readonly Series[] =
    Array.isArray(series) && (series.length === 0 || typeof series[0] === 'number')
      ? [{ y: series as readonly number[] }]
      : Array.isArray(series)
        ? (series as readonly Series[])
        : [series as Series];
  return {
    data: list.map((s, i) => ({
      type: 'scatter',
      mode,
      name: s.name ?? `series ${i}`,
      x: s.x ? [...s.x] : s.y.map((_, j) => j),
      y: [...s.y],
    })),
    layout: {
      title: { text: opts.title ?? '' },
      xaxis: { title: { text: opts.xTitle ?? '' }, type: opts.logX ? 'log' : '-' },
      yaxis: { title: { text: opts.yTitle ?? '' }, type: opts.logY ? 'log' : '-' },
      showlegend: list.length > 1,
    },
  };
}

/** Lines: one trace per series; a bare number array is one series against its index. */
export function lineChart(series: Series | readonly Series[] | readonly number[], opts: ChartOptions = {}): Figure {
  return xyChart('lines+markers', series, opts);
}

/** Points: one trace per series. */
export function scatterChart(series: Series | readonly Series[] | readonly number[], opts: ChartOptions = {}): Figure {
  return xyChart('markers', series, opts);
}

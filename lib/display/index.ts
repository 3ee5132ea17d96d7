/**
 * Rich display for notebooks: the kernel contract (handles, sink), turning values into MIME bundles, formatters,
 * and plotly figure builders.
 *
 *   al.display(al.display.heatmap(weights))   // or make a figure the last expression of a cell
 */
export * from './handle.js';
export { toMimeBundle, display, html, clearOutput, registerFormatter, type Formatter } from './mime.js';
export { escapeHtml, htmlTable, textTable, type Table } from './html.js';
export { isFigure, figureBundle, figureHtml, plotlyScript, resetPlotlyEmbedding, PLOTLY_MIME, type Figure, type Trace, type Layout } from './plotly.js';
export { isTensor, tensorBundle, type TensorLike } from './tensor.js';
export { isDataFrameOrSeries, frameBundle } from './dataframe.js';
export { isExperimentResult, experimentBundle, isTrainResult, trainBundle } from './results.js';
export { encodePng, heatmapPng, viridis } from './png.js';
export {
  heatmap,
  attentionHeatmap,
  attentionGrid,
  trainingCurves,
  lineChart,
  scatterChart,
  type Matrix,
  type HeatmapOptions,
  type MatrixHeatmapOptions,
  type GridOptions,
  type TrainingHistory,
  type CurveOptions,
  type Series,
  type ChartOptions,
} from './figures.js';

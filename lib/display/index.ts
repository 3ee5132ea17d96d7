/**
 * Rich display for notebooks: the kernel contract (handles, sink), turning values into MIME bundles, formatters,
 * and plotly figure builders.
 *
 *   al.display(al.display.heatmap(weights))   // or make a figure the last expression of a cell
 */

export {
  type AttentionPatterns,
  AttentionViewer,
  type AttentionViewerOptions,
  attentionViewer,
  type LayerPattern,
} from './attention-viewer.js';
export {
  CLAIM_MIME,
  Claim,
  type ClaimCheck,
  type ClaimRecord,
  type ClaimSpec,
  checkNotebookClaims,
  claim,
  formatClaimNumber,
  markedClaims,
  type NotebookJson,
} from './claim.js';
export { frameBundle, isDataFrameOrSeries } from './dataframe.js';
export * from './display-handle.js';
export {
  attentionGrid,
  attentionHeatmap,
  type ChartOptions,
  type CurveOptions,
  type GridOptions,
  type HeatmapOptions,
  heatmap,
  lineChart,
  type Matrix,
  type MatrixHeatmapOptions,
  type Series,
  scatterChart,
  type TrainingHistory,
  trainingCurves,
} from './figures.js';
export * from './handle.js';
export { escapeHtml, htmlTable, type Table, textTable } from './html.js';
export { clearOutput, display, type Formatter, html, registerFormatter, toMimeBundle } from './mime.js';
export {
  type Figure,
  figureBundle,
  figureHtml,
  isFigure,
  type Layout,
  PLOTLY_MIME,
  plotlyFileName,
  plotlyScript,
  resetPlotlyEmbedding,
  type Trace,
} from './plotly.js';
export { encodePng, heatmapPng, viridis } from './png.js';
export {
  experimentBundle,
  isExperimentResult,
  isTrainResult,
  NO_SETTING,
  referencesHtml,
  referencesTable,
  referencesText,
  referencesView,
  trainBundle,
} from './results.js';
export { isTensor, type TensorLike, tensorBundle } from './tensor.js';

/**
 * ACT, attention calibration of hidden sinks (Yu et al. 2024, https://arxiv.org/abs/2406.15765): the column-mean sink
 * test, β-scaling with proportional redistribution, per-head selection on a calibration split, and the experiment
 * `act-calibration` (a softmax SinkLM on templated prompts, lib/data/prompts.ts). Equations and shapes: core.ts.
 */
export {
  ACT_BETA,
  ACT_THRESHOLD,
  type CalibrationOptions,
  calibrateAttention,
  calibrateAttentionNaive,
  markedMass,
  sinkColumns,
  sinkColumnsNaive,
} from './core.js';
export { type ActArtifacts, type ActConfig, type ActSelection, actCalibration, evaluatePrompts } from './experiment.js';

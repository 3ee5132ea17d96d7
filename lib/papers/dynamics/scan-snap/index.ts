/**
 * Scan and Snap (Tian, Wang, Chen, Du, NeurIPS 2023, https://arxiv.org/abs/2305.16380): a 1-layer transformer in its
 * Y/Z form, trained with separate decoder and attention learning rates; attention scans from common to distinct
 * tokens, then snaps. The model, its float64 reference and the optimizer are in model.ts; the experiment in
 * experiment.ts; the sequence classes in lib/data/sequence-classes.ts.
 *
 *   b_t = softmax_t(Z[m, x_t]),  f̃ = Σ_t b_t e_{x_t} / ‖·‖₂,  logits = Y f̃
 */

export type {
  SequenceBatch,
  SequenceBatchOptions,
  SequenceClass,
  SequenceClasses,
  SequenceClassesConfig,
  SequenceSplit,
} from '../../../data/sequence-classes.js';
export { sequenceClassBatch, sequenceClasses, sequenceSplitOf } from '../../../data/sequence-classes.js';
export type {
  ScanSnapArtifacts,
  ScanSnapConfig,
  ScanSnapCurve,
  ScanSnapSetting,
} from './experiment.js';
export { FIG6_ENTROPY, fig6Entropy, meanCi, scanSnapExperiment, snapStep } from './experiment.js';
export type { ScanSnapInit, ScanSnapOptions, ScanSnapOutput, ScanSnapParams, SgdGroup } from './model.js';
export {
  entropy,
  expectedTokenAttention,
  GroupSgd,
  ScanSnapModel,
  scanSnapForward,
  scanSnapLoss,
  scanSnapReference,
} from './model.js';

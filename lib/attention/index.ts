/**
 * Attention primitives. `sdpa` dispatches between the fused kernel (`flash`) and the dense path (`dense`, which also
 * returns weights and takes every scoring variant); `naiveAttention` is the float64 loop reference that tests hold every
 * other path to.
 */

export type { AttentionShapes, Scoring, SdpaOptions, SdpaResult } from './dense.js';
export { checkQkv, dense, MASKED_SCORE, maskTensor, normalise, repeatKv } from './dense.js';
export type { FlashOptions } from './flash.js';
export { flash, flashReference, flashSupports, maskIntervals, onlyBackendMissing } from './flash.js';
export type { LinearScanPath } from './linear-scan.js';
export {
  causalLinearScan,
  causalLinearScanReference,
  LINEAR_SCAN_PATHS,
  linearScanPath,
  SCAN_CHUNK,
} from './linear-scan.js';
export type { Dense, NaiveOptions } from './naive.js';
export { naiveAttention } from './naive.js';
export type { AttentionPath } from './sdpa.js';
export { sdpa } from './sdpa.js';

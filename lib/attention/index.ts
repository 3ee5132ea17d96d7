/**
 * Attention primitives. `sdpa` dispatches between the fused kernel (`flash`) and the dense path (`dense`, which also
 * returns weights and takes every scoring variant); `naiveAttention` is the float64 loop reference that tests hold every
 * other path to.
 */
export { sdpa } from './sdpa.js';
export type { AttentionPath } from './sdpa.js';
export { dense, checkQkv, repeatKv, normalise, maskTensor, MASKED_SCORE } from './dense.js';
export type { SdpaOptions, SdpaResult, Scoring, AttentionShapes } from './dense.js';
export { naiveAttention } from './naive.js';
export { flash, flashSupports, flashReference, maskIntervals } from './flash.js';
export type { FlashOptions } from './flash.js';
export type { Dense, NaiveOptions } from './naive.js';

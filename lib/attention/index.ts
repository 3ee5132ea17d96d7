/**
 * Attention primitives. `sdpa` is the dense reference-quality path; `naiveAttention` the float64 loop reference that
 * tests hold every other path to.
 */
export { sdpa, checkQkv, repeatKv, normalise, maskTensor, MASKED_SCORE } from './sdpa.js';
export type { SdpaOptions, SdpaResult, Scoring, AttentionShapes } from './sdpa.js';
export { naiveAttention } from './naive.js';
export { flash, flashSupports, flashReference, maskIntervals } from './flash.js';
export type { FlashOptions } from './flash.js';
export type { Dense, NaiveOptions } from './naive.js';

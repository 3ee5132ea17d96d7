/**
 * attnlab: attention mechanisms to learn, test and measure.
 *
 *   import * as al from 'attnlab';
 *   await al.backend.ready();
 *   const out = al.attention.sdpa(q, k, v, { mask: al.masks.causal() });
 */
import { registerFitProgress } from './train/fit-progress.js';

export * as tf from '@tensorflow/tfjs';
export * as attention from './attention/index.js';
export * as backend from './backend/index.js';
export * as ops from './backend/ops.js';
/** `await al.profile((mark) => step(mark))`: time, calls and bytes per kernel and phase (torch.profiler). */
export { profile } from './bench/profile.js';
/** The experiment contract and the catalog of every experiment (`al.experiments.runExperiment('induction-heads')`). */
export * as experiments from './catalog.js';
export * as data from './data/index.js';
/** `al.display(x)` shows x in a notebook; `al.display.attentionHeatmap(...)` and the rest are the display module. */
export { display } from './display/callable.js';
export type * as displayTypes from './display/index.js';
export * as layers from './layers/index.js';
export * as masks from './masks/index.js';
/** Attention in classifiers and recommenders, and attribution: `al.classifiers.attentionAt`, `.lama`, `.dare`, `.salient`. */
export * as classifiers from './papers/classifiers/index.js';
export * as brain from './papers/cogneuro/brain/index.js';
export * as oat from './papers/cogneuro/oat/index.js';
export * as pointer from './papers/cogneuro/pointer/index.js';
/** Learning dynamics and training objectives: `al.dynamics.icl`, `.scanSnap`, `.positional`, `.meap`, `.moh`. */
export * as dynamics from './papers/dynamics/index.js';
/** KV-cache compression and speculative decoding: `al.inference.kv`, `.retrievalHeads`, `.lazyEviction`, `.razor`, `.duo`, `.medusa`. */
export * as inference from './papers/inference/index.js';
/** Interpretability: `al.interp.sinks`, `.act`, `.patching`, `.circuits`, `.sae` (the attention viewer is `al.display.attentionViewer`). */
export * as interp from './papers/interp/index.js';
/** A small vision-language model and attention steering: `al.multimodal.toyvlm`, `.causalmm`, `.paint`, `.lqcd`, `.visualSink`, `.steer`, `.frozenBlock`. */
export * as multimodal from './papers/multimodal/index.js';
/** Recall vs. state size: `al.recurrent.zoology`, `.based`, `.flowformer`, `.aaren`, `.titans`, `.miras`. */
export * as recurrent from './papers/recurrent/index.js';
export * as sparse from './papers/sparse/index.js';
/** Vision, video and embodied attention: `al.vision.dragview`, `.gano`, `.csa`, `.codebook`. */
export * as vision from './papers/vision/index.js';
export * as positional from './positional/index.js';
/** `model.fit(x, y, { verbose: 1 })` shows a progress bar (tfjs alone has none); `al.FitProgress` to choose where. */
export { FitProgress } from './train/fit-progress.js';
export * as train from './train/index.js';
/** `for (const x of al.progress(items))`: a progress bar for any loop (tqdm). */
export { progress } from './train/progress.js';
export { Rng } from './util/random.js';
export { ShapeError } from './util/shapes.js';

registerFitProgress();

/**
 * Recall vs. state size (issue #19): models that trade attention's growing KV cache for a fixed-size recurrent state.
 * Every model has a parallel (training) form and a recurrent (step) form, tested equal, and reports its state in bytes.
 *
 *   al.recurrent.zoology     Arora et al. 2024, Zoology: MQAR, BaseConv and the conv + attention hybrid
 *   al.recurrent.based       Arora et al. 2024, BASED: Taylor linear attention + sliding window (the linear-attention core)
 *   al.recurrent.flowformer  Wu et al. 2022, Flowformer: flow-conserving linear attention
 *   al.recurrent.aaren       Feng et al. 2024, Aaren: attention as an RNN (a prefix scan)
 *   al.recurrent.titans      Behrouz et al. 2025, Titans: neural memory trained at test time, the MAG variant
 *   al.recurrent.miras       Behrouz et al. 2025, Miras: attentional bias x retention x update rule (Moneta, Yaad, Memora)
 *
 * Notebooks: 05-recall-vs-state (mqar-frontier, aaren), 06-test-time-memory (test-time-memory).
 */
export * as aaren from './aaren/index.js';
export * as based from './based/index.js';
export * as flowformer from './flowformer/index.js';
export * as miras from './miras/index.js';
export * as titans from './titans/index.js';
export * as zoology from './zoology/index.js';

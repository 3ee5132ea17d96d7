/**
 * Circuit reuse (Merullo et al. 2024, #10) and correct-letter heads (Lieberum et al. 2023, #17) on one ToyLM trained on
 * IOI-like, coloured-objects and MCQ prompts: the model, circuit discovery by iterated path patching, the circuit graph,
 * and the experiment `circuits`. The patching toolkit itself is in ../patching.
 */
export * from './experiment.js';
export * from './model.js';

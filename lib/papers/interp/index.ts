/**
 * Interpretability (issue #21): what is this head doing, and can I prove it? One namespace per paper, plus the
 * patching toolkit they share:
 *
 *   al.interp.sinks     Gu et al. 2025, When attention sink emerges: Sink_k metrics, softmax / sigmoid / KV-bias
 *                       attention, SinkLM
 *   al.interp.act       Yu et al. 2024, ACT: column-mean sink detection and calibration of selected heads
 *   al.interp.patching  the toolkit: activation patching per head and position, path patching, mean ablation,
 *                       direct logit attribution, attention-pattern edits, low-rank q/k (each tested on a hand-built
 *                       model whose circuit is known)
 *   al.interp.circuits  Merullo et al. 2024, circuit component reuse (IOI and coloured objects), and Lieberum et al.
 *                       2023, the correct-letter heads of multiple-choice answering
 *   al.interp.sae       O'Neill & Bui 2024, SAE circuit identification: sparse autoencoders on per-head outputs,
 *                       discrete codes, nodes and edges, scored against the patching circuit
 *
 * The attention viewer lives in lib/display (`al.display.attentionViewer`). Notebooks: 08-attention-sinks, 09-circuits.
 */
export * as act from './act/index.js';
export * as circuits from './circuits/index.js';
export * as patching from './patching/index.js';
export * as sae from './sae/index.js';
export * as sinks from './sinks/index.js';

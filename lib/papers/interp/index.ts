/**
 * Interpretability (issue #21): what is this head doing, and can I prove it? One namespace per paper, plus the
 * patching toolkit they share:
 *
 *   al.interp.sinks     Gu et al. 2025, When attention sink emerges: Sink_k metrics, softmax / sigmoid / KV-bias
 *                       attention, SinkLM
 *   al.interp.act       Yu et al. 2024, ACT: column-mean sink detection and calibration of selected heads
 *   al.interp.sae       SAE circuit discovery: sparse autoencoders on per-head outputs, codes, nodes and edges
 *
 * The attention viewer lives in lib/display (`al.display.attentionViewer`). Notebooks: 08-attention-sinks, 09-circuits.
 */
export * as act from './act/index.js';
export * as sae from './sae/index.js';
export * as sinks from './sinks/index.js';

/**
 * Attention in small classifiers and recommenders, and attribution (issue #23): can we trust what attention highlights,
 * and does separating what attention scores from what it aggregates help?
 *
 *   al.classifiers.text         the shared BiGRU + additive-attention text classifier (and escaped highlighted text)
 *   al.classifiers.attentionAt  Kitada & Iyatomi 2021, Attention AT / iAT: adversarial training on attention scores
 *   al.classifiers.lama         Mehta et al. 2019, LAMA: low-rank bilinear multi-head attention (and Lin et al.'s baseline)
 *   al.classifiers.dare         Feng et al. 2025, DARE: decoupled attention and representation embeddings
 *   al.classifiers.salient      Li et al. 2017, Salient Relevance: LRP rules and context-aware saliency on relevance maps
 *
 * Notebook: 12-classifiers-and-attribution.
 */
export * as attentionAt from './attention-at/index.js';
export * as dare from './dare/index.js';
export * as lama from './lama/index.js';
export * as salient from './salient-relevance/index.js';
export * as text from './text-attention/index.js';

/**
 * Position information for attention: four families, each a pure function on tensors (plus one thin layer).
 *
 * | encoding | paper | applied to |
 * | --- | --- | --- |
 * | `sinusoidal` | Vaswani et al. 2017, https://arxiv.org/abs/1706.03762 | token embeddings, added |
 * | `LearnedPositionEmbedding`, `addLearnedPositions` | BERT / GPT-2 absolute embeddings | token embeddings, added |
 * | `rope` | Su et al. 2021 (RoFormer), https://arxiv.org/abs/2104.09864 | q and k, rotated |
 * | `alibiBias` | Press et al. 2022 (ALiBi), https://arxiv.org/abs/2108.12409 | attention scores, added |
 *
 * Shape legend: batch, heads, seq (= queries or keys), dim (model or head width), n (positions).
 * Every function takes explicit positions or an offset, so incremental decoding with a KV cache matches the full pass.
 */

export * from './alibi.js';
export * from './learned.js';
export * from './rope.js';
export * from './sinusoidal.js';

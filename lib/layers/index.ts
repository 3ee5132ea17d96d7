/** Layers: tf.layers.Layer subclasses over the pure functions in functional.ts, with hook points and a KV cache. */
export { MultiHeadAttention, TransformerBlock } from './attention-layers.js';
export type { MultiHeadAttentionArgs, TransformerBlockArgs } from './attention-layers.js';
export { ToyLM } from './toylm.js';
export type { ToyLMConfig, ForwardOptions } from './toylm.js';
export { KVCache } from './cache.js';
export { HookRegistry, ActivationCache, scaleHeads } from './hooks.js';
export type { HookFn, HookContext } from './hooks.js';
export { attentionForward, blockForward, layerNorm, gelu, linear, splitHeads, mergeHeads, configMask } from './functional.js';
export type { AttentionConfig, BlockConfig, AttentionParams, BlockParams } from './functional.js';

/**
 * Layers: the building blocks as pure functions (functional.ts) with named hook points, their parameters on the one
 * seeded ParamFactory (params.ts, weights.ts), and tf.layers.Layer subclasses over them with a KV cache.
 */

export type { MultiHeadAttentionArgs, TransformerBlockArgs } from './attention-layers.js';
export { MultiHeadAttention, TransformerBlock } from './attention-layers.js';
export { KVCache } from './cache.js';
export { conv2dSame } from './conv.js';
export type {
  AttentionCall,
  AttentionConfig,
  AttentionKind,
  AttentionParams,
  AuxLosses,
  BlockCall,
  BlockConfig,
  BlockParams,
  MlpParams,
  MohConfig,
  MohGates,
  NormParams,
  RouterParams,
} from './functional.js';
export {
  attentionForward,
  blockForward,
  configMask,
  gelu,
  layerNorm,
  linear,
  mergeHeads,
  mlpForward,
  mohGates,
  normForward,
  splitHeads,
  topKMask,
} from './functional.js';
export type { HookContext, HookFn } from './hooks.js';
export { ActivationCache, HookRegistry, scaleHeads } from './hooks.js';
export type { Init, ParamFactoryOptions, SeedStream } from './params.js';
export { ParamFactory, weightSeed, xavierLimit } from './params.js';
export type { ForwardOptions, ToyLMConfig } from './toylm.js';
export { ToyLM } from './toylm.js';
export type { WeightInit } from './weights.js';
export { layerParams, makeAttention, makeBlock, makeMlp, makeNorm } from './weights.js';

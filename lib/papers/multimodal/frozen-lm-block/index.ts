/** The folder's public face: the mechanism (core.ts) and the experiment (experiment.ts). */
export * from './core.js';
export {
  type FrozenBlockArtifacts,
  type FrozenBlockConfig,
  type FrozenVariant,
  frozenLmBlock,
  TinyViT,
} from './experiment.js';

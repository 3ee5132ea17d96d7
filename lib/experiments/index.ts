/**
 * The experiment contract and config schemas (infrastructure: no paper is imported here). The catalog of experiments
 * is lib/catalog.ts, at the top of the library; `al.experiments` is that catalog.
 */

export { type ArtifactCodec, defaultCacheDir, listEntries, modelCodec, resolveCacheDir } from './cache.js';
export {
  type ArtifactCodecOptions,
  artifactCodec,
  assignWeights,
  charTokenizerKind,
  dataKind,
  hasExactly,
  type ModelKind,
  tokenBatchKind,
  toyLMKind,
  type WeightsKindOptions,
  weightsKind,
} from './codecs.js';
export * from './contract.js';
export type { ConfigSchema, Field, Schema } from './schema.js';
export { bool, ConfigError, deepMerge, int, list, num, obj, oneOf, opt, str, tuple, validate } from './schema.js';

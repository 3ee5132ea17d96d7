/** The folder's public face: the mechanism (core.ts) and the experiment (experiment.ts). */
export * from './core.js';
export {
  averagePrecision,
  type CsaArtifacts,
  type CsaConfig,
  csaLocalisation,
  type Detection,
  decodeProposals,
  temporalIoU,
  temporalMap,
} from './experiment.js';

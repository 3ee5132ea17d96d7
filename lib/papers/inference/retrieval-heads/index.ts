/** Retrieval heads (Wu et al. 2024): the mechanism (scores.ts) and the experiment's types (experiment.ts). */

export type { RetrievalHeadsArtifacts, RetrievalHeadsConfig } from './experiment.js';
export * from './scores.js';

/** The folder's public face: the mechanism (core.ts) and the experiment (experiment.ts). */
export * from './core.js';
export {
  type CodebookNavArtifacts,
  type CodebookNavConfig,
  codebookNav,
  linearProbe,
  type NavTrajectory,
} from './experiment.js';

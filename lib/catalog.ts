/**
 * The catalog: every experiment the library runs, listed here and nowhere else. It sits at the top of the library
 * (it imports the paper families; nothing below imports it). The command line, the notebooks and the tests find
 * experiments here by name; adding an experiment is one line below (see lib/papers/README.md).
 */
import {
  type AnyExperiment,
  type AnyExperimentResult,
  type RunOptions,
  runExperimentWith,
} from './experiments/contract.js';
import { inductionHeads } from './papers/basics/induction-heads/index.js';
import { attentionAt } from './papers/classifiers/attention-at/experiment.js';
import { dare } from './papers/classifiers/dare/experiment.js';
import { lama } from './papers/classifiers/lama/experiment.js';
import { salientRelevanceExperiment } from './papers/classifiers/salient-relevance/experiment.js';
import { brainCaptions, brainDecoding, brainEncoder } from './papers/cogneuro/brain/experiments.js';
import { oatScanpath } from './papers/cogneuro/oat/experiment.js';
import { pointerExperiments } from './papers/cogneuro/pointer/experiments.js';
import { iclRegression } from './papers/dynamics/icl-regression/experiment.js';
import { meapExperiment } from './papers/dynamics/meap/experiment.js';
import { mohExperiment } from './papers/dynamics/moh/experiment.js';
import { positionalAttentionExperiment } from './papers/dynamics/positional-attention/experiment.js';
import { scanSnapExperiment } from './papers/dynamics/scan-snap/experiment.js';
import { kvBudget } from './papers/inference/experiments/kv-budget.js';
import { medusaExperiment } from './papers/inference/medusa/experiment.js';
import { retrievalHeadsExperiment } from './papers/inference/retrieval-heads/experiment.js';
import { actCalibration } from './papers/interp/act/experiment.js';
import { circuitsExperiment } from './papers/interp/circuits/experiment.js';
import { saeCircuits } from './papers/interp/sae/experiment.js';
import { sinkEmergence } from './papers/interp/sinks/experiment.js';
import { toyvlmHallucination } from './papers/multimodal/experiments/hallucination.js';
import { toyvlmSycophancy } from './papers/multimodal/experiments/sycophancy.js';
import { frozenLmBlock } from './papers/multimodal/frozen-lm-block/experiment.js';
import { aarenExperiment } from './papers/recurrent/aaren/experiment.js';
import { testTimeMemory } from './papers/recurrent/titans/experiment.js';
import { mqarFrontier } from './papers/recurrent/zoology/experiment.js';
import { passkeyLong, routingLm, sparseApprox, sparseScaling } from './papers/sparse/experiments/index.js';
import { codebookNav } from './papers/vision/codebook/experiment.js';
import { csaLocalisation } from './papers/vision/csa/experiment.js';
import { dragviewFlatland } from './papers/vision/dragview/experiment.js';
import { ganoExperiment } from './papers/vision/gano/experiment.js';

export * from './experiments/index.js';

/** Every experiment, grouped by family. */
export const CATALOG: readonly AnyExperiment[] = [
  // basics: the walkthrough's ToyLM
  inductionHeads,
  // cogneuro: pointers, scanpaths, brains
  pointerExperiments.hull,
  pointerExperiments.delaunay,
  pointerExperiments.tsp,
  pointerExperiments.sort,
  oatScanpath,
  brainEncoder,
  brainCaptions,
  brainDecoding,
  // sparse: content-based sparse attention
  sparseScaling,
  sparseApprox,
  routingLm,
  passkeyLong,
  // dynamics: what attention learns and which training changes help
  iclRegression,
  scanSnapExperiment,
  positionalAttentionExperiment,
  meapExperiment,
  mohExperiment,
  // recurrent: recall vs. state size
  mqarFrontier,
  aarenExperiment,
  testTimeMemory,
  // classifiers: attention in small classifiers and recommenders, and attribution
  attentionAt,
  lama,
  dare,
  salientRelevanceExperiment,
  // inference: KV-cache compression and speculative decoding
  retrievalHeadsExperiment,
  kvBudget,
  medusaExperiment,
  // interp: sinks, calibration and circuits
  sinkEmergence,
  actCalibration,
  circuitsExperiment,
  saeCircuits,
  // multimodal: a small vision-language model, attention steering, frozen text blocks
  toyvlmHallucination,
  toyvlmSycophancy,
  frozenLmBlock,
  // vision: attention across views, frames and time, and in embodied policies
  dragviewFlatland,
  ganoExperiment,
  csaLocalisation,
  codebookNav,
];

{
  const seen = new Set<string>();
  for (const e of CATALOG) {
    if (seen.has(e.name)) throw new Error(`catalog: two experiments are named '${e.name}'`);
    seen.add(e.name);
  }
}

/** The catalog's experiments, by name. */
export function listExperiments(): AnyExperiment[] {
  return [...CATALOG].sort((a, b) => a.name.localeCompare(b.name));
}

/** The experiment of that name; the error lists the known names. */
export function getExperiment(name: string): AnyExperiment {
  const e = CATALOG.find((x) => x.name === name);
  if (!e)
    throw new Error(
      `unknown experiment '${name}'; known: ${CATALOG.map((x) => x.name)
        .sort()
        .join(', ')}`,
    );
  return e;
}

/**
 * Runs an experiment of the catalog (by name) or any experiment object, with its quick or full config and the
 * overrides merged in; see `runExperimentWith` in lib/experiments/contract.ts.
 */
export async function runExperiment(
  experiment: string | AnyExperiment,
  opts: RunOptions = {},
): Promise<AnyExperimentResult> {
  return runExperimentWith(typeof experiment === 'string' ? getExperiment(experiment) : experiment, opts);
}

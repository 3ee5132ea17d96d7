/**
 * Pointer Networks.
 *
 * Paper: Vinyals, Fortunato, Jaitly, 2015, "Pointer Networks", NeurIPS, https://arxiv.org/abs/1506.03134
 *
 * An encoder RNN reads the input points P = (P_1..P_n) into states e_1..e_n; a decoder RNN produces states d_i.
 * Additive attention over the encoder states is used as the output itself, a distribution over input positions:
 *
 *   u_j^i = vᵀ tanh(W1 e_j + W2 d_i),   j ∈ (1..n)
 *   p(C_i | C_1..C_{i-1}, P) = softmax(u^i)
 *
 * so the output "dictionary" has as many entries as the input has points, whatever n is. The decoder's next input is
 * the coordinates of the point it chose. We add a learned end symbol at position 0 (for variable-length answers).
 * Decoding is `masked` (ours: padding, points already used (hull, TSP, sort), and an end symbol that would cut a
 * triangle (Delaunay) cannot be chosen) or `unconstrained` (the paper's hull and Delaunay: any point or EOS at every
 * step, so an answer can be invalid, which the metrics count as the paper's FAIL).
 *
 * Shape legend: b batch, n points (padded to the longest in the batch), p = n + 1 pointer positions (EOS first),
 * m decoder steps, c coordinates (2 for points, 1 for sort), h hidden size, V fixed vocabulary (seq2seq baselines).
 *
 * Files: geometry.ts (monotone-chain hull, Bowyer-Watson Delaunay, polygon predicates), tsp.ts (Held-Karp, 2-opt,
 * nearest neighbour), tasks.ts (examples, padded batches, validity masks), model.ts (LSTM cell, encoder, decoder,
 * pointer scores, the baselines, the loss), decode.ts (greedy and beam search), metrics.ts (the paper's metrics),
 * experiments.ts (the registered experiments pointer-hull, pointer-delaunay, pointer-tsp, pointer-sort).
 *
 *   const model = createPointerModel({ kind: 'pointer', coordDim: 2, hidden: 128, seed: 0 });
 *   const batch = makeBatch(TASKS.hull, makeExamples(TASKS.hull, 64, 5, 10, new Rng(0)));
 *   const loss = sequenceLoss(model, batch);                       // teacher forcing
 *   const out = greedyDecode(model, TASKS.hull, batch.examples);   // or beamDecode(..., width)
 *   hullMetrics(batch.examples, out.map((o) => o.answer));
 */

// The public surface: the model and its decoders, the tasks and their exact solvers, the paper's metrics, the
// experiments with their config and artifacts. Seeds, vocabulary plumbing and geometric helpers stay inside.
export { beamDecode, type Decoded, type DecodeOptions, greedyDecode, maskOptions } from './decode.js';
export {
  evaluatePointer,
  oursSpec,
  PAPER_VALUES,
  type PaperRun,
  POINTER_EXPERIMENTS,
  type PointerArtifacts,
  type PointerExperimentConfig,
  type PointerRunModel,
  type PointerSpec,
  paperRunName,
  paperSpec,
  pointerExperiments,
  type TrainedPointer,
  testSet,
  trainingSet,
  trainPointer,
} from './experiments.js';
export {
  canonicalTriangles,
  circumcircleIsEmpty,
  convexHull,
  cross,
  delaunay,
  inCircumcircle,
  isSimplePolygon,
  type Point,
  polygonArea,
  type Triangle,
} from './geometry.js';
export {
  type DelaunayMetrics,
  delaunayMetrics,
  HULL_FAIL_SHARE,
  type HullMetrics,
  hullMetrics,
  type SortMetrics,
  sortMetrics,
  type TspMetrics,
  taskMetrics,
  triangles,
  tspMetrics,
} from './metrics.js';
export {
  createPointerModel,
  decodeStep,
  disposePointerModel,
  type Encoded,
  encode,
  lstmStep,
  outputPositions,
  POINTER_MODEL_KINDS,
  type PointerModel,
  type PointerModelConfig,
  type PointerModelKind,
  parameterCount,
  pointerScores,
  sequenceLoss,
  teacherForcedLogits,
} from './model.js';
export {
  type Decoding,
  disposeBatch,
  type Example,
  type MaskOptions,
  makeBatch,
  makeExamples,
  type PointerBatch,
  randomPoints,
  TASKS,
  type TaskName,
  type TaskSpec,
  targetPositions,
  validPositions,
} from './tasks.js';
export { canonicalTour, heldKarp, isTour, nearestNeighbour, tourLength, twoOpt } from './tsp.js';

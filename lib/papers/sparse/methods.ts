/**
 * The table of sparse-attention methods and the baselines they are measured against, one line each. The test matrix
 * (test/sparse.test.ts) and the experiments read it instead of their own lists:
 *   sparse-scaling  every entry with `budgets.timing`
 *   sparse-approx   every entry with `budgets.keys` (Landmark is absent: it needs landmark tokens trained in)
 *   passkey-long    every entry trained into SparseLM that decodes (`lm`), and every one with `budgets.extend`
 *   routing-lm      every entry trained into SparseLM (`lm.kind`)
 * Order is the order of their rows and metrics.
 */
import { denseMethod, localMethod, sinkWindowMethod } from './baselines/index.js';
import { hipMethod } from './hip/index.js';
import { hyperMethod } from './hyper/index.js';
import { landmarkMethod } from './landmark/index.js';
import { longHeadsMethod } from './longheads/index.js';
import type { AttentionKind, MethodBudgets, SparseMethod } from './method.js';
import { routingMethod } from './routing/index.js';
import { seerMethod, seerOracleMethod } from './seer/index.js';

export const SPARSE_METHODS: readonly SparseMethod[] = [
  denseMethod,
  localMethod,
  sinkWindowMethod,
  routingMethod,
  hipMethod,
  hyperMethod,
  seerMethod,
  seerOracleMethod,
  landmarkMethod,
  longHeadsMethod,
];

/** The entry named `name`; throws, listing the names, for any other. */
export function sparseMethod(name: string): SparseMethod {
  const m = SPARSE_METHODS.find((x) => x.name === name);
  if (!m)
    throw new RangeError(
      `sparseMethod: name must be one of ${SPARSE_METHODS.map((x) => x.name).join(', ')}, got '${name}'`,
    );
  return m;
}

/** Names of the entries that have budget `budget` (the methods an experiment can run without a switch). */
export function methodsWith(budget: keyof MethodBudgets<unknown>): string[] {
  return SPARSE_METHODS.filter((m) => m.budgets[budget] !== undefined).map((m) => m.name);
}

/** Names of the entries trained into SparseLM (their `lm.kind`), decoding ones only with `decodes`. */
export function lmMethods(opts: { decodes?: boolean } = {}): string[] {
  return SPARSE_METHODS.filter((m) => m.lm && (!opts.decodes || m.lm.decodes)).map((m) => m.name);
}

/** The SparseLM attention kind of the entry `name` (every AttentionKind is one entry's). */
export function lmKindOf(name: string): AttentionKind {
  const m = sparseMethod(name);
  if (!m.lm) throw new RangeError(`lmKindOf: '${name}' is not trained into SparseLM (no lm entry)`);
  return m.lm.kind;
}

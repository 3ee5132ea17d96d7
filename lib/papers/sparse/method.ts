/**
 * `SparseMethod`: the one interface every sparse-attention method (and every baseline it is measured against) offers,
 * after kvpress's one object per policy and xformers' `not_supported_reasons`. A method's folder keeps its pure
 * functions (`hipAttention`, `hipAttentionNaive`, ...) and exports one `SparseMethod` object built on them; the table in
 * methods.ts lists those objects, and the tests and experiments read the table instead of listing methods themselves.
 *
 * Shape legend: b batch, h query heads, g kv heads, n queries, m keys (queries end-aligned), d head dim, e value dim.
 *   attend(q [b, h, n, d], k [b, g, m, d], v [b, g, m, e], options, state) -> output [b, h, n, e] + cost + coverage
 *   reference(same) -> the float64 output [b, h, n, e], flattened
 */
import type * as tf from '@tensorflow/tfjs';
import type { SparseResult } from './cost.js';

/**
 * The attention kinds SparseLM (model.ts) trains with; each is one method's `lm.kind` in the table (methods.ts).
 */
export const ATTENTION_KINDS = ['dense', 'local', 'routing', 'landmark'] as const;
export type AttentionKind = (typeof ATTENTION_KINDS)[number];

/** Where a method comes from. */
export interface PaperRef {
  /** Authors, year, title. */
  citation: string;
  url: string;
}

/**
 * What a method keeps besides q, k and v, and how it gets it: Routing's centroids, Seer's gate. `create` returns a
 * random state for the options (their `clusters`, `gateDim`); with `data` it also fits it: k-means steps on the data's
 * q̂, k̂ (Routing), or the gate distilled from the data's dense attention for `training.steps` (Seer).
 */
export interface MethodState<O, S> {
  /**
   * What the consumers fit the state to: 'input', the very q, k it then attends (cheap, recomputed per input);
   * 'sample', a training sample once, the trained state then reused on every input.
   */
  fitTo: 'input' | 'sample';
  create(options: O, ctx: StateContext): S | Promise<S>;
  dispose(state: S): void;
}

export interface StateContext {
  /** Query heads and head dim of the inputs the state will serve. */
  heads: number;
  dim: number;
  seed: number;
  /** Data to fit the state to; unset: the random state. */
  data?: { q: tf.Tensor4D; k: tf.Tensor4D };
  /** Gradient training of a learned state (`fitTo: 'sample'`): steps, learning rate, and the learned map's width. */
  training?: { steps: number; lr: number; width: number };
}

/**
 * Options for standard budgets, so an experiment needs no per-method switch. The seed seeds a randomised method (HyperAttention's hashes and samples).
 *   timing(n, seed)      the papers' prefill setting at length n, scaled down (block-shared selections; sparse-scaling)
 *   keys(n, keys, seed)  about `keys` keys per query at length n, in blocks of 16 (sparse-approx)
 *   extend(L, c)         a training-free run on a model trained at length L: every query within L keys, compact positions
 *                        in chunks of c (passkey-long; the method must accept `rope`)
 */
export interface MethodBudgets<O> {
  timing?: (n: number, seed: number) => O;
  keys?: (n: number, keys: number, seed: number) => O;
  extend?: (trainLen: number, chunk: number) => O;
}

/**
 * A small configuration the shared test matrix (test/sparse.test.ts) runs, easy to hard: `sparse` must match the
 * float64 reference and compute fewer pairs than dense, be causal (a change at t reaches back at most to the start of
 * its query block of `reach` queries) and have the reference's gradients; `exact` must equal `equals` (default: dense
 * causal attention, every visible pair scored).
 */
export interface SparseCase<O> {
  label: string;
  /** [b, h, n, d] of q; k and v have `kvHeads` heads. */
  shape: [number, number, number, number];
  kvHeads: number;
  /** A small budget (absent for dense attention, which has none). */
  sparse?: O;
  exact: O;
  /** The float64 output `exact` equals, when it is not dense causal attention on q, k, v. */
  equals?: (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => Float64Array;
  /** Queries sharing one selection (default 1). */
  reach?: number;
  /** Pass q as the keys too (Routing's shared queries/keys). */
  sharedQK?: boolean;
  /** The exact case's pair count differs from dense's (it counts estimator work as pairs, as HyperAttention does). */
  pairsDiffer?: boolean;
}

// biome-ignore lint/suspicious/noExplicitAny: the table holds methods of many option and state types
export interface SparseMethod<O = any, S = any> {
  /** The name experiments, configs and metric keys use. */
  readonly name: string;
  /** 'paper': a method of this family; 'baseline': a static pattern to beat; 'oracle': a diagnostic upper bound. */
  readonly kind: 'paper' | 'baseline' | 'oracle';
  readonly paper: PaperRef;
  /** The fast path: output, the pairs it scored and spent on selection, which pairs it covered. */
  attend(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: O, state: S): SparseResult;
  /** The float64 naive reference of `attend` at the same options and state. */
  reference(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: O, state: S): Float64Array;
  /** Why `attend` cannot take these inputs and options (empty when it can); argument typos are errors instead. */
  supports(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: O): string[];
  state?: MethodState<O, S>;
  budgets: MethodBudgets<O>;
  /** How it runs in SparseLM: the attention kind a model is trained with, and whether that model decodes token by token. */
  lm?: { kind: AttentionKind; decodes: boolean };
  cases: SparseCase<O>[];
}

/**
 * The reason for `options.rope` (compact rotary positions) when the method has none, or when the head dim is odd.
 */
export function ropeReasons(options: { rope?: unknown }, dim: number, supported: boolean): string[] {
  if (options.rope === undefined) return [];
  if (!supported) return ['options.rope (compact rotary positions) is not supported: rotate q and k before calling'];
  return dim % 2 === 0 ? [] : [`options.rope needs an even head dim (rotate-half pairs), got ${dim}`];
}

/** The reason a method that needs self-attention (as many queries as keys) gives for other shapes. */
export function selfAttentionReasons(q: tf.Tensor, k: tf.Tensor, what: string): string[] {
  return q.shape[2] === k.shape[2]
    ? []
    : [`q has ${q.shape[2]} queries and k has ${k.shape[2]} keys; ${what} needs as many queries as keys`];
}

/**
 * The experiment contract's types (lib/experiments/contract.ts has the functions): what an experiment is, what it
 * returns, and how its artifacts are cached. Type-only, so the contract and the experiment cache can both use them
 * without importing each other.
 */
import type { ConfigSchema } from './schema.js';

export interface ExperimentContext {
  seed: number;
  quick: boolean;
  /** Progress display for training (false in tests and --json runs). */
  progress: boolean | 'auto';
  log: (line: string) => void;
  /**
   * The run's experiment-cache folder (RunOptions.cache, else ATTNLAB_CACHE, else the user's cache folder), or
   * undefined when the cache is off: where an experiment keeps what it saves besides its result (e.g. a trained
   * checkpoint shared by two experiments), so a run with another cache folder never writes to the default one.
   */
  cacheDir?: string;
}

/** A number from the paper, beside the metric of ours it is compared with. */
export interface PaperReference {
  /** Our metric's name (a key of `metrics`), or a table row's label. */
  metric: string;
  /** The paper's value, in the same unit as ours. */
  paper: number;
  /** Where it comes from: table or figure, and the paper's setting (data, scale). */
  source: string;
  /**
   * How our setting differs from the paper's for this row (data, scale, training, decoding, evaluation), in one or
   * two sentences a reader can check: e.g. "ours: 2-layer d 128 model, 2000 steps on synthetic passkeys; paper:
   * LLaMA-7B fine-tuned on PG-19". Shown beside the row wherever references are displayed. Required: the type
   * checker is the test that no experiment cites a paper number without saying how its setting differs.
   */
  setting: string;
}

/** What an experiment's `run` returns. */
export interface ExperimentOutput<A = undefined> {
  /** Flat metrics: split-prefixed names, numbers only. */
  metrics: Record<string, number>;
  /** Tables for display (rows of plain values), e.g. one row per model. */
  tables?: Record<string, Record<string, string | number | boolean | null>[]>;
  /** The paper's numbers our metrics are compared with. */
  references?: PaperReference[];
  /** What the numbers show, in one or two sentences. */
  summary: string;
  /** Trained models, datasets, curves: what a notebook draws from. Disposed by `runExperiment` unless `keep`. */
  artifacts?: A;
}

export interface ExperimentResult<C = unknown, A = undefined> extends ExperimentOutput<A> {
  experiment: string;
  seed: number;
  quick: boolean;
  /** The config that ran: the quick or full config with the overrides merged in. */
  config: C;
  seconds: number;
  /** Present when the result came from the experiment cache (lib/experiments/cache.ts); `seconds` is the stored run's. */
  cached?: { key: string; path: string; savedAt: string };
}

/** Turns an experiment's artifacts into cacheable data (plain data and tensors) and back. */
export interface ArtifactCodec<A, C = unknown> {
  /** Plain data and tensors that `decode` rebuilds the artifacts from; the tensors may be the artifacts' own. */
  encode(artifacts: A): unknown;
  /** The artifacts, from what `encode` returned (its tensors now owned by the caller: keep or dispose them). */
  decode(stored: unknown, config: C): A | Promise<A>;
}

export interface Experiment<C = unknown, A = undefined> {
  name: string;
  /** The paper(s) it reproduces at small scale, with links. */
  paper: string;
  description: string;
  schema: ConfigSchema<C>;
  quick: C;
  full: C;
  run(config: C, ctx: ExperimentContext): Promise<ExperimentOutput<A>>;
  /**
   * For the experiment cache: turns artifacts that are not plain data and tensors (trained models) into such data
   * and back. Without it, a run whose artifacts hold anything else is not cached.
   */
  artifactCodec?: ArtifactCodec<A, C>;
}

/** Any experiment, whatever its config and artifacts (what a catalog holds). */
// biome-ignore lint/suspicious/noExplicitAny: a catalog holds experiments of every config type
export type AnyExperiment = Experiment<any, any>;

/** The result of any experiment. */
// biome-ignore lint/suspicious/noExplicitAny: results of experiments of every config type
export type AnyExperimentResult = ExperimentResult<any, any>;

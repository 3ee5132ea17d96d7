/**
 * Experiments: a typed config plus a function that returns metrics. The same function serves the command line
 * (`attnlab experiment NAME --quick --seed N --json`), the notebooks and the tests (with the small `quick` config).
 * Every metric name starts with the split it was measured on (`train_`, `test_`, `validation_`), or is a cost
 * (`seconds`, `params`).
 */
export interface ExperimentContext {
  seed: number;
  quick: boolean;
  /** Progress display for training (false in tests and --json runs). */
  progress: boolean | 'auto';
  log: (line: string) => void;
}

export interface ExperimentResult {
  experiment: string;
  seed: number;
  quick: boolean;
  config: unknown;
  /** Flat metrics: split-prefixed names, numbers only. */
  metrics: Record<string, number>;
  /** Tables for display (rows of plain values), e.g. one row per model. */
  tables?: Record<string, Record<string, string | number>[]>;
  /** What the numbers show, in one or two sentences. */
  summary: string;
  seconds: number;
}

export interface Experiment<C = unknown> {
  name: string;
  /** The paper(s) it reproduces at small scale, with links. */
  paper: string;
  description: string;
  quick: C;
  full: C;
  run(config: C, ctx: ExperimentContext): Promise<Omit<ExperimentResult, 'experiment' | 'seed' | 'quick' | 'config' | 'seconds'>>;
}

const registry = new Map<string, Experiment<unknown>>();

export function registerExperiment<C>(e: Experiment<C>): void {
  if (registry.has(e.name)) throw new Error(`registerExperiment: '${e.name}' is already registered`);
  registry.set(e.name, e as Experiment<unknown>);
}

export function listExperiments(): Experiment<unknown>[] {
  return [...registry.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function getExperiment(name: string): Experiment<unknown> {
  const e = registry.get(name);
  if (!e) throw new Error(`unknown experiment '${name}'; registered: ${[...registry.keys()].sort().join(', ')}`);
  return e;
}

const SPLIT_PREFIX = /^(train|test|validation|val)_|^(seconds|params)(_|$)/;

export interface RunOptions {
  quick?: boolean;
  seed?: number;
  progress?: boolean | 'auto';
  log?: (line: string) => void;
  /** Overrides merged over the chosen config. */
  overrides?: Record<string, unknown>;
}

/** Run a registered experiment; checks that every metric names its split. */
export async function runExperiment(name: string, opts: RunOptions = {}): Promise<ExperimentResult> {
  const e = getExperiment(name);
  const quick = opts.quick ?? false;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`runExperiment: seed must be an integer, got ${seed}`);
  const config = { ...(quick ? (e.quick as object) : (e.full as object)), ...(opts.overrides ?? {}) };
  const t0 = performance.now();
  const r = await e.run(config, { seed, quick, progress: opts.progress ?? 'auto', log: opts.log ?? (() => undefined) });
  const bad = Object.keys(r.metrics).filter((k) => !SPLIT_PREFIX.test(k.split('.').pop()!));
  if (bad.length) throw new Error(`experiment '${name}' reported metrics without a split prefix: ${bad.join(', ')}`);
  return { experiment: name, seed, quick, config, ...r, seconds: (performance.now() - t0) / 1000 };
}

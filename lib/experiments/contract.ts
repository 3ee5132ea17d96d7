/**
 * The experiment contract: one claim of one paper, as a typed config plus a function that returns metrics. The same
 * experiment serves the command line (`attnlab experiment NAME --quick --seed N --config JSON`), the notebooks (which
 * may draw from the trained artifacts it returns) and the tests (with its small `quick` config).
 *
 *   export const myExperiment = defineExperiment<MyConfig, MyArtifacts>({
 *     name: 'my-claim', paper: 'Author et al. 2024, Title, https://arxiv.org/abs/...', description: '...',
 *     schema: obj<MyConfig>({ steps: int({ min: 1 }), ... }),
 *     quick: { steps: 100, ... },   // under 2 minutes on two cores
 *     full: { steps: 2000, ... },   // under 30 minutes on two cores
 *     async run(config, ctx) { ...; return { metrics: { test_accuracy: 0.9 }, summary: '...', references: [...] }; },
 *   });
 *
 * and one line in lib/catalog.ts. Every metric name starts with the split it was measured on (`train_`,
 * `validation_`, `test_`) or is a cost (`seconds`, `params`); `runExperiment` rejects any other. Overrides merge into
 * the chosen config key by key and are validated against the schema before the experiment starts.
 */
import { ConfigError, cloneConfig, deepMerge, validate } from './schema.js';
import type { Experiment, ExperimentResult } from './types.js';

export type {
  AnyExperiment,
  AnyExperimentResult,
  ArtifactCodec,
  Experiment,
  ExperimentContext,
  ExperimentOutput,
  ExperimentResult,
  PaperReference,
} from './types.js';

const NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** Checks an experiment's own definition (name, quick and full against the schema) and returns it. */
export function defineExperiment<C, A = undefined>(e: Experiment<C, A>): Experiment<C, A> {
  if (!NAME.test(e.name))
    throw new Error(`defineExperiment: name must be lower-case words joined by '-', got '${e.name}'`);
  validate(e.schema, e.quick, `experiment '${e.name}': its quick config is invalid: `);
  validate(e.schema, e.full, `experiment '${e.name}': its full config is invalid: `);
  return e;
}

export interface RunOptions {
  quick?: boolean;
  seed?: number;
  progress?: boolean | 'auto';
  log?: (line: string) => void;
  /** Settings merged key by key over the chosen config, validated before the run starts. */
  overrides?: Record<string, unknown>;
  /** Keep the artifacts (the caller disposes them); by default they are disposed and left out of the result. */
  keep?: boolean;
  /**
   * The experiment cache's folder, or false for none; by default ATTNLAB_CACHE (a folder or `off`), else the user's
   * cache folder (off under vitest). See lib/experiments/cache.ts.
   */
  cache?: string | false;
}

/** The quick or full config with the overrides merged in; throws a ConfigError naming every bad key. */
export function resolveConfig<C>(e: Experiment<C, unknown>, quick: boolean, overrides?: unknown): C {
  const prefix = `experiment '${e.name}': `;
  if (overrides !== undefined && (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides))) {
    throw new ConfigError([`overrides must be an object of config settings, got ${JSON.stringify(overrides)}`], prefix);
  }
  const merged = deepMerge(cloneConfig(quick ? e.quick : e.full), cloneConfig(overrides));
  return validate(e.schema, merged, prefix);
}

const SPLIT_PREFIX = /^(train|test|validation|val)_|^(seconds|params)(_|$)/;

/** Disposes every tensor-holding value in `x` (anything with a `dispose` method), one level into arrays and objects. */
export function disposeArtifacts(x: unknown): void {
  if (x === null || typeof x !== 'object') return;
  if (typeof (x as { dispose?: unknown }).dispose === 'function') {
    (x as { dispose(): void }).dispose();
    return;
  }
  for (const v of Array.isArray(x) ? x : Object.values(x)) {
    if (v !== null && typeof v === 'object' && typeof (v as { dispose?: unknown }).dispose === 'function')
      (v as { dispose(): void }).dispose();
  }
}

/** Runs an experiment: validates the config, runs it, checks that every metric names its split. */
export async function runExperimentWith<C, A>(
  e: Experiment<C, A>,
  opts: RunOptions = {},
): Promise<ExperimentResult<C, A>> {
  const quick = opts.quick ?? false;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed))
    throw new ConfigError([`seed must be an integer, got ${JSON.stringify(seed)}`], `experiment '${e.name}': `);
  const config = resolveConfig(e, quick, opts.overrides);
  const log = opts.log ?? (() => undefined);
  const { openRunCache, resolveCacheDir } = await import('./cache.js');
  const cache = openRunCache(e, { config, seed, quick, option: opts.cache, log });
  const hit = await cache?.lookup(opts.keep ?? false);
  if (hit) return hit;
  const t0 = performance.now();
  const cacheDir = resolveCacheDir(opts.cache);
  const r = await e.run(cloneConfig(config), { seed, quick, progress: opts.progress ?? 'auto', log, cacheDir });
  const bad = Object.keys(r.metrics).filter((k) => !SPLIT_PREFIX.test(k.split('.').pop() as string));
  const missing = (r.references ?? []).filter(
    (ref) =>
      !(ref.metric in r.metrics) &&
      !Object.values(r.tables ?? {}).some((rows) => rows.some((row) => Object.values(row).includes(ref.metric))),
  );
  if (bad.length || missing.length) {
    disposeArtifacts(r.artifacts);
    if (bad.length)
      throw new Error(`experiment '${e.name}' reported metrics without a split prefix: ${bad.join(', ')}`);
    throw new Error(
      `experiment '${e.name}' cites paper numbers for metrics it did not report: ${missing.map((m) => m.metric).join(', ')}`,
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  await cache?.store(r, seconds);
  const { artifacts, ...rest } = r;
  if (!opts.keep) disposeArtifacts(artifacts);
  return { experiment: e.name, seed, quick, config, ...rest, ...(opts.keep ? { artifacts } : {}), seconds };
}

/** `attnlab experiment`: list the registry, or run one experiment and print (or write) its metrics. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { outputFileProblem, parseArgs, UsageError } from './args.js';

export async function experimentCommand(argv: string[]): Promise<number> {
  const { positionals, flags } = parseArgs(
    argv,
    { flags: ['quick', 'json'], options: ['seed', 'out', 'config', 'cache'] },
    'attnlab experiment',
  );
  if (typeof flags.out === 'string') {
    const problem = outputFileProblem(flags.out);
    if (problem) throw new UsageError(`attnlab experiment: --out ${flags.out}: ${problem}`);
  }
  const { listExperiments, runExperiment, getExperiment, resolveConfig, ConfigError } = await import('../catalog.js');
  const [name] = positionals;
  if (!name) throw new UsageError('attnlab experiment: name an experiment, or `list`');
  if (name === 'list') {
    const all = listExperiments();
    if (flags.json) {
      console.log(
        JSON.stringify(
          all.map((e) => ({ name: e.name, paper: e.paper, description: e.description, quick: e.quick, full: e.full })),
          null,
          2,
        ),
      );
    } else {
      const w = Math.max(...all.map((e) => e.name.length));
      for (const e of all) console.log(`${e.name.padEnd(w)}  ${e.description}\n${''.padEnd(w)}  ${e.paper}`);
    }
    return 0;
  }
  const experiment = getExperiment(name);
  let seed = 0;
  if (flags.seed !== undefined) {
    seed = Number(flags.seed);
    if (!Number.isInteger(seed))
      throw new UsageError(`attnlab experiment: --seed must be an integer, got '${flags.seed}'`);
  }
  let overrides: Record<string, unknown> | undefined;
  if (flags.config !== undefined) {
    try {
      overrides = JSON.parse(String(flags.config));
    } catch {
      overrides = undefined;
    }
    if (!overrides || typeof overrides !== 'object' || Array.isArray(overrides)) {
      throw new UsageError(
        `attnlab experiment: --config must be a JSON object of config fields, got '${flags.config}'`,
      );
    }
  }
  // Every setting is checked before the backend loads or any work starts.
  try {
    resolveConfig(experiment, flags.quick === true, overrides);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(`attnlab experiment: ${e.message}`);
    throw e;
  }
  const backend = await import('../backend/index.js');
  const report = await backend.ready();
  const json = flags.json === true;
  const log = json ? () => undefined : (line: string) => console.error(line);
  log(
    `${name}: ${flags.quick ? 'quick' : 'full'} config${overrides ? ` with ${JSON.stringify(overrides)}` : ''}, seed ${seed}, backend ${report.chosen}`,
  );
  const result = await runExperiment(experiment, {
    quick: flags.quick === true,
    seed,
    progress: json ? false : 'auto',
    log,
    overrides,
    ...(typeof flags.cache === 'string' ? { cache: flags.cache === 'off' ? (false as const) : flags.cache } : {}),
  });
  if (result.cached) log(`${name}: from the experiment cache (${result.cached.path}, saved ${result.cached.savedAt})`);
  const out = { ...result, backend: report.chosen };
  if (typeof flags.out === 'string') {
    mkdirSync(dirname(resolve(flags.out)), { recursive: true });
    writeFileSync(flags.out, `${JSON.stringify(out, null, 2)}\n`);
  }
  if (json) {
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  console.log(`\n${result.summary}\n`);
  const { referencesText } = await import('../display/results.js');
  const refs = referencesText(result);
  if (refs) console.log(`${refs}\n`);
  const w = Math.max(...Object.keys(result.metrics).map((k) => k.length));
  for (const [k, v] of Object.entries(result.metrics))
    console.log(`  ${k.padEnd(w)}  ${Number.isInteger(v) ? v : v.toFixed(4)}`);
  for (const [t, rows] of Object.entries(result.tables ?? {})) {
    console.log(`\n${t}:`);
    console.table(rows);
  }
  console.log(`\n${result.seconds.toFixed(1)} s`);
  return 0;
}

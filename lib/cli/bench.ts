/**
 * `attnlab bench [--peer torch|none] [--json] [--out FILE] [--only NAMES] [--repeats N] [--backends LIST] [--threads N]`
 * `attnlab bench --profile NAME [--backends B] [--repeats N] [--json] [--out FILE]`
 *
 * Runs the benchmark registry (lib/bench) on the library's backends and, when installed, PyTorch CPU, interleaved.
 * Prints a table (or JSON with --json) and writes the JSON report to --out. `--peer torch` installs python3-torch
 * with apt when it is missing (root only). Exit code 0, or 1 when --peer torch was asked for and cannot run, 2 on a
 * usage error.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { BackendName } from '../backend/index.js';
import { outputFileProblem, parseArgs, UsageError } from './args.js';

export const BENCH_USAGE = `attnlab bench [options]

Benchmarks the library against PyTorch CPU (python3-torch), interleaved in one run.

  --peer torch|none   torch: require PyTorch, installing python3-torch with apt if missing (root only);
                      none: library backends only. Default: PyTorch when it is installed.
  --json              print the JSON report instead of the table
  --out FILE          also write the JSON report to FILE
  --only NAMES        comma-separated workload names or substrings (e.g. gemm-1024,attn-causal-512)
  --repeats N         timed runs per workload and backend (default 7)
  --backends LIST     comma-separated: wasm-native, wasm, cpu (default: wasm-native, and wasm)
  --budget SECONDS    stop repeating a slow backend on a workload after this much time (default 20)
  --threads N         threads for native kernels and PyTorch (default 2)
  --profile NAME      profile one workload instead (time, calls and bytes per kernel and phase; no peer):
                      one warm-up run, then --repeats runs profiled (default 1) on the first of --backends
  --list              list the workloads and exit`;

export async function benchCommand(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(
      argv,
      {
        flags: ['json', 'list', 'help'],
        options: ['peer', 'out', 'only', 'repeats', 'backends', 'budget', 'threads', 'profile'],
      },
      'bench',
    );
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n\n${BENCH_USAGE}`);
      return 2;
    }
    throw e;
  }
  const f = args.flags;
  if (f.help) {
    console.log(BENCH_USAGE);
    return 0;
  }
  if (typeof f.out === 'string') {
    const problem = outputFileProblem(f.out);
    if (problem) {
      console.error(`bench: --out ${f.out}: ${problem}`);
      return 2;
    }
  }
  const bench = await import('../bench/index.js');
  if (f.list) {
    for (const w of bench.WORKLOADS) console.log(`${w.name.padEnd(26)} ${w.description}`);
    return 0;
  }
  const num = (key: string, dflt: number, min: number): number | string => {
    if (f[key] === undefined) return dflt;
    const v = Number(f[key]);
    return Number.isInteger(v) && v >= min
      ? v
      : `bench: --${key} must be an integer >= ${min}, got '${String(f[key])}'`;
  };
  const repeats = num('repeats', f.profile === undefined ? 7 : 1, 1);
  const budget = num('budget', 20, 1);
  const threads = num('threads', 2, 1);
  for (const v of [repeats, budget, threads]) {
    if (typeof v === 'string') {
      console.error(v);
      return 2;
    }
  }
  const peerMode = f.peer === undefined ? 'auto' : String(f.peer);
  if (!['auto', 'torch', 'none'].includes(peerMode)) {
    console.error(`bench: --peer must be 'torch' or 'none', got '${peerMode}'`);
    return 2;
  }
  const workloads = bench.selectWorkloads(typeof f.only === 'string' ? f.only : undefined);
  if (workloads.length === 0) {
    console.error(
      `bench: --only '${String(f.only)}' matches no workload; known: ${bench.WORKLOADS.map((w) => w.name).join(', ')}`,
    );
    return 2;
  }
  const log = (s: string) => console.error(s);
  process.env.ATTNLAB_THREADS ??= String(threads);
  const { nativeAvailable, loadAddon } = await import('../backend/native.js');
  const nativeReason = await nativeAvailable();
  loadAddon()?.setThreads(threads as number);
  let backends: BackendName[];
  if (typeof f.backends === 'string') {
    backends = f.backends.split(',').map((s) => s.trim()) as BackendName[];
    const bad = backends.find((b) => !['wasm-native', 'wasm', 'cpu', 'tensorflow'].includes(b));
    if (bad) {
      console.error(`bench: --backends: '${bad}' is not a backend (wasm-native, wasm, cpu, tensorflow)`);
      return 2;
    }
  } else {
    backends = nativeReason ? ['wasm'] : ['wasm-native', 'wasm'];
    if (nativeReason) log(`bench: wasm-native unavailable (${nativeReason}); benchmarking pure wasm only`);
  }
  if (f.profile !== undefined) return profileCommand(String(f.profile), backends[0]!, f, log);
  let peer: Awaited<ReturnType<typeof bench.TorchPeer.start>> | undefined;
  if (peerMode !== 'none') {
    const t = bench.ensureTorch(peerMode === 'torch', log);
    if (t.python) {
      peer = await bench.TorchPeer.start(t.python, threads as number);
    } else if (peerMode === 'torch') {
      console.error(`bench: --peer torch: ${t.reason}`);
      return 1;
    } else {
      log(`bench: no PyTorch peer: ${t.reason}`);
    }
  }
  try {
    const report = await bench.runBench({
      workloads,
      backends,
      peer,
      repeats: repeats as number,
      budgetSeconds: budget as number,
      log,
    });
    const json = JSON.stringify(report, null, 2);
    if (typeof f.out === 'string') {
      const out = resolve(f.out);
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, `${json}\n`);
      log(`bench: wrote ${out}`);
    }
    console.log(f.json ? json : bench.formatTable(report));
    return 0;
  } finally {
    peer?.close();
  }
}

/** `--profile NAME`: one workload under lib/bench/profile.ts, summed over `--repeats` runs after one warm-up. */
async function profileCommand(
  name: string,
  backendName: BackendName,
  f: Record<string, string | boolean | undefined>,
  log: (s: string) => void,
): Promise<number> {
  const bench = await import('../bench/index.js');
  const w = bench.WORKLOADS.find((x) => x.name === name);
  if (!w) {
    console.error(`bench: --profile: no workload '${name}'; known: ${bench.WORKLOADS.map((x) => x.name).join(', ')}`);
    return 2;
  }
  const repeats = f.repeats === undefined ? 1 : Number(f.repeats);
  const backend = await import('../backend/index.js');
  await backend.setBackend(backendName);
  log(`bench: profiling ${w.name} (${w.description}) on ${backendName}, ${repeats} run(s) after one warm-up`);
  const inst = await w.setup();
  try {
    const p = await bench.profile(
      (mark) => {
        for (let i = 0; i < repeats; i++) inst.run(mark);
      },
      { warmup: 1, phase: 'run' },
    );
    const report = {
      workload: w.name,
      description: w.description,
      backend: p.backend,
      repeats,
      wallMs: p.wallMs,
      kernelMs: p.kernelMs,
      kernelCalls: p.kernelCalls,
      phases: p.phases,
      rows: p.rows,
    };
    const json = JSON.stringify(report, null, 2);
    if (typeof f.out === 'string') {
      const out = resolve(f.out);
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, `${json}\n`);
      log(`bench: wrote ${out}`);
    }
    console.log(f.json ? json : p.table(30));
    return 0;
  } finally {
    inst.dispose();
  }
}

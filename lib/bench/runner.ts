/**
 * Runs the benchmark registry on the library's backends and the PyTorch peer, interleaved: for each workload, every
 * repeat runs once on each backend and once on the peer before the next repeat, so machine noise hits all alike.
 * Reports medians, GFLOP/s against the machine's peak, and the ratio to PyTorch measured in the same run.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import * as backend from '../backend/index.js';
import { nativeInstalled } from '../backend/native.js';
import type { TorchPeer } from './peer.js';
import type { Instance, Target, Workload } from './workloads.js';

/**
 * fp32 peak the project measures against: 2 cores x 32 FLOP/cycle x 3.65 GHz (ENVIRONMENT.md; an AVX2 FMA loop
 * reaches it). On Zen 5 (cpu family 26) 512-bit FMAs run at full width, so AVX-512 code can reach twice this; the
 * report says so in `machine.note`, and % of peak above 100% is possible there.
 */
export const PEAK_GFLOPS = 234;

function cpuFamily(): number | null {
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/^cpu family\s*:\s*(\d+)/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export interface BenchOptions {
  workloads: Workload[];
  backends: backend.BackendName[];
  peer?: TorchPeer;
  repeats: number;
  /** Stop repeating a backend on a workload once its runs took this long in total (slow pure-wasm paths). */
  budgetSeconds: number;
  log?: (line: string) => void;
}

export interface BenchRow {
  workload: string;
  description: string;
  /** 'torch' for the peer. */
  backend: string;
  path?: string;
  samplesMs: number[];
  medianMs: number | null;
  gflops: number | null;
  peakFraction: number | null;
  /** median / PyTorch's median (time ratio; < 1 is faster than PyTorch). */
  ratioToTorch: number | null;
  target?: Target & { met: boolean | null };
  error?: string;
}

export interface BenchReport {
  date: string;
  machine: { cpus: number; model: string; cpuFamily: number | null; peakGflops: number; note?: string };
  torch?: { version: string; threads: number };
  repeats: number;
  rows: BenchRow[];
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const now = () => performance.now();

/**
 * Switch backends and wait until the switch has settled: the chooser removes the native kernel overrides from a
 * promise callback, so a run started in the same tick could still use them. Checks that it did.
 */
async function switchTo(name: backend.BackendName): Promise<void> {
  await backend.setBackend(name);
  await new Promise((r) => setImmediate(r));
  const installed = nativeInstalled();
  if (installed !== (name === 'wasm-native')) {
    throw new Error(
      `bench: after switching to ${name} the native kernels are ${installed ? 'still installed' : 'not installed'}`,
    );
  }
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const log = o.log ?? (() => undefined);
  const rows: BenchRow[] = [];
  for (const w of o.workloads) {
    log(`bench: ${w.name} (${w.description})`);
    const inst = new Map<string, Instance>();
    const samples = new Map<string, number[]>();
    const errors = new Map<string, string>();
    for (const b of o.backends) {
      try {
        await switchTo(b);
        const i = await w.setup();
        i.run(); // warm-up: kernel setup, wasm heap growth, first-call compilation
        inst.set(b, i);
        samples.set(b, []);
      } catch (e) {
        errors.set(b, e instanceof Error ? e.message.split('\n')[0] : String(e));
      }
    }
    const peerSamples: number[] = [];
    let peerError: string | undefined;
    if (o.peer) {
      peerError = (await o.peer.setup(w)) ?? undefined;
    }
    const spent = new Map<string, number>();
    for (let r = 0; r < o.repeats; r++) {
      for (const [b, i] of inst) {
        if ((spent.get(b) ?? 0) > o.budgetSeconds * 1000) continue;
        await switchTo(b as backend.BackendName);
        const t0 = now();
        i.run();
        const dt = now() - t0;
        samples.get(b)!.push(dt);
        spent.set(b, (spent.get(b) ?? 0) + dt);
      }
      if (o.peer && !peerError) {
        try {
          peerSamples.push((await o.peer.run(w)) * 1000);
        } catch (e) {
          peerError = e instanceof Error ? e.message : String(e);
        }
      }
    }
    for (const [b, i] of inst) {
      await switchTo(b as backend.BackendName);
      i.dispose();
    }
    if (o.peer) await o.peer.dispose(w);
    const torchMedian = median(peerSamples);
    const row = (name: string, s: number[], path?: string, error?: string): BenchRow => {
      const med = median(s);
      const gflops = med ? w.flops / (med / 1000) / 1e9 : null;
      const ratio = med !== null && torchMedian !== null && name !== 'torch' ? med / torchMedian : null;
      return {
        workload: w.name,
        description: w.description,
        backend: name,
        path,
        samplesMs: s.map((x) => +x.toFixed(3)),
        medianMs: med,
        gflops,
        peakFraction: gflops === null ? null : gflops / PEAK_GFLOPS,
        ratioToTorch: ratio,
        target:
          w.target && name !== 'torch'
            ? { ...w.target, met: ratio === null ? null : ratio <= w.target.maxRatio }
            : undefined,
        error,
      };
    };
    for (const b of o.backends) rows.push(row(b, samples.get(b) ?? [], inst.get(b)?.path, errors.get(b)));
    if (o.peer) rows.push(row('torch', peerSamples, 'manual', peerError));
    for (const r of rows.filter((x) => x.workload === w.name)) {
      log(`  ${r.backend.padEnd(12)} ${r.medianMs === null ? `-- ${r.error ?? ''}` : `${r.medianMs.toFixed(2)} ms`}`);
    }
  }
  return {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? 'unknown',
      cpuFamily: cpuFamily(),
      peakGflops: PEAK_GFLOPS,
      note:
        cpuFamily() === 26
          ? 'AMD Zen 5: full-width AVX-512 FMA, so the AVX-512 peak is about 2x peakGflops'
          : undefined,
    },
    torch: o.peer ? { version: o.peer.version, threads: o.peer.threads } : undefined,
    repeats: o.repeats,
    rows,
  };
}

/** The report as a fixed-width text table. */
export function formatTable(r: BenchReport): string {
  const head = ['workload', 'backend', 'path', 'median ms', 'GFLOP/s', '% peak', 'x torch', 'target'];
  const body = r.rows.map((x) => [
    x.workload,
    x.backend,
    x.path ?? '',
    x.medianMs === null ? `-- ${x.error ?? 'no samples'}`.slice(0, 60) : x.medianMs.toFixed(2),
    x.gflops === null ? '' : x.gflops.toFixed(1),
    x.peakFraction === null ? '' : `${(100 * x.peakFraction).toFixed(0)}%`,
    x.ratioToTorch === null ? '' : `${x.ratioToTorch.toFixed(2)}x`,
    x.target ? `${x.target.text}: ${x.target.met === null ? 'n/a' : x.target.met ? 'met' : 'NOT met'}` : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= 3 && i <= 6 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  const torch = r.torch ? `PyTorch ${r.torch.version}, ${r.torch.threads} threads` : 'no PyTorch peer';
  return [
    `attnlab bench, ${r.date}: ${r.machine.cpus} x ${r.machine.model}, peak ${r.machine.peakGflops} GFLOP/s; ${torch}; ${r.repeats} interleaved repeats, medians`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
  ].join('\n');
}

/**
 * Runs the benchmark registry on the library's backends and the PyTorch peer, interleaved: for each workload, every
 * repeat runs once on each backend and once on the peer before the next repeat, so machine noise hits all alike.
 * Reports medians, GFLOP/s against the machine's peak, and the ratio to PyTorch measured in the same run.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import * as backend from '../backend/index.js';
import { loadAddon } from '../backend/native/load.js';
import { nativeInstalled } from '../backend/native.js';
import type { TorchPeer } from './peer.js';
import type { Instance, Target, Workload } from './workloads.js';

/**
 * The nominal fp32 peak of the machine the project was first measured on: 2 cores x 32 FLOP/cycle x 3.65 GHz (Zen 4,
 * ENVIRONMENT.md). Reports use the peak measured in the same run (`measurePeak`); this is the fallback when the
 * native addon (which holds the FMA probe) is not built, and is printed beside the measured one.
 */
export const PEAK_GFLOPS = 234;

/** How a report's peak was obtained. */
export interface PeakMeasurement {
  /** The peak used for % of peak: the best probe, or PEAK_GFLOPS when there is no probe. */
  gflops: number;
  source: 'fma-probe' | 'nominal';
  /** Each probe's GFLOP/s (the run probes before and after the workloads). */
  probes: number[];
  isa?: string;
  threads?: number;
  why?: string;
}

/**
 * The machine's fp32 peak as the native kernels can use it, measured now: the FMA probe (independent multiply-add
 * chains on the widest vectors the addon's kernels use) on as many threads as the native pool, `seconds` long. The
 * best of `probes` is kept by the caller; a loaded machine gives a lower figure, so % of peak is then relative to
 * what the run could get.
 */
export function measurePeak(seconds = 0.5): PeakMeasurement {
  const addon = loadAddon();
  if (!addon || typeof addon.fmaPeak !== 'function')
    return nominalPeak('the native addon (which holds the FMA probe) is not built');
  const threads = addon.info().threads;
  const r = addon.fmaPeak(seconds, threads);
  return { gflops: r.gflops, source: 'fma-probe', probes: [r.gflops], isa: r.isa, threads: r.threads };
}

function nominalPeak(why: string): PeakMeasurement {
  return { gflops: PEAK_GFLOPS, source: 'nominal', probes: [], why };
}

/** "187.3 GFLOP/s measured (FMA probe, avx512, 2 threads; nominal 234)" or "234 GFLOP/s nominal (why)". */
export function peakText(m: { peakGflops: number; peak?: PeakMeasurement; nominalPeakGflops?: number }): string {
  const p = m.peak;
  if (!p || p.source === 'nominal') return `${m.peakGflops} GFLOP/s nominal${p?.why ? ` (${p.why})` : ''}`;
  return `${p.gflops.toFixed(1)} GFLOP/s measured (FMA probe, ${p.isa}, ${p.threads} threads, best of ${p.probes.map((x) => x.toFixed(1)).join(' / ')}; nominal ${m.nominalPeakGflops ?? PEAK_GFLOPS})`;
}

/** Merges probes: the best is the peak. */
function mergePeaks(a: PeakMeasurement, b: PeakMeasurement): PeakMeasurement {
  if (a.source !== 'fma-probe' || b.source !== 'fma-probe') return a.source === 'fma-probe' ? a : b;
  const probes = [...a.probes, ...b.probes];
  return { ...a, probes, gflops: Math.max(...probes) };
}

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
  /** Seconds of each FMA probe (one before the workloads, one after; the best is the peak); 0 uses the nominal peak. Default 0.5. */
  peakProbeSeconds?: number;
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
  machine: {
    cpus: number;
    model: string;
    cpuFamily: number | null;
    /** The peak % of peak is computed against: measured in this run by the FMA probe, or the nominal fallback. */
    peakGflops: number;
    peak: PeakMeasurement;
    /** PEAK_GFLOPS, for comparison with the measured peak. */
    nominalPeakGflops: number;
    note?: string;
  };
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
  const probe = () =>
    o.peakProbeSeconds === 0 ? nominalPeak('the FMA probe was turned off') : measurePeak(o.peakProbeSeconds);
  let peak = probe();
  log(
    peak.source === 'fma-probe'
      ? `bench: peak ${peak.gflops.toFixed(1)} GFLOP/s measured by the FMA probe (${peak.isa}, ${peak.threads} threads; nominal ${PEAK_GFLOPS})`
      : `bench: peak ${PEAK_GFLOPS} GFLOP/s nominal (${peak.why})`,
  );
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
        peakFraction: null, // set once the closing probe has run
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
  peak = mergePeaks(peak, probe());
  for (const r of rows) r.peakFraction = r.gflops === null ? null : r.gflops / peak.gflops;
  return {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? 'unknown',
      cpuFamily: cpuFamily(),
      peakGflops: peak.gflops,
      peak,
      nominalPeakGflops: PEAK_GFLOPS,
      note:
        cpuFamily() === 26
          ? 'AMD Zen 5: full-width AVX-512 FMA, so the measured AVX-512 peak is about 2x the nominal (AVX2) one'
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
    `attnlab bench, ${r.date}: ${r.machine.cpus} x ${r.machine.model}, peak ${peakText(r.machine)}; ${torch}; ${r.repeats} interleaved repeats, medians`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
  ].join('\n');
}

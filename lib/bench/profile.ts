/**
 * A profiler for tfjs code, what torch.profiler gives PyTorch users: time, calls and bytes per kernel, split by phase
 * (forward, backward, optimizer, or any names you mark), as rows, a danfojs DataFrame and a plotly bar chart.
 *
 *   const p = await al.profile((mark) => {
 *     const { value, grads } = tf.variableGrads(() => { mark('forward'); const l = model.loss(x, y); mark('backward'); return l; });
 *     mark('optimizer'); opt.apply(grads); tf.dispose([value, ...Object.values(grads)]);
 *   });
 *   al.display(p.figure()); await p.dataFrame();
 *
 * It runs `fn` under `tf.profile`: every kernel the engine dispatches (tfjs's own and attnlab's native overrides,
 * forward and backward) is timed. On CPU backends (cpu, wasm, wasm-native) a kernel's time is its wall time including
 * a read back of its outputs, so kernels cannot overlap and the times add up to about the step's wall time; work
 * outside kernels (JavaScript, tape bookkeeping) is the difference between `wallMs` and `kernelMs`. `mark(phase)`
 * starts a phase at the next kernel; kernels before the first mark belong to `opts.phase` (default 'run'). A
 * `tf.customGrad` op is not a kernel: tfjs records it too (named after its scope, e.g. 'unnamed scope') with the time
 * of the kernels inside it, which are recorded themselves; such entries are left out, so nothing is counted twice.
 */
import * as tf from '@tensorflow/tfjs';
import { activeName } from '../backend/index.js';
import type { Figure } from '../display/plotly.js';
import { type DataFrame, recordsToDataFrame } from '../train/history.js';

export interface ProfileRow {
  kernel: string;
  phase: string;
  calls: number;
  /** Total milliseconds of this kernel in this phase, and per call. */
  ms: number;
  meanMs: number;
  /** Fraction of all kernel time. */
  share: number;
  /** Bytes of tensor memory its calls added (outputs, minus what they freed). */
  bytesAdded: number;
}

export interface ProfileResult<T> {
  /** What `fn` returned (its tensors are yours to dispose). */
  result: T;
  /** One row per (phase, kernel), by time, longest first. */
  rows: ProfileRow[];
  /** Time per phase, in the order phases were first marked. */
  phases: { phase: string; ms: number; calls: number }[];
  kernelMs: number;
  wallMs: number;
  kernelCalls: number;
  peakBytes: number;
  newBytes: number;
  newTensors: number;
  /** attnlab's backend name (wasm-native, wasm, cpu, tensorflow). */
  backend: string;
  /** The rows as a danfojs DataFrame. */
  dataFrame(): Promise<DataFrame>;
  /** A horizontal bar chart of the `top` longest kernels (default 15), stacked by phase. */
  figure(top?: number): Figure;
  /** A plain-text table (for terminals and logs). */
  table(top?: number): string;
}

export interface ProfileOptions {
  /** The phase of kernels before the first `mark` (default 'run'). */
  phase?: string;
  /** Unprofiled runs of `fn` first (default 1: the first run pays for compilation and allocation). */
  warmup?: number;
}

type Mark = (phase: string) => void;

interface EngineProfile {
  kernels: { name: string; bytesAdded: number; kernelTimeMs: number | { error: string } }[];
}

/** Profiles `fn`; see the module header. `fn` may be async; it gets `mark(phase)`. */
export async function profile<T>(
  fn: (mark: Mark) => T | Promise<T>,
  opts: ProfileOptions = {},
): Promise<ProfileResult<T>> {
  if (typeof fn !== 'function') throw new TypeError(`profile: fn must be a function, got ${typeof fn}`);
  const warmup = opts.warmup ?? 1;
  if (!Number.isInteger(warmup) || warmup < 0)
    throw new RangeError(`profile: opts.warmup must be an integer >= 0, got ${String(opts.warmup)}`);
  const first = opts.phase ?? 'run';
  for (let i = 0; i < warmup; i++) {
    const r = await fn(() => {});
    tf.dispose(r as tf.TensorContainer);
  }
  const engine = tf.engine() as unknown as { state: { activeProfile: EngineProfile } };
  const marks: { at: number; phase: string }[] = [{ at: 0, phase: first }];
  const mark: Mark = (phase) => {
    if (typeof phase !== 'string' || phase === '')
      throw new TypeError(`profile: mark(phase) needs a non-empty string, got ${JSON.stringify(phase)}`);
    marks.push({ at: engine.state.activeProfile.kernels.length, phase });
  };
  let result: T | undefined;
  const t0 = performance.now();
  const info = await tf.profile(async () => {
    result = await fn(mark);
    return [];
  });
  const wallMs = performance.now() - t0;
  const phaseAt = (i: number): string => {
    let p = first;
    for (const m of marks) if (m.at <= i) p = m.phase;
    return p;
  };
  const byKey = new Map<string, ProfileRow>();
  const phases = new Map<string, { phase: string; ms: number; calls: number }>();
  for (const m of marks) if (!phases.has(m.phase)) phases.set(m.phase, { phase: m.phase, ms: 0, calls: 0 });
  const backendName = tf.getBackend();
  const registered = new Map<string, boolean>();
  const isKernel = (name: string): boolean => {
    if (!registered.has(name)) registered.set(name, tf.getKernel(name, backendName) !== undefined);
    return registered.get(name)!;
  };
  let kernelCalls = 0;
  info.kernels.forEach((k, i) => {
    if (!isKernel(k.name)) return; // a customGrad scope: its kernels are counted on their own
    kernelCalls++;
    const phase = phaseAt(i);
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const key = `${phase}\u0000${k.name}`;
    const row = byKey.get(key) ?? { kernel: k.name, phase, calls: 0, ms: 0, meanMs: 0, share: 0, bytesAdded: 0 };
    row.calls++;
    row.ms += ms;
    row.bytesAdded += k.bytesAdded;
    byKey.set(key, row);
    const ph = phases.get(phase)!;
    ph.ms += ms;
    ph.calls++;
  });
  const kernelMs = [...byKey.values()].reduce((s, r) => s + r.ms, 0);
  const rows = [...byKey.values()]
    .map((r) => ({ ...r, meanMs: r.ms / r.calls, share: kernelMs > 0 ? r.ms / kernelMs : 0 }))
    .sort((a, b) => b.ms - a.ms || a.kernel.localeCompare(b.kernel));
  const phaseList = [...phases.values()].filter((p) => p.calls > 0 || p.phase !== first);
  const res: ProfileResult<T> = {
    result: result as T,
    rows,
    phases: phaseList,
    kernelMs,
    wallMs,
    kernelCalls,
    peakBytes: info.kernels.length ? info.peakBytes : 0,
    newBytes: info.newBytes,
    newTensors: info.newTensors,
    backend: activeName(),
    dataFrame: () => recordsToDataFrame(rows as unknown as Record<string, number>[]),
    figure: (top = 15) => profileFigure(res, top),
    table: (top = 20) => profileTable(res, top),
  };
  return res;
}

/** Kernels by total time (all phases), the longest `top`, stacked by phase. */
function topKernels(p: ProfileResult<unknown>, top: number): string[] {
  const total = new Map<string, number>();
  for (const r of p.rows) total.set(r.kernel, (total.get(r.kernel) ?? 0) + r.ms);
  return [...total.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k]) => k);
}

function profileFigure(p: ProfileResult<unknown>, top: number): Figure {
  const kernels = topKernels(p, top).reverse(); // plotly draws the first category at the bottom
  const data = p.phases.map((ph) => ({
    type: 'bar',
    orientation: 'h',
    name: ph.phase,
    y: kernels,
    x: kernels.map((k) => p.rows.find((r) => r.kernel === k && r.phase === ph.phase)?.ms ?? 0),
    customdata: kernels.map((k) => p.rows.find((r) => r.kernel === k && r.phase === ph.phase)?.calls ?? 0),
    hovertemplate: `%{y} (${ph.phase}): %{x:.2f} ms in %{customdata} calls<extra></extra>`,
  }));
  return {
    data,
    layout: {
      title: {
        text: `Kernel time on ${p.backend}: ${p.kernelMs.toFixed(1)} ms in ${p.kernelCalls} kernels (wall ${p.wallMs.toFixed(1)} ms)`,
      },
      barmode: 'stack',
      xaxis: { title: { text: 'milliseconds' } },
      yaxis: { automargin: true },
      height: Math.max(300, 90 + 24 * kernels.length),
      margin: { l: 160, r: 20, t: 60, b: 50 },
    },
  };
}

function profileTable(p: ProfileResult<unknown>, top: number): string {
  const head = `${'phase'.padEnd(12)}${'kernel'.padEnd(28)}${'calls'.padStart(7)}${'ms'.padStart(10)}${'ms/call'.padStart(10)}${'share'.padStart(8)}${'MB added'.padStart(10)}`;
  const lines = p.rows
    .slice(0, top)
    .map(
      (r) =>
        `${r.phase.padEnd(12)}${r.kernel.slice(0, 27).padEnd(28)}${String(r.calls).padStart(7)}${r.ms.toFixed(2).padStart(10)}${r.meanMs.toFixed(3).padStart(10)}${`${(100 * r.share).toFixed(1)}%`.padStart(8)}${(r.bytesAdded / 2 ** 20).toFixed(2).padStart(10)}`,
    );
  const phases = p.phases.map((ph) => `${ph.phase} ${ph.ms.toFixed(1)} ms (${ph.calls} kernels)`).join(', ');
  return [
    `backend ${p.backend}: kernels ${p.kernelMs.toFixed(1)} ms of ${p.wallMs.toFixed(1)} ms wall; ${phases}`,
    head,
    ...lines,
    p.rows.length > top ? `... ${p.rows.length - top} more rows` : '',
  ]
    .filter(Boolean)
    .join('\n');
}

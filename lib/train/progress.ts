/**
 * Progress (of training, or of any loop through `progress(items)`) for three places: a one-line bar redrawn with \r on a terminal, a plain line every ~10% when
 * stderr is not a terminal (CI logs), and an HTML + text display updated in place in a notebook.
 */
import { type DisplayHandle, newDisplayHandle } from '../display/display-handle.js';
import { escapeHtml } from '../display/html.js';

export type ProgressMode = boolean | 'auto' | 'bar' | 'lines' | 'notebook';

export interface ProgressState {
  /** Steps finished in this run, counting from the run's first step. */
  done: number;
  /** Steps this run will take; NaN when unknown (an iterable without a length). */
  total: number;
  /** 0-based index of the last finished step. */
  step: number;
  /** Training runs report these; a generic loop has neither. */
  loss?: number;
  lr?: number;
  /** What a step is called (default "step"). */
  unit?: string;
  seconds: number;
  /** Latest evaluation metrics, if any. */
  metrics?: Record<string, number>;
}

/** Where progress goes; `stream` is stderr unless a test injects one. */
export interface ProgressTarget {
  stream?: { write(s: string): unknown; isTTY?: boolean; columns?: number };
  display?: DisplayHandle;
  /** Minimum milliseconds between redraws of a bar or display (default 100 for a terminal, 250 for a notebook). */
  throttleMs?: number;
}

export interface ProgressReporter {
  update(s: ProgressState): void;
  /** Final state; stays visible. `note` is a stop message, shown with it (and printed even when progress is off). */
  finish(s: ProgressState, note?: string): void;
}

export function createProgress(mode: ProgressMode, target: ProgressTarget = {}): ProgressReporter {
  const stream = target.stream ?? process.stderr;
  // Without progress a stop note (NaN loss) is still printed: it is the one message a run must not swallow.
  if (mode === false) return { update() {}, finish: (_s, note) => void (note && stream.write(`${note}\n`)) };
  let kind = mode;
  if (mode === true || mode === 'auto') {
    const display = target.display ?? newDisplayHandle();
    if (display) return new NotebookProgress(display, target.throttleMs ?? 250);
    kind = stream.isTTY ? 'bar' : 'lines';
  }
  if (kind === 'notebook') {
    const display = target.display ?? newDisplayHandle();
    return display ? new NotebookProgress(display, target.throttleMs ?? 250) : new LineProgress(stream);
  }
  if (kind === 'bar') return new BarProgress(stream, target.throttleMs ?? 100);
  return new LineProgress(stream);
}

/** `step 120/1000  loss 2.3456  lr 3.00e-4  12.3 it/s  ETA 1:12`, plus metrics. */
export function describe(s: ProgressState): string {
  const rate = s.done / Math.max(s.seconds, 1e-9);
  const eta = s.done > 0 ? (s.total - s.done) / rate : NaN;
  const known = Number.isFinite(s.total);
  const parts = [
    `${s.unit ?? 'step'} ${s.done}${known ? `/${s.total}` : ''}`,
    ...(s.loss === undefined ? [] : [`loss ${fmtNum(s.loss)}`]),
    ...(s.lr === undefined ? [] : [`lr ${s.lr.toExponential(2)}`]),
    `${rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)} it/s`,
    !known || s.done >= s.total ? `${fmtTime(s.seconds)} total` : `ETA ${fmtTime(eta)}`,
  ];
  for (const [k, v] of Object.entries(s.metrics ?? {})) parts.push(`${k} ${fmtNum(v)}`);
  return parts.join('  ');
}

export function fmtTime(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  const t = Math.round(sec);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const ss = String(t % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toFixed(4);
}

class BarProgress implements ProgressReporter {
  private last = -Infinity;
  constructor(
    private readonly stream: NonNullable<ProgressTarget['stream']>,
    private readonly throttleMs: number,
  ) {}

  update(s: ProgressState): void {
    const now = Date.now();
    if (now - this.last < this.throttleMs) return;
    this.last = now;
    this.draw(s);
  }

  finish(s: ProgressState, note?: string): void {
    this.draw(s);
    this.stream.write('\n');
    if (note) this.stream.write(`${note}\n`);
  }

  private draw(s: ProgressState): void {
    const width = 20;
    const filled = Number.isFinite(s.total) ? Math.min(width, Math.round((width * s.done) / Math.max(1, s.total))) : 0;
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const line = `${bar} ${describe(s)}`;
    const cols = this.stream.columns ?? 120;
    // \x1b[K clears what a longer previous line left behind.
    this.stream.write(`\r${line.slice(0, Math.max(10, cols - 1))}\x1b[K`);
  }
}

class LineProgress implements ProgressReporter {
  private nextDecile = 1;
  constructor(private readonly stream: NonNullable<ProgressTarget['stream']>) {}

  update(s: ProgressState): void {
    // Unknown total: a line every 10^k items.
    const decile = Number.isFinite(s.total)
      ? Math.floor((10 * s.done) / Math.max(1, s.total))
      : s.done >= 10 ** (this.nextDecile - 1)
        ? this.nextDecile
        : 0;
    if (decile < this.nextDecile || s.done >= s.total) return;
    this.nextDecile = decile + 1;
    this.stream.write(`${describe(s)}\n`);
  }

  finish(s: ProgressState, note?: string): void {
    this.stream.write(`${describe(s)}\n`);
    if (note) this.stream.write(`${note}\n`);
  }
}

class NotebookProgress implements ProgressReporter {
  private last = -Infinity;
  constructor(
    private readonly handle: DisplayHandle,
    private readonly throttleMs: number,
  ) {}

  update(s: ProgressState): void {
    const now = Date.now();
    if (now - this.last < this.throttleMs) return;
    this.last = now;
    this.show(s, false);
  }

  finish(s: ProgressState, note?: string): void {
    this.show(s, true, note);
  }

  private show(s: ProgressState, finished: boolean, note?: string): void {
    const text = describe(s);
    const known = Number.isFinite(s.total);
    const noteHtml = note ? `<div style="color:#b00">${escapeHtml(note)}</div>` : '';
    // Without a total the bar is indeterminate (no value) until the loop ends.
    const bar = known
      ? `<progress value="${s.done}" max="${s.total}" style="width:240px"></progress> ${Math.round((100 * s.done) / Math.max(1, s.total))}%`
      : `<progress ${finished ? 'value="1" max="1" ' : ''}style="width:240px"></progress>`;
    const html = `<div class="attnlab-progress">${bar} <code>${escapeHtml(text)}</code>${noteHtml}</div>`;
    this.handle.update({ 'text/html': html, 'text/plain': note ? `${text}\n${note}` : text });
  }
}

export interface ProgressOptions {
  /** Items to expect, for iterables without a `length` or `size` (a generator). */
  total?: number;
  /** What an item is called in the description (default "it"). */
  unit?: string;
  /** As for training: `'auto'` (default) is a notebook display, a terminal bar, or lines in a log. */
  mode?: ProgressMode;
  /** Where it goes (tests inject a stream or a display). */
  target?: ProgressTarget;
}

/**
 * tqdm for any loop: `for (const x of progress(items)) ...` yields `items` unchanged while showing how many are done,
 * the rate and the time left (a bar in a notebook or a terminal). The display ends when the loop does, `break` and
 * exceptions included.
 */
export function* progress<T>(items: Iterable<T>, opts: ProgressOptions = {}): Generator<T, void, undefined> {
  const sized = items as { length?: unknown; size?: unknown };
  const total =
    opts.total ??
    (typeof sized.length === 'number' ? sized.length : typeof sized.size === 'number' ? sized.size : Number.NaN);
  const reporter = createProgress(opts.mode ?? 'auto', opts.target);
  const start = performance.now();
  let done = 0;
  const state = (): ProgressState => ({
    done,
    total,
    step: done - 1,
    unit: opts.unit ?? 'it',
    seconds: (performance.now() - start) / 1000,
  });
  try {
    for (const x of items) {
      yield x;
      done++;
      reporter.update(state());
    }
  } finally {
    reporter.finish(state());
  }
}

/**
 * The contract between the library and whatever shows its output.
 *
 * The attnlab kernel installs a `DisplaySink` on the global object (under `Symbol.for('attnlab.displaySink')`, so two
 * copies of the library agree); outside a notebook there is none and callers fall back to the terminal.
 */
import { toMimeBundle } from './mime.js';

export type MimeBundle = Record<string, unknown>;

/** Values with this method display through it (the convention Deno's Jupyter kernel uses). */
export const JUPYTER_DISPLAY = Symbol.for('Jupyter.display');

export interface DisplaySink {
  /** Send a display_data (or update_display_data when `update` is set) carrying `bundle`. */
  send(bundle: MimeBundle, opts?: { displayId?: string; update?: boolean; metadata?: Record<string, unknown> }): void;
  /** Send clear_output: empty the current cell's output area (after the next output arrives when `wait`). */
  clear?(wait?: boolean): void;
}

const SINK_KEY = Symbol.for('attnlab.displaySink');
type GlobalWithSink = typeof globalThis & { [SINK_KEY]?: DisplaySink };

export function setDisplaySink(sink: DisplaySink | undefined): void {
  (globalThis as GlobalWithSink)[SINK_KEY] = sink;
}

export function displaySink(): DisplaySink | undefined {
  return (globalThis as GlobalWithSink)[SINK_KEY];
}

/** True when running inside a kernel that can show rich output. */
export function isNotebook(): boolean {
  return displaySink() !== undefined;
}

/** `{ 'text/plain': ..., 'image/png': ... }`: a non-empty plain object keyed by MIME types only. */
export function isMimeBundle(x: unknown): x is MimeBundle {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  const keys = Object.keys(x);
  return (
    (proto === Object.prototype || proto === null) && keys.length > 0 && keys.every((k) => /^[\w-]+\/[\w.+-]+$/.test(k))
  );
}

let nextId = 0;

/** One output area that can be replaced in place (a progress bar, a live plot) and cleared. */
export class DisplayHandle {
  readonly displayId: string;
  private shown = false;

  constructor(
    private readonly sink: DisplaySink,
    displayId?: string,
  ) {
    this.displayId = displayId ?? `attnlab-${process.pid}-${Date.now().toString(36)}-${nextId++}`;
  }

  /**
   * Show `value` the first time, then replace what this handle shows: a MIME bundle (an object whose keys are all
   * MIME types, like `{ 'text/html': ... }`) as is, anything else as `display(value)` would show it.
   */
  update(value: unknown): void {
    const bundle = isMimeBundle(value) ? value : toMimeBundle(value);
    this.sink.send(bundle, { displayId: this.displayId, update: this.shown });
    this.shown = true;
  }

  /** Replace the output with nothing. */
  clear(): void {
    if (this.shown) this.sink.send({ 'text/plain': '' }, { displayId: this.displayId, update: true });
  }
}

/** A handle on the current notebook output, or undefined outside a notebook. */
export function newDisplayHandle(): DisplayHandle | undefined {
  const sink = displaySink();
  return sink ? new DisplayHandle(sink) : undefined;
}

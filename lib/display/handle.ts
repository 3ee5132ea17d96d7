/**
 * The contract between the library and whatever shows its output.
 *
 * The attnlab kernel installs a `DisplaySink` on the global object (under `Symbol.for('attnlab.displaySink')`, so two
 * copies of the library agree); outside a notebook there is none and callers fall back to the terminal. Handles on one
 * output area are display-handle.ts (they turn values into bundles with mime.ts, which depends on this contract).
 */
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

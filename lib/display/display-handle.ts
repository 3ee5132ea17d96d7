/** One output area that can be replaced in place: values are turned into MIME bundles as `display(value)` would. */
import { type DisplaySink, displaySink, isMimeBundle } from './handle.js';
import { toMimeBundle } from './mime.js';

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

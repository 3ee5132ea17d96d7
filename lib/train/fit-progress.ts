/**
 * Progress for tf.layers' `model.fit(x, y, { verbose: 1 })` and `fitDataset`: plain tfjs has no progress bar (only
 * tfjs-node registers one), so in a notebook `verbose: 1` showed nothing. `FitProgress` is the same display as
 * `train()`'s (a bar updated in place in a notebook, a terminal bar, or log lines): batches done of all epochs, the
 * latest loss, the rate and the time left, and each epoch's metrics (validation included) as they come.
 *
 * Importing attnlab registers it for verbosity 1 (`tf.registerCallbackConstructor`, tfjs's own extension point); pass
 * `new FitProgress({ ... })` in `callbacks` to choose where it goes.
 */
import * as tf from '@tensorflow/tfjs';
import {
  createProgress,
  type ProgressMode,
  type ProgressReporter,
  type ProgressState,
  type ProgressTarget,
} from './progress.js';

export interface FitProgressOptions {
  mode?: ProgressMode;
  target?: ProgressTarget;
  /** Milliseconds between reads of the batch loss (each read waits for the backend; default 250). */
  readEveryMs?: number;
}

type Logs = Record<string, number | tf.Scalar> | undefined;

function scalar(v: number | tf.Scalar | undefined): number | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'number' ? v : v.isDisposed ? undefined : v.dataSync()[0];
}

export class FitProgress extends tf.Callback {
  private reporter?: ProgressReporter;
  private readonly opts: FitProgressOptions;
  private start = 0;
  private perEpoch = Number.NaN;
  private epoch = 0;
  private done = 0;
  private lastRead = -Infinity;
  private loss?: number;
  private metrics: Record<string, number> = {};

  constructor(opts: FitProgressOptions = {}) {
    super();
    this.opts = opts;
  }

  private state(): ProgressState {
    const epochs = Number(this.params.epochs ?? 1);
    const initial = Number(this.params.initialEpoch ?? 0);
    return {
      done: this.done,
      total: Number.isFinite(this.perEpoch) ? this.perEpoch * Math.max(1, epochs - initial) : Number.NaN,
      step: this.done - 1,
      unit: 'batch',
      seconds: (performance.now() - this.start) / 1000,
      ...(this.loss === undefined ? {} : { loss: this.loss }),
      metrics: { epoch: this.epoch + 1, ...this.metrics },
    };
  }

  override async onTrainBegin(): Promise<void> {
    this.start = performance.now();
    this.done = 0;
    this.metrics = {};
    this.loss = undefined;
    const p = this.params as { steps?: number; samples?: number; batchSize?: number };
    // fit: samples and batchSize; fitDataset: batchesPerEpoch as steps (unknown for an unbounded dataset).
    this.perEpoch =
      typeof p.steps === 'number' && p.steps > 0
        ? p.steps
        : typeof p.samples === 'number' && typeof p.batchSize === 'number'
          ? Math.ceil(p.samples / p.batchSize)
          : Number.NaN;
    this.reporter = createProgress(this.opts.mode ?? 'auto', this.opts.target);
  }

  override async onEpochBegin(epoch: number): Promise<void> {
    this.epoch = epoch;
  }

  override async onBatchEnd(_batch: number, logs?: Logs): Promise<void> {
    this.done++;
    const now = performance.now();
    if (now - this.lastRead >= (this.opts.readEveryMs ?? 250)) {
      this.lastRead = now;
      this.loss = scalar(logs?.loss) ?? this.loss;
    }
    this.reporter?.update(this.state());
  }

  override async onEpochEnd(epoch: number, logs?: Logs): Promise<void> {
    this.epoch = epoch;
    for (const [k, v] of Object.entries(logs ?? {})) {
      const x = scalar(v);
      if (x !== undefined) this.metrics[k] = x;
    }
    if (this.metrics.loss !== undefined) this.loss = this.metrics.loss;
    this.reporter?.update(this.state());
  }

  override async onTrainEnd(): Promise<void> {
    this.reporter?.finish(this.state());
    this.reporter = undefined;
  }
}

const REGISTERED = Symbol.for('attnlab.fitProgressRegistered');

/** Makes `verbose: 1` in `model.fit` / `fitDataset` show FitProgress (once per process). */
export function registerFitProgress(): void {
  const g = globalThis as { [REGISTERED]?: boolean };
  if (g[REGISTERED]) return;
  g[REGISTERED] = true;
  tf.registerCallbackConstructor(1, FitProgress as unknown as Parameters<typeof tf.registerCallbackConstructor>[1]);
}

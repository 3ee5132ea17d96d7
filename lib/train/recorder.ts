/**
 * A training-dynamics recorder: every `every` steps it measures chosen statistics (attention entropy, a ratio, a
 * validation loss) and snapshots chosen weight blocks (a KQ or OV product, a slice of a matrix), into rows a DataFrame
 * takes and frames a notebook can animate.
 *
 *   const rec = new Recorder({
 *     every: 10,
 *     stats: () => ({ validation_entropy: meanEntropy(attn) }),
 *     blocks: { KQ: () => tf.matMul(wq, wk, false, true), Z: () => model.Z },
 *   });
 *   rec.capture(0);                                  // the initial state, before any update
 *   await train({ ..., onStep: rec.onStep });         // then after every `every` updates
 *   const df = await rec.toDataFrame();               // columns step, loss, and every stat
 *   const frames = rec.frames('KQ');                  // [{ step, shape, values }] for a heat-map animation
 *
 * `step` in a row counts the updates applied before the measurement (0 = initial weights). Tensors that the stats
 * and block functions create are freed; a block may return a variable (it is copied, never disposed).
 */
import * as tf from '@tensorflow/tfjs';
import { type DataFrame, recordsToDataFrame } from './history.js';
import type { StepRecord } from './loop.js';

export interface RecorderOptions {
  /** Measure after every this many updates (a positive integer). */
  every: number;
  /** Scalar statistics, keyed by column name; called with the update count. */
  stats?: (step: number) => Record<string, number>;
  /** Weight blocks to snapshot, keyed by name; each returns a tensor (any rank; read back as float32). */
  blocks?: Record<string, () => tf.Tensor>;
}

/** One snapshot of one block. */
export interface BlockFrame {
  step: number;
  shape: number[];
  values: Float32Array;
}

/** One row per measurement: step, the training loss of the last update (NaN at step 0), then the stats. */
export interface RecorderRow {
  step: number;
  loss: number;
  [stat: string]: number;
}

export class Recorder {
  readonly every: number;
  readonly rows: RecorderRow[] = [];
  private readonly blockFrames = new Map<string, BlockFrame[]>();

  constructor(private readonly options: RecorderOptions) {
    if (!Number.isInteger(options.every) || options.every < 1)
      throw new Error(`Recorder: every must be a positive integer, got ${options.every}`);
    this.every = options.every;
    for (const name of Object.keys(options.blocks ?? {})) this.blockFrames.set(name, []);
  }

  /** For `train({ onStep })`: measures after update `record.step + 1` when it is a multiple of `every`. */
  readonly onStep = (record: StepRecord): void => {
    const step = record.step + 1;
    if (step % this.every === 0) this.capture(step, record.loss);
  };

  /** Measures now, labelled `step` (e.g. 0 before training, or the last step when it is not a multiple of `every`). */
  capture(step: number, loss = NaN): RecorderRow {
    const last = this.rows[this.rows.length - 1];
    if (last && step <= last.step)
      throw new Error(`Recorder.capture: step must increase, got ${step} after ${last.step}`);
    const stats = this.options.stats ? scopedSync(() => this.options.stats!(step)) : {};
    const row: RecorderRow = { step, loss };
    for (const [k, v] of Object.entries(stats)) {
      if (k === 'step' || k === 'loss') throw new Error(`Recorder: a stat may not be named "${k}" (a fixed column)`);
      if (typeof v !== 'number') throw new Error(`Recorder: stat "${k}" must be a number, got ${typeof v}`);
      row[k] = v;
    }
    for (const [name, f] of Object.entries(this.options.blocks ?? {})) {
      const t = tf.tidy(() => {
        const x = f();
        return tf.cast(x, 'float32');
      });
      const values = t.dataSync() as Float32Array;
      const shape = [...t.shape];
      t.dispose();
      (this.blockFrames.get(name) as BlockFrame[]).push({ step, shape, values: Float32Array.from(values) });
    }
    this.rows.push(row);
    return row;
  }

  /** A block's snapshots in step order. */
  frames(name: string): BlockFrame[] {
    const f = this.blockFrames.get(name);
    if (!f)
      throw new Error(
        `Recorder.frames: no block named "${name}" (blocks: ${[...this.blockFrames.keys()].join(', ') || 'none'})`,
      );
    return f;
  }

  /** A stat's values in step order, with their steps. */
  series(stat: string): { step: number[]; value: number[] } {
    if (this.rows.length && !(stat in this.rows[0]))
      throw new Error(`Recorder.series: no stat named "${stat}" (columns: ${Object.keys(this.rows[0]).join(', ')})`);
    return { step: this.rows.map((r) => r.step), value: this.rows.map((r) => r[stat]) };
  }

  /**
   * A block's snapshots as long-format rows `{ step, i, j, value }` (a 2-D block; a 1-D block has j = 0), for a
   * DataFrame or a faceted heat-map.
   */
  blockRows(name: string): { step: number; i: number; j: number; value: number }[] {
    const out: { step: number; i: number; j: number; value: number }[] = [];
    for (const fr of this.frames(name)) {
      if (fr.shape.length > 2)
        throw new Error(`Recorder.blockRows: block "${name}" has shape [${fr.shape}]; only 1-D and 2-D blocks flatten`);
      const cols = fr.shape.length === 2 ? fr.shape[1] : 1;
      fr.values.forEach((value, k) => out.push({ step: fr.step, i: Math.floor(k / cols), j: k % cols, value }));
    }
    return out;
  }

  /** The rows as a danfojs DataFrame (columns step, loss, then the stats). */
  toDataFrame(): Promise<DataFrame> {
    return recordsToDataFrame(this.rows);
  }
}

/** Runs `f`, freeing the tensors it creates. */
function scopedSync<T>(f: () => T): T {
  tf.engine().startScope();
  try {
    return f();
  } finally {
    tf.engine().endScope();
  }
}

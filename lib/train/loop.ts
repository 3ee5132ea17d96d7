/**
 * A training loop for custom models: variables + a loss function, Adam/AdamW, clipping, a schedule, evaluation,
 * progress, and a clean stop on a non-finite loss.
 *
 * Each step reads one small tensor ([loss, grad norm]) back from the backend, before the update, so a NaN/Inf loss or
 * gradient never reaches the weights.
 */
import * as tf from '@tensorflow/tfjs';
import { hashSeed, Rng } from '../util/random.js';
import { type DataFrame, recordsToDataFrame } from './history.js';
import { Adam, globalNorm, makeOptimizer, type OptimizerConfig, type VariableSet, variableEntries } from './optim.js';
import { createProgress, type ProgressMode, type ProgressState, type ProgressTarget } from './progress.js';
import { makeSchedule, type Schedule, type ScheduleConfig } from './schedule.js';

/** What a loss function gets besides the step: a per-step seed and generator, reproducible from `train`'s seed. */
export interface StepContext {
  /** 0-based step index. */
  step: number;
  /** A seed for this step's random ops (dropout, sampling): `tf.randomUniform(shape, 0, 1, 'float32', ctx.seed)`. */
  seed: number;
  rng: Rng;
}

/** One row of the history. `step` is 0-based; `loss` is the loss before that step's update. */
export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  /** Seconds since training started, at the end of this step. */
  seconds: number;
  [metric: string]: number;
}

export interface StopInfo {
  reason: 'nan' | 'callback' | 'data';
  /** The step that was not applied (nan), or the last step applied (callback, data). */
  step: number;
  message: string;
}

export interface TrainOptions<B = undefined> {
  /** What to train: a list, or keyed by stable names (for a tf.layers layer or model, `variablesOf(model)`). */
  variables: VariableSet;
  /**
   * The loss for one step, a scalar. Called inside `tf.variableGrads` (tensors it creates are freed). With `batches`,
   * `batch` is the next item; tensors in it are disposed after the step unless `disposeBatches` is false.
   */
  loss: (step: number, batch: B, ctx: StepContext) => tf.Scalar;
  batches?: Iterable<B> | AsyncIterable<B>;
  disposeBatches?: boolean;
  /**
   * Train until this step count. A resumed optimizer (one whose `step` > 0) continues from its step, so `steps` is the
   * total across runs.
   */
  steps: number;
  /** An optimizer config (train creates it and disposes it at the end) or an optimizer you own (e.g. restored). */
  optimizer?: OptimizerConfig | Adam;
  /** A schedule config (peak = optimizer lr, total = steps) or any `lr(step)` function. Default constant. */
  schedule?: ScheduleConfig | Schedule;
  /** Clip gradients to this global norm (none when unset). */
  clipNorm?: number;
  /** Seeds `StepContext` (default 0). */
  seed?: number;
  /** Call `evaluate` every this many steps and after the last step. */
  evalEvery?: number;
  /** Metrics named with their split, e.g. `{ test_loss: 1.2 }`. Tensors it creates are freed. */
  evaluate?: (step: number) => Record<string, number> | Promise<Record<string, number>>;
  /** Default 'auto': a notebook display, a terminal bar, or plain lines every ~10%. */
  progress?: ProgressMode;
  /** Where progress goes (tests inject a stream or display). */
  progressTarget?: ProgressTarget;
  /**
   * Replaces the optimizer's update (e.g. SGD with one learning rate per group of variables): called with the
   * gradients (keyed by variable name, clipped when `clipNorm` is set) and the schedule's lr. The optimizer then
   * applies nothing (its `step` stays where it was).
   */
  update?: (grads: tf.NamedTensorMap, lr: number, step: number) => void;
  /** Called after each applied step with its record; return false to stop. */
  onStep?: (record: StepRecord, optimizer: Adam) => void | boolean | Promise<void | boolean>;
  /** Build the danfojs DataFrame (default true; ~1.5 s the first time danfojs loads). */
  dataframe?: boolean;
}

export interface TrainResult {
  /** Columns step, loss, lr, grad_norm, seconds, then eval metrics (NaN on rows without an evaluation). */
  history: DataFrame | undefined;
  records: StepRecord[];
  /** Steps applied in this run. */
  steps: number;
  stopped?: StopInfo;
  /** The optimizer, when the caller passed one in (train disposes one it created). */
  optimizer?: Adam;
}

const DEFAULT_OPTIMIZER: OptimizerConfig = { type: 'adam', lr: 1e-3 };

export async function train<B = undefined>(options: TrainOptions<B>): Promise<TrainResult> {
  const { steps } = options;
  const variables = variableEntries(options.variables).map(([, v]) => v);
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`train: steps must be an integer >= 0, got ${steps}`);
  if (variables.length === 0) throw new Error('train: variables is empty; nothing to train');
  if (options.clipNorm !== undefined && !(options.clipNorm > 0)) {
    throw new Error(`train: clipNorm must be > 0, got ${options.clipNorm}`);
  }
  if (options.evalEvery !== undefined && !(Number.isInteger(options.evalEvery) && options.evalEvery > 0)) {
    throw new Error(`train: evalEvery must be a positive integer, got ${options.evalEvery}`);
  }
  const owned = !(options.optimizer instanceof Adam);
  const opt =
    options.optimizer instanceof Adam
      ? options.optimizer
      : makeOptimizer(variables, options.optimizer ?? DEFAULT_OPTIMIZER);
  const schedule =
    typeof options.schedule === 'function'
      ? options.schedule
      : makeSchedule(options.schedule ?? { type: 'constant' }, opt.lr, steps);
  const seed = options.seed ?? 0;
  const first = opt.step;
  const total = Math.max(0, steps - first);
  const progress = createProgress(options.progress ?? 'auto', options.progressTarget);
  const batches = options.batches ? iterate(options.batches) : undefined;
  const disposeBatches = options.disposeBatches ?? true;
  const apply = options.update ?? ((grads: tf.NamedTensorMap, lr: number) => opt.apply(grads, lr));

  const records: StepRecord[] = [];
  const metricNames = new Set<string>();
  let stopped: StopInfo | undefined;
  let lastMetrics: Record<string, number> | undefined;
  const t0 = performance.now();
  const state = (step: number, loss: number, lr: number): ProgressState => ({
    done: step - first + 1,
    total,
    step,
    loss,
    lr,
    seconds: (performance.now() - t0) / 1000,
    metrics: lastMetrics,
  });

  try {
    for (let step = first; step < steps; step++) {
      let batch = undefined as B;
      if (batches) {
        const next = await batches.next();
        if (next.done) {
          stopped = {
            reason: 'data',
            step: step - 1,
            message: `train: batches ran out after step ${step - 1} (of ${steps})`,
          };
          break;
        }
        batch = next.value;
      }
      const lr = schedule(step);
      const ctx: StepContext = { step, seed: hashSeed(seed * 1_000_003 + step), rng: new Rng(hashSeed(seed) ^ step) };
      let loss: number;
      let norm: number;
      try {
        [loss, norm] = tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => options.loss(step, batch, ctx), variables);
          const n = globalNorm(grads);
          const [l, g] = tf.stack([value, n]).dataSync();
          if (Number.isFinite(l) && Number.isFinite(g)) {
            const c = options.clipNorm;
            const factor = c !== undefined ? Math.min(1, c / (g + 1e-6)) : 1;
            if (factor < 1) {
              const scaled: tf.NamedTensorMap = {};
              for (const [k, t] of Object.entries(grads)) scaled[k] = tf.mul(t, factor);
              apply(scaled, lr, step);
            } else {
              apply(grads, lr, step);
            }
          }
          return [l, g];
        });
      } finally {
        if (batches && disposeBatches) tf.dispose(batch as tf.TensorContainer);
      }
      if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
        const lastLoss = records.length ? records[records.length - 1].loss : undefined;
        const what = Number.isFinite(loss) ? `gradient norm is ${norm} (loss ${loss})` : `loss is ${loss}`;
        stopped = {
          reason: 'nan',
          step,
          message:
            `train: stopped at step ${step}: ${what}; ` +
            (step > first ? `weights are as after step ${step - 1}` : 'weights are unchanged') +
            (lastLoss !== undefined ? ` (last finite loss ${lastLoss})` : '') +
            `. Try a lower learning rate (lr was ${lr})` +
            (options.clipNorm === undefined
              ? ' or enable gradient clipping (clipNorm: 1).'
              : ' or a smaller clipNorm.'),
        };
        break;
      }
      const record: StepRecord = { step, loss, lr, grad_norm: norm, seconds: 0 };
      const isLast = step === steps - 1;
      if (options.evaluate && ((options.evalEvery !== undefined && (step + 1) % options.evalEvery === 0) || isLast)) {
        lastMetrics = await scoped(() => options.evaluate!(step));
        for (const [k, v] of Object.entries(lastMetrics)) {
          if (k in record)
            throw new Error(
              `train: evaluate returned "${k}", which is a history column; name metrics with their split, e.g. test_loss`,
            );
          record[k] = v;
          metricNames.add(k);
        }
      }
      record.seconds = (performance.now() - t0) / 1000;
      records.push(record);
      progress.update(state(step, loss, lr));
      if (options.onStep && (await options.onStep(record, opt)) === false) {
        if (!isLast) stopped = { reason: 'callback', step, message: `train: stopped by onStep after step ${step}` };
        break;
      }
    }
  } finally {
    if (owned) opt.dispose();
    await batches?.return?.();
  }

  const lastRec = records[records.length - 1];
  const finalState = lastRec
    ? { ...state(lastRec.step, lastRec.loss, lastRec.lr), seconds: lastRec.seconds }
    : { ...state(first - 1, NaN, schedule(first)) };
  progress.finish(finalState, stopped?.reason === 'nan' ? stopped.message : undefined);

  const columns = ['step', 'loss', 'lr', 'grad_norm', 'seconds', ...metricNames];
  return {
    history: options.dataframe === false ? undefined : await recordsToDataFrame(records, columns),
    records,
    steps: records.length,
    stopped,
    optimizer: owned ? undefined : opt,
  };
}

/**
 * The trainable variables of a tf.layers Layer or LayersModel, keyed by the name the layer gave each weight
 * (`originalName`, e.g. `blocks.0.attn.wq`), which stays the same across instances while tfjs's variable names do not.
 */
export function variablesOf(layer: {
  name?: string;
  trainableWeights: { originalName: string; read(): tf.Tensor }[];
}): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const w of layer.trainableWeights) {
    if (w.originalName in out) {
      throw new Error(
        `variablesOf: ${layer.name ?? 'layer'} has two weights named "${w.originalName}"; give its sublayers distinct names`,
      );
    }
    out[w.originalName] = w.read() as tf.Variable;
  }
  return out;
}

/** Run `f`, freeing the tensors it creates (async-safe, unlike tf.tidy). */
async function scoped<T>(f: () => T | Promise<T>): Promise<T> {
  tf.engine().startScope();
  try {
    return await f();
  } finally {
    tf.engine().endScope();
  }
}

function iterate<B>(src: Iterable<B> | AsyncIterable<B>): AsyncIterator<B> | Iterator<B> {
  if (Symbol.asyncIterator in src) return (src as AsyncIterable<B>)[Symbol.asyncIterator]();
  return (src as Iterable<B>)[Symbol.iterator]();
}

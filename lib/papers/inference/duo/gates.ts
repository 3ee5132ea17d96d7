/**
 * DuoAttention's retrieval-head identification (paper §3.2, official duo_attn/train.py): the model is frozen and only
 * one gate α per layer and KV head is trained. Each attention runs as α · full + (1 − α) · streaming (attention.ts),
 * and the loss is
 *
 *   L = mean over answer positions of mean_m (h_full − h_mixed)² + λ · mean |α|
 *
 * where h are the last hidden states of the unmodified model (teacher) and of the gated one, on synthetic
 * multi-passkey prompts (the answer positions are where the passkeys are recalled). After every step α is clipped to
 * [0, 1]; the official run uses AdamW (lr 0.02, no weight decay), λ = 0.05, gates initialised to 1, and a schedule that
 * warms up over the first fifth, stays flat and decays over the last fifth to no less than 0.1 × lr.
 * Deployment thresholds the gates: a fraction of the heads (those with the largest α) keep the full KV cache
 * (retrieval heads), the others a sink + recent cache (streaming heads); see `headsFromGates` and policy.ts.
 *
 * How ours differs: the teacher's and student's hidden states are the last block's residual stream before the final
 * layer norm (HF's `model.model` output is after it); the prompts are our toy passkey task, not essays from a corpus.
 *
 * Shape legend: gates [layers, kvHeads]; inputs [b, s] int32; answerMask [b, s] (1 = the hidden state is distilled).
 */
import * as tf from '@tensorflow/tfjs';
import { sdpa } from '../../../attention/sdpa.js';
import type { ToyLM } from '../../../layers/toylm.js';
import * as masks from '../../../masks/index.js';
import { type StepRecord, train } from '../../../train/loop.js';
import type { ProgressMode } from '../../../train/progress.js';
import { fmt, ShapeError } from '../../../util/shapes.js';
import { mixHeads, type StreamingWindow } from './attention.js';

/** One batch for gate optimisation. */
export interface GateBatch {
  inputs: tf.Tensor2D;
  /** [b, s] float, 1 where the hidden state is distilled (the answer positions). */
  answerMask: tf.Tensor2D;
}

function checkModel(fn: string, model: ToyLM): void {
  const c = model.config;
  if (c.positional === 'alibi') throw new ShapeError(`${fn}: model.config.positional must not be 'alibi', got 'alibi'`);
  if (c.window !== undefined)
    throw new ShapeError(
      `${fn}: the model must use full causal attention (config.window unset), got window ${c.window}`,
    );
  if (c.scoring !== undefined && c.scoring !== 'softmax')
    throw new ShapeError(`${fn}: model.config.scoring must be 'softmax', got '${c.scoring}'`);
  if (c.attention?.kind === 'moh') throw new ShapeError(`${fn}: Mixture-of-Head attention is not supported, got 'moh'`);
}

/** The model's KV heads per layer. */
export function kvHeadsOf(model: ToyLM): number {
  return model.config.kvHeads ?? model.config.heads;
}

/**
 * Runs every attention of `model` as DuoAttention with `gates` [layers, kvHeads] (a tensor, e.g. a trainable variable)
 * while `enabled()` is true, through the hook points (hook_q/k/v are read, hook_z is replaced by the mix). Works with
 * and without a KV cache. Returns the function that removes the hooks.
 */
export function applyDuoGates(
  model: ToyLM,
  gates: tf.Tensor,
  window: StreamingWindow,
  enabled: () => boolean = () => true,
): () => void {
  const fn = 'applyDuoGates';
  checkModel(fn, model);
  const L = model.config.layers;
  const g = kvHeadsOf(model);
  if (gates.rank !== 2 || gates.shape[0] !== L || gates.shape[1] !== g)
    throw new ShapeError(`${fn}: gates must have shape [layers, kvHeads] = [${L},${g}], got ${fmt(gates.shape)}`);
  if (!Number.isInteger(window?.sinks) || window.sinks < 0 || !Number.isInteger(window.recent) || window.recent < 1)
    throw new ShapeError(
      `${fn}: window must be { sinks >= 0, recent >= 1 } integers, got ${JSON.stringify(window ?? null)}`,
    );
  const stash: { q?: tf.Tensor; k?: tf.Tensor; v?: tf.Tensor }[] = Array.from({ length: L }, () => ({}));
  const layerOf = (name: string) => Number(/^blocks\.(\d+)\./.exec(name)?.[1]);
  const removers = [
    model.hooks.add(/^blocks\.\d+\.attn\.hook_[qkv]$/, (x, { name }) => {
      if (!enabled()) return;
      stash[layerOf(name)][name.slice(-1) as 'q' | 'k' | 'v'] = x; // used by this layer's hook_z, same forward pass
    }),
    model.hooks.add(/^blocks\.\d+\.attn\.hook_z$/, (z, { name }) => {
      if (!enabled()) return;
      const l = layerOf(name);
      const { q, k, v } = stash[l];
      stash[l] = {};
      if (!q || !k || !v) throw new Error(`${fn}: layer ${l}'s q, k, v were not seen before its hook_z`);
      const stream = sdpa(q, k, v, { mask: masks.sinkWindow(window.sinks, window.recent) });
      const alpha = gates.slice([l, 0], [1, g]).reshape([g]) as tf.Tensor1D;
      return mixHeads(z, stream, alpha);
    }),
  ];
  return () => {
    for (const r of removers) r();
  };
}

export interface GateOptimisationOptions {
  /** Gate-optimisation batches (disposed after each step). */
  batches: Iterable<GateBatch>;
  steps: number;
  window: StreamingWindow;
  /** Default 0.02 (official run_train.sh). */
  lr?: number;
  /** λ of the L1 term, default 0.05 (official). */
  regWeight?: number;
  /** Initial gate value, default 1 (official `initial_value`). */
  initial?: number;
  seed?: number;
  progress?: ProgressMode;
}

export interface GateOptimisationResult {
  /** [layer][kvHead] gates in [0, 1] after training. */
  gates: number[][];
  records: StepRecord[];
  /** Distillation loss (without the L1 term) of the last step. */
  finalDistill: number;
}

let gateCounter = 0;

/** The official schedule's factor at `step` of `steps`: warm up over a fifth, flat, decay over the last fifth, >= 0.1. */
export function duoSchedule(step: number, steps: number): number {
  const fifth = Math.max(1, Math.floor(steps / 5));
  return Math.min(1, Math.max((step + 1) / fifth, 0.1), Math.max((steps - step) / fifth, 0.1));
}

/**
 * Mean over answer positions of the mean squared difference of two hidden-state tensors [b, s, m]; mask [b, s].
 * (The official `(h − h').pow(2).mean(-1).sum() / num_labels`.)
 */
export function distillLoss(teacher: tf.Tensor, student: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const perPos = teacher.sub(student).square().mean(-1); // [b, s]
    return perPos.mul(mask).sum().div(mask.sum().maximum(1)) as tf.Scalar;
  });
}

/**
 * Trains one gate per layer and KV head of a frozen `model` with the distillation + L1 loss above, clipping the
 * gates to [0, 1] after each step. The model's weights are not changed.
 */
export async function optimiseGates(model: ToyLM, opts: GateOptimisationOptions): Promise<GateOptimisationResult> {
  const fn = 'optimiseGates';
  checkModel(fn, model);
  if (!Number.isInteger(opts.steps) || opts.steps < 1)
    throw new ShapeError(`${fn}: opts.steps must be a positive integer, got ${opts.steps}`);
  const lr = opts.lr ?? 0.02;
  const regWeight = opts.regWeight ?? 0.05;
  const initial = opts.initial ?? 1;
  if (!(lr > 0)) throw new ShapeError(`${fn}: opts.lr must be > 0, got ${lr}`);
  if (!(regWeight >= 0)) throw new ShapeError(`${fn}: opts.regWeight must be >= 0, got ${regWeight}`);
  if (!(initial >= 0 && initial <= 1)) throw new ShapeError(`${fn}: opts.initial must be in [0, 1], got ${initial}`);
  const L = model.config.layers;
  const g = kvHeadsOf(model);
  const init = tf.fill([L, g], initial);
  const gates = tf.variable(init, true, `duo_gates_${gateCounter++}`);
  init.dispose();
  let mixing = false;
  const remove = applyDuoGates(model, gates, opts.window, () => mixing);
  const last = `blocks.${L - 1}.hook_resid_post`;
  let captured: tf.Tensor | undefined;
  const removeCapture = model.hooks.add(last, (x) => {
    captured = tf.keep(x.clone());
  });
  const held: tf.Tensor[] = [];
  let finalDistill = Number.NaN;
  const hidden = (inputs: tf.Tensor, mix: boolean): tf.Tensor => {
    mixing = mix;
    captured = undefined;
    model.forward(inputs).dispose();
    mixing = false;
    if (!captured) throw new Error(`${fn}: the hook ${last} did not run`);
    held.push(captured);
    return captured;
  };
  try {
    const run = await train<GateBatch>({
      variables: [gates],
      batches: opts.batches,
      steps: opts.steps,
      optimizer: { type: 'adamw', lr, weightDecay: 0 },
      schedule: (step) => lr * duoSchedule(step, opts.steps),
      seed: opts.seed ?? 0,
      progress: opts.progress ?? false,
      dataframe: false,
      loss: (_step, b) => {
        tf.dispose(held.splice(0));
        const teacher = hidden(b.inputs, false); // no path to the gates: the hooks are off
        const student = hidden(b.inputs, true);
        const distill = distillLoss(teacher, student, b.answerMask);
        finalDistill = distill.dataSync()[0];
        return distill.add(gates.abs().mean().mul(regWeight)) as tf.Scalar;
      },
      onStep: () => {
        tf.tidy(() => gates.assign(gates.clipByValue(0, 1)));
      },
    });
    if (run.stopped) throw new Error(`${fn}: ${run.stopped.message}`);
    return { gates: gates.arraySync() as number[][], records: run.records, finalDistill };
  } finally {
    tf.dispose(held.splice(0));
    removeCapture();
    remove();
    gates.dispose();
  }
}

/**
 * Retrieval heads from per-head scores (gates, retrieval scores, ...): the `fraction` of heads with the largest score
 * (rounded to the nearest count, ties to the lower index) -> [layer][head] true = keeps the full cache. The official
 * code thresholds at the `sparsity` quantile of the gates, i.e. the same choice.
 */
export function headsFromGates(scores: number[][], fraction: number): boolean[][] {
  if (!(fraction >= 0 && fraction <= 1))
    throw new ShapeError(`headsFromGates: fraction must be in [0, 1], got ${fraction}`);
  if (!Array.isArray(scores) || scores.length === 0 || scores.some((r) => !Array.isArray(r) || r.length === 0))
    throw new ShapeError('headsFromGates: scores must be a non-empty [layer][head] array');
  const flat = scores.flatMap((r, l) => r.map((s, h) => ({ s, l, h, i: 0 })));
  flat.forEach((e, i) => (e.i = i));
  const n = Math.round(fraction * flat.length);
  const keep = new Set(
    [...flat]
      .sort((a, b) => b.s - a.s || a.i - b.i)
      .slice(0, n)
      .map((e) => e.i),
  );
  let i = 0;
  return scores.map((r) => r.map(() => keep.has(i++)));
}

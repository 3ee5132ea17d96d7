/**
 * Pointer network and its baselines as pure functions over a record of variables.
 *
 * Shape legend: b batch, n points (padded), p pointer positions (n + 1, EOS first) or the fixed vocabulary size V,
 * m decoder steps, c coordinates, h hidden size.
 *
 * Kinds:
 * - `pointer`: LSTM encoder, LSTM decoder, u_j^i = vᵀ tanh(W1 e_j + W2 d_i) is the output distribution (Vinyals et al.).
 * - `pointer-transformer`: the same decoder and pointer over a transformer encoder (pre-norm blocks with padding
 *   masks; sinusoidal codes of the input order only with `orderCodes`). Our addition.
 * - `seq2seq`: LSTM encoder-decoder with a softmax over a fixed vocabulary of V classes (EOS + point indices).
 * - `seq2seq-attn`: the same with attention over the encoder states, combined with the decoder state before the
 *   output softmax (Luong-style output attention; the paper's baseline feeds the context in à la Bahdanau).
 * All kinds feed the decoder the coordinates of the previously chosen point and apply the same validity masks.
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../backend/ops.js';
import { type BlockParams, blockForward, type NormParams, normForward } from '../../../layers/functional.js';
import { ParamFactory } from '../../../layers/params.js';
import { makeAttention, makeMlp, makeNorm } from '../../../layers/weights.js';
import * as masks from '../../../masks/index.js';
import { sinusoidal } from '../../../positional/index.js';
import { fmt, ShapeError } from '../../../util/shapes.js';
import type { PointerBatch } from './tasks.js';

export type PointerModelKind = 'pointer' | 'pointer-transformer' | 'seq2seq' | 'seq2seq-attn';
export const POINTER_MODEL_KINDS: readonly PointerModelKind[] = [
  'pointer',
  'pointer-transformer',
  'seq2seq',
  'seq2seq-attn',
];

export interface PointerModelConfig {
  kind: PointerModelKind;
  /** Coordinates per input element. */
  coordDim: number;
  hidden: number;
  /** Output classes of the fixed-vocabulary baselines: EOS + the largest n they can name. */
  vocab?: number;
  /** Transformer encoder depth and heads (pointer-transformer). */
  layers?: number;
  heads?: number;
  /**
   * Add sinusoidal codes of the input order to the transformer encoder's input (default false). Without them the
   * encoder sees a set: it generalises across n, but cannot tell which point came first (the TSP label starts there).
   */
  orderCodes?: boolean;
  seed: number;
  /** Uniform init range for the recurrent and attention weights; the paper uses ±0.08. */
  initScale?: number;
  /**
   * Uniform init range for the weights that read coordinates (2 or 3 inputs per LSTM): at ±0.08 the gates barely see
   * the input and training stalls for hundreds of steps before it starts, so they start at ±1 by default.
   */
  inputInitScale?: number;
}

export interface PointerModel {
  config: PointerModelConfig;
  /** Trainable variables keyed by stable names (`enc.wx`, `ptr.v`, ...). */
  params: Record<string, tf.Variable>;
  /** pointer-transformer: the encoder's blocks and final norm (the same variables as in params). */
  encoder?: { blocks: BlockParams[]; lnf: NormParams };
}

export function createPointerModel(config: PointerModelConfig): PointerModel {
  const { kind, coordDim: c, hidden: h, seed } = config;
  if (!POINTER_MODEL_KINDS.includes(kind))
    throw new Error(`createPointerModel: unknown kind '${kind}'; one of ${POINTER_MODEL_KINDS.join(', ')}`);
  if (!(Number.isInteger(h) && h > 0))
    throw new Error(`createPointerModel: hidden must be a positive integer, got ${h}`);
  if (kind.startsWith('seq2seq') && !(Number.isInteger(config.vocab) && config.vocab! > 1)) {
    throw new Error(`createPointerModel: kind '${kind}' needs vocab (EOS + largest n), got ${config.vocab}`);
  }
  const s = config.initScale ?? 0.08;
  const f = new ParamFactory({ scope: 'pointer', seed });
  const uniform = (name: string, shape: number[], scale = s) => f.variable(name, shape, { uniform: scale });
  // Forget-gate bias 1 (gate order i, f, g, o) so that early gradients flow through the cell state.
  const lstmBias = (name: string) =>
    f.variable(name, [4 * h], { values: [...Array(h).fill(0), ...Array(h).fill(1), ...Array(2 * h).fill(0)] });

  let encoder: PointerModel['encoder'];
  if (kind === 'pointer-transformer') {
    const L = config.layers ?? 2;
    const H = config.heads ?? 4;
    if (h % H !== 0) throw new Error(`createPointerModel: hidden (${h}) must be divisible by heads (${H})`);
    f.variable('enc.win', [c, h], 'xavierUniform');
    f.variable('enc.bin', [h], 'zeros');
    const blocks = Array.from({ length: L }, (_, l): BlockParams => {
      const b = f.child(`enc.blocks.${l}`);
      const attn = makeAttention(b.child('attn'), { dModel: h, heads: H }, { weights: 'xavierUniform' });
      const ln1 = makeNorm(b, h, { gamma: 'ln1g', beta: 'ln1b' });
      const ln2 = makeNorm(b, h, { gamma: 'ln2g', beta: 'ln2b' });
      return { attn, ln1, ln2, mlp: makeMlp(b, h, 4 * h, { weights: 'xavierUniform' }) };
    });
    encoder = { blocks, lnf: makeNorm(f.child('enc.lnf'), h, { gamma: 'g', beta: 'b' }) };
  } else {
    uniform('enc.wx', [c, 4 * h], config.inputInitScale ?? 1);
    uniform('enc.wh', [h, 4 * h]);
    lstmBias('enc.b');
  }
  uniform('dec.wx', [c + 1, 4 * h], config.inputInitScale ?? 1);
  uniform('dec.wh', [h, 4 * h]);
  lstmBias('dec.b');
  if (kind === 'pointer' || kind === 'pointer-transformer') {
    uniform('ptr.w1', [h, h]);
    uniform('ptr.w2', [h, h]);
    uniform('ptr.v', [h, 1]);
    uniform('ptr.eos', [1, h]);
  } else {
    if (kind === 'seq2seq-attn') {
      uniform('attn.w1', [h, h]);
      uniform('attn.w2', [h, h]);
      uniform('attn.v', [h, 1]);
      uniform('comb.w', [2 * h, h]);
      f.variable('comb.b', [h], 'zeros');
    }
    uniform('out.w', [h, config.vocab!]);
    f.variable('out.b', [config.vocab!], 'zeros');
  }
  return { config, params: f.params(), encoder };
}

export function disposePointerModel(model: PointerModel): void {
  tf.dispose(Object.values(model.params));
}

export function parameterCount(model: PointerModel): number {
  return Object.values(model.params).reduce((a, v) => a + v.size, 0);
}

/** Pointer positions the model's output ranges over for a batch padded to n points. */
export function outputPositions(model: PointerModel, n: number): number {
  return model.config.kind.startsWith('seq2seq') ? model.config.vocab! : n + 1;
}

/**
 * One LSTM step. `xw` [b, 4h] is the input already multiplied by W_x (done for all steps at once), h and c [b, h].
 * gates = x W_x + h W_h + b = [i, f, g, o]; c' = σ(f) c + σ(i) tanh(g); h' = σ(o) tanh(c').
 */
export function lstmStep(
  xw: tf.Tensor2D,
  h: tf.Tensor2D,
  c: tf.Tensor2D,
  wh: tf.Tensor,
  b: tf.Tensor,
): [tf.Tensor2D, tf.Tensor2D] {
  const gates = matmul(h, wh).add(xw).add(b);
  const [i, f, g, o] = tf.split(gates, 4, 1);
  const c2 = tf
    .sigmoid(f)
    .mul(c)
    .add(tf.sigmoid(i).mul(tf.tanh(g))) as tf.Tensor2D;
  const h2 = tf.sigmoid(o).mul(tf.tanh(c2)) as tf.Tensor2D;
  return [h2, c2];
}

/**
 * Pointer attention for all decoder steps at once: u[b, i, j] = vᵀ tanh(W1 e_j + W2 d_i).
 * `keys` [b, p, h] is W1 e (computed once per input), `d` [b, m, h] the decoder states; returns u [b, m, p].
 */
export function pointerScores(keys: tf.Tensor3D, d: tf.Tensor3D, w2: tf.Tensor, v: tf.Tensor): tf.Tensor3D {
  const [b, p, h] = keys.shape;
  if (d.shape[0] !== b || d.shape[2] !== h) {
    throw new ShapeError(
      `pointerScores: keys ${fmt(keys.shape)} [b, p, h] and decoder states ${fmt(d.shape)} [b, m, h] must agree on b and h`,
    );
  }
  const m = d.shape[1];
  const q = matmul(d, w2); // [b, m, h]
  const t = tf.tanh(keys.reshape([b, 1, p, h]).add(q.reshape([b, m, 1, h]))); // [b, m, p, h]
  return matmul(t.reshape([b * m * p, h]), v).reshape([b, m, p]) as tf.Tensor3D;
}

/** Logits with invalid positions pushed to -1e9; `valid` is 1/0 of the same shape. */
export function maskLogits(logits: tf.Tensor, valid: tf.Tensor): tf.Tensor {
  return logits.add(tf.sub(1, valid).mul(-1e9));
}

export interface Encoded {
  /** [b, n, h] encoder states e_j. */
  memory: tf.Tensor3D;
  /** [b, p, h]: W1 e over the EOS vector and the points (pointer kinds) or W1 e over the points (seq2seq-attn). */
  keys?: tf.Tensor3D;
  /** [b, n] 0 on real points, -1e9 on padding (attention of seq2seq-attn). */
  attnBias: tf.Tensor2D;
  /** Final encoder state, the decoder's initial state. */
  h: tf.Tensor2D;
  c: tf.Tensor2D;
}

function lengthMask(lengths: number[], n: number): tf.Tensor2D {
  const data = new Float32Array(lengths.length * n);
  lengths.forEach((l, r) => data.fill(1, r * n, r * n + l));
  return tf.tensor2d(data, [lengths.length, n]);
}

/** Encode a padded batch x [b, n, c]; rows past `lengths[r]` are padding and never change the state. */
export function encode(model: PointerModel, x: tf.Tensor3D, lengths: number[]): Encoded {
  const P = model.params;
  const { kind, hidden: h } = model.config;
  const [b, n, c] = x.shape;
  if (c !== model.config.coordDim)
    throw new ShapeError(
      `encode: x has ${c} coordinates per point ([b, n, c] = ${fmt(x.shape)}) but the model takes ${model.config.coordDim}`,
    );
  if (lengths.length !== b || lengths.some((l) => !(l >= 1 && l <= n))) {
    throw new ShapeError(`encode: lengths must give b = ${b} values in [1, ${n}], got [${lengths.join(',')}]`);
  }
  const valid = lengthMask(lengths, n); // [b, n]
  let memory: tf.Tensor3D;
  let hT: tf.Tensor2D;
  let cT: tf.Tensor2D;
  if (kind === 'pointer-transformer') {
    const { blocks, lnf } = model.encoder!;
    const cfg = { dModel: h, heads: model.config.heads ?? 4 };
    let z = matmul(x, P['enc.win']).add(P['enc.bin']) as tf.Tensor3D;
    if (model.config.orderCodes) z = z.add(sinusoidal(n, h));
    const mask = masks.padding(lengths);
    for (const b of blocks) z = blockForward(b, z, cfg, { mask });
    memory = normForward(lnf, z) as tf.Tensor3D;
    // Masked mean over the real points starts the decoder.
    const mean = memory
      .mul(valid.expandDims(2))
      .sum(1)
      .div(tf.tensor2d(lengths, [b, 1])) as tf.Tensor2D;
    hT = mean;
    cT = mean;
  } else {
    const xw = tf.unstack(matmul(x, P['enc.wx']), 1) as tf.Tensor2D[]; // n × [b, 4h]
    const keep = tf.unstack(valid, 1).map((k) => k.reshape([b, 1])); // n × [b, 1]
    let hs = tf.zeros([b, h]) as tf.Tensor2D;
    let cs = tf.zeros([b, h]) as tf.Tensor2D;
    const outs: tf.Tensor2D[] = [];
    for (let t = 0; t < n; t++) {
      const [h2, c2] = lstmStep(xw[t], hs, cs, P['enc.wh'], P['enc.b']);
      // Padding keeps the previous state, so the final state is the one after each row's last real point.
      hs = h2.sub(hs).mul(keep[t]).add(hs);
      cs = c2.sub(cs).mul(keep[t]).add(cs);
      outs.push(h2);
    }
    memory = tf.stack(outs, 1) as tf.Tensor3D;
    hT = hs;
    cT = cs;
  }
  let keys: tf.Tensor3D | undefined;
  if (kind === 'pointer' || kind === 'pointer-transformer') {
    const withEos = tf.concat([P['ptr.eos'].reshape([1, 1, h]).tile([b, 1, 1]), memory], 1); // [b, n + 1, h]
    keys = matmul(withEos, P['ptr.w1']) as tf.Tensor3D;
  } else if (kind === 'seq2seq-attn') {
    keys = matmul(memory, P['attn.w1']) as tf.Tensor3D;
  }
  return { memory, keys, attnBias: tf.sub(1, valid).mul(-1e9) as tf.Tensor2D, h: hT, c: cT };
}

/** Output logits from decoder states d [b, m, h]: [b, m, p] (pointer) or [b, m, V]. */
function outputLogits(model: PointerModel, enc: Encoded, d: tf.Tensor3D): tf.Tensor3D {
  const P = model.params;
  const { kind } = model.config;
  if (kind === 'pointer' || kind === 'pointer-transformer') return pointerScores(enc.keys!, d, P['ptr.w2'], P['ptr.v']);
  let z: tf.Tensor = d;
  if (kind === 'seq2seq-attn') {
    const [b, m, h] = d.shape;
    const n = enc.memory.shape[1];
    const u = pointerScores(enc.keys!, d, P['attn.w2'], P['attn.v']).add(enc.attnBias.reshape([b, 1, n])); // [b, m, n]
    const ctx = matmul(tf.softmax(u), enc.memory); // [b, m, h]
    z = tf
      .tanh(matmul(tf.concat([d, ctx], 2).reshape([b * m, 2 * h]), P['comb.w']).add(P['comb.b']))
      .reshape([b, m, h]);
  }
  return matmul(z, P['out.w']).add(P['out.b']) as tf.Tensor3D;
}

export interface DecoderState {
  h: tf.Tensor2D;
  c: tf.Tensor2D;
}

/** Decoder states for given inputs decIn [b, m, c + 1] from `state`: [b, m, h] and the state after the last. */
export function runDecoder(
  model: PointerModel,
  decIn: tf.Tensor3D,
  state: DecoderState,
): { d: tf.Tensor3D; state: DecoderState } {
  const P = model.params;
  const xw = tf.unstack(matmul(decIn, P['dec.wx']), 1) as tf.Tensor2D[];
  let { h, c } = state;
  const ds: tf.Tensor2D[] = [];
  for (const x of xw) {
    [h, c] = lstmStep(x, h, c, P['dec.wh'], P['dec.b']);
    ds.push(h);
  }
  return { d: tf.stack(ds, 1) as tf.Tensor3D, state: { h, c } };
}

/** Teacher-forced logits [b, m, p] for a batch (unmasked). */
export function teacherForcedLogits(
  model: PointerModel,
  batch: Pick<PointerBatch, 'x' | 'lengths' | 'decIn'>,
): tf.Tensor3D {
  const enc = encode(model, batch.x, batch.lengths);
  const { d } = runDecoder(model, batch.decIn, { h: enc.h, c: enc.c });
  return outputLogits(model, enc, d);
}

/** One decoding step: input [b, c + 1] -> logits [b, p] and the next state. */
export function decodeStep(
  model: PointerModel,
  enc: Encoded,
  state: DecoderState,
  input: tf.Tensor2D,
): { logits: tf.Tensor2D; state: DecoderState } {
  const [b, k] = input.shape;
  const r = runDecoder(model, input.reshape([b, 1, k]) as tf.Tensor3D, state);
  const logits = outputLogits(model, enc, r.d);
  return { logits: logits.reshape([b, logits.shape[2]]) as tf.Tensor2D, state: r.state };
}

/** Mean cross-entropy over the real target steps, with invalid positions masked out of the softmax. */
export function sequenceLoss(model: PointerModel, batch: PointerBatch): tf.Scalar {
  return tf.tidy(() => {
    const logits = teacherForcedLogits(model, batch);
    const p = logits.shape[2];
    if (batch.valid.shape[2] !== p) {
      throw new ShapeError(
        `sequenceLoss: the batch has ${batch.valid.shape[2]} positions per step but the model outputs ${p}; build it with makeBatch(task, examples, outputPositions(model, n))`,
      );
    }
    const logp = tf.logSoftmax(maskLogits(logits, batch.valid));
    const picked = logp.mul(tf.oneHot(batch.targets, p)).sum(2); // [b, m]
    return picked.mul(batch.lossMask).sum().div(batch.lossMask.sum()).neg() as tf.Scalar;
  });
}

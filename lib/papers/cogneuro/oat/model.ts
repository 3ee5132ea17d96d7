/**
 * OAT as pure functions over a record of variables.
 *
 * Shape legend: b batch (displays), N objects (padded), S = N + 1 source tokens (target token first), p = N + 1
 * pointer positions (END first, then the objects), m decoder steps, E model width, F appearance features, H heads,
 * C cross-attention score heads (CA_head).
 *
 *   token_j  = (W_a [f_j, 0] + b_a) ⊕ pos_j                      [E/2 appearance ⊕ E/2 position], j an object
 *   token_T  = (W_a [f_T, 1] + b_a) ⊕ 0                           the target: its features, flagged, no position
 *   memory   = Encoder(token_T, token_1..token_N)                  pre-norm transformer, key padding
 *   y_i      = token_{f_{i-1}} (or a learned BOS at i = 0) + PE_1d(i)
 *   h_i      = Decoder(y_≤i, memory)                              causal self-attention, cross-attention
 *   s_c[i,j] = (W_dc h_i)·(W_ec memory_j) / √E  for objects j;  s_c[i, END] = 0
 *   logits   = Σ_c r_c s_c + r_0,  p(f_i = j | f_<i) = softmax_j(logits)     pointer over objects ∪ {END}
 *
 * With `appearance: 'cnn'` (the paper's appearance path) the appearance half of a token is a small CNN over the
 * object's crop instead of a linear map of its attribute one-hots (appearance.ts), and the target token adds a learned
 * vector `embed.target` in place of the flag:
 *
 *   token_j  = CNN(crop_j) ⊕ pos_j,   token_T = CNN(target crop) + e_T ⊕ 0
 *
 * With `historyLags` > 0 (our addition, see OatConfig) the object logits also get Σ_{s ≤ i} w[i − s] [f_{s−1} = j].
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../../../backend/ops.js';
import { CROP_BACKGROUND, CROP_PX, objectCrops, targetCrop } from '../../../data/visual-search/crops.js';
import { displayFeatures, type SearchDisplay } from '../../../data/visual-search/displays.js';
import {
  type BlockConfig,
  type BlockParams,
  blockForward,
  linear,
  type NormParams,
  normForward,
} from '../../../layers/functional.js';
import { HookRegistry } from '../../../layers/hooks.js';
import { ParamFactory } from '../../../layers/params.js';
import { makeAttention, makeMlp, makeNorm } from '../../../layers/weights.js';
import { sinusoidal } from '../../../positional/index.js';
import { fmt, ShapeError } from '../../../util/shapes.js';
import { maskLogits } from '../pointer/model.js';
import { type CropCnnWeights, cropCnn, makeCropCnn } from './appearance.js';
import { type GaussianPe, learnGaussianPe, type PositionKind, positionCodes } from './position.js';

export interface OatConfig {
  /** Appearance features per object (featureDim of the display's space). */
  featureDim: number;
  dModel: number;
  encoderLayers: number;
  decoderLayers: number;
  heads: number;
  /** CA_head: cross-attention score heads of the pointer (2 in the paper). */
  caHeads: number;
  /** MLP hidden = mlpRatio · dModel. */
  mlpRatio: number;
  position: PositionKind;
  /** Grid indices the learned position table covers (0..peSize-1). */
  peSize: number;
  /**
   * Our addition, not in the paper: a learned bias on the pointer logits from the fixation history,
   * b[i, j] = Σ_{s ≤ i} w[i − s] · [f_{s-1} = j] (w[0] for the object just fixated, w[1] the one before, ...). A single
   * dot-product query struggles to push down every recently visited object at once; this gives inhibition of return
   * and refixation a direct path. Up to `historyLags` lags (default 0 = off, the paper's model).
   */
  historyLags?: number;
  /**
   * How the appearance half of a token is made: 'onehot' (default) a linear map of the attribute one-hots (a
   * simplification: the features are given, not seen); 'cnn' the paper's path, a small CNN over the object's rendered
   * crop trained end to end (appearance.ts).
   */
  appearance?: 'onehot' | 'cnn';
  /** Channels of the CNN's two convolutions (appearance 'cnn'; default [8, 16]). */
  cnnChannels?: [number, number];
  seed: number;
}

export interface OatModel {
  config: OatConfig;
  params: Record<string, tf.Variable>;
  /** The encoder's and decoder's blocks and final norms (the same variables as in params). */
  encoder: { blocks: BlockParams[]; lnf: NormParams };
  decoder: { blocks: BlockParams[]; lnf: NormParams };
  /** The fixed, offline-learned position table (gaussian2d). */
  pe?: GaussianPe;
}

export function createOat(config: OatConfig): OatModel {
  const { featureDim: F, dModel: E, heads: H, caHeads: C, seed } = config;
  if (!(Number.isInteger(E) && E > 0 && E % 4 === 0))
    throw new ShapeError(`createOat: dModel must be a positive multiple of 4, got ${E}`);
  if (E % H !== 0) throw new ShapeError(`createOat: dModel (${E}) must be divisible by heads (${H})`);
  if (!(Number.isInteger(F) && F > 0))
    throw new ShapeError(`createOat: featureDim must be a positive integer, got ${F}`);
  if (!(Number.isInteger(C) && C > 0)) throw new ShapeError(`createOat: caHeads must be a positive integer, got ${C}`);
  if (config.appearance !== undefined && config.appearance !== 'onehot' && config.appearance !== 'cnn')
    throw new ShapeError(`createOat: appearance must be 'onehot' or 'cnn', got '${config.appearance}'`);
  const p = new ParamFactory({ scope: 'oat', seed });
  const cfg = blockConfig(config);
  const xavier = { weights: 'xavierUniform' } as const;
  // Variables are made in this order under these keys (each key seeds its variable); the blocks name their norms .g/.b.
  const norm = (name: string) => makeNorm(p.child(name), E, { gamma: 'g', beta: 'b' });
  if (config.appearance === 'cnn') {
    makeCropCnn(p.child('embed.cnn'), config.cnnChannels ?? [8, 16], E / 2);
    p.variable('embed.target', [E / 2], { normal: 0.1 });
  } else {
    p.variable('embed.wa', [F + 1, E / 2], 'xavierUniform');
    p.variable('embed.ba', [E / 2], 'zeros');
  }
  p.variable('dec.bos', [E], { normal: 0.1 });
  const encBlocks = Array.from({ length: config.encoderLayers }, (_, l): BlockParams => {
    const attn = makeAttention(p.child(`enc.${l}.attn`), cfg, xavier);
    const mlp = makeMlp(p.child(`enc.${l}.mlp`), E, E * config.mlpRatio, xavier);
    return { attn, mlp, ln1: norm(`enc.${l}.ln1`), ln2: norm(`enc.${l}.ln2`) };
  });
  const encoder = { blocks: encBlocks, lnf: norm('enc.lnf') };
  const decBlocks = Array.from({ length: config.decoderLayers }, (_, l): BlockParams => {
    const attn = makeAttention(p.child(`dec.${l}.self`), cfg, xavier);
    const crossAttn = makeAttention(p.child(`dec.${l}.cross`), cfg, xavier);
    const mlp = makeMlp(p.child(`dec.${l}.mlp`), E, E * config.mlpRatio, xavier);
    const ln1 = norm(`dec.${l}.ln1`);
    const cross = { attn: crossAttn, ln: norm(`dec.${l}.ln2`) };
    return { attn, cross, mlp, ln1, ln2: norm(`dec.${l}.ln3`) };
  });
  const decoder = { blocks: decBlocks, lnf: norm('dec.lnf') };
  for (let c = 0; c < C; c++) {
    p.variable(`ptr.${c}.wd`, [E, E], 'xavierUniform');
    p.variable(`ptr.${c}.bd`, [E], 'zeros');
    p.variable(`ptr.${c}.we`, [E, E], 'xavierUniform');
    p.variable(`ptr.${c}.be`, [E], 'zeros');
  }
  p.variable('ptr.readout', [C], { constant: 1 / C });
  p.variable('ptr.readoutBias', [1], 'zeros');
  if (config.historyLags) p.variable('ptr.history', [config.historyLags], 'zeros');
  const pe =
    config.position === 'gaussian2d'
      ? learnGaussianPe({ size: config.peSize, dim: E / 4, sigma: 2, seed: 0 })
      : undefined;
  return { config, params: p.params(), encoder, decoder, pe };
}

function blockConfig(config: OatConfig): BlockConfig {
  return { dModel: config.dModel, heads: config.heads, mlpRatio: config.mlpRatio };
}

export function disposeOat(model: OatModel): void {
  tf.dispose(Object.values(model.params));
}

export function oatParameterCount(model: OatModel): number {
  return Object.values(model.params).reduce((a, v) => a + v.size, 0);
}

/** What the encoder reads for a batch of displays. The caller disposes the tensors (`disposeOatInputs`). */
export interface OatInputs {
  displays: SearchDisplay[];
  /** [b, S, F + 1]: target token first (flag 1), then the objects (flag 0), zero padding. */
  feats: tf.Tensor3D;
  /** [b, S, E/2]: position codes (zero for the target token and padding). */
  pos: tf.Tensor3D;
  /** [b, 1, 1, S] 1 where a source token is real (attention key padding). */
  keyValid: tf.Tensor4D;
  /** [b, 1, p] 1 on END and the real objects (pointer validity). */
  pointerValid: tf.Tensor3D;
  /**
   * [b · S, s, s, 3] crops minus the background grey, row r · S + t = source token t of display r (appearance 'cnn'
   * only; padding = 0).
   */
  crops?: tf.Tensor4D;
  /** Objects per display. */
  lengths: number[];
  N: number;
}

export function oatInputs(model: OatModel, displays: SearchDisplay[]): OatInputs {
  const { featureDim: F, dModel: E } = model.config;
  if (displays.length === 0) throw new ShapeError('oatInputs: displays is empty');
  const lengths = displays.map((d) => d.objects.length);
  const N = Math.max(...lengths),
    S = N + 1,
    b = displays.length;
  const feats = new Float32Array(b * S * (F + 1));
  const pos = new Float32Array(b * S * (E / 2));
  const keyValid = new Float32Array(b * S);
  const pointerValid = new Float32Array(b * (N + 1));
  const cnn = model.config.appearance === 'cnn';
  const crop = CROP_PX * CROP_PX * 3;
  const crops = cnn ? new Float32Array(b * S * crop) : undefined;
  displays.forEach((d, r) => {
    const fs = displayFeatures(d);
    if (fs[0].length !== F)
      throw new ShapeError(
        `oatInputs: display '${d.id}' has ${fs[0].length} features per object but the model takes featureDim = ${F}`,
      );
    const codes = positionCodes(d, model.config.position, E / 2, model.pe);
    const row = (t: number) => (r * S + t) * (F + 1);
    feats.set(fs[d.target], row(0));
    feats[row(0) + F] = 1;
    fs.forEach((v, j) => {
      feats.set(v, row(j + 1));
      pos.set(codes[j], (r * S + j + 1) * (E / 2));
    });
    keyValid.fill(1, r * S, r * S + 1 + d.objects.length);
    pointerValid.fill(1, r * (N + 1), r * (N + 1) + 1 + d.objects.length);
    if (crops) {
      // Centred on the background grey, so empty pixels read 0 (padding tokens stay all-zero crops).
      const put = (src: Float32Array, at: number) => {
        for (let i = 0; i < src.length; i++) crops[at + i] = src[i] - CROP_BACKGROUND;
      };
      put(targetCrop(d), r * S * crop);
      put(objectCrops(d), (r * S + 1) * crop);
    }
  });
  return {
    displays,
    lengths,
    N,
    feats: tf.tensor3d(feats, [b, S, F + 1]),
    pos: tf.tensor3d(pos, [b, S, E / 2]),
    keyValid: tf.tensor4d(keyValid, [b, 1, 1, S]),
    pointerValid: tf.tensor3d(pointerValid, [b, 1, N + 1]),
    ...(crops ? { crops: tf.tensor4d(crops, [b * S, CROP_PX, CROP_PX, 3]) } : {}),
  };
}

export function disposeOatInputs(x: OatInputs): void {
  tf.dispose([x.feats, x.pos, x.keyValid, x.pointerValid, ...(x.crops ? [x.crops] : [])]);
}

/** Named attention maps of one forward pass (an activation cache: the caller owns and disposes the tensors). */
export type OatAttention = Record<string, tf.Tensor>;

/**
 * Hooks that record every attention map [b, H, q, k] into `cache` under OatAttention's keys: `enc.{l}.attn`,
 * `dec.{l}.self` (the block's self-attention, hook prefix `dec.{l}.attn`) and `dec.{l}.cross`.
 */
function attentionRecorder(cache?: OatAttention): HookRegistry | undefined {
  if (!cache) return undefined;
  const hooks = new HookRegistry();
  hooks.add(/\.hook_pattern$/, (w, { name }) => {
    const key = name.slice(0, -'.hook_pattern'.length).replace(/^(dec\.\d+)\.attn$/, '$1.self');
    cache[key] = tf.keep(w);
  });
  return hooks;
}

/** Appearance halves [b, S, E/2] of the source tokens: the one-hot map, or the CNN over crops (+ e_T on the target). */
export function appearanceTokens(model: OatModel, x: OatInputs): tf.Tensor3D {
  const P = model.params;
  if (model.config.appearance !== 'cnn') return linear(x.feats, P['embed.wa'], P['embed.ba']) as tf.Tensor3D;
  if (!x.crops) throw new ShapeError("appearanceTokens: the model's appearance is 'cnn' but the inputs have no crops");
  const [b, S, F1] = x.feats.shape;
  const E2 = model.config.dModel / 2;
  return tf.tidy(() => {
    const W: CropCnnWeights = {
      w1: P['embed.cnn.w1'],
      b1: P['embed.cnn.b1'],
      w2: P['embed.cnn.w2'],
      b2: P['embed.cnn.b2'],
      wf: P['embed.cnn.wf'],
      bf: P['embed.cnn.bf'],
    };
    const app = cropCnn(W, x.crops!).reshape([b, S, E2]);
    const flag = x.feats.slice([0, 0, F1 - 1], [b, S, 1]); // 1 on the target token
    return app.add(flag.mul(P['embed.target'])) as tf.Tensor3D;
  });
}

/** Source tokens [b, S, E]: appearance ⊕ position. */
export function sourceTokens(model: OatModel, x: OatInputs): tf.Tensor3D {
  return tf.tidy(() => tf.concat([appearanceTokens(model, x), x.pos], 2) as tf.Tensor3D);
}

/** Encoder: memory [b, S, E] (pre-norm blocks, padding keys masked). */
export function encodeOat(model: OatModel, x: OatInputs, tokens: tf.Tensor3D, cache?: OatAttention): tf.Tensor3D {
  const hooks = attentionRecorder(cache);
  const cfg = blockConfig(model.config);
  let h: tf.Tensor = tokens;
  model.encoder.blocks.forEach((b, l) => {
    h = blockForward(b, h, cfg, { mask: x.keyValid, hooks, prefix: `enc.${l}` });
  });
  return normForward(model.encoder.lnf, h) as tf.Tensor3D;
}

/**
 * Decoder inputs [b, m, E] from the previous fixations: `prev` [b, m, N] one-hot of the object fixated before step i
 * (all zero at step 0, which gets BOS). A one-hot matmul instead of a gather: differentiable on every backend.
 */
export function decoderInputs(model: OatModel, tokens: tf.Tensor3D, prev: tf.Tensor3D): tf.Tensor3D {
  const [b, S, E] = tokens.shape;
  const m = prev.shape[1];
  if (prev.shape[0] !== b || prev.shape[2] !== S - 1) {
    throw new ShapeError(
      `decoderInputs: prev has shape ${fmt(prev.shape)} but must be [b, m, N] = [${b}, m, ${S - 1}] for tokens ${fmt(tokens.shape)}`,
    );
  }
  const objects = tokens.slice([0, 1, 0], [b, S - 1, E]); // [b, N, E]
  const isBos = tf.sub(1, prev.sum(2, true)); // [b, m, 1]
  return matmul(prev, objects).add(isBos.mul(model.params['dec.bos'])).add(sinusoidal(m, E)) as tf.Tensor3D;
}

/** Decoder states [b, m, E]: causal self-attention, cross-attention to the memory, MLP. */
export function decodeOat(
  model: OatModel,
  x: OatInputs,
  memory: tf.Tensor3D,
  y: tf.Tensor3D,
  cache?: OatAttention,
): tf.Tensor3D {
  const hooks = attentionRecorder(cache);
  const cfg = blockConfig(model.config);
  const m = y.shape[1];
  const causal = tf.linalg.bandPart(tf.ones([m, m]), -1, 0).reshape([1, 1, m, m]);
  let h: tf.Tensor = y;
  model.decoder.blocks.forEach((b, l) => {
    h = blockForward(b, h, cfg, { mask: causal, memory, memoryMask: x.keyValid, hooks, prefix: `dec.${l}` });
  });
  return normForward(model.decoder.lnf, h) as tf.Tensor3D;
}

/**
 * The pointer head: logits [b, m, p] over END (first) and the objects, from decoder states h [b, m, E] and the
 * memory [b, S, E] (its object rows). Each of the C heads scores (W_dc h)·(W_ec memory)/√E with a constant-0 END column;
 * a learned readout mixes the heads.
 */
export function pointerLogits(model: OatModel, h: tf.Tensor3D, memory: tf.Tensor3D): tf.Tensor3D {
  const P = model.params;
  const [b, S, E] = memory.shape;
  const m = h.shape[1];
  const objects = memory.slice([0, 1, 0], [b, S - 1, E]);
  const r = tf.unstack(P['ptr.readout']);
  let out: tf.Tensor | undefined;
  for (let c = 0; c < model.config.caHeads; c++) {
    const q = linear(h, P[`ptr.${c}.wd`], P[`ptr.${c}.bd`]); // [b, m, E]
    const k = linear(objects, P[`ptr.${c}.we`], P[`ptr.${c}.be`]); // [b, N, E]
    const s = matmul(q, k, false, true).div(Math.sqrt(E)); // [b, m, N]
    const term = tf.concat([tf.zeros([b, m, 1]), s], 2).mul(r[c]);
    out = out ? out.add(term) : term;
  }
  return out!.add(P['ptr.readoutBias']) as tf.Tensor3D;
}

/**
 * The history bias [b, m, p] (END column 0) from the previous-fixation one-hots `prev` [b, m, N]: step i gets
 * Σ_{s ≤ i} w[i − s] prev[s], i.e. prev mixed over steps by the lower-triangular Toeplitz matrix T[i, s] = w[i − s].
 */
export function historyBias(model: OatModel, prev: tf.Tensor3D): tf.Tensor3D {
  const w = model.params['ptr.history'];
  const [b, m] = prev.shape;
  const L = w.shape[0];
  const lags = new Float32Array(m * m * L);
  for (let i = 0; i < m; i++) for (let s = 0; s <= i && i - s < L; s++) lags[(i * m + s) * L + (i - s)] = 1;
  const T = matmul(tf.tensor2d(lags, [m * m, L]), w.reshape([L, 1]))
    .reshape([1, m, m])
    .tile([b, 1, 1]); // [b, m, m]
  return tf.concat([tf.zeros([b, m, 1]), matmul(T, prev)], 2) as tf.Tensor3D;
}

/** Teacher-forced logits [b, m, p] (unmasked) for the previous-fixation one-hots `prev` [b, m, N]. */
export function oatLogits(model: OatModel, x: OatInputs, prev: tf.Tensor3D, cache?: OatAttention): tf.Tensor3D {
  const tokens = sourceTokens(model, x);
  const memory = encodeOat(model, x, tokens, cache);
  const h = decodeOat(model, x, memory, decoderInputs(model, tokens, prev), cache);
  const logits = pointerLogits(model, h, memory);
  return model.config.historyLags ? (logits.add(historyBias(model, prev)) as tf.Tensor3D) : logits;
}

/** Teacher forcing targets for scanpaths: previous fixations, the next pointer position (0 = END, j + 1 = object j). */
export interface OatTargets {
  /** [b, m, N] one-hot of the object fixated before each step. */
  prev: tf.Tensor3D;
  /** [b, m] int32 pointer positions. */
  targets: tf.Tensor2D;
  /** [b, m] 1 on real steps (each scanpath's fixations and its END). */
  lossMask: tf.Tensor2D;
  m: number;
}

export function oatTargets(scanpaths: readonly number[][], N: number): OatTargets {
  const b = scanpaths.length;
  const m = Math.max(...scanpaths.map((s) => s.length)) + 1;
  const prev = new Float32Array(b * m * N);
  const targets = new Int32Array(b * m);
  const lossMask = new Float32Array(b * m);
  scanpaths.forEach((s, r) => {
    s.forEach((f, i) => {
      if (!(Number.isInteger(f) && f >= 0 && f < N))
        throw new ShapeError(`oatTargets: scanpaths[${r}][${i}] = ${f} is not an object index below ${N}`);
      targets[r * m + i] = f + 1;
      prev[(r * m + i + 1) * N + f] = 1;
    });
    targets[r * m + s.length] = 0;
    lossMask.fill(1, r * m, r * m + s.length + 1);
  });
  return {
    prev: tf.tensor3d(prev, [b, m, N]),
    targets: tf.tensor2d(targets, [b, m], 'int32'),
    lossMask: tf.tensor2d(lossMask, [b, m]),
    m,
  };
}

export function disposeOatTargets(t: OatTargets): void {
  tf.dispose([t.prev, t.targets, t.lossMask]);
}

/**
 * Trials (a display and its scanpath each) as one batch: the model's inputs and the teacher-forcing targets, as
 * training, scoring and the attention maps all need them. Dispose both with `disposeOatBatch`.
 */
export function oatBatch(
  model: OatModel,
  trials: readonly { display: SearchDisplay; scanpath: readonly number[] }[],
): { x: OatInputs; t: OatTargets } {
  const x = oatInputs(
    model,
    trials.map((tr) => tr.display),
  );
  try {
    return {
      x,
      t: oatTargets(
        trials.map((tr) => tr.scanpath as number[]),
        x.N,
      ),
    };
  } catch (e) {
    disposeOatInputs(x);
    throw e;
  }
}

export function disposeOatBatch(b: { x: OatInputs; t: OatTargets }): void {
  disposeOatTargets(b.t);
  disposeOatInputs(b.x);
}

/** Mean cross-entropy over the real steps, padding objects masked out of the softmax. */
export function oatLoss(model: OatModel, x: OatInputs, t: OatTargets): tf.Scalar {
  return tf.tidy(() => {
    const logits = oatLogits(model, x, t.prev);
    const logp = tf.logSoftmax(maskLogits(logits, x.pointerValid));
    const picked = logp.mul(tf.oneHot(t.targets, logits.shape[2])).sum(2); // [b, m]
    return picked.mul(t.lossMask).sum().div(t.lossMask.sum()).neg() as tf.Scalar;
  });
}

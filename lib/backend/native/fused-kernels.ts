/**
 * attnlab's own kernels on the wasm heap, with no tfjs counterpart: fused GELU, layer norm and Adam(W), and flash
 * attention forward and backward. Registered with the overrides (./kernels.ts) while the native kernels are installed;
 * ./fused.ts and lib/attention/flash.ts run them by name.
 */
import type * as tf from '@tensorflow/tfjs';
import { requireAddon } from './load.js';
import { heap, type KernelArgs, type KernelFn, offset, output, outputs, size } from './wasm.js';

/** The addon's unary op code for exact GELU (U_GELU, after ./kernels.ts's UNARY codes; see src/kernels.inc). */
const GELU_OP = 12;

/** Kernel names of the fused transformer ops (registered on wasm only while the native kernels are installed). */
export const GELU = 'AttnlabGelu';
export const GELU_GRAD = 'AttnlabGeluGrad';
export const LAYER_NORM = 'AttnlabLayerNorm';
export const LAYER_NORM_GRAD = 'AttnlabLayerNormGrad';

function geluKernel(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const out = output(backend, GELU, [...inputs.x.shape]);
  const n = size(inputs.x.shape);
  if (n > 0) requireAddon().unary(heap(backend), GELU_OP, offset(backend, inputs.x), offset(backend, out), n);
  return out;
}

function geluGradKernel(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const out = output(backend, GELU_GRAD, [...inputs.x.shape]);
  const n = size(inputs.x.shape);
  if (n > 0)
    requireAddon().geluGrad(
      heap(backend),
      offset(backend, inputs.x),
      offset(backend, inputs.dy),
      offset(backend, out),
      n,
    );
  return out;
}

function layerNormKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const { x, gamma, beta } = inputs;
  const n = x.shape[x.shape.length - 1];
  const rows = size(x.shape) / n;
  const [y, mean, rstd] = outputs(backend, LAYER_NORM, [[...x.shape], [rows], [rows]]);
  requireAddon().layerNorm(
    heap(backend),
    offset(backend, x),
    offset(backend, gamma),
    offset(backend, beta),
    offset(backend, y),
    offset(backend, mean),
    offset(backend, rstd),
    rows,
    n,
    attrs.eps as number,
  );
  return [y, mean, rstd];
}

function layerNormGradKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend } = args;
  const { x, gamma, dy, mean, rstd } = inputs;
  const n = x.shape[x.shape.length - 1];
  const rows = size(x.shape) / n;
  const [dx, dg, db] = outputs(backend, LAYER_NORM_GRAD, [[...x.shape], [n], [n]]);
  requireAddon().layerNormGrad(
    heap(backend),
    offset(backend, x),
    offset(backend, gamma),
    offset(backend, dy),
    offset(backend, mean),
    offset(backend, rstd),
    offset(backend, dx),
    offset(backend, dg),
    offset(backend, db),
    rows,
    n,
  );
  return [dx, dg, db];
}

export const ADAM = 'AttnlabAdam';

function adamKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const { p, m, v, g } = inputs;
  const shape = [...p.shape];
  const outs = outputs(backend, ADAM, [shape, shape, shape]);
  const h = attrs as unknown as Required<AdamHyper>;
  const n = size(shape);
  if (n > 0) {
    requireAddon().adam(
      heap(backend),
      offset(backend, p),
      offset(backend, m),
      offset(backend, v),
      offset(backend, g),
      offset(backend, outs[0]),
      offset(backend, outs[1]),
      offset(backend, outs[2]),
      n,
      h.lr,
      h.beta1,
      h.beta2,
      h.eps,
      h.biasCorrection1,
      h.biasCorrection2,
      h.l2,
      h.decoupledDecay,
    );
  }
  return outs;
}

/** Hyper-parameters of one Adam(W) update (bias corrections 1 - beta^t precomputed by the caller). */
export interface AdamHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  biasCorrection1: number;
  biasCorrection2: number;
  /** Adam's coupled decay: g += l2 * p. */
  l2?: number;
  /** AdamW's decoupled decay, already multiplied by lr: p *= 1 - decoupledDecay. */
  decoupledDecay?: number;
}

/** Kernel names of the fused attention op (see lib/attention/flash.ts). */
export const FLASH_FWD = 'AttnlabFlashFwd';
export const FLASH_BWD = 'AttnlabFlashBwd';

/** Attributes of the flash kernels: sizes, scale and the visible key intervals per (mask batch row, query). */
export interface FlashAttrs {
  scale: number;
  /** [maskBatch, queries, 4]: key j visible iff iv[0] <= j < iv[1] or iv[2] <= j < iv[3]; null = all visible. */
  intervals: Int32Array | null;
  /** queries * 4 when the intervals differ per batch row, else 0. */
  intervalBatchStride: number;
}

function flashFwdKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const { q, k, v } = inputs;
  const a = attrs as unknown as FlashAttrs;
  const [B, H, Sq, D] = q.shape;
  const [, G, Sk] = k.shape;
  const E = v.shape[3];
  const [o, l] = outputs(backend, 'flash (AttnlabFlashFwd)', [
    [B, H, Sq, E],
    [B, H, Sq],
  ]);
  requireAddon().flashFwd(
    heap(backend),
    offset(backend, q),
    offset(backend, k),
    offset(backend, v),
    offset(backend, o),
    offset(backend, l),
    B,
    H,
    G,
    Sq,
    Sk,
    D,
    E,
    a.scale,
    a.intervals,
    a.intervalBatchStride,
  );
  return [o, l];
}

function flashBwdKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const { q, k, v, o, dy, lse } = inputs;
  const a = attrs as unknown as FlashAttrs;
  const [B, H, Sq, D] = q.shape;
  const [, G, Sk] = k.shape;
  const E = v.shape[3];
  const [dq, dk, dv] = outputs(backend, 'flash gradient (AttnlabFlashBwd)', [[...q.shape], [...k.shape], [...v.shape]]);
  requireAddon().flashBwd(
    heap(backend),
    offset(backend, q),
    offset(backend, k),
    offset(backend, v),
    offset(backend, o),
    offset(backend, dy),
    offset(backend, lse),
    offset(backend, dq),
    offset(backend, dk),
    offset(backend, dv),
    B,
    H,
    G,
    Sq,
    Sk,
    D,
    E,
    a.scale,
    a.intervals,
    a.intervalBatchStride,
  );
  return [dq, dk, dv];
}

/** Kernel names of the chunked causal linear-attention scan (see lib/attention/linear-scan.ts). */
export const LINEAR_SCAN = 'AttnlabLinearScan';
export const LINEAR_SCAN_GRAD = 'AttnlabLinearScanGrad';

/** q, k [..., T, D], v [..., T, E] -> y [..., T, E] = Σ_{i<=t} (q_t·k_i) v_i, one slice per leading index. */
function linearScanKernel(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const { q, k, v } = inputs;
  const r = q.shape.length;
  const [T, D, E] = [q.shape[r - 2], q.shape[r - 1], v.shape[r - 1]];
  const slices = size(q.shape.slice(0, r - 2));
  const y = output(backend, 'linear scan (AttnlabLinearScan)', [...v.shape]);
  requireAddon().linearScan(
    heap(backend),
    offset(backend, q),
    offset(backend, k),
    offset(backend, v),
    offset(backend, y),
    slices,
    T,
    D,
    E,
  );
  return y;
}

function linearScanGradKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend } = args;
  const { q, k, v, dy } = inputs;
  const r = q.shape.length;
  const [T, D, E] = [q.shape[r - 2], q.shape[r - 1], v.shape[r - 1]];
  const slices = size(q.shape.slice(0, r - 2));
  const [dq, dk, dv] = outputs(backend, 'linear scan gradient (AttnlabLinearScanGrad)', [
    [...q.shape],
    [...k.shape],
    [...v.shape],
  ]);
  requireAddon().linearScanGrad(
    heap(backend),
    offset(backend, q),
    offset(backend, k),
    offset(backend, v),
    offset(backend, dy),
    offset(backend, dq),
    offset(backend, dk),
    offset(backend, dv),
    slices,
    T,
    D,
    E,
  );
  return [dq, dk, dv];
}

export const TOYLM_GENERATE = 'AttnlabToylmGenerate';

/** Shapes of a ToyLM for TOYLM_GENERATE (the attrs): which optional weights are among the inputs, and the sizes. */
export interface ToylmGenerateAttrs {
  steps: number;
  vocab: number;
  dModel: number;
  layers: number;
  heads: number;
  kvHeads: number;
  hidden: number;
  /** 'table': a position table (learned or sinusoidal) is input `pos`; 'rope': rotary with `ropeBase`; or none. */
  positional: 'none' | 'table' | 'rope';
  ropeBase: number;
  /** Whether input `unembed` is given (else the embedding is tied). */
  untied: boolean;
  /** Also return the logits each token was chosen from. */
  logits: boolean;
}

/** Per-layer weight inputs of TOYLM_GENERATE, in the addon's order: `l{i}.{name}`. */
export const TOYLM_LAYER_WEIGHTS = [
  'ln1.gamma',
  'ln1.beta',
  'wq',
  'wk',
  'wv',
  'wo',
  'ln2.gamma',
  'ln2.beta',
  'w1',
  'b1',
  'w2',
  'b2',
];

/**
 * Greedy decoding of a ToyLM in one native call (src/addon.cc ToylmGenerate): inputs prompt [b, s] int32, embed,
 * pos?, unembed?, lnf.gamma, lnf.beta and every `l{i}.{name}` of TOYLM_LAYER_WEIGHTS; outputs tokens [b, steps]
 * int32 and logits [b, steps, vocab] (or [0]).
 */
function toylmGenerateKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend } = args;
  const a = args.attrs as unknown as ToylmGenerateAttrs;
  const [b, s] = inputs.prompt.shape;
  const outs = outputs(
    backend,
    TOYLM_GENERATE,
    [[b, a.steps], a.logits ? [b, a.steps, a.vocab] : [0]],
    ['int32', 'float32'],
  );
  const off = (name: string) => (inputs[name] ? offset(backend, inputs[name]) : -1);
  const names = ['embed', 'pos', 'unembed', 'lnf.gamma', 'lnf.beta'];
  for (let l = 0; l < a.layers; l++) for (const w of TOYLM_LAYER_WEIGHTS) names.push(`l${l}.${w}`);
  requireAddon().toylmGenerate(
    heap(backend),
    Float64Array.from(names, off),
    b,
    s,
    a.steps,
    a.vocab,
    a.dModel,
    a.layers,
    a.heads,
    a.kvHeads,
    a.hidden,
    a.positional === 'none' ? 0 : a.positional === 'table' ? 1 : 2,
    a.ropeBase,
    offset(backend, inputs.prompt),
    offset(backend, outs[0]),
    a.logits ? offset(backend, outs[1]) : -1,
  );
  return outs;
}

/** Every kernel above by name, in registration order. */
export const FUSED_KERNELS: Readonly<Record<string, KernelFn>> = {
  [GELU]: geluKernel,
  [ADAM]: adamKernel,
  [GELU_GRAD]: geluGradKernel,
  [LAYER_NORM]: layerNormKernel,
  [LAYER_NORM_GRAD]: layerNormGradKernel,
  [FLASH_FWD]: flashFwdKernel,
  [FLASH_BWD]: flashBwdKernel,
  [LINEAR_SCAN]: linearScanKernel,
  [LINEAR_SCAN_GRAD]: linearScanGradKernel,
  [TOYLM_GENERATE]: toylmGenerateKernel,
};

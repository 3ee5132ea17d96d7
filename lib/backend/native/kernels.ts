/**
 * Native overrides of tfjs's own wasm kernels (BatchMatMul, elementwise, reductions, softmax, gather, segment sum,
 * Identity/Cast) and the registration of every native kernel on the wasm backend.
 *
 * Each override falls back to the original wasm kernel for cases it does not cover (other dtypes, axes or layouts), so
 * installing never changes which programs run, only how fast. `uninstallNativeKernels()` restores the originals.
 */
import * as tf from '@tensorflow/tfjs';
import { fmt, ShapeError } from '../../util/shapes.js';
import { FUSED_KERNELS } from './fused-kernels.js';
import { requireAddon } from './load.js';
import {
  guardAllocator,
  heap,
  type KernelFn,
  offset,
  output,
  size,
  unguardAllocator,
  type WasmBackend,
} from './wasm.js';

/** The addon's op codes (the enums in src/kernels.inc) by tfjs kernel name. */
const UNARY: Record<string, number> = {
  Exp: 0,
  Log: 1,
  Tanh: 2,
  Erf: 3,
  Sigmoid: 4,
  Sqrt: 5,
  Rsqrt: 6,
  Square: 7,
  Neg: 8,
  Relu: 9,
  Reciprocal: 10,
  Abs: 11,
};
const BINARY: Record<string, number> = {
  Add: 0,
  Sub: 1,
  Multiply: 2,
  RealDiv: 3,
  Maximum: 4,
  Minimum: 5,
  SquaredDifference: 6,
};
const REDUCE: Record<string, number> = { Sum: 0, Max: 1, Min: 2, Mean: 3 };

/** tfjs-core's broadcast rule, with an error naming the kernel and both shapes. */
function broadcastShape(kernel: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1)
      throw new ShapeError(`${kernel}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/**
 * Describe a broadcasting elementwise op as at most 4 collapsed dims [d0, d1, d2, n] with element strides per operand
 * (0 where it repeats). Null when it needs more dims than that (the original kernel handles those).
 */
export function collapseBroadcast(
  aShape: readonly number[],
  bShape: readonly number[],
  out: readonly number[],
): { dims: number[]; as: number[]; bs: number[] } | null {
  const rank = out.length;
  const pad = (s: readonly number[]) => [...Array(rank - s.length).fill(1), ...s];
  const pa = pad(aShape);
  const pb = pad(bShape);
  const strides = (s: number[]) => {
    const st = new Array<number>(rank);
    let acc = 1;
    for (let i = rank - 1; i >= 0; i--) {
      st[i] = s[i] === 1 && out[i] !== 1 ? 0 : acc;
      acc *= s[i];
    }
    return st;
  };
  const sa = strides(pa);
  const sb = strides(pb);
  const dims: number[] = [];
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < rank; i++) {
    if (out[i] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && as[last] === sa[i] * out[i] && bs[last] === sb[i] * out[i]) {
      // Merge with the previous (outer) dim: both operands walk (or both repeat) contiguously across the two.
      dims[last] *= out[i];
      as[last] = sa[i];
      bs[last] = sb[i];
      continue;
    }
    dims.push(out[i]);
    as.push(sa[i]);
    bs.push(sb[i]);
  }
  if (dims.length === 0) {
    dims.push(1);
    as.push(1);
    bs.push(1);
  }
  if (dims.length > 4) return null;
  while (dims.length < 4) {
    dims.unshift(1);
    as.unshift(0);
    bs.unshift(0);
  }
  if ((as[3] !== 0 && as[3] !== 1) || (bs[3] !== 0 && bs[3] !== 1)) return null;
  return { dims, as, bs };
}

// ------------------------------------------------------------------------------------------------------ kernels

function batchMatMul(fallback: KernelFn | undefined): KernelFn {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const a = inputs.a;
    const b = inputs.b;
    const ta = Boolean(attrs.transposeA);
    const tb = Boolean(attrs.transposeB);
    if (a.dtype !== 'float32' || b.dtype !== 'float32') {
      if (fallback) return fallback(args);
      throw new ShapeError(`BatchMatMul: a and b must be float32, got ${a.dtype} and ${b.dtype}`);
    }
    const ra = a.shape.length;
    const rb = b.shape.length;
    if (ra < 2 || rb < 2) throw new ShapeError(`BatchMatMul: a ${fmt(a.shape)} and b ${fmt(b.shape)} need rank >= 2`);
    const m = ta ? a.shape[ra - 1] : a.shape[ra - 2];
    const k = ta ? a.shape[ra - 2] : a.shape[ra - 1];
    const k2 = tb ? b.shape[rb - 1] : b.shape[rb - 2];
    const n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
    if (k !== k2) {
      throw new ShapeError(
        `BatchMatMul: inner dimensions differ: a ${fmt(a.shape)}${ta ? 'ᵀ' : ''} has ${k}, b ${fmt(b.shape)}${tb ? 'ᵀ' : ''} has ${k2}`,
      );
    }
    const aBatch = a.shape.slice(0, -2);
    const bBatch = b.shape.slice(0, -2);
    const outBatch = broadcastShape('BatchMatMul', aBatch, bBatch);
    const batch = size(outBatch);
    if (batch === 0) {
      throw new ShapeError(
        `BatchMatMul: empty batch: a has shape ${fmt(a.shape)} and b ${fmt(b.shape)}; batch dimensions must be non-zero`,
      );
    }
    const out = output(backend, 'BatchMatMul', [...outBatch, m, n]);
    if (m === 0 || n === 0) return out;
    let ai: Int32Array | null = null;
    let bi: Int32Array | null = null;
    const na = size(aBatch);
    const nb = size(bBatch);
    if (na !== batch || nb !== batch || aBatch.length !== bBatch.length) {
      // General broadcasting: map each output batch index to the batch index of a and of b.
      ai = new Int32Array(batch);
      bi = new Int32Array(batch);
      const rank = outBatch.length;
      const pa = [...Array(rank - aBatch.length).fill(1), ...aBatch];
      const pb = [...Array(rank - bBatch.length).fill(1), ...bBatch];
      for (let i = 0; i < batch; i++) {
        let rem = i;
        let ia = 0;
        let ib = 0;
        let sa = 1;
        let sb = 1;
        for (let d = rank - 1; d >= 0; d--) {
          const c = rem % outBatch[d];
          rem = Math.floor(rem / outBatch[d]);
          if (pa[d] !== 1) ia += c * sa;
          if (pb[d] !== 1) ib += c * sb;
          sa *= pa[d];
          sb *= pb[d];
        }
        ai[i] = ia;
        bi[i] = ib;
      }
    }
    const oa = offset(backend, a);
    const ob = offset(backend, b);
    const oc = offset(backend, out);
    if (nb === 1 && !ta && na === batch) {
      // One shared right matrix (a linear layer): fold a's batch into its rows, one large product instead of many.
      requireAddon().gemm(heap(backend), oa, ob, oc, batch * m, n, k, 0, tb ? 1 : 0, 1, null, null, 1, 1);
      return out;
    }
    requireAddon().gemm(heap(backend), oa, ob, oc, m, n, k, ta ? 1 : 0, tb ? 1 : 0, batch, ai, bi, na, nb);
    return out;
  };
}

function unaryKernel(name: string, fallback: KernelFn | undefined): KernelFn {
  const op = UNARY[name];
  return (args) => {
    const { inputs, backend } = args;
    const x = inputs.x;
    if (x.dtype !== 'float32') {
      if (fallback) return fallback(args);
      throw new ShapeError(`${name}: x must be float32, got ${x.dtype}`);
    }
    const out = output(backend, name, [...x.shape]);
    const n = size(x.shape);
    if (n > 0) requireAddon().unary(heap(backend), op, offset(backend, x), offset(backend, out), n);
    return out;
  };
}

function binaryKernel(name: string, fallback: KernelFn | undefined): KernelFn {
  const op = BINARY[name];
  return (args) => {
    const { inputs, backend } = args;
    const a = inputs.a;
    const b = inputs.b;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') {
      if (fallback) return fallback(args);
      throw new ShapeError(`${name}: a and b must be float32, got ${a.dtype} and ${b.dtype}`);
    }
    const outShape = broadcastShape(name, a.shape, b.shape);
    const plan = collapseBroadcast(a.shape, b.shape, outShape);
    if (!plan) {
      if (fallback) return fallback(args);
      throw new ShapeError(
        `${name}: broadcasting ${fmt(a.shape)} with ${fmt(b.shape)} needs more than 4 collapsed dims`,
      );
    }
    const out = output(backend, name, outShape);
    if (size(outShape) === 0) return out;
    const { dims, as, bs } = plan;
    requireAddon().binary(
      heap(backend),
      op,
      offset(backend, a),
      offset(backend, b),
      offset(backend, out),
      size(a.shape),
      size(b.shape),
      dims[0],
      dims[1],
      dims[2],
      dims[3],
      as[0],
      as[1],
      as[2],
      bs[0],
      bs[1],
      bs[2],
      as[3],
      bs[3],
    );
    return out;
  };
}

function normalizeAxes(axis: unknown, rank: number): number[] {
  const list = axis === undefined || axis === null ? [...Array(rank).keys()] : Array.isArray(axis) ? axis : [axis];
  return [...new Set((list as number[]).map((a) => (a < 0 ? a + rank : a)))].sort((x, y) => x - y);
}

function reduceKernel(name: string, fallback: KernelFn | undefined): KernelFn {
  const op = REDUCE[name];
  return (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x;
    const rank = x.shape.length;
    const axes = normalizeAxes(name === 'Max' ? attrs.reductionIndices : attrs.axis, rank); // tfjs names Max's axes differently
    const contiguous = axes.length > 0 && axes.every((a, i) => a === axes[0] + i && a >= 0 && a < rank);
    const n = size(x.shape);
    if (x.dtype !== 'float32' || !contiguous || n === 0) {
      if (fallback) return fallback(args);
      throw new ShapeError(`${name}: x ${fmt(x.shape)} (${x.dtype}) over axes [${axes}] is not supported natively`);
    }
    const outer = size(x.shape.slice(0, axes[0]));
    const r = size(axes.map((a) => x.shape[a]));
    const inner = size(x.shape.slice(axes[axes.length - 1] + 1));
    const shape = attrs.keepDims
      ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !axes.includes(i));
    const out = output(backend, name, shape);
    requireAddon().reduce(heap(backend), op, offset(backend, x), offset(backend, out), outer, r, inner);
    return out;
  };
}

function softmaxKernel(log: boolean, fallback: KernelFn | undefined): KernelFn {
  const name = log ? 'LogSoftmax' : 'Softmax';
  return (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs.logits;
    const rank = x.shape.length;
    const dimAttr = (log ? attrs.axis : attrs.dim) as number | undefined;
    const dim = dimAttr === undefined || dimAttr === -1 ? rank - 1 : dimAttr < 0 ? dimAttr + rank : dimAttr;
    if (x.dtype !== 'float32' || dim !== rank - 1) {
      if (fallback) return fallback(args);
      throw new ShapeError(
        `${name}: logits ${fmt(x.shape)} (${x.dtype}) must be float32, normalised over the last axis`,
      );
    }
    const out = output(backend, name, [...x.shape]);
    const n = x.shape[rank - 1];
    if (size(x.shape) > 0)
      requireAddon().softmax(
        heap(backend),
        offset(backend, x),
        offset(backend, out),
        size(x.shape) / n,
        n,
        log ? 1 : 0,
      );
    return out;
  };
}

function gatherKernel(fallback: KernelFn | undefined): KernelFn {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x;
    const indices = inputs.indices;
    const axis =
      ((attrs.axis as number) ?? 0) < 0 ? (attrs.axis as number) + x.shape.length : ((attrs.axis as number) ?? 0);
    const batchDims = (attrs.batchDims as number) ?? 0;
    if (x.dtype !== 'float32' || indices.dtype !== 'int32' || axis !== 0 || batchDims !== 0 || size(x.shape) === 0) {
      if (fallback) return fallback(args);
      throw new ShapeError(`GatherV2: only float32 x gathered along axis 0 with int32 indices runs natively`);
    }
    const rows = x.shape[0];
    const rowLen = size(x.shape.slice(1));
    const n = size(indices.shape);
    const out = output(backend, 'GatherV2', [...indices.shape, ...x.shape.slice(1)]);
    if (n === 0 || rowLen === 0) return out;
    const bad = requireAddon().gather(
      heap(backend),
      offset(backend, x),
      offset(backend, indices),
      offset(backend, out),
      n,
      rowLen,
      rows,
    );
    if (bad >= 0) {
      backend.disposeData(out.dataId);
      const v = new Int32Array(heap(backend), offset(backend, indices), n)[bad];
      throw new ShapeError(`GatherV2: indices[${bad}] = ${v} is outside [0, ${rows}) for x of shape ${fmt(x.shape)}`);
    }
    return out;
  };
}

function segmentSumKernel(fallback: KernelFn | undefined): KernelFn {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x;
    const ids = inputs.segmentIds;
    const segs = attrs.numSegments as number;
    if (x.dtype !== 'float32' || ids.dtype !== 'int32') {
      if (fallback) return fallback(args);
      throw new ShapeError(
        `UnsortedSegmentSum: x must be float32 and segmentIds int32, got ${x.dtype} and ${ids.dtype}`,
      );
    }
    const n = size(ids.shape);
    const inner = x.shape.slice(ids.shape.length);
    const rowLen = size(inner);
    const out = output(backend, 'UnsortedSegmentSum', [segs, ...inner]);
    if (segs * rowLen === 0) return out;
    const bad = requireAddon().segmentSum(
      heap(backend),
      offset(backend, x),
      offset(backend, ids),
      offset(backend, out),
      n,
      rowLen,
      segs,
    );
    if (bad >= 0) {
      backend.disposeData(out.dataId);
      const v = new Int32Array(heap(backend), offset(backend, ids), n)[bad];
      throw new ShapeError(`UnsortedSegmentSum: segmentIds[${bad}] = ${v} is >= numSegments (${segs})`);
    }
    return out;
  };
}

/**
 * Identity, and Cast to the same dtype, share the input's data (tensors are immutable), as tfjs's cpu backend does;
 * the wasm originals copy it, which a training step does a few hundred times (gradient plumbing, optimizer state).
 */
function aliasKernel(name: 'Identity' | 'Cast', fallback: KernelFn | undefined): KernelFn {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x;
    const same = name === 'Identity' || attrs.dtype === x.dtype;
    if (!same || x.dtype === 'string') {
      if (fallback) return fallback(args);
      throw new ShapeError(`${name}: cannot convert ${x.dtype} to ${String(attrs.dtype)} natively`);
    }
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  };
}

// ------------------------------------------------------------------------------------------------ registration

function overrides(): Record<string, (fallback: KernelFn | undefined) => KernelFn> {
  const table: Record<string, (fallback: KernelFn | undefined) => KernelFn> = {
    BatchMatMul: batchMatMul,
    Softmax: (f) => softmaxKernel(false, f),
    LogSoftmax: (f) => softmaxKernel(true, f),
    GatherV2: gatherKernel,
    Identity: (f) => aliasKernel('Identity', f),
    Cast: (f) => aliasKernel('Cast', f),
    UnsortedSegmentSum: segmentSumKernel,
  };
  for (const [n, k] of Object.entries(FUSED_KERNELS)) table[n] = () => k;
  for (const n of Object.keys(UNARY)) table[n] = (f) => unaryKernel(n, f);
  for (const n of Object.keys(BINARY)) table[n] = (f) => binaryKernel(n, f);
  for (const n of Object.keys(REDUCE)) table[n] = (f) => reduceKernel(n, f);
  return table;
}

/** The original wasm kernels we replaced (undefined where wasm had none), to restore on uninstall. */
let saved: Map<string, tf.KernelConfig | undefined> | undefined;

/** True while the native kernels are registered on the wasm backend. */
export function nativeInstalled(): boolean {
  return saved !== undefined;
}

/** Register the native kernels on tfjs's wasm backend; returns their names. Idempotent. */
export async function installNativeKernels(): Promise<string[]> {
  requireAddon();
  guardAllocator(tf.findBackend('wasm') as unknown as WasmBackend | undefined);
  if (saved) return [...saved.keys()];
  saved = new Map();
  for (const [name, make] of Object.entries(overrides())) {
    const original = tf.getKernel(name, 'wasm');
    if (original) tf.unregisterKernel(name, 'wasm');
    saved.set(name, original);
    const fallback = original ? (original.kernelFunc as unknown as KernelFn) : undefined;
    tf.registerKernel({
      kernelName: name,
      backendName: 'wasm',
      kernelFunc: make(fallback) as unknown as tf.KernelFunc,
    });
  }
  return [...saved.keys()];
}

/** Put the original wasm kernels back. */
export function uninstallNativeKernels(): void {
  unguardAllocator();
  if (!saved) return;
  for (const [name, original] of saved) {
    tf.unregisterKernel(name, 'wasm');
    if (original) tf.registerKernel(original);
  }
  saved = undefined;
}

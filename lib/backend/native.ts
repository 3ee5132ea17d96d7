/**
 * Native CPU kernels: a C++ N-API addon over OpenBLAS (lib/backend/native/), registered as overrides of tfjs's `wasm`
 * backend. The addon reads and writes tensors where they live, on the wasm heap: a kernel allocates its output through
 * the wasm backend, then passes the heap's ArrayBuffer and byte offsets. No tensor data is copied.
 *
 * Each override falls back to the original wasm kernel for cases it does not cover (other dtypes, axes or layouts), so
 * installing never changes which programs run, only how fast. `uninstallNativeKernels()` restores the originals.
 *
 * Set ATTNLAB_NATIVE=0 to disable; ATTNLAB_NATIVE_ADDON=/path/to/attnlab_native.node to load another build;
 * ATTNLAB_THREADS=n for the thread count (default: 2, or 1 on a 1-core machine).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ShapeError, fmt } from '../util/shapes.js';

/** The addon's entry points (see lib/backend/native/src/addon.cc for argument order). */
export interface NativeAddon {
  gemm(heap: ArrayBuffer, a: number, b: number, c: number, m: number, n: number, k: number, ta: number, tb: number,
    batch: number, aIndex: Int32Array | null, bIndex: Int32Array | null, aBatches: number, bBatches: number): void;
  unary(heap: ArrayBuffer, op: number, x: number, y: number, n: number): void;
  binary(heap: ArrayBuffer, op: number, a: number, b: number, y: number, aSize: number, bSize: number,
    d0: number, d1: number, d2: number, n: number, as0: number, as1: number, as2: number, bs0: number, bs1: number,
    bs2: number, sa: number, sb: number): void;
  reduce(heap: ArrayBuffer, op: number, x: number, y: number, outer: number, r: number, inner: number): void;
  softmax(heap: ArrayBuffer, x: number, y: number, rows: number, n: number, log: number): void;
  gather(heap: ArrayBuffer, x: number, idx: number, y: number, n: number, rowLen: number, rows: number): number;
  segmentSum(heap: ArrayBuffer, x: number, idx: number, y: number, n: number, rowLen: number, segs: number): number;
  flashFwd(heap: ArrayBuffer, q: number, k: number, v: number, o: number, l: number, B: number, H: number, G: number,
    Sq: number, Sk: number, D: number, E: number, scale: number, iv: Int32Array | null, ivStride: number): void;
  flashBwd(heap: ArrayBuffer, q: number, k: number, v: number, o: number, dO: number, l: number, dq: number, dk: number,
    dv: number, B: number, H: number, G: number, Sq: number, Sk: number, D: number, E: number, scale: number,
    iv: Int32Array | null, ivStride: number): void;
  geluGrad(heap: ArrayBuffer, x: number, dy: number, dx: number, n: number): void;
  adam(heap: ArrayBuffer, p: number, m: number, v: number, g: number, p1: number, m1: number, v1: number, n: number,
    lr: number, b1: number, b2: number, eps: number, bc1: number, bc2: number, l2: number, wd: number): void;
  layerNorm(heap: ArrayBuffer, x: number, g: number, b: number, y: number, mean: number, rstd: number, rows: number,
    n: number, eps: number): void;
  layerNormGrad(heap: ArrayBuffer, x: number, g: number, dy: number, mean: number, rstd: number, dx: number, dg: number,
    db: number, rows: number, n: number): void;
  info(): { isa: string; threads: number; blas: string };
  setThreads(n: number): void;
}

/** The parts of tfjs-backend-wasm's BackendWasm that the kernels use. */
interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object): boolean;
  incRef(dataId: object): void;
}

// tfjs passes every input a kernel declares, so they are typed as present.
type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: WasmBackend; attrs: Record<string, unknown> };
type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

/** Package root: the nearest folder above this file holding attnlab's package.json (works from lib/ and dist/lib/). */
function packageRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'attnlab') return dir;
      } catch {
        /* not ours; keep walking */
      }
    }
    dir = dirname(dir);
  }
  return null;
}

/** Where the built addon lives (or would). */
export function addonPath(): string {
  const env = process.env.ATTNLAB_NATIVE_ADDON;
  if (env) return resolve(env);
  const root = packageRoot() ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return join(root, 'lib', 'backend', 'native', 'build', 'Release', 'attnlab_native.node');
}

let addon: NativeAddon | undefined;
let loadError: string | undefined;
let warned = false;

/**
 * OpenBLAS 0.3.21 (Debian 12) does not know AMD Zen 5, and this project's machines pin OPENBLAS_CORETYPE=Haswell: its
 * AVX2 kernels, half of what the 512-bit FMA units do (measured n=1024 sgemm, one core: 120 GFLOP/s SkylakeX vs 64
 * Haswell). The addon is the only OpenBLAS user in this process, so while loading it we ask for the SkylakeX kernels on
 * CPUs with AVX-512, then put the variable back (child processes, e.g. the PyTorch peer, see it unchanged).
 * ATTNLAB_OPENBLAS_CORETYPE overrides: 'inherit' keeps OPENBLAS_CORETYPE as it is, or names a core type.
 */
function blasCoretype(): string | undefined {
  const want = process.env.ATTNLAB_OPENBLAS_CORETYPE;
  if (want === 'inherit') return undefined;
  if (want) return want;
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined;
  try {
    const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
    return ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.includes(f)) ? 'SkylakeX' : undefined;
  } catch {
    return undefined; // no /proc: keep OpenBLAS's own detection
  }
}

function requireWithCoretype(path: string): NativeAddon {
  const core = blasCoretype();
  const before = process.env.OPENBLAS_CORETYPE;
  if (core) process.env.OPENBLAS_CORETYPE = core;
  try {
    return createRequire(import.meta.url)(path) as NativeAddon;
  } finally {
    if (before === undefined) delete process.env.OPENBLAS_CORETYPE;
    else process.env.OPENBLAS_CORETYPE = before;
  }
}

/** Load the addon once; returns it, or undefined with `loadError` set. */
export function loadAddon(): NativeAddon | undefined {
  if (addon || loadError) return addon;
  if (process.env.ATTNLAB_NATIVE === '0') {
    loadError = 'disabled by ATTNLAB_NATIVE=0';
    return undefined;
  }
  const path = addonPath();
  if (!existsSync(path)) {
    loadError = `the native addon is not built (${path} is missing; run \`node scripts/build-native.mjs\`, which needs g++ and libopenblas-dev)`;
    return undefined;
  }
  try {
    addon = requireWithCoretype(path);
  } catch (e) {
    loadError = `the native addon failed to load: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  }
  return addon;
}

/** Null when the native kernels can be used, else why not (said once on stderr when ATTNLAB_VERBOSE is set). */
export async function nativeAvailable(): Promise<string | null> {
  const a = loadAddon();
  if (a) {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
    } catch (e) {
      return `@tensorflow/tfjs-backend-wasm failed to load: ${e instanceof Error ? e.message : String(e)}`;
    }
    return null;
  }
  if (!warned && process.env.ATTNLAB_VERBOSE) {
    warned = true;
    console.error(`attnlab: native kernels unavailable: ${loadError}`);
  }
  return loadError ?? 'the native addon could not be loaded';
}

/** Instruction set, thread count and BLAS build of the loaded addon, or undefined. */
export function nativeInfo(): { isa: string; threads: number; blas: string } | undefined {
  return loadAddon()?.info();
}

// ------------------------------------------------------------------------------------------------------ helpers

const UNARY: Record<string, number> = {
  Exp: 0, Log: 1, Tanh: 2, Erf: 3, Sigmoid: 4, Sqrt: 5, Rsqrt: 6, Square: 7, Neg: 8, Relu: 9, Reciprocal: 10, Abs: 11,
};
const GELU_OP = 12;
const BINARY: Record<string, number> = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, Maximum: 4, Minimum: 5, SquaredDifference: 6 };
const REDUCE: Record<string, number> = { Sum: 0, Max: 1, Min: 2, Mean: 3 };

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function offset(backend: WasmBackend, t: tf.TensorInfo): number {
  const d = backend.dataIdMap.get(t.dataId);
  if (!d) throw new Error('attnlab native: a tensor has no data on the wasm heap (was it disposed?)');
  return d.memoryOffset;
}

function heap(backend: WasmBackend): ArrayBuffer {
  return backend.wasm.HEAPU8.buffer as ArrayBuffer;
}

function lib(): NativeAddon {
  const a = loadAddon();
  if (!a) throw new Error(`attnlab native kernels: ${loadError}`);
  return a;
}

/** tfjs-core's broadcast rule, with an error naming the kernel and both shapes. */
function broadcastShape(kernel: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new ShapeError(`${kernel}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/**
 * Describe a broadcasting elementwise op as at most 4 collapsed dims [d0, d1, d2, n] with element strides per operand
 * (0 where it repeats). Null when it needs more dims than that (the original kernel handles those).
 */
export function collapseBroadcast(aShape: readonly number[], bShape: readonly number[], out: readonly number[]):
  { dims: number[]; as: number[]; bs: number[] } | null {
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
        `BatchMatMul: inner dimensions differ: a ${fmt(a.shape)}${ta ? 'ᵀ' : ''} has ${k}, b ${fmt(b.shape)}${tb ? 'ᵀ' : ''} has ${k2}`);
    }
    const aBatch = a.shape.slice(0, -2);
    const bBatch = b.shape.slice(0, -2);
    const outBatch = broadcastShape('BatchMatMul', aBatch, bBatch);
    const batch = size(outBatch);
    if (batch === 0) {
      throw new ShapeError(`BatchMatMul: empty batch: a has shape ${fmt(a.shape)} and b ${fmt(b.shape)}; batch dimensions must be non-zero`);
    }
    const out = backend.makeOutput([...outBatch, m, n], 'float32');
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
      lib().gemm(heap(backend), oa, ob, oc, batch * m, n, k, 0, tb ? 1 : 0, 1, null, null, 1, 1);
      return out;
    }
    lib().gemm(heap(backend), oa, ob, oc, m, n, k, ta ? 1 : 0, tb ? 1 : 0, batch, ai, bi, na, nb);
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
    const out = backend.makeOutput([...x.shape], 'float32');
    const n = size(x.shape);
    if (n > 0) lib().unary(heap(backend), op, offset(backend, x), offset(backend, out), n);
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
      throw new ShapeError(`${name}: broadcasting ${fmt(a.shape)} with ${fmt(b.shape)} needs more than 4 collapsed dims`);
    }
    const out = backend.makeOutput(outShape, 'float32');
    if (size(outShape) === 0) return out;
    const { dims, as, bs } = plan;
    lib().binary(heap(backend), op, offset(backend, a), offset(backend, b), offset(backend, out), size(a.shape),
      size(b.shape), dims[0], dims[1], dims[2], dims[3], as[0], as[1], as[2], bs[0], bs[1], bs[2], as[3], bs[3]);
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
    const out = backend.makeOutput(shape, 'float32');
    lib().reduce(heap(backend), op, offset(backend, x), offset(backend, out), outer, r, inner);
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
      throw new ShapeError(`${name}: logits ${fmt(x.shape)} (${x.dtype}) must be float32, normalised over the last axis`);
    }
    const out = backend.makeOutput([...x.shape], 'float32');
    const n = x.shape[rank - 1];
    if (size(x.shape) > 0) lib().softmax(heap(backend), offset(backend, x), offset(backend, out), size(x.shape) / n, n, log ? 1 : 0);
    return out;
  };
}

function gatherKernel(fallback: KernelFn | undefined): KernelFn {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x;
    const indices = inputs.indices;
    const axis = ((attrs.axis as number) ?? 0) < 0 ? (attrs.axis as number) + x.shape.length : ((attrs.axis as number) ?? 0);
    const batchDims = (attrs.batchDims as number) ?? 0;
    if (x.dtype !== 'float32' || indices.dtype !== 'int32' || axis !== 0 || batchDims !== 0 || size(x.shape) === 0) {
      if (fallback) return fallback(args);
      throw new ShapeError(`GatherV2: only float32 x gathered along axis 0 with int32 indices runs natively`);
    }
    const rows = x.shape[0];
    const rowLen = size(x.shape.slice(1));
    const n = size(indices.shape);
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], 'float32');
    if (n === 0 || rowLen === 0) return out;
    const bad = lib().gather(heap(backend), offset(backend, x), offset(backend, indices), offset(backend, out), n, rowLen, rows);
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
      throw new ShapeError(`UnsortedSegmentSum: x must be float32 and segmentIds int32, got ${x.dtype} and ${ids.dtype}`);
    }
    const n = size(ids.shape);
    const inner = x.shape.slice(ids.shape.length);
    const rowLen = size(inner);
    const out = backend.makeOutput([segs, ...inner], 'float32');
    if (segs * rowLen === 0) return out;
    const bad = lib().segmentSum(heap(backend), offset(backend, x), offset(backend, ids), offset(backend, out), n, rowLen, segs);
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

// ------------------------------------------------------------------------------------------ fused transformer ops

/** Kernel names of the fused ops below (registered on wasm only while the native kernels are installed). */
const GELU = 'AttnlabGelu';
const GELU_GRAD = 'AttnlabGeluGrad';
const LAYER_NORM = 'AttnlabLayerNorm';
const LAYER_NORM_GRAD = 'AttnlabLayerNormGrad';

function geluKernel(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const out = backend.makeOutput([...inputs.x.shape], 'float32');
  const n = size(inputs.x.shape);
  if (n > 0) lib().unary(heap(backend), GELU_OP, offset(backend, inputs.x), offset(backend, out), n);
  return out;
}

function geluGradKernel(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const out = backend.makeOutput([...inputs.x.shape], 'float32');
  const n = size(inputs.x.shape);
  if (n > 0) lib().geluGrad(heap(backend), offset(backend, inputs.x), offset(backend, inputs.dy), offset(backend, out), n);
  return out;
}

function layerNormKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const { x, gamma, beta } = inputs;
  const n = x.shape[x.shape.length - 1];
  const rows = size(x.shape) / n;
  const y = backend.makeOutput([...x.shape], 'float32');
  const mean = backend.makeOutput([rows], 'float32');
  const rstd = backend.makeOutput([rows], 'float32');
  lib().layerNorm(heap(backend), offset(backend, x), offset(backend, gamma), offset(backend, beta), offset(backend, y),
    offset(backend, mean), offset(backend, rstd), rows, n, attrs.eps as number);
  return [y, mean, rstd];
}

function layerNormGradKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend } = args;
  const { x, gamma, dy, mean, rstd } = inputs;
  const n = x.shape[x.shape.length - 1];
  const rows = size(x.shape) / n;
  const dx = backend.makeOutput([...x.shape], 'float32');
  const dg = backend.makeOutput([n], 'float32');
  const db = backend.makeOutput([n], 'float32');
  lib().layerNormGrad(heap(backend), offset(backend, x), offset(backend, gamma), offset(backend, dy), offset(backend, mean),
    offset(backend, rstd), offset(backend, dx), offset(backend, dg), offset(backend, db), rows, n);
  return [dx, dg, db];
}

/** True when the fused kernels can take these float32 tensors (wasm-native active). */
function fusedReady(...ts: tf.Tensor[]): boolean {
  return saved !== undefined && tf.getBackend() === 'wasm' && ts.every((t) => t.dtype === 'float32' && t.size > 0);
}

/**
 * Layer norm over the last axis (Ba et al., 2016, https://arxiv.org/abs/1607.06450):
 *   y = (x - mean) / sqrt(var + eps) * gamma + beta,   x [..., n], gamma [n], beta [n]
 * One native kernel forward and one backward on wasm-native (instead of ~20 tfjs ops); the same ops composed elsewhere.
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  const n = x.shape[x.rank - 1];
  if (x.rank < 1 || gamma.rank !== 1 || beta.rank !== 1 || gamma.shape[0] !== n || beta.shape[0] !== n) {
    throw new ShapeError(`layerNorm: gamma ${fmt(gamma.shape)} and beta ${fmt(beta.shape)} must both be [${n}], the last axis of x ${fmt(x.shape)}`);
  }
  if (!fusedReady(x, gamma, beta)) {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      return x.sub(mean).mul(tf.rsqrt(variance.add(eps))).mul(gamma).add(beta);
    });
  }
  const attrs = { eps } as unknown as tf.NamedAttrMap;
  const op = tf.customGrad(((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM, { x: xx, gamma: g, beta: b }, attrs) as tf.Tensor[];
    save([xx, g, mean, rstd]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) =>
        tf.engine().runKernel(LAYER_NORM_GRAD, { x: s[0], gamma: s[1], dy, mean: s[2], rstd: s[3] }, {}) as tf.Tensor[],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, gamma, beta);
}

/** Exact GELU, x Φ(x) = 0.5 x (1 + erf(x / √2)) (Hendrycks & Gimpel, 2016); fused on wasm-native, composed elsewhere. */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (!fusedReady(x)) return tf.tidy(() => x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5));
  const op = tf.customGrad(((xx: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xx]);
    return {
      value: tf.engine().runKernel(GELU, { x: xx }, {}) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => tf.engine().runKernel(GELU_GRAD, { x: s[0], dy }, {}) as tf.Tensor,
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x);
}

/**
 * log softmax over the last axis; on wasm-native one native kernel (tfjs's own op composes six), with the gradient
 * dy - sum(dy) softmax(x).
 */
export function logSoftmax(x: tf.Tensor): tf.Tensor {
  if (!fusedReady(x)) return tf.logSoftmax(x);
  const op = tf.customGrad(((xx: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf.engine().runKernel('LogSoftmax', { logits: xx }, { axis: -1 }) as tf.Tensor;
    save([y]);
    return { value: y, gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => dy.sub(dy.sum(-1, true).mul(tf.exp(s[0]))) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x);
}

const ADAM = 'AttnlabAdam';

function adamKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const { p, m, v, g } = inputs;
  const shape = [...p.shape];
  const outs = [backend.makeOutput(shape, 'float32'), backend.makeOutput(shape, 'float32'), backend.makeOutput(shape, 'float32')];
  const h = attrs as unknown as Required<AdamHyper>;
  const n = size(shape);
  if (n > 0) {
    lib().adam(heap(backend), offset(backend, p), offset(backend, m), offset(backend, v), offset(backend, g),
      offset(backend, outs[0]), offset(backend, outs[1]), offset(backend, outs[2]), n,
      h.lr, h.beta1, h.beta2, h.eps, h.biasCorrection1, h.biasCorrection2, h.l2, h.decoupledDecay);
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

/**
 * One fused Adam(W) update of a variable: returns [p', m', v'] (new tensors; the caller assigns them), computing
 *   g' = g + l2 p,  m' = b1 m + (1 - b1) g',  v' = b2 v + (1 - b2) g'²,  p' = p (1 - wd) - lr/bc1 · m' / (sqrt(v'/bc2) + eps)
 * in one native kernel instead of ~13 tfjs ops. Returns null when the native kernels are not active (use tf ops).
 */
export function adamUpdate(p: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, h: AdamHyper): [tf.Tensor, tf.Tensor, tf.Tensor] | null {
  for (const [name, t] of [['m', m], ['v', v], ['g', g]] as const) {
    if (!t.shape.every((d, i) => d === p.shape[i]) || t.rank !== p.rank) {
      throw new ShapeError(`adamUpdate: ${name} has shape ${fmt(t.shape)} but the variable has ${fmt(p.shape)}`);
    }
  }
  if (!fusedReady(p, m, v, g)) return null;
  const attrs = { l2: 0, decoupledDecay: 0, ...h } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel(ADAM, { p, m, v, g }, attrs) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

// ------------------------------------------------------------------------------------------------ fused attention

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
  const o = backend.makeOutput([B, H, Sq, E], 'float32');
  const l = backend.makeOutput([B, H, Sq], 'float32');
  lib().flashFwd(heap(backend), offset(backend, q), offset(backend, k), offset(backend, v), offset(backend, o),
    offset(backend, l), B, H, G, Sq, Sk, D, E, a.scale, a.intervals, a.intervalBatchStride);
  return [o, l];
}

function flashBwdKernel(args: KernelArgs): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const { q, k, v, o, dy, lse } = inputs;
  const a = attrs as unknown as FlashAttrs;
  const [B, H, Sq, D] = q.shape;
  const [, G, Sk] = k.shape;
  const E = v.shape[3];
  const dq = backend.makeOutput([...q.shape], 'float32');
  const dk = backend.makeOutput([...k.shape], 'float32');
  const dv = backend.makeOutput([...v.shape], 'float32');
  lib().flashBwd(heap(backend), offset(backend, q), offset(backend, k), offset(backend, v), offset(backend, o),
    offset(backend, dy), offset(backend, lse), offset(backend, dq), offset(backend, dk), offset(backend, dv),
    B, H, G, Sq, Sk, D, E, a.scale, a.intervals, a.intervalBatchStride);
  return [dq, dk, dv];
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
    [GELU]: () => geluKernel as unknown as KernelFn,
    [ADAM]: () => adamKernel as unknown as KernelFn,
    [GELU_GRAD]: () => geluGradKernel as unknown as KernelFn,
    [LAYER_NORM]: () => layerNormKernel as unknown as KernelFn,
    [LAYER_NORM_GRAD]: () => layerNormGradKernel as unknown as KernelFn,
    [FLASH_FWD]: () => flashFwdKernel as unknown as KernelFn,
    [FLASH_BWD]: () => flashBwdKernel as unknown as KernelFn,
  };
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
  lib();
  if (saved) return [...saved.keys()];
  saved = new Map();
  for (const [name, make] of Object.entries(overrides())) {
    const original = tf.getKernel(name, 'wasm');
    if (original) tf.unregisterKernel(name, 'wasm');
    saved.set(name, original);
    const fallback = original ? (original.kernelFunc as unknown as KernelFn) : undefined;
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: make(fallback) as unknown as tf.KernelFunc });
  }
  return [...saved.keys()];
}

/** Put the original wasm kernels back. */
export function uninstallNativeKernels(): void {
  if (!saved) return;
  for (const [name, original] of saved) {
    tf.unregisterKernel(name, 'wasm');
    if (original) tf.registerKernel(original);
  }
  saved = undefined;
}

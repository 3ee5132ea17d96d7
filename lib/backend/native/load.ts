/**
 * Finding and loading the native addon (a C++ N-API module over OpenBLAS, built from lib/backend/native/src by
 * scripts/build-native.mjs), and saying why when it cannot be used.
 *
 * Set ATTNLAB_NATIVE=0 to disable; ATTNLAB_NATIVE_ADDON=/path/to/attnlab_native.node to load another build.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { packageRoot } from '../../util/paths.js';

/** The addon's entry points (see lib/backend/native/src/addon.cc for argument order). */
export interface NativeAddon {
  gemm(
    heap: ArrayBuffer,
    a: number,
    b: number,
    c: number,
    m: number,
    n: number,
    k: number,
    ta: number,
    tb: number,
    batch: number,
    aIndex: Int32Array | null,
    bIndex: Int32Array | null,
    aBatches: number,
    bBatches: number,
  ): void;
  unary(heap: ArrayBuffer, op: number, x: number, y: number, n: number): void;
  binary(
    heap: ArrayBuffer,
    op: number,
    a: number,
    b: number,
    y: number,
    aSize: number,
    bSize: number,
    d0: number,
    d1: number,
    d2: number,
    n: number,
    as0: number,
    as1: number,
    as2: number,
    bs0: number,
    bs1: number,
    bs2: number,
    sa: number,
    sb: number,
  ): void;
  reduce(heap: ArrayBuffer, op: number, x: number, y: number, outer: number, r: number, inner: number): void;
  softmax(heap: ArrayBuffer, x: number, y: number, rows: number, n: number, log: number): void;
  gather(heap: ArrayBuffer, x: number, idx: number, y: number, n: number, rowLen: number, rows: number): number;
  segmentSum(heap: ArrayBuffer, x: number, idx: number, y: number, n: number, rowLen: number, segs: number): number;
  flashFwd(
    heap: ArrayBuffer,
    q: number,
    k: number,
    v: number,
    o: number,
    l: number,
    B: number,
    H: number,
    G: number,
    Sq: number,
    Sk: number,
    D: number,
    E: number,
    scale: number,
    iv: Int32Array | null,
    ivStride: number,
  ): void;
  flashBwd(
    heap: ArrayBuffer,
    q: number,
    k: number,
    v: number,
    o: number,
    dO: number,
    l: number,
    dq: number,
    dk: number,
    dv: number,
    B: number,
    H: number,
    G: number,
    Sq: number,
    Sk: number,
    D: number,
    E: number,
    scale: number,
    iv: Int32Array | null,
    ivStride: number,
  ): void;
  linearScan(
    heap: ArrayBuffer,
    q: number,
    k: number,
    v: number,
    y: number,
    slices: number,
    T: number,
    D: number,
    E: number,
  ): void;
  linearScanGrad(
    heap: ArrayBuffer,
    q: number,
    k: number,
    v: number,
    dy: number,
    dq: number,
    dk: number,
    dv: number,
    slices: number,
    T: number,
    D: number,
    E: number,
  ): void;
  geluGrad(heap: ArrayBuffer, x: number, dy: number, dx: number, n: number): void;
  adam(
    heap: ArrayBuffer,
    p: number,
    m: number,
    v: number,
    g: number,
    p1: number,
    m1: number,
    v1: number,
    n: number,
    lr: number,
    b1: number,
    b2: number,
    eps: number,
    bc1: number,
    bc2: number,
    l2: number,
    wd: number,
  ): void;
  layerNorm(
    heap: ArrayBuffer,
    x: number,
    g: number,
    b: number,
    y: number,
    mean: number,
    rstd: number,
    rows: number,
    n: number,
    eps: number,
  ): void;
  layerNormGrad(
    heap: ArrayBuffer,
    x: number,
    g: number,
    dy: number,
    mean: number,
    rstd: number,
    dx: number,
    dg: number,
    db: number,
    rows: number,
    n: number,
  ): void;
  info(): { isa: string; threads: number; blas: string };
  setThreads(n: number): void;
  /** The fp32 FMA throughput of `threads` threads running the probe for `seconds` (kernels.inc fma_probe). */
  /** Greedy decoding of a ToyLM in one call (src/addon.cc ToylmGenerate; lib/backend/native/fused-kernels.ts). */
  toylmGenerate(
    heap: ArrayBuffer,
    weights: Float64Array,
    batch: number,
    promptLength: number,
    steps: number,
    vocab: number,
    dModel: number,
    layers: number,
    heads: number,
    kvHeads: number,
    hidden: number,
    positional: number,
    ropeBase: number,
    prompt: number,
    tokensOut: number,
    logitsOut: number,
  ): void;
  fmaPeak(seconds: number, threads: number): { gflops: number; threads: number; isa: string; seconds: number };
}

/** Where the built addon lives (or would). */
export function addonPath(): string {
  const env = process.env.ATTNLAB_NATIVE_ADDON;
  if (env) return resolve(env);
  return join(packageRoot(), 'lib', 'backend', 'native', 'build', 'Release', 'attnlab_native.node');
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
    const flags =
      readFileSync('/proc/cpuinfo', 'utf8')
        .match(/^flags\s*:(.*)$/m)?.[1]
        .split(/\s+/) ?? [];
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
  let path: string;
  try {
    path = addonPath();
  } catch (e) {
    loadError = `the native addon cannot be located: ${e instanceof Error ? e.message : String(e)}`;
    return undefined;
  }
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

/** The loaded addon, for the kernels: they run only after `installNativeKernels()` loaded it. */
export function requireAddon(): NativeAddon {
  const a = loadAddon();
  if (!a) throw new Error(`attnlab native kernels: ${loadError}`);
  return a;
}

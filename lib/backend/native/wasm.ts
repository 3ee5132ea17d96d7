/**
 * The slice of tfjs-backend-wasm that the native kernels use, and the helpers that hand a tensor's place on the wasm
 * heap to the addon (which reads and writes tensors there, without copying).
 */
import type * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-backend-wasm's BackendWasm that the kernels use. */
export interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object): boolean;
  incRef(dataId: object): void;
}

// tfjs passes every input a kernel declares, so they are typed as present.
export type KernelArgs = {
  inputs: Record<string, tf.TensorInfo>;
  backend: WasmBackend;
  attrs: Record<string, unknown>;
};
export type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export function offset(backend: WasmBackend, t: tf.TensorInfo): number {
  const d = backend.dataIdMap.get(t.dataId);
  if (!d) throw new Error('attnlab native: a tensor has no data on the wasm heap (was it disposed?)');
  return d.memoryOffset;
}

/**
 * The most one tensor may take on the wasm heap: wasm32 addresses 4 GiB, and the allocator's size argument is 32-bit,
 * so a larger request would wrap around (2^34 bytes asked as 0) instead of failing.
 */
export const WASM_HEAP_LIMIT = 2 ** 32;

/** The wasm heap cannot hold a kernel's output; nothing was written, every other tensor is intact. */
export class NativeOutOfMemoryError extends Error {
  constructor(
    readonly op: string,
    readonly bytes: number,
    readonly detail: string,
  ) {
    super(`${op}: out of memory: could not allocate ${bytes} bytes on the wasm heap (${detail})`);
    this.name = 'NativeOutOfMemoryError';
  }
}

/**
 * Allocate a kernel's outputs on the wasm heap, checking every allocation. tfjs-backend-wasm's allocator returns offset
 * 0 when the heap cannot grow (the 4 GiB limit, or the machine's memory), and a kernel writing there overwrites other
 * tensors; so a failed allocation disposes the outputs already made and throws a NativeOutOfMemoryError naming the op
 * and the bytes asked, before any kernel runs.
 */
export function outputs(
  backend: WasmBackend,
  op: string,
  shapes: number[][],
  dtypes?: ('float32' | 'int32')[],
): tf.TensorInfo[] {
  const made: tf.TensorInfo[] = [];
  const fail = (err: Error): never => {
    for (const t of made) backend.disposeData(t.dataId);
    throw err;
  };
  for (const [i, shape] of shapes.entries()) {
    const bytes = size(shape) * 4;
    const used = backend.wasm.HEAPU8.length;
    if (!Number.isSafeInteger(bytes) || bytes >= WASM_HEAP_LIMIT) {
      fail(new NativeOutOfMemoryError(op, bytes, `output [${shape.join(', ')}] is larger than the 4 GiB heap`));
    }
    let out: tf.TensorInfo;
    try {
      out = backend.makeOutput([...shape], dtypes?.[i] ?? 'float32');
    } catch (e) {
      // The guarded allocator (guardAllocator) throws; emscripten may also abort or throw a RangeError.
      const detail =
        e instanceof NativeOutOfMemoryError ? e.detail : `the allocator failed: ${e instanceof Error ? e.message : e}`;
      return fail(new NativeOutOfMemoryError(op, bytes, `output [${shape.join(', ')}]; ${detail}`));
    }
    made.push(out);
    if (bytes > 0 && backend.dataIdMap.get(out.dataId)?.memoryOffset === 0) {
      fail(
        new NativeOutOfMemoryError(
          op,
          bytes,
          `output [${shape.join(', ')}]; the heap has ${used} bytes and cannot grow past 4 GiB or the machine's memory`,
        ),
      );
    }
  }
  return made;
}

type Malloc = (bytes: number) => number;
let guarded: { wasm: { _malloc: Malloc }; original: Malloc; guard: Malloc } | undefined;

/**
 * Make the wasm backend's allocator throw a NativeOutOfMemoryError instead of returning 0 (and instead of taking a
 * request of 4 GiB or more modulo 2^32), for every allocation made from JavaScript while the native kernels are
 * installed: tfjs's own wasm kernels' outputs and tensor uploads too, which would otherwise write at offset 0 as well.
 * Idempotent; `unguardAllocator` puts the original back.
 */
export function guardAllocator(backend: WasmBackend | undefined): void {
  const wasm = backend?.wasm as ({ _malloc?: Malloc } & WasmBackend['wasm']) | undefined;
  if (!wasm || typeof wasm._malloc !== 'function' || guarded?.wasm === wasm) return;
  const state = { wasm: wasm as { _malloc: Malloc }, original: wasm._malloc, guard: (() => 0) as Malloc };
  state.guard = (bytes) => {
    if (!(bytes < WASM_HEAP_LIMIT)) throw new NativeOutOfMemoryError('wasm heap', bytes, 'larger than the 4 GiB heap');
    const before = state.wasm._malloc;
    const at = state.original(bytes);
    // emscripten's lazy export replaces Module._malloc with the real one on its first call: keep that one, stay in front.
    if (state.wasm._malloc !== before) {
      state.original = state.wasm._malloc;
      state.wasm._malloc = before;
    }
    if (at === 0 && bytes > 0) {
      throw new NativeOutOfMemoryError(
        'wasm heap',
        bytes,
        `the heap has ${wasm.HEAPU8.length} bytes and cannot grow past 4 GiB or the machine's memory`,
      );
    }
    return at;
  };
  wasm._malloc = state.guard;
  guarded = state;
}

/** Undo `guardAllocator` (unless something replaced the allocator since). */
export function unguardAllocator(): void {
  if (guarded && guarded.wasm._malloc === guarded.guard) guarded.wasm._malloc = guarded.original;
  guarded = undefined;
}

/** One output; see `outputs`. */
export function output(backend: WasmBackend, op: string, shape: number[]): tf.TensorInfo {
  return outputs(backend, op, [shape])[0];
}

export function heap(backend: WasmBackend): ArrayBuffer {
  return backend.wasm.HEAPU8.buffer as ArrayBuffer;
}

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

export function heap(backend: WasmBackend): ArrayBuffer {
  return backend.wasm.HEAPU8.buffer as ArrayBuffer;
}

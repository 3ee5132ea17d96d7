/**
 * Native CPU kernels: a C++ N-API addon over OpenBLAS (lib/backend/native/), registered as overrides of tfjs's `wasm`
 * backend. The addon reads and writes tensors where they live, on the wasm heap: a kernel allocates its output through
 * the wasm backend, then passes the heap's ArrayBuffer and byte offsets. No tensor data is copied.
 *
 * One job per file under native/: load.ts finds and loads the addon (and says why not), kernels.ts overrides tfjs's
 * kernels and registers every native kernel, fused-kernels.ts holds attnlab's own kernels (GELU, layer norm, Adam,
 * flash attention), fused.ts the fused math other modules call. This module is their public face.
 *
 * Set ATTNLAB_NATIVE=0 to disable; ATTNLAB_NATIVE_ADDON=/path/to/attnlab_native.node to load another build;
 * ATTNLAB_THREADS=n for the thread count (default: 2, or 1 on a 1-core machine).
 */
export { adamUpdate, gelu, layerNorm, logSoftmax, toylmGenerate } from './native/fused.js';
export {
  type AdamHyper,
  FLASH_BWD,
  FLASH_FWD,
  type FlashAttrs,
  LINEAR_SCAN,
  LINEAR_SCAN_GRAD,
  TOYLM_LAYER_WEIGHTS,
  type ToylmGenerateAttrs,
} from './native/fused-kernels.js';
export { collapseBroadcast, installNativeKernels, nativeInstalled, uninstallNativeKernels } from './native/kernels.js';
export { addonPath, loadAddon, type NativeAddon, nativeAvailable, nativeInfo } from './native/load.js';
export { NativeOutOfMemoryError, WASM_HEAP_LIMIT } from './native/wasm.js';

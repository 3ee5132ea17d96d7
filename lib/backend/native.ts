/**
 * Native CPU kernels (C++ N-API addon over OpenBLAS) registered as overrides of the wasm backend.
 * Until the addon is built this module reports why it is unavailable.
 */
export async function nativeAvailable(): Promise<string | null> {
  return 'the native addon is not part of this build';
}

export async function installNativeKernels(): Promise<string[]> {
  return [];
}

export function uninstallNativeKernels(): void {}

/**
 * Choosing and reporting the tensor backend.
 *
 * Order (unless ATTNLAB_BACKEND names one): `tensorflow` (tfjs-node-gpu / tfjs-node, the GPU path), `wasm-native`
 * (the wasm backend with native C++ kernel overrides), `wasm`, `cpu`. `ready()` sets the first that loads and reports
 * why each of the others was not chosen, one reason each.
 */
import * as tf from '@tensorflow/tfjs';
import { uninstallNativeKernels } from './native.js';

export type BackendName = 'tensorflow' | 'wasm-native' | 'wasm' | 'cpu';
export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow', 'wasm-native', 'wasm', 'cpu'];

export interface BackendReport {
  /** The backend now active. */
  chosen: BackendName;
  /** The tfjs backend name underneath (`wasm-native` runs on tfjs's `wasm`). */
  tfjsBackend: string;
  /** How the choice was made. */
  how: 'auto' | 'ATTNLAB_BACKEND' | 'setBackend';
  /** For every backend not chosen: one reason. */
  notChosen: Partial<Record<BackendName, string>>;
  /** Kernels replaced by native code (empty unless `wasm-native`). */
  nativeKernels: string[];
}

/**
 * A backend candidate. `load()` returns null when the backend is ready to be set, else the reason it cannot be used.
 * Keeping the reason as a string (not an exception) lets `ready()` list every reason when nothing fits.
 */
export interface BackendCandidate {
  name: BackendName;
  tfjsBackend: string;
  load(): Promise<string | null>;
  /** Called after `tf.setBackend` succeeded; returns the native kernels installed, if any. */
  activate?(): Promise<string[]>;
  /** Called when another backend is chosen after this one was active. */
  deactivate?(): void;
}

const candidates = new Map<BackendName, BackendCandidate>();

export function registerCandidate(c: BackendCandidate): void {
  candidates.set(c.name, c);
}

registerCandidate({
  name: 'tensorflow',
  tfjsBackend: 'tensorflow',
  async load() {
    const reasons: string[] = [];
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      try {
        await import(pkg);
      } catch (e) {
        reasons.push(`${pkg} ${describeImportError(e)}`);
        continue;
      }
      // danfojs-node's override maps @tensorflow/tfjs-node to plain tfjs, which imports fine but registers nothing.
      if (tf.findBackendFactory('tensorflow')) return null;
      reasons.push(`${pkg} loaded but registered no 'tensorflow' backend`);
    }
    return reasons.join('; ');
  },
});

registerCandidate({
  name: 'wasm-native',
  tfjsBackend: 'wasm',
  async load() {
    const { nativeAvailable } = await import('./native.js');
    return nativeAvailable();
  },
  async activate() {
    const { installNativeKernels } = await import('./native.js');
    return installNativeKernels();
  },
  deactivate() {
    uninstallNativeKernels(); // synchronous: the next kernel after a switch must already be the original
  },
});

registerCandidate({
  name: 'wasm',
  tfjsBackend: 'wasm',
  async load() {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
      return null;
    } catch (e) {
      return `@tensorflow/tfjs-backend-wasm ${describeImportError(e)}`;
    }
  },
});

registerCandidate({
  name: 'cpu',
  tfjsBackend: 'cpu',
  async load() {
    return null;
  },
});

function describeImportError(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/Cannot find (package|module)/.test(msg)) return 'is not installed';
  return `failed to load: ${msg.split('\n')[0]}`;
}

let current: BackendReport | undefined;
let pending: Promise<BackendReport> | undefined;
let active: BackendCandidate | undefined;

function isBackendName(s: string): s is BackendName {
  return (BACKEND_ORDER as readonly string[]).includes(s);
}

async function trySet(c: BackendCandidate): Promise<string | null> {
  const reason = await c.load();
  if (reason) return reason;
  let ok = false;
  try {
    ok = await tf.setBackend(c.tfjsBackend);
    await tf.ready();
  } catch (e) {
    return `tf.setBackend('${c.tfjsBackend}') threw: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (ok && c.tfjsBackend === 'cpu') {
    // tfjs's cpu backend greets its first write with advice to install tfjs-node, which cannot install here; the
    // backend report already says why each faster backend was not chosen.
    (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  }
  return ok ? null : `tf.setBackend('${c.tfjsBackend}') failed to initialise`;
}

async function choose(order: readonly BackendName[], how: BackendReport['how']): Promise<BackendReport> {
  const notChosen: Partial<Record<BackendName, string>> = {};
  for (const name of order) {
    const c = candidates.get(name)!;
    const reason = await trySet(c);
    if (reason) {
      notChosen[name] = reason;
      continue;
    }
    if (active && active !== c) active.deactivate?.();
    active = c;
    const nativeKernels = c.activate ? await c.activate() : [];
    for (const other of BACKEND_ORDER) {
      if (other !== name && !(other in notChosen)) notChosen[other] = `${name} comes first`;
    }
    return { chosen: name, tfjsBackend: c.tfjsBackend, how, notChosen, nativeKernels };
  }
  const lines = Object.entries(notChosen).map(([n, r]) => `  ${n}: ${r}`);
  throw new Error(`attnlab backend: no backend could be set up:\n${lines.join('\n')}`);
}

/**
 * Set up the best available backend (once) and report the choice. Every public op calls this implicitly only through
 * tfjs's default; call it first in notebooks and scripts.
 */
export function ready(): Promise<BackendReport> {
  if (current) return Promise.resolve(current);
  if (!pending) {
    const env = process.env.ATTNLAB_BACKEND?.trim();
    let run: Promise<BackendReport>;
    if (env) {
      if (!isBackendName(env)) {
        run = Promise.reject(
          new Error(`ATTNLAB_BACKEND='${env}' is not a backend; expected one of ${BACKEND_ORDER.join(', ')}`),
        );
      } else {
        run = choose([env], 'ATTNLAB_BACKEND').catch((e: Error) => {
          throw new Error(`ATTNLAB_BACKEND=${env} cannot be used: ${e.message.split('\n').slice(1).join(' ').trim()}`);
        });
      }
    } else {
      run = choose(BACKEND_ORDER, 'auto');
    }
    pending = run.then(
      (r) => (current = r),
      (e) => {
        pending = undefined;
        throw e;
      },
    );
  }
  return pending;
}

/** Switch to a named backend explicitly (tests run the same suite on several). */
export async function setBackend(name: BackendName): Promise<BackendReport> {
  if (!isBackendName(name))
    throw new Error(`setBackend: name must be one of ${BACKEND_ORDER.join(', ')}, got '${name}'`);
  await pending?.catch(() => undefined);
  const r = await choose([name], 'setBackend').catch((e: Error) => {
    throw new Error(`setBackend('${name}') failed: ${e.message.split('\n').slice(1).join(' ').trim()}`);
  });
  current = r;
  pending = Promise.resolve(r);
  return r;
}

/** The last report from `ready()`/`setBackend()`, or undefined before either ran. */
export function report(): BackendReport | undefined {
  return current;
}

/** The attnlab backend in use; 'cpu' before `ready()` (tfjs's own default in Node). */
export function activeName(): BackendName {
  if (current && tf.getBackend() === current.tfjsBackend) return current.chosen;
  const b = tf.getBackend();
  return b === 'tensorflow' ? 'tensorflow' : b === 'wasm' ? 'wasm' : 'cpu';
}

export { tf };

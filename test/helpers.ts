/** Shared test helpers: one tolerance rule for every comparison, the backend matrix, leak checks. */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { nativeAvailable } from '../lib/backend/native.js';

/** Backends every numerical test runs on: cpu and wasm, and wasm-native wherever the addon is built (CI builds it). */
export const BACKENDS: backend.BackendName[] = ['cpu', 'wasm'];
if ((await nativeAvailable()) === null) BACKENDS.push('wasm-native');

export async function useBackend(name: backend.BackendName): Promise<void> {
  await backend.setBackend(name);
}

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/** Max |a-b| / (atol + rtol*|b|) must be <= 1: the one closeness rule the suite uses. */
export function relErr(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance = {}): number {
  const rtol = tol.rtol ?? 1e-4;
  const atol = tol.atol ?? 1e-5;
  expect(actual.length, 'lengths differ').toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const b = expected[i];
    if (Number.isNaN(a) !== Number.isNaN(b)) return Infinity;
    const e = Math.abs(a - b) / (atol + rtol * Math.abs(b));
    if (e > worst) worst = e;
  }
  return worst;
}

export function expectClose(
  actual: ArrayLike<number> | tf.Tensor,
  expected: ArrayLike<number> | tf.Tensor,
  tol: Tolerance = {},
  label = '',
): void {
  const a = actual instanceof tf.Tensor ? actual.dataSync() : actual;
  const b = expected instanceof tf.Tensor ? expected.dataSync() : expected;
  const e = relErr(a, b, tol);
  expect(
    e,
    `${label}: scaled error ${e.toFixed(3)} > 1 (rtol ${tol.rtol ?? 1e-4}, atol ${tol.atol ?? 1e-5})`,
  ).toBeLessThanOrEqual(1);
}

/** Float64 central-difference gradient of f at x (x is modified and restored). */
export function numericGrad(f: () => number, x: Float64Array | number[], h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const old = x[i];
    x[i] = old + h;
    const fp = f();
    x[i] = old - h;
    const fm = f();
    x[i] = old;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Seeded random array for tests. */
export function randomArray(n: number, seed: number, scale = 1): Float64Array {
  let s = seed >>> 0 || 1;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (((s >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** A float32 tensor of shape [a, b, c, d] filled by {@link randomArray}. */
export function randomTensor4d(shape: readonly number[], seed: number, scale = 1): tf.Tensor4D {
  return tf.tensor4d(
    Float32Array.from(
      randomArray(
        shape.reduce((a, b) => a * b, 1),
        seed,
        scale,
      ),
    ),
    shape as [number, number, number, number],
  );
}

/** Asserts that `fn` leaves tf.memory().numTensors unchanged after a warm-up call. */
export function expectNoLeak(fn: () => void, repeats = 3): void {
  fn();
  const before = tf.memory().numTensors;
  for (let i = 0; i < repeats; i++) fn();
  expect(tf.memory().numTensors, 'tensor count grew: a leak').toBe(before);
}

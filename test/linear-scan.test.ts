/**
 * The causal linear-attention scan (`causalLinearScan`): every path against the float64 loop reference, outputs and
 * gradients, at sizes that cross the 64-row chunks (1, 7, 64, 65, 130) and with D != E; the analytic float64 gradients
 * the paths are held to are themselves checked against finite differences.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  causalLinearScan,
  causalLinearScanReference,
  type LinearScanPath,
  linearScanPath,
} from '../lib/attention/index.js';
import * as backend from '../lib/backend/index.js';
import { nativeAvailable } from '../lib/backend/native.js';
import { expectClose, expectNoLeak, numericGrad, randomArray } from './helpers.js';

const unavailable = await nativeAvailable();

interface Case {
  b: number;
  h: number;
  t: number;
  d: number;
  e: number;
}
const CASES: Case[] = [
  { b: 1, h: 1, t: 1, d: 1, e: 1 },
  { b: 2, h: 1, t: 7, d: 3, e: 5 },
  { b: 1, h: 3, t: 64, d: 8, e: 8 },
  { b: 2, h: 2, t: 65, d: 5, e: 17 },
  { b: 1, h: 2, t: 130, d: 16, e: 33 },
];
const name = (c: Case) => `[${c.b}, ${c.h}, ${c.t}] d ${c.d} e ${c.e}`;

function data(c: Case, seed: number) {
  const slices = c.b * c.h;
  return {
    q: randomArray(slices * c.t * c.d, seed + 1, 0.5),
    k: randomArray(slices * c.t * c.d, seed + 2, 0.5),
    v: randomArray(slices * c.t * c.e, seed + 3),
    r: randomArray(slices * c.t * c.e, seed + 4),
  };
}

/** Float64 gradients of sum(scan(q, k, v) ⊙ r): dq_t = Σ_{i<=t} (r_t·v_i) k_i, dk_i = Σ_{t>=i} (r_t·v_i) q_t,
 * dv_i = Σ_{t>=i} (q_t·k_i) r_t. */
function gradReference(c: Case, x: ReturnType<typeof data>): Float64Array[] {
  const { t, d, e } = c;
  const slices = c.b * c.h;
  const dq = new Float64Array(x.q.length);
  const dk = new Float64Array(x.k.length);
  const dv = new Float64Array(x.v.length);
  const dot = (a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, n: number) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += a[ao + i] * b[bo + i];
    return s;
  };
  for (let s = 0; s < slices; s++)
    for (let ti = 0; ti < t; ti++)
      for (let i = 0; i <= ti; i++) {
        const qo = (s * t + ti) * d;
        const ko = (s * t + i) * d;
        const ro = (s * t + ti) * e;
        const vo = (s * t + i) * e;
        const rv = dot(x.r, ro, x.v, vo, e);
        const qk = dot(x.q, qo, x.k, ko, d);
        for (let j = 0; j < d; j++) {
          dq[qo + j] += rv * x.k[ko + j];
          dk[ko + j] += rv * x.q[qo + j];
        }
        for (let j = 0; j < e; j++) dv[vo + j] += qk * x.r[ro + j];
      }
  return [dq, dk, dv];
}

/** Output and gradients of sum(scan(q, k, v) ⊙ r) on the active backend. */
function run(c: Case, x: ReturnType<typeof data>, path: LinearScanPath): Float32Array[] {
  return tf.tidy(() => {
    const sq = [c.b, c.h, c.t, c.d];
    const sv = [c.b, c.h, c.t, c.e];
    const r = tf.tensor(Float32Array.from(x.r), sv);
    const inputs = [
      tf.tensor(Float32Array.from(x.q), sq),
      tf.tensor(Float32Array.from(x.k), sq),
      tf.tensor(Float32Array.from(x.v), sv),
    ];
    const f = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
      causalLinearScan(q, k, v, { path }).mul(r).sum() as tf.Scalar;
    const y = causalLinearScan(inputs[0], inputs[1], inputs[2], { path });
    return [y, ...tf.grads(f)(inputs)].map((a) => Float32Array.from(a.dataSync()));
  });
}

function check(c: Case, path: LinearScanPath): void {
  const x = data(c, 31);
  const got = run(c, x, path);
  const want = [
    causalLinearScanReference(x.q, x.k, x.v, { slices: c.b * c.h, t: c.t, d: c.d, e: c.e }),
    ...gradReference(c, x),
  ];
  ['y', 'dq', 'dk', 'dv'].forEach((n, i) =>
    expectClose(got[i], want[i], { rtol: 1e-4, atol: 1e-4 }, `${path} ${name(c)} ${n}`),
  );
}

it('the analytic float64 gradients equal finite differences', () => {
  const c: Case = { b: 1, h: 2, t: 5, d: 3, e: 2 };
  const x = data(c, 7);
  const shape = { slices: 2, t: 5, d: 3, e: 2 };
  const loss = () => causalLinearScanReference(x.q, x.k, x.v, shape).reduce((s, y, i) => s + y * x.r[i], 0);
  const [dq, dk, dv] = gradReference(c, x);
  expectClose(dq, numericGrad(loss, x.q), { rtol: 1e-6, atol: 1e-7 }, 'dq');
  expectClose(dk, numericGrad(loss, x.k), { rtol: 1e-6, atol: 1e-7 }, 'dk');
  expectClose(dv, numericGrad(loss, x.v), { rtol: 1e-6, atol: 1e-7 }, 'dv');
});

describe('composed paths on cpu', () => {
  for (const path of ['quadratic', 'chunked'] as const)
    for (const c of CASES)
      it(`${path} ${name(c)}: output and gradients equal the float64 reference`, async () => {
        await backend.setBackend('cpu');
        check(c, path);
      });

  it("'auto' picks the quadratic form for short sequences and the chunked scan for long ones off wasm-native", async () => {
    await backend.setBackend('cpu');
    expect(linearScanPath(tf.zeros([1, 256, 2]))).toBe('quadratic');
    expect(linearScanPath(tf.zeros([1, 257, 2]))).toBe('chunked');
  });

  it('names the argument, the expected and the actual value on bad input, and leaks nothing', async () => {
    await backend.setBackend('cpu');
    const q = tf.zeros([1, 4, 3]);
    expect(() => causalLinearScan(q, tf.zeros([1, 4, 2]), tf.zeros([1, 4, 2]))).toThrow(
      "causalLinearScan: k must have q's shape [1,4,3], got [1,4,2]",
    );
    expect(() => causalLinearScan(q, q, tf.zeros([1, 5, 2]))).toThrow('causalLinearScan: v must be [1, 4, E] (q');
    expect(() => causalLinearScan(q, q, tf.zeros([1, 4, 2], 'int32'))).toThrow(
      'causalLinearScan: v must be float32, got int32',
    );
    expect(() => causalLinearScan(q, q, q, { path: 'native' })).toThrow("path 'native' needs the wasm-native backend");
    expect(() => causalLinearScan(q, q, q, { path: 'fast' as LinearScanPath })).toThrow(
      'causalLinearScan: path must be one of auto, native, chunked, quadratic, got fast',
    );
    for (const path of ['quadratic', 'chunked'] as const)
      expectNoLeak(() => {
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => causalLinearScan(a, b, c, { path }).sum());
        tf.dispose(tf.tidy(() => g([tf.ones([2, 70, 3]), tf.ones([2, 70, 3]), tf.ones([2, 70, 4])])));
      });
  });
});

describe.skipIf(unavailable !== null)(`native kernel${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  afterAll(async () => {
    await backend.setBackend('cpu');
  });

  for (const c of CASES)
    it(`${name(c)}: output and gradients equal the float64 reference`, async () => {
      await backend.setBackend('wasm-native');
      expect(linearScanPath(tf.zeros([1, 1, 1]))).toBe('native');
      check(c, 'native');
    });

  it('equals the chunked composed path on a long sequence (2000 rows), and leaks nothing', async () => {
    await backend.setBackend('wasm-native');
    const c: Case = { b: 1, h: 2, t: 2000, d: 8, e: 9 };
    const x = data(c, 3);
    const native = run(c, x, 'native');
    const composed = run(c, x, 'chunked');
    ['y', 'dq', 'dk', 'dv'].forEach((n, i) =>
      expectClose(native[i], composed[i], { rtol: 1e-3, atol: 1e-3 }, `t 2000 ${n}`),
    );
    expectNoLeak(() => {
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor, v: tf.Tensor) => causalLinearScan(a, b, v).sum());
      tf.dispose(tf.tidy(() => g([tf.ones([2, 70, 3]), tf.ones([2, 70, 3]), tf.ones([2, 70, 4])])));
    });
  });
});

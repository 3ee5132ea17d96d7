/** Flowformer (Wu et al. 2022): Flow-Attention's parallel and recurrent forms against the float64 reference. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  disposeFlowState,
  type FlowAttentionOptions,
  type FlowDims,
  flowAttention,
  flowAttentionFlows,
  flowAttentionReference,
  flowInitState,
  flowStateBytes,
  flowStep,
} from '../lib/papers/recurrent/flowformer/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

function inputs(dims: FlowDims, seed: number, scale = 1.5) {
  const { b, h, l, s, d, e } = dims;
  const q = randomArray(b * h * l * d, seed, scale);
  const k = randomArray(b * h * s * d, seed + 1, scale);
  const v = randomArray(b * h * s * e, seed + 2, 1);
  return { q, k, v };
}

function tensors(dims: FlowDims, x: ReturnType<typeof inputs>) {
  const { b, h, l, s, d, e } = dims;
  return {
    q: tf.tensor4d(Float32Array.from(x.q), [b, h, l, d]),
    k: tf.tensor4d(Float32Array.from(x.k), [b, h, s, d]),
    v: tf.tensor4d(Float32Array.from(x.v), [b, h, s, e]),
  };
}

const CAUSAL: FlowDims = { b: 2, h: 2, l: 7, s: 7, d: 3, e: 4 };
const CROSS: FlowDims = { b: 1, h: 2, l: 5, s: 8, d: 3, e: 2 };

describe.each(BACKENDS)('flowAttention on %s', (name) => {
  it('equals the float64 reference (non-causal with l != s, causal with both aggregations)', async () => {
    await useBackend(name);
    const cases: [FlowDims, FlowAttentionOptions][] = [
      [CROSS, {}],
      [CAUSAL, { causal: true, aggregation: 'cumsum' }],
      [CAUSAL, { causal: true, aggregation: 'quadratic' }],
      [CAUSAL, { causal: true, clamp: 5 }],
    ];
    for (const [dims, opts] of cases) {
      const x = inputs(dims, 11);
      const t = tensors(dims, x);
      const out = flowAttention(t.q, t.k, t.v, opts);
      expect(out.shape).toEqual([dims.b, dims.h, dims.l, dims.e]);
      expectClose(
        out,
        flowAttentionReference(x.q, x.k, x.v, dims, opts),
        { rtol: 1e-4, atol: 1e-5 },
        JSON.stringify(opts),
      );
      tf.dispose([out, t.q, t.k, t.v]);
    }
  });

  it('is causal: changing a later token leaves every earlier output as it was', async () => {
    await useBackend(name);
    const x = inputs(CAUSAL, 3);
    const t = tensors(CAUSAL, x);
    const a = flowAttention(t.q, t.k, t.v, { causal: true });
    const cut = 4;
    const bump = (arr: Float64Array, width: number) => {
      const c = arr.slice();
      for (let bh = 0; bh < CAUSAL.b * CAUSAL.h; bh++)
        for (let i = cut; i < CAUSAL.s; i++) for (let w = 0; w < width; w++) c[(bh * CAUSAL.s + i) * width + w] += 2;
      return c;
    };
    const y = { q: bump(x.q, CAUSAL.d), k: bump(x.k, CAUSAL.d), v: bump(x.v, CAUSAL.e) };
    const u = tensors(CAUSAL, y);
    const b = flowAttention(u.q, u.k, u.v, { causal: true });
    const [A, B] = [a.arraySync(), b.arraySync()];
    let before = 0;
    let after = 0;
    for (let r = 0; r < CAUSAL.b; r++)
      for (let hh = 0; hh < CAUSAL.h; hh++)
        for (let i = 0; i < CAUSAL.s; i++)
          for (let w = 0; w < CAUSAL.e; w++) {
            const diff = Math.abs(A[r][hh][i][w] - B[r][hh][i][w]);
            if (i < cut) before = Math.max(before, diff);
            else after = Math.max(after, diff);
          }
    expect(before).toBe(0);
    expect(after).toBeGreaterThan(1e-3);
    tf.dispose([a, b, t.q, t.k, t.v, u.q, u.k, u.v]);
  });

  it('the recurrent step equals the parallel form token by token, with a state whose size does not grow', async () => {
    await useBackend(name);
    const dims = CAUSAL;
    const x = inputs(dims, 5);
    const t = tensors(dims, x);
    const full = flowAttention(t.q, t.k, t.v, { causal: true });
    let state = flowInitState(dims.b, dims.h, dims.d, dims.e);
    const bytes0 = flowStateBytes(state);
    expect(bytes0).toBe(4 * (dims.b * dims.h * (4 * dims.d + 1 + dims.d * dims.e)));
    const outs: tf.Tensor[] = [];
    for (let i = 0; i < dims.s; i++) {
      const at = (z: tf.Tensor4D) =>
        tf.tidy(() => z.slice([0, 0, i, 0], [dims.b, dims.h, 1, z.shape[3]]).squeeze([2]) as tf.Tensor3D);
      const [qi, ki, vi] = [at(t.q), at(t.k), at(t.v)];
      const r = flowStep(state, qi, ki, vi);
      disposeFlowState(state);
      state = r.state;
      expect(flowStateBytes(state)).toBe(bytes0);
      outs.push(r.out);
      tf.dispose([qi, ki, vi]);
    }
    const stepped = tf.stack(outs, 2);
    expectClose(stepped, full, { rtol: 1e-4, atol: 1e-5 }, 'step vs parallel');
    tf.dispose([stepped, full, t.q, t.k, t.v, ...outs]);
    disposeFlowState(state);
  });

  it('flows: competition has mean 1 over the sources (non-causal), allocation lies in (0, 1)', async () => {
    await useBackend(name);
    const x = inputs(CROSS, 9);
    const t = tensors(CROSS, x);
    const f = flowAttentionFlows(t.q, t.k);
    expectClose(f.competition.mean(2), tf.ones([CROSS.b, CROSS.h]), { atol: 1e-5 }, 'competition mean');
    const a = f.allocation.dataSync();
    expect(Math.min(...a)).toBeGreaterThan(0);
    expect(Math.max(...a)).toBeLessThan(1);
    expect(f.incoming.shape).toEqual([CROSS.b, CROSS.h, CROSS.l]);
    expect(f.outgoing.shape).toEqual([CROSS.b, CROSS.h, CROSS.s]);
    tf.dispose([...Object.values(f), t.q, t.k, t.v]);
  });

  it('leaks no tensors (parallel forms, flows, step)', async () => {
    await useBackend(name);
    const x = inputs(CAUSAL, 1);
    const t = tensors(CAUSAL, x);
    expectNoLeak(() => {
      tf.dispose(flowAttention(t.q, t.k, t.v, { causal: true }));
      tf.dispose(flowAttention(t.q, t.k, t.v, { causal: true, aggregation: 'quadratic' }));
      tf.dispose(flowAttention(t.q, t.k, t.v));
      tf.dispose(Object.values(flowAttentionFlows(t.q, t.k, { causal: true })));
      const st = flowInitState(CAUSAL.b, CAUSAL.h, CAUSAL.d, CAUSAL.e);
      const at = (z: tf.Tensor4D) =>
        tf.tidy(() => z.slice([0, 0, 0, 0], [CAUSAL.b, CAUSAL.h, 1, z.shape[3]]).squeeze([2]));
      const [qi, ki, vi] = [at(t.q), at(t.k), at(t.v)] as tf.Tensor3D[];
      const r = flowStep(st, qi, ki, vi);
      disposeFlowState(st);
      disposeFlowState(r.state);
      tf.dispose([r.out, qi, ki, vi]);
    });
    tf.dispose([t.q, t.k, t.v]);
  });
});

describe('flowAttention gradients', () => {
  it('match float64 central differences of the reference for q, k and v (causal and not)', async () => {
    await useBackend('cpu');
    const cases: [FlowDims, FlowAttentionOptions][] = [
      [{ b: 1, h: 1, l: 5, s: 5, d: 2, e: 2 }, { causal: true }],
      [
        { b: 1, h: 1, l: 5, s: 5, d: 2, e: 2 },
        { causal: true, aggregation: 'quadratic' },
      ],
      [{ b: 1, h: 1, l: 3, s: 4, d: 2, e: 2 }, {}],
    ];
    for (const [dims, opts] of cases) {
      const x = inputs(dims, 21, 1);
      const w = randomArray(dims.b * dims.h * dims.l * dims.e, 99, 1);
      const t = tensors(dims, x);
      const wt = tf.tensor4d(Float32Array.from(w), [dims.b, dims.h, dims.l, dims.e]);
      const grads = tf.grads((q, k, v) =>
        flowAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, opts)
          .mul(wt)
          .sum(),
      )([t.q, t.k, t.v]);
      const loss = () => {
        const o = flowAttentionReference(x.q, x.k, x.v, dims, opts);
        let acc = 0;
        for (let i = 0; i < o.length; i++) acc += o[i] * w[i];
        return acc;
      };
      const tag = JSON.stringify(opts);
      expectClose(grads[0], numericGrad(loss, x.q), { rtol: 1e-3, atol: 1e-4 }, `${tag} dq`);
      expectClose(grads[1], numericGrad(loss, x.k), { rtol: 1e-3, atol: 1e-4 }, `${tag} dk`);
      expectClose(grads[2], numericGrad(loss, x.v), { rtol: 1e-3, atol: 1e-4 }, `${tag} dv`);
      tf.dispose([...grads, t.q, t.k, t.v, wt]);
    }
  });
});

describe('flowAttention arguments', () => {
  it('errors name the function, the argument, the expected and the actual value', async () => {
    await useBackend('cpu');
    const q = tf.zeros([1, 1, 3, 2]) as tf.Tensor4D;
    const k = tf.zeros([1, 1, 4, 2]) as tf.Tensor4D;
    const v = tf.zeros([1, 1, 4, 2]) as tf.Tensor4D;
    const bad = tf.zeros([1, 1, 4, 3]) as tf.Tensor4D;
    expect(() => flowAttention(q, k, v, { causal: true })).toThrow(
      /flowAttention: causal .* q \[1,1,3,2\] and k \[1,1,4,2\]/,
    );
    expect(() => flowAttention(q, bad, v)).toThrow(/flowAttention: k must have shape \[1, 1, s, 2\].*got \[1,1,4,3\]/);
    expect(() => flowAttention(q, k, tf.zeros([1, 1, 3, 2]) as tf.Tensor4D)).toThrow(
      /flowAttention: v must have shape/,
    );
    expect(() => flowAttention(q, k, v, { clamp: 0 })).toThrow(
      /flowAttention: options.clamp must be a number > 0, got 0/,
    );
    expect(() => flowAttention(q, k, v, { aggregation: 'x' as 'cumsum' })).toThrow(/options.aggregation/);
    const st = flowInitState(1, 1, 2, 2);
    expect(() =>
      flowStep(
        st,
        tf.zeros([1, 1, 3]) as tf.Tensor3D,
        tf.zeros([1, 1, 2]) as tf.Tensor3D,
        tf.zeros([1, 1, 2]) as tf.Tensor3D,
      ),
    ).toThrow(/flowStep: q must have shape \[1,1,2\] to match the state, got \[1,1,3\]/);
    expect(() => flowInitState(1, 0, 2, 2)).toThrow(/flowInitState: h must be an integer > 0, got 0/);
    expect(() => flowAttentionReference([1], [1], [1], { b: 1, h: 1, l: 2, s: 1, d: 1, e: 1 })).toThrow(
      /flowAttentionReference: q has 1 values, expected b·h·l·d = 2/,
    );
    disposeFlowState(st);
    tf.dispose([q, k, v, bad]);
  });
});

/** Miras (Behrouz et al. 2025): the chunked memory against its recurrent form and the float64 reference, gradients, special cases, state bytes. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  type MemorySpec,
  mirasMemory,
  mirasRecurrent,
  mirasReference,
  type SpecName,
  spec,
  stateBytes,
} from '../lib/papers/recurrent/miras/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const b = 2;
const T = 11;
const dk = 3;
const dv = 4;
const dims = { b, T, dk, dv };
const q = Array.from(randomArray(b * T * dk, 1, 0.8));
const k = Array.from(randomArray(b * T * dk, 2, 0.8));
const v = Array.from(randomArray(b * T * dv, 3, 0.8));
const lr = Array.from(randomArray(b * T, 4, 0.3), (x) => 0.5 + x);
const decay = Array.from(randomArray(b * T, 5, 0.05), (x) => 0.1 + x);
const momentum = Array.from(randomArray(b * T, 6, 0.2), (x) => 0.6 + x);
const NAMES: SpecName[] = ['linearAttention', 'deltaNet', 'titans', 'moneta', 'yaad', 'memora'];

const tensors = () => ({
  Q: tf.tensor3d(q, [b, T, dk]),
  K: tf.tensor3d(k, [b, T, dk]),
  V: tf.tensor3d(v, [b, T, dv]),
  gates: { lr: tf.tensor2d(lr, [b, T]), decay: tf.tensor2d(decay, [b, T]), momentum: tf.tensor2d(momentum, [b, T]) },
});

for (const backendName of BACKENDS) {
  describe(`miras memory on ${backendName}`, () => {
    for (const name of NAMES) {
      for (const chunk of [1, 4]) {
        it(`${name}, chunk ${chunk}: parallel = recurrent = float64 reference`, async () => {
          await useBackend(backendName);
          const s = spec(name, { chunk });
          const ref = mirasReference(q, k, v, dims, { lr, decay, momentum }, s);
          const { Q, K, V, gates } = tensors();
          const par = mirasMemory(Q, K, V, gates, s);
          const rec = mirasRecurrent(Q, K, V, gates, s);
          expectClose(par.y, ref.y, { rtol: 1e-4, atol: 1e-5 }, `${name} parallel`);
          expectClose(rec.y, ref.y, { rtol: 1e-4, atol: 1e-5 }, `${name} recurrent`);
          expectClose(par.state.w, ref.w, { rtol: 1e-4, atol: 1e-5 }, `${name} final memory`);
          // State: W, plus S with momentum, plus the chunk's starting memory while a chunk is open.
          const mat = b * dk * dv * 4;
          expect(rec.maxStateBytes).toBe(mat * (1 + (s.momentum ? 1 : 0) + (chunk > 1 ? 1 : 0)));
          expect(stateBytes(par.state)).toBe(mat * (1 + (s.momentum ? 1 : 0)));
          tf.dispose([Q, K, V, gates.lr, gates.decay, gates.momentum, par.y, rec.y, par.state.w, rec.state.w]);
          tf.dispose([par.state.s, rec.state.s, rec.state.w0].filter((x): x is tf.Tensor3D => x !== null));
        });
      }
    }

    for (const name of ['titans', 'moneta', 'yaad', 'memora'] as SpecName[]) {
      it(`${name}: gradients (q, k, v, every gate) match the float64 reference's`, async () => {
        await useBackend(backendName);
        const s = spec(name, { chunk: 4 });
        const w = randomArray(b * T * dv, 9);
        const loss64 = (qq: ArrayLike<number>, kk: ArrayLike<number>, vv: ArrayLike<number>, g: typeof gates64) =>
          mirasReference(qq, kk, vv, dims, g, s).y.reduce((a, x, i) => a + x * w[i], 0);
        const gates64 = {
          lr: Float64Array.from(lr),
          decay: Float64Array.from(decay),
          momentum: Float64Array.from(momentum),
        };
        const args = [Float64Array.from(q), Float64Array.from(k), Float64Array.from(v)];
        const { Q, K, V, gates } = tensors();
        const W = tf.tensor3d(Array.from(w), [b, T, dv]);
        // Without momentum the η gate is unused: its gradient is left out.
        const f = (a: tf.Tensor, bb: tf.Tensor, c: tf.Tensor, g1: tf.Tensor, g2: tf.Tensor, g3?: tf.Tensor) =>
          tf.sum(tf.mul(mirasMemory(a, bb, c, { lr: g1, decay: g2, momentum: g3 }, s).y, W));
        const inputs = [Q, K, V, gates.lr, gates.decay, ...(s.momentum ? [gates.momentum] : [])];
        const grads = tf.grads(f as (...x: tf.Tensor[]) => tf.Tensor)(inputs);
        const numeric = [
          ...args.map((x) => numericGrad(() => loss64(args[0], args[1], args[2], gates64), x)),
          numericGrad(() => loss64(args[0], args[1], args[2], gates64), gates64.lr),
          numericGrad(() => loss64(args[0], args[1], args[2], gates64), gates64.decay),
          numericGrad(() => loss64(args[0], args[1], args[2], gates64), gates64.momentum),
        ];
        expect(grads.length).toBe(s.momentum ? 6 : 5);
        grads.forEach((grad, i) => {
          const label = ['q', 'k', 'v', 'lr', 'decay', 'momentum'][i];
          expectClose(grad, numeric[i], { rtol: 2e-3, atol: 2e-3 }, `${name} d/d${label}`);
        });
        tf.dispose([Q, K, V, W, gates.lr, gates.decay, gates.momentum, ...grads]);
      });
    }

    it('special cases: dot bias + no retention + lr 1 = linear attention; l2 + GD chunk 1 = DeltaNet', async () => {
      await useBackend(backendName);
      // Linear attention: y_t = Σ_{i<=t} (q_t·k_i) v_i.
      const lin = new Float64Array(b * T * dv);
      for (let n = 0; n < b; n++)
        for (let t = 0; t < T; t++)
          for (let i = 0; i <= t; i++) {
            let d = 0;
            for (let r = 0; r < dk; r++) d += q[(n * T + t) * dk + r] * k[(n * T + i) * dk + r];
            for (let c = 0; c < dv; c++) lin[(n * T + t) * dv + c] += d * v[(n * T + i) * dv + c];
          }
      const { Q, K, V } = tensors();
      const la = mirasMemory(Q, K, V, { lr: 1 }, spec('linearAttention', { chunk: 4 }));
      expectClose(la.y, lin, {}, 'linear attention (chunk 4)');
      // DeltaNet: W_t = W_{t-1} - β k_tᵀ(k_t W_{t-1} - v_t), y_t = q_t W_t.
      const beta = 0.7;
      const delta = new Float64Array(b * T * dv);
      for (let n = 0; n < b; n++) {
        const W = new Float64Array(dk * dv);
        for (let t = 0; t < T; t++) {
          const i = n * T + t;
          for (let c = 0; c < dv; c++) {
            let pred = 0;
            for (let r = 0; r < dk; r++) pred += k[i * dk + r] * W[r * dv + c];
            const err = pred - v[i * dv + c];
            for (let r = 0; r < dk; r++) W[r * dv + c] -= beta * k[i * dk + r] * err;
          }
          for (let c = 0; c < dv; c++) for (let r = 0; r < dk; r++) delta[i * dv + c] += q[i * dk + r] * W[r * dv + c];
        }
      }
      const dn = mirasMemory(Q, K, V, { lr: beta }, spec('deltaNet'));
      expectClose(dn.y, delta, {}, 'DeltaNet');
      // Titans with momentum 0 and decay 0 is DeltaNet too (at chunk 1).
      const ti = mirasMemory(Q, K, V, { lr: beta, decay: 0, momentum: 0 }, spec('titans', { chunk: 1 }));
      expectClose(ti.y, delta, {}, 'Titans without momentum or forgetting');
      tf.dispose([Q, K, V, la.y, la.state.w, dn.y, dn.state.w, ti.y, ti.state.w, ti.state.s as tf.Tensor]);
    });

    it('Huber bias with a large δ equals l2; lp with p = 2 equals l2; lq retention with q = 2 equals l2 decay', async () => {
      await useBackend(backendName);
      const base: MemorySpec = spec('titans', { chunk: 4 });
      const g = { lr, decay, momentum };
      const l2 = mirasReference(q, k, v, dims, g, base).y;
      const huber = mirasMemory(
        tf.tensor3d(q, [b, T, dk]),
        tf.tensor3d(k, [b, T, dk]),
        tf.tensor3d(v, [b, T, dv]),
        { lr: tf.tensor2d(lr, [b, T]), decay: tf.tensor2d(decay, [b, T]), momentum: tf.tensor2d(momentum, [b, T]) },
        { ...base, bias: { kind: 'huber', delta: 100 } },
      );
      expectClose(huber.y, l2, {}, 'huber δ=100');
      expectClose(mirasReference(q, k, v, dims, g, { ...base, bias: { kind: 'lp', p: 2 } }).y, l2, {}, 'lp p=2');
      expectClose(mirasReference(q, k, v, dims, g, { ...base, retention: { kind: 'lq', q: 2 } }).y, l2, {}, 'lq q=2');
      // A small δ clips: the outputs differ.
      const clipped = mirasReference(q, k, v, dims, g, { ...base, bias: { kind: 'huber', delta: 0.05 } }).y;
      expect(Math.max(...clipped.map((x, i) => Math.abs(x - l2[i])))).toBeGreaterThan(1e-3);
      tf.dispose([huber.y, huber.state.w, huber.state.s as tf.Tensor]);
    });

    it('is causal: changing token t leaves every output before t unchanged', async () => {
      await useBackend(backendName);
      const k2 = [...k];
      const v2 = [...v];
      const t = 6;
      for (let n = 0; n < b; n++) {
        for (let r = 0; r < dk; r++) k2[(n * T + t) * dk + r] += 1;
        for (let c = 0; c < dv; c++) v2[(n * T + t) * dv + c] -= 1;
      }
      for (const name of NAMES) {
        const s = spec(name, { chunk: 4 });
        const run = (kk: number[], vv: number[]) =>
          tf.tidy(() =>
            Array.from(
              mirasMemory(
                tf.tensor3d(q, [b, T, dk]),
                tf.tensor3d(kk, [b, T, dk]),
                tf.tensor3d(vv, [b, T, dv]),
                { lr: 0.5, decay: 0.1, momentum: 0.5 },
                s,
              )
                .y.slice([0, 0, 0], [b, t, dv])
                .dataSync(),
            ),
          );
        expectClose(run(k2, v2), run(k, v), { rtol: 0, atol: 1e-7 }, `${name} causal`);
      }
    });

    it('leaks no tensors and names the bad argument', async () => {
      await useBackend(backendName);
      const { Q, K, V } = tensors();
      expectNoLeak(() => {
        const out = mirasMemory(Q, K, V, { lr: 0.5, decay: 0.1, momentum: 0.5 }, spec('titans', { chunk: 4 }));
        tf.dispose([out.y, out.state.w, out.state.s as tf.Tensor]);
        const rec = mirasRecurrent(Q, K, V, { lr: 0.5 }, spec('memora', { chunk: 4 }));
        tf.dispose([rec.y, rec.state.w, ...(rec.state.w0 ? [rec.state.w0] : [])]);
      });
      expect(() => mirasMemory(Q, K, V, { lr: 0.5 }, spec('titans', { chunk: 0 }))).toThrow(
        /spec.chunk must be an integer >= 1, got 0/,
      );
      expect(() => mirasMemory(Q, K, V, { lr: -1 }, spec('titans'))).toThrow(/mirasMemory: gates.lr must be a number/);
      expect(() => mirasMemory(Q, K, V.slice([0, 0, 0], [b, T - 1, dv]), { lr: 1 }, spec('titans'))).toThrow(
        /mirasMemory: v must be \[2, 11, dv\]/,
      );
      tf.dispose([Q, K, V]);
    });
  });
}

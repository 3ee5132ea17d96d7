/** BASED (Arora et al. 2024): feature maps, causal linear attention in three forms against the float64 loop, the BASED mixer's step form. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  basedInit,
  basedMixer,
  basedStep,
  featureDim,
  featureMap,
  featureMap64,
  kvCacheInit,
  linearAttentionCumsum,
  linearAttentionParallel,
  linearAttentionRecurrent,
  linearAttentionReference,
  stateBytes,
  windowAttention,
  windowAttentionStep,
} from '../lib/papers/recurrent/based/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const SHAPE = { b: 2, h: 2, t: 7, d: 3, dv: 4 };
const KINDS = ['elu1', 'taylor'] as const;

function qkv(seed: number, scale = 1) {
  const { b, h, t, d, dv } = SHAPE;
  return {
    q: randomArray(b * h * t * d, seed, scale),
    k: randomArray(b * h * t * d, seed + 1, scale),
    v: randomArray(b * h * t * dv, seed + 2, scale),
  };
}

function tensors(a: ReturnType<typeof qkv>) {
  const { b, h, t, d, dv } = SHAPE;
  return {
    q: tf.tensor4d(Float32Array.from(a.q), [b, h, t, d]),
    k: tf.tensor4d(Float32Array.from(a.k), [b, h, t, d]),
    v: tf.tensor4d(Float32Array.from(a.v), [b, h, t, dv]),
  };
}

for (const name of BACKENDS) {
  describe(`linear attention (${name})`, () => {
    it('the Taylor map gives 1 + s + s²/2 with s = q·k/√d, and matches its float64 twin', async () => {
      await useBackend(name);
      const x = randomArray(5, 3);
      const y = randomArray(5, 4);
      const fx = featureMap64(x, 'taylor');
      const fy = featureMap64(y, 'taylor');
      expect(fx.length).toBe(featureDim(5, 'taylor'));
      const s = x.reduce((a, v, i) => a + v * y[i], 0) / Math.sqrt(5);
      const dot = fx.reduce((a, v, i) => a + v * fy[i], 0);
      expect(dot).toBeCloseTo(1 + s + (s * s) / 2, 10);
      for (const kind of KINDS) {
        const t = tf.tensor2d(Float32Array.from(x), [1, 5]);
        const f = featureMap(t, kind);
        expectClose(f.dataSync(), featureMap64(x, kind), {}, `featureMap ${kind}`);
        tf.dispose([t, f]);
      }
    });

    for (const kind of KINDS) {
      it(`${kind}: parallel, cumsum and recurrent forms equal the float64 loop`, async () => {
        await useBackend(name);
        const a = qkv(11);
        const ref = linearAttentionReference(a.q, a.k, a.v, SHAPE, { featureMap: kind });
        const { q, k, v } = tensors(a);
        const par = linearAttentionParallel(q, k, v, { featureMap: kind });
        const cum = linearAttentionCumsum(q, k, v, { featureMap: kind });
        const rec = linearAttentionRecurrent(q, k, v, { featureMap: kind });
        expectClose(par.dataSync(), ref, {}, 'parallel');
        expectClose(cum.dataSync(), ref, {}, 'cumsum');
        expectClose(rec.y.dataSync(), ref, {}, 'recurrent');
        // The state is S [b, h, D, dv] and z [b, h, D], whatever the length.
        const big = featureDim(SHAPE.d, kind);
        expect(stateBytes([rec.state.s, rec.state.z])).toBe(4 * SHAPE.b * SHAPE.h * big * (SHAPE.dv + 1));
        tf.dispose([q, k, v, par, cum, rec.y, rec.state.s, rec.state.z]);
      });

      it(`${kind}: gradients of the parallel form match float64 finite differences`, async () => {
        await useBackend(name);
        const a = qkv(21, 0.8);
        const w = randomArray(SHAPE.b * SHAPE.h * SHAPE.t * SHAPE.dv, 99);
        const loss64 = () =>
          linearAttentionReference(a.q, a.k, a.v, SHAPE, { featureMap: kind }).reduce((s, y, i) => s + y * w[i], 0);
        const g = { q: numericGrad(loss64, a.q), k: numericGrad(loss64, a.k), v: numericGrad(loss64, a.v) };
        const { q, k, v } = tensors(a);
        const wt = tf.tensor4d(Float32Array.from(w), [SHAPE.b, SHAPE.h, SHAPE.t, SHAPE.dv]);
        for (const form of [linearAttentionParallel, linearAttentionCumsum]) {
          const grads = tf.grads((qq, kk, vv) => form(qq, kk, vv, { featureMap: kind }).mul(wt).sum())([q, k, v]);
          expectClose(grads[0].dataSync(), g.q, { rtol: 2e-3, atol: 2e-4 }, `${form.name} dq`);
          expectClose(grads[1].dataSync(), g.k, { rtol: 2e-3, atol: 2e-4 }, `${form.name} dk`);
          expectClose(grads[2].dataSync(), g.v, { rtol: 2e-3, atol: 2e-4 }, `${form.name} dv`);
          tf.dispose(grads);
        }
        tf.dispose([q, k, v, wt]);
      });
    }

    it('is causal: changing a later token leaves earlier outputs unchanged', async () => {
      await useBackend(name);
      const a = qkv(5);
      const b = { q: a.q.slice(), k: a.k.slice(), v: a.v.slice() };
      const { t, d, dv } = SHAPE;
      const last = t - 1;
      for (let c = 0; c < d; c++) b.k[last * d + c] += 3;
      for (let c = 0; c < dv; c++) b.v[last * dv + c] -= 2;
      const ta = tensors(a);
      const tb = tensors(b);
      const ya = linearAttentionParallel(ta.q, ta.k, ta.v, { featureMap: 'taylor' }).arraySync();
      const yb = linearAttentionParallel(tb.q, tb.k, tb.v, { featureMap: 'taylor' }).arraySync();
      expect(yb[0][0].slice(0, last)).toEqual(ya[0][0].slice(0, last));
      expect(yb[0][0][last]).not.toEqual(ya[0][0][last]);
      tf.dispose([ta.q, ta.k, ta.v, tb.q, tb.k, tb.v]);
    });

    it('does not leak tensors', async () => {
      await useBackend(name);
      const { q, k, v } = tensors(qkv(2));
      expectNoLeak(() => {
        tf.dispose(linearAttentionParallel(q, k, v, { featureMap: 'taylor' }));
        tf.dispose(linearAttentionCumsum(q, k, v, { featureMap: 'elu1' }));
        const r = linearAttentionRecurrent(q, k, v, { featureMap: 'taylor' });
        tf.dispose([r.y, r.state.s, r.state.z]);
      });
      tf.dispose([q, k, v]);
    });

    it('bad arguments name the function, the argument and the value', async () => {
      await useBackend(name);
      const { q, k, v } = tensors(qkv(2));
      expect(() => linearAttentionParallel(q, k, v, { featureMap: 'relu' as never })).toThrow(
        /linearAttentionParallel: featureMap must be one of .* got relu/,
      );
      const k3 = k.slice([0, 0, 0, 0], [2, 2, 5, 3]);
      expect(() => linearAttentionParallel(q, k3, v, { featureMap: 'elu1' })).toThrow(
        /linearAttentionParallel: k must have q's shape \[2,2,7,3\], got \[2,2,5,3\]/,
      );
      expect(() => featureDim(0, 'taylor')).toThrow(/featureDim: d must be an integer >= 1, got 0/);
      tf.dispose([q, k, v, k3]);
    });
  });

  describe(`BASED mixer (${name})`, () => {
    it('the step form (Taylor state + window cache) equals the parallel form, and the state stops growing at the window', async () => {
      await useBackend(name);
      const [b, t, m, f, h, w] = [2, 9, 8, 3, 2, 3];
      const mk = (rows: number, cols: number, seed: number) =>
        tf.tensor2d(Float32Array.from(randomArray(rows * cols, seed, 0.5)), [rows, cols]);
      const p = {
        wq: mk(m, h * f, 1),
        wk: mk(m, h * f, 2),
        wv: mk(m, m, 3),
        wo: mk(m, m, 4),
        sq: mk(m, m, 5),
        sk: mk(m, m, 6),
        sv: mk(m, m, 7),
        so: mk(m, m, 8),
      };
      const x = tf.tensor3d(Float32Array.from(randomArray(b * t * m, 9)), [b, t, m]);
      for (const window of [0, w]) {
        const cfg = { heads: h, featureDim: f, window };
        const par = basedMixer(x, p, cfg);
        let state = basedInit(b, m, cfg);
        const ys: tf.Tensor[] = [];
        const bytes: number[] = [];
        for (let i = 0; i < t; i++) {
          const xt = x.slice([0, i, 0], [b, 1, m]).reshape([b, m]);
          const r = basedStep(state, xt, p, cfg);
          tf.dispose([xt, state.la.s, state.la.z, state.kv.k, state.kv.v]);
          state = r.state;
          ys.push(r.y);
          bytes.push(stateBytes([state.la.s, state.la.z, state.kv.k, state.kv.v]) / b);
        }
        const rec = tf.stack(ys, 1);
        expectClose(rec.dataSync(), par.dataSync(), { rtol: 1e-4, atol: 1e-5 }, `window ${window}`);
        const big = featureDim(f, 'taylor');
        const fixed = 4 * h * big * (m / h + 1);
        expect(bytes[t - 1]).toBe(fixed + (window ? 4 * 2 * window * m : 0));
        expect(bytes[t - 1]).toBe(bytes[w]);
        tf.dispose([par, rec, ...ys, state.la.s, state.la.z, state.kv.k, state.kv.v]);
      }
      tf.dispose([x, ...Object.values(p)]);
    });

    it('window attention step equals the masked parallel form (window 1, 3 and full)', async () => {
      await useBackend(name);
      const [b, h, t, d] = [1, 2, 6, 4];
      const [q, k, v] = [1, 2, 3].map((s) =>
        tf.tensor4d(Float32Array.from(randomArray(b * h * t * d, s)), [b, h, t, d]),
      );
      for (const window of [1, 3, Number.POSITIVE_INFINITY]) {
        const par = windowAttention(q, k, v, window);
        let cache = kvCacheInit(b, h, d);
        const ys: tf.Tensor[] = [];
        for (let i = 0; i < t; i++) {
          const at = (x: tf.Tensor) => x.slice([0, 0, i, 0], [b, h, 1, d]).reshape([b, h, d]);
          const [qi, ki, vi] = [at(q), at(k), at(v)];
          const r = windowAttentionStep(cache, qi, ki, vi, window);
          tf.dispose([qi, ki, vi, cache.k, cache.v]);
          cache = r.cache;
          ys.push(r.y);
        }
        const rec = tf.stack(ys, 2);
        expectClose(rec.dataSync(), par.dataSync(), {}, `window ${window}`);
        expect(cache.k.shape[2]).toBe(Math.min(window, t));
        tf.dispose([par, rec, ...ys, cache.k, cache.v]);
      }
      tf.dispose([q, k, v]);
    });
  });
}

import * as tf from '@tensorflow/tfjs';
import { describe, expect, it, vi } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { embedding, isPureWasm, matmul } from '../lib/backend/ops.js';
import { BACKENDS, expectClose, expectNoLeak, useBackend } from './helpers.js';

describe('backend choice', () => {
  it('ready() picks the first backend that loads and gives one reason for every other', async () => {
    const r = await backend.ready();
    expect(backend.BACKEND_ORDER).toContain(r.chosen);
    expect(tf.getBackend()).toBe(r.tfjsBackend);
    for (const name of backend.BACKEND_ORDER) {
      if (name === r.chosen) continue;
      expect(typeof r.notChosen[name], `reason for ${name}`).toBe('string');
      expect(r.notChosen[name]!.length).toBeGreaterThan(5);
    }
    // tfjs-node-gpu cannot install here: the reason must say so rather than pretend.
    expect(r.notChosen.tensorflow).toMatch(/not installed|failed to load|registered no/);
  });

  it('setBackend switches and reports; a bad name is rejected with the list', async () => {
    expect((await backend.setBackend('cpu')).chosen).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect((await backend.setBackend('wasm')).chosen).toBe('wasm');
    expect(isPureWasm()).toBe(true);
    await expect(backend.setBackend('gpu' as backend.BackendName)).rejects.toThrow(
      "setBackend: name must be one of tensorflow, wasm-native, wasm, cpu, got 'gpu'",
    );
    await expect(backend.setBackend('tensorflow')).rejects.toThrow("setBackend('tensorflow') failed");
  });

  it('ATTNLAB_BACKEND names the backend, and a wrong name is a clear error', async () => {
    vi.resetModules();
    process.env.ATTNLAB_BACKEND = 'cpu';
    try {
      const fresh = await import('../lib/backend/index.js');
      const r = await fresh.ready();
      expect(r.chosen).toBe('cpu');
      expect(r.how).toBe('ATTNLAB_BACKEND');
      vi.resetModules();
      process.env.ATTNLAB_BACKEND = 'tpu';
      const bad = await import('../lib/backend/index.js');
      await expect(bad.ready()).rejects.toThrow(
        "ATTNLAB_BACKEND='tpu' is not a backend; expected one of tensorflow, wasm-native, wasm, cpu",
      );
    } finally {
      delete process.env.ATTNLAB_BACKEND;
      vi.resetModules();
    }
  });
});

describe.each(BACKENDS)('wasm-safe ops on %s', (name) => {
  it('matmul equals tf.matMul for every transpose combination, batched and shared, with gradients', async () => {
    await useBackend(name);
    const cases: [number[], number[], boolean, boolean][] = [
      [[3, 4], [4, 5], false, false],
      [[4, 3], [4, 5], true, false],
      [[3, 4], [5, 4], false, true],
      [[4, 3], [5, 4], true, true],
      [[2, 3, 3, 4], [2, 3, 4, 5], false, false],
      [[2, 3, 4, 3], [2, 3, 5, 4], true, true],
      [[2, 3, 3, 4], [2, 3, 5, 4], false, true],
      [[2, 70, 2, 3], [2, 70, 3, 2], false, false], // above the 2-D loop threshold
      [[2, 6, 4], [4, 5], false, false], // x W shared across the batch
      [[2, 6, 4], [5, 4], false, true], // tied embedding
    ];
    for (const [sa, sb, ta, tb] of cases) {
      tf.tidy(() => {
        const a = tf.randomNormal(sa, 0, 1, 'float32', 1);
        const b = tf.randomNormal(sb, 0, 1, 'float32', 2);
        const label = `${sa}${ta ? 'ᵀ' : ''} x ${sb}${tb ? 'ᵀ' : ''}`;
        // The reference: explicit transposes and, for a shared b, a tiled copy so tfjs's own kernels need no broadcast.
        const ref = (x: tf.Tensor, y: tf.Tensor) => {
          const t = (z: tf.Tensor) =>
            z.transpose(
              [...z.shape.keys()].map((i, _, all) =>
                i < all.length - 2 ? i : i === all.length - 2 ? all.length - 1 : all.length - 2,
              ),
            );
          const x2 = ta ? t(x) : x;
          let y2 = tb ? t(y) : y;
          if (y2.rank < x2.rank) y2 = y2.expandDims(0).tile([x2.shape[0], 1, 1]);
          return tf.matMul(x2, y2);
        };
        const out = matmul(a, b, ta, tb);
        expectClose(out, ref(a, b), { rtol: 1e-4, atol: 1e-5 }, label);
        const r = tf.randomNormal(out.shape, 0, 1, 'float32', 3);
        const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => matmul(x, y, ta, tb).mul(r).sum())([a, b]);
        const gr = tf.grads((x: tf.Tensor, y: tf.Tensor) => ref(x, y).mul(r).sum())([a, b]);
        expectClose(g[0], gr[0], { rtol: 1e-4, atol: 1e-5 }, `${label} da`);
        expectClose(g[1], gr[1], { rtol: 1e-4, atol: 1e-5 }, `${label} db`);
      });
    }
    expect(() => matmul(tf.zeros([2, 3]), tf.zeros([4, 5]))).toThrow(
      'matmul: inner dimensions differ: a [2,3] has 3, b [4,5] has 4',
    );
  });

  it('embedding equals a one-hot product, gradient included, and checks ids', async () => {
    await useBackend(name);
    tf.tidy(() => {
      const table = tf.randomNormal([7, 3], 0, 1, 'float32', 4) as tf.Tensor2D;
      const ids = tf.tensor2d(
        [
          [0, 6, 2],
          [2, 2, 5],
        ],
        [2, 3],
        'int32',
      );
      const r = tf.randomNormal([2, 3, 3], 0, 1, 'float32', 5);
      const viaOneHot = (t: tf.Tensor) => tf.oneHot(ids.flatten(), 7).matMul(t).reshape([2, 3, 3]);
      expectClose(embedding(table, ids), viaOneHot(table), {}, 'lookup');
      const g = tf.grad((t: tf.Tensor) =>
        embedding(t as tf.Tensor2D, ids)
          .mul(r)
          .sum(),
      )(table);
      expectClose(g, tf.grad((t: tf.Tensor) => viaOneHot(t).mul(r).sum())(table), {}, 'gradient');
      expect(() => embedding(table, tf.tensor1d([7], 'int32'))).toThrow(
        'embedding: ids[0] = 7 is outside the vocabulary [0, 7)',
      );
      expect(() => embedding(table, tf.tensor1d([1]))).toThrow('embedding: ids must be int32, got float32');
    });
    const table = tf.ones([5, 2]) as tf.Tensor2D;
    const ids = tf.tensor1d([1, 3], 'int32');
    expectNoLeak(() =>
      tf
        .grad((t: tf.Tensor) => embedding(t as tf.Tensor2D, ids).sum())(table)
        .dispose(),
    );
    tf.dispose([table, ids]);
  });
});

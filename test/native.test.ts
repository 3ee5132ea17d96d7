/**
 * Native kernels (wasm-native) against tfjs's own cpu backend: outputs and gradients on random inputs, odd sizes,
 * broadcasting, transposed inputs, error messages, and no tensor leaks; and the same bits at 1 and 2 threads and from
 * run to run. Skips only when the addon is not built; set ATTNLAB_REQUIRE_NATIVE=1 (CI) to make a missing addon a
 * failure instead.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { flash } from '../lib/attention/flash.js';
import * as backend from '../lib/backend/index.js';
import {
  adamUpdate,
  gelu,
  layerNorm,
  loadAddon,
  logSoftmax,
  nativeAvailable,
  nativeInfo,
} from '../lib/backend/native.js';
import * as masks from '../lib/masks/index.js';
import { expectClose, expectNoLeak, randomArray, type Tolerance } from './helpers.js';

const unavailable = await nativeAvailable();

it('the native addon is available where it is required', () => {
  if (process.env.ATTNLAB_REQUIRE_NATIVE === '1') expect(unavailable, 'ATTNLAB_REQUIRE_NATIVE=1').toBeNull();
});

type Build = () => tf.Tensor | tf.Tensor[];

/** Run `build` on a backend and copy every output out (outside tidy, which would walk every element of an array). */
async function runOn(name: backend.BackendName, build: Build): Promise<Float32Array[]> {
  await backend.setBackend(name);
  const outs = tf.tidy(() => {
    const r = build();
    return Array.isArray(r) ? r : [r];
  });
  const copies = outs.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(outs);
  return copies;
}

/** Outputs of `build` on wasm-native must match `reference` (default: the same build) on cpu. */
async function parity(build: Build, tol: Tolerance = {}, label = '', reference: Build = build): Promise<void> {
  const want = await runOn('cpu', reference);
  const got = await runOn('wasm-native', build);
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => expectClose(g, want[i], tol, `${label} output ${i}`));
}

/** Gradients of sum(f(xs) * w) for every input, on both backends. */
function gradsOf(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: () => tf.Tensor[], seed = 7): Build {
  return () => {
    const xs = inputs();
    const probe = f(...xs);
    const w = tf.tensor(Float32Array.from(randomArray(probe.size, seed)), probe.shape);
    const g = tf.grads((...a: tf.Tensor[]) =>
      f(...a)
        .mul(w)
        .sum(),
    );
    return [probe, ...g(xs)];
  };
}

const rand = (shape: number[], seed: number, scale = 1, shift = 0) =>
  tf.tensor(
    Float32Array.from(
      randomArray(
        shape.reduce((a, b) => a * b, 1),
        seed,
        scale,
      ).map((v) => v + shift),
    ),
    shape,
  );

describe.skipIf(unavailable !== null)(`native kernels${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  afterAll(async () => {
    await backend.setBackend('cpu');
  });

  it('reports its kernels through the backend chooser', async () => {
    const r = await backend.setBackend('wasm-native');
    expect(r.tfjsBackend).toBe('wasm');
    for (const k of [
      'BatchMatMul',
      'Softmax',
      'Exp',
      'Erf',
      'Sum',
      'GatherV2',
      'UnsortedSegmentSum',
      'AttnlabFlashFwd',
    ]) {
      expect(r.nativeKernels).toContain(k);
    }
    expect(['avx512', 'avx2', 'sse2']).toContain(nativeInfo()?.isa);
  });

  it('restores the original wasm kernels when another backend is chosen', async () => {
    await backend.setBackend('wasm');
    await new Promise((r) => setTimeout(r, 0));
    const orig = tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc;
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeUndefined();
    await backend.setBackend('wasm-native');
    expect(tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc).not.toBe(orig);
    await backend.setBackend('wasm');
    await new Promise((r) => setTimeout(r, 0));
    expect(tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc).toBe(orig);
    // And the pure wasm results equal the native ones.
    const build = () => tf.matMul(rand([3, 7, 5], 1), rand([3, 5, 4], 2));
    const pure = await runOn('wasm', build);
    const nat = await runOn('wasm-native', build);
    expectClose(nat[0], pure[0], {}, 'pure wasm vs native');
  });

  describe('BatchMatMul', () => {
    const shapes: [number[], number[]][] = [
      [
        [1, 1],
        [1, 1],
      ],
      [
        [7, 129],
        [129, 7],
      ],
      [
        [129, 7],
        [7, 1],
      ],
      [
        [3, 7, 5],
        [3, 5, 129],
      ],
      [
        [2, 3, 4, 7],
        [2, 3, 7, 5],
      ],
      [
        [2, 1, 5, 7],
        [1, 3, 7, 4],
      ], // batch broadcasting both ways
      [
        [4, 7, 9],
        [9, 5],
      ], // shared right matrix (linear layer)
      [
        [9, 5],
        [4, 5, 7],
      ], // shared left matrix
      [
        [1, 130, 129],
        [1, 129, 131],
      ],
    ];
    for (const [sa, sb] of shapes) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          // tfjs-core's BatchMatMul gradient does not sum over broadcast batch axes (on every backend), so those
          // shapes are checked on outputs only.
          const sameBatch = JSON.stringify(sa.slice(0, -2)) === JSON.stringify(sb.slice(0, -2));
          it(`${JSON.stringify(sa)} x ${JSON.stringify(sb)} transposeA=${ta} transposeB=${tb}: outputs${sameBatch ? ' and gradients' : ''}`, async () => {
            const swap = (s: number[]) => [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]];
            const a = ta ? swap(sa) : sa;
            const b = tb ? swap(sb) : sb;
            const f = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb);
            if (sameBatch) {
              await parity(
                gradsOf(f, () => [rand(a, 11), rand(b, 12)]),
                { rtol: 1e-4, atol: 1e-4 },
              );
              return;
            }
            // tfjs's cpu kernel broadcasts only one side's batch; the reference tiles both to the full batch first.
            const full = [2, 3];
            const tileTo = (t: tf.Tensor) =>
              t.rank === 2 ? t : t.tile(full.map((d, i) => d / t.shape[i]).concat([1, 1]));
            const reference = () =>
              a.length === 4 ? f(tileTo(rand(a, 11)), tileTo(rand(b, 12))) : f(rand(a, 11), rand(b, 12));
            await parity(() => f(rand(a, 11), rand(b, 12)), { rtol: 1e-4, atol: 1e-4 }, '', reference);
          });
        }
      }
    }

    it('2048 x 64 x 2048 (multi-threaded split) matches', async () => {
      await parity(() => tf.matMul(rand([256, 64], 3), rand([64, 2048], 4)), { atol: 1e-4 });
    });

    it('takes transposed (non-contiguous) views as inputs', async () => {
      await parity(
        gradsOf(
          (x, y) => tf.matMul(x.transpose([0, 2, 1]), y.transpose([0, 2, 1])),
          () => [rand([2, 7, 5], 5), rand([2, 3, 7], 6)],
        ),
        { atol: 1e-4 },
      );
      await parity(() => tf.matMul(rand([2, 7, 5], 5).transpose([0, 2, 1]), rand([3, 7], 6).transpose()), {
        atol: 1e-4,
      });
    });

    it('rejects an empty batch with an error naming the shapes', async () => {
      await backend.setBackend('wasm-native');
      expect(() => tf.matMul(tf.zeros([0, 3, 4]), tf.zeros([0, 4, 5]))).toThrow(
        /empty batch: a has shape \[0,3,4\] and b \[0,4,5\]/,
      );
    });

    it('gives zeros for a zero inner dimension', async () => {
      await parity(() => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4])));
    });

    it('leaks no tensors', async () => {
      await backend.setBackend('wasm-native');
      const a = rand([4, 7, 9], 1);
      const b = rand([4, 9, 5], 2);
      expectNoLeak(() => tf.tidy(() => void tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y).sum())([a, b])));
      tf.dispose([a, b]);
    });
  });

  describe('elementwise', () => {
    const unary: [string, (x: tf.Tensor) => tf.Tensor, number, number][] = [
      // name, op, input scale, input shift (positive inputs for log/sqrt)
      ['exp', tf.exp, 10, 0],
      ['log', tf.log, 2, 2.5],
      ['tanh', tf.tanh, 4, 0],
      ['erf', tf.erf, 3, 0],
      ['sigmoid', tf.sigmoid, 8, 0],
      ['sqrt', tf.sqrt, 2, 2.5],
      ['rsqrt', tf.rsqrt, 2, 2.5],
      ['square', tf.square, 3, 0],
      ['neg', tf.neg, 3, 0],
      ['relu', tf.relu, 3, 0],
      ['reciprocal', tf.reciprocal, 1, 1.5],
      ['abs', tf.abs, 3, 0],
    ];
    for (const [name, op, scale, shift] of unary) {
      it(`${name} on sizes 1, 7, 129, 1000: outputs and gradients`, async () => {
        for (const n of [1, 7, 129, 1000]) {
          await parity(
            gradsOf(op, () => [rand([n], n, scale, shift)]),
            { rtol: 2e-5, atol: 2e-6 },
            `${name}[${n}]`,
          );
        }
      });
    }

    it('exp, tanh, erf, sigmoid and log handle extreme values', async () => {
      const x = [-Infinity, -100, -87.5, -20, -1e-6, 0, 1e-6, 20, 88, 100, Infinity, NaN];
      for (const op of [tf.exp, tf.tanh, tf.erf, tf.sigmoid])
        await parity(() => op(tf.tensor(x)), { rtol: 1e-5, atol: 1e-7 });
      await parity(() => tf.log(tf.tensor([0, 1e-30, 1e-6, 0.5, 1, 2, 1e30, Infinity, -1, NaN])), {
        rtol: 1e-5,
        atol: 1e-6,
      });
    });

    const pairs: [number[], number[]][] = [
      [[7], [7]],
      [[7, 129], [129]],
      [
        [7, 129],
        [7, 1],
      ],
      [
        [3, 1, 5],
        [1, 4, 1],
      ],
      [[], [7]],
      [[1], [1]],
      [[2, 3, 4, 5, 6], [6]],
      [
        [2, 1, 3, 1, 5],
        [1, 4, 1, 6, 1],
      ], // needs 5 collapsed dims: falls back to the wasm kernel
      [[16, 128, 128], [128]],
    ];
    const binary: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
      ['add', tf.add],
      ['sub', tf.sub],
      ['mul', tf.mul],
      ['div', tf.div],
      ['maximum', tf.maximum],
      ['minimum', tf.minimum],
      ['squaredDifference', tf.squaredDifference],
    ];
    for (const [name, op] of binary) {
      it(`${name} with broadcasting: outputs and gradients`, async () => {
        for (const [sa, sb] of pairs) {
          const shift = name === 'div' ? 2 : 0;
          // tfjs-core's Maximum/Minimum/SquaredDifference gradients do not sum over broadcast axes (on every backend).
          const grads =
            JSON.stringify(sa) === JSON.stringify(sb) || !['maximum', 'minimum', 'squaredDifference'].includes(name);
          const build = grads
            ? gradsOf(op, () => [rand(sa, 3), rand(sb, 4, 1, shift)])
            : () => op(rand(sa, 3), rand(sb, 4, 1, shift));
          await parity(build, { rtol: 1e-4, atol: 1e-5 }, `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`);
        }
      });
    }

    it('int32 arithmetic still runs (falls back to the wasm kernel)', async () => {
      await parity(() => tf.add(tf.tensor([1, 2, 3], [3], 'int32'), tf.tensor([4], [1], 'int32')));
    });
  });

  describe('reductions', () => {
    const cases: [number[], number | number[], boolean][] = [
      [[7, 129], 1, false],
      [[7, 129], 0, true],
      [[3, 5, 7], [1], false],
      [[3, 5, 7], [0, 1], true],
      [[3, 5, 7], [0, 2], false], // non-contiguous axes: falls back
      [[1], 0, false],
      [[16, 128, 384], [0, 1], false], // bias gradient shape
      [[1000], 0, false],
    ];
    const ops: [string, (x: tf.Tensor, axis: number | number[], keep: boolean) => tf.Tensor][] = [
      ['sum', tf.sum],
      ['mean', tf.mean],
      ['max', tf.max],
      ['min', tf.min],
    ];
    for (const [name, op] of ops) {
      it(`${name} over contiguous and other axes: outputs and gradients`, async () => {
        for (const [shape, axis, keep] of cases) {
          await parity(
            gradsOf(
              (x) => op(x, axis, keep),
              () => [rand(shape, 9)],
            ),
            { rtol: 1e-4, atol: 1e-5 },
            `${name} ${JSON.stringify(shape)} ${axis}`,
          );
        }
      });
    }
  });

  describe('softmax and log-softmax', () => {
    for (const shape of [
      [1, 1],
      [3, 1],
      [7, 129],
      [4, 3, 1000],
    ]) {
      it(`on ${JSON.stringify(shape)}: outputs and gradients`, async () => {
        await parity(
          gradsOf(
            (x) => tf.softmax(x),
            () => [rand(shape, 5, 6)],
          ),
          { rtol: 1e-4, atol: 1e-6 },
          'softmax',
        );
        await parity(
          gradsOf(
            (x) => tf.logSoftmax(x),
            () => [rand(shape, 6, 6)],
          ),
          { rtol: 1e-4, atol: 1e-5 },
          'logSoftmax',
        );
      });
    }
  });

  describe('embedding gather and its gradient', () => {
    it('gathers rows and scatters gradients (repeated ids add up)', async () => {
      for (const [vocab, dim, ids] of [
        [129, 7, [3, 5]],
        [1, 1, [1]],
        [256, 128, [16, 128]],
      ] as [number, number, number[]][]) {
        const n = ids.reduce((a, b) => a * b, 1);
        const idx = Int32Array.from(randomArray(n, 3).map((v) => Math.floor(Math.abs(v) * vocab) % vocab));
        await parity(
          gradsOf(
            (t) => tf.gather(t, tf.tensor(idx, ids, 'int32')),
            () => [rand([vocab, dim], 4)],
          ),
          {},
          `gather ${vocab}x${dim}`,
        );
      }
    });

    it('rejects an out-of-range id with an error naming it', async () => {
      await backend.setBackend('wasm-native');
      expect(() => tf.gather(tf.ones([4, 3]), tf.tensor([1, 9], [2], 'int32'))).toThrow(
        /indices\[1\] = 9 is outside \[0, 4\)/,
      );
    });
  });

  describe('determinism: the same bits whatever the thread count and timing', () => {
    // Every kernel that sums (or whose BLAS calls depend on how the work is split) runs at 1 thread, then four times
    // at 2 (which thread takes which piece varies with timing). Before the kernels cut reductions into fixed chunks,
    // layer norm's dgamma/dbeta, flash's dQ and split matmuls differed in their last bits between these runs.
    const threadsBefore = nativeInfo()?.threads ?? 2;
    afterAll(() => loadAddon()?.setThreads(threadsBefore));

    /** Outputs of `build` at this many native threads; the pool is rebuilt only on a change, so it stays warm. */
    async function at(threads: number, build: Build): Promise<Float32Array[]> {
      if (nativeInfo()?.threads !== threads) loadAddon()!.setThreads(threads);
      return runOn('wasm-native', build);
    }

    /** Bitwise equality (NaN payloads and signed zeros included), naming how many elements differ and the first. */
    function expectBitwise(got: Float32Array[], want: Float32Array[], label: string): void {
      expect(got.length, label).toBe(want.length);
      got.forEach((g, i) => {
        const a = new Uint32Array(g.buffer, g.byteOffset, g.length);
        const b = new Uint32Array(want[i].buffer, want[i].byteOffset, want[i].length);
        let differ = 0;
        let first = -1;
        for (let j = 0; j < a.length; j++) {
          if (a[j] !== b[j]) {
            differ++;
            if (first < 0) first = j;
          }
        }
        const what =
          differ === 0
            ? 'identical'
            : `${differ} of ${g.length} differ, first [${first}]: ${g[first]} vs ${want[i][first]}`;
        expect(what, `${label} output ${i}`).toBe('identical');
      });
    }

    const causal = masks.causal();
    const ids = Int32Array.from(randomArray(4096, 3).map((v) => Math.floor(Math.abs(v) * 256) % 256));
    const cases: [string, Build][] = [
      [
        'matMul [130,129] x [129,131] (one product cut into pieces): output and gradients',
        gradsOf(
          (a, b) => tf.matMul(a, b),
          () => [rand([130, 129], 1), rand([129, 131], 2)],
        ),
      ],
      [
        'batched matMul [3,130,129] x [3,129,131]: output and gradients',
        gradsOf(
          (a, b) => tf.matMul(a, b),
          () => [rand([3, 130, 129], 3), rand([3, 129, 131], 4)],
        ),
      ],
      [
        'sum and mean over the last and a middle axis of [16,300,129]',
        () => {
          const x = rand([16, 300, 129], 5);
          return [x.sum(-1), x.mean(1), x.sum([0, 1])];
        },
      ],
      [
        'softmax and log-softmax over rows of [128,1000]',
        gradsOf(
          (x) => tf.softmax(x).add(tf.logSoftmax(x)),
          () => [rand([128, 1000], 6, 6)],
        ),
      ],
      [
        'fused layerNorm [16384,64] (65 row chunks): output, dx, dgamma, dbeta',
        gradsOf(
          (x, g, b) => layerNorm(x, g, b),
          () => [rand([16384, 64], 7, 2, 0.5), rand([64], 8, 1, 1), rand([64], 9)],
        ),
      ],
      [
        'fused layerNorm [3,7] (one chunk): output, dx, dgamma, dbeta',
        gradsOf(
          (x, g, b) => layerNorm(x, g, b),
          () => [rand([3, 7], 7), rand([7], 8, 1, 1), rand([7], 9)],
        ),
      ],
      [
        'flash, causal, 2 heads on 1 kv head, seq 512: output, dq, dk, dv',
        gradsOf(
          (q, k, v) => flash(q, k, v, { mask: causal }),
          () => [rand([1, 2, 512, 32], 10), rand([1, 1, 512, 32], 11), rand([1, 1, 512, 32], 12)],
        ),
      ],
      [
        'flash, no mask, batch 2, 4 heads on 2, seq 200: output, dq, dk, dv',
        gradsOf(
          (q, k, v) => flash(q, k, v),
          () => [rand([2, 4, 200, 16], 13), rand([2, 2, 200, 16], 14), rand([2, 2, 200, 16], 15)],
        ),
      ],
      [
        'embedding gather and its segment-sum gradient, 4096 ids into [256,128]',
        gradsOf(
          (t) => tf.gather(t, tf.tensor(ids, [4096], 'int32')),
          () => [rand([256, 128], 16)],
        ),
      ],
      [
        'fused GELU and Adam(W) on 40000 elements',
        () => {
          const h = {
            lr: 3e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            biasCorrection1: 0.1,
            biasCorrection2: 0.001,
            l2: 0.01,
            decoupledDecay: 3e-5,
          };
          const [p, m, v, g] = [
            rand([40000], 17),
            rand([40000], 18, 0.1),
            rand([40000], 19, 0.01, 0.02),
            rand([40000], 20),
          ];
          return [gelu(p), ...adamUpdate(p, m, v, g, h)!];
        },
      ],
    ];
    for (const [name, build] of cases) {
      it(`${name}: bitwise equal at 1 and 2 threads and across runs at 2`, async () => {
        const one = await at(1, build);
        for (let run = 1; run <= 4; run++)
          expectBitwise(await at(2, build), one, `${name}, 2 threads (run ${run}) vs 1`);
      });
    }

    it('layerNormGrad called back to back (the pool warm, as in training): 200 runs at 2 threads equal 1 thread', () => {
      // A direct test of the kernel: the addon takes any ArrayBuffer as its heap. Back-to-back calls keep the second
      // thread spinning, so it takes rows in every call (through tfjs, it is often still asleep and the race hidden).
      const addon = loadAddon()!;
      for (const [rows, n] of [
        [4096, 32],
        [2048, 64],
      ]) {
        const sizes = {
          x: rows * n,
          g: n,
          b: n,
          dy: rows * n,
          y: rows * n,
          mean: rows,
          rstd: rows,
          dx: rows * n,
          dg: n,
          db: n,
        };
        const off: Record<string, number> = {};
        let bytes = 64; // offset 0 is the wasm allocator's failure value, which the addon refuses
        for (const [k, count] of Object.entries(sizes)) {
          off[k] = bytes;
          bytes += count * 4;
        }
        const heap = new ArrayBuffer(bytes);
        const f = new Float32Array(heap);
        (['x', 'g', 'b', 'dy'] as const).forEach((k, i) =>
          f.set(Float32Array.from(randomArray(sizes[k], 21 + i, 2)), off[k] / 4),
        );
        addon.layerNorm(heap, off.x, off.g, off.b, off.y, off.mean, off.rstd, rows, n, 1e-5);
        // dx, dg and db lie one after the other.
        const grad = () => {
          addon.layerNormGrad(heap, off.x, off.g, off.dy, off.mean, off.rstd, off.dx, off.dg, off.db, rows, n);
          return [f.slice(off.dx / 4, off.dx / 4 + rows * n + 2 * n)];
        };
        addon.setThreads(1);
        const one = grad();
        addon.setThreads(2);
        for (let run = 1; run <= 200; run++)
          expectBitwise(grad(), one, `layerNormGrad [${rows},${n}], 2 threads (run ${run}) vs 1`);
      }
    });

    it('setThreads rejects a count outside [1, 64] with the value it got', () => {
      const addon = loadAddon()!;
      const before = nativeInfo()?.threads;
      expect(() => addon.setThreads(0)).toThrow(/setThreads: n must be an integer in \[1, 64\], got 0/);
      expect(() => addon.setThreads(2.5)).toThrow(/got 2\.5/);
      expect(() => addon.setThreads('2' as unknown as number)).toThrow(/setThreads: n must be a number/);
      expect(nativeInfo()?.threads).toBe(before);
    });
  });

  describe('transformer pieces', () => {
    it('layer norm (moments, rsqrt) and GELU (erf): outputs and gradients', async () => {
      const ln = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(x, -1, true);
        const y = x
          .sub(mean)
          .mul(tf.rsqrt(variance.add(1e-5)))
          .mul(g)
          .add(b);
        return y.mul(tf.erf(y.mul(Math.SQRT1_2)).add(1)).mul(0.5);
      };
      await parity(
        gradsOf(ln, () => [rand([4, 7, 129], 1, 2), rand([129], 2), rand([129], 3)]),
        { rtol: 1e-3, atol: 1e-4 },
      );
    });

    it('clone and same-dtype cast share data safely; other casts convert', async () => {
      await backend.setBackend('wasm-native');
      const x = tf.tensor([1.5, -2, 3]);
      const c = tf.clone(x);
      const f = x.cast('float32');
      x.dispose();
      expect(Array.from(c.dataSync())).toEqual([1.5, -2, 3]);
      expect(Array.from(f.dataSync())).toEqual([1.5, -2, 3]);
      expect(Array.from(c.cast('int32').dataSync())).toEqual([1, -2, 3]);
      expect(Array.from(tf.tensor([1, 2], [2], 'int32').cast('float32').dataSync())).toEqual([1, 2]);
      tf.dispose([c, f]);
      expectNoLeak(() => tf.tidy(() => void tf.clone(tf.ones([3])).cast('float32')));
    });

    it('fused layerNorm, gelu and logSoftmax equal the composed tfjs ops, outputs and gradients', async () => {
      const composedLn = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(x, -1, true);
        return x
          .sub(mean)
          .mul(tf.rsqrt(variance.add(1e-5)))
          .mul(g)
          .add(b);
      };
      for (const shape of [
        [1, 1],
        [3, 7],
        [4, 5, 129],
        [2048, 128],
      ]) {
        const n = shape[shape.length - 1];
        const ins = () => [rand(shape, 1, 2, 0.5), rand([n], 2, 1, 1), rand([n], 3)];
        await parity(
          gradsOf((x, g, b) => layerNorm(x, g, b), ins),
          { rtol: 1e-3, atol: 1e-4 },
          `layerNorm ${JSON.stringify(shape)}`,
          gradsOf(composedLn, ins),
        );
        const composedGelu = (x: tf.Tensor) => x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5);
        await parity(
          gradsOf(gelu, () => [rand(shape, 4, 4)]),
          { rtol: 1e-4, atol: 1e-5 },
          `gelu ${JSON.stringify(shape)}`,
          gradsOf(composedGelu, () => [rand(shape, 4, 4)]),
        );
        await parity(
          gradsOf(logSoftmax, () => [rand(shape, 5, 6)]),
          { rtol: 1e-4, atol: 1e-5 },
          `logSoftmax ${JSON.stringify(shape)}`,
          gradsOf(
            (x) => tf.logSoftmax(x),
            () => [rand(shape, 5, 6)],
          ),
        );
      }
      await backend.setBackend('wasm-native');
      expect(() => layerNorm(tf.ones([2, 3]), tf.ones([4]), tf.ones([3]))).toThrow(
        /gamma \[4\] and beta \[3\] must both be \[3\], the last axis of x \[2,3\]/,
      );
      const x = rand([4, 9], 1);
      const g = tf.ones([9]);
      const b = tf.zeros([9]);
      expectNoLeak(() => tf.tidy(() => void tf.grads((a: tf.Tensor) => gelu(layerNorm(a, g, b)).sum())([x])));
      tf.dispose([x, g, b]);
    });

    it('fused Adam(W) update equals the tfjs-op formula', async () => {
      const h = {
        lr: 3e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        biasCorrection1: 1 - 0.9 ** 3,
        biasCorrection2: 1 - 0.999 ** 3,
        l2: 0.01,
        decoupledDecay: 3e-5,
      };
      const ins = () => [rand([7, 129], 1), rand([7, 129], 2, 0.1), rand([7, 129], 3, 0.01, 0.02), rand([7, 129], 4)];
      const reference = () => {
        const [p, m, v, g0] = ins();
        const g = g0.add(p.mul(h.l2));
        const m1 = m.mul(h.beta1).add(g.mul(1 - h.beta1));
        const v1 = v.mul(h.beta2).add(g.square().mul(1 - h.beta2));
        const p1 = p
          .mul(1 - h.decoupledDecay)
          .sub(m1.div(v1.div(h.biasCorrection2).sqrt().add(h.eps)).mul(h.lr / h.biasCorrection1));
        return [p1, m1, v1];
      };
      await parity(
        () => {
          const [p, m, v, g] = ins();
          const r = adamUpdate(p, m, v, g, h);
          expect(r).not.toBeNull();
          return r!;
        },
        { rtol: 1e-5, atol: 1e-7 },
        'adam',
        reference,
      );
      await backend.setBackend('cpu');
      expect(adamUpdate(tf.ones([2]), tf.ones([2]), tf.ones([2]), tf.ones([2]), h)).toBeNull();
      expect(() => adamUpdate(tf.ones([2]), tf.ones([3]), tf.ones([2]), tf.ones([2]), h)).toThrow(
        /m has shape \[3\] but the variable has \[2\]/,
      );
    });

    it('a 2-layer MLP training step leaks no tensors', async () => {
      await backend.setBackend('wasm-native');
      const w1 = tf.variable(rand([32, 64], 1, 0.1));
      const w2 = tf.variable(rand([64, 16], 2, 0.1));
      const x = rand([8, 32], 3);
      const opt = tf.train.adam(1e-3);
      const step = () => {
        opt.minimize(
          () =>
            tf
              .logSoftmax(tf.tanh(x.matMul(w1)).matMul(w2))
              .mean()
              .neg() as tf.Scalar,
        );
      };
      expectNoLeak(step);
      tf.dispose([w1, w2, x]);
      opt.dispose();
    });
  });
});

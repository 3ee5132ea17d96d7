/** al.profile: time, calls and bytes per kernel and phase (lib/bench/profile.ts), and `attnlab bench --profile`. */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { profile } from '../lib/bench/profile.js';
import { benchCommand } from '../lib/cli/bench.js';

describe.each(['cpu', 'wasm-native'] as const)('profile on %s', (name) => {
  beforeAll(async () => {
    await backend.setBackend(name);
  });

  it('counts every kernel call in the phase it was marked in, and the shares add up to 1', async () => {
    const a = tf.randomNormal([64, 64], 0, 1, 'float32', 1);
    const before = tf.memory().numTensors;
    const p = await profile(
      (mark) => {
        mark('products');
        const x = tf.matMul(a, a);
        const y = tf.matMul(x, a);
        mark('sums');
        const z = tf.add(y, a);
        const w = tf.add(z, x);
        tf.dispose([x, y, z]);
        return w;
      },
      { warmup: 2 },
    );
    expect(tf.memory().numTensors).toBe(before + 1); // only the result, which is ours
    const calls = (phase: string) => p.rows.filter((r) => r.phase === phase).reduce((s, r) => s + r.calls, 0);
    expect(calls('products')).toBe(2);
    expect(calls('sums')).toBe(2);
    expect(p.rows.find((r) => r.phase === 'sums')!.kernel).toBe('Add');
    expect(p.kernelCalls).toBe(4);
    expect(p.phases.map((ph) => ph.phase)).toEqual(['products', 'sums']);
    expect(p.rows.reduce((s, r) => s + r.share, 0)).toBeCloseTo(1, 6);
    expect(p.kernelMs).toBeGreaterThan(0);
    expect(p.wallMs).toBeGreaterThanOrEqual(p.kernelMs * 0.5);
    expect(p.rows.find((r) => r.phase === 'products')!.bytesAdded).toBe(2 * 64 * 64 * 4);
    expect(p.backend).toBe(name);
    const fig = p.figure();
    expect(fig.data.map((t) => t.name)).toEqual(['products', 'sums']);
    expect(p.table()).toMatch(/products\s+\S+\s+2\s/);
    const df = await p.dataFrame();
    expect(df.shape).toEqual([p.rows.length, 7]);
    tf.dispose([a, p.result]);
  });

  // The cpu backend takes minutes for this step; wasm-native seconds.
  it.skipIf(name === 'cpu')(
    'splits a ToyLM training step into forward, backward and optimizer',
    async () => {
      const { WORKLOADS } = await import('../lib/bench/workloads.js');
      const inst = await WORKLOADS.find((w) => w.name === 'toylm-step')!.setup();
      const p = await profile((mark) => inst.run(mark), { warmup: 1 });
      inst.dispose();
      const phase = (n: string) => p.phases.find((ph) => ph.phase === n)!;
      expect(p.phases.map((ph) => ph.phase)).toEqual(['forward', 'backward', 'optimizer']);
      for (const n of ['forward', 'backward', 'optimizer']) expect(phase(n).calls).toBeGreaterThan(0);
      expect(p.rows.filter((r) => r.phase === 'forward').reduce((s, r) => s + r.calls, 0)).toBe(phase('forward').calls);
      expect(p.rows.some((r) => r.phase === 'backward' && /MatMul/.test(r.kernel))).toBe(true);
    },
    120_000,
  );
});

describe('profile arguments and the command line', () => {
  afterAll(async () => {
    await backend.setBackend('cpu');
  });

  it('rejects bad arguments by name', async () => {
    await expect(profile(42 as unknown as () => void)).rejects.toThrow(/profile: fn must be a function, got number/);
    await expect(profile(() => {}, { warmup: -1 })).rejects.toThrow(
      /profile: opts.warmup must be an integer >= 0, got -1/,
    );
    await expect(profile((mark) => mark(''))).rejects.toThrow(/profile: mark\(phase\) needs a non-empty string/);
  });

  it('attnlab bench --profile prints the per-kernel table, and names the workloads on a typo', async () => {
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      expect(await benchCommand(['--profile', 'gemm-256', '--backends', 'cpu'])).toBe(0);
      expect(out.join('\n')).toMatch(/backend cpu: kernels .* ms of .* ms wall/);
      expect(out.join('\n')).toMatch(/run\s+(BatchMatMul|MatMul)\s+1\s/);
      expect(await benchCommand(['--profile', 'nosuch'])).toBe(2);
      expect(err.mock.calls.flat().join('\n')).toMatch(/--profile: no workload 'nosuch'; known: gemm-256/);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
  }, 60_000);
});

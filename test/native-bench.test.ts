/** `attnlab bench` end to end on the smallest workload, without the PyTorch peer: table, JSON report, usage errors. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadAddon } from '../lib/backend/native/load.js';
import { formatTable, median, PEAK_GFLOPS, selectWorkloads, WORKLOADS } from '../lib/bench/index.js';
import { measurePeak, peakText } from '../lib/bench/runner.js';
import { benchCommand } from '../lib/cli/bench.js';

describe('attnlab bench', () => {
  it('registers the workloads the issue names, each with a FLOP count and a peer description', () => {
    expect(WORKLOADS.map((w) => w.name)).toEqual([
      'gemm-256',
      'gemm-1024',
      'gemm-2048',
      'attn-causal-128-fwd',
      'attn-causal-128-fwdbwd',
      'attn-causal-512-fwd',
      'attn-causal-512-fwdbwd',
      'attn-causal-2048-fwd',
      'attn-causal-2048-fwdbwd',
      'toylm-step',
      'toylm-decode',
      'toylm-decode-ops',
      'linscan-2048-fwd',
      'linscan-2048-fwdbwd',
      'linscan-2048-fwdbwd-chunked',
    ]);
    for (const w of WORKLOADS) {
      expect(w.flops).toBeGreaterThan(0);
      expect(w.peer.kind).toBeTruthy();
    }
    expect(selectWorkloads('gemm-1024,toylm').map((w) => w.name)).toEqual([
      'gemm-1024',
      'toylm-step',
      'toylm-decode',
      'toylm-decode-ops',
    ]);
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
  });

  it('runs a workload and writes a JSON report', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'attnlab-bench-')), 'report.json');
    const logs: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void logs.push(s));
    const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect(await benchCommand(['--only', 'gemm-256', '--repeats', '2', '--peer', 'none', '--out', out])).toBe(0);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
    const report = JSON.parse(readFileSync(out, 'utf8'));
    expect(report.rows.length).toBeGreaterThanOrEqual(1);
    for (const row of report.rows) {
      expect(row.workload).toBe('gemm-256');
      expect(row.samplesMs).toHaveLength(2);
      expect(row.gflops).toBeGreaterThan(0);
    }
    expect(logs.join('\n')).toContain('gemm-256');
    // % of peak is against the peak measured in this run (FMA probe before and after), when the addon is built.
    const peak = report.machine.peak;
    expect(report.machine.nominalPeakGflops).toBe(PEAK_GFLOPS);
    if (loadAddon()) {
      expect(peak.source).toBe('fma-probe');
      expect(peak.probes).toHaveLength(2);
      expect(report.machine.peakGflops).toBe(Math.max(...peak.probes));
    } else expect(peak.source).toBe('nominal');
    for (const row of report.rows) expect(row.peakFraction).toBeCloseTo(row.gflops / report.machine.peakGflops, 9);
    expect(formatTable(report)).toContain(peakText(report.machine));
    expect(formatTable(report)).toMatch(/workload\s+backend\s+path\s+median ms/);
  });

  it('measures the FMA peak with the native probe, and names a bad argument', () => {
    const addon = loadAddon();
    if (!addon) return; // no native build: the report falls back to the nominal peak (checked above)
    const r = addon.fmaPeak(0.05, 1);
    expect(r.threads).toBe(1);
    expect(r.isa).toBe(addon.info().isa);
    // One core of any x86-64 this runs on does between 1 and 1000 fp32 GFLOP/s.
    expect(r.gflops).toBeGreaterThan(1);
    expect(r.gflops).toBeLessThan(1000);
    expect(measurePeak(0.05).source).toBe('fma-probe');
    expect(() => addon.fmaPeak(0, 1)).toThrow(/fmaPeak: seconds must be in \(0, 10\], got 0/);
    expect(() => addon.fmaPeak(0.1, 1.5)).toThrow(/fmaPeak: threads must be an integer in \[1, 256\], got 1.5/);
  });

  it('rejects bad options with a usage message and exit code 2', async () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect(await benchCommand(['--repeats', '0'])).toBe(2);
      expect(await benchCommand(['--only', 'nothing-like-this'])).toBe(2);
      expect(await benchCommand(['--peer', 'jax'])).toBe(2);
      expect(await benchCommand(['--bogus'])).toBe(2);
      expect(err.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(/--repeats must be an integer >= 1, got '0'/);
    } finally {
      err.mockRestore();
    }
  });
});

/**
 * Benchmarks: a registry of named workloads (GEMM, causal attention, a ToyLM training step), run on the library's
 * backends interleaved with PyTorch CPU, reported as medians, GFLOP/s against the machine's peak and ratios to PyTorch.
 * `attnlab bench` is the command-line front end (lib/cli/bench.ts).
 */

export { ensureTorch, findTorchPython, peerScript, TorchPeer } from './peer.js';
export { type ProfileOptions, type ProfileResult, type ProfileRow, profile } from './profile.js';
export type { BenchOptions, BenchReport, BenchRow } from './runner.js';
export { formatTable, measurePeak, median, PEAK_GFLOPS, type PeakMeasurement, peakText, runBench } from './runner.js';
export type { Instance, Target, Workload } from './workloads.js';
export { selectWorkloads, TOYLM, WORKLOADS } from './workloads.js';

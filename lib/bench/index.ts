/**
 * Benchmarks: a registry of named workloads (GEMM, causal attention, a ToyLM training step), run on the library's
 * backends interleaved with PyTorch CPU, reported as medians, GFLOP/s against the machine's peak and ratios to PyTorch.
 * `attnlab bench` is the command-line front end (lib/cli/bench.ts).
 */
export { WORKLOADS, TOYLM, selectWorkloads } from './workloads.js';
export type { Workload, Instance, Target } from './workloads.js';
export { runBench, formatTable, median, PEAK_GFLOPS } from './runner.js';
export type { BenchOptions, BenchReport, BenchRow } from './runner.js';
export { TorchPeer, ensureTorch, findTorchPython, peerScript } from './peer.js';

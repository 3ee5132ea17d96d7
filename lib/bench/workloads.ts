/**
 * The benchmark registry: named workloads, each with its useful FLOP count, a tfjs implementation for the library's
 * backends and a description of the same computation for the PyTorch peer (lib/bench/peer/torch_bench.py).
 */
import * as tf from '@tensorflow/tfjs';
import { flashSupports } from '../attention/flash.js';
import { causalLinearScan, type LinearScanPath, linearScanPath, SCAN_CHUNK } from '../attention/linear-scan.js';
import { sdpa } from '../attention/sdpa.js';
import * as masks from '../masks/index.js';

/** A workload built on the active backend: `run()` does one timed unit of work, synchronously. */
export interface Instance {
  /** `mark(phase)`, when given, names the phase of the kernels that follow (see lib/bench/profile.ts). */
  run(mark?: (phase: string) => void): void;
  dispose(): void;
  /** Which implementation ran, e.g. 'flash' or 'sdpa' (shown in the table). */
  path?: string;
}

/** A pass condition on the ratio time(library) / time(PyTorch), measured in the same run. */
export interface Target {
  maxRatio: number;
  text: string;
}

export interface Workload {
  name: string;
  description: string;
  /** Useful floating-point operations per run (for GFLOP/s); approximate for the training step. */
  flops: number;
  /** Same computation for the PyTorch peer. */
  peer: { kind: string; params: Record<string, number> };
  target?: Target;
  setup(): Promise<Instance>;
}

const random = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

function gemm(n: number, target?: Target): Workload {
  return {
    name: `gemm-${n}`,
    description: `C = A B, ${n} x ${n} float32`,
    flops: 2 * n ** 3,
    peer: { kind: 'gemm', params: { n } },
    target,
    async setup() {
      const a = random([n, n], 1);
      const b = random([n, n], 2);
      return {
        run: () => tf.matMul(a, b).dispose(),
        dispose: () => tf.dispose([a, b]),
        path: 'matMul',
      };
    },
  };
}

const BH = 8;
const DIM = 64;

function attention(seq: number, backward: boolean, target?: Target): Workload {
  // Causal: half the score matrix is needed. Forward 2 products, backward 5 (FlashAttention-2's count).
  const fwdFlops = (4 * BH * seq * seq * DIM) / 2;
  return {
    name: `attn-causal-${seq}-${backward ? 'fwdbwd' : 'fwd'}`,
    description: `causal attention, batch*heads ${BH}, dim ${DIM}, seq ${seq}, ${backward ? 'forward + backward' : 'forward'}`,
    flops: backward ? fwdFlops * 3.5 : fwdFlops,
    peer: { kind: backward ? 'attn-fwdbwd' : 'attn-fwd', params: { bh: BH, seq, dim: DIM } },
    target,
    async setup() {
      const q = random([1, BH, seq, DIM], 1);
      const k = random([1, BH, seq, DIM], 2);
      const v = random([1, BH, seq, DIM], 3);
      const dy = random([1, BH, seq, DIM], 4);
      const mask = masks.causal();
      const fused = flashSupports(q, k, v, { mask }).length === 0;
      const attn = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => sdpa(a, b, c, { mask });
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => attn(a, b, c).mul(dy).sum());
      return {
        run: backward ? () => tf.dispose(grads([q, k, v])) : () => attn(q, k, v).dispose(),
        dispose: () => tf.dispose([q, k, v, dy]),
        path: fused ? 'flash' : 'sdpa',
      };
    },
  };
}

export const TOYLM = { vocab: 256, dModel: 128, heads: 4, layers: 2, seq: 128, batch: 16 } as const;

/** FLOPs of one training step: 6 per parameter per token for the products, plus causal attention (fwd + bwd). */
function toylmFlops(): number {
  const { vocab, dModel: d, layers, seq, batch } = TOYLM;
  const matmulParams = layers * (4 * d * d + 8 * d * d) + d * vocab;
  const attn = layers * 3.5 * ((4 * seq * seq * d) / 2);
  return batch * (6 * seq * matmulParams + attn);
}

function toylmStep(target?: Target): Workload {
  const c = TOYLM;
  return {
    name: 'toylm-step',
    description: `ToyLM training step: ${c.layers} layers, d_model ${c.dModel}, ${c.heads} heads, seq ${c.seq}, batch ${c.batch}, vocab ${c.vocab}, Adam`,
    flops: toylmFlops(),
    peer: { kind: 'toylm-step', params: { ...c } },
    target,
    async setup() {
      const { ToyLM } = await import('../layers/toylm.js');
      const { Adam } = await import('../train/optim.js');
      const model = new ToyLM({
        vocab: c.vocab,
        dModel: c.dModel,
        heads: c.heads,
        layers: c.layers,
        maxLen: c.seq,
        seed: 0,
      });
      const opt = new Adam(model.variables(), { lr: 1e-3 });
      const tokens = tf.randomUniform([c.batch, c.seq + 1], 0, c.vocab, 'int32', 5);
      const inputs = tokens.slice([0, 0], [c.batch, c.seq]);
      const targets = tokens.slice([0, 1], [c.batch, c.seq]);
      const probe = random([1, c.heads, c.seq, c.dModel / c.heads], 1);
      const path =
        flashSupports(probe, probe, probe, { mask: masks.causal() }).length === 0
          ? 'ToyLM (flash available)'
          : 'ToyLM (sdpa)';
      probe.dispose();
      return {
        run: (mark = () => {}) => {
          const { value, grads } = tf.variableGrads(() => {
            mark('forward');
            const loss = model.loss(inputs, targets);
            mark('backward');
            return loss;
          });
          mark('optimizer');
          opt.apply(grads);
          value.dataSync();
          tf.dispose([value, ...Object.values(grads)]);
        },
        dispose: () => {
          tf.dispose([tokens, inputs, targets]);
          model.dispose();
        },
        path,
      };
    },
  };
}

/** BASED-like shapes for the linear-attention scan: 8 batch x heads, Taylor features of d 16 (1 + 16 + 256), dv 64. */
export const LINSCAN = { bh: 8, d: 273, e: 64 } as const;

/**
 * The causal linear-attention scan y_t = Σ_{i<=t} (q_t·k_i) v_i (lib/attention/linear-scan.ts), chunked (64 rows):
 * 'auto' runs the native kernel on wasm-native; 'chunked' the same algorithm composed from tfjs ops. The PyTorch
 * peer runs the same chunked algorithm. FLOPs of the chunked algorithm per slice: forward T·C·(D+E) (in-chunk pairs)
 * + 4·T·D·E (reading and updating the state); backward 3·T·C·(D+E) + 10·T·D·E.
 */
function linearScan(seq: number, path: LinearScanPath, backward: boolean): Workload {
  const { bh, d, e } = LINSCAN;
  const c = SCAN_CHUNK;
  const fwd = bh * (seq * c * (d + e) + 4 * seq * d * e);
  const bwd = bh * (3 * seq * c * (d + e) + 10 * seq * d * e);
  return {
    name: `linscan-${seq}-${backward ? 'fwdbwd' : 'fwd'}${path === 'auto' ? '' : `-${path}`}`,
    description: `causal linear-attention scan (${path === 'auto' ? 'native kernel where installed' : `${path} tfjs ops`}), batch*heads ${bh}, feature dim ${d}, value dim ${e}, seq ${seq}, ${backward ? 'forward + backward' : 'forward'}`,
    flops: backward ? fwd + bwd : fwd,
    peer: { kind: backward ? 'linscan-fwdbwd' : 'linscan-fwd', params: { bh, seq, d, e, chunk: c } },
    async setup() {
      const q = random([1, bh, seq, d], 1).mul(0.1);
      const k = random([1, bh, seq, d], 2).mul(0.1);
      const v = random([1, bh, seq, e], 3);
      const dy = random([1, bh, seq, e], 4);
      const scan = (a: tf.Tensor, b: tf.Tensor, x: tf.Tensor) => causalLinearScan(a, b, x, { path });
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, x: tf.Tensor) => scan(a, b, x).mul(dy).sum());
      return {
        run: backward ? () => tf.dispose(grads([q, k, v])) : () => scan(q, k, v).dispose(),
        dispose: () => tf.dispose([q, k, v, dy]),
        path: linearScanPath(q, path),
      };
    },
  };
}

/** Batch-1 greedy decoding (the hot path of the inference family): the ToyLM step's model shape, 64 new tokens. */
export const DECODE = { vocab: 256, dModel: 128, heads: 4, layers: 2, prompt: 16, tokens: 64 } as const;

/**
 * FLOPs of one `generate` run: the products over every position fed (prompt once, then one token per step) plus
 * attention over the keys each query sees (q·k and w·v, 4·keys·d per layer).
 */
function decodeFlops(): number {
  const { vocab, dModel: d, layers, prompt, tokens } = DECODE;
  const perToken = 2 * (layers * 12 * d * d + d * vocab);
  let f = prompt * perToken + layers * 4 * d * ((prompt * (prompt + 1)) / 2);
  for (let t = 1; t < tokens; t++) f += perToken + layers * 4 * d * (prompt + t);
  return f;
}

/**
 * `ToyLM.generate` at batch 1 (greedy, the output read back), against the same model decoding in PyTorch with a KV
 * cache in the peer. Tokens per second = 64 / (median ms / 1000). `fused`: the default path (on wasm-native one native
 * kernel for the whole loop, its own KV cache); unfused (`toylm-decode-ops`): tfjs ops token by token with a KVCache.
 */
function toylmDecode(fused: boolean, target?: Target): Workload {
  const c = DECODE;
  return {
    name: fused ? 'toylm-decode' : 'toylm-decode-ops',
    description: `ToyLM.generate${fused ? '' : ' with { fused: false } (tfjs ops per token)'}, batch 1, KV cache: ${c.layers} layers, d_model ${c.dModel}, ${c.heads} heads, vocab ${c.vocab}, prompt ${c.prompt}, ${c.tokens} new tokens per run (tokens/s = ${c.tokens * 1000} / median ms)`,
    flops: decodeFlops(),
    peer: { kind: 'toylm-decode', params: { ...c } },
    target,
    async setup() {
      const { ToyLM } = await import('../layers/toylm.js');
      const model = new ToyLM({
        vocab: c.vocab,
        dModel: c.dModel,
        heads: c.heads,
        layers: c.layers,
        maxLen: c.prompt + c.tokens,
        seed: 0,
      });
      const prompt = tf.randomUniform([1, c.prompt], 0, c.vocab, 'int32', 6);
      const path =
        fused && model.fusedDecodeSupport().length === 0
          ? 'ToyLM.generate (fused native kernel)'
          : 'ToyLM.generate (tfjs ops, KVCache)';
      return {
        run: () => {
          const out = model.generate(prompt, c.tokens, { fused });
          out.dataSync();
          out.dispose();
        },
        dispose: () => {
          prompt.dispose();
          model.dispose();
        },
        path,
      };
    },
  };
}

/** Every workload, in the order the table shows them. */
export const WORKLOADS: Workload[] = [
  gemm(256),
  gemm(1024, { maxRatio: 1 / 0.85, text: '>= 85% of PyTorch GFLOP/s' }),
  gemm(2048),
  ...[128, 512, 2048].flatMap((s) => [
    attention(s, false),
    attention(s, true, s >= 512 ? { maxRatio: 0.8, text: '<= 0.8x PyTorch time' } : undefined),
  ]),
  toylmStep({ maxRatio: 1.0, text: '<= 1.0x PyTorch time' }),
  toylmDecode(true, { maxRatio: 0.5, text: '<= 0.5x PyTorch time (>= 2x tokens/s)' }),
  toylmDecode(false),
  linearScan(2048, 'auto', false),
  linearScan(2048, 'auto', true),
  linearScan(2048, 'chunked', true),
];

/** Workloads whose name matches any of the comma-separated patterns (substring, or exact when it matches one). */
export function selectWorkloads(only?: string): Workload[] {
  if (!only) return WORKLOADS;
  const pats = only
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return WORKLOADS.filter((w) => pats.some((p) => w.name === p || w.name.includes(p)));
}

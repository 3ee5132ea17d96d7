/**
 * The causal linear-attention scan: the hot loop of the recurrent family (BASED, Flowformer, elu+1 linear attention;
 * Katharopoulos et al. 2020, "Transformers are RNNs", https://arxiv.org/abs/2006.16236, eq. 8-9):
 *
 *   y_t = Σ_{i<=t} (q_t · k_i) v_i = q_tᵀ S_t,   S_t = Σ_{i<=t} k_i v_iᵀ
 *
 * q and k are already feature-mapped (φ(q), φ(k)); the normaliser φ(q_t)·Σ_{i<=t} φ(k_i) is the same scan with v = 1,
 * so callers either append a ones column to v or compute it separately (lib/papers/recurrent/based/linear-attention.ts).
 *
 * Three paths, all equal up to float32 rounding (tested against `causalLinearScanReference`, outputs and gradients):
 *   'native'    one C++ kernel forward and one backward on wasm-native (lib/backend/native/src/kernels.inc,
 *               linscan_fwd / linscan_bwd): chunks of 64 rows take their own pairs directly and the earlier chunks
 *               through the running state S, O(T·(64·(D+E) + D·E)) work and O(D·E) memory per slice;
 *   'chunked'   the same chunked algorithm composed from tfjs ops (intra-chunk masked products plus an exclusive
 *               prefix sum of the chunk states), differentiated by tfjs: the peer the native kernel is benchmarked
 *               against, and the long-sequence path on backends without the kernel;
 *   'quadratic' tril(Q Kᵀ) V, the masked quadratic form: O(T²) but the fewest ops for short sequences.
 * 'auto' (the default) takes 'native' when the kernel is installed and the inputs are float32, else 'quadratic' up to
 * T = 256 and 'chunked' beyond.
 *
 * Shape legend: q, k [..., T, D]; v [..., T, E] -> y [..., T, E]; the leading axes (batch, heads) are independent.
 */
import * as tf from '@tensorflow/tfjs';
import { LINEAR_SCAN, LINEAR_SCAN_GRAD, nativeInstalled } from '../backend/native.js';
import { matmul } from '../backend/ops.js';
import { fmt, ShapeError } from '../util/shapes.js';

export type LinearScanPath = 'auto' | 'native' | 'chunked' | 'quadratic';
export const LINEAR_SCAN_PATHS: readonly LinearScanPath[] = ['auto', 'native', 'chunked', 'quadratic'];

/** Rows per chunk of the chunked paths (the native kernel's kScanChunk). */
export const SCAN_CHUNK = 64;

function check(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): void {
  if (q.rank < 2 || q.rank !== k.rank || q.rank !== v.rank)
    throw new ShapeError(
      `${fn}: q, k and v must have the same rank >= 2 ([..., T, D], [..., T, D], [..., T, E]); got q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)}`,
    );
  if (q.shape.some((n, i) => n !== k.shape[i]))
    throw new ShapeError(`${fn}: k must have q's shape ${fmt(q.shape)}, got ${fmt(k.shape)}`);
  const r = q.rank;
  if (q.shape.slice(0, r - 1).some((n, i) => n !== v.shape[i]))
    throw new ShapeError(
      `${fn}: v must be [${q.shape.slice(0, r - 1).join(', ')}, E] (q's leading axes and T), got ${fmt(v.shape)}`,
    );
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const)
    if (t.dtype !== 'float32') throw new TypeError(`${fn}: ${name} must be float32, got ${t.dtype}`);
}

/** Which path 'auto' (or an explicit request) resolves to for these inputs. */
export function linearScanPath(q: tf.Tensor, requested: LinearScanPath = 'auto'): Exclude<LinearScanPath, 'auto'> {
  if (!LINEAR_SCAN_PATHS.includes(requested))
    throw new RangeError(
      `causalLinearScan: path must be one of ${LINEAR_SCAN_PATHS.join(', ')}, got ${String(requested)}`,
    );
  const native = nativeInstalled() && tf.getBackend() === 'wasm';
  if (requested === 'native' && !native)
    throw new Error(
      `causalLinearScan: path 'native' needs the wasm-native backend (active: ${tf.getBackend()}, native kernels ${native ? 'installed' : 'not installed'})`,
    );
  if (requested !== 'auto') return requested;
  if (native) return 'native';
  return q.shape[q.rank - 2] <= 256 ? 'quadratic' : 'chunked';
}

/** y_t = Σ_{i<=t} (q_t · k_i) v_i for q, k [..., T, D] and v [..., T, E]; see the module comment for the paths. */
export function causalLinearScan(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: { path?: LinearScanPath } = {},
): tf.Tensor {
  const fn = 'causalLinearScan';
  check(fn, q, k, v);
  const path = linearScanPath(q, options.path ?? 'auto');
  if (q.size === 0 || v.size === 0) return tf.zeros(v.shape);
  if (path === 'quadratic') return quadratic(q, k, v);
  if (path === 'chunked') return chunked(q, k, v);
  const op = tf.customGrad(((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor, save: tf.GradSaveFunc) => {
    save([qq, kk, vv]);
    return {
      value: tf.engine().runKernel(LINEAR_SCAN, { q: qq, k: kk, v: vv }, {}) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) =>
        tf.engine().runKernel(LINEAR_SCAN_GRAD, { q: s[0], k: s[1], v: s[2], dy }, {}) as tf.Tensor[],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(q, k, v);
}

/** tril(Q Kᵀ) V. */
function quadratic(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const t = q.shape[q.rank - 2];
    const tril = tf.linalg.bandPart(tf.ones([t, t]), -1, 0);
    return matmul(matmul(q, k, false, true).mul(tril), v);
  });
}

/** The chunked scan composed from tfjs ops (zero-padded to a whole number of chunks; zero keys add nothing). */
function chunked(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const r = q.rank;
    const lead = q.shape.slice(0, r - 2);
    const [t, d, e] = [q.shape[r - 2], q.shape[r - 1], v.shape[r - 1]];
    const c = Math.min(SCAN_CHUNK, t);
    const n = Math.ceil(t / c);
    const pad = (x: tf.Tensor) =>
      n * c === t ? x : x.pad([...lead.map(() => [0, 0] as [number, number]), [0, n * c - t], [0, 0]]);
    const m = lead.reduce((a, b) => a * b, 1);
    const qc = pad(q).reshape([m, n, c, d]);
    const kc = pad(k).reshape([m, n, c, d]);
    const vc = pad(v).reshape([m, n, c, e]);
    const tril = tf.linalg.bandPart(tf.ones([c, c]), -1, 0);
    const intra = matmul(matmul(qc, kc, false, true).mul(tril), vc); // [m, n, c, e]
    // The state each chunk starts from: the sum of the earlier chunks' Kᵀ V (an exclusive prefix sum over n).
    const states = matmul(kc, vc, true, false).reshape([m, n, d * e]); // [m, n, d·e]
    const before = tf.linalg.bandPart(tf.ones([n, n]), -1, 0).sub(tf.eye(n)); // [n, n]: 1 where j < i
    const prev = matmul(before.expandDims(0).tile([m, 1, 1]), states).reshape([m, n, d, e]);
    const y = intra.add(matmul(qc, prev)).reshape([...lead, n * c, e]);
    return n * c === t ? y : y.slice([...lead.map(() => 0), 0, 0], [...lead, t, e]);
  });
}

/** Float64 reference: q, k [slices, T, D] and v [slices, T, E] flat row-major; returns y [slices, T, E] flat. */
export function causalLinearScanReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  shape: { slices: number; t: number; d: number; e: number },
): Float64Array {
  const { slices, t, d, e } = shape;
  const y = new Float64Array(slices * t * e);
  for (let s = 0; s < slices; s++)
    for (let i = 0; i < t; i++)
      for (let j = 0; j <= i; j++) {
        let w = 0;
        for (let c = 0; c < d; c++) w += q[(s * t + i) * d + c] * k[(s * t + j) * d + c];
        for (let c = 0; c < e; c++) y[(s * t + i) * e + c] += w * v[(s * t + j) * e + c];
      }
  return y;
}

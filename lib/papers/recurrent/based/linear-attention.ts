/**
 * Causal linear attention with a feature map, in three equal forms, and its float64 reference. Shared by BASED (the
 * Taylor map) and any paper of the family that needs a kernelised causal attention (Flowformer, elu+1 baselines).
 *
 *   y_t = φ(q_t)ᵀ S_t / (φ(q_t)ᵀ z_t + eps),   S_t = Σ_{i<=t} φ(k_i) v_iᵀ,   z_t = Σ_{i<=t} φ(k_i)
 *
 * Feature maps (Katharopoulos et al. 2020; Arora et al. 2024, BASED, https://arxiv.org/abs/2402.18668):
 *   'elu1'    φ(x) = elu(x) + 1                                                 (D = d)
 *   'taylor'  φ(x) = [1, x / d^{1/4}, vec(x ⊗ x) / (√2 · √d)]                     (D = 1 + d + d²)
 *             so φ(q)·φ(k) = 1 + q·k/√d + (q·k/√d)² / 2, the 2nd-order Taylor series of exp(q·k/√d)
 *             (HazyResearch/zoology, mixers/based.py TaylorExp).
 *   'identity' φ(x) = x (no normaliser is safe then; use with care).
 *
 * Forms: `linearAttentionParallel` (the training form: the numerator Σ_{i<=t} (φq_t·φk_i) v_i by `causalLinearScan`
 * (lib/attention/linear-scan.ts: the native chunked scan on wasm-native, BASED's "quadratic" view tril(φQ φKᵀ) V on
 * short sequences elsewhere), the denominator from cumsum(φK)); `linearAttentionCumsum` (the cumulative sum of outer
 * products, S_t for every t: memory T·D·dv, for checking); `linearAttentionStep` (one token at a time with the state (S, z): O(1) memory per token).
 *
 * Shape legend: q, k [b, h, T, d]; v [b, h, T, dv]; φ(q), φ(k) [b, h, T, D]; state S [b, h, D, dv], z [b, h, D];
 * output [b, h, T, dv].
 */
import * as tf from '@tensorflow/tfjs';
import { causalLinearScan } from '../../../attention/linear-scan.js';
import { matmul } from '../../../backend/ops.js';

export type FeatureMapKind = 'elu1' | 'taylor' | 'identity';
export const FEATURE_MAPS: readonly FeatureMapKind[] = ['elu1', 'taylor', 'identity'];

export interface LinearAttentionOptions {
  featureMap: FeatureMapKind;
  /** Added to the denominator; default 1e-12 (the official code's). */
  eps?: number;
}

function checkKind(fn: string, kind: unknown): asserts kind is FeatureMapKind {
  if (!FEATURE_MAPS.includes(kind as FeatureMapKind))
    throw new RangeError(`${fn}: featureMap must be one of ${FEATURE_MAPS.join(', ')}, got ${String(kind)}`);
}

/** D, the feature dimension φ maps a d-dimensional input to. */
export function featureDim(d: number, kind: FeatureMapKind): number {
  checkKind('featureDim', kind);
  if (!Number.isInteger(d) || d < 1) throw new RangeError(`featureDim: d must be an integer >= 1, got ${d}`);
  return kind === 'taylor' ? 1 + d + d * d : d;
}

/** φ(x) over the last axis: [..., d] -> [..., D]. */
export function featureMap(x: tf.Tensor, kind: FeatureMapKind): tf.Tensor {
  checkKind('featureMap', kind);
  if (x.rank < 1) throw new RangeError(`featureMap: x must have rank >= 1, got shape [${x.shape}]`);
  return tf.tidy(() => {
    if (kind === 'identity') return x.clone();
    if (kind === 'elu1') return tf.elu(x).add(1);
    const d = x.shape[x.rank - 1];
    const lead = x.shape.slice(0, -1);
    const outer = x
      .expandDims(-1)
      .mul(x.expandDims(-2))
      .reshape([...lead, d * d]);
    return tf.concat(
      [
        tf.onesLike(x.slice(Array(x.rank).fill(0), [...lead, 1])),
        x.div(d ** 0.25),
        outer.div(Math.SQRT2 * Math.sqrt(d)),
      ],
      -1,
    );
  });
}

/** Float64 φ of one vector. */
export function featureMap64(x: ArrayLike<number>, kind: FeatureMapKind): Float64Array {
  checkKind('featureMap64', kind);
  const d = x.length;
  if (kind === 'identity') return Float64Array.from(x);
  if (kind === 'elu1') return Float64Array.from(x, (a) => (a > 0 ? a + 1 : Math.exp(a)));
  const out = new Float64Array(1 + d + d * d);
  out[0] = 1;
  const r = d ** 0.25;
  for (let i = 0; i < d; i++) out[1 + i] = x[i] / r;
  const s = Math.SQRT2 * Math.sqrt(d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) out[1 + d + i * d + j] = (x[i] * x[j]) / s;
  return out;
}

function checkQkv4(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): void {
  if (q.rank !== 4) throw new RangeError(`${fn}: q must be [b, h, T, d], got shape [${q.shape}]`);
  if (k.rank !== 4 || k.shape.some((s, i) => s !== q.shape[i]))
    throw new RangeError(`${fn}: k must have q's shape [${q.shape}], got [${k.shape}]`);
  if (v.rank !== 4 || v.shape.slice(0, 3).some((s, i) => s !== q.shape[i]))
    throw new RangeError(`${fn}: v must be [${q.shape.slice(0, 3)}, dv], got [${v.shape}]`);
}

function epsOf(fn: string, o: LinearAttentionOptions): number {
  checkKind(fn, o?.featureMap);
  const eps = o.eps ?? 1e-12;
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new RangeError(`${fn}: eps must be a finite number >= 0, got ${eps}`);
  return eps;
}

/**
 * Inclusive prefix sum along `axis`, as a product with a triangular matrix (tfjs's cumsum gradient breaks on an axis
 * other than the last).
 */
export function prefixSum(x: tf.Tensor, axis: number): tf.Tensor {
  return tf.tidy(() => {
    const r = x.rank;
    const perm = [...Array(r).keys()].filter((i) => i !== axis).concat([axis]);
    const inv = perm.map((_, i) => perm.indexOf(i));
    const t = x.shape[axis];
    const upper = tf.linalg.bandPart(tf.ones([t, t]), 0, -1); // [s, t] = 1 for s <= t
    return matmul(x.transpose(perm), upper).transpose(inv);
  });
}

/** tf.tidy for a function returning a plain object of tensors (tidy keeps every tensor in it). */
export function tidyObject<T>(fn: () => T): T {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as T;
}

/**
 * Causal linear attention, masked quadratic form (training): O(T² D) time, no [T, D, dv] state per position.
 * q, k [b, h, T, d], v [b, h, T, dv] -> [b, h, T, dv].
 */
export function linearAttentionParallel(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: LinearAttentionOptions,
): tf.Tensor4D {
  const fn = 'linearAttentionParallel';
  checkQkv4(fn, q, k, v);
  const eps = epsOf(fn, options);
  return tf.tidy(() => {
    const pq = featureMap(q, options.featureMap);
    const pk = featureMap(k, options.featureMap);
    const den = pq.mul(prefixSum(pk, 2)).sum(-1, true).add(eps); // [b, h, T, 1]
    return causalLinearScan(pq, pk, v).div(den) as tf.Tensor4D; // the native chunked scan on wasm-native
  });
}

/** Causal linear attention as the cumulative sum of φ(k_i) v_iᵀ (memory b·h·T·D·dv); equals the parallel form. */
export function linearAttentionCumsum(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: LinearAttentionOptions,
): tf.Tensor4D {
  const fn = 'linearAttentionCumsum';
  checkQkv4(fn, q, k, v);
  const eps = epsOf(fn, options);
  return tf.tidy(() => {
    const pq = featureMap(q, options.featureMap);
    const pk = featureMap(k, options.featureMap);
    const s = prefixSum(pk.expandDims(-1).mul(v.expandDims(-2)), 2); // [b, h, T, D, dv]
    const num = pq.expandDims(-1).mul(s).sum(-2); // [b, h, T, dv]
    const den = pq.mul(prefixSum(pk, 2)).sum(-1, true).add(eps);
    return num.div(den) as tf.Tensor4D;
  });
}

/** The recurrent state: S [b, h, D, dv] and z [b, h, D]. */
export interface LinearAttentionState {
  s: tf.Tensor4D;
  z: tf.Tensor3D;
}

/** The zero state for b rows, h heads, key dim d (mapped to D) and value dim dv. */
export function linearAttentionInit(
  b: number,
  h: number,
  d: number,
  dv: number,
  kind: FeatureMapKind,
): LinearAttentionState {
  const big = featureDim(d, kind);
  return { s: tf.zeros([b, h, big, dv]) as tf.Tensor4D, z: tf.zeros([b, h, big]) as tf.Tensor3D };
}

/** Bytes the state keeps, counted from its tensors. */
export function stateBytes(tensors: tf.Tensor[]): number {
  return tensors.reduce((a, t) => a + t.size * (t.dtype === 'float32' || t.dtype === 'int32' ? 4 : 1), 0);
}

/**
 * One step: q_t, k_t [b, h, d], v_t [b, h, dv] -> y_t [b, h, dv] and the next state. The caller disposes the old
 * state (the new one is new tensors).
 */
export function linearAttentionStep(
  state: LinearAttentionState,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: LinearAttentionOptions,
): { y: tf.Tensor3D; state: LinearAttentionState } {
  const fn = 'linearAttentionStep';
  const eps = epsOf(fn, options);
  if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3)
    throw new RangeError(`${fn}: q, k, v must be [b, h, d] / [b, h, dv], got [${q.shape}], [${k.shape}], [${v.shape}]`);
  const big = state.z.shape[2];
  const mapped = featureDim(q.shape[2] as number, options.featureMap);
  if (mapped !== big)
    throw new RangeError(`${fn}: the state's feature dim is ${big}, but q [${q.shape}] maps to ${mapped}`);
  return tidyObject(() => {
    const pq = featureMap(q, options.featureMap); // [b, h, D]
    const pk = featureMap(k, options.featureMap);
    const s = state.s.add(pk.expandDims(-1).mul(v.expandDims(-2))) as tf.Tensor4D;
    const z = state.z.add(pk) as tf.Tensor3D;
    const num = pq.expandDims(-1).mul(s).sum(-2); // [b, h, dv]
    const den = pq.mul(z).sum(-1, true).add(eps);
    return { y: num.div(den) as tf.Tensor3D, state: { s, z } };
  });
}

/** Runs `linearAttentionStep` over every position; returns [b, h, T, dv] and the final state (both the caller's). */
export function linearAttentionRecurrent(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: LinearAttentionOptions,
): { y: tf.Tensor4D; state: LinearAttentionState } {
  const fn = 'linearAttentionRecurrent';
  checkQkv4(fn, q, k, v);
  const [b, h, t, d] = q.shape;
  let state = linearAttentionInit(b, h, d, v.shape[3] as number, options.featureMap);
  const ys: tf.Tensor3D[] = [];
  for (let i = 0; i < t; i++) {
    const step = tidyObject(() => {
      const at = (x: tf.Tensor) => x.slice([0, 0, i, 0], [b, h, 1, x.shape[3] as number]).squeeze([2]);
      return linearAttentionStep(state, at(q), at(k), at(v), options);
    });
    tf.dispose([state.s, state.z]);
    state = step.state;
    ys.push(step.y);
  }
  const y = tf.stack(ys, 2) as tf.Tensor4D;
  tf.dispose(ys);
  return { y, state };
}

/**
 * Float64 reference: q, k [b, h, T, d] and v [b, h, T, dv] as flat row-major arrays; returns [b, h, T, dv] flat.
 */
export function linearAttentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  shape: { b: number; h: number; t: number; d: number; dv: number },
  options: LinearAttentionOptions,
): Float64Array {
  const eps = epsOf('linearAttentionReference', options);
  const { b, h, t, d, dv } = shape;
  const out = new Float64Array(b * h * t * dv);
  for (let bh = 0; bh < b * h; bh++) {
    const phiK: Float64Array[] = [];
    for (let i = 0; i < t; i++) {
      const o = (bh * t + i) * d;
      phiK.push(
        featureMap64(
          Array.from({ length: d }, (_, c) => k[o + c]),
          options.featureMap,
        ),
      );
      const pq = featureMap64(
        Array.from({ length: d }, (_, c) => q[o + c]),
        options.featureMap,
      );
      let den = eps;
      const num = new Float64Array(dv);
      for (let j = 0; j <= i; j++) {
        let w = 0;
        for (let c = 0; c < pq.length; c++) w += pq[c] * phiK[j][c];
        den += w;
        for (let c = 0; c < dv; c++) num[c] += w * v[(bh * t + j) * dv + c];
      }
      for (let c = 0; c < dv; c++) out[(bh * t + i) * dv + c] = num[c] / den;
    }
  }
  return out;
}

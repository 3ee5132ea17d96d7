/**
 * Titans' neural long-term memory and its MAG ("memory as a gate") variant.
 *
 * Memory (trained at test time on the associative loss ℓ = ½‖k_t W - v_t‖², chunked mini-batch GD):
 *   S_t = η_t S_{t-1} - θ_t ∇ℓ(W_c; k_t, v_t)      momentum "surprise"
 *   W_t = (1 - α_t) W_{t-1} + S_t                   forgetting gate
 *   y_t = q_t W_t
 * This is Miras' (l2 bias, l2 retention, GD + momentum) instance: `mirasMemory` runs it (chunked parallel form),
 * `mirasStep` is its per-token recurrent form. Ablations: no momentum (η = 0, no S state), no forgetting (α = 0).
 *
 * MAG: a sliding-window softmax attention branch and the memory branch, each output normalised, mixed by a gate:
 *   o_t = σ(g_t) ŷ^swa_t + (1 - σ(g_t)) ŷ^mem_t,   ŷ = y / sqrt(‖y‖² + ε)
 *
 * Differences from the paper (Behrouz, Zhong, Mirrokni 2025, arXiv 2501.00663): the memory is linear (one matrix); the
 * paper's is an MLP with >= 2 layers (the unofficial lucidrains/titans-pytorch was not read for this code). The paper's MAG gate is a learned nonlinearity over both branches; ours takes the
 * gate logits g as an input. No persistent memory tokens and no short convolutions inside this function.
 *
 * Shape legend: b batch, T tokens, dk key width, dv value width; q, k [b, T, dk], v [b, T, dv], g [b, T], o [b, T, dv].
 */
import * as tf from '@tensorflow/tfjs';
import { sdpa } from '../../../attention/index.js';
import { slidingWindow } from '../../../masks/index.js';
import {
  disposeState,
  initialState,
  type MemoryGates,
  type MemorySpec,
  type MemoryState,
  mirasMemory,
  mirasReference,
  mirasStep,
  type ReferenceGates,
  stateBytes,
  tidyObj,
} from '../miras/memory.js';

export interface TitansOptions {
  /** Keep the momentum state (default true). */
  momentum?: boolean;
  /** Use the forgetting gate α (default true). */
  forgetting?: boolean;
  /** Mini-batch size of the inner GD (default 16). */
  chunk?: number;
}

/** The Miras spec of Titans' memory (l2 bias, l2 retention when forgetting, momentum). */
export function titansSpec(opts: TitansOptions = {}): MemorySpec {
  const chunk = opts.chunk ?? 16;
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`titansSpec: chunk must be an integer >= 1, got ${chunk}`);
  return {
    bias: { kind: 'l2' },
    retention: { kind: opts.forgetting === false ? 'none' : 'l2' },
    momentum: opts.momentum !== false,
    chunk,
  };
}

/** Titans' memory over a sequence (chunked parallel form): y [b, T, dv] and the final state. */
export function titansMemory(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, gates: MemoryGates, opts: TitansOptions = {}) {
  return mirasMemory(q, k, v, gates, titansSpec(opts));
}

/** Causal softmax attention over the last `window` tokens (the query's own included); [b, T, d] in and out. */
export function slidingWindowAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, window: number): tf.Tensor3D {
  if (!Number.isInteger(window) || window < 1)
    throw new Error(`slidingWindowAttention: window must be an integer >= 1, got ${window}`);
  if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3)
    throw new Error(`slidingWindowAttention: q, k, v must be [b, T, d], got ranks ${q.rank}, ${k.rank}, ${v.rank}`);
  return tf.tidy(() => {
    const o = sdpa(q.expandDims(1), k.expandDims(1), v.expandDims(1), { mask: slidingWindow(window), path: 'dense' });
    return o.squeeze([1]) as tf.Tensor3D;
  });
}

const EPS = 1e-6;

/** o = σ(g) ŷ_swa + (1 - σ(g)) ŷ_mem with ŷ = y / sqrt(‖y‖² + ε); ySwa, yMem [..., dv], g [...]. */
export function magCombine(ySwa: tf.Tensor, yMem: tf.Tensor, gateLogits: tf.Tensor): tf.Tensor {
  if (ySwa.shape.join() !== yMem.shape.join())
    throw new Error(`magCombine: ySwa [${ySwa.shape}] and yMem [${yMem.shape}] must have the same shape`);
  if (gateLogits.shape.join() !== ySwa.shape.slice(0, -1).join())
    throw new Error(`magCombine: gateLogits must be [${ySwa.shape.slice(0, -1)}], got [${gateLogits.shape}]`);
  return tf.tidy(() => {
    const unit = (y: tf.Tensor) => tf.div(y, tf.sqrt(tf.add(tf.sum(tf.square(y), -1, true), EPS)));
    const g = tf.sigmoid(gateLogits).expandDims(-1);
    return tf.add(tf.mul(g, unit(ySwa)), tf.mul(tf.sub(1, g), unit(yMem)));
  });
}

export interface MagOptions extends TitansOptions {
  window: number;
  /** The gate's logits g [b, T]. */
  gateLogits: tf.Tensor;
}

/** MAG, parallel form: sliding-window attention and the chunked memory, gated. o [b, T, dv]. */
export function mag(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, gates: MemoryGates, opts: MagOptions): tf.Tensor3D {
  return tf.tidy(() => {
    const mem = titansMemory(q, k, v, gates, opts);
    const swa = slidingWindowAttention(q, k, v, opts.window);
    return magCombine(swa, mem.y, opts.gateLogits) as tf.Tensor3D;
  });
}

/**
 * MAG, recurrent form: a ring of the last `window` keys and values plus the memory state, one token at a time.
 * Returns o [b, T, dv] and the most bytes of state held at any step (window buffers + memory, measured).
 */
export function magRecurrent(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  gates: MemoryGates,
  opts: MagOptions,
): { y: tf.Tensor3D; maxStateBytes: number } {
  const [b, T, dk] = k.shape as number[];
  const dv = v.shape[2] as number;
  const memSpec = titansSpec(opts);
  let mem: MemoryState = initialState(memSpec, b, dk, dv);
  let keys: tf.Tensor3D | null = null;
  let values: tf.Tensor3D | null = null;
  let maxStateBytes = 0;
  const outs: tf.Tensor[] = [];
  const at = (g: number | tf.Tensor | undefined, t: number) =>
    g === undefined || typeof g === 'number' ? g : g.slice([0, t], [b, 1]);
  for (let t = 0; t < T; t++) {
    const next = tidyObj(() => {
      const qt = q.slice([0, t, 0], [b, 1, dk]);
      const kt = k.slice([0, t, 0], [b, 1, dk]);
      const vt = v.slice([0, t, 0], [b, 1, dv]);
      const kAll = keys ? tf.concat([keys, kt], 1) : kt;
      const vAll = values ? tf.concat([values, vt], 1) : vt;
      const n = kAll.shape[1] as number;
      const keep = Math.min(n, opts.window);
      const kWin = kAll.slice([0, n - keep, 0], [b, keep, dk]) as tf.Tensor3D;
      const vWin = vAll.slice([0, n - keep, 0], [b, keep, dv]) as tf.Tensor3D;
      const att = tf.softmax(tf.div(tf.matMul(qt, kWin, false, true), Math.sqrt(dk)));
      const ySwa = tf.matMul(att, vWin).reshape([b, dv]);
      const gt = {
        lr: at(gates.lr, t) as number | tf.Tensor,
        decay: at(gates.decay, t),
        momentum: at(gates.momentum, t),
      };
      const step = mirasStep(mem, qt.reshape([b, dk]), kt.reshape([b, dk]), vt.reshape([b, dv]), gt, memSpec);
      const o = magCombine(ySwa, step.y, opts.gateLogits.slice([0, t], [b, 1]).reshape([b]));
      // The window keeps window - 1 entries for the next token, which adds its own.
      const drop = Math.max(0, n - (opts.window - 1));
      const kKeep = opts.window > 1 ? kAll.slice([0, drop, 0], [b, n - drop, dk]) : null;
      const vKeep = opts.window > 1 ? vAll.slice([0, drop, 0], [b, n - drop, dv]) : null;
      return { o, mem: step.state, kKeep, vKeep };
    });
    disposeState(mem);
    tf.dispose([keys, values].filter((x): x is tf.Tensor3D => x !== null));
    mem = next.mem;
    keys = next.kKeep as tf.Tensor3D | null;
    values = next.vKeep as tf.Tensor3D | null;
    const bytes = stateBytes(mem) + (keys ? keys.size * 4 : 0) + (values ? values.size * 4 : 0);
    maxStateBytes = Math.max(maxStateBytes, bytes);
    outs.push(next.o);
  }
  const y = tf.stack(outs, 1) as tf.Tensor3D;
  tf.dispose([...outs, ...[keys, values].filter((x): x is tf.Tensor3D => x !== null)]);
  disposeState(mem);
  return { y, maxStateBytes };
}

/** Float64 reference of MAG: window softmax (scale 1/√dk) + `mirasReference` memory + the normalised gate mix. */
export function magReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dims: { b: number; T: number; dk: number; dv: number },
  gates: ReferenceGates,
  opts: TitansOptions & { window: number; gateLogits: ArrayLike<number> },
): Float64Array {
  const { b, T, dk, dv } = dims;
  const mem = mirasReference(q, k, v, dims, gates, titansSpec(opts)).y;
  const out = new Float64Array(b * T * dv);
  for (let n = 0; n < b; n++) {
    for (let t = 0; t < T; t++) {
      const i = n * T + t;
      const lo = Math.max(0, t - opts.window + 1);
      const sc: number[] = [];
      for (let j = lo; j <= t; j++) {
        let d = 0;
        for (let r = 0; r < dk; r++) d += q[i * dk + r] * k[(n * T + j) * dk + r];
        sc.push(d / Math.sqrt(dk));
      }
      const mx = Math.max(...sc);
      const e = sc.map((x) => Math.exp(x - mx));
      const z = e.reduce((a, x) => a + x, 0);
      const swa = new Float64Array(dv);
      for (let j = lo; j <= t; j++) for (let c = 0; c < dv; c++) swa[c] += (e[j - lo] / z) * v[(n * T + j) * dv + c];
      const m = mem.subarray(i * dv, (i + 1) * dv);
      const ns = Math.sqrt(swa.reduce((a, x) => a + x * x, 0) + EPS);
      const nm = Math.sqrt(m.reduce((a, x) => a + x * x, 0) + EPS);
      const g = 1 / (1 + Math.exp(-opts.gateLogits[i]));
      for (let c = 0; c < dv; c++) out[i * dv + c] = (g * swa[c]) / ns + ((1 - g) * m[c]) / nm;
    }
  }
  return out;
}

/**
 * Miras: a sequence model as an associative memory W trained at test time, defined by (memory architecture,
 * attentional bias, retention, learning rule). Here the memory is linear (a matrix W, read y = q W) and the learning
 * rule is gradient descent with optional momentum, computed on mini-batches ("chunks") as Titans does:
 *
 *   g_t = ∂ℓ(r)/∂r at r = k_t W_c - v_t        W_c = the memory at the start of t's chunk
 *   S_t = η_t S_{t-1} - θ_t k_tᵀ g_t             (momentum "surprise"; η = 0 is plain GD)
 *   W_t = Ret(W_{t-1}, α_t) + S_t                  retention
 *   y_t = q_t W_t
 *
 * Attentional bias ℓ(r): l2 ½‖r‖² (g = r); dot-product -⟨kW, v⟩ (g = -v); lp (1/p)Σ|r|^p (g = sign(r)|r|^{p-1});
 * Huber, per coordinate, with threshold δ (g = clip(r, -δ, δ)).
 * Retention: none (W); l2 ((1-α)W, Titans' forgetting gate); lq (W - α sign(W)|W|^{q-1}, the gradient step on the
 * global regulariser (α/q)‖W‖_q^q); KL (W on row simplices scaled by c: W = c·softmax_row((1-α) log(W/c) + S)).
 *
 * Special cases (tested): dot bias + no retention + θ = 1 is linear attention (W_t = Σ k_iᵀ v_i); l2 + no retention +
 * GD with chunk 1 is DeltaNet (W_t = W_{t-1} - θ k_tᵀ(k_t W_{t-1} - v_t)); l2 + l2 retention + momentum is Titans.
 *
 * Differences from the paper (arXiv 2504.13173): the paper's Moneta, Yaad and Memora use a 2-layer MLP memory, ours
 * a matrix; Moneta's lq retention in the paper normalises an accumulator (A_t / ‖A_t‖_q^{q-2}, as we read it; verify),
 * ours is the plain gradient step on the lq regulariser (equal to the l2 forgetting gate at q = 2); Yaad's Huber is
 * applied per coordinate with a fixed δ (the paper makes δ data-dependent).
 *
 * Shape legend: b batch, T tokens, dk key width, dv value width; q, k [b, T, dk], v [b, T, dv], gates [b, T] (or a
 * number for all tokens), W and S [b, dk, dv], y [b, T, dv].
 */
import * as tf from '@tensorflow/tfjs';

export type AttentionalBias =
  | { kind: 'l2' }
  | { kind: 'dot' }
  | { kind: 'lp'; p: number }
  | { kind: 'huber'; delta: number };

export type Retention = { kind: 'none' } | { kind: 'l2' } | { kind: 'lq'; q: number } | { kind: 'kl'; scale: number };

export interface MemorySpec {
  bias: AttentionalBias;
  retention: Retention;
  /** Keep a momentum ("surprise") state S; without it S_t = -θ_t ∇_t (η is ignored). */
  momentum: boolean;
  /** Tokens per mini-batch: every gradient in a chunk is taken at the chunk's starting memory (1 = fully online). */
  chunk: number;
}

/** Per-token gates: θ the inner learning rate, α the retention (forgetting) rate, η the momentum. */
export interface MemoryGates {
  lr: number | tf.Tensor;
  decay?: number | tf.Tensor;
  momentum?: number | tf.Tensor;
}

export interface MemoryState {
  /** The memory W [b, dk, dv]. */
  w: tf.Tensor3D;
  /** Momentum S [b, dk, dv], when the spec keeps one. */
  s: tf.Tensor3D | null;
  /** The memory at the start of the current chunk (chunk > 1 only). */
  w0: tf.Tensor3D | null;
  /** Tokens seen. */
  t: number;
}

/** Named instances (the paper's new models and the known ones that fall out as cases). */
export const SPECS = {
  linearAttention: { bias: { kind: 'dot' }, retention: { kind: 'none' }, momentum: false, chunk: 1 },
  deltaNet: { bias: { kind: 'l2' }, retention: { kind: 'none' }, momentum: false, chunk: 1 },
  titans: { bias: { kind: 'l2' }, retention: { kind: 'l2' }, momentum: true, chunk: 16 },
  moneta: { bias: { kind: 'lp', p: 3 }, retention: { kind: 'lq', q: 4 }, momentum: false, chunk: 16 },
  yaad: { bias: { kind: 'huber', delta: 0.5 }, retention: { kind: 'l2' }, momentum: false, chunk: 16 },
  memora: { bias: { kind: 'l2' }, retention: { kind: 'kl', scale: 1 }, momentum: false, chunk: 16 },
} as const satisfies Record<string, MemorySpec>;

export type SpecName = keyof typeof SPECS;

/** A named spec with some fields replaced (e.g. `spec('yaad', { bias: { kind: 'huber', delta: 0.2 } })`). */
export function spec(name: SpecName, override: Partial<MemorySpec> = {}): MemorySpec {
  const base = SPECS[name] as MemorySpec;
  if (base === undefined)
    throw new Error(`miras.spec: name must be one of ${Object.keys(SPECS).join(', ')}, got '${name}'`);
  return checkSpec('miras.spec', { ...base, ...override });
}

export function checkSpec(fn: string, s: MemorySpec): MemorySpec {
  if (!Number.isInteger(s.chunk) || s.chunk < 1)
    throw new Error(`${fn}: spec.chunk must be an integer >= 1, got ${s.chunk}`);
  const b = s.bias;
  if (!['l2', 'dot', 'lp', 'huber'].includes(b.kind))
    throw new Error(`${fn}: spec.bias.kind must be 'l2', 'dot', 'lp' or 'huber', got '${b.kind}'`);
  if (b.kind === 'lp' && !(b.p >= 1)) throw new Error(`${fn}: spec.bias.p must be >= 1, got ${b.p}`);
  if (b.kind === 'huber' && !(b.delta > 0)) throw new Error(`${fn}: spec.bias.delta must be > 0, got ${b.delta}`);
  const r = s.retention;
  if (!['none', 'l2', 'lq', 'kl'].includes(r.kind))
    throw new Error(`${fn}: spec.retention.kind must be 'none', 'l2', 'lq' or 'kl', got '${r.kind}'`);
  if (r.kind === 'lq' && !(r.q >= 2)) throw new Error(`${fn}: spec.retention.q must be >= 2, got ${r.q}`);
  if (r.kind === 'kl' && !(r.scale > 0)) throw new Error(`${fn}: spec.retention.scale must be > 0, got ${r.scale}`);
  return s;
}

/** tf.tidy for a function returning an object that holds tensors beside plain values (tidy keeps every tensor in it). */
export function tidyObj<T>(fn: () => T): T {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as T;
}

function checkQkv(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): [number, number, number, number] {
  if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3)
    throw new Error(`${fn}: q, k, v must be [b, T, d], got ranks ${q.rank}, ${k.rank}, ${v.rank}`);
  const [b, T, dk] = k.shape as number[];
  if (q.shape[0] !== b || q.shape[1] !== T || q.shape[2] !== dk)
    throw new Error(`${fn}: q must have k's shape [${b}, ${T}, ${dk}], got [${q.shape}]`);
  if (v.shape[0] !== b || v.shape[1] !== T) throw new Error(`${fn}: v must be [${b}, ${T}, dv], got [${v.shape}]`);
  return [b, T, dk, v.shape[2] as number];
}

/** A gate as a [b, T] tensor (numbers broadcast); throws on a wrong shape or a value outside its range. */
function gateTensor(fn: string, name: string, g: number | tf.Tensor | undefined, b: number, T: number, dflt: number) {
  const x = g ?? dflt;
  if (typeof x === 'number') {
    if (!Number.isFinite(x) || x < 0 || (name !== 'lr' && x > 1))
      throw new Error(`${fn}: gates.${name} must be a number in [0, ${name === 'lr' ? '∞' : '1'}], got ${x}`);
    return tf.fill([b, T], x);
  }
  if (x.rank !== 2 || x.shape[0] !== b || x.shape[1] !== T)
    throw new Error(`${fn}: gates.${name} must be [${b}, ${T}], got [${x.shape}]`);
  return x;
}

/** ∂ℓ/∂(kW) for residual r = kW - v. */
function biasGrad(bias: AttentionalBias, r: tf.Tensor, v: tf.Tensor): tf.Tensor {
  switch (bias.kind) {
    case 'l2':
      return r;
    case 'dot':
      return tf.neg(v);
    case 'lp':
      return bias.p === 2 ? r : tf.mul(tf.sign(r), tf.pow(tf.abs(r), bias.p - 1));
    case 'huber':
      return tf.clipByValue(r, -bias.delta, bias.delta);
  }
}

/** W_t = Ret(W_{t-1}) + S for one token; a [b] retention rate. */
function retain(ret: Retention, w: tf.Tensor3D, s: tf.Tensor3D, alpha: tf.Tensor): tf.Tensor3D {
  const a = alpha.reshape([-1, 1, 1]);
  switch (ret.kind) {
    case 'none':
      return tf.add(w, s);
    case 'l2':
      return tf.add(tf.mul(tf.sub(1, a), w), s);
    case 'lq':
      return tf.add(tf.sub(w, tf.mul(a, tf.mul(tf.sign(w), tf.pow(tf.abs(w), ret.q - 1)))), s);
    case 'kl': {
      const logits = tf.add(tf.mul(tf.sub(1, a), tf.log(tf.div(w, ret.scale))), s);
      return tf.mul(tf.softmax(logits), ret.scale);
    }
  }
}

/** The memory before any token: zeros, or the uniform row distribution for KL retention. */
export function initialMemory(spec: MemorySpec, b: number, dk: number, dv: number): tf.Tensor3D {
  return spec.retention.kind === 'kl' ? tf.fill([b, dk, dv], spec.retention.scale / dv) : tf.zeros([b, dk, dv]);
}

/** decayMatrix for a constant gate x, computed once: L [1, c, c], a [1, c]. */
function constDecay(x: number, c: number): { L: tf.Tensor3D; a: tf.Tensor2D } {
  const L = new Float32Array(c * c);
  const a = new Float32Array(c);
  for (let t = 0; t < c; t++) {
    a[t] = x ** (t + 1);
    for (let j = 0; j <= t; j++) L[t * c + j] = x ** (t - j);
  }
  return { L: tf.tensor3d(L, [1, c, c]), a: tf.tensor2d(a, [1, c]) };
}

/** L[t, j] = Π_{m=j+1..t} x_m (j <= t, else 0) and a_t = Π_{m<=t} x_m over a chunk; x [b, c]. */
function decayMatrix(x: tf.Tensor2D): { L: tf.Tensor3D; a: tf.Tensor2D } {
  const [b, c] = x.shape;
  const rows: tf.Tensor2D[] = [];
  const as: tf.Tensor2D[] = [];
  let row: tf.Tensor2D = tf.zeros([b, c]);
  let a: tf.Tensor2D = tf.ones([b, 1]);
  for (let t = 0; t < c; t++) {
    const xt = x.slice([0, t], [b, 1]);
    const e = new Float32Array(c);
    e[t] = 1;
    row = tf.add(tf.mul(xt, row), tf.tensor2d(e, [1, c]));
    a = tf.mul(xt, a);
    rows.push(row);
    as.push(a);
  }
  return { L: tf.stack(rows, 1) as tf.Tensor3D, a: tf.concat(as, 1) };
}

/**
 * The chunked parallel (training) form: every gradient of a chunk at once, then the momentum / retention recurrence
 * in closed form for linear retention (none, l2) or token by token for the nonlinear ones (lq, KL).
 * Returns y [b, T, dv] and the final state.
 */
export function mirasMemory(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  gates: MemoryGates,
  memSpec: MemorySpec,
): { y: tf.Tensor3D; state: MemoryState } {
  const fn = 'mirasMemory';
  checkSpec(fn, memSpec);
  const [b, T, dk, dv] = checkQkv(fn, q, k, v);
  const C = memSpec.chunk;
  return tidyObj(() => {
    const theta = gateTensor(fn, 'lr', gates.lr, b, T, 0);
    const alpha = gateTensor(fn, 'decay', memSpec.retention.kind === 'none' ? 0 : gates.decay, b, T, 0);
    const eta = gateTensor(fn, 'momentum', memSpec.momentum ? gates.momentum : 0, b, T, 0);
    let w = initialMemory(memSpec, b, dk, dv);
    let s: tf.Tensor3D = tf.zeros([b, dk, dv]);
    const ys: tf.Tensor[] = [];
    const linear = memSpec.retention.kind === 'none' || memSpec.retention.kind === 'l2';
    for (let t0 = 0; t0 < T; t0 += C) {
      const c = Math.min(C, T - t0);
      const qc = q.slice([0, t0, 0], [b, c, dk]) as tf.Tensor3D;
      const kc = k.slice([0, t0, 0], [b, c, dk]) as tf.Tensor3D;
      const vc = v.slice([0, t0, 0], [b, c, dv]) as tf.Tensor3D;
      const th = theta.slice([0, t0], [b, c]) as tf.Tensor2D;
      const al = alpha.slice([0, t0], [b, c]) as tf.Tensor2D;
      const et = eta.slice([0, t0], [b, c]) as tf.Tensor2D;
      // Every token's gradient at the chunk's starting memory: [b, c, dv].
      const g = biasGrad(memSpec.bias, tf.sub(tf.matMul(kc, w), vc), vc);
      if (linear) {
        // Constant gates: the decay matrices are constants [1, c, c] shared by every row.
        const etaConst = memSpec.momentum ? (gates.momentum ?? 0) : 0;
        const betaConst =
          memSpec.retention.kind === 'none'
            ? 1
            : typeof gates.decay === 'number' || gates.decay === undefined
              ? 1 - (gates.decay ?? 0)
              : null;
        const { L: Le, a: ae } = typeof etaConst === 'number' ? constDecay(etaConst, c) : decayMatrix(et);
        const { L: Lb, a: ab } =
          betaConst !== null ? constDecay(betaConst, c) : decayMatrix(tf.sub(1, al) as tf.Tensor2D);
        const bc = Lb.shape[0] === 1 && Le.shape[0] === 1 ? 1 : b;
        const M: tf.Tensor3D = tf.matMul(
          bc === 1 ? Lb : tf.broadcastTo(Lb, [b, c, c]),
          bc === 1 ? Le : tf.broadcastTo(Le, [b, c, c]),
        ); // weight of token j's step in W_t
        const cv = tf
          .matMul(bc === 1 ? Lb : tf.broadcastTo(Lb, [b, c, c]), tf.broadcastTo(ae, [bc, c]).expandDims(2))
          .squeeze([2]); // weight of S_0 in W_t
        const qk = tf.matMul(qc, kc, false, true); // [b, c, c]
        const y = tf
          .mul(ab.expandDims(2), tf.matMul(qc, w))
          .add(tf.mul(cv.expandDims(2), tf.matMul(qc, s)))
          .sub(tf.matMul(tf.mul(tf.mul(M, qk), th.expandDims(1)), g));
        ys.push(y);
        const last = (x: tf.Tensor3D) => x.slice([0, c - 1, 0], [x.shape[0], 1, c]).reshape([x.shape[0], c]);
        const wLast = tf.mul(last(M), th); // [b, c]
        const sLast = tf.mul(last(Le), th);
        const lastCol = (x: tf.Tensor) => x.slice([0, c - 1], [x.shape[0], 1]).reshape([x.shape[0], 1, 1]);
        const abLast = lastCol(ab);
        const cvLast = lastCol(cv);
        const aeLast = lastCol(ae);
        const wNew = tf
          .mul(abLast, w)
          .add(tf.mul(cvLast, s))
          .sub(tf.matMul(kc, tf.mul(g, wLast.expandDims(2)), true, false)) as tf.Tensor3D;
        s = tf.mul(aeLast, s).sub(tf.matMul(kc, tf.mul(g, sLast.expandDims(2)), true, false)) as tf.Tensor3D;
        w = wNew;
      } else {
        const [w1, s1, y1] = tf.tidy(() => {
          let ww = w;
          let ss = s;
          const yy: tf.Tensor[] = [];
          for (let j = 0; j < c; j++) {
            const kj = kc.slice([0, j, 0], [b, 1, dk]);
            const gj = g.slice([0, j, 0], [b, 1, dv]);
            const step = tf.mul(th.slice([0, j], [b, 1]).reshape([b, 1, 1]), tf.matMul(kj, gj, true, false));
            ss = tf.sub(tf.mul(et.slice([0, j], [b, 1]).reshape([b, 1, 1]), ss), step) as tf.Tensor3D;
            ww = retain(memSpec.retention, ww, ss, al.slice([0, j], [b, 1]));
            yy.push(tf.matMul(qc.slice([0, j, 0], [b, 1, dk]), ww));
          }
          return [ww, ss, tf.concat(yy, 1)] as [tf.Tensor3D, tf.Tensor3D, tf.Tensor];
        });
        w = w1;
        s = s1;
        ys.push(y1);
      }
    }
    return {
      y: tf.concat(ys, 1) as tf.Tensor3D,
      state: { w, s: memSpec.momentum ? s : null, w0: null, t: T },
    };
  });
}

/** The state before the first token of a step-by-step (recurrent) run. */
export function initialState(memSpec: MemorySpec, b: number, dk: number, dv: number): MemoryState {
  return {
    w: initialMemory(memSpec, b, dk, dv),
    s: memSpec.momentum ? tf.zeros([b, dk, dv]) : null,
    w0: null,
    t: 0,
  };
}

/**
 * The recurrent (inference) form: one token, q/k [b, dk], v [b, dv], gates [b] or numbers. Returns y [b, dv] and the
 * next state; the caller disposes the old state (`disposeState`).
 */
export function mirasStep(
  state: MemoryState,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  gates: MemoryGates,
  memSpec: MemorySpec,
): { y: tf.Tensor2D; state: MemoryState } {
  const fn = 'mirasStep';
  checkSpec(fn, memSpec);
  if (q.rank !== 2 || k.rank !== 2 || v.rank !== 2)
    throw new Error(`${fn}: q, k, v must be [b, d] (one token), got ranks ${q.rank}, ${k.rank}, ${v.rank}`);
  const [b, dk] = k.shape as [number, number];
  const dv = v.shape[1] as number;
  const gate = (name: string, g: number | tf.Tensor | undefined) => {
    const x = g ?? 0;
    if (typeof x === 'number') return tf.fill([b, 1], x);
    if (x.size !== b) throw new Error(`${fn}: gates.${name} must have ${b} entries (one per row), got [${x.shape}]`);
    return x.reshape([b, 1]);
  };
  return tidyObj(() => {
    const C = memSpec.chunk;
    const w0 = C === 1 ? state.w : state.t % C === 0 ? state.w : (state.w0 as tf.Tensor3D);
    const kr = k.reshape([b, 1, dk]);
    const vr = v.reshape([b, 1, dv]);
    const g = biasGrad(memSpec.bias, tf.sub(tf.matMul(kr, w0), vr), vr);
    const step = tf.mul(gate('lr', gates.lr).reshape([b, 1, 1]), tf.matMul(kr, g, true, false));
    const s =
      memSpec.momentum && state.s
        ? tf.sub(tf.mul(gate('momentum', gates.momentum).reshape([b, 1, 1]), state.s), step)
        : tf.neg(step);
    const alpha = memSpec.retention.kind === 'none' ? tf.zeros([b, 1]) : gate('decay', gates.decay);
    const w = retain(memSpec.retention, state.w, s as tf.Tensor3D, alpha);
    const y = tf.matMul(q.reshape([b, 1, dk]), w).reshape([b, dv]) as tf.Tensor2D;
    const keepW0 = C > 1 && (state.t + 1) % C !== 0;
    return {
      y,
      state: {
        w,
        s: memSpec.momentum ? (s as tf.Tensor3D) : null,
        w0: keepW0 ? (state.t % C === 0 ? tf.clone(state.w) : tf.clone(state.w0 as tf.Tensor3D)) : null,
        t: state.t + 1,
      },
    };
  });
}

export function disposeState(s: MemoryState): void {
  tf.dispose([s.w, ...(s.s ? [s.s] : []), ...(s.w0 ? [s.w0] : [])]);
}

/** Bytes of the state tensors a recurrent run actually keeps (measured from the tensors, not a formula). */
export function stateBytes(s: MemoryState): number {
  const bytesOf = (x: tf.Tensor) => x.size * (x.dtype === 'float32' || x.dtype === 'int32' ? 4 : 1);
  return [s.w, s.s, s.w0].reduce((acc, x) => acc + (x ? bytesOf(x) : 0), 0);
}

/** Runs the recurrent form over a whole sequence (q, k, v [b, T, d]); y [b, T, dv] and the final state. */
export function mirasRecurrent(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  gates: MemoryGates,
  memSpec: MemorySpec,
): { y: tf.Tensor3D; state: MemoryState; maxStateBytes: number } {
  const [b, T, dk, dv] = checkQkv('mirasRecurrent', q, k, v);
  let state = initialState(memSpec, b, dk, dv);
  let maxStateBytes = stateBytes(state);
  const ys: tf.Tensor2D[] = [];
  const at = (g: number | tf.Tensor | undefined, t: number) =>
    g === undefined || typeof g === 'number' ? g : g.slice([0, t], [b, 1]);
  for (let t = 0; t < T; t++) {
    const slice = (x: tf.Tensor, d: number) => tf.tidy(() => x.slice([0, t, 0], [b, 1, d]).reshape([b, d]));
    const qt = slice(q, dk);
    const kt = slice(k, dk);
    const vt = slice(v, dv);
    const gt = {
      lr: at(gates.lr, t) as number | tf.Tensor,
      decay: at(gates.decay, t),
      momentum: at(gates.momentum, t),
    };
    const out = mirasStep(state, qt, kt, vt, gt, memSpec);
    tf.dispose([qt, kt, vt, ...[gt.lr, gt.decay, gt.momentum].filter((x): x is tf.Tensor => x instanceof tf.Tensor)]);
    disposeState(state);
    state = out.state;
    maxStateBytes = Math.max(maxStateBytes, stateBytes(state));
    ys.push(out.y);
  }
  const y = tf.stack(ys, 1) as tf.Tensor3D;
  tf.dispose(ys);
  return { y, state, maxStateBytes };
}

/** Float64 gates for the reference: a number for every token or a [b * T] array. */
export interface ReferenceGates {
  lr: number | ArrayLike<number>;
  decay?: number | ArrayLike<number>;
  momentum?: number | ArrayLike<number>;
}

/**
 * Float64 loop reference of the same recurrence (per token, gradients at the chunk's starting memory).
 * q, k [b*T*dk], v [b*T*dv] flat row-major; returns y [b*T*dv] and the final memory [b*dk*dv].
 */
export function mirasReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dims: { b: number; T: number; dk: number; dv: number },
  gates: ReferenceGates,
  memSpec: MemorySpec,
): { y: Float64Array; w: Float64Array } {
  const { b, T, dk, dv } = dims;
  const y = new Float64Array(b * T * dv);
  const wOut = new Float64Array(b * dk * dv);
  const G = (g: number | ArrayLike<number> | undefined, i: number) =>
    g === undefined ? 0 : typeof g === 'number' ? g : g[i];
  const ret = memSpec.retention;
  for (let n = 0; n < b; n++) {
    const w = new Float64Array(dk * dv).fill(ret.kind === 'kl' ? ret.scale / dv : 0);
    const s = new Float64Array(dk * dv);
    let w0 = Float64Array.from(w);
    for (let t = 0; t < T; t++) {
      if (t % memSpec.chunk === 0) w0 = Float64Array.from(w);
      const i = n * T + t;
      const th = G(gates.lr, i);
      const al = ret.kind === 'none' ? 0 : G(gates.decay, i);
      const et = memSpec.momentum ? G(gates.momentum, i) : 0;
      const g = new Float64Array(dv);
      for (let c = 0; c < dv; c++) {
        let pred = 0;
        for (let r = 0; r < dk; r++) pred += k[i * dk + r] * w0[r * dv + c];
        const vi = v[i * dv + c];
        const res = pred - vi;
        const bias = memSpec.bias;
        g[c] =
          bias.kind === 'l2'
            ? res
            : bias.kind === 'dot'
              ? -vi
              : bias.kind === 'lp'
                ? Math.sign(res) * Math.abs(res) ** (bias.p - 1)
                : Math.max(-bias.delta, Math.min(bias.delta, res));
      }
      for (let r = 0; r < dk; r++)
        for (let c = 0; c < dv; c++) s[r * dv + c] = et * s[r * dv + c] - th * k[i * dk + r] * g[c];
      for (let r = 0; r < dk; r++) {
        if (ret.kind === 'kl') {
          let mx = -Infinity;
          const z = new Float64Array(dv);
          for (let c = 0; c < dv; c++) {
            z[c] = (1 - al) * Math.log(w[r * dv + c] / ret.scale) + s[r * dv + c];
            mx = Math.max(mx, z[c]);
          }
          let sum = 0;
          for (let c = 0; c < dv; c++) sum += Math.exp(z[c] - mx);
          for (let c = 0; c < dv; c++) w[r * dv + c] = (ret.scale * Math.exp(z[c] - mx)) / sum;
          continue;
        }
        for (let c = 0; c < dv; c++) {
          const x = w[r * dv + c];
          const kept =
            ret.kind === 'none'
              ? x
              : ret.kind === 'l2'
                ? (1 - al) * x
                : x - al * Math.sign(x) * Math.abs(x) ** (ret.q - 1);
          w[r * dv + c] = kept + s[r * dv + c];
        }
      }
      for (let c = 0; c < dv; c++) {
        let acc = 0;
        for (let r = 0; r < dk; r++) acc += q[i * dk + r] * w[r * dv + c];
        y[i * dv + c] = acc;
      }
    }
    wOut.set(w, n * dk * dv);
  }
  return { y, w: wOut };
}

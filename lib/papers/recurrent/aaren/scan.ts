/**
 * Attention as an RNN (Feng, Tung, Hajimirsadeghi, Ahmed, Bengio, Mori 2024, "Attention as an RNN",
 * https://arxiv.org/abs/2405.13956; no official code found): softmax attention of one query over a growing prefix is
 * a recurrence on (m, u, w), and the recurrence's merge is associative, so every prefix output comes from a parallel
 * prefix scan.
 *
 *   scores s_t = qᵀk_t / √d,   o_t = Σ_{j≤t} exp(s_j) v_j / Σ_{j≤t} exp(s_j)
 *   step:   m_t = max(m_{t-1}, s_t)
 *           u_t = u_{t-1} e^{m_{t-1} - m_t} + e^{s_t - m_t}
 *           w_t = w_{t-1} e^{m_{t-1} - m_t} + v_t e^{s_t - m_t},     o_t = w_t / u_t
 *   merge:  (m_A, u_A, w_A) ⊕ (m_B, u_B, w_B) = (m, u_A e^{m_A-m} + u_B e^{m_B-m}, w_A e^{m_A-m} + w_B e^{m_B-m}),
 *           m = max(m_A, m_B)
 * The parallel form is a Hillis-Steele scan: ⌈log2 n⌉ rounds, round r merges each position with the one 2^r before
 * it. The step form keeps (m, u, w) per batch row and head: 2 + e numbers, whatever the length.
 *
 * Shape legend: b batch, h heads, n positions, e value dim; s [b, h, n], v [b, h, n, e] -> o [b, h, n, e];
 * a step takes s_t [b, h] and v_t [b, h, e].
 */
import * as tf from '@tensorflow/tfjs';

function checkScan(fn: string, s: tf.Tensor, v: tf.Tensor): void {
  if (s.rank !== 3) throw new Error(`${fn}: s must have shape [batch, heads, n], got [${s.shape}]`);
  const [b, h, n] = s.shape;
  if (v.rank !== 4 || v.shape[0] !== b || v.shape[1] !== h || v.shape[2] !== n)
    throw new Error(`${fn}: v must have shape [${b}, ${h}, ${n}, e] to match s [${s.shape}], got [${v.shape}]`);
  if (n === 0) throw new Error(`${fn}: needs at least one position, got s [${s.shape}]`);
}

/**
 * Every prefix's single-query softmax attention by a parallel (Hillis-Steele) scan of (m, u, w):
 * s [b, h, n] (the query's scores), v [b, h, n, e] -> o [b, h, n, e], o_t = softmax(s_0..s_t) · v_0..v_t.
 * u rides along as the last column of w (w' = [w, u] starts as [v_t, 1]), so each round is one merge
 *   (m_A, w'_A) ⊕ (m_B, w'_B) = (max(m_A, m_B), w'_A e^{m_A-m} + w'_B e^{m_B-m})
 * of every position t with position t - 2^r; positions t < 2^r merge with the identity (m = -1e30, w' = 0), which
 * the shift pads in.
 */
export function aarenScan(s: tf.Tensor3D, v: tf.Tensor4D): tf.Tensor4D {
  checkScan('aarenScan', s, v);
  return tf.tidy(() => {
    const [b, h, n] = s.shape;
    const e = v.shape[3];
    let m: tf.Tensor = s.expandDims(3); // [b, h, n, 1]
    let w: tf.Tensor = tf.concat([v, tf.ones([b, h, n, 1])], 3); // [b, h, n, e + 1]
    const shift = (t: tf.Tensor, off: number, fill: number) =>
      tf.pad(
        t.slice([0, 0, 0, 0], [b, h, n - off, t.shape[3] as number]),
        [
          [0, 0],
          [0, 0],
          [off, 0],
          [0, 0],
        ],
        fill,
      );
    for (let off = 1; off < n; off *= 2) {
      const mA = shift(m, off, IDENTITY_M);
      const wA = shift(w, off, 0);
      const mm = tf.maximum(mA, m);
      w = wA.mul(tf.exp(mA.sub(mm))).add(w.mul(tf.exp(m.sub(mm))));
      m = mm;
    }
    return w.slice([0, 0, 0, 0], [b, h, n, e]).div(w.slice([0, 0, 0, e], [b, h, n, 1])) as tf.Tensor4D;
  });
}

/** m of the scan's identity element: finite, so that e^{m_A - m} is exactly 0 without -∞ - (-∞) = NaN. */
const IDENTITY_M = -1e30;

/**
 * The same outputs by dense masked softmax (the n x n way, for comparison): s [b, h, n], v [b, h, n, e] ->
 * [b, h, n, e].
 */
export function causalSingleQueryAttention(s: tf.Tensor3D, v: tf.Tensor4D): tf.Tensor4D {
  checkScan('causalSingleQueryAttention', s, v);
  return tf.tidy(() => {
    const n = s.shape[2];
    const lower = tf.linalg.bandPart(tf.ones([n, n]), -1, 0); // [t, j]: j <= t
    const logits = s.expandDims(2).add(lower.sub(1).mul(1e30)); // [b, h, t, j]
    return tf.matMul(tf.softmax(logits, -1), v) as tf.Tensor4D;
  });
}

/** The recurrent state after t tokens: m [b, h, 1] (running max), u [b, h, 1] (denominator), w [b, h, e]. */
export interface AarenState {
  t: number;
  m: tf.Tensor3D;
  u: tf.Tensor3D;
  w: tf.Tensor3D;
}

/** The empty state (m = -∞, u = 0, w = 0, the identity of ⊕) for batch b, h heads, value dim e. */
export function aarenInitState(b: number, h: number, e: number): AarenState {
  for (const [name, x] of Object.entries({ b, h, e })) {
    if (!(Number.isInteger(x) && x > 0)) throw new Error(`aarenInitState: ${name} must be an integer > 0, got ${x}`);
  }
  return { t: 0, m: tf.fill([b, h, 1], -Infinity) as tf.Tensor3D, u: tf.zeros([b, h, 1]), w: tf.zeros([b, h, e]) };
}

/** Bytes of the tensors a state keeps (m, u, w: float32). */
export function aarenStateBytes(state: AarenState): number {
  return [state.m, state.u, state.w].reduce((a, t) => a + t.size * 4, 0);
}

/**
 * One token: the state after t tokens, the token's score s_t [b, h] and value v_t [b, h, e] -> the output o_t
 * [b, h, e] and the state after t + 1 tokens (O(1) time and memory per token). The old state is not disposed.
 */
export function aarenStep(state: AarenState, s: tf.Tensor2D, v: tf.Tensor3D): { out: tf.Tensor3D; state: AarenState } {
  const fn = 'aarenStep';
  const [b, h] = state.m.shape;
  const e = state.w.shape[2];
  if (s.rank !== 2 || s.shape[0] !== b || s.shape[1] !== h)
    throw new Error(`${fn}: s must have shape [${b}, ${h}] to match the state, got [${s.shape}]`);
  if (v.rank !== 3 || v.shape[0] !== b || v.shape[1] !== h || v.shape[2] !== e)
    throw new Error(`${fn}: v must have shape [${b}, ${h}, ${e}] to match the state, got [${v.shape}]`);
  return tf.tidy(() => {
    const st = s.expandDims(2); // [b, h, 1]
    const m = tf.maximum(state.m, st);
    // at t = 0, m_{-1} = -∞: e^{-∞} = 0 times u = w = 0
    const decay = tf.exp(state.m.sub(m));
    const fresh = tf.exp(st.sub(m));
    const u = state.u.mul(decay).add(fresh);
    const w = state.w.mul(decay).add(v.mul(fresh));
    return {
      out: w.div(u) as tf.Tensor3D,
      state: { t: state.t + 1, m: m as tf.Tensor3D, u: u as tf.Tensor3D, w: w as tf.Tensor3D },
    };
  });
}

/** Frees a state's tensors. */
export function disposeAarenState(state: AarenState): void {
  tf.dispose([state.m, state.u, state.w]);
}

/** Shapes of the float64 references' flat row-major inputs: s [b, h, n], v [b, h, n, e]. */
export interface ScanDims {
  b: number;
  h: number;
  n: number;
  e: number;
}

function checkRef(fn: string, s: ArrayLike<number>, v: ArrayLike<number>, d: ScanDims): void {
  if (s.length !== d.b * d.h * d.n)
    throw new Error(`${fn}: s has ${s.length} values, expected b·h·n = ${d.b * d.h * d.n}`);
  if (v.length !== d.b * d.h * d.n * d.e)
    throw new Error(`${fn}: v has ${v.length} values, expected b·h·n·e = ${d.b * d.h * d.n * d.e}`);
}

/** Float64 causal single-query softmax attention, directly: o_t = Σ_{j≤t} softmax_j(s_0..s_t) v_j (max-shifted). */
export function causalSingleQueryReference(s: ArrayLike<number>, v: ArrayLike<number>, dims: ScanDims): Float64Array {
  checkRef('causalSingleQueryReference', s, v, dims);
  const { b, h, n, e } = dims;
  const out = new Float64Array(b * h * n * e);
  for (let bh = 0; bh < b * h; bh++) {
    for (let t = 0; t < n; t++) {
      let mx = -Infinity;
      for (let j = 0; j <= t; j++) mx = Math.max(mx, s[bh * n + j]);
      let z = 0;
      for (let j = 0; j <= t; j++) z += Math.exp(s[bh * n + j] - mx);
      for (let j = 0; j <= t; j++) {
        const p = Math.exp(s[bh * n + j] - mx) / z;
        for (let c = 0; c < e; c++) out[(bh * n + t) * e + c] += p * v[(bh * n + j) * e + c];
      }
    }
  }
  return out;
}

/** The Hillis-Steele (m, u, w) scan of {@link aarenScan} in float64 loops: the algorithm without float32 rounding. */
export function aarenScanReference(s: ArrayLike<number>, v: ArrayLike<number>, dims: ScanDims): Float64Array {
  checkRef('aarenScanReference', s, v, dims);
  const { b, h, n, e } = dims;
  const out = new Float64Array(b * h * n * e);
  for (let bh = 0; bh < b * h; bh++) {
    let m = Float64Array.from({ length: n }, (_, t) => s[bh * n + t]);
    let u = new Float64Array(n).fill(1);
    let w = Float64Array.from({ length: n * e }, (_, i) => v[bh * n * e + i]);
    for (let off = 1; off < n; off *= 2) {
      const [m2, u2, w2] = [m.slice(), u.slice(), w.slice()];
      for (let t = off; t < n; t++) {
        const a = t - off;
        const mm = Math.max(m[a], m[t]);
        const ea = Math.exp(m[a] - mm);
        const eb = Math.exp(m[t] - mm);
        m2[t] = mm;
        u2[t] = u[a] * ea + u[t] * eb;
        for (let c = 0; c < e; c++) w2[t * e + c] = w[a * e + c] * ea + w[t * e + c] * eb;
      }
      [m, u, w] = [m2, u2, w2];
    }
    for (let t = 0; t < n; t++) for (let c = 0; c < e; c++) out[(bh * n + t) * e + c] = w[t * e + c] / u[t];
  }
  return out;
}

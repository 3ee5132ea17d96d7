/**
 * Flow-Attention (Wu, Wu, Xu, Wang, Long 2022, "Flowformer: Linearizing Transformers with Conservation Flows", ICML,
 * https://arxiv.org/abs/2202.06258; official code thuml/Flowformer, Flow_Attention.py and Flowformer_NLP).
 *
 * Attention as a flow network: queries are sinks, keys are sources, φ = sigmoid makes the capacities non-negative.
 *   incoming flow of sink i     I_i = φ(q_i)·Σ_j φ(k_j)          outgoing flow of source j   O_j = φ(k_j)·Σ_i φ(q_i)
 *   conserved incoming          Î_i = φ(q_i)·Σ_j φ(k_j)/O_j       conserved outgoing          Ô_j = φ(k_j)·Σ_i φ(q_i)/I_i
 *   competition (sources)       V̂ = softmax_j(Ô)·S ⊙ V            allocation (sinks)          σ(Î · L/S)
 *   out_i = σ(Î_i) · (φ(q_i)/I_i) · Σ_j φ(k_j) V̂_jᵀ
 * (every φ inside a flow dot product gets +eps, Ô is clamped to [-clamp, clamp], as the official code does).
 *
 * Causal: every sum over keys/queries becomes a prefix sum (cumsum) up to the current position n = i + 1, with the
 * official normalisation by n so flows stay comparable across positions:
 *   I_i = φ(q_i)·Σ_{j≤i} φ(k_j),  O_j = φ(k_j)·Σ_{i≤j} φ(q_i)
 *   Î_i = φ(q_i)·Σ_{j≤i} φ(k_j)·(j+1)/O_j / (i+1),  Ô_j = φ(k_j)·Σ_{i≤j} φ(q_i)·(i+1)/I_i / (j+1)
 *   competition c_j = exp(Ô_j) / Σ_{j'≤j} exp(Ô_j') · (j+1),  allocation σ(Î_i)
 *   out_i = σ(Î_i) · (φ(q_i)/I_i) · Σ_{j≤i} φ(k_j) (c_j v_j)ᵀ
 * The aggregation is the prefix sum of the outer products φ(k_j)(c_j v_j)ᵀ ('cumsum', the paper's linear form) or the
 * same sum as a masked [s, s] product ('quadratic', cheaper in tfjs for short sequences); both are exact.
 * The recurrent form ({@link flowStep}) keeps five d-vectors, one scalar and the d×dv matrix per head: constant memory.
 *
 * Where we follow which official file: the normalisation of the aggregation by 1/I_i (without n) is Flowformer_NLP's
 * `sink_incoming_keep`; the core Flow_Attention_Causal divides a [.., L, 1] tensor by a [1, 1, L] one there, which
 * broadcasts to [L, L] and only runs when L equals the head dim. The clamp default 1 is Flow_Attention.py's (NLP: 5).
 *
 * Shape legend: b batch, h heads, l query positions, s key positions, d query/key dim, e value dim;
 * q [b, h, l, d], k [b, h, s, d], v [b, h, s, e] -> out [b, h, l, e]. Causal needs l = s.
 */
import * as tf from '@tensorflow/tfjs';

export interface FlowAttentionOptions {
  /** Causal flows by prefix sums (default false). */
  causal?: boolean;
  /** Added to the capacities inside every flow dot product (default 1e-6, the official value). */
  eps?: number;
  /** The conserved outgoing flow Ô is clamped to [-clamp, clamp] for stability (default 1, Flow_Attention.py). */
  clamp?: number;
  /** Causal aggregation: prefix sum of outer products ('cumsum', the paper's) or a masked product ('quadratic'). */
  aggregation?: 'cumsum' | 'quadratic';
}

/** The flows of one call, each [b, h, positions] (l for sinks, s for sources). */
export interface Flows {
  /** I: incoming flow of each sink (query). */
  incoming: tf.Tensor3D;
  /** O: outgoing flow of each source (key). */
  outgoing: tf.Tensor3D;
  /** Î: conserved incoming flow (before the allocation sigmoid). */
  conservedIncoming: tf.Tensor3D;
  /** Ô: conserved outgoing flow, clamped (before the competition softmax). */
  conservedOutgoing: tf.Tensor3D;
  /** σ(Î): the allocation gate of each sink. */
  allocation: tf.Tensor3D;
  /** The competition weight of each source (softmax over sources times their count; mean 1). */
  competition: tf.Tensor3D;
}

interface Resolved {
  causal: boolean;
  eps: number;
  clamp: number;
  aggregation: 'cumsum' | 'quadratic';
}

function resolveOptions(fn: string, o: FlowAttentionOptions = {}): Resolved {
  const eps = o.eps ?? 1e-6;
  const clamp = o.clamp ?? 1;
  const aggregation = o.aggregation ?? 'cumsum';
  if (!(Number.isFinite(eps) && eps >= 0))
    throw new Error(`${fn}: options.eps must be a finite number >= 0, got ${eps}`);
  if (!(clamp > 0)) throw new Error(`${fn}: options.clamp must be a number > 0, got ${clamp}`);
  if (aggregation !== 'cumsum' && aggregation !== 'quadratic')
    throw new Error(`${fn}: options.aggregation must be 'cumsum' or 'quadratic', got ${JSON.stringify(aggregation)}`);
  return { causal: o.causal ?? false, eps, clamp, aggregation };
}

function checkShapes(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor | null, causal: boolean): void {
  const show = (t: tf.Tensor) => `[${t.shape}]`;
  if (q.rank !== 4) throw new Error(`${fn}: q must have shape [batch, heads, l, d], got ${show(q)}`);
  if (k.rank !== 4) throw new Error(`${fn}: k must have shape [batch, heads, s, d], got ${show(k)}`);
  const [b, h, l, d] = q.shape;
  if (k.shape[0] !== b || k.shape[1] !== h || k.shape[3] !== d)
    throw new Error(`${fn}: k must have shape [${b}, ${h}, s, ${d}] to match q ${show(q)}, got ${show(k)}`);
  if (v) {
    if (v.rank !== 4 || v.shape[0] !== b || v.shape[1] !== h || v.shape[2] !== k.shape[2])
      throw new Error(`${fn}: v must have shape [${b}, ${h}, ${k.shape[2]}, e] to match k ${show(k)}, got ${show(v)}`);
  }
  if (causal && l !== k.shape[2])
    throw new Error(`${fn}: causal flow attention needs as many queries as keys, got q ${show(q)} and k ${show(k)}`);
  if (l === 0 || k.shape[2] === 0) throw new Error(`${fn}: needs at least one query and one key, got q ${show(q)}`);
}

/**
 * Inclusive prefix sum along `axis`, taken on the last axis: tfjs's Cumsum gradient returns the wrong shape for an
 * inner axis of a rank > 2 tensor ("gradient of input 'x' has shape [1,1,2,2,5] ... input [1,1,5,2,2]").
 */
function prefixSum(x: tf.Tensor, axis: number): tf.Tensor {
  const r = x.rank;
  if (axis === r - 1) return tf.cumsum(x, axis);
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[axis] = r - 1;
  perm[r - 1] = axis; // a swap is its own inverse
  return tf.cumsum(x.transpose(perm), r - 1).transpose(perm);
}

/** [1..n] as a float32 tensor of shape [n]. */
const counts = (n: number) => tf.range(1, n + 1, 1, 'float32');

/** The flows and the two normalisers the output needs (φq/I and the competition). */
function flowsOf(q: tf.Tensor, k: tf.Tensor, o: Resolved): Flows & { phiQ: tf.Tensor; phiK: tf.Tensor } {
  const { eps, clamp } = o;
  const phiQ = tf.sigmoid(q); // [b, h, l, d]
  const phiK = tf.sigmoid(k); // [b, h, s, d]
  const qe = phiQ.add(eps);
  const ke = phiK.add(eps);
  const dot = (a: tf.Tensor, b: tf.Tensor) => a.mul(b).sum(3); // over d
  if (!o.causal) {
    const l = q.shape[2] as number;
    const s = k.shape[2] as number;
    const incoming = dot(qe, phiK.sum(2, true).add(eps)); // I [b, h, l]
    const outgoing = dot(ke, phiQ.sum(2, true).add(eps)); // O [b, h, s]
    const conservedIncoming = dot(qe, phiK.div(outgoing.expandDims(3)).sum(2, true).add(eps));
    const conservedOutgoing = dot(ke, phiQ.div(incoming.expandDims(3)).sum(2, true).add(eps)).clipByValue(
      -clamp,
      clamp,
    );
    const allocation = tf.sigmoid(conservedIncoming.mul(l / s));
    const competition = tf.softmax(conservedOutgoing, -1).mul(s);
    return {
      phiQ,
      phiK,
      incoming,
      outgoing,
      conservedIncoming,
      conservedOutgoing,
      allocation,
      competition,
    } as Flows & { phiQ: tf.Tensor; phiK: tf.Tensor };
  }
  const n = counts(q.shape[2] as number); // [s]: how many keys (and queries) each position sees
  const incoming = dot(qe, prefixSum(phiK, 2).add(eps)); // I_i over keys j <= i
  const outgoing = dot(ke, prefixSum(phiQ, 2).add(eps)); // O_j over queries i <= j
  const sinkIn = n.div(incoming).expandDims(3); // (i+1)/I_i
  const sourceOut = n.div(outgoing).expandDims(3); // (j+1)/O_j
  const conservedIncoming = dot(qe, prefixSum(phiK.mul(sourceOut), 2).add(eps)).div(n);
  const conservedOutgoing = dot(ke, prefixSum(phiQ.mul(sinkIn), 2).add(eps))
    .div(n)
    .clipByValue(-clamp, clamp);
  const allocation = tf.sigmoid(conservedIncoming);
  // exp(Ô) is at most e^clamp, so the prefix normalisation needs no max shift
  const e = tf.exp(conservedOutgoing);
  const competition = e.div(prefixSum(e, 2)).mul(n);
  return {
    phiQ,
    phiK,
    incoming,
    outgoing,
    conservedIncoming,
    conservedOutgoing,
    allocation,
    competition,
  } as Flows & { phiQ: tf.Tensor; phiK: tf.Tensor };
}

/**
 * Flow-Attention as a drop-in attention: q [b, h, l, d], k [b, h, s, d], v [b, h, s, e] -> [b, h, l, e]. q and k are
 * the projections before the kernel (φ = sigmoid is applied here). With `causal`, position i sees keys 0..i only.
 */
export function flowAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  options: FlowAttentionOptions = {},
): tf.Tensor4D {
  const fn = 'flowAttention';
  const o = resolveOptions(fn, options);
  checkShapes(fn, q, k, v, o.causal);
  return tf.tidy(() => {
    const f = flowsOf(q, k, o);
    const qn = f.phiQ.div(f.incoming.expandDims(3)); // φ(q_i)/I_i
    const vc = v.mul(f.competition.expandDims(3)); // competition
    let agg: tf.Tensor;
    if (!o.causal) {
      agg = tf.matMul(qn, tf.matMul(f.phiK, vc, true, false)); // φq/I · (φKᵀ V̂)
    } else if (o.aggregation === 'quadratic') {
      const s = q.shape[2];
      const lower = tf.linalg.bandPart(tf.ones([s, s]), -1, 0);
      agg = tf.matMul(tf.matMul(qn, f.phiK, false, true).mul(lower), vc);
    } else {
      const kv = prefixSum(f.phiK.expandDims(4).mul(vc.expandDims(3)), 2); // Σ_{j<=i} φ(k_j) v̂_jᵀ [b, h, s, d, e]
      agg = qn.expandDims(4).mul(kv).sum(3);
    }
    return agg.mul(f.allocation.expandDims(3)) as tf.Tensor4D; // allocation
  });
}

/** The flows of {@link flowAttention} for q and k (same options), for display: each [b, h, positions]. */
export function flowAttentionFlows(q: tf.Tensor4D, k: tf.Tensor4D, options: FlowAttentionOptions = {}): Flows {
  const fn = 'flowAttentionFlows';
  const o = resolveOptions(fn, options);
  checkShapes(fn, q, k, null, o.causal);
  return tf.tidy(() => {
    const { phiQ: _q, phiK: _k, ...flows } = flowsOf(q, k, o);
    return flows;
  });
}

/** The recurrent state of causal Flow-Attention after n tokens (per batch row and head). */
export interface FlowState {
  /** Tokens consumed so far. */
  n: number;
  /** Σ φ(k_j) [b, h, d] */
  keySum: tf.Tensor3D;
  /** Σ φ(q_i) [b, h, d] */
  querySum: tf.Tensor3D;
  /** Σ φ(k_j)·(j+1)/O_j [b, h, d] */
  keyOutSum: tf.Tensor3D;
  /** Σ φ(q_i)·(i+1)/I_i [b, h, d] */
  queryInSum: tf.Tensor3D;
  /** Σ exp(Ô_j) [b, h, 1] */
  expSum: tf.Tensor3D;
  /** Σ φ(k_j) (c_j v_j)ᵀ [b, h, d, e] */
  kv: tf.Tensor4D;
}

/** The empty state for batch b, h heads, key dim d and value dim e. */
export function flowInitState(b: number, h: number, d: number, e: number): FlowState {
  for (const [name, x] of Object.entries({ b, h, d, e })) {
    if (!(Number.isInteger(x) && x > 0)) throw new Error(`flowInitState: ${name} must be an integer > 0, got ${x}`);
  }
  return {
    n: 0,
    keySum: tf.zeros([b, h, d]),
    querySum: tf.zeros([b, h, d]),
    keyOutSum: tf.zeros([b, h, d]),
    queryInSum: tf.zeros([b, h, d]),
    expSum: tf.zeros([b, h, 1]),
    kv: tf.zeros([b, h, d, e]),
  };
}

/** Bytes of the tensors a state keeps (their dtype sizes times their element counts). */
export function flowStateBytes(state: FlowState): number {
  const ts = [state.keySum, state.querySum, state.keyOutSum, state.queryInSum, state.expSum, state.kv];
  return ts.reduce((a, t) => a + t.size * bytesPerElement(t.dtype), 0);
}

function bytesPerElement(dtype: tf.DataType): number {
  if (dtype === 'float32' || dtype === 'int32') return 4;
  if (dtype === 'bool') return 1;
  if (dtype === 'complex64') return 8;
  throw new Error(`bytesPerElement: a state tensor of dtype ${dtype} has no fixed size`);
}

/**
 * One causal step: the token's q [b, h, d], k [b, h, d], v [b, h, e] and the state after n tokens -> the output
 * [b, h, e] at position n and the state after n + 1 tokens. The old state is not disposed (the caller owns it).
 * Running it over a sequence equals `flowAttention(q, k, v, { causal: true })`.
 */
export function flowStep(
  state: FlowState,
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  options: Omit<FlowAttentionOptions, 'causal' | 'aggregation'> = {},
): { out: tf.Tensor3D; state: FlowState } {
  const fn = 'flowStep';
  const o = resolveOptions(fn, options);
  const [b, h, d] = state.keySum.shape;
  const e = state.kv.shape[3];
  const want = (name: string, t: tf.Tensor, shape: number[]) => {
    if (t.rank !== 3 || t.shape.some((x, i) => x !== shape[i]))
      throw new Error(`${fn}: ${name} must have shape [${shape}] to match the state, got [${t.shape}]`);
  };
  want('q', q, [b, h, d]);
  want('k', k, [b, h, d]);
  want('v', v, [b, h, e]);
  const n = state.n + 1;
  const { eps, clamp } = o;
  return tf.tidy(() => {
    const phiQ = tf.sigmoid(q);
    const phiK = tf.sigmoid(k);
    const qe = phiQ.add(eps);
    const ke = phiK.add(eps);
    const keySum = state.keySum.add(phiK);
    const querySum = state.querySum.add(phiQ);
    const incoming = qe.mul(keySum.add(eps)).sum(2, true); // [b, h, 1]
    const outgoing = ke.mul(querySum.add(eps)).sum(2, true);
    const keyOutSum = state.keyOutSum.add(phiK.mul(tf.scalar(n).div(outgoing)));
    const queryInSum = state.queryInSum.add(phiQ.mul(tf.scalar(n).div(incoming)));
    const conservedIncoming = qe.mul(keyOutSum.add(eps)).sum(2, true).div(n);
    const conservedOutgoing = ke.mul(queryInSum.add(eps)).sum(2, true).div(n).clipByValue(-clamp, clamp);
    const ex = tf.exp(conservedOutgoing);
    const expSum = state.expSum.add(ex);
    const competition = ex.div(expSum).mul(n); // [b, h, 1]
    const kv = state.kv.add(phiK.expandDims(3).mul(v.mul(competition).expandDims(2))) as tf.Tensor4D;
    const out = phiQ.div(incoming).expandDims(3).mul(kv).sum(2).mul(tf.sigmoid(conservedIncoming)) as tf.Tensor3D;
    return {
      out,
      state: {
        n,
        keySum: keySum as tf.Tensor3D,
        querySum: querySum as tf.Tensor3D,
        keyOutSum: keyOutSum as tf.Tensor3D,
        queryInSum: queryInSum as tf.Tensor3D,
        expSum: expSum as tf.Tensor3D,
        kv,
      },
    };
  });
}

/** Frees a state's tensors. */
export function disposeFlowState(state: FlowState): void {
  tf.dispose([state.keySum, state.querySum, state.keyOutSum, state.queryInSum, state.expSum, state.kv]);
}

/** Shapes of the float64 reference's flat row-major inputs: q [b, h, l, d], k [b, h, s, d], v [b, h, s, e]. */
export interface FlowDims {
  b: number;
  h: number;
  l: number;
  s: number;
  d: number;
  e: number;
}

/**
 * Float64 loop reference of {@link flowAttention} on flat row-major arrays (q [b, h, l, d], k [b, h, s, d],
 * v [b, h, s, e]) -> out [b, h, l, e], written from the equations in the header (no prefix sums: every flow is
 * summed afresh over its range).
 */
export function flowAttentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dims: FlowDims,
  options: FlowAttentionOptions = {},
): Float64Array {
  const fn = 'flowAttentionReference';
  const o = resolveOptions(fn, options);
  const { b, h, l, s, d, e } = dims;
  if (q.length !== b * h * l * d)
    throw new Error(`${fn}: q has ${q.length} values, expected b·h·l·d = ${b * h * l * d}`);
  if (k.length !== b * h * s * d)
    throw new Error(`${fn}: k has ${k.length} values, expected b·h·s·d = ${b * h * s * d}`);
  if (v.length !== b * h * s * e)
    throw new Error(`${fn}: v has ${v.length} values, expected b·h·s·e = ${b * h * s * e}`);
  if (o.causal && l !== s) throw new Error(`${fn}: causal needs l = s, got l ${l} and s ${s}`);
  const { eps, clamp } = o;
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  const out = new Float64Array(b * h * l * e);
  for (let bh = 0; bh < b * h; bh++) {
    const fq = (i: number, c: number) => sig(q[(bh * l + i) * d + c]);
    const fk = (j: number, c: number) => sig(k[(bh * s + j) * d + c]);
    // the keys sink i sees and the queries source j is seen by
    const keysOf = (i: number) => (o.causal ? i + 1 : s);
    const queriesOf = (j: number) => (o.causal ? j + 1 : l);
    const I = new Float64Array(l);
    const O = new Float64Array(s);
    for (let i = 0; i < l; i++) {
      for (let c = 0; c < d; c++) {
        let ks = 0;
        for (let j = 0; j < keysOf(i); j++) ks += fk(j, c);
        I[i] += (fq(i, c) + eps) * (ks + eps);
      }
    }
    for (let j = 0; j < s; j++) {
      for (let c = 0; c < d; c++) {
        let qs = 0;
        for (let i = 0; i < queriesOf(j); i++) qs += fq(i, c);
        O[j] += (fk(j, c) + eps) * (qs + eps);
      }
    }
    // causal: flows scaled by the count of positions seen (the official normalisation)
    const scaleI = (i: number) => (o.causal ? i + 1 : 1);
    const scaleO = (j: number) => (o.causal ? j + 1 : 1);
    const cIn = new Float64Array(l);
    const cOut = new Float64Array(s);
    for (let i = 0; i < l; i++) {
      for (let c = 0; c < d; c++) {
        let acc = 0;
        for (let j = 0; j < keysOf(i); j++) acc += (fk(j, c) * scaleO(j)) / O[j];
        cIn[i] += (fq(i, c) + eps) * (acc + eps);
      }
      cIn[i] /= scaleI(i);
    }
    for (let j = 0; j < s; j++) {
      for (let c = 0; c < d; c++) {
        let acc = 0;
        for (let i = 0; i < queriesOf(j); i++) acc += (fq(i, c) * scaleI(i)) / I[i];
        cOut[j] += (fk(j, c) + eps) * (acc + eps);
      }
      cOut[j] = Math.min(clamp, Math.max(-clamp, cOut[j] / scaleO(j)));
    }
    const comp = new Float64Array(s);
    if (o.causal) {
      for (let j = 0; j < s; j++) {
        let z = 0;
        for (let jj = 0; jj <= j; jj++) z += Math.exp(cOut[jj]);
        comp[j] = (Math.exp(cOut[j]) / z) * (j + 1);
      }
    } else {
      let z = 0;
      for (let j = 0; j < s; j++) z += Math.exp(cOut[j]);
      for (let j = 0; j < s; j++) comp[j] = (Math.exp(cOut[j]) / z) * s;
    }
    for (let i = 0; i < l; i++) {
      const alloc = sig(o.causal ? cIn[i] : (cIn[i] * l) / s);
      for (let j = 0; j < keysOf(i); j++) {
        let w = 0;
        for (let c = 0; c < d; c++) w += fq(i, c) * fk(j, c);
        w = (w / I[i]) * comp[j] * alloc;
        for (let x = 0; x < e; x++) out[(bh * l + i) * e + x] += w * v[(bh * s + j) * e + x];
      }
    }
  }
  return out;
}

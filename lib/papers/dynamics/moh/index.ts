/**
 * MoH: Multi-Head Attention as Mixture-of-Head Attention.
 *
 * Paper: Jin, Zhu, Yuan & Yan, 2024 (ICML 2025), https://arxiv.org/abs/2410.11842; code: github.com/SkyworkAI/MoH.
 *
 * Multi-head attention sums its heads, MHA(x) = Σ_i H_i W_O^i. MoH treats the heads as experts and sums them with
 * per-token weights, only some of them active:
 *
 *   MoH(x) = Σ_{i ≤ S} g_i H_i W_O^i + Σ_{i > S} g_i H_i W_O^i      (S shared heads, E routed heads)
 *   g_shared = α_1 · S · softmax(W_s x),   g_routed = α_2 · K · renorm(top_K(softmax(W_r x))),   [α_1, α_2] = 2 · softmax(W_h x)
 *
 * plus the load-balance loss E · Σ_i P_i f_i (P_i the mean router probability of routed head i, f_i the share of
 * tokens that pick it), weighted 0.01 in the official training loop. The factors S, K and 2 are the official code's:
 * with uniform router logits and K = E every gate is 1, and MoH is multi-head attention.
 *
 * The layer itself lives in lib/layers (attention kind 'moh' of ToyLM, TransformerBlock and MultiHeadAttention; its
 * router in `mohGates`); this module gives the pure function, its float64 reference and the head-usage statistics.
 *
 * Shape legend: b batch, s positions, m d_model, h heads (= S + E), d head dim.
 *   x [b, s, m] -> output [b, s, m];  gates [b, s, h];  balance []
 */
import * as tf from '@tensorflow/tfjs';
import {
  type AttentionConfig,
  type AttentionParams,
  type AuxLosses,
  attentionForward,
  type MohConfig,
  mohGates,
  type RouterParams,
} from '../../../layers/functional.js';

export type { MohConfig, RouterParams } from '../../../layers/functional.js';
export { mohGates, topKMask } from '../../../layers/functional.js';
export { type MohArtifacts, type MohExperimentConfig, type MohModelRow, mohExperiment } from './experiment.js';

/** The weights of one MoH attention layer (no biases). */
export interface MohWeights {
  wq: tf.Tensor; // [m, h*d]
  wk: tf.Tensor; // [m, h*d]
  wv: tf.Tensor; // [m, h*d]
  wo: tf.Tensor; // [h*d, m]
  router: RouterParams;
}

export interface MohAttentionConfig {
  heads: number;
  shared: number;
  routed: number;
  topK: number;
  /** Causal self-attention (default true). */
  causal?: boolean;
}

export interface MohOutput {
  output: tf.Tensor3D; // [b, s, m]
  gates: tf.Tensor3D; // [b, s, h]
  balance: tf.Scalar;
}

function attentionConfig(fn: string, x: tf.Tensor, cfg: MohAttentionConfig): AttentionConfig {
  if (x.rank !== 3) throw new Error(`${fn}: x must have shape [batch, positions, dModel], got [${x.shape}]`);
  return {
    dModel: x.shape[2] as number,
    heads: cfg.heads,
    causal: cfg.causal ?? true,
    attention: { kind: 'moh', shared: cfg.shared, routed: cfg.routed, topK: cfg.topK },
  };
}

/** MoH self-attention, a pure function: x [b, s, m] -> output [b, s, m], the gates and the load-balance loss. */
export function mohAttention(x: tf.Tensor, w: MohWeights, cfg: MohAttentionConfig): MohOutput {
  const acfg = attentionConfig('mohAttention', x, cfg);
  const p: AttentionParams = { wq: w.wq, wk: w.wk, wv: w.wv, wo: w.wo, router: w.router };
  return tf.tidy(() => {
    const aux: AuxLosses = { balance: [] };
    const output = attentionForward(p, x, null, acfg, { aux });
    const g = mohGates(x, w.router, acfg.attention as MohConfig);
    return { output, gates: g.gates, balance: aux.balance[0] };
  });
}

/** Float64 weights for {@link mohAttentionReference}: row-major arrays of the shapes in {@link MohWeights}. */
export interface MohWeights64 {
  wq: ArrayLike<number>;
  wk: ArrayLike<number>;
  wv: ArrayLike<number>;
  wo: ArrayLike<number>;
  wr: ArrayLike<number>; // [m, E]
  ws?: ArrayLike<number>; // [m, S], S > 1
  wh?: ArrayLike<number>; // [m, 2], S > 0
}

function softmax64(z: number[]): number[] {
  const mx = Math.max(...z);
  const e = z.map((v) => Math.exp(v - mx));
  const t = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / t);
}

/**
 * The float64 naive reference of {@link mohAttention}: plain loops over tokens, heads and keys; the top-K keeps the K
 * largest router probabilities, ties to the lower head index. x is [b, s, m] row-major.
 */
export function mohAttentionReference(
  x: ArrayLike<number>,
  shape: [number, number, number],
  w: MohWeights64,
  cfg: MohAttentionConfig,
): { output: Float64Array; gates: Float64Array; balance: number } {
  const [B, T, M] = shape;
  const H = cfg.heads;
  const D = M / H;
  const { shared: S, routed: E, topK: K } = cfg;
  const causal = cfg.causal ?? true;
  const proj = (row: number, wt: ArrayLike<number>, cols: number) => {
    const out = new Array<number>(cols).fill(0);
    for (let c = 0; c < cols; c++) for (let i = 0; i < M; i++) out[c] += x[row * M + i] * wt[i * cols + c];
    return out;
  };
  const gates = new Float64Array(B * T * H);
  const meanP = new Array<number>(E).fill(0);
  const meanF = new Array<number>(E).fill(0);
  for (let r = 0; r < B * T; r++) {
    const p = softmax64(proj(r, w.wr, E));
    const rank = p.map((pi, i) => p.filter((pj, j) => pj > pi || (pj === pi && j < i)).length);
    const sel = rank.map((k) => (k < K ? 1 : 0));
    const kept = p.map((pi, i) => pi * sel[i]);
    const tot = Math.max(
      kept.reduce((a, b) => a + b, 0),
      1.1920929e-7,
    );
    let routed = kept.map((v) => (v / tot) * K);
    let sharedG: number[] = [];
    if (S > 0) {
      sharedG = S > 1 ? softmax64(proj(r, w.ws!, S)).map((v) => v * S) : [1];
      const a = softmax64(proj(r, w.wh!, 2)).map((v) => v * 2);
      sharedG = sharedG.map((v) => v * a[0]);
      routed = routed.map((v) => v * a[1]);
    }
    [...sharedG, ...routed].forEach((g, h) => (gates[r * H + h] = g));
    for (let i = 0; i < E; i++) {
      meanP[i] += p[i] / (B * T);
      meanF[i] += sel[i] / (B * T);
    }
  }
  const balance = E * meanP.reduce((a, pi, i) => a + pi * meanF[i], 0);
  const q = Array.from({ length: B * T }, (_, r) => proj(r, w.wq, H * D));
  const k = Array.from({ length: B * T }, (_, r) => proj(r, w.wk, H * D));
  const v = Array.from({ length: B * T }, (_, r) => proj(r, w.wv, H * D));
  const output = new Float64Array(B * T * M);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const merged = new Array<number>(H * D).fill(0);
      for (let h = 0; h < H; h++) {
        const keys = causal ? t + 1 : T;
        const scores: number[] = [];
        for (let u = 0; u < keys; u++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[b * T + t][h * D + d] * k[b * T + u][h * D + d];
          scores.push(dot / Math.sqrt(D));
        }
        const a = softmax64(scores);
        const g = gates[(b * T + t) * H + h];
        for (let u = 0; u < keys; u++)
          for (let d = 0; d < D; d++) merged[h * D + d] += g * a[u] * v[b * T + u][h * D + d];
      }
      for (let c = 0; c < M; c++) {
        let acc = 0;
        for (let i = 0; i < H * D; i++) acc += merged[i] * w.wo[i * M + c];
        output[(b * T + t) * M + c] = acc;
      }
    }
  return { output, gates, balance };
}

/** Share of tokens on which each head is active (gate > 0), from gates [b, s, h] (e.g. hook_gates). */
export function headUsage(gates: tf.Tensor): number[] {
  if (gates.rank !== 3)
    throw new Error(`headUsage: gates must have shape [batch, positions, heads], got [${gates.shape}]`);
  return tf.tidy(() => Array.from(gates.greater(0).toFloat().mean([0, 1]).dataSync()));
}

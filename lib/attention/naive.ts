/**
 * Naive reference for `sdpa`: plain loops in float64 over JS arrays, written for obviousness, not speed.
 * Tests compare every fast or approximate attention path against it (outputs here; gradients by central differences
 * of `naiveAttention` in float64).
 */
import type { Mask } from '../masks/index.js';
import type { Scoring } from './sdpa.js';

/** A dense array with its shape, row-major. */
export interface Dense {
  data: ArrayLike<number>;
  shape: number[];
}

export interface NaiveOptions {
  mask?: Mask;
  scale?: number;
  /** Additive bias, broadcastable to [b, h, q, k]. */
  bias?: Dense;
  scoring?: Scoring;
  sinkLogit?: ArrayLike<number>;
  sigmoidBias?: number;
}

function at(t: Dense, idx: number[]): number {
  // Right-aligned broadcasting index.
  let off = 0;
  const r = t.shape.length;
  for (let i = 0; i < r; i++) {
    const dimIdx = idx[idx.length - r + i];
    off = off * t.shape[i] + (t.shape[i] === 1 ? 0 : dimIdx);
  }
  return t.data[off];
}

/** Returns output [b, h, q, e] and weights [b, h, q, k] as Float64Arrays. */
export function naiveAttention(
  q: Dense,
  k: Dense,
  v: Dense,
  o: NaiveOptions = {},
): { output: Float64Array; weights: Float64Array } {
  const [B, H, Q, D] = q.shape;
  const [, G, K] = k.shape;
  const E = v.shape[3];
  const groups = H / G;
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const scoring = o.scoring ?? 'softmax';
  const output = new Float64Array(B * H * Q * E);
  const weights = new Float64Array(B * H * Q * K);
  const offset = K - Q;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / groups);
      for (let i = 0; i < Q; i++) {
        const s = new Float64Array(K);
        const vis: boolean[] = [];
        for (let j = 0; j < K; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += at(q, [b, h, i, d]) * at(k, [b, g, j, d]);
          s[j] = dot * scale + (o.bias ? at(o.bias, [b, h, i, j]) : 0);
          vis.push(o.mask ? o.mask.allows(b, offset + i, j) : true);
        }
        const w = new Float64Array(K);
        if (scoring === 'sigmoid') {
          const sb = o.sigmoidBias ?? -Math.log(K);
          for (let j = 0; j < K; j++) w[j] = vis[j] ? 1 / (1 + Math.exp(-(s[j] + sb))) : 0;
        } else {
          const sink = scoring === 'softmax-sink' ? o.sinkLogit![h] : -Infinity;
          let m = sink;
          for (let j = 0; j < K; j++) if (vis[j]) m = Math.max(m, s[j]);
          let z = scoring === 'softmax-sink' ? Math.exp(sink - m) : 0;
          for (let j = 0; j < K; j++) if (vis[j]) z += Math.exp(s[j] - m);
          // z is 0 only when no key is visible (zero weights); NaN (a NaN or +inf score) propagates.
          for (let j = 0; j < K; j++) w[j] = vis[j] && z !== 0 ? Math.exp(s[j] - m) / z : 0;
        }
        for (let j = 0; j < K; j++) weights[((b * H + h) * Q + i) * K + j] = w[j];
        for (let e = 0; e < E; e++) {
          let acc = 0;
          for (let j = 0; j < K; j++) if (vis[j]) acc += w[j] * at(v, [b, g, j, e]); // hidden keys are left out
          output[((b * H + h) * Q + i) * E + e] = acc;
        }
      }
    }
  }
  return { output, weights };
}

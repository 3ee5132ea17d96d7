/**
 * Planted heavy entries: random attention inputs where every query from position 64 on carries a copy of one key at
 * least 64 positions back, so an attention approximation must find far, content-matched keys that a local window
 * misses (the `planted` source of sparse-approx).
 *
 *   k_j, v_j ~ N(0, 1),   q_i = 0.5 · N(0, 1) + a · k_{j(i)} / ‖k_{j(i)}‖,   j(i) uniform in [0, i - 63] for i >= 64,
 *   a = score · √d / ‖k_{j(i)}‖, so the planted score q_i · k_{j(i)} / √d is about `score` above the noise.
 *
 * Shape legend: h heads, n positions, d head dim; q, k, v [1, h, n, d].
 *
 * ```ts
 * const [q, k, v] = al.data.plantedQkv(256, 2, 32, 10, 0); // query 100's largest score is on a key at <= 36
 * ```
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/random.js';

/** Planted q, k, v [1, heads, n, dim] from a seed (see the module header); the caller disposes them. */
export function plantedQkv(
  n: number,
  heads: number,
  dim: number,
  score: number,
  seed: number,
): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
  const rng = new Rng(seed);
  const k = Float32Array.from({ length: heads * n * dim }, () => rng.normal());
  const v = Float32Array.from({ length: heads * n * dim }, () => rng.normal());
  const q = Float32Array.from({ length: heads * n * dim }, () => rng.normal() * 0.5);
  for (let h = 0; h < heads; h++) {
    for (let i = 64; i < n; i++) {
      const j = rng.int(0, i - 63);
      let norm = 0;
      for (let d = 0; d < dim; d++) norm += k[(h * n + j) * dim + d] ** 2;
      // q·k_j · (1/√d) ≈ a ‖k‖ / √d ≈ a: a = score puts the planted entry `score` above the noise.
      const a = (score * Math.sqrt(dim)) / Math.sqrt(norm);
      for (let d = 0; d < dim; d++) q[(h * n + i) * dim + d] += (a * k[(h * n + j) * dim + d]) / Math.sqrt(norm);
    }
  }
  const t = (x: Float32Array) => tf.tensor4d(x, [1, heads, n, dim]);
  return [t(q), t(k), t(v)];
}

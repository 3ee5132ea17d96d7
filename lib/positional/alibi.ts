/**
 * ALiBi, attention with linear biases (Press, Smith & Lewis 2022, "Train Short, Test Long", https://arxiv.org/abs/2108.12409,
 * §3): no position embeddings; each head adds a bias proportional to the query-key distance to its attention scores,
 *
 *   bias[h, i, j] = -m_h * (pos_q(i) - pos_k(j)),
 *
 * with head slopes m_h a geometric sequence (below). Queries are end-aligned with the keys, as in a KV cache:
 * query i of `queries` sits at absolute position `keys - queries + i`, key j at position j.
 *
 * Beyond the diagonal (a key after the query) the bias is -m_h * |pos_q - pos_k| by default (`future: 'symmetric'`,
 * the usual bidirectional variant); `future: 'zero'` leaves those entries at 0. Under a causal mask they are masked
 * out either way.
 *
 * Shapes: bias [1, heads, queries, keys], added to scores [batch, heads, queries, keys].
 */
import * as tf from '@tensorflow/tfjs';
import { assertPositiveInt, assertRank, fmt, ShapeError } from '../util/shapes.js';

/**
 * The paper's slopes: for n a power of two, m_h = 2^(-8h/n) for h = 1..n (n = 8: 1/2, 1/4, ..., 1/256). Otherwise, with
 * c the largest power of two below n, the c slopes for c heads followed by every other slope for 2c heads, starting
 * with the first (2^(-8h/(2c)) for h = 1, 3, 5, ...), the first n - c of them (the authors' `get_slopes`).
 */
export function alibiSlopes(heads: number): number[] {
  assertPositiveInt('alibiSlopes', 'heads', heads);
  const pow2 = (n: number): number[] => Array.from({ length: n }, (_, h) => 2 ** ((-8 * (h + 1)) / n));
  const c = 2 ** Math.floor(Math.log2(heads));
  if (c === heads) return pow2(heads);
  return [
    ...pow2(c),
    ...pow2(2 * c)
      .filter((_, i) => i % 2 === 0)
      .slice(0, heads - c),
  ];
}

export interface AlibiOptions {
  /** Slopes per head `[heads]`; default `alibiSlopes(heads)`. A tensor makes the bias differentiable in the slopes. */
  slopes?: readonly number[] | tf.Tensor1D;
  /** Bias for keys after the query: default 'symmetric' (-m|distance|); 'zero' gives 0. */
  future?: 'symmetric' | 'zero';
}

/** The ALiBi bias `[1, heads, queries, keys]` (queries end-aligned with keys). */
export function alibiBias(heads: number, queries: number, keys: number, options: AlibiOptions = {}): tf.Tensor4D {
  const fn = 'alibiBias';
  assertPositiveInt(fn, 'heads', heads);
  assertPositiveInt(fn, 'queries', queries);
  assertPositiveInt(fn, 'keys', keys);
  const future = options.future ?? 'symmetric';
  if (future !== 'symmetric' && future !== 'zero')
    throw new ShapeError(`${fn}: future must be 'symmetric' or 'zero', got ${String(future)}`);
  const slopes = options.slopes ?? alibiSlopes(heads);
  if (slopes instanceof tf.Tensor) assertRank(fn, 'slopes', slopes, 1, '[heads]');
  const n = slopes instanceof tf.Tensor ? slopes.shape[0] : slopes.length;
  if (n !== heads)
    throw new ShapeError(`${fn}: slopes has shape ${fmt([n])} but heads is ${heads}; expected [${heads}]`);
  // -distance [queries, keys]: 0 on the end-aligned diagonal, growing more negative with distance.
  const negDist = new Float32Array(queries * keys);
  for (let i = 0; i < queries; i++) {
    const qPos = keys - queries + i;
    for (let j = 0; j < keys; j++) {
      const d = qPos - j;
      negDist[i * keys + j] = d > 0 ? -d : d < 0 && future === 'symmetric' ? d : 0; // +0 on the diagonal, never -0
    }
  }
  return tf.tidy(() => {
    const m = slopes instanceof tf.Tensor ? tf.cast(slopes, 'float32') : tf.tensor1d(slopes as number[]);
    return tf.mul(tf.reshape(m, [1, heads, 1, 1]), tf.tensor4d(negDist, [1, 1, queries, keys])) as tf.Tensor4D;
  });
}

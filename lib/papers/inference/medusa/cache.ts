/**
 * A KV cache that can keep a subset of its positions: after a Medusa tree is verified, the cache holds the prefix and
 * every tree node, and only the accepted path's keys and values may stay (in order, right after the prefix; their
 * RoPE/position ids were already the depth positions they now occupy). The official code copies the accepted rows in
 * place in a preallocated cache; here `keep` slices them out.
 *
 *   keys, values per layer [batch, kvHeads, positions, headDim]
 */
import * as tf from '@tensorflow/tfjs';
import { KVCache } from '../../../layers/cache.js';

export class TreeKVCache extends KVCache {
  private readonly keys: (tf.Tensor4D | null)[];
  private readonly values: (tf.Tensor4D | null)[];

  constructor(layers: number, maxLength = Infinity) {
    super(layers, maxLength);
    this.keys = new Array(layers).fill(null);
    this.values = new Array(layers).fill(null);
  }

  override length(layer = 0): number {
    return this.keys[layer]?.shape[2] ?? 0;
  }

  override append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.layers)
      throw new Error(`TreeKVCache.append: layer must be in [0, ${this.layers}), got ${layer}`);
    const oldK = this.keys[layer];
    const oldV = this.values[layer];
    const t = (oldK?.shape[2] ?? 0) + k.shape[2];
    if (t > this.maxLength)
      throw new Error(`TreeKVCache.append: ${t} positions exceed the cache's maxLength ${this.maxLength}`);
    const nk = tf.keep(oldK ? tf.concat([oldK, k], 2) : k.clone()) as tf.Tensor4D;
    const nv = tf.keep(oldV ? tf.concat([oldV, v], 2) : v.clone()) as tf.Tensor4D;
    oldK?.dispose();
    oldV?.dispose();
    this.keys[layer] = nk;
    this.values[layer] = nv;
    return [nk, nv];
  }

  /** Keep only `positions` (increasing indices into the cached positions), in every layer. */
  keep(positions: number[]): void {
    const n = this.length(0);
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i];
      if (!Number.isInteger(p) || p < 0 || p >= n || (i > 0 && p <= positions[i - 1]))
        throw new Error(
          `TreeKVCache.keep: positions must be increasing integers in [0, ${n}), got ${JSON.stringify(positions)}`,
        );
    }
    // Runs of consecutive positions (the prefix, then the accepted nodes), each one slice: slices and one concat are
    // cheaper on every backend than a gather over the whole cache.
    const runs: [number, number][] = [];
    for (const p of positions) {
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === p) last[1]++;
      else runs.push([p, 1]);
    }
    const pick = (x: tf.Tensor4D) =>
      tf.tidy(() => {
        const [b, g, , d] = x.shape;
        const parts = runs.map(([start, size]) => x.slice([0, 0, start, 0], [b, g, size, d]));
        return tf.keep(parts.length === 1 ? parts[0] : tf.concat(parts, 2)) as tf.Tensor4D;
      });
    for (let l = 0; l < this.layers; l++) {
      const k = this.keys[l];
      const v = this.values[l];
      if (!k || !v) continue;
      this.keys[l] = pick(k);
      this.values[l] = pick(v);
      k.dispose();
      v.dispose();
    }
  }

  override dispose(): void {
    for (let l = 0; l < this.layers; l++) {
      this.keys[l]?.dispose();
      this.values[l]?.dispose();
      this.keys[l] = this.values[l] = null;
    }
    super.dispose();
  }
}

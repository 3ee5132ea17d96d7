/**
 * KV cache for incremental decoding: per layer, keys and values [batch, kvHeads, positions, headDim] that grow as
 * tokens are decoded. The cache owns its tensors (kept past tf.tidy); dispose() frees them.
 */
import * as tf from '@tensorflow/tfjs';

export class KVCache {
  private readonly k: (tf.Tensor4D | null)[];
  private readonly v: (tf.Tensor4D | null)[];

  constructor(
    readonly layers: number,
    readonly maxLength = Infinity,
  ) {
    this.k = new Array(layers).fill(null);
    this.v = new Array(layers).fill(null);
  }

  /** Cached positions of `layer`. */
  length(layer = 0): number {
    return this.k[layer]?.shape[2] ?? 0;
  }

  /** Append new keys/values for `layer`; returns the full keys and values (owned by the cache: don't dispose). */
  append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    if (layer < 0 || layer >= this.layers)
      throw new Error(`KVCache.append: layer ${layer} outside [0, ${this.layers})`);
    const oldK = this.k[layer];
    const oldV = this.v[layer];
    const nk = tf.keep(oldK ? tf.concat([oldK, k], 2) : k.clone()) as tf.Tensor4D;
    const nv = tf.keep(oldV ? tf.concat([oldV, v], 2) : v.clone()) as tf.Tensor4D;
    if (nk.shape[2] > this.maxLength) {
      nk.dispose();
      nv.dispose();
      throw new Error(`KVCache.append: ${nk.shape[2]} positions exceed the cache's maxLength ${this.maxLength}`);
    }
    oldK?.dispose();
    oldV?.dispose();
    this.k[layer] = nk;
    this.v[layer] = nv;
    return [nk, nv];
  }

  dispose(): void {
    for (let i = 0; i < this.layers; i++) {
      this.k[i]?.dispose();
      this.v[i]?.dispose();
      this.k[i] = this.v[i] = null;
    }
  }
}

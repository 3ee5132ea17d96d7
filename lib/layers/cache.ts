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

  /**
   * A 0/1 mask broadcastable to [batch, heads, queries, keys] that attention at `layer` applies instead of the causal
   * mask, for caches that hold different positions per head (padded to one length; see
   * lib/papers/inference/kv/cache.ts). undefined (this cache): the causal mask.
   */
  attentionMask(_layer: number, _queries: number): tf.Tensor | undefined {
    return undefined;
  }

  /** Bytes held by the cached keys and values of `layer` (every layer when omitted), measured from the tensors. */
  bytes(layer?: number): number {
    let n = 0;
    for (let i = 0; i < this.layers; i++)
      if (layer === undefined || layer === i) n += tensorBytes(this.k[i]) + tensorBytes(this.v[i]);
    return n;
  }

  dispose(): void {
    for (let i = 0; i < this.layers; i++) {
      this.k[i]?.dispose();
      this.v[i]?.dispose();
      this.k[i] = this.v[i] = null;
    }
  }
}

/** Bytes a tensor's data takes (size · bytes per element of its dtype); 0 for null. */
export function tensorBytes(t: tf.Tensor | null | undefined): number {
  if (!t) return 0;
  const per = t.dtype === 'bool' ? 1 : t.dtype === 'complex64' ? 8 : t.dtype === 'string' ? NaN : 4;
  return t.size * per;
}

/**
 * PolicyCache: a KV cache whose every KV head keeps the tokens a KVPolicy (policy.ts) selects. Each (layer, KV head)
 * stores keys and values [batch, n, headDim] of its own plus an optional compensation token ([batch, 1, headDim] key and
 * value, the means of the tokens folded into it), so heads may hold different numbers of tokens and bytes() is measured
 * from the stored tensors. Every batch row keeps the same number of tokens per head (the rows' positions may differ).
 *
 * Attention sees, per layer, one [batch, kvHeads, T, headDim] view: each head's tokens left-padded to the longest head
 * (the pad is masked through attentionMask, which ToyLM passes to the layer), its compensation token first (repeated
 * once per folded token with fold 'count', which is exactly the N_d · exp(q·k̂) weight of RazorAttention's equation; the
 * repeat exists only inside the attention call, the cache stores the token once).
 *
 * length(layer) is the number of tokens seen, not stored: the next token's absolute position.
 */
import * as tf from '@tensorflow/tfjs';
import { KVCache, tensorBytes } from '../../../layers/cache.js';
import type { HeadView, KVPolicy, Selection } from './policy.js';

export interface PolicyCacheShape {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Longest sequence (tokens seen), e.g. the model's maxLen. */
  maxLen: number;
}

interface Head {
  k: tf.Tensor3D | null; // [b, n, d]
  v: tf.Tensor3D | null;
  positions: number[][]; // [row][slot]
  compK: tf.Tensor3D | null; // [b, 1, d]
  compV: tf.Tensor3D | null;
  folded: number;
  fold: 'count' | 'one';
}

export class PolicyCache extends KVCache {
  private readonly heads: Head[][];
  private readonly seenTokens: number[];
  private readonly addedTokens: number[];
  private batch = 0;

  constructor(
    readonly shape: PolicyCacheShape,
    readonly policy: KVPolicy,
  ) {
    super(shape.layers, shape.maxLen);
    for (const k of ['layers', 'heads', 'kvHeads', 'headDim', 'maxLen'] as const)
      if (!Number.isInteger(shape?.[k]) || shape[k] < 1)
        throw new Error(`PolicyCache: shape.${k} must be a positive integer, got ${shape?.[k]}`);
    if (shape.heads % shape.kvHeads !== 0)
      throw new Error(`PolicyCache: shape.kvHeads (${shape.kvHeads}) must divide shape.heads (${shape.heads})`);
    if (!policy || typeof policy.select !== 'function')
      throw new Error(`PolicyCache: policy must be a KVPolicy, got ${String(policy)}`);
    this.heads = Array.from({ length: shape.layers }, () =>
      Array.from({ length: shape.kvHeads }, () => ({
        k: null,
        v: null,
        positions: [],
        compK: null,
        compV: null,
        folded: 0,
        fold: 'count' as const,
      })),
    );
    this.seenTokens = new Array(shape.layers).fill(0);
    this.addedTokens = new Array(shape.layers).fill(0);
  }

  /** Tokens seen by `layer`: the absolute position the next token takes (stored tokens: stored()). */
  override length(layer = 0): number {
    return this.seenTokens[layer] ?? 0;
  }

  /** Tokens stored for (layer, KV head), the compensation token not counted. */
  stored(layer: number, head: number): number {
    return this.head('PolicyCache.stored', layer, head).positions[0]?.length ?? 0;
  }

  /** Absolute positions of the tokens stored for (layer, KV head, batch row). */
  positions(layer: number, head: number, row = 0): number[] {
    return [...(this.head('PolicyCache.positions', layer, head).positions[row] ?? [])];
  }

  /** Tokens folded into the compensation token of (layer, KV head). */
  folded(layer: number, head: number): number {
    return this.head('PolicyCache.folded', layer, head).folded;
  }

  /** The stored keys, values and compensation token of (layer, KV head) (owned by the cache: don't dispose). */
  tensors(
    layer: number,
    head: number,
  ): { k: tf.Tensor3D | null; v: tf.Tensor3D | null; compK: tf.Tensor3D | null; compV: tf.Tensor3D | null } {
    const h = this.head('PolicyCache.tensors', layer, head);
    return { k: h.k, v: h.v, compK: h.compK, compV: h.compV };
  }

  /** Bytes of the stored keys, values and compensation tokens of a layer and KV head (all when omitted), all rows. */
  override bytes(layer?: number, head?: number): number {
    let n = 0;
    this.heads.forEach((row, l) => {
      if (layer !== undefined && l !== layer) return;
      row.forEach((h, g) => {
        if (head !== undefined && g !== head) return;
        n += tensorBytes(h.k) + tensorBytes(h.v) + tensorBytes(h.compK) + tensorBytes(h.compV);
      });
    });
    return n;
  }

  /** bytes per [layer][KV head]. */
  headBytes(): number[][] {
    return this.heads.map((row, l) => row.map((_, g) => this.bytes(l, g)));
  }

  private head(fn: string, layer: number, head: number): Head {
    const h = this.heads[layer]?.[head];
    if (!h)
      throw new Error(
        `${fn}: (layer ${layer}, head ${head}) outside [0, ${this.shape.layers}) x [0, ${this.shape.kvHeads})`,
      );
    return h;
  }

  /** Columns of the attention view for head g of `layer`: pad, compensation copies, stored tokens. */
  private columns(layer: number): { pad: number[]; comp: number[]; total: number } {
    const lens = this.heads[layer].map((h) => this.compColumns(h) + (h.positions[0]?.length ?? 0));
    const total = Math.max(...lens);
    return {
      pad: lens.map((n) => total - n),
      comp: this.heads[layer].map((h) => this.compColumns(h)),
      total,
    };
  }

  private compColumns(h: Head): number {
    return h.compK ? (h.fold === 'count' ? h.folded : 1) : 0;
  }

  override attentionMask(layer: number, queries: number): tf.Tensor | undefined {
    const { pad, total } = this.columns(layer);
    if (pad.every((p) => p === 0)) return undefined; // equal lengths: ToyLM's causal mask is right
    const keys = total + queries;
    const { heads, kvHeads } = this.shape;
    const groups = heads / kvHeads;
    const data = new Uint8Array(heads * queries * keys);
    for (let h = 0; h < heads; h++) {
      const p = pad[Math.floor(h / groups)];
      for (let i = 0; i < queries; i++) {
        const visibleUpTo = keys - queries + i; // end-aligned causal
        for (let j = p; j <= visibleUpTo; j++) data[(h * queries + i) * keys + j] = 1;
      }
    }
    return tf.tensor4d(data, [1, heads, queries, keys], 'bool');
  }

  override append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    const fn = 'PolicyCache.append';
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.shape.layers)
      throw new Error(`${fn}: layer ${layer} outside [0, ${this.shape.layers})`);
    const [b, g, s, d] = k.shape;
    if (g !== this.shape.kvHeads || d !== this.shape.headDim)
      throw new Error(
        `${fn}: k must have shape [batch, ${this.shape.kvHeads}, positions, ${this.shape.headDim}], got [${k.shape}]`,
      );
    if (this.batch === 0) this.batch = b;
    else if (b !== this.batch) throw new Error(`${fn}: batch ${b}, but the cache holds batch ${this.batch}`);
    const seen = this.seenTokens[layer];
    if (seen + s > this.shape.maxLen)
      throw new Error(`${fn}: ${seen} seen + ${s} new positions exceed the cache's maxLen ${this.shape.maxLen}`);
    const { pad } = this.columns(layer);
    const ks: tf.Tensor[] = [];
    const vs: tf.Tensor[] = [];
    this.heads[layer].forEach((h, gi) => {
      const nk = k.slice([0, gi, 0, 0], [b, 1, s, d]).reshape([b, s, d]) as tf.Tensor3D;
      const nv = v.slice([0, gi, 0, 0], [b, 1, s, d]).reshape([b, s, d]) as tf.Tensor3D;
      const newK = tf.keep(h.k ? tf.concat([h.k, nk], 1) : nk.clone()) as tf.Tensor3D;
      const newV = tf.keep(h.v ? tf.concat([h.v, nv], 1) : nv.clone()) as tf.Tensor3D;
      h.k?.dispose();
      h.v?.dispose();
      h.k = newK;
      h.v = newV;
      for (let r = 0; r < b; r++) {
        h.positions[r] ??= [];
        for (let i = 0; i < s; i++) h.positions[r].push(seen + i);
      }
      const parts = (stored: tf.Tensor3D, comp: tf.Tensor3D | null): tf.Tensor => {
        const out: tf.Tensor[] = [];
        if (pad[gi] > 0) out.push(tf.zeros([b, pad[gi], d]));
        const c = this.compColumns(h);
        if (comp && c > 0) out.push(c === 1 ? comp : tf.tile(comp, [1, c, 1]));
        out.push(stored);
        return out.length === 1 ? stored : tf.concat(out, 1);
      };
      ks.push(parts(newK, h.compK));
      vs.push(parts(newV, h.compV));
    });
    this.seenTokens[layer] = seen + s;
    this.addedTokens[layer] = s;
    return [tf.stack(ks, 1) as tf.Tensor4D, tf.stack(vs, 1) as tf.Tensor4D];
  }

  private view(layer: number, head: number, row: number): HeadView {
    const h = this.heads[layer][head];
    return {
      layer,
      head,
      row,
      positions: h.positions[row] ?? [],
      seen: this.seenTokens[layer],
      added: this.addedTokens[layer],
      folded: h.folded,
    };
  }

  /**
   * Hands the policy the attention weights [b, heads, s, T] of `layer`'s newest pass (its hook_pattern over the view
   * that append returned): per KV head and row, the mean over the head's query heads, on the stored tokens only.
   */
  observe(layer: number, pattern: tf.Tensor): void {
    const [b, heads, s, t] = pattern.shape;
    const { pad, comp, total } = this.columns(layer);
    if (heads !== this.shape.heads || t !== total || b !== this.batch)
      throw new Error(
        `PolicyCache.observe: pattern must have shape [${this.batch}, ${this.shape.heads}, queries, ${total}], got [${pattern.shape}]`,
      );
    const w = pattern.dataSync();
    const groups = heads / this.shape.kvHeads;
    for (let g = 0; g < this.shape.kvHeads; g++) {
      const skip = pad[g] + comp[g];
      const n = total - skip;
      for (let r = 0; r < b; r++) {
        const rows: number[][] = [];
        for (let i = 0; i < s; i++) {
          const acc = new Array<number>(n).fill(0);
          for (let q = g * groups; q < (g + 1) * groups; q++) {
            const base = ((r * heads + q) * s + i) * t + skip;
            for (let j = 0; j < n; j++) acc[j] += w[base + j] / groups;
          }
          rows.push(acc);
        }
        this.policy.observe(this.view(layer, g, r), rows);
      }
    }
  }

  /** Applies the policy's selections to every layer, head and row (after a forward pass). */
  compress(): void {
    for (let l = 0; l < this.shape.layers; l++)
      for (let g = 0; g < this.shape.kvHeads; g++) {
        const h = this.heads[l][g];
        const n = h.positions[0]?.length ?? 0;
        if (n === 0) continue;
        const sels: (Selection | null)[] = [];
        for (let r = 0; r < this.batch; r++) sels.push(this.policy.select(this.view(l, g, r)));
        if (sels.every((x) => x === null)) continue;
        const keeps = sels.map((x) => x?.keep ?? Array.from({ length: n }, (_, i) => i));
        const m = keeps[0].length;
        keeps.forEach((keep, r) => {
          if (keep.length !== m)
            throw new Error(
              `PolicyCache.compress: policy '${this.policy.name}' keeps ${keep.length} tokens in row ${r} but ${m} in row 0 (layer ${l}, head ${g}); rows must keep equally many`,
            );
          for (let i = 0; i < keep.length; i++)
            if (!Number.isInteger(keep[i]) || keep[i] < 0 || keep[i] >= n || (i > 0 && keep[i] <= keep[i - 1]))
              throw new Error(
                `PolicyCache.compress: policy '${this.policy.name}' must keep strictly ascending indices in [0, ${n}), got [${keep.join(', ')}] (layer ${l}, head ${g}, row ${r})`,
              );
        });
        if (m === n) continue;
        const fold = sels.find((x) => x?.fold)?.fold;
        if (sels.some((x) => (x?.fold ?? undefined) !== fold && x !== null))
          throw new Error(
            `PolicyCache.compress: policy '${this.policy.name}' folds some rows and not others (layer ${l}, head ${g})`,
          );
        this.gather(h, keeps, n, fold);
      }
  }

  private gather(h: Head, keeps: number[][], n: number, fold: 'count' | 'one' | undefined): void {
    const b = this.batch;
    const d = this.shape.headDim;
    const m = keeps[0].length;
    const keepIdx = keeps.flatMap((keep, r) => keep.map((i) => r * n + i));
    const dropped = keeps.map((keep) => {
      const set = new Set(keep);
      return Array.from({ length: n }, (_, i) => i).filter((i) => !set.has(i));
    });
    const drop = n - m;
    const { k, v, ck, cv } = tf.tidy(() => {
      const kf = h.k!.reshape([b * n, d]);
      const vf = h.v!.reshape([b * n, d]);
      const idx = tf.tensor1d(keepIdx, 'int32');
      const k = tf.gather(kf, idx).reshape([b, m, d]);
      const v = tf.gather(vf, idx).reshape([b, m, d]);
      if (!fold) return { k, v };
      const didx = tf.tensor1d(
        dropped.flatMap((ds, r) => ds.map((i) => r * n + i)),
        'int32',
      );
      const sumK = tf.gather(kf, didx).reshape([b, drop, d]).sum(1, true);
      const sumV = tf.gather(vf, didx).reshape([b, drop, d]).sum(1, true);
      const total = h.folded + drop;
      const ck = (h.compK ? h.compK.mul(h.folded).add(sumK) : sumK).div(total);
      const cv = (h.compV ? h.compV.mul(h.folded).add(sumV) : sumV).div(total);
      return { k, v, ck, cv };
    }) as { k: tf.Tensor3D; v: tf.Tensor3D; ck?: tf.Tensor3D; cv?: tf.Tensor3D };
    h.k?.dispose();
    h.v?.dispose();
    h.k = tf.keep(k);
    h.v = tf.keep(v);
    if (fold) {
      h.compK?.dispose();
      h.compV?.dispose();
      h.compK = tf.keep(ck!);
      h.compV = tf.keep(cv!);
      h.folded += drop;
      h.fold = fold;
    }
    h.positions = keeps.map((keep, r) => keep.map((i) => h.positions[r][i]));
  }

  override dispose(): void {
    for (const row of this.heads)
      for (const h of row) {
        tf.dispose([h.k, h.v, h.compK, h.compV].filter((t): t is tf.Tensor3D => t !== null));
        h.k = h.v = h.compK = h.compV = null;
        h.positions = [];
        h.folded = 0;
      }
    super.dispose();
  }
}

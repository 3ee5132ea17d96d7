/**
 * Named hook points (after TransformerLens's HookPoint): every interesting activation of a model passes through
 * `hooks.run(name, x)`, where user functions can read it, record it, or replace it (ablate heads, patch activations).
 * Hook names and shapes of the blocks in functional.ts, as ToyLM and SparseLM name them (pos = query position, kpos =
 * key position):
 *   hook_embed                      [batch, pos, d_model]
 *   blocks.{i}.hook_resid_pre       [batch, pos, d_model]
 *   blocks.{i}.attn.hook_q          [batch, head, pos, d_head]      after RoPE when used
 *   blocks.{i}.attn.hook_k          [batch, kv_head, kpos, d_head]  the full cached keys
 *   blocks.{i}.attn.hook_v          [batch, kv_head, kpos, d_head]
 *   blocks.{i}.attn.hook_pattern    [batch, head, pos, kpos]        attention weights (computed only when hooked;
 *                                                                    none where a sparse `attend` replaces sdpa)
 *   blocks.{i}.attn.hook_z          [batch, head, pos, d_head]      per-head outputs before the output projection
 *   blocks.{i}.attn.hook_gates      [batch, pos, head]              Mixture-of-Head weights of each head (0 = not
 *                                                                    picked), applied to hook_z (attention kind 'moh')
 *   blocks.{i}.hook_attn_out        [batch, pos, d_model]
 *   blocks.{i}.cross.hook_{q,k,v,pattern,z}   as attn.hook_*, kpos over the memory  (blocks with cross-attention)
 *   blocks.{i}.hook_cross_out       [batch, pos, d_model]           (blocks with cross-attention, e.g. OAT's decoder)
 *   blocks.{i}.mlp.hook_post        [batch, pos, d_mlp]             after the GELU
 *   blocks.{i}.hook_mlp_out         [batch, pos, d_model]
 *   blocks.{i}.hook_resid_post      [batch, pos, d_model]
 *   hook_logits                     [batch, pos, vocab]
 */
import * as tf from '@tensorflow/tfjs';

export interface HookContext {
  name: string;
}

/** A hook reads `x`; returning a tensor replaces the activation (keep its shape). */
export type HookFn = (x: tf.Tensor, ctx: HookContext) => tf.Tensor | void;

interface Entry {
  match: string | RegExp;
  fn: HookFn;
}

export class HookRegistry {
  private entries: Entry[] = [];

  /** Register `fn` on the hook `name` (or every name matching a RegExp). Returns a function that removes it. */
  add(match: string | RegExp, fn: HookFn): () => void {
    const e = { match, fn };
    this.entries.push(e);
    return () => {
      this.entries = this.entries.filter((x) => x !== e);
    };
  }

  has(name: string): boolean {
    return this.entries.some((e) => matches(e.match, name));
  }

  get size(): number {
    return this.entries.length;
  }

  run(name: string, x: tf.Tensor): tf.Tensor {
    let y = x;
    for (const e of this.entries) {
      if (!matches(e.match, name)) continue;
      const r = e.fn(y, { name });
      if (r) {
        if (r.shape.join() !== y.shape.join()) {
          throw new Error(`hook '${name}' returned shape [${r.shape}] but the activation has shape [${y.shape}]`);
        }
        y = r;
      }
    }
    return y;
  }

  clear(): void {
    this.entries = [];
  }

  /**
   * Runs `run` with every hook matching `names` recorded into a new ActivationCache (a model's `runWithCache`). The
   * caller disposes the cache; if `run` throws, the cache is disposed and the recorder removed.
   */
  record<T>(names: string | RegExp, run: () => T): { value: T; cache: ActivationCache } {
    const cache = new ActivationCache();
    const remove = this.add(names, cache.recorder());
    try {
      return { value: run(), cache };
    } catch (e) {
      cache.dispose();
      throw e;
    } finally {
      remove();
    }
  }
}

function matches(m: string | RegExp, name: string): boolean {
  return typeof m === 'string' ? m === name : m.test(name);
}

/** Records activations by hook name. Tensors are kept past tf.tidy; call dispose() when done. */
export class ActivationCache {
  private readonly store = new Map<string, tf.Tensor>();

  /** A hook that records a copy of each activation it sees (the latest call wins). */
  recorder(): HookFn {
    return (x, { name }) => {
      this.store.get(name)?.dispose();
      this.store.set(name, tf.keep(x.clone()));
    };
  }

  get(name: string): tf.Tensor {
    const t = this.store.get(name);
    if (!t)
      throw new Error(
        `ActivationCache: nothing recorded for '${name}'; recorded: ${[...this.store.keys()].join(', ') || 'none'}`,
      );
    return t;
  }

  has(name: string): boolean {
    return this.store.has(name);
  }

  names(): string[] {
    return [...this.store.keys()];
  }

  dispose(): void {
    for (const t of this.store.values()) t.dispose();
    this.store.clear();
  }
}

/** A hook for `blocks.{i}.attn.hook_z` that multiplies each head's output by `scales[head]` (0 ablates it). */
export function scaleHeads(scales: number[]): HookFn {
  return (z) => {
    if (z.shape[1] !== scales.length) throw new Error(`scaleHeads: ${scales.length} scales for ${z.shape[1]} heads`);
    return z.mul(tf.tensor4d(scales, [1, scales.length, 1, 1]));
  };
}

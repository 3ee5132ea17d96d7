/**
 * KV-cache policies: which cached tokens each KV head keeps. After kvpress (NVIDIA/kvpress: one small "press" class
 * per policy with one scoring/eviction method, presses compose): a policy sees one KV head of one layer for one batch
 * row at a time, may read the attention weights that head's queries put on its stored tokens (observe), and after each
 * forward pass says which stored tokens to keep (select). PolicyCache (cache.ts) stores every KV head's kept keys and
 * values as tensors of their own, so its bytes() is measured from what is stored; decodeWithPolicy (decode.ts) runs
 * greedy (or teacher-forced) decoding of a ToyLM through it.
 *
 *   const policy = new PerHeadPolicy((layer, head) => (retrieval.has(`${layer}.${head}`) ? new FullPolicy() : new SinkPolicy({ sinks: 4, recent: 16 })));
 *   const r = decodeWithPolicy(model, prompt, 8, policy);   // r.tokens [b][8], r.bytes per forward, r.headBytes [layer][head]
 *
 * Positions: a cache that drops tokens still places the next token at the number of tokens seen (PolicyCache.length),
 * so learned positions and RoPE see the same absolute positions as without eviction; kept keys keep their rotation.
 */

/** One KV head of one layer for one batch row, as a policy sees it. */
export interface HeadView {
  layer: number;
  /** KV head index (query heads h with floor(h / (heads / kvHeads)) === head share it). */
  head: number;
  /** Batch row. */
  row: number;
  /** Absolute positions of the stored tokens, ascending; the newest forward's tokens are the last `added`. */
  positions: readonly number[];
  /** Tokens seen so far: the absolute position the next token takes. */
  seen: number;
  /** Tokens the newest forward pass added. */
  added: number;
  /** Tokens already folded into this head's compensation token (0 when it has none). */
  folded: number;
}

/** What a policy keeps of one head after a forward pass. */
export interface Selection {
  /** Indices into view.positions to keep, strictly ascending. */
  keep: number[];
  /**
   * Fold the dropped tokens into the head's one compensation token (RazorAttention): its key and value are the means
   * of every token folded so far. 'count' weighs it in attention as the number of tokens it holds (the paper's
   * equation: N_d · exp(q·k̂)), 'one' as a single token. Without fold the dropped tokens are gone.
   */
  fold?: 'count' | 'one';
}

/** A KV-cache policy: one scoring/eviction rule. Implementations keep per-sequence state keyed by (layer, head, row). */
export interface KVPolicy {
  readonly name: string;
  /** Whether observe() reads attention weights (decoding then records every layer's attention pattern). */
  readonly needsAttention: boolean;
  /** Forget all per-sequence state (a new batch of sequences starts). */
  reset(): void;
  /**
   * The newest forward pass's attention weights on this head's stored tokens, before select(): weights[query][slot]
   * over view.positions (mean over the query heads that share the KV head; a compensation token's weight is left out).
   * Query i of the pass sits at absolute position view.seen - view.added + i.
   */
  observe(view: HeadView, weights: number[][]): void;
  /** The stored tokens to keep after the newest forward pass; null keeps all of them. */
  select(view: HeadView): Selection | null;
}

/** Defaults for policies that need no attention weights and no state. */
export abstract class BasePolicy implements KVPolicy {
  abstract readonly name: string;
  readonly needsAttention: boolean = false;
  reset(): void {}
  observe(_view: HeadView, _weights: number[][]): void {}
  abstract select(view: HeadView): Selection | null;
}

/** Per-(layer, head, row) state for stateful policies. */
export class HeadState<T> {
  private readonly map = new Map<string, T>();
  constructor(private readonly init: () => T) {}
  get(v: HeadView): T {
    const key = `${v.layer}.${v.head}.${v.row}`;
    let s = this.map.get(key);
    if (s === undefined) {
      s = this.init();
      this.map.set(key, s);
    }
    return s;
  }
  clear(): void {
    this.map.clear();
  }
}

export function checkCount(fn: string, arg: string, v: unknown, min: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new Error(`${fn}: ${arg} must be an integer >= ${min}, got ${String(v)}`);
}

/** Indices 0..n-1. */
export function range(n: number, from = 0): number[] {
  return Array.from({ length: Math.max(0, n - from) }, (_, i) => from + i);
}

/**
 * The indices of view.positions of the first `sinks` tokens of the sequence (absolute positions < sinks) and the
 * last `recent` stored tokens; null when that is every stored token.
 */
export function sinksAndRecent(view: HeadView, sinks: number, recent: number): number[] | null {
  const n = view.positions.length;
  const keep: number[] = [];
  for (let i = 0; i < n; i++) if (view.positions[i] < sinks || i >= n - recent) keep.push(i);
  return keep.length === n ? null : keep;
}

/** Keeps every token (the uncached forward's logits, at full memory). */
export class FullPolicy extends BasePolicy {
  readonly name = 'full';
  select(): null {
    return null;
  }
}

/** Sliding window: the last `window` tokens. */
export class WindowPolicy extends BasePolicy {
  readonly name: string;
  constructor(readonly window: number) {
    super();
    checkCount('WindowPolicy', 'window', window, 1);
    this.name = `window(${window})`;
  }
  select(view: HeadView): Selection | null {
    const keep = sinksAndRecent(view, 0, this.window);
    return keep && { keep };
  }
}

/** StreamingLLM (Xiao et al. 2024, https://arxiv.org/abs/2309.17453): the first `sinks` tokens and the last `recent`. */
export class SinkPolicy extends BasePolicy {
  readonly name: string;
  readonly sinks: number;
  readonly recent: number;
  constructor(opts: { sinks: number; recent: number }) {
    super();
    checkCount('SinkPolicy', 'opts.sinks', opts?.sinks, 0);
    checkCount('SinkPolicy', 'opts.recent', opts.recent, 1);
    this.sinks = opts.sinks;
    this.recent = opts.recent;
    this.name = `sinks(${opts.sinks}+${opts.recent})`;
  }
  select(view: HeadView): Selection | null {
    const keep = sinksAndRecent(view, this.sinks, this.recent);
    return keep && { keep };
  }
}

/**
 * Composition: each (layer, KV head) has its own policy, policies[layer][head] (DuoAttention's and RazorAttention's
 * retrieval heads keep everything while the other heads stream). PerHeadPolicy.of(layers, kvHeads, pick) builds the
 * table from a function.
 */
export class PerHeadPolicy implements KVPolicy {
  readonly name: string;
  readonly needsAttention: boolean;

  constructor(
    readonly policies: KVPolicy[][],
    name = 'per-head',
  ) {
    if (!Array.isArray(policies) || policies.length === 0 || policies.some((r) => !Array.isArray(r) || r.length === 0))
      throw new Error(
        `PerHeadPolicy: policies must be a non-empty [layer][head] table, got ${JSON.stringify(policies)}`,
      );
    for (const [l, row] of policies.entries())
      for (const [h, p] of row.entries())
        if (!p || typeof p.select !== 'function')
          throw new Error(`PerHeadPolicy: policies[${l}][${h}] must be a KVPolicy, got ${String(p)}`);
    this.name = name;
    this.needsAttention = policies.some((r) => r.some((p) => p.needsAttention));
  }

  static of(layers: number, kvHeads: number, pick: (layer: number, head: number) => KVPolicy, name?: string) {
    checkCount('PerHeadPolicy.of', 'layers', layers, 1);
    checkCount('PerHeadPolicy.of', 'kvHeads', kvHeads, 1);
    return new PerHeadPolicy(
      Array.from({ length: layers }, (_, l) => Array.from({ length: kvHeads }, (_, h) => pick(l, h))),
      name,
    );
  }

  policyFor(layer: number, head: number): KVPolicy {
    const p = this.policies[layer]?.[head];
    if (!p)
      throw new Error(
        `PerHeadPolicy: no policy for layer ${layer}, head ${head} (table is ${this.policies.length} layers x ${this.policies[0].length} heads)`,
      );
    return p;
  }

  reset(): void {
    for (const p of new Set(this.policies.flat())) p.reset();
  }
  observe(view: HeadView, weights: number[][]): void {
    const p = this.policyFor(view.layer, view.head);
    if (p.needsAttention) p.observe(view, weights);
  }
  select(view: HeadView): Selection | null {
    return this.policyFor(view.layer, view.head).select(view);
  }
}

/**
 * LazyEviction (Zhang et al. 2025, "LazyEviction: Lagged KV Eviction with Attention Pattern Observation for Efficient
 * Long Reasoning", https://arxiv.org/abs/2506.15969). In long reasoning, a token's importance recurs: it gets high
 * attention, goes quiet for a while, and spikes again. LazyEviction tracks, per cached token,
 *
 *   last(j) = the latest step at which j's attention spiked (a(t, j) > alpha / n_t, n_t = tokens the query at t sees;
 *             a token's own step counts as its first spike)
 *   MRI(j)  = its Maximum Recurrence Interval, the largest gap between two consecutive spikes,
 *
 * and evicts lazily: only once every `window` steps (the observation window W), and only when the cache is over budget,
 * down to the budget. The `recent` newest tokens are always kept; the others are ranked by
 *
 *   priority(j) = MRI(j) − idle(j),   idle(j) = now − last(j),
 *
 * so a token still inside its recurrence interval (idle <= MRI, expected to come back) outranks one that has been idle
 * longer than it ever was, and among tokens that never recurred (MRI 0) the recently attended ones win. Ties go to the
 * later spike, then the later token. Between evictions the cache grows by up to window - 1 tokens past the budget.
 *
 * How ours differs: the official code (Halo-949/LazyEviction) was not read; the spike threshold (alpha over the
 * uniform weight) and the priority formula are our reading of the paper's description (recurrence-interval tracking,
 * MRI-centric eviction, lagged once per window).
 */
import { BasePolicy, checkCount, HeadState, type HeadView, type Selection } from '../kv/policy.js';

interface TokenStats {
  last: number;
  mri: number;
}

interface LazyHead {
  tokens: Map<number, TokenStats>;
  /** `seen` at the latest eviction (-Infinity before the first). */
  evictedAt: number;
}

export interface LazyEvictionOptions {
  /** Tokens kept per head after an eviction. */
  budget: number;
  /** Observation window W: at most one eviction per W tokens. */
  window: number;
  /** Newest tokens always kept (default: window, capped at budget). */
  recent?: number;
  /** A spike is a weight above alpha / (tokens the query sees) (default 1: above uniform). */
  alpha?: number;
}

export class LazyEvictionPolicy extends BasePolicy {
  readonly name: string;
  override readonly needsAttention = true;
  readonly budget: number;
  readonly window: number;
  readonly recent: number;
  readonly alpha: number;
  private readonly state = new HeadState<LazyHead>(() => ({ tokens: new Map(), evictedAt: -Infinity }));

  constructor(opts: LazyEvictionOptions) {
    super();
    const fn = 'LazyEvictionPolicy';
    checkCount(fn, 'opts.budget', opts?.budget, 1);
    checkCount(fn, 'opts.window', opts.window, 1);
    this.budget = opts.budget;
    this.window = opts.window;
    this.recent = opts.recent ?? Math.min(opts.window, opts.budget);
    checkCount(fn, 'opts.recent', this.recent, 0);
    if (this.recent > this.budget)
      throw new Error(`${fn}: opts.recent must be <= opts.budget (${this.budget}), got ${this.recent}`);
    this.alpha = opts.alpha ?? 1;
    if (!(this.alpha > 0)) throw new Error(`${fn}: opts.alpha must be > 0, got ${opts.alpha}`);
    this.name = `lazy(${opts.budget}, W${opts.window})`;
  }

  override reset(): void {
    this.state.clear();
  }

  /** A copy of the (last spike, MRI) statistics of each stored position of a head. */
  stats(view: Pick<HeadView, 'layer' | 'head' | 'row'>): Map<number, TokenStats> {
    return new Map([...this.state.get(view as HeadView).tokens].map(([p, s]) => [p, { ...s }]));
  }

  override observe(view: HeadView, weights: number[][]): void {
    const st = this.state.get(view).tokens;
    const first = view.seen - view.added;
    for (const p of view.positions) if (!st.has(p)) st.set(p, { last: p, mri: 0 });
    weights.forEach((row, i) => {
      const t = first + i;
      let visible = 0;
      for (const p of view.positions) if (p <= t) visible++;
      const threshold = this.alpha / Math.max(visible, 1);
      row.forEach((w, j) => {
        const p = view.positions[j];
        if (p >= t || w <= threshold) return; // a token's own step is its birth, not a recurrence
        const s = st.get(p)!;
        s.mri = Math.max(s.mri, t - s.last);
        s.last = t;
      });
    });
  }

  select(view: HeadView): Selection | null {
    const n = view.positions.length;
    const h = this.state.get(view);
    if (n <= this.budget || view.seen - h.evictedAt < this.window) return null;
    h.evictedAt = view.seen;
    const now = view.seen - 1;
    const stat = (i: number) => h.tokens.get(view.positions[i]) ?? { last: view.positions[i], mri: 0 };
    const old = Array.from({ length: n - this.recent }, (_, i) => i);
    const priority = (i: number) => stat(i).mri - (now - stat(i).last);
    old.sort((a, b) => priority(b) - priority(a) || stat(b).last - stat(a).last || b - a);
    const keep = [
      ...old.slice(0, this.budget - this.recent),
      ...Array.from({ length: this.recent }, (_, i) => n - this.recent + i),
    ];
    keep.sort((a, b) => a - b);
    const kept = new Set(keep.map((i) => view.positions[i]));
    for (const p of [...h.tokens.keys()]) if (!kept.has(p)) h.tokens.delete(p);
    return { keep };
  }
}

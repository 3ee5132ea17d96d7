/**
 * H2O, heavy-hitter oracle (Zhang et al., NeurIPS 2023, "H2O: Heavy-Hitter Oracle for Efficient Generative Inference
 * of Large Language Models", https://arxiv.org/abs/2306.14048; official code FMInference/H2O). Each KV head keeps the
 * `recent` most recent tokens and the `heavy` tokens with the largest cumulative attention
 *
 *   score(j) = Σ_{queries i so far} a(i, j)      (summed over the prompt's queries at prefill, then one per step)
 *
 * (a = the attention weights of the query heads that share the KV head, averaged). Evicted tokens are gone for good;
 * ties go to the earlier token.
 */
import { BasePolicy, checkCount, HeadState, type HeadView, type Selection } from './policy.js';

export class H2OPolicy extends BasePolicy {
  readonly name: string;
  override readonly needsAttention = true;
  readonly heavy: number;
  readonly recent: number;
  private readonly state = new HeadState<Map<number, number>>(() => new Map());

  constructor(opts: { heavy: number; recent: number }) {
    super();
    checkCount('H2OPolicy', 'opts.heavy', opts?.heavy, 0);
    checkCount('H2OPolicy', 'opts.recent', opts.recent, 1);
    this.heavy = opts.heavy;
    this.recent = opts.recent;
    this.name = `h2o(${opts.heavy}+${opts.recent})`;
  }

  /** Tokens kept per head: heavy + recent. */
  get budget(): number {
    return this.heavy + this.recent;
  }

  override reset(): void {
    this.state.clear();
  }

  override observe(view: HeadView, weights: number[][]): void {
    const acc = this.state.get(view);
    for (const row of weights)
      row.forEach((w, j) => {
        const p = view.positions[j];
        acc.set(p, (acc.get(p) ?? 0) + w);
      });
  }

  /** The cumulative attention score of each stored position of a head (a copy). */
  scores(view: Pick<HeadView, 'layer' | 'head' | 'row'>): Map<number, number> {
    return new Map(this.state.get(view as HeadView));
  }

  select(view: HeadView): Selection | null {
    const n = view.positions.length;
    if (n <= this.budget) return null;
    const acc = this.state.get(view);
    const candidates = Array.from({ length: n - this.recent }, (_, i) => i);
    candidates.sort((a, b) => (acc.get(view.positions[b]) ?? 0) - (acc.get(view.positions[a]) ?? 0) || a - b);
    const keep = [
      ...candidates.slice(0, this.heavy),
      ...Array.from({ length: this.recent }, (_, i) => n - this.recent + i),
    ];
    keep.sort((a, b) => a - b);
    const kept = new Set(keep.map((i) => view.positions[i]));
    for (const p of [...acc.keys()]) if (!kept.has(p)) acc.delete(p);
    return { keep };
  }
}

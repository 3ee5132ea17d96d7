/**
 * Attention over a sentence as highlighted text: each word's background is its attention weight (relative to the
 * sentence's largest), marked words (the known sentiment words) are underlined. Every word is HTML-escaped.
 *
 *   attentionHtml(['kovi', 'great', '<b>'], [0.1, 0.8, 0.1], [0, 1, 0])
 *   // '<span ...>kovi</span> <span ...>great</span> <span ...>&lt;b&gt;</span>'
 */
import { escapeHtml } from '../../../display/html.js';

/** One sentence as HTML spans shaded by `weights` (one per word); `marked` words are underlined. */
export function attentionHtml(
  words: readonly string[],
  weights: ArrayLike<number>,
  marked?: ArrayLike<number>,
  rgb: [number, number, number] = [230, 80, 40],
): string {
  if (weights.length < words.length)
    throw new Error(`attentionHtml: weights must have one entry per word (${words.length}), got ${weights.length}`);
  let max = 0;
  for (let t = 0; t < words.length; t++) max = Math.max(max, weights[t]);
  return words
    .map((w, t) => {
      const alpha = max > 0 ? Math.max(0, weights[t]) / max : 0;
      const under = marked && marked[t] > 0 ? 'text-decoration:underline;' : '';
      return `<span title="${escapeHtml(weights[t].toFixed(3))}" style="background:rgba(${rgb.join(',')},${alpha.toFixed(3)});${under}padding:1px 3px;border-radius:3px">${escapeHtml(w)}</span>`;
    })
    .join(' ');
}

/**
 * A hand-built 2-layer ToyLM whose circuit is known, for testing and demonstrating the patching toolkit. Prompt [BOS, X, F, F] (positions 0..3); the answer at the last
 * position is X.
 *   L0H0 at position 2 attends to position 1 and writes X's one-hot into subspace B.
 *   L1H0 at position 3 attends to position 2, reads subspace B and writes it into subspace O, which the unembedding reads.
 *   L0H1 and L1H1 attend uniformly and write into two junk dimensions nothing reads.
 * MLPs are zero. So: patching L0H0 (at position 2) or L1H0 (at position 3) restores the answer, L0H1 / L1H1 do nothing;
 * the path L0H0 -> L1H0's values carries everything, L0H0 -> logits directly nothing.
 */
import * as tf from '@tensorflow/tfjs';
import { ToyLM } from '../../../layers/toylm.js';
import { variablesOf } from '../../../train/loop.js';
import type { PatchingPair } from './toolkit.js';
export const HB = { V: 8, S: 4, BOS: 0, F: 7 } as const;
const V = 8;
const S = 4;
const BOS = 0;
const F = 7;
const tokOff = 0;
const posOff = V;
const bOff = V + S;
const oOff = 2 * V + S;
const junk = 3 * V + S; // 2 dims
const M = 3 * V + S + 2; // 30
const HD = M / 2; // 15

export function handBuiltCopier(): ToyLM {
  const model = new ToyLM({ vocab: V, dModel: M, heads: 2, layers: 2, maxLen: S, seed: 1 });
  model.build();
  const vars = variablesOf(model);
  const set = (name: string, shape: number[], entries: [number, number, number][]) => {
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    for (const [i, j, v] of entries) a[i * shape[1] + j] = v;
    const t = tf.tensor(a, shape);
    vars[name].assign(t);
    t.dispose();
  };
  const eye = (n: number, from: number, to: number, scale = 1): [number, number, number][] =>
    Array.from({ length: n }, (_, i) => [from + i, to + i, scale]);
  set('embed', [V, M], eye(V, 0, tokOff));
  set('pos_embed', [S, M], eye(S, 0, posOff));
  // Layer 0: head 0 q from position 2, k from position 1 (scaled); values = token subspace -> B.
  set('blocks.0.attn.wq', [M, M], [[posOff + 2, 0, 8]]);
  set('blocks.0.attn.wk', [M, M], [[posOff + 1, 0, 8]]);
  set('blocks.0.attn.wv', [M, M], [...eye(V, tokOff, 0), ...eye(V, tokOff, HD)]);
  set('blocks.0.attn.wo', [M, M], [...eye(V, 0, bOff), [HD, junk, 1], [HD + 1, junk + 1, 1]]);
  // Layer 1: head 0 q from position 3, k from position 2; values = B -> O (scaled).
  set('blocks.1.attn.wq', [M, M], [[posOff + 3, 0, 8]]);
  set('blocks.1.attn.wk', [M, M], [[posOff + 2, 0, 8]]);
  set('blocks.1.attn.wv', [M, M], [...eye(V, bOff, 0), ...eye(V, bOff, HD)]);
  set('blocks.1.attn.wo', [M, M], [...eye(V, 0, oOff, 3), [HD, junk, 1], [HD + 1, junk + 1, 1]]);
  for (const l of [0, 1]) {
    set(`blocks.${l}.mlp.w1`, vars[`blocks.${l}.mlp.w1`].shape, []);
    set(`blocks.${l}.mlp.w2`, vars[`blocks.${l}.mlp.w2`].shape, []);
  }
  set('unembed', [M, V], eye(V, oOff, 0, 4));
  return model;
}

/** Clean prompts [BOS, X, F, F] and corrupted [BOS, Y, F, F], X != Y, for X, Y in 1..6. */
export function handBuiltPair(): PatchingPair {
  const clean: number[] = [];
  const corrupted: number[] = [];
  const correct: number[] = [];
  const wrong: number[] = [];
  for (let x = 1; x <= 6; x++) {
    const y = (x % 6) + 1;
    clean.push(BOS, x, F, F);
    corrupted.push(BOS, y, F, F);
    correct.push(x);
    wrong.push(y);
  }
  const b = correct.length;
  return {
    clean: tf.tensor2d(clean, [b, S], 'int32'),
    corrupted: tf.tensor2d(corrupted, [b, S], 'int32'),
    correct,
    wrong,
  };
}

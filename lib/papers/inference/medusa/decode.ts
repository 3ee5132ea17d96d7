/**
 * Medusa decoding: propose a tree of candidates from the heads, verify it in one forward pass of the backbone (tree
 * mask, depth positions, KV cache), keep the longest accepted path, repeat.
 *
 * Acceptance of a node x whose parent's next-token distribution is p (the backbone's logits at the parent):
 *   greedy  (temperature 0):  x = argmax p          -> the output equals greedy decoding token for token
 *   typical (temperature T):  p_T(x) > min(ε, α · exp(−H(p_T)))   with p_T = softmax(logits / T)   (ε 0.09, α 0.3 in
 *                             the official code), ties between equally long paths go to the larger Σ log p_T
 * Each step emits the root (the backbone's token from the last step), the accepted nodes, and its next root comes
 * from the backbone's logits at the last accepted node (argmax at T = 0, a draw from p_T otherwise).
 */
import * as tf from '@tensorflow/tfjs';
import type { ToyLM } from '../../../layers/toylm.js';
import { Rng } from '../../../util/random.js';
import { TreeKVCache } from './cache.js';
import { forwardWithHidden, type MedusaHeads, packedHeadLogits } from './heads.js';
import { type MedusaTree, treeMask, treePositions } from './tree.js';

export interface AcceptOptions {
  /** 0 (default): greedy acceptance; > 0: typical acceptance at this temperature. */
  temperature?: number;
  /** ε of typical acceptance (default 0.09). */
  threshold?: number;
  /** α of typical acceptance (default 0.3). */
  alpha?: number;
}

/** The accepted path: node indices from the root (included) to the last accepted node. */
export interface Accepted {
  nodes: number[];
}

function softmaxRow(logits: ArrayLike<number>, offset: number, V: number, temperature: number): Float64Array {
  const p = new Float64Array(V);
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[offset + v] / temperature);
  let sum = 0;
  for (let v = 0; v < V; v++) {
    p[v] = Math.exp(logits[offset + v] / temperature - max);
    sum += p[v];
  }
  for (let v = 0; v < V; v++) p[v] /= sum;
  return p;
}

function argmaxRow(logits: ArrayLike<number>, offset: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (logits[offset + v] > logits[offset + best]) best = v;
  return best;
}

/**
 * The longest accepted path of a verified tree: tokens [size] are the nodes' tokens, logits [size, V] (row-major) the
 * backbone's logits at each node.
 */
export function acceptPath(
  tree: MedusaTree,
  tokens: ArrayLike<number>,
  logits: ArrayLike<number>,
  V: number,
  opts: AcceptOptions = {},
): Accepted {
  const fn = 'acceptPath';
  const T = opts.temperature ?? 0;
  const eps = opts.threshold ?? 0.09;
  const alpha = opts.alpha ?? 0.3;
  if (!(T >= 0)) throw new Error(`${fn}: temperature must be >= 0, got ${T}`);
  if (tokens.length !== tree.size)
    throw new Error(`${fn}: tokens must have ${tree.size} entries, got ${tokens.length}`);
  if (logits.length !== tree.size * V)
    throw new Error(`${fn}: logits must have size ${tree.size} x ${V} = ${tree.size * V}, got ${logits.length}`);
  // Per node: may its children be checked, and the score of each child token.
  const score = (node: number): ((x: number) => number | null) => {
    if (T === 0) {
      const top = argmaxRow(logits, node * V, V);
      return (x) => (x === top ? 0 : null);
    }
    const p = softmaxRow(logits, node * V, V, T);
    let h = 0;
    for (let v = 0; v < V; v++) h -= p[v] * Math.log(p[v] + 1e-5); // the official entropy (with its +1e-5)
    const cut = Math.min(eps, alpha * Math.exp(-h));
    return (x) => (p[x] > cut ? Math.log(p[x]) : null);
  };
  let best = { nodes: [0], logp: 0 };
  const walk = (node: number, nodes: number[], logp: number) => {
    if (nodes.length > best.nodes.length || (nodes.length === best.nodes.length && logp > best.logp))
      best = { nodes, logp };
    if (!tree.children[node].length) return;
    const s = score(node);
    for (const c of tree.children[node]) {
      const lp = s(tokens[c]);
      if (lp !== null) walk(c, [...nodes, c], logp + lp);
    }
  };
  walk(0, [0], 0);
  return { nodes: best.nodes };
}

export interface MedusaDecodeOptions extends AcceptOptions {
  tree: MedusaTree;
  /** Seeds the draws of the root token at temperature > 0. */
  seed?: number;
}

export interface MedusaDecodeResult {
  /** The `steps` new tokens. */
  tokens: number[];
  /** Tokens emitted by each verification forward (root + accepted nodes, the last one capped at `steps`). */
  perForward: number[];
  /** Backbone forward passes: the prompt's, then one per tree. */
  forwards: number;
}

/**
 * Decode `steps` tokens after `prompt` (one row of token ids) with Medusa heads and a candidate tree, batch 1.
 * Needs prompt.length + steps + tree.size <= the model's maxLen (the tree sits in the cache while it is verified).
 */
export function medusaGenerate(
  heads: MedusaHeads,
  prompt: ArrayLike<number>,
  steps: number,
  opts: MedusaDecodeOptions,
): MedusaDecodeResult {
  const fn = 'medusaGenerate';
  const model: ToyLM = heads.model;
  const { tree } = opts;
  const T = opts.temperature ?? 0;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`${fn}: steps must be an integer >= 1, got ${steps}`);
  if (prompt.length < 1) throw new Error(`${fn}: prompt must hold at least one token, got ${prompt.length}`);
  if (tree.maxDepth > heads.count)
    throw new Error(`${fn}: the tree is ${tree.maxDepth} deep but there are only ${heads.count} Medusa heads`);
  const need = prompt.length + steps + tree.size;
  if (need > model.config.maxLen)
    throw new Error(
      `${fn}: prompt (${prompt.length}) + steps (${steps}) + tree (${tree.size}) = ${need} exceeds maxLen ${model.config.maxLen}`,
    );
  const V = model.config.vocab;
  const rng = new Rng(opts.seed ?? 0);
  const cache = new TreeKVCache(model.config.layers, model.config.maxLen);
  const pick = (row: ArrayLike<number>, offset: number): number => {
    if (T === 0) return argmaxRow(row, offset, V);
    const p = softmaxRow(row, offset, V, T);
    let u = rng.next();
    for (let v = 0; v < V; v++) if ((u -= p[v]) < 0) return v;
    return V - 1;
  };
  const packed = heads.pack();
  /** Top-k token ids of each head at one hidden row [1, m]. */
  const proposals = (hidden: tf.Tensor): number[][] => {
    const z = packedHeadLogits(packed, hidden);
    const data = z.dataSync();
    z.dispose();
    return Array.from({ length: heads.count }, (_, k) => topK(data, k * V, V, tree.topK));
  };
  const out: number[] = [];
  const perForward: number[] = [];
  let forwards = 0;
  try {
    const first = tf.tidy(() => {
      const ids = tf.tensor2d(Array.from(prompt), [1, prompt.length], 'int32');
      const { logits, hidden } = forwardWithHidden(model, ids, { cache });
      const s = prompt.length;
      return {
        last: logits.slice([0, s - 1, 0], [1, 1, V]),
        hidden: hidden.slice([0, s - 1, 0], [1, 1, -1]).squeeze([1]),
      };
    });
    forwards++;
    let root = pick(first.last.dataSync(), 0);
    let top = proposals(first.hidden);
    tf.dispose([first.last, first.hidden]);
    while (out.length < steps) {
      const tokens = tree.depth.map((_, i) => (i === 0 ? root : top[tree.head[i]][tree.rank[i]]));
      const past = cache.length(0);
      const step = tf.tidy(() => {
        const mask = treeMask(tree, past);
        const ids = tf.tensor2d(tokens, [1, tree.size], 'int32');
        const r = forwardWithHidden(model, ids, { cache, mask, positions: treePositions(tree, past) });
        return r;
      });
      forwards++;
      const logits = step.logits.dataSync();
      const { nodes } = acceptPath(tree, tokens, logits, V, opts);
      const emit = nodes.map((i) => tokens[i]).slice(0, steps - out.length);
      out.push(...emit);
      perForward.push(emit.length);
      const last = nodes[nodes.length - 1];
      if (out.length < steps) {
        cache.keep([...Array.from({ length: past }, (_, i) => i), ...nodes.map((i) => past + i)]);
        root = pick(logits, last * V);
        const h = tf.tidy(() => step.hidden.slice([0, last, 0], [1, 1, -1]).squeeze([1]));
        top = proposals(h);
        h.dispose();
      }
      tf.dispose([step.logits, step.hidden]);
    }
    return { tokens: out, perForward, forwards };
  } finally {
    cache.dispose();
    packed.dispose();
  }
}

/** Indices of the k largest entries of row[offset .. offset + V), largest first (ties to the lower index). */
function topK(row: ArrayLike<number>, offset: number, V: number, k: number): number[] {
  const idx = Array.from({ length: V }, (_, v) => v);
  idx.sort((a, b) => row[offset + b] - row[offset + a] || a - b);
  return idx.slice(0, k);
}

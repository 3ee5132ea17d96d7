/**
 * Medusa candidate trees: which of the heads' top-k tokens are verified together, and the buffers that verify them in
 * one forward pass (after the official `generate_medusa_buffers`).
 *
 * A tree is a list of paths of ranks. The path [r1, r2] is the node "head 1's r1-th token, then head 2's r2-th token"
 * (ranks from 0); every prefix of a path is a node too. Node 0 is the root: the backbone's own next token. Nodes are
 * sorted by (depth, path), as the official code sorts them. Verification feeds the nodes' tokens in one pass with
 *
 *   mask[i][j] = 1  iff  node j is node i or one of its ancestors     (and every cached prefix position is visible)
 *   position(i) = past + depth(i)
 *
 * so node i's logits are exactly those of the sequence prefix + (its path): the tree is a batch of candidate
 * continuations that share their common prefixes.
 *
 * Sparse trees (Medusa §3.3.3 / Appendix): with a_k(r) the probability that head k's rank-r token is right, a node's
 * chance of being accepted is about the product of a along its path, and the expected accepted length is the sum of
 * these over the nodes; the greedy construction adds, one at a time, the node with the largest product.
 */
import * as tf from '@tensorflow/tfjs';

export interface MedusaTree {
  /** The nodes' rank paths, without the root, sorted by (depth, path). */
  paths: number[][];
  /** Nodes including the root. */
  size: number;
  /** depth[i] (root 0), parent[i] (root -1), head[i] = depth - 1 (root -1), rank[i] in that head's top-k (root -1). */
  depth: number[];
  parent: number[];
  head: number[];
  rank: number[];
  /** children[i]: node indices. */
  children: number[][];
  /** Deepest node's depth (heads the tree needs). */
  maxDepth: number;
  /** Largest rank + 1 (top-k the tree needs). */
  topK: number;
}

const key = (p: number[]) => p.join(',');

/** Buffers of the tree given by `paths` (each a non-empty list of ranks >= 0; every prefix must be a path too). */
export function medusaTree(paths: number[][]): MedusaTree {
  const fn = 'medusaTree';
  if (!Array.isArray(paths)) throw new Error(`${fn}: paths must be an array of rank paths, got ${typeof paths}`);
  for (const p of paths) {
    if (!Array.isArray(p) || p.length === 0 || p.some((r) => !Number.isInteger(r) || r < 0))
      throw new Error(`${fn}: each path must be a non-empty list of ranks >= 0, got ${JSON.stringify(p)}`);
  }
  const sorted = [...paths].sort((a, b) => a.length - b.length || compareLex(a, b));
  const index = new Map<string, number>();
  sorted.forEach((p, i) => {
    if (index.has(key(p))) throw new Error(`${fn}: path ${JSON.stringify(p)} appears twice`);
    index.set(key(p), i + 1);
  });
  const size = sorted.length + 1;
  const depth = [0];
  const parent = [-1];
  const head = [-1];
  const rank = [-1];
  const children: number[][] = Array.from({ length: size }, () => []);
  sorted.forEach((p, i) => {
    const up = p.length === 1 ? 0 : index.get(key(p.slice(0, -1)));
    if (up === undefined)
      throw new Error(`${fn}: path ${JSON.stringify(p)} has no parent ${JSON.stringify(p.slice(0, -1))} in paths`);
    depth.push(p.length);
    parent.push(up);
    head.push(p.length - 1);
    rank.push(p[p.length - 1]);
    children[up].push(i + 1);
  });
  return {
    paths: sorted,
    size,
    depth,
    parent,
    head,
    rank,
    children,
    maxDepth: Math.max(0, ...depth),
    topK: Math.max(0, ...rank) + 1,
  };
}

function compareLex(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** A chain of `depth` nodes: each head's top-1 token (speculative decoding with one candidate). */
export function chainTree(depth: number): MedusaTree {
  if (!Number.isInteger(depth) || depth < 1) throw new Error(`chainTree: depth must be an integer >= 1, got ${depth}`);
  return medusaTree(Array.from({ length: depth }, (_, d) => new Array(d + 1).fill(0)));
}

/**
 * The sparse tree of `nodes` nodes (besides the root) that maximises the expected accepted length Σ_node Π_path a,
 * built greedily; accuracy[k][r] is head k's rank-r accuracy (measured on validation data).
 */
export function greedyTree(accuracy: number[][], nodes: number): MedusaTree {
  const fn = 'greedyTree';
  if (!Number.isInteger(nodes) || nodes < 1) throw new Error(`${fn}: nodes must be an integer >= 1, got ${nodes}`);
  if (!Array.isArray(accuracy) || accuracy.length === 0 || accuracy.some((row) => !Array.isArray(row) || !row.length))
    throw new Error(`${fn}: accuracy must be a non-empty [heads][ranks] array, got ${JSON.stringify(accuracy)}`);
  const chosen: number[][] = [];
  // Frontier: for each chosen node, its first child and its next sibling; `up` is the parent's path probability.
  const frontier: { path: number[]; up: number; p: number }[] = [{ path: [0], up: 1, p: accuracy[0][0] }];
  while (chosen.length < nodes && frontier.length) {
    let best = 0;
    for (let i = 1; i < frontier.length; i++) if (frontier[i].p > frontier[best].p) best = i;
    const node = frontier.splice(best, 1)[0];
    chosen.push(node.path);
    const d = node.path.length - 1;
    const r = node.path[d];
    if (r + 1 < accuracy[d].length)
      frontier.push({ path: [...node.path.slice(0, -1), r + 1], up: node.up, p: node.up * accuracy[d][r + 1] });
    if (d + 1 < accuracy.length) frontier.push({ path: [...node.path, 0], up: node.p, p: node.p * accuracy[d + 1][0] });
  }
  return medusaTree(chosen);
}

/** Expected accepted nodes per step under independent head accuracies: Σ_node Π_path accuracy. */
export function expectedAccepted(tree: MedusaTree, accuracy: number[][]): number {
  const p = new Array(tree.size).fill(1);
  let sum = 0;
  for (let i = 1; i < tree.size; i++) {
    p[i] = p[tree.parent[i]] * (accuracy[tree.head[i]]?.[tree.rank[i]] ?? 0);
    sum += p[i];
  }
  return sum;
}

/** ancestors[i][j] = true iff node j is node i or one of its ancestors. */
export function treeAncestors(tree: MedusaTree): boolean[][] {
  return Array.from({ length: tree.size }, (_, i) => {
    const row = new Array(tree.size).fill(false);
    for (let j = i; j >= 0; j = tree.parent[j]) row[j] = true;
    return row;
  });
}

/** The tree attention mask behind `past` cached positions: bool [1, 1, size, past + size]. The caller disposes it. */
export function treeMask(tree: MedusaTree, past: number): tf.Tensor4D {
  if (!Number.isInteger(past) || past < 0) throw new Error(`treeMask: past must be an integer >= 0, got ${past}`);
  const n = tree.size;
  const t = past + n;
  const data = new Uint8Array(n * t);
  const anc = treeAncestors(tree);
  for (let i = 0; i < n; i++) {
    data.fill(1, i * t, i * t + past);
    for (let j = 0; j < n; j++) if (anc[i][j]) data[i * t + past + j] = 1;
  }
  return tf.tensor4d(data, [1, 1, n, t], 'bool');
}

/** Position ids of the tree's nodes behind `past` cached positions: past + depth. */
export function treePositions(tree: MedusaTree, past: number): number[] {
  return tree.depth.map((d) => past + d);
}

/**
 * Float64 reference of tree attention for one head: q [n, d] (the nodes), k, v [past + n, d]; node i attends the
 * cached prefix and its ancestors (itself included) with softmax(q·k / √d). Returns [n, d].
 */
export function treeAttentionNaive(
  tree: MedusaTree,
  past: number,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  d: number,
): Float64Array {
  const n = tree.size;
  const t = past + n;
  const anc = treeAncestors(tree);
  const out = new Float64Array(n * d);
  const s = new Float64Array(t);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let j = 0; j < t; j++) {
      const visible = j < past || anc[i][j - past];
      if (!visible) {
        s[j] = -Infinity;
        continue;
      }
      let z = 0;
      for (let c = 0; c < d; c++) z += q[i * d + c] * k[j * d + c];
      s[j] = z / Math.sqrt(d);
      if (s[j] > max) max = s[j];
    }
    let sum = 0;
    for (let j = 0; j < t; j++) {
      s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - max);
      sum += s[j];
    }
    for (let j = 0; j < t; j++) for (let c = 0; c < d; c++) out[i * d + c] += (s[j] / sum) * v[j * d + c];
  }
  return out;
}

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { sdpa } from '../lib/attention/sdpa.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { ToyLM, type ToyLMConfig } from '../lib/layers/toylm.js';
import { medusaExperiment } from '../lib/papers/inference/medusa/experiment.js';
import {
  acceptPath,
  chainTree,
  expectedAccepted,
  forwardWithHidden,
  greedyTree,
  MedusaHeads,
  type MedusaHeadWeights,
  medusaGenerate,
  medusaHeadLogits,
  medusaHeadLogitsNaive,
  medusaTree,
  packedHeadLogits,
  TreeKVCache,
  treeAttentionNaive,
  treeMask,
  treePositions,
} from '../lib/papers/inference/medusa/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const BASE: ToyLMConfig = { vocab: 13, dModel: 16, heads: 4, layers: 2, maxLen: 48, seed: 5 };

/** A tree with branching at every depth: 8 nodes, 3 deep. */
const PATHS = [[0], [1], [2], [0, 0], [0, 1], [1, 0], [0, 0, 0], [0, 1, 0]];

/** ToyLM weights at N(0, 0.02) give nearly flat logits; scale them up so argmaxes are far from ties. */
function sharpen(model: ToyLM, factor: number): void {
  model.build();
  for (const w of model.weights) {
    if (/(gamma|beta|b1|b2)$/.test(w.originalName)) continue;
    const v = w.read();
    w.write(tf.tidy(() => v.mul(factor)));
  }
}

describe.each(BACKENDS)('Medusa mechanism on %s', (backend) => {
  beforeAll(async () => useBackend(backend));

  it('head logits equal the float64 reference, outputs and gradients', () => {
    const [n, m, V, K] = [3, 4, 5, 2];
    const w64 = Array.from({ length: K }, (_, k) => ({
      w1: randomArray(m * m, 10 + k, 0.7),
      b1: randomArray(m, 20 + k, 0.3),
      w2: randomArray(m * V, 30 + k, 0.7),
    }));
    const h64 = randomArray(n * m, 7, 1);
    const heads: MedusaHeadWeights[] = w64.map((w) => ({
      w1: tf.tensor2d(Array.from(w.w1), [m, m]),
      b1: tf.tensor1d(Array.from(w.b1)),
      w2: tf.tensor2d(Array.from(w.w2), [m, V]),
    }));
    const h = tf.tensor2d(Array.from(h64), [n, m]);
    const out = medusaHeadLogits(heads, h);
    expect(out.shape).toEqual([n, K, V]);
    expectClose(out, medusaHeadLogitsNaive(w64, h64, n, m, V), { rtol: 1e-4, atol: 1e-5 }, 'logits');
    // d/d(hidden) and d/d(w1 of head 1) of Σ logits · c against central differences of the reference.
    const c = randomArray(n * K * V, 99, 1);
    const objective = () => {
      const z = medusaHeadLogitsNaive(w64, h64, n, m, V);
      return z.reduce((a, zi, i) => a + zi * c[i], 0);
    };
    const ct = tf.tensor3d(Array.from(c), [n, K, V]);
    const [gh, gw] = tf.grads((x: tf.Tensor, w1: tf.Tensor) =>
      medusaHeadLogits([heads[0], { ...heads[1], w1 }], x)
        .mul(ct)
        .sum(),
    )([h, heads[1].w1]);
    expectClose(gh, numericGrad(objective, h64), { rtol: 1e-3, atol: 1e-4 }, 'grad hidden');
    expectClose(gw, numericGrad(objective, w64[1].w1), { rtol: 1e-3, atol: 1e-4 }, 'grad w1');
    expect(() => medusaHeadLogits(heads, h.reshape([1, n, m]))).toThrow(/medusaHeadLogits: hidden must have shape/);
    expect(() => medusaHeadLogits([{ ...heads[0], b1: tf.zeros([m + 1]) }], h)).toThrow(
      /heads\[0\]\.b1 must have shape \[4\], got \[5\]/,
    );
    expectNoLeak(() => medusaHeadLogits(heads, h).dispose());
    tf.dispose([h, out, ct, gh, gw, ...heads.flatMap((p) => [p.w1, p.b1, p.w2])]);
  });

  it('tree attention (sdpa with the tree mask) equals the float64 reference, outputs and gradients', () => {
    const tree = medusaTree(PATHS);
    const [past, d] = [4, 3];
    const n = tree.size;
    const q64 = randomArray(n * d, 1, 1);
    const k64 = randomArray((past + n) * d, 2, 1);
    const v64 = randomArray((past + n) * d, 3, 1);
    const q = tf.tensor4d(Array.from(q64), [1, 1, n, d]);
    const k = tf.tensor4d(Array.from(k64), [1, 1, past + n, d]);
    const v = tf.tensor4d(Array.from(v64), [1, 1, past + n, d]);
    const mask = treeMask(tree, past);
    expect(mask.shape).toEqual([1, 1, n, past + n]);
    expectClose(sdpa(q, k, v, { mask }), treeAttentionNaive(tree, past, q64, k64, v64, d), {}, 'tree attention');
    const c = randomArray(n * d, 4, 1);
    const ct = tf.tensor4d(Array.from(c), [1, 1, n, d]);
    const gq = tf.grad((x: tf.Tensor) => sdpa(x, k, v, { mask }).mul(ct).sum())(q);
    const objective = () => treeAttentionNaive(tree, past, q64, k64, v64, d).reduce((a, z, i) => a + z * c[i], 0);
    expectClose(gq, numericGrad(objective, q64), { rtol: 1e-3, atol: 1e-4 }, 'grad q');
    tf.dispose([q, k, v, mask, ct, gq]);
  });
});

describe('Medusa trees', () => {
  it('medusaTree sorts the paths and finds parents, depths, heads and ranks', () => {
    const t = medusaTree([[1, 0], [0], [1], [0, 0, 0], [0, 0]]);
    expect(t.paths).toEqual([[0], [1], [0, 0], [1, 0], [0, 0, 0]]);
    expect(t.size).toBe(6);
    expect(t.parent).toEqual([-1, 0, 0, 1, 2, 3]);
    expect(t.depth).toEqual([0, 1, 1, 2, 2, 3]);
    expect(t.head).toEqual([-1, 0, 0, 1, 1, 2]);
    expect(t.rank).toEqual([-1, 0, 1, 0, 0, 0]);
    expect(t.maxDepth).toBe(3);
    expect(t.topK).toBe(2);
    expect(treePositions(t, 10)).toEqual([10, 11, 11, 12, 12, 13]);
    const m = treeMask(t, 2);
    expect(Array.from(m.dataSync())).toEqual(
      [
        [1, 1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 1, 0, 0],
        [1, 1, 1, 0, 1, 0, 1, 0],
        [1, 1, 1, 1, 0, 1, 0, 1],
      ].flat(),
    );
    m.dispose();
    expect(() => medusaTree([[0, 1]])).toThrow(/medusaTree: path \[0,1\] has no parent \[0\]/);
    expect(() => medusaTree([[0], [0]])).toThrow(/appears twice/);
    expect(() => medusaTree([[-1]])).toThrow(/ranks >= 0, got \[-1\]/);
    expect(chainTree(3).paths).toEqual([[0], [0, 0], [0, 0, 0]]);
  });

  it('greedyTree adds the nodes of largest path probability and maximises the expected accepted length', () => {
    const acc = [
      [0.6, 0.2, 0.1],
      [0.5, 0.2, 0.1],
      [0.4, 0.1, 0.05],
    ];
    const t = greedyTree(acc, 4);
    // Path probabilities: [0] 0.6, [0,0] 0.3, [1] 0.2, then [0,0,0] and [0,1] 0.12 each (ahead of [2] and [1,0], 0.1).
    expect(t.size).toBe(5);
    expect(t.paths.slice(0, 3)).toEqual([[0], [1], [0, 0]]);
    const chain = chainTree(3);
    expect(expectedAccepted(chain, acc)).toBeCloseTo(0.6 + 0.3 + 0.12, 10);
    // No other 4-node tree beats the greedy one.
    const all = [[0], [1], [2], [0, 0], [0, 1], [1, 0], [0, 0, 0], [0, 1, 0]];
    let best = 0;
    for (let mask = 0; mask < 1 << all.length; mask++) {
      const pick = all.filter((_, i) => mask & (1 << i));
      if (pick.length !== 4) continue;
      try {
        best = Math.max(best, expectedAccepted(medusaTree(pick), acc));
      } catch {
        // not a tree (a path without its parent)
      }
    }
    expect(expectedAccepted(t, acc)).toBeCloseTo(best, 10);
    expect(() => greedyTree(acc, 0)).toThrow(/greedyTree: nodes must be an integer >= 1, got 0/);
  });

  it('acceptPath: greedy keeps the longest argmax-matching path; typical accepts above min(ε, α·exp(−H))', () => {
    const tree = medusaTree([[0], [1], [0, 0], [1, 0]]);
    const V = 3;
    // node tokens: root 0, [0] -> 1, [1] -> 2, [0,0] -> 0, [1,0] -> 1
    const tokens = [0, 1, 2, 0, 1];
    const logits = [
      [0, 5, 1], // root: argmax 1 -> node [0] (token 1) accepted
      [4, 0, 0], // node [0]: argmax 0 -> node [0,0] (token 0) accepted
      [0, 0, 9], // node [1]
      [0, 0, 0], // node [0,0]
      [0, 0, 0], // node [1,0]
    ].flat();
    expect(acceptPath(tree, tokens, logits, V).nodes).toEqual([0, 1, 3]);
    const flipped = logits.slice();
    flipped[1] = 0;
    flipped[2] = 5; // root's argmax is now 2: node [1] (token 2), then its child (token 1) needs argmax 1 at [1]: no
    expect(acceptPath(tree, tokens, flipped, V).nodes).toEqual([0, 2]);
    // Typical at T = 1: root p = softmax([0, 5, 1]) -> token 2 has p ≈ 0.018 < min(0.09, 0.3·e^-H): rejected;
    // with ε = α = 0 every node passes and, of the two 3-node paths, the one of larger Σ log p wins.
    expect(acceptPath(tree, tokens, logits, V, { temperature: 1 }).nodes).toEqual([0, 1, 3]);
    const open = { temperature: 1, threshold: 0, alpha: 0 };
    expect(acceptPath(tree, tokens, flipped, V, open).nodes).toEqual([0, 1, 3]); // log p: -5.0 - 0.04 vs -0.01 - 9.0
    const sure = flipped.slice();
    sure.splice(6, 3, 0, 9, 0); // node [1] now predicts token 1 surely: log p of [0, 2, 4] ≈ -0.01
    expect(acceptPath(tree, tokens, sure, V, open).nodes).toEqual([0, 2, 4]);
    expect(() => acceptPath(tree, tokens.slice(1), logits, V)).toThrow(/acceptPath: tokens must have 5 entries, got 4/);
  });
});

describe('Medusa on a ToyLM', () => {
  it.each([
    ['learned positions', { positional: 'learned' }],
    ['RoPE', { positional: 'rope' }],
    ['sinusoidal positions, tied embeddings', { positional: 'sinusoidal', tieEmbeddings: true }],
  ] as [string, Partial<ToyLMConfig>][])(
    '(%s) one tree forward over a KV cache gives each node the logits of prefix + its path',
    (_name, extra) => {
      const lm = new ToyLM({ ...BASE, ...extra });
      const tree = medusaTree(PATHS);
      const prefix = [3, 1, 4, 1, 5, 9];
      const nodeTokens = [2, 6, 5, 3, 5, 8, 9, 7, 9];
      const cache = lm.newCache();
      lm.forward(tf.tensor2d([prefix], [1, prefix.length], 'int32'), { cache }).dispose();
      const past = prefix.length;
      const mask = treeMask(tree, past);
      const ids = tf.tensor2d([nodeTokens], [1, tree.size], 'int32');
      const treeLogits = lm.forward(ids, { cache, mask, positions: treePositions(tree, past) });
      for (let i = 0; i < tree.size; i++) {
        const path: number[] = [];
        for (let j = i; j >= 0; j = tree.parent[j]) path.unshift(nodeTokens[j]);
        const seq = tf.tensor2d([[...prefix, ...path]], [1, past + path.length], 'int32');
        const full = lm.forward(seq);
        const want = full.slice([0, past + path.length - 1, 0], [1, 1, -1]);
        expectClose(treeLogits.slice([0, i, 0], [1, 1, -1]), want, { rtol: 1e-4, atol: 2e-5 }, `node ${i}`);
        tf.dispose([seq, full, want]);
      }
      tf.dispose([mask, ids, treeLogits]);
      cache.dispose();
      lm.dispose();
    },
  );

  it('ToyLM positions: the default ids change nothing, bad ids and ALiBi are refused', () => {
    const lm = new ToyLM({ ...BASE, positional: 'rope' });
    const t = tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32');
    const a = lm.forward(t);
    const b = lm.forward(t, { positions: [0, 1, 2, 3] });
    expectClose(b, a, { rtol: 0, atol: 0 }, 'default positions');
    expect(() => lm.forward(t, { positions: [0, 1] })).toThrow(
      /ToyLM.forward: opts.positions must have one id per new token \(4\), got 2/,
    );
    expect(() => lm.forward(t, { positions: [0, 1, 2, 48] })).toThrow(/integers in \[0, maxLen 48\), got 48/);
    const alibi = new ToyLM({ ...BASE, positional: 'alibi' });
    expect(() => alibi.forward(t, { positions: [0, 1, 2, 3] })).toThrow(/cannot be used with positional 'alibi'/);
    tf.dispose([t, a, b]);
    lm.dispose();
    alibi.dispose();
  });

  it('TreeKVCache keeps the prefix and the accepted positions in order', () => {
    const c = new TreeKVCache(1, 20);
    const k = tf.tensor4d(
      Array.from({ length: 6 }, (_, i) => i),
      [1, 1, 6, 1],
    );
    const [kk] = c.append(0, k, k);
    expect(kk.shape).toEqual([1, 1, 6, 1]);
    c.keep([0, 1, 3, 5]);
    expect(c.length(0)).toBe(4);
    const [k2] = c.append(0, k.slice([0, 0, 0, 0], [1, 1, 1, 1]), k.slice([0, 0, 0, 0], [1, 1, 1, 1]));
    expect(Array.from(k2.dataSync())).toEqual([0, 1, 3, 5, 0]);
    expect(() => c.keep([0, 0])).toThrow(/TreeKVCache.keep: positions must be increasing integers in \[0, 5\)/);
    expect(() => c.append(0, tf.zeros([1, 1, 16, 1]), tf.zeros([1, 1, 16, 1]))).toThrow(
      /exceed the cache's maxLength 20/,
    );
    c.dispose();
    k.dispose();
  });

  it('heads start as the LM head; at temperature 0 Medusa decoding equals greedy decoding token for token', () => {
    const lm = new ToyLM({ ...BASE, seed: 11 });
    sharpen(lm, 8);
    const heads = new MedusaHeads(lm, { heads: 3, seed: 1 });
    const prompt = [1, 2, 3, 4, 5];
    const ids = tf.tensor2d([prompt], [1, prompt.length], 'int32');
    const { logits, hidden } = forwardWithHidden(lm, ids);
    const z = heads.logits(hidden.reshape([prompt.length, BASE.dModel]));
    for (let k = 0; k < 3; k++)
      expectClose(
        z.slice([0, k, 0], [-1, 1, -1]).reshape(logits.shape),
        logits,
        { rtol: 1e-4, atol: 1e-5 },
        `head ${k}`,
      );
    tf.dispose([logits, hidden, z]);
    // Give the heads different predictions (as if trained), so some trees have nodes accepted and others not.
    for (const w of heads.weights)
      (w.w1 as tf.Variable).assign(tf.randomNormal(w.w1.shape as [number, number], 0, 0.5, 'float32', 3));
    const packed = heads.pack();
    const h = tf.randomNormal([4, BASE.dModel], 0, 1, 'float32', 8);
    const [a, b] = [packedHeadLogits(packed, h), heads.logits(h)];
    expectClose(a, b, { rtol: 1e-4, atol: 1e-5 }, 'packed heads');
    tf.dispose([h, a, b]);
    packed.dispose();
    const steps = 30;
    const greedy = lm.generate(ids, steps, { fused: false }); // the tfjs forward pass Medusa verifies with
    const want = Array.from(greedy.dataSync());
    greedy.dispose();
    let accepted = 0;
    for (const tree of [medusaTree(PATHS), chainTree(3)]) {
      const r = medusaGenerate(heads, prompt, steps, { tree });
      expect(r.tokens).toEqual(want);
      expect(r.perForward.reduce((a, b) => a + b, 0)).toBe(steps);
      expect(r.forwards).toBe(r.perForward.length + 1);
      accepted += r.perForward.filter((n) => n > 1).length;
    }
    expect(accepted, 'no step accepted a speculative token: the test exercised only the root').toBeGreaterThan(0);
    const typical = medusaGenerate(heads, prompt, 12, { tree: medusaTree(PATHS), temperature: 0.8, seed: 2 });
    expect(typical.tokens.length).toBe(12);
    expectNoLeak(() => medusaGenerate(heads, prompt, 8, { tree: medusaTree(PATHS) }), 2);
    expectNoLeak(() => medusaGenerate(heads, prompt, 8, { tree: chainTree(2), temperature: 1, seed: 3 }), 2);
    expect(() => medusaGenerate(heads, prompt, 40, { tree: medusaTree(PATHS) })).toThrow(
      /medusaGenerate: prompt \(5\) \+ steps \(40\) \+ tree \(9\) = 54 exceeds maxLen 48/,
    );
    expect(() => medusaGenerate(heads, prompt, 4, { tree: chainTree(4) })).toThrow(/4 deep but there are only 3/);
    ids.dispose();
    heads.dispose();
    lm.dispose();
  });
});

describe('medusa experiment', () => {
  it('runs with tiny overrides: chain and tree decode the whole test split exactly as greedy decoding', async () => {
    const r = await runExperimentWith(medusaExperiment, {
      quick: true,
      keep: true,
      cache: false,
      overrides: {
        model: { dModel: 32, heads: 2, layers: 1, seqLen: 48, batch: 8, steps: 30 },
        medusa: { heads: 2, steps: 15, batch: 8 },
        tree: { nodes: 6, topK: 3 },
        validation: { prompts: 2 },
        test: { prompts: 3, promptLen: 8, newTokens: 12 },
      },
    });
    const m = r.metrics;
    expect(m.test_greedy_match_tree).toBe(1);
    expect(m.test_greedy_match_chain).toBe(1);
    expect(m.test_tokens_per_forward_tree).toBeGreaterThanOrEqual(1);
    expect(m.test_tokens_per_forward_tree).toBeLessThanOrEqual(3);
    expect(m.test_speedup_tree).toBeGreaterThan(0);
    expect(r.tables!.settings.map((row) => row.setting)).toEqual([
      'plain greedy (KV cache)',
      'tree (6 nodes, greedy)',
      'chain (2 nodes, greedy)',
      'tree (6 nodes, typical T=0.7)',
    ]);
    expect(r.references!.map((x) => x.metric)).toEqual(['test_speedup_tree', 'test_tokens_per_forward_tree']);
    // The number we could not confirm says so.
    expect(r.references![1].source).toMatch(/unverified/);
    // The summary says whether the tree's gain over the chain exceeds its CI (three prompts: it is judged either way).
    expect(r.summary).toMatch(/beyond the difference's 95% CI|too small to show it/);
    const a = r.artifacts!;
    expect(a.tree.size).toBe(7);
    expect(a.accuracy).toHaveLength(2);
    // Every uncapped verification forward emits 1 .. K + 1 tokens; the histogram has one bin per count.
    expect(a.histogram.tree).toHaveLength(3);
    a.dispose();
    await expect(
      runExperimentWith(medusaExperiment, { quick: true, overrides: { test: { promptLen: 40, newTokens: 40 } } }),
    ).rejects.toThrow(/must fit in model.seqLen 64/);
  });
});

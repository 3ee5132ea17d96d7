// Routing Transformer (Roy et al. 2021): the paper's balanced top-w routing under a causal mask. The released code
// routes by top-w over the whole sequence in training ('balanced', which leaks future tokens into earlier outputs)
// and over the tokens up to the decoded one at decoding ('prefix', our causal default). These tests pin both, the
// float64 reference, gradients, causality, cost and leaks, and SparseLM's routing heads with the paper's defaults.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { naiveAttention } from '../lib/attention/naive.js';
import { ready } from '../lib/backend/index.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import * as masks from '../lib/masks/index.js';
import { routingLm } from '../lib/papers/sparse/experiments/routing-lm.js';
import { SparseLM } from '../lib/papers/sparse/model.js';
import {
  initCentroids,
  normaliseShared,
  prefixRouting,
  type RoutingOptions,
  routingAttention,
  routingAttentionNaive,
  routingMethod,
} from '../lib/papers/sparse/routing/index.js';
import {
  BACKENDS,
  expectClose,
  expectNoLeak,
  numericGrad,
  randomArray,
  randomTensor4d,
  useBackend,
} from './helpers.js';

const rand = randomTensor4d;
const dense = (t: tf.Tensor) => ({ data: t.dataSync(), shape: t.shape });

/** Replace position t of x [b, h, n, d] by fresh values (a changed future token). */
function bump(x: tf.Tensor4D, t: number, seed: number, scale = 3): tf.Tensor4D {
  return tf.tidy(() => {
    const n = x.shape[2];
    const m = tf.tensor1d(Array.from({ length: n }, (_, i) => (i === t ? 1 : 0))).reshape([1, 1, n, 1]);
    return x.mul(tf.scalar(1).sub(m)).add(m.mul(rand([...x.shape], seed, scale))) as tf.Tensor4D;
  });
}

/** Largest change of the outputs before position t. */
function earlierChange(a: tf.Tensor, b: tf.Tensor, t: number): number {
  return tf.tidy(() => {
    const [B, H, , E] = a.shape;
    return a
      .slice([0, 0, 0, 0], [B, H, t, E])
      .sub(b.slice([0, 0, 0, 0], [B, H, t, E]))
      .abs()
      .max()
      .dataSync()[0];
  });
}

describe('prefixRouting (the released code decoding-time routing, at every step)', () => {
  it('keeps exactly min(w, i + 1) members per cluster at every step, the top w of the tokens so far', () => {
    const n = 40;
    const c = 3;
    const w = 5;
    const sim = randomArray(n * c, 3);
    const { members, leave } = prefixRouting(sim, 1, 1, n, c, w);
    for (let cl = 0; cl < c; cl++) {
      for (let i = 0; i < n; i++) {
        const now = members[cl].filter((j, u) => j <= i && i < leave[cl][u]).sort((a, b) => a - b);
        const top = Array.from({ length: i + 1 }, (_, j) => j)
          .sort((a, b) => sim[b * c + cl] - sim[a * c + cl] || a - b)
          .slice(0, w)
          .sort((a, b) => a - b);
        expect(now, `cluster ${cl}, step ${i}`).toEqual(top);
      }
      // A token is a member only from its own step: every member list is ascending and each joined on arrival.
      expect(members[cl]).toEqual([...members[cl]].sort((a, b) => a - b));
      expect(members[cl].slice(0, w)).toEqual([0, 1, 2, 3, 4]);
    }
  });
});

describe.each(BACKENDS)('routing attention on %s', (backendName) => {
  let centroids: tf.Tensor3D;
  beforeAll(async () => {
    await useBackend(backendName);
    centroids = initCentroids(2, 4, 8, 5);
  });
  afterAll(() => centroids.dispose());

  const variants: [string, RoutingOptions][] = [
    ['prefix (default)', {}],
    ['prefix, w = 3', { window: 3 }],
    ["prefix, normalise 'keys', excludeSelf", { normalise: 'keys', excludeSelf: true, window: 4 }],
    ['balanced, allowLeak', { assignment: 'balanced', allowLeak: true }],
    ['nearest', { assignment: 'nearest' }],
    ['balanced, not causal', { assignment: 'balanced', causal: false, window: 5 }],
  ];

  it.each(variants)('%s: shared q/k matches the float64 reference', (_label, o) => {
    const [x, v] = [rand([2, 2, 20, 8], 11, 1.5), rand([2, 2, 20, 8], 12)];
    const r = routingAttention(x, x, v, centroids, o);
    const ref = routingAttentionNaive(x, x, v, centroids, o);
    expectClose(r.output, ref.output, { rtol: 1e-4, atol: 1e-5 }, 'output');
    expect(r.clusters).toEqual(ref.clusters);
    tf.dispose([x, v, r.output]);
  });

  it('prefix: separate q and k are routed separately and match the reference; w = n is dense causal', () => {
    const [q, k, v] = [rand([1, 2, 18, 8], 13, 1.5), rand([1, 2, 18, 8], 14, 1.5), rand([1, 2, 18, 8], 15)];
    const r = routingAttention(q, k, v, centroids, { window: 4 });
    expectClose(r.output, routingAttentionNaive(q, k, v, centroids, { window: 4 }).output, {}, 'separate');
    expect(r.keyClusters).not.toEqual(r.clusters);
    const full = routingAttention(q, k, v, centroids, { window: 18 });
    const [qh, kh] = [normaliseShared(q), normaliseShared(k)];
    expectClose(
      full.output,
      naiveAttention(dense(qh), dense(kh), dense(v), { mask: masks.causal() }).output,
      {},
      'w = n',
    );
    tf.dispose([q, k, v, qh, kh, r.output, full.output]);
  });

  it('prefix: gradients of q and v match central differences of the reference', () => {
    const [x, v] = [rand([1, 2, 16, 8], 16, 1.5), rand([1, 2, 16, 8], 17)];
    const R = rand([1, 2, 16, 8], 18);
    const o: RoutingOptions = { window: 4 };
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => routingAttention(a, a, b, centroids, o).output.mul(R).sum())([
      x,
      v,
    ]);
    const [xs, vs] = [Float64Array.from(x.dataSync()), Float64Array.from(v.dataSync())];
    const Rd = R.dataSync();
    const f = () => {
      const [t, u] = [tf.tensor(Float32Array.from(xs), x.shape), tf.tensor(Float32Array.from(vs), v.shape)];
      const out = routingAttentionNaive(t, t, u, centroids, o).output;
      tf.dispose([t, u]);
      return out.reduce((a, y, i) => a + y * Rd[i], 0);
    };
    expectClose(g[0], numericGrad(f, xs, 2 ** -10), { rtol: 5e-3, atol: 5e-4 }, 'grad of x');
    expectClose(g[1], numericGrad(f, vs, 2 ** -10), { rtol: 5e-3, atol: 5e-4 }, 'grad of v');
    tf.dispose([x, v, R, ...g]);
  });

  it("causality: a changed future token moves no earlier output under 'prefix' or 'nearest'; the paper's training routing ('balanced') leaks", () => {
    const n = 32;
    const [x, v] = [rand([1, 2, n, 8], 21, 1.5), rand([1, 2, n, 8], 22)];
    const moved: Record<string, number> = {};
    for (const [label, o] of [
      ['prefix', { window: 4 }],
      ['nearest', { assignment: 'nearest' }],
      ['balanced', { assignment: 'balanced', allowLeak: true, window: 4 }],
    ] as [string, RoutingOptions][]) {
      moved[label] = 0;
      for (const t of [n - 1, n - 5, 20]) {
        for (const seed of [1, 2, 3]) {
          const [x2, v2] = [bump(x, t, 100 * t + seed), bump(v, t, 100 * t + seed + 50)];
          const a = routingAttention(x, x, v, centroids, o).output;
          const b = routingAttention(x2, x2, v2, centroids, o).output;
          moved[label] = Math.max(moved[label], earlierChange(a, b, t));
          tf.dispose([x2, v2, a, b]);
        }
      }
    }
    expect(moved.prefix).toBe(0);
    expect(moved.nearest).toBe(0);
    expect(moved.balanced).toBeGreaterThan(1e-3);
    tf.dispose([x, v]);
  });

  it('balanced routing leaks by construction: a last token aligned with a centroid evicts an earlier member', () => {
    // One head, one cluster of w = 2 members, five tokens: the last one, pointing at the centroid, takes a place in
    // the top 2 and pushes out an earlier token, whose output drops to zero (in no cluster).
    const mu = tf.tensor3d([1, 0], [1, 1, 2]);
    const x = tf.tensor4d([0.9, 0.1, 0.1, 0.9, 0.8, 0.2, -1, 0.1, 0.2, 0.8], [1, 1, 5, 2]);
    const x2 = tf.tensor4d([0.9, 0.1, 0.1, 0.9, 0.8, 0.2, -1, 0.1, 1, 0], [1, 1, 5, 2]);
    const v = tf.tensor4d([1, 1, 2, 2, 3, 3, 4, 4, 5, 5], [1, 1, 5, 2]);
    const o: RoutingOptions = { assignment: 'balanced', allowLeak: true, window: 2 };
    const [a, b] = [routingAttention(x, x, v, mu, o), routingAttention(x2, x2, v, mu, o)];
    expect(a.clusters[0]).toEqual([0, 2]);
    expect(b.clusters[0]).toEqual([0, 4]);
    expect(earlierChange(a.output, b.output, 4)).toBeGreaterThan(0.5);
    const [p, p2] = [routingAttention(x, x, v, mu, { window: 2 }), routingAttention(x2, x2, v, mu, { window: 2 })];
    expect(earlierChange(p.output, p2.output, 4)).toBe(0);
    tf.dispose([mu, x, x2, v, a.output, b.output, p.output, p2.output]);
  });

  it('cost: prefix routing scores under half the causal pairs at n = 256 and a shrinking share as n grows', () => {
    const share = (n: number, c: number) => {
      const [x, v] = [rand([1, 1, n, 16], 31), rand([1, 1, n, 16], 32)];
      const mu = initCentroids(1, c, 16, 3);
      const r = routingAttention(x, x, v, mu);
      // covers agrees with the attention: a query in some cluster sees itself, none sees a later key.
      for (let i = 0; i < n - 1; i += 17) {
        expect(r.covers(0, 0, i, i)).toBe(r.clusters.some((m) => m.includes(i)));
        expect(r.covers(0, 0, i, i + 1)).toBe(false);
      }
      tf.dispose([x, v, mu, r.output]);
      return r.stats.pairs / r.stats.densePairs;
    };
    const [at256, at1024] = [share(256, 16), share(1024, 32)];
    expect(at256).toBeLessThan(0.5);
    expect(at1024).toBeLessThan(0.7 * at256);
  });

  it('bad options name the function, the argument, the expected and the actual value; no tensor leaks', () => {
    const [x, v] = [rand([1, 2, 12, 8], 41), rand([1, 2, 12, 8], 42)];
    expect(() => routingAttention(x, x, v, centroids, { assignment: 'balanced' })).toThrow(
      /routingAttention: options.assignment 'balanced' under a causal mask .* options.allowLeak: true/,
    );
    expect(() => routingAttentionNaive(x, x, v, centroids, { assignment: 'prefix', causal: false })).toThrow(
      /routingAttentionNaive: options.assignment 'prefix' .* needs a causal mask/,
    );
    expect(() => routingAttention(x, x, v, centroids, { assignment: 'kmeans' as 'prefix' })).toThrow(
      /routingAttention: options.assignment must be one of prefix, balanced, nearest, got 'kmeans'/,
    );
    expect(routingMethod.supports(x, x, v, { assignment: 'balanced' }).join(' ')).toMatch(/allowLeak/);
    expect(routingMethod.supports(x, x, v, { assignment: 'balanced', allowLeak: true })).toEqual([]);
    for (const o of variants.map(([, o]) => o))
      expectNoLeak(() => routingAttention(x, x, v, centroids, o).output.dispose());
    tf.dispose([x, v]);
  });
});

describe('SparseLM routing heads', () => {
  beforeAll(async () => {
    await ready();
  });
  const base = { vocab: 12, dModel: 16, heads: 2, layers: 2, attention: 'routing' as const, window: 4, clusters: 3 };
  const a = () => tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2, 3, 4, 5]], undefined, 'int32');
  const b = () => tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 9, 9, 9, 9]], undefined, 'int32');

  it("defaults to the paper's routing: shared normalised q/k, prefix top-w, decay 0.999, commitment 1e-4", () => {
    const m = new SparseLM({ ...base, seed: 1 });
    expect(m.config).toMatchObject({
      sharedQK: true,
      assignment: 'prefix',
      normalise: 'both',
      excludeSelf: false,
      decay: 0.999,
      commitment: 1e-4,
    });
    m.dispose();
  });

  it("no later token changes an earlier logit with 'prefix' routing; with 'balanced' (the paper's training routing) one does, and decoding it with 'prefix' does not", () => {
    const change = (cfg: Partial<ConstructorParameters<typeof SparseLM>[0]>, assignment?: 'prefix') => {
      let worst = 0;
      for (const seed of [1, 2, 3, 4]) {
        const m = new SparseLM({ ...base, ...cfg, seed });
        const [ta, tb] = [a(), b()];
        const [la, lb] = [m.forward(ta, { assignment }), m.forward(tb, { assignment })];
        worst = Math.max(
          worst,
          tf.tidy(
            () =>
              la
                .slice([0, 0, 0], [1, 12, 12])
                .sub(lb.slice([0, 0, 0], [1, 12, 12]))
                .abs()
                .max()
                .dataSync()[0],
          ),
        );
        tf.dispose([ta, tb, la, lb]);
        m.dispose();
      }
      return worst;
    };
    expect(change({})).toBe(0);
    expect(change({ assignment: 'nearest', sharedQK: false, normalise: 'none' })).toBe(0);
    expect(change({ assignment: 'balanced', routingWindow: 3 })).toBeGreaterThan(1e-6);
    expect(change({ assignment: 'balanced', routingWindow: 3 }, 'prefix')).toBe(0);
  });

  it('onRoute reports the clusters the routing layer used: every cluster holds at most w positions at each step', () => {
    const m = new SparseLM({ ...base, seed: 3, routingWindow: 4 });
    const seen: [number, number[][]][] = [];
    const t = a();
    tf.dispose(m.forward(t, { onRoute: (layer, clusters) => seen.push([layer, clusters]) }));
    expect(seen.map(([l]) => l)).toEqual([1]);
    const clusters = seen[0][1];
    expect(clusters).toHaveLength(1 * 1 * 3); // rows x routing heads x clusters
    for (const mem of clusters) {
      expect(mem).toEqual([...mem].sort((x, y) => x - y));
      expect(mem.slice(0, 4)).toEqual([0, 1, 2, 3]); // the first w tokens join every cluster
      expect(mem.every((p) => p >= 0 && p < 16)).toBe(true);
    }
    t.dispose();
    m.dispose();
  });

  it('a training step with the commitment term collects the routed vectors, moves the centroids, and leaks nothing', () => {
    const m = new SparseLM({ ...base, layers: 1, decay: 0.5, seed: 2 });
    const before = m.centroids[0].arraySync();
    const [x, y, mask] = [a(), b(), tf.ones([1, 16])];
    const n0 = tf.memory().numTensors;
    const loss = m.loss(x, y, mask, { collect: true });
    expect(Number.isFinite(loss.dataSync()[0])).toBe(true);
    m.updateCentroids();
    loss.dispose();
    expect(tf.memory().numTensors).toBe(n0);
    expect(m.centroids[0].arraySync()).not.toEqual(before);
    tf.dispose([x, y, mask]);
    m.dispose();
  });
});

describe('routing-lm (tiny)', () => {
  beforeAll(async () => {
    await ready();
  });
  it('trains every row and variant, reports validation/test bits per char with intervals, keys per query and the reference', async () => {
    const r = await runExperimentWith(routingLm, {
      quick: true,
      overrides: {
        variants: ['balanced', 'nearest'],
        lm: { seqLen: 32, batch: 2, steps: 2, testBatches: 2 },
        recall: { seqLen: 24, pairs: 2, keys: 4, values: 4, filler: 4, batch: 2, steps: 2, testRows: 4 },
      },
    });
    for (const m of ['dense', 'local', 'routing', 'routing_balanced', 'routing_nearest']) {
      expect(Number.isFinite(r.metrics[`test_bpc_${m}`]), m).toBe(true);
      expect(r.metrics[`test_bpc_ci95_${m}`], m).toBeGreaterThan(0);
      expect(Number.isFinite(r.metrics[`validation_bpc_${m}`]), m).toBe(true);
    }
    // Keys per query: dense (n + 1) / 2 on 32 positions; local at most its window (16 in quick); routing below dense.
    expect(r.metrics.test_keys_per_query_dense).toBeCloseTo(16.5, 6);
    expect(r.metrics.test_keys_per_query_local).toBeLessThanOrEqual(16);
    expect(r.metrics.test_keys_per_query_routing).toBeLessThan(16.5);
    // The leaky training routing is scored separately; recall runs for the models only, not the variants.
    expect(Number.isFinite(r.metrics.test_bpc_routing_balanced_leaky)).toBe(true);
    expect(r.metrics.test_recall_accuracy_routing).toBeGreaterThanOrEqual(0);
    expect(r.metrics.test_recall_accuracy_routing_balanced).toBeUndefined();
    expect(r.metrics.test_windows).toBe(4);
    expect(r.references?.[0]).toMatchObject({ metric: 'test_bpc_routing', paper: 0.99 });
    expect(r.summary).toMatch(/Too small/);
    const rows = r.tables?.models ?? [];
    expect(rows.map((x) => x.model)).toEqual(['dense', 'local', 'routing', 'routing-balanced', 'routing-nearest']);
    expect(rows.find((x) => x.model === 'local')?.test_bpc_minus_local).toBeNull();
  }, 120_000);
});

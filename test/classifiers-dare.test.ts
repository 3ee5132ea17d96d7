/** DARE (Feng et al., ICLR 2025): synthetic users, top-K target attention against its float64 reference, the TWIN / DARE models, ranking metrics, experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { type RecsysConfig, recsysBatch, recsysRelevanceMask, recsysTask } from '../lib/data/recsys.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import {
  auc,
  DareModel,
  dare,
  gauc,
  gaucBlocks,
  keptAttention,
  retrievalPrecision,
  type TopKAttentionOutput,
  targetSearch,
  topKTargetAttention,
  topKTargetAttentionReference,
  userBootstrapCi,
} from '../lib/papers/classifiers/dare/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const CFG: RecsysConfig = {
  nCategories: 8,
  itemsPerCategory: 5,
  historyLength: 30,
  interests: 3,
  focus: 0.8,
  targetsPerUser: 4,
  topK: 5,
  bias: -0.5,
  presence: 1.5,
  targetQuality: 1,
  behaviourQuality: 1,
  categoryPopularity: 0.7,
  seed: 3,
};

describe('recsysTask', () => {
  it('draws users whose click probability follows the documented model, reproducibly per seed', () => {
    const task = recsysTask(CFG, { train: 20, validation: 5, test: 6 });
    const { world, train } = task;
    expect(world.nItems).toBe(40);
    expect(train.history.length).toBe(20 * 30);
    expect(train.target.length).toBe(80);
    for (let c = 0; c < 8; c++) {
      expect(world.partner[world.partner[c]]).toBe(c);
      expect(world.partner[c]).not.toBe(c);
    }
    for (let e = 0; e < train.target.length; e++) {
      const mask = recsysRelevanceMask(world, train, e);
      const u = Math.floor(e / 4);
      let n = 0;
      let q = 0;
      for (let j = 0; j < 30; j++) {
        if (!mask[j]) continue;
        n++;
        q += world.quality[train.history[u * 30 + j]];
      }
      expect(train.relevantCount[e]).toBe(n);
      const t = train.target[e];
      const logit =
        -0.5 +
        (1.5 * Math.min(n, 5)) / 5 +
        world.quality[t] +
        (n ? q / n : 0) +
        0.7 * world.popularity[world.category[t]];
      expect(train.clickProb[e]).toBeCloseTo(1 / (1 + Math.exp(-logit)), 12);
    }
    const again = recsysTask(CFG, { train: 20, validation: 5, test: 6 });
    expect(Array.from(again.test.history)).toEqual(Array.from(task.test.history));
    expect(Array.from(again.train.label)).toEqual(Array.from(train.label));
  });

  it('splits by user: each split has its own users, the world is shared', () => {
    const task = recsysTask(CFG, { train: 30, validation: 30, test: 30 });
    const rows = (s: 'train' | 'validation' | 'test') =>
      new Set(Array.from({ length: 30 }, (_, u) => Array.from(task[s].history.subarray(u * 30, u * 30 + 30)).join()));
    const [a, b, c] = [rows('train'), rows('validation'), rows('test')];
    for (const h of c) {
      expect(a.has(h)).toBe(false);
      expect(b.has(h)).toBe(false);
    }
    const other = recsysTask({ ...CFG, seed: 4 }, { train: 30, validation: 30, test: 30 });
    expect(Array.from(other.test.history)).not.toEqual(Array.from(task.test.history));
  });

  it('names the argument, the expected and the actual value on bad input', () => {
    expect(() => recsysTask({ ...CFG, nCategories: 7 }, { train: 1, validation: 1, test: 1 })).toThrow(
      /recsysTask: nCategories must be even.*got 7/,
    );
    expect(() => recsysTask({ ...CFG, focus: 2 }, { train: 1, validation: 1, test: 1 })).toThrow(
      /recsysTask: focus must be a finite number in \[0, 1\], got 2/,
    );
    expect(() => recsysTask(CFG, { train: 0, validation: 1, test: 1 })).toThrow(/users.train must be an integer >= 1/);
    const task = recsysTask(CFG, { train: 2, validation: 1, test: 1 });
    expect(() => recsysBatch(task.world, task.train, [8])).toThrow(/recsysBatch: rows\[0\] must be .*\[0, 8\), got 8/);
  });
});

/** Random q [b, da], k [b, L, da], v [b, L, dv] as float64 arrays. */
function randomInputs(b: number, L: number, da: number, dv: number, seed: number) {
  return {
    q: randomArray(b * da, seed, 1.5),
    k: randomArray(b * L * da, seed + 1, 1.5),
    v: randomArray(b * L * dv, seed + 2),
  };
}

describe.each(BACKENDS)('topKTargetAttention on %s', (name) => {
  const [b, L, da, dv, K] = [3, 12, 4, 5, 4];

  it('matches the float64 reference: scores, kept positions, weights, output', async () => {
    await useBackend(name);
    const x = randomInputs(b, L, da, dv, 11);
    const ref = topKTargetAttentionReference(x.q, x.k, x.v, { b, L, da, dv }, K);
    const q = tf.tensor2d(Float32Array.from(x.q), [b, da]);
    const k = tf.tensor3d(Float32Array.from(x.k), [b, L, da]);
    const v = tf.tensor3d(Float32Array.from(x.v), [b, L, dv]);
    const r = topKTargetAttention(q, k, v, K);
    expectClose(r.scores, ref.scores, {}, 'scores');
    expect(Array.from(r.indices.dataSync())).toEqual(Array.from(ref.indices));
    expectClose(r.weights, ref.weights, {}, 'weights');
    expectClose(r.out, ref.out, {}, 'out');
    tf.dispose([q, k, v, r.out, r.indices, r.weights, r.scores]);
  });

  it('gradients match the reference through q, the kept keys and the kept values; dropped behaviours get none', async () => {
    await useBackend(name);
    const x = randomInputs(b, L, da, dv, 21);
    const w = randomArray(b * dv, 99);
    const dims = { b, L, da, dv };
    const f64 = () => topKTargetAttentionReference(x.q, x.k, x.v, dims, K).out.reduce((a, o, i) => a + o * w[i], 0);
    const gq = numericGrad(f64, x.q);
    const gk = numericGrad(f64, x.k);
    const gv = numericGrad(f64, x.v);
    const wt = tf.tensor2d(Float32Array.from(w), [b, dv]);
    const grads = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => {
      const r = topKTargetAttention(q, k, v, K);
      tf.dispose([r.indices, r.weights, r.scores]);
      return tf.sum(tf.mul(r.out, wt));
    });
    const inputs = [
      tf.tensor2d(Float32Array.from(x.q), [b, da]),
      tf.tensor3d(Float32Array.from(x.k), [b, L, da]),
      tf.tensor3d(Float32Array.from(x.v), [b, L, dv]),
    ];
    const [dq, dk, dv_] = grads(inputs);
    const tol = { rtol: 2e-3, atol: 2e-4 };
    expectClose(dq, gq, tol, 'dq');
    expectClose(dk, gk, tol, 'dk');
    expectClose(dv_, gv, tol, 'dv');
    const kept = topKTargetAttentionReference(x.q, x.k, x.v, dims, K).indices;
    const dkv = dk.dataSync();
    for (let r = 0; r < b; r++)
      for (let j = 0; j < L; j++) {
        if (Array.from(kept.subarray(r * K, r * K + K)).includes(j)) continue;
        for (let f = 0; f < da; f++) expect(dkv[(r * L + j) * da + f]).toBe(0);
      }
    tf.dispose([wt, ...inputs, dq, dk, dv_]);
  });

  it('keeping every behaviour (K = L) is full softmax target attention', async () => {
    await useBackend(name);
    const x = randomInputs(b, L, da, dv, 31);
    const q = tf.tensor2d(Float32Array.from(x.q), [b, da]);
    const k = tf.tensor3d(Float32Array.from(x.k), [b, L, da]);
    const v = tf.tensor3d(Float32Array.from(x.v), [b, L, dv]);
    const r = topKTargetAttention(q, k, v, L);
    const full = tf.tidy(() =>
      tf.sum(tf.mul(tf.expandDims(tf.softmax(tf.sum(tf.mul(tf.expandDims(q, 1), k), 2).div(Math.sqrt(da))), 2), v), 1),
    );
    expectClose(r.out, full, {}, 'K = L');
    tf.dispose([q, k, v, r.out, r.indices, r.weights, r.scores, full]);
  });

  it('leaks no tensors and rejects bad shapes naming the argument', async () => {
    await useBackend(name);
    const x = randomInputs(b, L, da, dv, 41);
    const q = tf.tensor2d(Float32Array.from(x.q), [b, da]);
    const k = tf.tensor3d(Float32Array.from(x.k), [b, L, da]);
    const v = tf.tensor3d(Float32Array.from(x.v), [b, L, dv]);
    expectNoLeak(() => {
      const r = topKTargetAttention(q, k, v, K);
      tf.dispose([r.out, r.indices, r.weights, r.scores]);
      const idx = targetSearch(q, k, K);
      idx.dispose();
    });
    expect(() => topKTargetAttention(q, k, v, L + 1)).toThrow(
      /topKTargetAttention: topK must be an integer in \[1, 12\].*got 13/,
    );
    expect(() => topKTargetAttention(q, v, v, K)).toThrow(/topKTargetAttention: k must be \[3, L, 4\].*got \[3,12,5\]/);
    expect(() => keptAttention(q, k, tf.zeros([b, 2, dv]))).toThrow(/keptAttention: vKept must be \[b, K, d_v\]/);
    tf.dispose([q, k, v]);
  });
});

describe.each(BACKENDS)('DareModel on %s', (name) => {
  const task = recsysTask(CFG, { train: 8, validation: 2, test: 2 });
  const opts = { nItems: 40, nCategories: 8, topK: 5, hidden: [8], seed: 1 };

  it('its search-then-lookup forward equals topKTargetAttention over the full embedded history', async () => {
    await useBackend(name);
    for (const kind of ['twin', 'dare'] as const) {
      const m = new DareModel({ ...opts, kind, attentionDim: 3, representationDim: kind === 'twin' ? 3 : 4 });
      const x = recsysBatch(task.world, task.train, [0, 5, 9, 30]);
      const f = m.forward(x);
      const emb = (t: typeof m.attention, items: tf.Tensor, cats: tf.Tensor) =>
        tf.concat([tf.gather(t.item, items), tf.gather(t.category, cats)], -1);
      const r = tf.tidy(
        () =>
          topKTargetAttention(
            emb(m.attention, x.targetItems, x.targetCategories),
            emb(m.attention, x.historyItems, x.historyCategories),
            emb(m.representation, x.historyItems, x.historyCategories),
            5,
          ) as unknown as tf.NamedTensorMap,
      ) as unknown as TopKAttentionOutput;
      expect(Array.from(f.indices.dataSync())).toEqual(Array.from(r.indices.dataSync()));
      expectClose(f.weights, r.weights, {}, `${kind} weights`);
      expect(f.logits.shape).toEqual([4]);
      tf.dispose([f.logits, f.indices, f.weights, r.out, r.indices, r.weights, r.scores, ...Object.values(x)]);
      m.dispose();
    }
  });

  it('TWIN shares one table per field, DARE has two; the loss trains both tables without leaking', async () => {
    await useBackend(name);
    const twin = new DareModel({ ...opts, kind: 'twin', attentionDim: 4, representationDim: 4 });
    const dareM = new DareModel({ ...opts, kind: 'dare', attentionDim: 2, representationDim: 4 });
    expect(twin.attention.item).toBe(twin.representation.item);
    expect(dareM.attention.item).not.toBe(dareM.representation.item);
    expect(dareM.attention.item.shape).toEqual([40, 2]);
    expect(dareM.parameterCount() - twin.parameterCount()).toBe((40 + 8) * 2);
    const x = recsysBatch(task.world, task.train, [0, 1, 2, 3, 4, 5]);
    const { grads, value } = tf.variableGrads(() => dareM.loss(x), Object.values(dareM.variables()));
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    const norm = (t: tf.Tensor) => tf.tidy(() => tf.norm(t).dataSync()[0]);
    expect(norm(grads[dareM.attention.item.name])).toBeGreaterThan(0);
    expect(norm(grads[dareM.representation.item.name])).toBeGreaterThan(0);
    tf.dispose([value, ...Object.values(grads)]);
    expectNoLeak(() => {
      const f = dareM.forward(x);
      tf.dispose([f.logits, f.indices, f.weights]);
      tf.dispose(dareM.loss(x));
    });
    expect(() => new DareModel({ ...opts, kind: 'twin', attentionDim: 2, representationDim: 4 })).toThrow(
      /DareModel: a 'twin' model has one embedding table.*got 2 and 4/,
    );
    tf.dispose(Object.values(x));
    twin.dispose();
    dareM.dispose();
  });
});

describe('ranking metrics', () => {
  it('AUC equals the pairwise win rate; GAUC weights users by impressions; retrieval precision counts hits', () => {
    const s = randomArray(40, 5);
    const y = Array.from({ length: 40 }, (_, i) => (s[i] + randomArray(40, 6)[i] > 0 ? 1 : 0));
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < 40; i++)
      for (let j = 0; j < 40; j++)
        if (y[i] && !y[j]) {
          pairs++;
          wins += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
        }
    expect(auc(s, y)).toBeCloseTo(wins / pairs, 12);
    expect(auc([1, 1, 1], [1, 0, 1])).toBe(0.5);
    expect(Number.isNaN(auc([1, 2], [1, 1]))).toBe(true);
    // user 0: AUC 1 over 3 impressions; user 1: AUC 0 over 2; user 2: one label only (left out)
    expect(gauc([3, 2, 1, 1, 2, 5, 6], [1, 0, 0, 1, 0, 1, 1], [0, 0, 0, 1, 1, 2, 2])).toBeCloseTo(3 / 5, 12);
    const g = Int32Array.from({ length: 40 }, (_, i) => Math.floor(i / 5));
    expect(gaucBlocks(s, y, 5)).toBeCloseTo(gauc(s, y, g), 12);
    expect(() => gaucBlocks(s, y, 3)).toThrow(/gaucBlocks: block must be an integer >= 1 dividing 40, got 3/);
    const rel = [
      [1, 1, 0, 0],
      [0, 0, 0, 1],
      [0, 0, 0, 0],
    ];
    const r = retrievalPrecision([0, 2, 3, 1, 0, 1], 2, [2, 1, 0], (i, j) => rel[i][j] === 1);
    expect(Array.from(r.perImpression.subarray(0, 2))).toEqual([0.5, 1]);
    expect(r.mean).toBe(0.75);
    const ci = (n: number) =>
      userBootstrapCi(n, 1, (rows) => rows.reduce((a, i) => a + s[i % 40], 0) / rows.length, 200, 0);
    expect(ci(40)).toBeGreaterThan(0);
  });
});

describe('experiment dare', () => {
  it('runs tiny: AUC, GAUC and retrieval precision per model and attention dim, with CIs', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(dare, {
      quick: true,
      progress: false,
      overrides: {
        data: { nCategories: 8, itemsPerCategory: 4, historyLength: 24, targetsPerUser: 4, topK: 4 },
        trainUsers: 40,
        validationUsers: 20,
        testUsers: 30,
        dims: [2, 4],
        representationDim: 4,
        headlineDim: 4,
        steps: 4,
        batch: 16,
        lrs: [0.01],
        hidden: [8],
        bootstrap: 20,
      },
    });
    for (const kind of ['twin', 'dare'])
      for (const d of [2, 4]) {
        for (const m of ['auc', 'gauc', 'retrieval_precision']) {
          expect(Number.isFinite(r.metrics[`test_${m}_${kind}_d${d}`])).toBe(true);
          expect(r.metrics[`test_${m}_${kind}_d${d}_ci95`]).toBeGreaterThanOrEqual(0);
        }
      }
    expect(r.metrics.test_auc_bayes).toBeGreaterThan(0.5);
    expect(Number.isFinite(r.metrics.test_auc_drop_twin_minus_dare_d4_to_d2)).toBe(true);
    expect(r.metrics.test_auc_diff_dare_minus_twin_d4).toBeCloseTo(
      r.metrics.test_auc_dare_d4 - r.metrics.test_auc_twin_d4,
      12,
    );
    expect(r.tables?.claims.length).toBe(3);
    expect(r.references).toEqual([]);
    expect(r.tables?.models.length).toBe(4);
    expect(tf.memory().numTensors).toBe(before);
    await expect(runExperimentWith(dare, { quick: true, overrides: { dims: [3], headlineDim: 4 } })).rejects.toThrow(
      /headlineDim/,
    );
  });
});

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { SPECIAL } from '../lib/data/batch.js';
import { needleSplit, needleTask, repeatedRandomTokens, traceTask } from '../lib/data/needles.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { ToyLM } from '../lib/layers/toylm.js';
import { probeEchoInduction } from '../lib/papers/inference/razor/index.js';
import { retrievalHeadsExperiment } from '../lib/papers/inference/retrieval-heads/experiment.js';
import { maskHeads, rankHeads, retrievalScores } from '../lib/papers/inference/retrieval-heads/index.js';
import { proportionCi95 as ci95, sharedRowsCi95 as randomMaskCi } from '../lib/util/stats.js';
import { useBackend } from './helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const cfg = { seqLen: 15, needles: 2, valueLen: 2, keys: 4, values: 6, vocabSize: 20, seed: 1 } as const;

describe('needleTask', () => {
  it('lays out BOS, filler, needles and the QUERY tail; masks grade the answer and the filler transitions', () => {
    const b = needleTask({ ...cfg, batch: 20, split: 'test' });
    for (let r = 0; r < 20; r++) {
      const { inputs, targets, lossMask } = b.row(r);
      const full = [...inputs, targets[targets.length - 1]];
      const row = b.rows[r];
      expect(full[0]).toBe(SPECIAL.BOS);
      expect(full.slice(-4)).toEqual([SPECIAL.QUERY, row.key, ...row.values]);
      expect(row.answerStart).toBe(cfg.seqLen - cfg.valueLen);
      // The queried needle sits at needleSpan, right after a SEP.
      expect(full[row.needleSpan[0] - 1]).toBe(SPECIAL.SEP);
      expect(full.slice(row.needleSpan[0], row.needleSpan[1])).toEqual([row.key, ...row.values]);
      expect(row.valueStart).toBe(row.needleSpan[0] + 1);
      expect(lossMask).toEqual(Array.from({ length: 15 }, (_, t) => (t >= 13 ? 1 : 0)));
      expect(full.filter((t) => t === SPECIAL.SEP)).toHaveLength(2);
      const lm = Array.from(b.lmMask.subarray(r * 15, r * 15 + 15));
      lm.forEach((m, t) => expect(m).toBe(full[t] >= b.firstFiller && full[t + 1] >= b.firstFiller ? 1 : 0));
      // Keys of the needles are distinct, so the query is unambiguous.
      const keys = full.filter((_, i) => i > 0 && full[i - 1] === SPECIAL.SEP);
      expect(new Set(keys).size).toBe(2);
    }
  });

  it('draws train, validation and test needles from disjoint sets', () => {
    const sets = (['train', 'validation', 'test'] as const).map((split) => {
      const b = needleTask({ ...cfg, batch: 300, split, seed: 7 });
      for (const r of b.rows) expect(needleSplit(r.key, r.values)).toBe(split);
      return new Set(b.rows.map((r) => [r.key, ...r.values].join()));
    });
    for (const x of sets[2]) expect(sets[0].has(x) || sets[1].has(x)).toBe(false);
    for (const x of sets[1]) expect(sets[0].has(x)).toBe(false);
  });

  it('rejects bad arguments, naming them', () => {
    expect(() => needleTask({ ...cfg, batch: 2, seqLen: 8 })).toThrow(
      /needleTask: seqLen must be an integer >= 14, got 8/,
    );
    expect(() => needleTask({ ...cfg, batch: 2, keys: 1 })).toThrow(/needleTask: keys must be an integer >= 2, got 1/);
    expect(() => needleTask({ ...cfg, batch: 2, split: 'dev' as never })).toThrow(
      /needleTask: split must be 'train', 'validation' or 'test', got dev/,
    );
    expect(repeatedRandomTokens(2, 3, 5, 9, 1)[0]).toHaveLength(7);
    expect(() => repeatedRandomTokens(2, 5, 5, 9, 1)).toThrow(
      /repeatedRandomTokens: hi must be an integer >= 10, got 9/,
    );
  });
});

describe('traceTask', () => {
  it('chains a root definition through aliases at irregular positions; the answer needs every hop', () => {
    const c = { seqLen: 40, chains: 2, hops: 3, vars: 10, values: 6, vocabSize: 30, seed: 3 } as const;
    const b = traceTask({ ...c, batch: 30, split: 'test' });
    const gaps = new Set<string>();
    b.rows.forEach((row, r) => {
      const { inputs, targets, lossMask } = b.row(r);
      const full = [...inputs, targets[targets.length - 1]];
      expect(full.slice(-3)).toEqual([SPECIAL.QUERY, row.names[2], row.value]);
      expect(lossMask.indexOf(1)).toBe(row.answerStart);
      expect(lossMask.reduce((a, x) => a + x, 0)).toBe(1);
      // root `SEP r v`, then `SEP a1 r`, `SEP a2 a1`, in order.
      expect(row.links).toHaveLength(3);
      expect(full.slice(row.links[0], row.links[0] + 3)).toEqual([SPECIAL.SEP, row.names[0], row.value]);
      for (let h = 1; h < 3; h++) {
        expect(row.links[h]).toBeGreaterThan(row.links[h - 1]);
        expect(full.slice(row.links[h], row.links[h] + 3)).toEqual([SPECIAL.SEP, row.names[h], row.names[h - 1]]);
      }
      gaps.add(`${row.links[1] - row.links[0]},${row.links[2] - row.links[1]}`);
      expect(full.filter((t) => t === SPECIAL.SEP)).toHaveLength(6);
      expect(needleSplit(row.value, row.names)).toBe('test');
    });
    expect(gaps.size).toBeGreaterThan(5); // irregular intervals
    expect(() => traceTask({ ...c, batch: 1, vars: 5 })).toThrow(/traceTask: vars must be an integer >= 6, got 5/);
  });
});

describe('retrieval scores', () => {
  it('count top-1 hits inside the needle on the emitted token, per head', () => {
    const b = needleTask({ ...cfg, batch: 3, split: 'validation' });
    const s = cfg.seqLen;
    const H = 4;
    const data = new Float32Array(3 * H * s * s);
    const inputs = Array.from({ length: 3 }, (_, r) => b.row(r).inputs);
    const emitted = inputs.map((row) => row.map(() => 0));
    b.rows.forEach((row, r) => {
      for (let i = 0; i < cfg.valueLen; i++) {
        const q = row.answerStart + i;
        emitted[r][q] = row.values[i];
        const at = (h: number, j: number, w: number) => {
          data[((r * H + h) * s + q) * s + j] = w;
        };
        at(0, 0, 0.9); // head 0: BOS
        at(1, row.valueStart + i, 0.7); // head 1: the copied value: hit
        at(2, row.valueStart + i, 0.3); // head 2: right token but not top-1
        at(2, 0, 0.6);
        at(3, row.needleSpan[0], 0.8); // head 3: inside the needle, wrong token (the key)
      }
    });
    // Row 2 emits a wrong token at step 0: head 1 only hits step 1 there.
    emitted[2][b.rows[2].answerStart] = 3;
    const scores = retrievalScores([{ data, shape: [3, H, s, s] }], inputs, emitted, b.rows);
    expect(scores[0][0]).toBe(0);
    expect(scores[0][1]).toBeCloseTo((1 + 1 + 0.5) / 3, 12);
    expect(scores[0][2]).toBe(0);
    expect(scores[0][3]).toBe(0);
    expect(
      rankHeads([
        [0, 0.5],
        [0.9, 0.5],
      ]),
    ).toEqual([
      [1, 0],
      [0, 1],
      [1, 1],
      [0, 0],
    ]);
    expect(() => retrievalScores([{ data, shape: [3, H, s, s] }], inputs.slice(1), emitted, b.rows)).toThrow(
      /retrievalScores: inputs, emitted and rows must have 3 rows/,
    );
  });

  it('maskHeads zeroes exactly the chosen heads, in the full and the cached forward, and is undone', () => {
    const lm = new ToyLM({ vocab: 20, dModel: 16, heads: 4, layers: 2, maxLen: 16, seed: 2 });
    const x = tf.tensor2d([[1, 5, 6, 7, 8, 9, 10, 11]], [1, 8], 'int32');
    const base = lm.forward(x);
    const z: tf.Tensor[] = [];
    const remove = maskHeads(lm, [[1, 2]]);
    const rec = lm.hooks.add('blocks.1.attn.hook_z', (t) => {
      z.push(tf.keep(t.clone()));
    });
    const masked = lm.forward(x);
    rec();
    const zz = z[0].arraySync() as number[][][][];
    expect(zz[0][2].flat().every((v) => v === 0)).toBe(true);
    expect(zz[0][1].flat().some((v) => v !== 0)).toBe(true);
    expect(tf.abs(masked.sub(base)).max().dataSync()[0]).toBeGreaterThan(1e-6);
    const gen = lm.generate(x, 3).arraySync();
    remove();
    const again = lm.forward(x);
    expect(tf.abs(again.sub(base)).max().dataSync()[0]).toBe(0);
    // The greedy continuation under the mask is the masked full forward's argmax at the last position.
    const full = tf.tidy(() => tf.concat([x, tf.tensor2d([gen[0].slice(0, 2)], [1, 2], 'int32')], 1));
    const r2 = maskHeads(lm, [[1, 2]]);
    const pred = lm.forward(full).argMax(-1).arraySync() as number[][];
    r2();
    expect(pred[0].slice(7)).toEqual(gen[0]);
    expect(() => maskHeads(lm, [[2, 0]])).toThrow(/maskHeads: head \[2, 0\] is outside the model's 2 layers x 4 heads/);
    tf.dispose([x, base, masked, again, full, ...z]);
    const sc = probeEchoInduction(lm, { rows: 4, L: 4, lo: 5, hi: 20, seed: 1 });
    expect(sc.echo).toHaveLength(2);
    expect(sc.induction[0]).toHaveLength(4);
    lm.dispose();
  });
});

describe('retrieval-heads experiment', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });
  it('runs on a tiny config and reports scores, the masking table and the paper reference', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(retrievalHeadsExperiment, {
      quick: true,
      progress: false,
      keep: true,
      overrides: { steps: 6, dModel: 16, validationRows: 8, testRows: 16, maskK: [1, 2], randomDraws: 2 },
    });
    const m = r.metrics;
    for (const k of [
      'test_exact',
      'test_exact_mask_top1',
      'test_exact_mask_random2_ci95',
      'validation_retrieval_head_share',
    ])
      expect(Number.isFinite(m[k]), k).toBe(true);
    expect(r.tables?.heads).toHaveLength(16);
    expect(r.tables?.masking).toHaveLength(5);
    expect(r.references?.[0].paper).toBe(0.05);
    const art = r.artifacts!;
    expect(art.scores).toHaveLength(4);
    expect(art.ranking).toHaveLength(16);
    expect(art.scores[art.ranking[0][0]][art.ranking[0][1]]).toBe(Math.max(...art.scores.flat()));
    art.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(ci95(0.5, 100)).toBeCloseTo(0.098, 3);
    // One draw: the plain binomial interval; draws on the same rows do not narrow it, and their spread widens it.
    expect(randomMaskCi([0.5], 100)).toBeCloseTo(ci95(0.5, 100), 12);
    expect(randomMaskCi([0.5, 0.5, 0.5, 0.5], 100)).toBeCloseTo(ci95(0.5, 100), 12);
    expect(randomMaskCi([0.3, 0.7], 100)).toBeGreaterThan(ci95(0.5, 100));
    await expect(
      runExperimentWith(retrievalHeadsExperiment, { quick: true, progress: false, overrides: { maskK: [16] } }),
    ).rejects.toThrow(/retrieval-heads: config.maskK entries must be below the model's 16 heads .*got 16/);
  });
});

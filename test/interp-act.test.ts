import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROMPT_TEMPLATES, PROMPT_VOCAB, promptTask, templateSplit } from '../lib/data/prompts.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { actCalibration } from '../lib/papers/interp/act/experiment.js';
import {
  calibrateAttention,
  calibrateAttentionNaive,
  markedMass,
  sinkColumns,
  sinkColumnsNaive,
} from '../lib/papers/interp/act/index.js';
import { sinkAttention } from '../lib/papers/interp/sinks/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

/**
 * A hand-made causal pattern [1, 1, 4, 4] with a hidden sink on key 2: rows 2 and 3 put 0.6 on it.
 *   row 0: [1, 0, 0, 0]; row 1: [0.5, 0.5, 0, 0]; row 2: [0.2, 0.2, 0.6, 0]; row 3: [0.1, 0.1, 0.6, 0.2]
 * Column means over the rows that see them: key 1 (0.5 + 0.2 + 0.1) / 3 = 0.267, key 2 0.6, key 3 0.2.
 */
const HAND = [1, 0, 0, 0, 0.5, 0.5, 0, 0, 0.2, 0.2, 0.6, 0, 0.1, 0.1, 0.6, 0.2];

/** Random softmax weights [b, h, s, s] from random scores (causal). */
function randomWeights(shape: [number, number, number], seed: number, sharp = 2): tf.Tensor4D {
  const [b, h, s] = shape;
  const q = tf.tensor4d(Float32Array.from(randomArray(b * h * s * 4, seed, sharp)), [b, h, s, 4]);
  const k = tf.tensor4d(Float32Array.from(randomArray(b * h * s * 4, seed + 1, sharp)), [b, h, s, 4]);
  const r = sinkAttention(q, k, k, { variant: 'softmax' });
  tf.dispose([q, k, r.output]);
  return r.weights;
}

describe.each(BACKENDS)('ACT calibration on %s', (backendName) => {
  beforeAll(async () => {
    await useBackend(backendName);
  });

  it('sinkColumns finds the hidden sink of a hand-made pattern and never flags token 0', () => {
    const w = tf.tensor4d(HAND, [1, 1, 4, 4]);
    const at = (t: number) => {
      const s = sinkColumns(w, t);
      const v = Array.from(s.dataSync());
      s.dispose();
      return v;
    };
    expect(at(0.5)).toEqual([0, 0, 1, 0]);
    expect(at(0.1)).toEqual([0, 1, 1, 1]); // token 0 (mean 0.45) stays unflagged
    expect(at(0.25)).toEqual([0, 1, 1, 0]);
    w.dispose();
  });

  it('calibrateAttention scales the sink by beta and hands the freed mass to the other keys by their weights', () => {
    const w = tf.tensor4d(HAND, [1, 1, 4, 4]);
    const c = calibrateAttention(w, { beta: 0.5, threshold: 0.5 });
    // Row 2: the sink keeps 0.3; 0.3 goes to keys 0 and 1 (0.2 each, equal shares): 0.35 each.
    // Row 3: 0.3 freed, split 0.1 : 0.1 : 0.2 over keys 0, 1, 3 -> +0.075, +0.075, +0.15.
    expectClose(c, [1, 0, 0, 0, 0.5, 0.5, 0, 0, 0.35, 0.35, 0.3, 0, 0.175, 0.175, 0.3, 0.35], { atol: 1e-6 }, 'hand');
    const sums = c.sum(-1);
    expectClose(sums, [1, 1, 1, 1], { atol: 1e-6 }, 'rows still sum to 1');
    const same = calibrateAttention(w, { beta: 1, threshold: 0.5 });
    expectClose(same, HAND, { atol: 1e-7 }, 'beta 1 changes nothing');
    tf.dispose([w, c, sums, same]);
  });

  it('matches the float64 reference on random weights, with head selection', () => {
    const shape: [number, number, number, number] = [2, 3, 6, 6];
    const w = randomWeights([2, 3, 6], 5);
    const data = w.dataSync();
    for (const [beta, threshold, heads] of [
      [0.4, 0.1, undefined],
      [0.2, 0.2, [1, 0, 1]],
      [0, 0.15, [0, 1, 0]],
    ] as const) {
      const opts = { beta, threshold, heads: heads as number[] | undefined };
      const s = sinkColumns(w, threshold);
      expectClose(s, sinkColumnsNaive(data, shape, threshold), { atol: 0 }, `sinks tau ${threshold}`);
      const c = calibrateAttention(w, opts);
      expectClose(c, calibrateAttentionNaive(data, shape, opts), { atol: 1e-6 }, `calibrated beta ${beta}`);
      tf.dispose([s, c]);
    }
    w.dispose();
  });

  it('gradients with respect to the weights match the float64 reference (sink set held fixed)', () => {
    const shape: [number, number, number, number] = [1, 2, 5, 5];
    const w = randomWeights([1, 2, 5], 9);
    const data = Float64Array.from(w.dataSync());
    const r = randomArray(data.length, 10);
    const opts = { beta: 0.4, threshold: 0.1, heads: [1, 1] };
    const sinks = sinkColumnsNaive(data, shape, opts.threshold);
    // Central differences move the weights by 1e-5, far less than any column mean's distance to tau (checked).
    const colMeans = Array.from({ length: 2 * 5 }, (_, x) => {
      const [h, j] = [Math.floor(x / 5), x % 5];
      let acc = 0;
      for (let i = 0; i < 5; i++) acc += data[(h * 5 + i) * 5 + j];
      return acc / (5 - j);
    });
    expect(Math.min(...colMeans.map((m) => Math.abs(m - opts.threshold)))).toBeGreaterThan(1e-3);
    expect(sinks.some((x) => x === 1)).toBe(true);
    const f64 = () => calibrateAttentionNaive(data, shape, opts).reduce((a, x, i) => a + x * r[i], 0);
    const R = tf.tensor4d(Float32Array.from(r), shape);
    const g = tf.grad((x: tf.Tensor) => calibrateAttention(x, opts).mul(R).sum() as tf.Scalar)(w);
    expectClose(g, numericGrad(f64, data), { rtol: 1e-3, atol: 1e-4 }, 'd/dweights');
    tf.dispose([w, R, g]);
  });

  it('markedMass is the attention on marked keys, per head', () => {
    const w = tf.tensor4d(HAND, [1, 1, 4, 4]);
    const marked = tf.tensor2d([[0, 0, 1, 0]]);
    expectClose(markedMass(w, marked), [(0 + 0 + 0.6 + 0.6) / 4], { atol: 1e-6 });
    tf.dispose([w, marked]);
  });

  it('bad input names the function, the argument and the value; no leaks', () => {
    const w = tf.tensor4d(HAND, [1, 1, 4, 4]);
    expect(() => calibrateAttention(w, { beta: 1.5, threshold: 0.1 })).toThrow(
      /calibrateAttention: options.beta must be in \[0, 1\], got 1.5/,
    );
    expect(() => calibrateAttention(w, { beta: 0.4, threshold: 0.1, heads: [1, 1] })).toThrow(
      /calibrateAttention: options.heads must be 1 zeros and ones \(one per head\), got \[1, 1\]/,
    );
    expect(() => sinkColumns(tf.zeros([1, 4, 4]))).toThrow(/sinkColumns: weights must have shape .* got \[1,4,4\]/);
    expect(() => markedMass(w, tf.zeros([1, 3]))).toThrow(/markedMass: marked must have shape \[1, 4\]/);
    expectNoLeak(() => {
      const c = calibrateAttention(w, { beta: 0.4, threshold: 0.1, heads: [1] });
      const s = sinkColumns(w);
      tf.dispose([c, s]);
    });
    w.dispose();
  });
});

describe('templated prompts (lib/data/prompts.ts)', () => {
  it('splits templates disjointly, fixes the length and labels by the sentiment words', () => {
    const counts = { train: 0, calibration: 0, test: 0 };
    for (const t of PROMPT_TEMPLATES) counts[templateSplit(t.index)]++;
    expect(counts).toEqual({ train: 346, calibration: 115, test: 115 });
    const seen = new Map<number, string>();
    for (const split of ['train', 'calibration', 'test'] as const) {
      const b = promptTask({ batch: 64, seqLen: 20, split, seed: 1 });
      for (let i = 0; i < b.batch; i++) {
        const t = b.templates[i];
        expect(templateSplit(t)).toBe(split);
        expect(seen.get(t) ?? split).toBe(split);
        seen.set(t, split);
        const row = b.row(i);
        expect(row.inputs).toHaveLength(20);
        expect(row.inputs[0]).toBe(PROMPT_VOCAB.bos);
        expect(row.targets[19]).toBe(PROMPT_VOCAB.labels[b.labels[i]]);
        expect(row.lossMask.reduce((a, x) => a + x, 0)).toBe(1);
        const words = PROMPT_VOCAB.decode(row.inputs).split(' ');
        let score = 0;
        words.forEach((w, j) => {
          const polarity = ['good', 'great', 'fine', 'nice', 'happy', 'calm'].includes(w)
            ? 1
            : ['bad', 'awful', 'poor', 'sad', 'angry', 'dull'].includes(w)
              ? -1
              : 0;
          score += words[j - 1] === 'not' ? -polarity : polarity;
        });
        expect(score).not.toBe(0);
        expect(b.labels[i]).toBe(score > 0 ? 0 : 1);
        row.inputs.forEach((x, j) =>
          expect(b.delimiters[i * 20 + j]).toBe(PROMPT_VOCAB.delimiters.includes(x) ? 1 : 0),
        );
      }
    }
    expect(() => promptTask({ batch: 2, seqLen: 8, split: 'train', seed: 0 })).toThrow(/promptTask: seqLen/);
    expect(() => promptTask({ batch: 2, seqLen: 16, split: 'dev' as 'train', seed: 0 })).toThrow(
      /promptTask: split must be one of train, calibration, test, got dev/,
    );
  });
});

describe('act-calibration experiment', () => {
  beforeAll(async () => {
    await useBackend(BACKENDS[BACKENDS.length - 1]); // the fastest one here
  });

  it('runs tiny: selection on calibration, test accuracy with CIs, sink statistics and the paper reference', async () => {
    const r = await runExperimentWith(actCalibration, {
      quick: true,
      keep: true,
      overrides: {
        seqLen: 14,
        layers: 1,
        dModel: 8,
        heads: 2,
        batch: 8,
        steps: 5,
        calibrationRows: 32,
        testRows: 64,
        thresholds: [0.1, 0.3],
      },
    });
    const m = r.metrics;
    const a0 = (x: unknown) => String(x);
    for (const k of ['test_accuracy_baseline', 'test_accuracy_act', 'validation_accuracy_baseline']) {
      expect(m[k]).toBeGreaterThanOrEqual(0);
      expect(m[k]).toBeLessThanOrEqual(1);
    }
    expect(m.test_gain_pct).toBeCloseTo(100 * (m.test_accuracy_act - m.test_accuracy_baseline), 6);
    expect(m.validation_accuracy_act).toBeGreaterThanOrEqual(m.validation_accuracy_baseline);
    // The headline is the paper's beta / tau; the pair picked on calibration is an extra row, never better there.
    expect(a0(r.tables!.accuracy[1].model)).toMatch(/paper's beta 0.4 \/ tau 0.1/);
    expect(m.validation_accuracy_act_tuned).toBeGreaterThanOrEqual(m.validation_accuracy_act);
    expect(m.test_gain_pct_tuned).toBeCloseTo(100 * (m.test_accuracy_act_tuned - m.test_accuracy_baseline), 6);
    expect(r.summary).toMatch(/paper's beta 0.4 \/ tau 0.1/);
    expect(m.test_sink_delimiter_fraction).toBeGreaterThanOrEqual(0);
    const a = r.artifacts!;
    expect(a.selection.heads).toHaveLength(1);
    const maps = a.attentionMaps(0);
    expect(maps.before[0]).toHaveLength(2);
    expect(maps.after[0][0]).toHaveLength(14);
    expect(r.references![0].metric).toBe('test_gain_pct');
    a.dispose();
  });
});

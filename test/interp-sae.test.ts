/**
 * SAE circuit discovery (O'Neill & Bui 2024): the SAE loss and its gradient against the float64 reference, the
 * discrete codes, nodes and edges on a hand-made case, SAE training finding the one head whose output separates
 * positive from negative prompts, ROC-AUC / precision / recall, errors, and no tensor leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  circuitFromCodeGroups,
  circuitFromCodes,
  naiveCodes,
  naiveSaeLoss,
  precisionRecall,
  rocAuc,
  rocCurve,
  type SaeParams,
  saeCodes,
  saeLoss,
  saeParams64,
  trainSaes,
} from '../lib/papers/interp/sae/index.js';
import { Rng } from '../lib/util/random.js';
import { BACKENDS, expectClose, expectNoLeak, randomArray, useBackend } from './helpers.js';

function nested(flat: Float64Array, C: number, N: number, D: number): number[][][] {
  return Array.from({ length: C }, (_, c) =>
    Array.from({ length: N }, (_, n) => Array.from(flat.subarray((c * N + n) * D, (c * N + n + 1) * D))),
  );
}

/** randomArray as float32 (tfjs takes no Float64Array). */
const f32 = (n: number, seed: number, scale = 1) => Float32Array.from(randomArray(n, seed, scale));

function randomParams(C: number, D: number, M: number, seed: number): SaeParams {
  return {
    wEnc: tf.tensor3d(f32(C * D * M, seed), [C, D, M]),
    // Biases spread so that some latents are inactive and ReLU's kink is exercised.
    bEnc: tf.tensor2d(f32(C * M, seed + 1, 0.5), [C, M]),
    wDec: tf.tensor3d(f32(C * M * D, seed + 2), [C, M, D]),
    bDec: tf.tensor2d(f32(C * D, seed + 3, 0.3), [C, D]),
  };
}

describe.each(BACKENDS)('SAE against the float64 reference (%s)', (backend) => {
  beforeAll(() => useBackend(backend));
  afterAll(() => useBackend('cpu'));

  it('loss, gradients in all four parameters, and codes agree', () => {
    const [C, N, D, M] = [3, 7, 4, 6];
    const xs = randomArray(C * N * D, 11, 1.5);
    const x = tf.tensor3d(Float32Array.from(xs), [C, N, D]);
    const p = randomParams(C, D, M, 20);
    const l1 = 0.3;
    const ref = naiveSaeLoss(nested(xs, C, N, D), saeParams64(p), l1);
    const vars = { wEnc: p.wEnc, bEnc: p.bEnc, wDec: p.wDec, bDec: p.bDec };
    const { value, grads } = tf.valueAndGrads((wEnc: tf.Tensor, bEnc: tf.Tensor, wDec: tf.Tensor, bDec: tf.Tensor) =>
      saeLoss(x, { wEnc, bEnc, wDec, bDec } as SaeParams, l1),
    )([vars.wEnc, vars.bEnc, vars.wDec, vars.bDec]);
    expectClose(value.dataSync(), [ref.loss], { rtol: 1e-4, atol: 1e-5 }, 'loss');
    (['wEnc', 'bEnc', 'wDec', 'bDec'] as const).forEach((k, i) =>
      expectClose(grads[i]!.dataSync(), ref.grads[k], { rtol: 1e-3, atol: 1e-5 }, `d/d${k}`),
    );
    expect(saeCodes(x, p)).toEqual(naiveCodes(nested(xs, C, N, D), saeParams64(p)));
    tf.dispose([x, value, ...grads, ...Object.values(p)]);
  });

  it('leaks no tensors', () => {
    const x = tf.tensor3d(f32(2 * 3 * 2, 5), [2, 3, 2]);
    const p = randomParams(2, 2, 3, 9);
    expectNoLeak(() => {
      tf.dispose(saeLoss(x, p, 0.1));
      saeCodes(x, p);
    });
    const before = tf.memory().numTensors;
    trainSaes(x, { latents: 4, l1: 0.1, steps: 3, seed: 1 }).dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, ...Object.values(p)]);
  });
});

describe('the reference itself', () => {
  it("naiveSaeLoss's gradient matches central differences", () => {
    const [C, N, D, M] = [2, 3, 3, 4];
    const xs = nested(randomArray(C * N * D, 3), C, N, D);
    const p = {
      C,
      D,
      M,
      wEnc: randomArray(C * D * M, 4),
      bEnc: randomArray(C * M, 5, 0.5),
      wDec: randomArray(C * M * D, 6),
      bDec: randomArray(C * D, 7, 0.3),
    };
    const { grads } = naiveSaeLoss(xs, p, 0.2);
    for (const k of ['wEnc', 'bEnc', 'wDec', 'bDec'] as const) {
      const arr = p[k];
      const num = Float64Array.from(arr, (_, i) => {
        const old = arr[i]!;
        arr[i] = old + 1e-6;
        const fp = naiveSaeLoss(xs, p, 0.2).loss;
        arr[i] = old - 1e-6;
        const fm = naiveSaeLoss(xs, p, 0.2).loss;
        arr[i] = old;
        return (fp - fm) / 2e-6;
      });
      expectClose(grads[k], num, { rtol: 1e-4, atol: 1e-6 }, k);
    }
  });
});

describe('codes to circuit (hand-made)', () => {
  it('nodes are the share of positive prompts with a positive-only code, edges their co-occurrence', () => {
    // Head 0 (layer 0): positives use code 5 (never on negatives) except prompt 3. Head 1 (layer 0): same codes on
    // both. Head 2 (layer 1): positives 0-2 use code 7 (positive-only); prompt 3 uses 1, seen on negatives.
    const pos = [
      [5, 5, 5, 1],
      [2, 3, 2, 3],
      [7, 7, 7, 1],
    ];
    const neg = [
      [1, 2, 1],
      [3, 2, 2],
      [1, 1, 0],
    ];
    const c = circuitFromCodes(pos, neg, [0, 0, 1]);
    expect(c.nodes).toEqual([0.75, 0, 0.75]);
    expect(c.uniquePositive[0]).toEqual([true, true, true, false]);
    expect(c.edges).toEqual([
      { from: 0, to: 2, score: 0.75 },
      { from: 1, to: 2, score: 0 },
    ]);
    // A code of -1 (no latent active) is a code like any other.
    expect(circuitFromCodes([[-1, 0]], [[-1]], [0]).nodes).toEqual([0.5]);
  });

  it('scores groups of prompts separately and averages them', () => {
    // Head 0: code 9 is positive-only in group 0 (prompts 0-1) but occurs on group 1's negatives.
    const pos = [[9, 9, 9, 4]];
    const neg = [[1, 2, 9, 4]];
    const g = circuitFromCodeGroups(pos, neg, [0], 2);
    expect(g.groups).toEqual([[1], [0]]);
    expect(g.nodes).toEqual([0.5]);
    // All four at once: 9 occurs on a negative, so no positive-only code at all.
    expect(circuitFromCodes(pos, neg, [0]).nodes).toEqual([0]);
    // An incomplete last group is dropped.
    expect(circuitFromCodeGroups([[9, 9, 9]], [[1, 2, 9]], [0], 2).groups).toEqual([[1]]);
    expect(() => circuitFromCodeGroups(pos, neg, [0], 5)).toThrow(
      'circuitFromCodeGroups: groupSize 5 needs at least that many prompts; got 4 positive, 4 negative',
    );
  });

  it('ROC-AUC, ROC curve, precision and recall', () => {
    expect(rocAuc([0.9, 0.8, 0.1, 0.2], [true, true, false, false])).toBe(1);
    expect(rocAuc([0.1, 0.8, 0.9, 0.2], [true, true, false, false])).toBe(0.25);
    expect(rocAuc([0.5, 0.5, 0.5], [true, false, false])).toBe(0.5);
    expect(rocAuc([1, 2], [true, true])).toBeNaN();
    expect(rocCurve([0.9, 0.1, 0.5], [true, false, true])).toEqual([
      { fpr: 0, tpr: 0 },
      { fpr: 0, tpr: 0.5 },
      { fpr: 0, tpr: 1 },
      { fpr: 1, tpr: 1 },
    ]);
    expect(precisionRecall([true, true, false, false], [true, false, true, false])).toEqual({
      precision: 0.5,
      recall: 0.5,
      f1: 0.5,
    });
    expect(precisionRecall([false, false], [true, false]).precision).toBeNaN();
  });

  it('names the function, argument, expected and actual value in errors', () => {
    expect(() => circuitFromCodes([[1]], [], [0])).toThrow(
      'circuitFromCodes: negative has 0 components; positive has 1',
    );
    expect(() => circuitFromCodes([[1], [1, 2]], [[1], [2]], [0, 1])).toThrow(
      'circuitFromCodes: positive[1] has 2 prompts; positive[0] has 1',
    );
    expect(() => circuitFromCodes([[1]], [[1]], [0, 1])).toThrow('layerOf has 2 entries; positive has 1 components');
    const x = tf.zeros([2, 3, 4]);
    const p = randomParams(2, 5, 3, 1);
    expect(() => saeLoss(x, p, 0.1)).toThrow(
      'saeLoss: params.wEnc must have shape [2, 4, 3] for x [2, 3, 4]; got [2, 5, 3]',
    );
    expect(() => trainSaes(x, { latents: 0, l1: 0.1, steps: 1, seed: 0 })).toThrow(
      'trainSaes: opts.latents must be an integer >= 1; got 0',
    );
    expect(() => trainSaes(x, { latents: 2, l1: -1, steps: 1, seed: 0 })).toThrow(
      'trainSaes: opts.l1 must be a finite number >= 0; got -1',
    );
    expect(() => rocAuc([1], [true, false])).toThrow('rocAuc: labels has 2 entries; scores has 1');
    tf.dispose([x, ...Object.values(p)]);
  });
});

describe('trainSaes finds the head that separates positives from negatives', () => {
  it('head 0 writes a positive-only direction; head 1 is the same on both: nodes ~[1, 0], AUC 1', () => {
    const P = 12;
    const Q = 24;
    const D = 6;
    const rng = new Rng(3);
    // Head 0: positives along e0 (the task's signal), negatives along e1 or e2; head 1: one shared mixture.
    const row = (c: number, positive: boolean): number[] => {
      const v = Array.from({ length: D }, () => 0.05 * rng.normal());
      if (c === 0) v[positive ? 0 : 1 + rng.int(0, 2)]! += 1 + 0.1 * rng.normal();
      else v[3 + rng.int(0, 3)]! += 1 + 0.1 * rng.normal();
      return v;
    };
    const pos = [0, 1].map((c) => Array.from({ length: P }, () => row(c, true)));
    const neg = [0, 1].map((c) => Array.from({ length: Q }, () => row(c, false)));
    const all = tf.tensor3d([0, 1].map((c) => [...pos[c]!, ...neg[c]!]));
    const sae = trainSaes(all, { latents: 8, l1: 0.05, steps: 300, lr: 0.02, seed: 0 });
    expect(sae.finalLoss).toBeLessThan(0.5 * sae.initialLoss);
    const codes = (rows: number[][][]) => {
      const x = tf.tensor3d(rows);
      const xs = tf.div(x, tf.tensor1d(Array.from(sae.scale)).reshape([-1, 1, 1]));
      const c = saeCodes(xs, sae.params);
      tf.dispose([x, xs]);
      return c;
    };
    const circuit = circuitFromCodes(codes(pos), codes(neg), [0, 1]);
    expect(circuit.nodes[0]).toBeGreaterThanOrEqual(0.9);
    expect(circuit.nodes[1]).toBeLessThanOrEqual(0.1);
    expect(rocAuc(circuit.nodes, [true, false])).toBe(1);
    sae.dispose();
    all.dispose();
  });
});

describe('experiment sae-circuits (tiny)', () => {
  it('reports split-named metrics, a methods table with the headline first, and disposes its artifacts', async () => {
    const { runExperimentWith } = await import('../lib/experiments/contract.js');
    const { saeCircuits } = await import('../lib/papers/interp/sae/experiment.js');
    await useBackend('cpu');
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(saeCircuits, {
      quick: true,
      progress: false,
      keep: true,
      overrides: {
        layers: 1,
        heads: 2,
        dModel: 16,
        steps: 40,
        batch: 16,
        patchPrompts: 8,
        testPrompts: 24,
        trainExamples: [3, 6],
        latents: 4,
        l1Alternatives: [0.2],
        saeSteps: 5,
        bootstrap: 10,
      },
    });
    expect(r.metrics.validation_circuit_heads).toBeGreaterThanOrEqual(0);
    expect(r.metrics.test_ioi_accuracy).toBeGreaterThanOrEqual(0);
    expect(r.artifacts!.circuit).toHaveLength(2);
    expect(r.artifacts!.example.patterns).toHaveLength(1);
    expect(r.artifacts!.example.patterns[0]).toHaveLength(2);
    expect(r.artifacts!.example.tokens).toHaveLength(13);
    expect(r.artifacts!.example.patterns[0]![0]).toHaveLength(13);
    if (r.metrics.test_positive_prompts >= 2) {
      const methods = r.tables!.methods!;
      expect(methods.map((m) => m.method)).toEqual([
        'sae (headline), 3 examples',
        'sae, 6 examples',
        'sae, λ 0.2',
        'mean difference (no SAE)',
        'path patching (ground truth)',
      ]);
      expect(r.metrics.test_node_roc_auc).toBe(methods[0]!.test_node_roc_auc);
      expect(r.artifacts!.nodes).toHaveLength(2);
      for (const v of r.artifacts!.nodes) expect(v).toBeGreaterThanOrEqual(0);
      expect(r.tables!.heads).toHaveLength(2);
    } else expect(r.summary).toMatch(/^Too small to show anything/);
    r.artifacts!.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

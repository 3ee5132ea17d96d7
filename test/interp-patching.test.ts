import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ToyLM } from '../lib/layers/toylm.js';
import { HB, handBuiltCopier, handBuiltPair } from '../lib/papers/interp/patching/handbuilt.js';
import * as P from '../lib/papers/interp/patching/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const { BOS } = HB;
const HD = 15;
const handBuilt = handBuiltCopier;
const pair = handBuiltPair;

describe.each(BACKENDS)('patching toolkit on %s', (name) => {
  beforeAll(async () => useBackend(name));

  it('patchHeadSlice equals its float64 reference (batch and broadcast source), with gradients', () => {
    const shape: [number, number, number, number] = [2, 3, 4, 2];
    const n = 48;
    const z = randomArray(n, 1);
    const src = randomArray(n, 2);
    const src1 = randomArray(n / 2, 3);
    for (const [heads, positions] of [
      [[1], undefined],
      [
        [0, 2],
        [1, 3],
      ],
    ] as [number[], number[] | undefined][]) {
      const out = P.patchHeadSlice(tf.tensor4d(f32(z), shape), tf.tensor4d(f32(src), shape), heads, positions);
      expectClose(out, P.patchHeadSliceReference(z, src, shape, heads, positions), {}, 'batch source');
      const out1 = P.patchHeadSlice(tf.tensor4d(f32(z), shape), tf.tensor4d(f32(src1), [1, 3, 4, 2]), heads, positions);
      expectClose(out1, P.patchHeadSliceReference(z, src1, shape, heads, positions), {}, 'broadcast source');
    }
    const w = randomArray(n, 4);
    const f = (a: Float64Array, b: Float64Array) =>
      P.patchHeadSliceReference(a, b, shape, [0, 2], [1]).reduce((acc, v, i) => acc + v * w[i], 0);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      P.patchHeadSlice(a, b, [0, 2], [1])
        .mul(tf.tensor4d(f32(w), shape))
        .sum(),
    );
    const [ga, gb] = g([tf.tensor4d(f32(z), shape), tf.tensor4d(f32(src), shape)]);
    const za = Float64Array.from(z);
    const sa = Float64Array.from(src);
    expectClose(
      ga,
      numericGrad(() => f(za, sa), za),
      { atol: 1e-4 },
      'grad z',
    );
    expectClose(
      gb,
      numericGrad(() => f(za, sa), sa),
      { atol: 1e-4 },
      'grad source',
    );
  });

  it('headLogitContributions equals its float64 reference, with gradients', () => {
    const [b, h, d, m] = [2, 3, 2, 5];
    const z = randomArray(b * h * d, 5);
    const wo = randomArray(h * d * m, 6);
    const scale = Float64Array.from([0.7, 1.3]);
    const gamma = randomArray(m, 7);
    const dir = randomArray(b * m, 8);
    const T = () => ({
      z: tf.tensor3d(f32(z), [b, h, d]),
      wo: tf.tensor2d(f32(wo), [h * d, m]),
      scale: tf.tensor1d(f32(scale)),
      gamma: tf.tensor1d(f32(gamma)),
      dir: tf.tensor2d(f32(dir), [b, m]),
    });
    const t = T();
    const out = P.headLogitContributions(t.z, t.wo, t.scale, t.gamma, t.dir);
    expectClose(out, P.headLogitContributionsReference(z, wo, scale, gamma, dir, b, h, d, m), {}, 'DLA');
    const w = randomArray(b * h, 9);
    const g = tf.grads((a: tf.Tensor, c: tf.Tensor) =>
      P.headLogitContributions(a, c, t.scale, t.gamma, t.dir)
        .mul(tf.tensor2d(f32(w), [b, h]))
        .sum(),
    );
    const [gz, gwo] = g([t.z, t.wo]);
    const za = Float64Array.from(z);
    const woa = Float64Array.from(wo);
    const f = () =>
      P.headLogitContributionsReference(za, woa, scale, gamma, dir, b, h, d, m).reduce((a, v, i) => a + v * w[i], 0);
    expectClose(gz, numericGrad(f, za), { atol: 1e-4 }, 'grad z');
    expectClose(gwo, numericGrad(f, woa), { atol: 1e-4 }, 'grad wo');
  });

  it('projectRows and topDirections: float64 reference, full rank is the identity, top directions span the data', () => {
    const d = 4;
    // Rows in the span of e0 + e1 and e2 (rank 2), plus nothing on e3.
    const rows: number[] = [];
    for (let i = 0; i < 20; i++) {
      const a = Math.sin(i + 1);
      const c = Math.cos(3 * i);
      rows.push(a, a, c, 0);
    }
    const { basis, values } = P.topDirections(rows, d, 2);
    expect(values[0]).toBeGreaterThanOrEqual(values[1]);
    const x = tf.tensor2d(rows, [20, d]);
    const proj = P.projectRows(x, tf.tensor2d(f32(basis), [d, 2]));
    expectClose(proj, rows, { atol: 1e-4 }, 'rank-2 data survives its top-2 projection');
    expectClose(proj, P.projectRowsReference(rows, basis, d, 2), { atol: 1e-5 }, 'reference');
    const full = P.topDirections(randomArray(40, 3), d, d);
    expectClose(P.projectRows(x, tf.tensor2d(f32(full.basis), [d, d])), rows, { atol: 1e-4 }, 'full rank = identity');
    const one = P.topDirections(rows, d, 1);
    const p1 = P.projectRows(x, tf.tensor2d(f32(one.basis), [d, 1]));
    expect(relDiff(p1.dataSync(), rows)).toBeGreaterThan(0.05); // rank 1 loses the second direction
    expect(() => P.topDirections(rows, d, 5)).toThrow(/topDirections: r must be an integer in \[1, 4\], got 5/);
  });

  it('the hand-built model answers X, and activation patching finds L0H0 (position 2) and L1H0 (position 3)', () => {
    const model = handBuilt();
    const pr = pair();
    const clean = model.forward(pr.clean);
    expect(P.argmaxHits(clean, pr.correct).every((h) => h === 1)).toBe(true);
    const r = P.activationPatching(model, pr, { perPosition: true });
    expect(r.clean).toBeGreaterThan(1);
    expect(r.corrupted).toBeLessThan(-1);
    expect(r.grid[0][0]).toBeGreaterThan(0.9);
    expect(r.grid[1][0]).toBeGreaterThan(0.9);
    expect(Math.abs(r.grid[0][1])).toBeLessThan(0.1);
    expect(Math.abs(r.grid[1][1])).toBeLessThan(0.1);
    const pos = r.positions!;
    expect(pos[0][0][2]).toBeGreaterThan(0.9);
    expect(Math.abs(pos[0][0][3])).toBeLessThan(0.1);
    expect(pos[1][0][3]).toBeGreaterThan(0.9);
    expect(Math.abs(pos[1][0][2])).toBeLessThan(0.1);
    const noise = P.activationPatching(model, pr, { direction: 'noise' });
    expect(noise.grid[0][0]).toBeGreaterThan(0.9);
    expect(Math.abs(noise.grid[0][1])).toBeLessThan(0.1);
    expect(() => P.activationPatching(model, pr, { direction: 'sideways' as 'noise' })).toThrow(
      /activationPatching: direction must be 'denoise' or 'noise', got 'sideways'/,
    );
    tf.dispose([clean, pr.clean, pr.corrupted]);
    model.dispose();
  });

  it('path patching: L0H0 -> L1H0 values carries the gap; L0H0 -> logits and L0H1 -> L1H0 do not', () => {
    const model = handBuilt();
    const pr = pair();
    const toV = P.pathPatching(model, pr, { layer: 0, head: 0 }, { receivers: [{ layer: 1, head: 0 }], inputs: ['v'] });
    const toQ = P.pathPatching(model, pr, { layer: 0, head: 0 }, { receivers: [{ layer: 1, head: 0 }], inputs: ['q'] });
    const direct = P.pathPatching(model, pr, { layer: 0, head: 0 }, { receivers: 'logits' });
    const other = P.pathPatching(model, pr, { layer: 0, head: 1 }, { receivers: [{ layer: 1, head: 0 }] });
    expect(toV).toBeGreaterThan(0.9);
    expect(Math.abs(toQ)).toBeLessThan(0.1);
    expect(Math.abs(direct)).toBeLessThan(0.1);
    expect(Math.abs(other)).toBeLessThan(0.1);
    const logitsGrid = P.pathPatchingGrid(model, pr, { receivers: 'logits' });
    expect(logitsGrid[1][0]).toBeGreaterThan(0.9); // L1H0 writes the answer directly
    expect(() => P.pathPatching(model, pr, { layer: 1, head: 0 }, { receivers: [{ layer: 0, head: 0 }] })).toThrow(
      /pathPatching: a receiver must be in a later layer than the sender \(layer 1\), got layer 0/,
    );
    tf.dispose([pr.clean, pr.corrupted]);
    model.dispose();
  });

  it('mean ablation of L1H0 removes the answer, of L1H1 changes nothing; DLA puts the logit difference on L1H0', () => {
    const model = handBuilt();
    const pr = pair();
    const means = P.meanHeadOutputs(model, pr.clean);
    const base = model.forward(pr.clean);
    const ablated = P.meanAblate(model, pr.clean, [{ layer: 1, head: 0 }], means);
    const other = P.meanAblate(
      model,
      pr.clean,
      [
        { layer: 1, head: 1 },
        { layer: 0, head: 1 },
      ],
      means,
    );
    const m = (x: number[]) => x.reduce((a, v) => a + v, 0) / x.length;
    const ld = m(P.logitDiffs(base, pr.correct, pr.wrong));
    expect(Math.abs(m(P.logitDiffs(ablated, pr.correct, pr.wrong)))).toBeLessThan(0.1 * ld);
    expectClose(P.logitDiffs(other, pr.correct, pr.wrong), P.logitDiffs(base, pr.correct, pr.wrong), {
      atol: 0.05 * ld,
      rtol: 0,
    });
    const dla = P.directLogitAttribution(model, P.dlaWeights(model), pr.clean, pr.correct, pr.wrong);
    expect(dla.heads[1][0]).toBeGreaterThan(0.9 * ld);
    for (const [l, h] of [
      [0, 0],
      [0, 1],
      [1, 1],
    ])
      expect(Math.abs(dla.heads[l][h])).toBeLessThan(0.05 * ld);
    tf.dispose([base, ablated, other, ...means, pr.clean, pr.corrupted]);
    model.dispose();
  });

  it('DLA: the heads of a layer sum to that layer attention output’s direct effect (random ToyLM)', () => {
    const model = new ToyLM({ vocab: 9, dModel: 12, heads: 3, layers: 2, maxLen: 5, seed: 4 });
    const tokens = tf.tensor2d([1, 2, 3, 4, 5, 8, 7, 6, 5, 4], [2, 5], 'int32');
    const correct = [3, 2];
    const wrong = [5, 7];
    const w = P.dlaWeights(model);
    const dla = P.directLogitAttribution(model, w, tokens, correct, wrong);
    const { logits, cache } = P.runAndRecord(model, tokens, /hook_attn_out$|blocks\.1\.hook_resid_post$/);
    const expected = tf.tidy(() => {
      const resid = cache.get('blocks.1.hook_resid_post').slice([0, 4, 0], [2, 1, 12]).squeeze([1]);
      const c = resid.sub(resid.mean(-1, true));
      const scale = c.square().mean(-1).add(1e-5).sqrt();
      const U = w.unembed;
      const dir = tf
        .gather(U, tf.tensor1d(correct, 'int32'), 1)
        .sub(tf.gather(U, tf.tensor1d(wrong, 'int32'), 1))
        .transpose();
      return [0, 1].map((l) => {
        const a = cache.get(`blocks.${l}.hook_attn_out`).slice([0, 4, 0], [2, 1, 12]).squeeze([1]);
        return a.sub(a.mean(-1, true)).div(scale.expandDims(1)).mul(w.lnGamma).mul(dir).sum(-1).arraySync() as number[];
      });
    });
    for (const l of [0, 1])
      for (let b = 0; b < 2; b++) expect(dla.perRow[l][b].reduce((a, v) => a + v, 0)).toBeCloseTo(expected[l][b], 4);
    tf.dispose([logits, tokens]);
    cache.dispose();
    model.dispose();
  });

  it('pattern edits: the identity edit changes nothing; sending L0H0 to BOS makes the model answer BOS', () => {
    const model = handBuilt();
    const pr = pair();
    const base = model.forward(pr.clean);
    const same = P.runWithHooks(
      model,
      pr.clean,
      P.patternEditHooks(model, [{ layer: 0, head: 0, edit: (a) => a.clone() }]),
    );
    expectClose(same, base, { atol: 1e-4 }, 'identity edit');
    const toBos = P.patternEditHooks(model, [
      {
        layer: 0,
        head: 0,
        edit: (a) => {
          const [b, s, t] = a.shape;
          return tf.oneHot(tf.zeros([b, s], 'int32'), t).toFloat() as tf.Tensor3D;
        },
      },
    ]);
    const edited = P.runWithHooks(model, pr.clean, toBos);
    expect(
      P.argmaxHits(
        edited,
        Array.from(pr.correct, () => BOS),
      ).every((h) => h === 1),
    ).toBe(true);
    tf.dispose([base, same, edited, pr.clean, pr.corrupted]);
    model.dispose();
  });

  it('low-rank QK: full rank keeps the logits; errors name the function and the argument', () => {
    const model = handBuilt();
    const pr = pair();
    const base = model.forward(pr.clean);
    const eye = tf.eye(HD);
    const full = P.runWithHooks(model, pr.clean, P.lowRankQKHooks([{ layer: 1, head: 0, q: eye, k: eye }]));
    expectClose(full, base, { atol: 1e-4 }, 'full-rank projection');
    expect(() => P.patchHeadSlice(tf.zeros([2, 3, 4]), tf.zeros([2, 3, 4]), [0])).toThrow(
      /patchHeadSlice: z must have rank 4 \[batch, head, pos, dim\], got shape \[2,3,4\]/,
    );
    expect(() => P.patchHeadSlice(tf.zeros([1, 2, 3, 4]), tf.zeros([1, 2, 3, 4]), [2])).toThrow(
      /patchHeadSlice: heads must be in \[0, 2\), got 2/,
    );
    expect(() => P.meanAblate(model, pr.clean, [{ layer: 5, head: 0 }], [])).toThrow(
      /meanAblate: layer must be in \[0, 2\), got 5/,
    );
    expect(() => P.logitDiffs(base, [1], [2])).toThrow(
      /logitDiffs: correct and wrong must have one token per row \(6\), got 1 and 1/,
    );
    tf.dispose([base, full, eye, pr.clean, pr.corrupted]);
    model.dispose();
  });

  it('leaks no tensors (building the model, patching, path patching, DLA, pattern edits)', () => {
    const start = tf.memory().numTensors;
    handBuilt().dispose();
    expect(tf.memory().numTensors, 'handBuiltCopier').toBe(start);
    const model = handBuilt();
    const pr = pair();
    const w = P.dlaWeights(model);
    expectNoLeak(() => {
      P.activationPatching(model, pr, { perPosition: true });
      P.pathPatching(model, pr, { layer: 0, head: 0 }, { receivers: [{ layer: 1, head: 0 }] });
      P.pathPatching(model, pr, { layer: 0, head: 0 }, { receivers: 'logits' });
      P.directLogitAttribution(model, w, pr.clean, pr.correct, pr.wrong);
      const means = P.meanHeadOutputs(model, pr.clean);
      tf.dispose([P.meanAblate(model, pr.clean, [{ layer: 1, head: 0 }], means), ...means]);
      const e = P.patternEditHooks(model, [{ layer: 0, head: 1, edit: (a) => a.mul(1) as tf.Tensor3D }]);
      P.runWithHooks(model, pr.clean, e).dispose();
    }, 2);
    expect(model.hooks.size).toBe(0);
    tf.dispose([pr.clean, pr.corrupted]);
    model.dispose();
  });
});

const f32 = (a: ArrayLike<number>) => Float32Array.from(a);

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

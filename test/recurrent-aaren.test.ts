/** Aaren (Feng et al. 2024): the (m, u, w) scan, its step form, the sequence models, the time-series data, the experiment. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { multiSineTask, WAVEFORMS, waveformTask } from '../lib/data/time-series.js';
import { runExperimentWith } from '../lib/experiments/contract.js';
import {
  aarenExperiment,
  aarenInitState,
  aarenScan,
  aarenScanReference,
  aarenStateBytes,
  aarenStep,
  causalSingleQueryAttention,
  causalSingleQueryReference,
  disposeAarenState,
  type ScanDims,
  SequenceModel,
} from '../lib/papers/recurrent/aaren/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

function inputs(dims: ScanDims, seed: number, scoreScale = 4) {
  const { b, h, n, e } = dims;
  return { s: randomArray(b * h * n, seed, scoreScale), v: randomArray(b * h * n * e, seed + 1, 1) };
}

function tensors(dims: ScanDims, x: ReturnType<typeof inputs>) {
  const { b, h, n, e } = dims;
  return { s: tf.tensor3d(Float32Array.from(x.s), [b, h, n]), v: tf.tensor4d(Float32Array.from(x.v), [b, h, n, e]) };
}

describe.each(BACKENDS)('aarenScan on %s', (name) => {
  it('equals causal single-query softmax attention (float64 reference) at lengths 1, 2, 5, 8 and 37', async () => {
    await useBackend(name);
    for (const n of [1, 2, 5, 8, 37]) {
      const dims = { b: 2, h: 3, n, e: 4 };
      const x = inputs(dims, n);
      const t = tensors(dims, x);
      const ref = causalSingleQueryReference(x.s, x.v, dims);
      const o = aarenScan(t.s, t.v);
      expect(o.shape).toEqual([2, 3, n, 4]);
      expectClose(o, ref, { rtol: 1e-4, atol: 1e-5 }, `scan n=${n}`);
      const dense = causalSingleQueryAttention(t.s, t.v);
      expectClose(dense, ref, { rtol: 1e-4, atol: 1e-5 }, `dense n=${n}`);
      tf.dispose([o, dense, t.s, t.v]);
    }
  });

  it('is stable for large scores (the running max keeps every exponent <= 0)', async () => {
    await useBackend(name);
    const dims = { b: 1, h: 1, n: 20, e: 2 };
    const x = inputs(dims, 4, 200);
    const t = tensors(dims, x);
    const o = aarenScan(t.s, t.v);
    expectClose(o, causalSingleQueryReference(x.s, x.v, dims), { rtol: 1e-4, atol: 1e-5 }, 'large scores');
    tf.dispose([o, t.s, t.v]);
  });

  it('is causal: a later token changes no earlier output', async () => {
    await useBackend(name);
    const dims = { b: 1, h: 2, n: 9, e: 3 };
    const x = inputs(dims, 8);
    const y = { s: x.s.slice(), v: x.v.slice() };
    for (let hh = 0; hh < 2; hh++) {
      y.s[hh * 9 + 6] += 5;
      for (let c = 0; c < 3; c++) y.v[(hh * 9 + 6) * 3 + c] -= 3;
    }
    const [a, b] = [tensors(dims, x), tensors(dims, y)];
    const [oa, ob] = [aarenScan(a.s, a.v).arraySync(), aarenScan(b.s, b.v).arraySync()];
    for (let hh = 0; hh < 2; hh++)
      for (let t = 0; t < 9; t++) {
        const diff = Math.max(...oa[0][hh][t].map((z, c) => Math.abs(z - ob[0][hh][t][c])));
        if (t < 6) expect(diff).toBe(0);
        else expect(diff).toBeGreaterThan(1e-4);
      }
    tf.dispose([a.s, a.v, b.s, b.v]);
  });

  it('the O(1) step equals the scan token by token; its state stays (2 + e)·b·h float32 values', async () => {
    await useBackend(name);
    const dims = { b: 2, h: 2, n: 11, e: 3 };
    const x = inputs(dims, 12);
    const t = tensors(dims, x);
    const scan = aarenScan(t.s, t.v);
    let st = aarenInitState(2, 2, 3);
    const outs: tf.Tensor[] = [];
    for (let i = 0; i < dims.n; i++) {
      const si = tf.tidy(() => t.s.slice([0, 0, i], [2, 2, 1]).squeeze([2])) as tf.Tensor2D;
      const vi = tf.tidy(() => t.v.slice([0, 0, i, 0], [2, 2, 1, 3]).squeeze([2])) as tf.Tensor3D;
      const r = aarenStep(st, si, vi);
      disposeAarenState(st);
      st = r.state;
      expect(aarenStateBytes(st)).toBe((2 + 3) * 2 * 2 * 4);
      outs.push(r.out);
      tf.dispose([si, vi]);
    }
    const stepped = tf.stack(outs, 2);
    expectClose(stepped, scan, { rtol: 1e-4, atol: 1e-5 }, 'step vs scan');
    tf.dispose([stepped, scan, t.s, t.v, ...outs]);
    disposeAarenState(st);
  });

  it('leaks no tensors (scan, dense, step, both sequence models forward and streamed)', async () => {
    await useBackend(name);
    const dims = { b: 1, h: 2, n: 6, e: 2 };
    const t = tensors(dims, inputs(dims, 2));
    const models = (['aaren', 'transformer'] as const).map(
      (kind) => new SequenceModel({ kind, inputDim: 1, outputDim: 3, dModel: 8, heads: 2, layers: 2, seed: 0 }),
    );
    const x = tf.randomNormal([2, 5, 1], 0, 1, 'float32', 3) as tf.Tensor3D;
    const x0 = tf.tidy(() => x.slice([0, 0, 0], [2, 1, 1])) as tf.Tensor3D;
    expectNoLeak(() => {
      tf.dispose([aarenScan(t.s, t.v), causalSingleQueryAttention(t.s, t.v)]);
      const st = aarenInitState(1, 2, 2);
      const si = tf.tidy(() => t.s.slice([0, 0, 0], [1, 2, 1]).squeeze([2])) as tf.Tensor2D;
      const vi = tf.tidy(() => t.v.slice([0, 0, 0, 0], [1, 2, 1, 2]).squeeze([2])) as tf.Tensor3D;
      const r = aarenStep(st, si, vi);
      disposeAarenState(st);
      disposeAarenState(r.state);
      tf.dispose([si, vi, r.out]);
      for (const m of models) {
        tf.dispose(m.forward(x));
        let s = m.initStream(2);
        for (let i = 0; i < 2; i++) {
          const q = m.step(s, x0);
          s = q.state;
          q.out.dispose();
        }
        m.disposeStream(s);
      }
    });
    for (const m of models) m.dispose();
    tf.dispose([t.s, t.v, x, x0]);
  });
});

describe('aarenScan gradients and the float64 scan', () => {
  it('gradients for s and v match central differences of the float64 reference', async () => {
    await useBackend('cpu');
    const dims = { b: 1, h: 2, n: 7, e: 2 };
    const x = inputs(dims, 31, 2);
    const w = randomArray(dims.b * dims.h * dims.n * dims.e, 77, 1);
    const t = tensors(dims, x);
    const wt = tf.tensor4d(Float32Array.from(w), [1, 2, 7, 2]);
    const [gs, gv] = tf.grads((s, v) =>
      aarenScan(s as tf.Tensor3D, v as tf.Tensor4D)
        .mul(wt)
        .sum(),
    )([t.s, t.v]);
    const loss = () => causalSingleQueryReference(x.s, x.v, dims).reduce((a, o, i) => a + o * w[i], 0);
    expectClose(gs, numericGrad(loss, x.s), { rtol: 1e-3, atol: 1e-4 }, 'ds');
    expectClose(gv, numericGrad(loss, x.v), { rtol: 1e-3, atol: 1e-4 }, 'dv');
    tf.dispose([gs, gv, t.s, t.v, wt]);
  });

  it('the float64 Hillis-Steele scan equals the direct softmax to rounding (1e-12)', () => {
    const dims = { b: 2, h: 1, n: 100, e: 3 };
    const x = inputs(dims, 5, 30);
    const a = aarenScanReference(x.s, x.v, dims);
    const b = causalSingleQueryReference(x.s, x.v, dims);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).toBeLessThan(1e-12);
  });

  it('errors name the function, the argument, the expected and the actual value', async () => {
    await useBackend('cpu');
    const s = tf.zeros([1, 2, 3]) as tf.Tensor3D;
    const v = tf.zeros([1, 2, 4, 2]) as tf.Tensor4D;
    expect(() => aarenScan(s, v)).toThrow(
      /aarenScan: v must have shape \[1, 2, 3, e\] to match s \[1,2,3\], got \[1,2,4,2\]/,
    );
    expect(() => aarenScan(tf.zeros([3]) as unknown as tf.Tensor3D, v)).toThrow(
      /aarenScan: s must have shape \[batch, heads, n\], got \[3\]/,
    );
    const st = aarenInitState(1, 2, 2);
    expect(() => aarenStep(st, tf.zeros([1, 3]) as tf.Tensor2D, tf.zeros([1, 2, 2]) as tf.Tensor3D)).toThrow(
      /aarenStep: s must have shape \[1, 2\] to match the state, got \[1,3\]/,
    );
    expect(() => aarenInitState(0, 1, 1)).toThrow(/aarenInitState: b must be an integer > 0, got 0/);
    expect(() => causalSingleQueryReference([1, 2], [1], { b: 1, h: 1, n: 2, e: 1 })).toThrow(
      /causalSingleQueryReference: v has 1 values, expected b·h·n·e = 2/,
    );
    expect(
      () => new SequenceModel({ kind: 'aaren', inputDim: 1, outputDim: 1, dModel: 10, heads: 3, layers: 1, seed: 0 }),
    ).toThrow(/SequenceModel: dModel must be a multiple of heads, got dModel 10 and heads 3/);
    disposeAarenState(st);
    tf.dispose([s, v]);
  });
});

describe('SequenceModel', () => {
  it('streaming equals the parallel forward for Aaren and the Transformer; Aaren has layers·(m² − m) fewer params', async () => {
    await useBackend('cpu');
    const x = tf.randomNormal([2, 9, 1], 0, 1, 'float32', 5) as tf.Tensor3D;
    const counts: number[] = [];
    for (const kind of ['aaren', 'transformer'] as const) {
      const m = new SequenceModel({ kind, inputDim: 1, outputDim: 3, dModel: 8, heads: 2, layers: 2, seed: 1 });
      counts.push(m.paramCount());
      const full = m.forward(x);
      let st = m.initStream(2);
      const outs: tf.Tensor[] = [];
      for (let t = 0; t < 9; t++) {
        const xt = x.slice([0, t, 0], [2, 1, 1]) as tf.Tensor3D;
        const r = m.step(st, xt);
        st = r.state;
        outs.push(r.out);
        xt.dispose();
      }
      const s = tf.concat(outs, 1);
      expectClose(s, full, { rtol: 1e-4, atol: 1e-5 }, `${kind} stream vs forward`);
      // causal: the first 4 outputs do not depend on the later inputs
      const x2 = tf.tidy(() => tf.concat([x.slice([0, 0, 0], [2, 4, 1]), x.slice([0, 4, 0], [2, 5, 1]).mul(-3)], 1));
      const f2 = m.forward(x2 as tf.Tensor3D);
      expectClose(f2.slice([0, 0, 0], [2, 4, 3]), full.slice([0, 0, 0], [2, 4, 3]), { atol: 1e-6 }, `${kind} causal`);
      m.disposeStream(st);
      tf.dispose([full, s, x2, f2, ...outs]);
      m.dispose();
    }
    expect(counts[1] - counts[0]).toBe(2 * (8 * 8 - 8));
    x.dispose();
  });
});

describe('time-series data', () => {
  it('multiSineTask: layout, reproducible per seed and split, splits disjoint, noise as configured', () => {
    const a = multiSineTask({ batch: 4, context: 10, horizon: 3, seed: 1, split: 'train' });
    const b = multiSineTask({ batch: 4, context: 10, horizon: 3, seed: 1, split: 'train' });
    const c = multiSineTask({ batch: 4, context: 10, horizon: 3, seed: 1, split: 'test' });
    expect(a.series.length).toBe(52);
    expect(Array.from(a.series)).toEqual(Array.from(b.series));
    expect(a.series[0]).not.toBe(c.series[0]);
    const big = multiSineTask({ batch: 200, context: 50, horizon: 10, noiseStd: 0.2, seed: 2 });
    let v = 0;
    for (let i = 0; i < big.series.length; i++) v += (big.series[i] - big.clean[i]) ** 2;
    expect(Math.sqrt(v / big.series.length)).toBeCloseTo(0.2, 1);
    const t = a.toTensors();
    expect(t.inputs.shape).toEqual([4, 10, 1]);
    expect(t.targets.shape).toEqual([4, 3]);
    expect(t.targets.dataSync()[0]).toBeCloseTo(a.series[10], 5);
    tf.dispose([t.inputs, t.targets]);
    expect(() => multiSineTask({ batch: 0, context: 1, horizon: 1, seed: 0 })).toThrow(
      /multiSineTask: batch must be an integer > 0, got 0/,
    );
    expect(() => multiSineTask({ batch: 1, context: 1, horizon: 1, seed: 0, minPeriod: 1 })).toThrow(/minPeriod 1/);
  });

  it('waveformTask: every class appears, noise-free shapes are the documented waves, splits differ', () => {
    const d = waveformTask({ batch: 400, length: 12, noiseStd: 0, seed: 3 });
    const counts = new Array(WAVEFORMS.length).fill(0);
    for (const l of d.labels) counts[l]++;
    for (const c of counts) expect(c).toBeGreaterThan(60);
    for (let r = 0; r < d.batch; r++) {
      const row = Array.from(d.series.subarray(r * 12, (r + 1) * 12));
      const amp = Math.max(...row.map(Math.abs));
      expect(amp).toBeLessThanOrEqual(1.5 + 1e-12);
      if (WAVEFORMS[d.labels[r]] === 'square')
        for (const x of row) expect(Math.abs(Math.abs(x) - amp)).toBeLessThan(1e-12);
    }
    const e = waveformTask({ batch: 5, length: 12, seed: 3, split: 'validation' });
    const f = waveformTask({ batch: 5, length: 12, seed: 3, split: 'test' });
    expect(e.series[0]).not.toBe(f.series[0]);
    expect(() => waveformTask({ batch: 1, length: 3, seed: 0, split: 'dev' as 'test' })).toThrow(
      /waveformTask: split must be 'train', 'validation' or 'test', got "dev"/,
    );
  });
});

describe('experiment aaren', () => {
  it('runs tiny: scan errors, both tasks, constant Aaren memory and a growing KV cache, stream = parallel', async () => {
    await useBackend('wasm');
    const r = await runExperimentWith(aarenExperiment, {
      quick: true,
      overrides: {
        scanLengths: [8, 64],
        dModel: 8,
        forecastSteps: 4,
        classifySteps: 4,
        batch: 8,
        context: 12,
        horizon: 3,
        classifyLength: 12,
        trainRows: 64,
        validationRows: 16,
        testRows: 16,
        streamTokens: 6,
        forecastNoise: 0,
      },
    });
    const m = r.metrics;
    expect(m.test_scan_max_abs_error_float64).toBeLessThan(1e-12);
    expect(m.test_scan_max_abs_error_float32).toBeLessThan(1e-5);
    expect(m.test_stream_bytes_aaren_last).toBe(m.test_stream_bytes_aaren_first);
    expect(m.test_stream_bytes_aaren_first).toBe(2 * (2 + 4) * 2 * 4); // layers · (2 + d) · heads · 4 bytes
    // the KV cache keeps 2 (k, v) · layers · dModel float32 per token
    expect(m.test_stream_bytes_transformer_last - m.test_stream_bytes_transformer_first).toBe(5 * 2 * 2 * 8 * 4);
    expect(m.test_stream_max_abs_diff_aaren).toBeLessThan(1e-4);
    expect(m.test_stream_max_abs_diff_transformer).toBeLessThan(1e-4);
    for (const k of ['aaren', 'transformer']) {
      expect(Number.isFinite(m[`test_forecast_mse_${k}`])).toBe(true);
      expect(m[`test_classify_accuracy_${k}`]).toBeGreaterThanOrEqual(0);
    }
    expect(r.tables?.memory).toHaveLength(6);
    // noise-free smooth series: one linear map from the context (fitted on 64 rows) already beats repeating the last value
    expect(m.test_forecast_mse_linear_ar).toBeLessThan(0.5 * m.test_forecast_mse_repeat_last);
    expect(r.summary).toMatch(/scan equals causal single-query softmax attention/);
    await expect(runExperimentWith(aarenExperiment, { quick: true, overrides: { lrs: [] } })).rejects.toThrow(
      /config\.lrs must have length >= 1, got 0 items/,
    );
  }, 60_000);
});

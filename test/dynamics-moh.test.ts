import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runExperimentWith } from '../lib/experiments/contract.js';
import { attentionForward, ToyLM, type ToyLMConfig, TransformerBlock } from '../lib/layers/index.js';
import {
  headUsage,
  type MohAttentionConfig,
  type MohWeights64,
  mohAttention,
  mohAttentionReference,
  mohExperiment,
  mohGates,
  topKMask,
} from '../lib/papers/dynamics/moh/index.js';
import { BACKENDS, expectClose, expectNoLeak, numericGrad, randomArray, useBackend } from './helpers.js';

const [B, T, M, H] = [2, 5, 16, 8];
const D = M / H;
const CFG: MohAttentionConfig = { heads: H, shared: 2, routed: 6, topK: 4 };

/** Random float64 weights; the router's scale keeps its probabilities well apart (no near-ties). */
function weights64(cfg: MohAttentionConfig, seed: number, routerScale = 1.5): MohWeights64 {
  const w: MohWeights64 = {
    wq: randomArray(M * H * D, seed + 1, 0.5),
    wk: randomArray(M * H * D, seed + 2, 0.5),
    wv: randomArray(M * H * D, seed + 3, 0.5),
    wo: randomArray(H * D * M, seed + 4, 0.5),
    wr: randomArray(M * cfg.routed, seed + 5, routerScale),
  };
  if (cfg.shared > 1) w.ws = randomArray(M * cfg.shared, seed + 6, routerScale);
  if (cfg.shared > 0) w.wh = randomArray(M * 2, seed + 7, routerScale);
  return w;
}

function toTensors(w: MohWeights64, cfg: MohAttentionConfig) {
  const t = (a: ArrayLike<number>, r: number, c: number) => tf.tensor2d(Array.from(a), [r, c]);
  return {
    wq: t(w.wq, M, H * D),
    wk: t(w.wk, M, H * D),
    wv: t(w.wv, M, H * D),
    wo: t(w.wo, H * D, M),
    router: {
      wr: t(w.wr, M, cfg.routed),
      ws: w.ws ? t(w.ws, M, cfg.shared) : undefined,
      wh: w.wh ? t(w.wh, M, 2) : undefined,
    },
  };
}

const disposeWeights = (w: ReturnType<typeof toTensors>) =>
  tf.dispose([
    w.wq,
    w.wk,
    w.wv,
    w.wo,
    w.router.wr,
    ...(w.router.ws ? [w.router.ws] : []),
    ...(w.router.wh ? [w.router.wh] : []),
  ]);

describe.each(BACKENDS)('MoH attention on %s', (backendName) => {
  beforeAll(async () => useBackend(backendName));

  it.each([
    ['2 shared + 6 routed, top-4', CFG],
    ['1 shared + 7 routed, top-3', { heads: H, shared: 1, routed: 7, topK: 3 }],
    ['no shared, 8 routed, top-5', { heads: H, shared: 0, routed: 8, topK: 5 }],
  ] as [string, MohAttentionConfig][])('%s: output, gates and balance loss match the float64 reference', (_n, cfg) => {
    const x = randomArray(B * T * M, 11);
    const w = weights64(cfg, 20);
    const ref = mohAttentionReference(x, [B, T, M], w, cfg);
    const tw = toTensors(w, cfg);
    const xt = tf.tensor3d(Array.from(x), [B, T, M]);
    const out = mohAttention(xt, tw, cfg);
    expectClose(out.output, ref.output, { rtol: 1e-4, atol: 1e-5 }, 'output');
    expectClose(out.gates, ref.gates, { rtol: 1e-4, atol: 1e-6 }, 'gates');
    expectClose([out.balance.dataSync()[0]], [ref.balance], { rtol: 1e-5 }, 'balance');
    // Exactly shared + topK heads are active on every token.
    const active = tf.tidy(() => out.gates.greater(0).toFloat().sum(-1).dataSync());
    expect(Array.from(active)).toEqual(new Array(B * T).fill(cfg.shared + cfg.topK));
    tf.dispose([xt, out.output, out.gates, out.balance]);
    disposeWeights(tw);
  });

  it('gradients through the top-K router match central differences of the float64 reference', () => {
    const x = randomArray(B * T * M, 31);
    const w = weights64(CFG, 40);
    const R = randomArray(B * T * M, 50); // a random readout of the output
    const objective = () => {
      const r = mohAttentionReference(x, [B, T, M], w, CFG);
      let acc = 0.3 * r.balance;
      for (let i = 0; i < R.length; i++) acc += r.output[i] * R[i];
      return acc;
    };
    const tw = toTensors(w, CFG);
    const xt = tf.tensor3d(Array.from(x), [B, T, M]);
    const Rt = tf.tensor3d(Array.from(R), [B, T, M]);
    const vars = { x: xt, wq: tw.wq, wv: tw.wv, wr: tw.router.wr, ws: tw.router.ws!, wh: tw.router.wh! };
    const names = Object.keys(vars) as (keyof typeof vars)[];
    const grads = tf.grads((...args: tf.Tensor[]) => {
      const [xa, wq, wv, wr, ws, wh] = args;
      const o = mohAttention(xa as tf.Tensor3D, { ...tw, wq, wv, router: { wr, ws, wh } }, CFG);
      return o.output.mul(Rt).sum().add(o.balance.mul(0.3));
    })(names.map((k) => vars[k]));
    const arrays: Record<string, Float64Array | number[]> = {
      x,
      wq: w.wq as Float64Array,
      wv: w.wv as Float64Array,
      wr: w.wr as Float64Array,
      ws: w.ws as Float64Array,
      wh: w.wh as Float64Array,
    };
    names.forEach((k, i) => {
      const num = numericGrad(objective, arrays[k], 1e-5);
      expectClose(grads[i], num, { rtol: 2e-3, atol: 2e-4 }, `d/d${k}`);
    });
    // The router gets a real gradient (through the gates and the balance loss), not zeros.
    expect(Math.max(...Array.from(grads[3].abs().dataSync()))).toBeGreaterThan(1e-4);
    tf.dispose([xt, Rt, ...grads]);
    disposeWeights(tw);
  });

  it('top-K breaks ties toward the lower index, identically on every backend', () => {
    const p = tf.tensor2d([
      [0.3, 0.3, 0.2, 0.2],
      [0.25, 0.25, 0.25, 0.25],
      [0.1, 0.4, 0.4, 0.1],
      [0.1, 0.2, 0.3, 0.4],
    ]);
    const m = topKMask(p, 3);
    expect(Array.from(m.dataSync())).toEqual([1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1]);
    // All-equal router logits (zero router weights): the first K routed heads win, as in the reference.
    const x = randomArray(B * T * M, 61);
    const w = { ...weights64(CFG, 70), wr: new Float64Array(M * CFG.routed) };
    const ref = mohAttentionReference(x, [B, T, M], w, CFG);
    const tw = toTensors(w, CFG);
    const xt = tf.tensor3d(Array.from(x), [B, T, M]);
    const out = mohAttention(xt, tw, CFG);
    expectClose(out.gates, ref.gates, { rtol: 1e-4, atol: 1e-6 }, 'tied gates');
    expect(Array.from(tf.tidy(() => out.gates.greater(0).toFloat().mean([0, 1]).dataSync()))).toEqual([
      1, 1, 1, 1, 1, 1, 0, 0,
    ]);
    tf.dispose([p, m, xt, out.output, out.gates, out.balance]);
    disposeWeights(tw);
  });

  it('with topK = routed and uniform router logits every gate is 1: MoH is multi-head attention', () => {
    const cfg: MohAttentionConfig = { heads: H, shared: 2, routed: 6, topK: 6 };
    const w = {
      ...weights64(cfg, 80),
      wr: new Float64Array(M * 6),
      ws: new Float64Array(M * 2),
      wh: new Float64Array(M * 2),
    };
    const tw = toTensors(w, cfg);
    const xt = tf.tensor3d(Array.from(randomArray(B * T * M, 81)), [B, T, M]);
    const out = mohAttention(xt, tw, cfg);
    const mha = attentionForward({ wq: tw.wq, wk: tw.wk, wv: tw.wv, wo: tw.wo }, xt, null, {
      dModel: M,
      heads: H,
      causal: true,
    });
    expectClose(out.gates, new Float32Array(B * T * H).fill(1), { rtol: 1e-6, atol: 1e-6 }, 'gates');
    expectClose(out.output, mha, { rtol: 1e-5, atol: 1e-6 }, 'MoH = MHA');
    tf.dispose([xt, out.output, out.gates, out.balance, mha]);
    disposeWeights(tw);
  });

  it('is causal: changing a later token leaves earlier outputs and gates unchanged', () => {
    const w = toTensors(weights64(CFG, 90), CFG);
    const x = randomArray(B * T * M, 91);
    const a = tf.tensor3d(Array.from(x), [B, T, M]);
    for (let i = 3 * M; i < 4 * M; i++) x[i] += 1; // batch 0, position 3
    const b = tf.tensor3d(Array.from(x), [B, T, M]);
    const [oa, ob] = [mohAttention(a, w, CFG), mohAttention(b, w, CFG)];
    const first = (t: tf.Tensor, n: number) => t.slice([0, 0, 0], [1, 3, n]);
    expectClose(first(ob.output, M), first(oa.output, M), { rtol: 0, atol: 1e-7 }, 'outputs before position 3');
    expectClose(first(ob.gates, H), first(oa.gates, H), { rtol: 0, atol: 1e-7 }, 'gates before position 3');
    expect(tf.tidy(() => ob.output.sub(oa.output).abs().max().dataSync()[0])).toBeGreaterThan(1e-4);
    tf.dispose([a, b, oa.output, oa.gates, oa.balance, ob.output, ob.gates, ob.balance]);
    disposeWeights(w);
  });

  it('leaks no tensors (forward, gradients, top-K mask)', () => {
    const w = toTensors(weights64(CFG, 100), CFG);
    const x = tf.tensor3d(Array.from(randomArray(B * T * M, 101)), [B, T, M]);
    expectNoLeak(() => {
      const o = mohAttention(x, w, CFG);
      tf.dispose([o.output, o.gates, o.balance]);
      const g = tf.grad((xa: tf.Tensor) => {
        const r = mohAttention(xa, w, CFG);
        return r.output.sum().add(r.balance);
      })(x);
      g.dispose();
    });
    tf.dispose(x);
    disposeWeights(w);
  });

  it('rejects bad input with the function, the argument and the shapes named', () => {
    const w = toTensors(weights64(CFG, 110), CFG);
    const x = tf.zeros([B, T, M]);
    expect(() => mohGates(x, { ...w.router, wr: tf.zeros([M, 5]) }, { kind: 'moh', ...CFG })).toThrow(
      'mohGates: router.wr must have shape [16, 6], got [16,5]',
    );
    expect(() => mohGates(x, { wr: w.router.wr }, { kind: 'moh', ...CFG })).toThrow(
      'mohGates: router.ws must have shape [16, 2], got nothing',
    );
    expect(() => mohAttention(tf.zeros([T, M]), w, CFG)).toThrow(
      'mohAttention: x must have shape [batch, positions, dModel], got [5,16]',
    );
    expect(() => headUsage(tf.zeros([2, 3]))).toThrow(
      'headUsage: gates must have shape [batch, positions, heads], got [2,3]',
    );
    tf.dispose(x);
    disposeWeights(w);
  });
});

const lmBase: ToyLMConfig = { vocab: 11, dModel: 16, heads: 8, layers: 2, maxLen: 12, seed: 3 };
const MOH = { kind: 'moh' as const, shared: 2, routed: 6, topK: 4 };
const toks = (b: number, s: number, seed: number) =>
  tf.tensor2d(
    Array.from({ length: b * s }, (_, i) => (i * 7 + seed * 13 + ((i * i) % 5)) % 11),
    [b, s],
    'int32',
  );

describe.each(BACKENDS)('MoH in ToyLM and TransformerBlock on %s', (backendName) => {
  beforeAll(async () => useBackend(backendName));

  it('ToyLM.loss adds balanceWeight x the mean load-balance loss, and training reaches the router', () => {
    const lm = new ToyLM({ ...lmBase, attention: { ...MOH, balanceWeight: 0.5 } });
    const inputs = toks(2, 8, 1);
    const targets = toks(2, 8, 2);
    const { logits, balance } = lm.forwardWithAux(inputs);
    const ce = tf.tidy(() =>
      tf.logSoftmax(logits).mul(tf.oneHot(targets.flatten(), 11).reshape(logits.shape)).sum(-1).mean().neg(),
    );
    const loss = lm.loss(inputs, targets);
    expect(balance.dataSync()[0]).toBeGreaterThanOrEqual(MOH.topK - 1e-4); // E·Σ P_i f_i >= K, = K when balanced
    expectClose(loss, [ce.dataSync()[0] + 0.5 * balance.dataSync()[0]], { rtol: 1e-5 }, 'loss = CE + 0.5 balance');
    const vars = lm.variables();
    const { grads } = tf.variableGrads(() => lm.loss(inputs, targets), vars);
    const router = lm.trainableWeights.filter((w) => w.originalName.includes('router'));
    expect(router.map((w) => w.originalName)).toEqual([
      'blocks.0.attn.router.wr',
      'blocks.0.attn.router.ws',
      'blocks.0.attn.router.wh',
      'blocks.1.attn.router.wr',
      'blocks.1.attn.router.ws',
      'blocks.1.attn.router.wh',
    ]);
    for (const w of router) {
      const g = grads[(w.read() as tf.Variable).name];
      expect(
        tf.tidy(() => g.abs().max().dataSync()[0]),
        w.originalName,
      ).toBeGreaterThan(0);
    }
    // Head usage is recordable through the hooks: 2 shared + 4 of 6 routed heads per token.
    const { logits: l2, cache } = lm.runWithCache(inputs, /hook_gates$/);
    const usage = headUsage(cache.get('blocks.1.attn.hook_gates'));
    expect(usage.slice(0, 2)).toEqual([1, 1]);
    expect(usage.reduce((a, b) => a + b, 0)).toBeCloseTo(6, 5);
    tf.dispose([inputs, targets, logits, balance, ce, loss, l2, ...Object.values(grads)]);
    cache.dispose();
    lm.dispose();
  });

  it('ToyLM with MoH: KV-cache decoding equals the full forward; save/load keeps the config and the logits', async () => {
    const lm = new ToyLM({ ...lmBase, attention: MOH, positional: 'rope' });
    const x = toks(2, 7, 3);
    const full = lm.forward(x);
    const cache = lm.newCache();
    const parts = [lm.forward(x.slice([0, 0], [2, 4]), { cache }), lm.forward(x.slice([0, 4], [2, 3]), { cache })];
    expectClose(tf.concat(parts, 1), full, { rtol: 1e-4, atol: 1e-5 }, 'cached vs full');
    expect(lm.getConfig().attention).toEqual(MOH);
    const input = tf.input({ shape: [7], dtype: 'int32' });
    const fresh = new ToyLM({ ...lmBase, attention: MOH, positional: 'rope' });
    const model = tf.model({ inputs: input, outputs: fresh.apply(input) as tf.SymbolicTensor });
    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        saved = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    expect((loaded.layers[1] as ToyLM).config.attention).toEqual(MOH);
    expectClose(loaded.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor, { rtol: 0, atol: 0 }, 'loaded');
    tf.dispose([x, full, ...parts]);
    cache.dispose();
    model.dispose();
    loaded.dispose();
    lm.dispose();
  });

  it('TransformerBlock takes attention: moh by config, and rejects a bad split with the values named', () => {
    const block = new TransformerBlock({ dModel: M, heads: H, causal: true, attention: MOH, seed: 1 });
    const x = tf.tensor3d(Array.from(randomArray(2 * 5 * M, 5)), [2, 5, M]);
    const y = block.apply(x) as tf.Tensor;
    expect(y.shape).toEqual([2, 5, M]);
    expect(block.trainableWeights.filter((w) => /router\.w[rsh]$/.test(w.originalName))).toHaveLength(3);
    expect(block.getConfig().attention).toEqual(MOH);
    tf.dispose([x, y]);
    block.dispose();
    expect(() => new ToyLM({ ...lmBase, attention: { kind: 'moh', shared: 2, routed: 5, topK: 4 } })).toThrow(
      'attention config: attention .shared + .routed must equal heads (8), got {"kind":"moh","shared":2,"routed":5,"topK":4}',
    );
    expect(() => new ToyLM({ ...lmBase, attention: { kind: 'moh', shared: 2, routed: 6, topK: 7 } })).toThrow(
      'attention .topK must be an integer in [1, routed = 6]',
    );
  });

  it('ToyLM with MoH: loss and gradients leak no tensors', () => {
    const lm = new ToyLM({ ...lmBase, attention: MOH });
    const inputs = toks(2, 6, 4);
    const targets = toks(2, 6, 5);
    const vars = lm.variables();
    expectNoLeak(() => {
      const { value, grads } = tf.variableGrads(() => lm.loss(inputs, targets), vars);
      tf.dispose([value, ...Object.values(grads)]);
      const r = lm.forwardWithAux(inputs);
      tf.dispose([r.logits, r.balance]);
    });
    tf.dispose([inputs, targets]);
    lm.dispose();
  });
});

describe('experiment moh', () => {
  beforeAll(async () => useBackend(BACKENDS[0]));

  it('runs with tiny overrides: both models, CIs, the validation pick, head usage, references; no leaks', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperimentWith(mohExperiment, {
      quick: true,
      progress: false,
      keep: true,
      overrides: {
        steps: 6,
        batch: 4,
        dModel: 16,
        evalEvery: 3,
        validationRows: 16,
        testRows: 24,
        balanceWeights: [0, 0.1],
      },
    });
    const m = r.metrics;
    for (const k of ['test_accuracy_mha', 'test_accuracy_moh', 'test_accuracy_moh_minus_mha', 'test_loss_moh'])
      expect(Number.isFinite(m[k]), k).toBe(true);
    expect(m.test_accuracy_moh_ci95).toBeGreaterThan(0);
    expect(m.test_active_head_fraction).toBeCloseTo(0.75, 6);
    const picked = m.validation_loss_moh_w0 <= m.validation_loss_moh_w0p1 ? 0 : 0.1;
    expect(m.validation_balance_weight).toBe(picked);
    expect(m.params_moh - m.params_mha).toBe(2 * 16 * (6 + 2 + 2)); // the router: wr, ws, wh per layer
    expect(r.references?.map((x) => x.metric)).toContain('test_active_head_fraction');
    const a = r.artifacts!;
    expect(a.models).toHaveLength(3);
    expect(a.models[a.chosen].row.balance_weight).toBe(picked);
    for (const u of a.models[1].usage[0].slice(0, 2)) expect(u).toBeCloseTo(1, 6);
    expect(a.models[1].records.some((x) => Number.isFinite(x.validation_loss))).toBe(true);
    expect(r.tables?.usage).toHaveLength(3 * 2 * 8);
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a config whose heads do not split into shared + routed', async () => {
    await expect(runExperimentWith(mohExperiment, { quick: true, overrides: { routed: 5 } })).rejects.toThrow(
      'moh: config.shared + config.routed must equal config.heads (8), got 2 + 5',
    );
  });
});

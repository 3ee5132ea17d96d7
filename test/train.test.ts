import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import '@tensorflow/tfjs-backend-wasm';
import { activeName } from '../lib/backend/index.js';
import { DisplayHandle } from '../lib/display/display-handle.js';
import { type MimeBundle, setDisplaySink } from '../lib/display/handle.js';
import { escapeHtml } from '../lib/display/html.js';
import {
  Adam,
  AdamW,
  clipByGlobalNorm,
  constant,
  createProgress,
  globalNorm,
  makeSchedule,
  noDecayBiasNorm,
  type StepRecord,
  seededInitializer,
  seededVariable,
  train,
  warmupCosine,
  warmupLinear,
} from '../lib/train/index.js';
import { BACKENDS, useBackend } from './helpers.js';

/**
 * PyTorch's Adam/AdamW on plain numbers (float64): the reference the tf implementation must match.
 * `decoupled` = AdamW. Returns the parameters after each step.
 */
function referenceAdam(
  x0: number[],
  grad: (x: number[]) => number[],
  o: { lr: number; b1: number; b2: number; eps: number; wd: number; decoupled: boolean; decay: boolean[] },
  steps: number,
): number[][] {
  const x = [...x0];
  const m = x.map(() => 0);
  const v = x.map(() => 0);
  const out: number[][] = [];
  for (let t = 1; t <= steps; t++) {
    const g = grad(x);
    for (let i = 0; i < x.length; i++) {
      const wd = o.decay[i] ? o.wd : 0;
      let gi = g[i];
      if (!o.decoupled) gi += wd * x[i];
      else x[i] *= 1 - o.lr * wd;
      m[i] = o.b1 * m[i] + (1 - o.b1) * gi;
      v[i] = o.b2 * v[i] + (1 - o.b2) * gi * gi;
      const mh = m[i] / (1 - o.b1 ** t);
      const vh = v[i] / (1 - o.b2 ** t);
      x[i] -= (o.lr * mh) / (Math.sqrt(vh) + o.eps);
    }
    out.push([...x]);
  }
  return out;
}

/** f(x) = Σ ½·a_i·(x_i - c_i)², so g_i = a_i·(x_i - c_i). */
const A = [1, 3, 0.5];
const C = [0.5, -1, 2];
const quadGrad = (x: number[]): number[] => x.map((xi, i) => A[i] * (xi - C[i]));
function quadLoss(vars: tf.Variable[]): tf.Scalar {
  return tf.addN(vars.map((v, i) => tf.mul(0.5 * A[i], tf.square(tf.sub(v, C[i]))))).sum() as tf.Scalar;
}

let counter = 0;
const uniq = (s: string): string => `${s}_${counter++}`;

function scalars(values: number[], names: string[]): tf.Variable[] {
  return values.map((x, i) => tf.variable(tf.scalar(x), true, uniq(names[i])));
}

async function values(vars: tf.Variable[]): Promise<number[]> {
  return Promise.all(vars.map(async (v) => (await v.data())[0]));
}

/** One optimizer step on `vars` with the gradients of `quadLoss`. */
function stepOn(opt: Adam, vars: tf.Variable[]): void {
  tf.tidy(() => {
    const { grads } = tf.variableGrads(() => quadLoss(vars), vars);
    opt.apply(grads);
  });
}

describe.each(BACKENDS)('train on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
    expect(activeName()).toBe(backend);
  });
  afterEach(() => tf.disposeVariables());

  describe('Adam / AdamW', () => {
    it('first Adam step moves each parameter by lr against the gradient sign (hand-computed)', async () => {
      // g = a(x - c) = [0.5, 6, -1]: m̂ = g, v̂ = g², so Δ = -lr·g/(|g| + eps) = -lr·sign(g).
      const vars = scalars([1, 1, 1], ['x', 'y', 'z']);
      const opt = new Adam(vars, { lr: 0.1 });
      stepOn(opt, vars);
      const got = await values(vars);
      [0.9, 0.9, 1.1].forEach((want, i) => expect(got[i]).toBeCloseTo(want, 6));
      opt.dispose();
    });

    it('Adam with L2 weight decay matches the reference for 6 steps (1e-6)', async () => {
      const o = { lr: 0.05, b1: 0.8, b2: 0.95, eps: 1e-8, wd: 0.1, decoupled: false, decay: [true, true, true] };
      const ref = referenceAdam([1, 2, -1], quadGrad, o, 6);
      const vars = scalars([1, 2, -1], ['x', 'y', 'z']);
      const opt = new Adam(vars, { lr: o.lr, betas: [o.b1, o.b2], eps: o.eps, weightDecay: o.wd });
      for (let s = 0; s < 6; s++) {
        stepOn(opt, vars);
        const got = await values(vars);
        got.forEach((g, i) => expect(Math.abs(g - ref[s][i])).toBeLessThan(1e-6));
      }
      expect(opt.step).toBe(6);
      opt.dispose();
    });

    it('AdamW decays decoupled and skips variables the noDecay predicate names', async () => {
      const o = { lr: 0.05, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.5, decoupled: true, decay: [true, false, true] };
      const ref = referenceAdam([1, 2, -1], quadGrad, o, 6);
      const vars = scalars([1, 2, -1], ['w', 'dense/bias', 'v']);
      const opt = new AdamW(vars, { lr: o.lr, weightDecay: o.wd, noDecay: noDecayBiasNorm });
      for (let s = 0; s < 6; s++) stepOn(opt, vars);
      (await values(vars)).forEach((g, i) => expect(Math.abs(g - ref[5][i])).toBeLessThan(1e-6));
      opt.dispose();
    });

    it('with variables keyed by name, noDecay sees the keys', async () => {
      const vars = {
        w: tf.variable(tf.scalar(1), true, uniq('v')),
        'ln.gamma': tf.variable(tf.scalar(1), true, uniq('v')),
      };
      const opt = new AdamW(vars, { lr: 0.1, weightDecay: 0.5, noDecay: noDecayBiasNorm });
      // A zero gradient leaves only the decoupled decay: w *= 1 - lr·wd.
      tf.tidy(() =>
        opt.apply(
          tf.variableGrads(() => tf.mul(tf.add(vars.w, vars['ln.gamma']), 0) as tf.Scalar, Object.values(vars)).grads,
        ),
      );
      expect(vars.w.dataSync()[0]).toBeCloseTo(0.95, 6);
      expect(vars['ln.gamma'].dataSync()[0]).toBe(1);
      opt.dispose();
    });

    it('noDecayBiasNorm picks biases and norms only', () => {
      const yes = [
        'dense/bias',
        'block0/ln1/gamma',
        'layer_norm/beta',
        'rmsnorm_scale',
        'blocks.0.mlp.b1',
        'ln_final.gamma_3',
      ];
      expect(yes.filter((n) => !noDecayBiasNorm(n))).toEqual([]);
      const no = ['dense/kernel', 'embedding/embeddings', 'attn/wq', 'blocks.0.mlp.w1', 'embed_1', 'sub', 'web'];
      expect(no.filter(noDecayBiasNorm)).toEqual([]);
    });

    it('state() / loadState() resume exactly', async () => {
      const a = scalars([1, 2, -1], ['x', 'y', 'z']);
      const optA = new AdamW(a, { lr: 0.05 });
      for (let s = 0; s < 3; s++) stepOn(optA, a);
      const saved = await values(a);
      const optB = new AdamW(a, { lr: 0.05 });
      optB.loadState(optA.state());
      expect(optB.step).toBe(3);
      expect(optB.numTensors).toBe(6);
      for (let s = 0; s < 2; s++) stepOn(optA, a);
      const afterA = await values(a);
      a.forEach((v, i) => v.assign(tf.scalar(saved[i])));
      for (let s = 0; s < 2; s++) stepOn(optB, a);
      expect(await values(a)).toEqual(afterA);
      optA.dispose();
      optB.dispose();
    });

    it('loadState rejects a slot whose shape differs, naming it and both shapes', () => {
      const [v] = [tf.variable(tf.zeros([2, 3]), true, uniq('k'))];
      const opt = new Adam([v]);
      const bad = tf.zeros([3, 2]);
      expect(() =>
        opt.loadState({
          type: 'adam',
          step: 1,
          lr: 1e-3,
          betas: [0.9, 0.999],
          eps: 1e-8,
          weightDecay: 0,
          slots: { [`${v.name}/m`]: bad },
        }),
      ).toThrow(`slot "${v.name}/m" has shape [3,2] but variable "${v.name}" has [2,3]`);
      bad.dispose();
    });
  });

  describe('clipping', () => {
    it('global norm matches a naive sum of squares; clipping scales to maxNorm and reports the pre-clip norm', async () => {
      const raw = [[3, -4], [1, 2, 2], [0.5]];
      const naive = Math.sqrt(raw.flat().reduce((s, x) => s + x * x, 0));
      const grads = raw.map((r) => tf.tensor1d(r));
      const n = globalNorm(grads);
      expect((await n.data())[0]).toBeCloseTo(naive, 5);
      const { grads: clipped, norm } = clipByGlobalNorm(grads, 1);
      expect(norm).toBeCloseTo(naive, 5);
      const after = Math.sqrt(
        (await Promise.all(clipped.map((g) => g.data()))).flatMap((d) => [...d]).reduce((s, x) => s + x * x, 0),
      );
      expect(after).toBeCloseTo(1, 5);
      const under = clipByGlobalNorm(grads, 100);
      expect(await under.grads[0].array()).toEqual([3, -4]);
      tf.dispose([grads, n, clipped, under.grads]);
    });
  });

  describe('train()', () => {
    it('fits a linear regression to low loss; history is a DataFrame with the documented columns', async () => {
      const rng = seededInitializer(1, 'data', 'randomNormal', 1);
      const X = rng.apply([64, 3]) as tf.Tensor2D;
      const wTrue = tf.tensor2d([[2], [-1], [0.5]]);
      const y = tf.add(tf.matMul(X, wTrue), 0.3);
      const w = tf.variable(tf.zeros([3, 1]), true, uniq('w'));
      const b = tf.variable(tf.zeros([1]), true, uniq('b'));
      const before = tf.memory().numTensors;
      const mse = (): tf.Scalar => tf.losses.meanSquaredError(y, tf.add(tf.matMul(X, w), b)) as tf.Scalar;
      const res = await train({
        variables: [w, b],
        loss: mse,
        steps: 300,
        optimizer: { type: 'adam', lr: 0.05 },
        schedule: { type: 'cosine', warmup: 10 },
        clipNorm: 10,
        evalEvery: 100,
        evaluate: () => ({ test_loss: mse().dataSync()[0] }),
        progress: false,
      });
      expect(tf.memory().numTensors).toBe(before);
      expect(res.stopped).toBeUndefined();
      expect(res.steps).toBe(300);
      expect(res.records[299].loss).toBeLessThan(1e-3);
      expect(res.records[0].loss).toBeGreaterThan(1);
      const df = res.history!;
      expect(df.columns).toEqual(['step', 'loss', 'lr', 'grad_norm', 'seconds', 'test_loss']);
      expect(df.shape).toEqual([300, 6]);
      const testLoss = df.column('test_loss').values as number[];
      expect(testLoss.filter((x) => !Number.isNaN(x))).toHaveLength(3);
      expect(testLoss[299]).toBeLessThan(1e-3);
      expect(res.records[0].lr).toBeCloseTo(0.005, 8);
      expect(res.records[9].lr).toBeCloseTo(0.05, 8);
      tf.dispose([X, wTrue, y]);
    });

    it('stops cleanly when the loss becomes NaN at step k: k rows, weights as after step k-1, one message', async () => {
      const k = 4;
      const x = tf.variable(tf.tensor1d([1, -2]), true, uniq('x'));
      const snapshots: number[][] = [];
      const out: string[] = [];
      const before = tf.memory().numTensors;
      const res = await train({
        variables: [x],
        steps: 10,
        optimizer: { type: 'adam', lr: 0.1 },
        loss: (step) => {
          const l = tf.sum(tf.square(x));
          return (step === k ? tf.mul(l, NaN) : l) as tf.Scalar;
        },
        onStep: () => void snapshots.push([...x.dataSync()]),
        progress: false,
        progressTarget: { stream: { write: (s: string) => out.push(s) } },
        dataframe: false,
      });
      expect(res.stopped?.reason).toBe('nan');
      expect(res.stopped?.step).toBe(k);
      expect(res.records).toHaveLength(k);
      expect(res.steps).toBe(k);
      expect([...x.dataSync()]).toEqual(snapshots[k - 1]);
      expect(out).toHaveLength(1);
      expect(out[0]).toContain(`stopped at step ${k}: loss is NaN`);
      expect(out[0]).toContain(`last finite loss ${res.records[k - 1].loss}`);
      expect(out[0]).toMatch(/lower learning rate.*clipNorm/);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('a NaN at step 0 leaves the weights unchanged and returns an empty history with its columns', async () => {
      const x = tf.variable(tf.scalar(2), true, uniq('x'));
      const out: string[] = [];
      const res = await train({
        variables: [x],
        steps: 3,
        loss: () => tf.mul(x, NaN) as tf.Scalar,
        progress: false,
        progressTarget: { stream: { write: (s: string) => out.push(s) } },
      });
      expect(res.stopped).toMatchObject({ reason: 'nan', step: 0 });
      expect(out[0]).toContain('weights are unchanged');
      expect(res.history!.shape).toEqual([0, 5]);
      expect(res.history!.columns).toEqual(['step', 'loss', 'lr', 'grad_norm', 'seconds']);
      expect(x.dataSync()[0]).toBe(2);
    });

    it('stops on an infinite gradient with a finite loss', async () => {
      const x = tf.variable(tf.scalar(0), true, uniq('x'));
      const res = await train({
        variables: [x],
        steps: 3,
        loss: () => tf.sqrt(tf.abs(x)) as tf.Scalar, // d/dx sqrt|x| at 0 is inf
        progress: false,
        progressTarget: { stream: { write: () => {} } },
        dataframe: false,
      });
      expect(res.stopped).toMatchObject({ reason: 'nan', step: 0 });
      expect(res.stopped!.message).toContain('gradient norm is');
      expect(x.dataSync()[0]).toBe(0);
    });

    it('leaks no tensors: batches are disposed, evaluate and loss temporaries are freed, the owned optimizer too', async () => {
      const w = tf.variable(tf.ones([4, 2]), true, uniq('w'));
      const before = tf.memory().numTensors;
      function* batches(): Generator<{ x: tf.Tensor2D; y: tf.Tensor2D }> {
        for (let i = 0; i < 100; i++) yield { x: tf.ones([3, 4]), y: tf.zeros([3, 2]) };
      }
      const res = await train({
        variables: [w],
        batches: batches(),
        loss: (_step, { x, y }) => tf.losses.meanSquaredError(y, tf.matMul(x, w)) as tf.Scalar,
        steps: 20,
        optimizer: { type: 'adamw', lr: 0.01, weightDecay: 0.1 },
        schedule: { type: 'linear', warmup: 2 },
        clipNorm: 0.5,
        evalEvery: 5,
        evaluate: () => ({ val_norm: tf.norm(w).dataSync()[0] }),
        progress: false,
        dataframe: false,
      });
      expect(res.steps).toBe(20);
      expect(res.records.every((r) => r.grad_norm > 0)).toBe(true);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('reports running out of batches as reason data', async () => {
      const w = tf.variable(tf.scalar(1), true, uniq('w'));
      const res = await train({
        variables: [w],
        batches: [1, 2, 3],
        loss: (_s, b: number) => tf.mul(tf.square(w), b) as tf.Scalar,
        steps: 10,
        progress: false,
        dataframe: false,
      });
      expect(res.steps).toBe(3);
      expect(res.stopped).toMatchObject({ reason: 'data', step: 2 });
    });

    it('onStep returning false stops with reason callback; a caller-owned optimizer survives and resumes the step count', async () => {
      const w = tf.variable(tf.scalar(3), true, uniq('w'));
      const opt = new Adam([w], { lr: 0.1 });
      const res = await train({
        variables: [w],
        loss: () => tf.square(w) as tf.Scalar,
        steps: 10,
        optimizer: opt,
        onStep: (r: StepRecord) => r.step < 4,
        progress: false,
        dataframe: false,
      });
      expect(res.stopped).toMatchObject({ reason: 'callback', step: 4 });
      expect(res.optimizer).toBe(opt);
      expect(opt.step).toBe(5);
      const more = await train({
        variables: [w],
        loss: () => tf.square(w) as tf.Scalar,
        steps: 10,
        optimizer: opt,
        progress: false,
        dataframe: false,
      });
      expect(more.records.map((r) => r.step)).toEqual([5, 6, 7, 8, 9]);
      expect(opt.numTensors).toBe(2);
      opt.dispose();
    });

    it('passes a reproducible per-step seed', async () => {
      const w = tf.variable(tf.scalar(1), true, uniq('w'));
      const run = async (seed: number): Promise<number[]> => {
        const seen: number[] = [];
        await train({
          variables: [w],
          seed,
          steps: 3,
          loss: (_s, _b, ctx) => {
            seen.push(ctx.seed, ctx.rng.next());
            return tf.square(w) as tf.Scalar;
          },
          progress: false,
          dataframe: false,
        });
        return seen;
      };
      const a = await run(7);
      expect(await run(7)).toEqual(a);
      expect(await run(8)).not.toEqual(a);
    });
  });
});

describe('schedules', () => {
  it('constant', () => {
    expect([0, 10, 1e6].map(constant(0.3))).toEqual([0.3, 0.3, 0.3]);
  });

  it('warmup + cosine at known steps', () => {
    const lr = warmupCosine({ peak: 1, warmup: 10, total: 110, min: 0.1 });
    expect(lr(0)).toBeCloseTo(0.1, 12);
    expect(lr(4)).toBeCloseTo(0.5, 12);
    expect(lr(9)).toBeCloseTo(1, 12);
    expect(lr(10)).toBeCloseTo(1, 12);
    expect(lr(60)).toBeCloseTo(0.55, 12); // halfway: min + (peak-min)/2
    expect(lr(35)).toBeCloseTo(0.1 + (0.9 * (1 + Math.cos(Math.PI / 4))) / 2, 12);
    expect(lr(110)).toBeCloseTo(0.1, 12);
    expect(lr(500)).toBeCloseTo(0.1, 12);
  });

  it('warmup + linear decay at known steps', () => {
    const lr = warmupLinear({ peak: 2, warmup: 4, total: 14 });
    expect([0, 1, 3, 4, 9, 14, 20].map(lr)).toEqual([0.5, 1, 2, 2, 1, 0, 0]);
  });

  it('configs fill peak and total from the optimizer and steps; bad arguments are named', () => {
    expect(makeSchedule({ type: 'linear' }, 1, 10)(5)).toBeCloseTo(0.5, 12);
    expect(makeSchedule({ type: 'cosine', warmup: 2 }, 1, 10)(1)).toBe(1);
    expect(() => warmupCosine({ peak: 1, warmup: 5, total: 3 })).toThrow(
      'warmupCosine: total must be an integer >= warmup (5), got 3',
    );
    expect(() => constant(NaN)).toThrow('constant: lr must be');
  });
});

describe('progress', () => {
  const state = (done: number, total = 100) => ({
    done,
    total,
    step: done - 1,
    loss: 1 / done,
    lr: 1e-3,
    seconds: done / 50,
  });

  it('prints about ten plain lines when not a terminal', () => {
    const out: string[] = [];
    const p = createProgress('auto', {
      stream: { write: (s: string) => out.push(s), isTTY: false },
      display: undefined,
    });
    for (let i = 1; i <= 100; i++) p.update(state(i));
    p.finish(state(100));
    expect(out.length).toBe(10);
    expect(out[0]).toMatch(/^step 10\/100 {2}loss 0\.1000 {2}lr 1\.00e-3 {2}50\.0 it\/s {2}ETA 0:02\n$/);
    expect(out[9]).toContain('step 100/100');
    expect(out[9]).toContain('total');
  });

  it('redraws one line with \\r on a terminal', () => {
    const out: string[] = [];
    const p = createProgress('auto', {
      stream: { write: (s: string) => out.push(s), isTTY: true, columns: 200 },
      throttleMs: 0,
    });
    for (let i = 1; i <= 5; i++) p.update(state(i, 5));
    p.finish(state(5, 5));
    expect(out.slice(0, 5).every((s) => s.startsWith('\r[') && !s.includes('\n'))).toBe(true);
    expect(out[out.length - 1]).toBe('\n');
    expect(out[4]).toContain('[####################] step 5/5');
  });

  it('updates one notebook display in place, throttled, with escaped HTML and a final state', () => {
    const sent: { bundle: MimeBundle; update?: boolean; id?: string }[] = [];
    setDisplaySink({ send: (bundle, o) => sent.push({ bundle, update: o?.update, id: o?.displayId }) });
    try {
      const p = createProgress('auto', { stream: { write: () => {}, isTTY: true } });
      for (let i = 1; i <= 50; i++) p.update({ ...state(i, 50), metrics: { 'test<loss>': 1 } });
      p.finish(state(50, 50), 'stopped <now> & "why"');
      expect(sent.length).toBe(2); // first update, then the final one; the rest fell within the throttle
      expect(sent[0].update).toBe(false);
      expect(sent[1].update).toBe(true);
      expect(new Set(sent.map((s) => s.id)).size).toBe(1);
      expect(sent[0].bundle['text/html']).toContain('test&lt;loss&gt;');
      const html = sent[1].bundle['text/html'] as string;
      expect(html).toContain('stopped &lt;now&gt; &amp; &quot;why&quot;');
      expect(html).toContain('<progress value="50" max="50"');
      expect(sent[1].bundle['text/plain']).toContain('step 50/50');
    } finally {
      setDisplaySink(undefined);
    }
    expect(escapeHtml(`<a href='x'>&</a>`)).toBe('&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;');
    expect(DisplayHandle).toBeDefined();
  });
});

describe('seeding', () => {
  it('seededInitializer is deterministic per (seed, name) and differs across names', async () => {
    await tf.setBackend('cpu');
    const a = seededVariable(3, uniq('w'), [4, 4]);
    const b = seededInitializer(3, a.name).apply([4, 4]);
    const c = seededInitializer(3, `${a.name}x`).apply([4, 4]);
    expect(await a.array()).toEqual(await b.array());
    expect(await a.array()).not.toEqual(await c.array());
    tf.dispose([a, b, c]);
  });
});

describe('transformerRecipe', () => {
  it('is AdamW (decay 0.01), cosine with 5% warm-up and clipping at norm 1, and names a bad argument', async () => {
    const { transformerRecipe } = await import('../lib/train/recipe.js');
    expect(transformerRecipe(400, 3e-3)).toEqual({
      optimizer: { type: 'adamw', lr: 3e-3, weightDecay: 0.01 },
      schedule: { type: 'cosine', warmup: 20 },
      clipNorm: 1,
    });
    expect(() => transformerRecipe(0, 1e-3)).toThrow('transformerRecipe: steps must be a positive integer, got 0');
    expect(() => transformerRecipe(10, -1)).toThrow('transformerRecipe: lr must be a finite number > 0, got -1');
  });
});

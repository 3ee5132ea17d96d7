import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import '@tensorflow/tfjs-backend-wasm';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { activeName } from '../lib/backend/index.js';
import {
  AdamW,
  fileHandler,
  loadCheckpoint,
  restoreCheckpoint,
  restoreVariables,
  saveCheckpoint,
  train,
  variablesOf,
} from '../lib/train/index.js';
import { BACKENDS, useBackend } from './helpers.js';

let dir: string;
let counter = 0;
const uniq = (s: string): string => `${s}_${counter++}`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'attnlab-ckpt-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each(BACKENDS)('checkpoints on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
    expect(activeName()).toBe(backend);
  });
  afterEach(() => tf.disposeVariables());

  it('round-trips float32, int32 and bool tensors, config, step and optimizer state exactly', async () => {
    const w = tf.variable(tf.randomNormal([3, 5], 0, 1, 'float32', 1), true, uniq('w'));
    const b = tf.variable(tf.tensor1d([0.1, -0.2, 1e-30]), true, uniq('b'));
    const ids = tf.tensor2d(
      [
        [1, -2],
        [2 ** 31 - 1, 0],
      ],
      undefined,
      'int32',
    );
    const flags = tf.tensor1d([1, 0, 1], 'bool');
    const opt = new AdamW([w, b], { lr: 0.01 });
    tf.tidy(() =>
      opt.apply(tf.variableGrads(() => tf.add(tf.sum(tf.square(w)), tf.sum(b)) as tf.Scalar, [w, b]).grads),
    );
    const file = join(dir, `rt-${backend}.ckpt`);
    const config = { dModel: 8, name: 'toy <lm>', nested: { layers: [1, 2] } };
    await saveCheckpoint(file, { variables: [w, b], namedTensors: { ids, flags }, config, optimizer: opt, step: 42 });

    const before = tf.memory().numTensors;
    const ck = await loadCheckpoint<typeof config>(file);
    expect(ck.step).toBe(42);
    expect(ck.config).toEqual(config);
    expect(Object.keys(ck.tensors).sort()).toEqual([b.name, 'flags', 'ids', w.name].sort());
    expect(await ck.tensors[w.name].data()).toEqual(await w.data());
    expect(await ck.tensors[b.name].data()).toEqual(await b.data());
    expect(ck.tensors.ids.dtype).toBe('int32');
    expect(await ck.tensors.ids.array()).toEqual([
      [1, -2],
      [2 ** 31 - 1, 0],
    ]);
    expect(ck.tensors.flags.dtype).toBe('bool');
    expect(await ck.tensors.flags.array()).toEqual([1, 0, 1]);
    const st = ck.optimizerState!;
    expect(st).toMatchObject({ type: 'adamw', step: 1, lr: 0.01, betas: [0.9, 0.999], weightDecay: 0.01 });
    const live = opt.state().slots;
    expect(Object.keys(st.slots).sort()).toEqual(Object.keys(live).sort());
    for (const k of Object.keys(live)) expect(await st.slots[k].data()).toEqual(await live[k].data());
    ck.dispose();
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    tf.dispose([ids, flags]);
  });

  it('restoreVariables checks shapes before assigning, naming the variable and both shapes', async () => {
    const w = tf.variable(tf.zeros([2, 3]), true, uniq('w'));
    const v = tf.variable(tf.zeros([4]), true, uniq('v'));
    const good = tf.ones([4]);
    const bad = tf.ones([3, 2]);
    expect(() => restoreVariables([v, w], { [v.name]: good, [w.name]: bad })).toThrow(
      `restoreVariables: variable "${w.name}" has shape [2,3] but the checkpoint's tensor has [3,2]`,
    );
    expect(await v.data()).toEqual(new Float32Array(4)); // nothing assigned
    expect(() => restoreVariables([v, w], { [v.name]: good })).toThrow(`the checkpoint has no tensor for "${w.name}"`);
    restoreVariables([v, w], { [v.name]: good }, { strict: false });
    expect(await v.data()).toEqual(new Float32Array([1, 1, 1, 1]));
    tf.dispose([good, bad]);
  });

  it('a save that fails mid-way leaves the previous file intact and loadable, with no temp file left', async () => {
    const file = join(dir, `fault-${backend}.ckpt`);
    const a = tf.tensor1d([1, 2, 3]);
    await saveCheckpoint(file, { namedTensors: { a }, config: { v: 1 }, step: 1 });
    const old = readFileSync(file);

    const big = tf.ones([1000]);
    const broken = tf.ones([4]);
    const fault = (): never => {
      throw new Error('injected fault: disk unplugged');
    };
    Object.assign(broken, { data: fault, dataSync: fault });
    // `big` is written first, so the temp file has real bytes in it when the fault hits.
    await expect(saveCheckpoint(file, { namedTensors: { big, broken }, config: { v: 2 }, step: 2 })).rejects.toThrow(
      'injected fault',
    );
    expect(readFileSync(file).equals(old)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes(`fault-${backend}`))).toEqual([`fault-${backend}.ckpt`]);
    const ck = await loadCheckpoint(file);
    expect(ck.step).toBe(1);
    expect(ck.config).toEqual({ v: 1 });
    expect(await ck.tensors.a.data()).toEqual(new Float32Array([1, 2, 3]));
    ck.dispose();
    tf.dispose([a, big, broken]);
  });

  it('a save into a missing directory fails without touching anything; a stray temp file from a killed save is ignored', async () => {
    const t = tf.scalar(1);
    await expect(saveCheckpoint(join(dir, 'no-such-dir', 'x.ckpt'), { namedTensors: { t } })).rejects.toThrow(/ENOENT/);
    const file = join(dir, `stray-${backend}.ckpt`);
    await saveCheckpoint(file, { namedTensors: { t }, step: 5 });
    writeFileSync(join(dir, `.stray-${backend}.ckpt.999.dead.tmp`), 'half a checkpoint');
    const ck = await loadCheckpoint(file);
    expect(ck.step).toBe(5);
    ck.dispose();
    t.dispose();
  });

  it('detects a truncated or corrupted file', async () => {
    const file = join(dir, `corrupt-${backend}.ckpt`);
    const t = tf.ones([16]);
    await saveCheckpoint(file, { namedTensors: { t } });
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 10));
    await expect(loadCheckpoint(file)).rejects.toThrow('checksum mismatch');
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 20] ^= 1;
    writeFileSync(file, flipped);
    await expect(loadCheckpoint(file)).rejects.toThrow('checksum mismatch');
    writeFileSync(file, 'not a checkpoint at all');
    await expect(loadCheckpoint(file)).rejects.toThrow('wrong magic header');
    t.dispose();
  });

  it('resuming from a checkpoint (weights + optimizer) into a fresh model continues exactly like an uninterrupted run', async () => {
    const target = tf.tensor1d([1, -1, 2]);
    // Keyed by stable names: each fresh "model" gets new tfjs variable names (as a second ToyLM's `embed` is `embed_1`).
    const init = (): Record<string, tf.Variable> => ({
      p: tf.variable(tf.tensor1d([0.5, 0.5, 0.5]), true, uniq('p')),
      q: tf.variable(tf.tensor1d([1, 2, 3]), true, uniq('q')),
    });
    const run = async (vars: Record<string, tf.Variable>, steps: number, optimizer: AdamW) =>
      train({
        variables: vars,
        steps,
        optimizer,
        schedule: { type: 'cosine', warmup: 2, total: 10 },
        loss: () => tf.sum(tf.square(tf.sub(tf.mul(vars.p, vars.q), target))) as tf.Scalar,
        progress: false,
        dataframe: false,
      });
    const values = (vars: Record<string, tf.Variable>) => Promise.all(Object.values(vars).map((v) => v.data()));

    let vars = init();
    let opt = new AdamW(vars, { lr: 0.05 });
    await run(vars, 10, opt);
    const straight = await values(vars);
    opt.dispose();

    vars = init();
    opt = new AdamW(vars, { lr: 0.05 });
    await run(vars, 6, opt);
    const file = join(dir, `resume-${backend}.ckpt`);
    await saveCheckpoint(file, { variables: vars, optimizer: opt, config: { lr: 0.05 } });
    opt.dispose();
    const ck = await loadCheckpoint(file);
    expect(Object.keys(ck.tensors).sort()).toEqual(['p', 'q']);
    expect(Object.keys(ck.optimizerState!.slots).sort()).toEqual(['p/m', 'p/v', 'q/m', 'q/v']);
    ck.dispose();

    vars = { p: tf.variable(tf.zeros([3]), true, uniq('p')), q: tf.variable(tf.zeros([3]), true, uniq('q')) };
    opt = new AdamW(vars, { lr: 0.05 });
    const { step, config } = await restoreCheckpoint(file, { variables: vars, optimizer: opt });
    expect(step).toBe(6);
    expect(config).toEqual({ lr: 0.05 });
    const res = await run(vars, 10, opt);
    expect(res.records.map((r) => r.step)).toEqual([6, 7, 8, 9]);
    expect(await values(vars)).toEqual(straight);
    opt.dispose();
    target.dispose();
  });

  it("variablesOf keys a layer model's variables by their layer-given names", () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3], name: 'head' })] });
    const vars = variablesOf(model);
    expect(Object.keys(vars)).toEqual(['head/kernel', 'head/bias']);
    expect(vars['head/kernel'].shape).toEqual([3, 2]);
    model.dispose();
  });

  it('fileHandler saves and loads a tf.sequential model: identical predictions', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          units: 8,
          inputShape: [4],
          activation: 'relu',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        tf.layers.dense({
          units: 3,
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
          biasInitializer: 'ones',
        }),
      ],
    });
    const file = join(dir, `model-${backend}.ckpt`);
    const result = await model.save(fileHandler(file));
    expect(result.modelArtifactsInfo.weightDataBytes).toBe((4 * 8 + 8 + 8 * 3 + 3) * 4);
    const loaded = await tf.loadLayersModel(fileHandler(file));
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 3);
    const [p1, p2] = [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
    expect(await p2.data()).toEqual(await p1.data());
    // The same file reads as a checkpoint too: the model's weights by name.
    const ck = await loadCheckpoint(file);
    expect(Object.keys(ck.tensors).sort()).toEqual(model.weights.map((w) => w.originalName).sort());
    ck.dispose();
    await expect(fileHandler(join(dir, `rt-${backend}.ckpt`)).load!()).rejects.toThrow(
      'is a training checkpoint, not a model',
    );
    tf.dispose([x, p1, p2]);
    model.dispose();
    loaded.dispose();
  });
});

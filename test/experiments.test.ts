import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import {
  CATALOG,
  ConfigError,
  defineExperiment,
  getExperiment,
  int,
  list,
  listExperiments,
  num,
  obj,
  oneOf,
  opt,
  resolveConfig,
  runExperiment,
  str,
  tuple,
} from '../lib/catalog.js';
import { splitOf } from '../lib/data/batch.js';
import { repeatTask } from '../lib/data/repeat.js';
import { evaluateInduction, type InductionArtifacts } from '../lib/papers/basics/induction-heads/index.js';

const root = join(import.meta.dirname, '..');
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'bin', 'attnlab.js'), ...args], {
    encoding: 'utf8',
    cwd: root,
    env: { ...process.env, ATTNLAB_BACKEND: '' },
  });

describe('experiment catalog and contract', () => {
  type Tiny = {
    steps: number;
    lr: number;
    mode: 'a' | 'b';
    sizes: [number, number];
    opt: { lr: number; decay: number };
    tag?: string;
    layers: number[];
  };
  const tiny = defineExperiment<Tiny, { t: tf.Tensor }>({
    name: 'test-tiny',
    paper: '-',
    description: '-',
    schema: obj<Tiny>({
      steps: int({ min: 1 }),
      lr: num({ gt: 0 }),
      mode: oneOf('a', 'b'),
      sizes: tuple<[number, number]>(int(), int()),
      opt: obj({ lr: num({ gt: 0 }), decay: num({ min: 0, max: 1 }) }),
      tag: opt(str()),
      layers: list(int({ min: 1 }), { min: 1, unique: true }),
    }),
    quick: { steps: 2, lr: 0.1, mode: 'a', sizes: [1, 2], opt: { lr: 0.01, decay: 0.9 }, layers: [1] },
    full: { steps: 20, lr: 0.1, mode: 'b', sizes: [1, 2], opt: { lr: 0.01, decay: 0.9 }, layers: [1, 2] },
    run: async (c) => ({
      metrics: { test_steps: c.steps, test_decay: c.opt.decay },
      summary: '',
      references: [{ metric: 'test_steps', paper: 2, source: 'Table 1', setting: 'ours: 2 steps' }],
      artifacts: { t: tf.ones([2]) },
    }),
  });

  it('lists every experiment once and names the known ones when a name is unknown', () => {
    const names = listExperiments().map((e) => e.name);
    expect(names).toContain('induction-heads');
    expect(new Set(names).size).toBe(CATALOG.length);
    expect(names).toEqual(
      expect.arrayContaining([
        'pointer-hull',
        'pointer-tsp',
        'oat-scanpath',
        'brain-encoder',
        'brain-decoding',
        'sparse-approx',
        'passkey-long',
      ]),
    );
    expect(() => getExperiment('nope')).toThrow(/unknown experiment 'nope'; known: .*induction-heads/);
  });

  it('merges overrides key by key into nested settings', () => {
    const c = resolveConfig(tiny, true, { opt: { decay: 0.5 }, layers: [3, 4] });
    expect(c.opt).toEqual({ lr: 0.01, decay: 0.5 });
    expect(c.layers).toEqual([3, 4]);
    expect(tiny.quick.opt.decay).toBe(0.9); // the defaults are not modified
    expect(resolveConfig(tiny, false, undefined).steps).toBe(20);
  });

  it('rejects an unknown key, a wrong type or an out-of-range value, naming the key, the expected and the actual value', () => {
    const bad = (o: unknown) => {
      try {
        resolveConfig(tiny, true, o);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(bad({ nosuch: 1 })).toMatch(
      /^experiment 'test-tiny': config\.nosuch is not a setting \(settings: steps, lr, mode, sizes, opt, tag, layers\)/,
    );
    expect(bad({ steps: 'x' })).toMatch(/config\.steps must be an integer >= 1, got "x"/);
    expect(bad({ steps: 0 })).toMatch(/config\.steps must be an integer >= 1, got 0/);
    expect(bad({ steps: 1.5 })).toMatch(/config\.steps must be an integer >= 1, got 1\.5/);
    expect(bad({ lr: 0 })).toMatch(/config\.lr must be a number > 0, got 0/);
    expect(bad({ mode: 'c' })).toMatch(/config\.mode must be one of "a", "b", got "c"/);
    expect(bad({ sizes: [1] })).toMatch(/config\.sizes must be a list of 2/);
    expect(bad({ opt: { decay: 2 } })).toMatch(/config\.opt\.decay must be a number >= 0 and <= 1, got 2/);
    expect(bad({ opt: { nope: 1 } })).toMatch(/config\.opt\.nope is not a setting \(settings: lr, decay\)/);
    expect(bad({ opt: 3 })).toMatch(/config\.opt must be an object/);
    expect(bad({ layers: [] })).toMatch(/config\.layers must have length >= 1, got 0 items/);
    expect(bad({ layers: [1, 1] })).toMatch(/config\.layers lists 1 twice/);
    expect(bad({ layers: [1, -1] })).toMatch(/config\.layers\[1\] must be an integer >= 1, got -1/);
    expect(bad({ tag: '' })).toMatch(/config\.tag must be a non-empty string/);
    expect(bad([1])).toMatch(/overrides must be an object of config settings, got \[1\]/);
    // Every problem at once.
    expect(bad({ steps: 'x', nosuch: 1 })).toMatch(/nosuch is not a setting.*; config\.steps must be/);
  });

  it('checks an experiment definition: its quick and full configs against the schema', () => {
    expect(() => defineExperiment({ ...tiny, name: 'test-bad', quick: { ...tiny.quick, steps: 0 } })).toThrow(
      /experiment 'test-bad': its quick config is invalid: config\.steps must be an integer >= 1, got 0/,
    );
    expect(() => defineExperiment({ ...tiny, name: 'Bad Name' })).toThrow(/name must be lower-case words/);
  });

  it("every catalog experiment's quick and full configs pass its schema, and the schema rejects unknown keys", () => {
    for (const e of CATALOG) {
      expect(() => resolveConfig(e, true, {})).not.toThrow();
      expect(() => resolveConfig(e, false, {})).not.toThrow();
      expect(() => resolveConfig(e, true, { nosuch: 1 })).toThrow(
        new RegExp(`experiment '${e.name}': config\\.nosuch is not a setting`),
      );
    }
  });

  it('rejects metrics that do not say their split, and paper numbers for metrics it did not report', async () => {
    const unsplit = defineExperiment({
      ...tiny,
      name: 'test-unsplit',
      run: async () => ({ metrics: { accuracy: 1 }, summary: '' }),
    });
    await expect(runExperiment(unsplit, { quick: true })).rejects.toThrow(
      'reported metrics without a split prefix: accuracy',
    );
    const cites = defineExperiment({
      ...tiny,
      name: 'test-cites',
      run: async () => ({
        metrics: { test_a: 1 },
        summary: '',
        references: [{ metric: 'test_b', paper: 1, source: '-', setting: '-' }],
      }),
    });
    await expect(runExperiment(cites, { quick: true })).rejects.toThrow(
      'cites paper numbers for metrics it did not report: test_b',
    );
  });

  it('runs with the merged config, disposes artifacts unless kept, and returns the paper references', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperiment(tiny, { quick: true, overrides: { opt: { decay: 0.25 } } });
    expect(r.metrics).toEqual({ test_steps: 2, test_decay: 0.25 });
    expect(r.config.opt).toEqual({ lr: 0.01, decay: 0.25 });
    expect(r.references).toEqual([{ metric: 'test_steps', paper: 2, source: 'Table 1', setting: 'ours: 2 steps' }]);
    expect(r.artifacts).toBeUndefined();
    expect(tf.memory().numTensors).toBe(before);
    const kept = await runExperiment(tiny, { quick: true, keep: true });
    expect(kept.artifacts.t.shape).toEqual([2]);
    kept.artifacts.t.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expect(runExperiment(tiny, { seed: 1.5 })).rejects.toThrow(/seed must be an integer, got 1\.5/);
  });
});

describe('repeat task (induction probe)', () => {
  it('matches its worked example layout and grades from the first predictable repeat', () => {
    const b = repeatTask({ batch: 64, seqLen: 20, vocabSize: 16, minLen: 3, maxLen: 8, seed: 1 });
    for (let r = 0; r < b.batch; r++) {
      const { inputs, targets, lossMask } = b.row(r);
      const L = b.lengths[r];
      expect(inputs[0]).toBe(1); // BOS
      const seg = inputs.slice(1, 1 + L);
      expect(new Set(seg).size).toBe(L); // distinct tokens
      for (let t = 1; t < 20; t++) expect(inputs[t]).toBe(seg[(t - 1) % L]);
      expect(targets.slice(0, 19)).toEqual(inputs.slice(1));
      expect(lossMask.indexOf(1)).toBe(L + 1);
      expect(lossMask.slice(L + 1).every((m) => m === 1)).toBe(true);
    }
    expect(new Set(b.lengths).size).toBeGreaterThan(3);
  });

  it('keeps train and test segments disjoint and is deterministic per seed', () => {
    const cfg = { batch: 200, seqLen: 20, vocabSize: 16, minLen: 3, maxLen: 8, seed: 5 };
    const test = repeatTask({ ...cfg, split: 'test' });
    const train = repeatTask({ ...cfg, split: 'train' });
    const seg = (b: typeof test, r: number) => b.row(r).inputs.slice(1, 1 + b.lengths[r]);
    for (let r = 0; r < 200; r++) {
      expect(splitOf(seg(test, r))).toBe('test');
      expect(splitOf(seg(train, r))).toBe('train');
    }
    expect(Array.from(repeatTask(cfg).inputs)).toEqual(Array.from(train.inputs));
    expect(() => repeatTask({ ...cfg, vocabSize: 8 })).toThrow('vocabSize');
  });
});

describe('induction-heads experiment', () => {
  beforeAll(async () => {
    await backend.ready();
  });

  it('is reproducible for a seed', async () => {
    const overrides = { steps: 15, testRows: 16, batch: 8, layers: [1] };
    const a = await runExperiment('induction-heads', { quick: true, seed: 3, progress: false, overrides });
    const b = await runExperiment('induction-heads', { quick: true, seed: 3, progress: false, overrides });
    expect(a.metrics).toEqual(b.metrics);
    expect(Object.keys(a.metrics)).toContain('test_accuracy_1layer');
  });

  it('quick config: two layers learn the repeats, one layer cannot (held-out test split)', async () => {
    const r = await runExperiment('induction-heads', { quick: true, seed: 0, progress: false });
    const m = r.metrics;
    // Measured (seed 0): 2 layers 0.90, 1 layer 0.48 on the test split. Head scores are reported but not asserted:
    // at this size the learned patterns are diffuse (all heads ~0.1-0.3); the notebook's full mode shows sharp heads.
    expect(m.test_accuracy_2layer).toBeGreaterThan(0.75);
    expect(m.test_accuracy_2layer).toBeGreaterThan(m.test_accuracy_1layer + 0.25);
    expect(m.test_induction_score_2layer).toBeGreaterThan(0);
  }, 600_000);

  it('keeps the trained models and test rows it scored (keep: true); its heads table and metrics come from them', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperiment('induction-heads', {
      quick: true,
      seed: 3,
      progress: false,
      overrides: { steps: 15, testRows: 16, batch: 8 },
      keep: true,
    });
    const a = r.artifacts as InductionArtifacts;
    expect(a.models.map((m) => m.layers)).toEqual([1, 2]);
    expect(a.test.batch).toBe(16);
    for (const m of a.models) {
      expect(m.records).toHaveLength(15);
      expect(Math.max(...m.scores.flat())).toBe(r.metrics[`test_induction_score_${m.layers}layer`]);
      expect(evaluateInduction(m.model, a.test).accuracy).toBeCloseTo(r.metrics[`test_accuracy_${m.layers}layer`], 6);
      const rows = r.tables!.heads.filter((row) => row.layers === m.layers);
      expect(rows.map((row) => [row.layer, row.head])).toEqual(m.scores.flatMap((hs, l) => hs.map((_, h) => [l, h])));
      for (const row of rows)
        expect(row.previous_token_score).toBe(
          +m.previousTokenScores[row.layer as number][row.head as number].toFixed(4),
        );
    }
    // Previous-token scores against a plain loop over the cached patterns: mean weight from t to t - 1 over graded t.
    const two = a.models[1];
    const { inputs, targets, lossMask } = a.test.toTensors();
    const { logits, cache } = two.model.runWithCache(inputs);
    const S = a.test.seqLen;
    for (let l = 0; l < 2; l++) {
      const w = cache.get(`blocks.${l}.attn.hook_pattern`).arraySync() as number[][][][];
      for (let h = 0; h < 4; h++) {
        let sum = 0;
        let count = 0;
        a.test.lengths.forEach((L, b) => {
          for (let t = L + 1; t < S; t++, count++) sum += w[b][h][t][t - 1];
        });
        expect(two.previousTokenScores[l][h]).toBeCloseTo(sum / count, 5);
      }
    }
    tf.dispose([inputs, targets, lossMask, logits]);
    cache.dispose();
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);
});

describe('attnlab command line', () => {
  it('info --json reports the backend and versions', () => {
    const info = JSON.parse(
      execFileSync(process.execPath, [join(root, 'bin', 'attnlab.js'), 'info', '--json'], {
        encoding: 'utf8',
        cwd: root,
      }),
    );
    expect(backend.BACKEND_ORDER).toContain(info.backend.chosen);
    expect(info.versions.tfjs).toBe('4.22.0');
    expect(info.capabilities.experiments).toContain('induction-heads');
  });

  it('experiment list and errors', () => {
    const list = cli('experiment', 'list', '--json');
    expect(list.status).toBe(0);
    expect(JSON.parse(list.stdout).map((e: { name: string }) => e.name)).toContain('induction-heads');
    const unknown = cli('experiment', 'nope');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/unknown experiment 'nope'/);
    const badSeed = cli('experiment', 'induction-heads', '--seed', 'x');
    expect(badSeed.status).toBe(2);
    expect(badSeed.stderr).toMatch(/--seed must be an integer, got 'x'/);
    const small = cli(
      'experiment',
      'sparse-scaling',
      '--quick',
      '--json',
      '--config',
      '{"lengths": [64], "repeats": 1, "methods": ["hip"]}',
    );
    expect(small.status).toBe(0);
    expect(JSON.parse(small.stdout).config).toMatchObject({ lengths: [64], repeats: 1, methods: ['hip'] });
    const badConfig = cli('experiment', 'induction-heads', '--config', '[1]');
    expect(badConfig.status).toBe(2);
    expect(badConfig.stderr).toMatch(/--config must be a JSON object of config fields, got '\[1\]'/);
    // Bad settings are usage errors before any work starts (the full run would take minutes).
    for (const [cfg, msg] of [
      ['{"nosuch":1}', /config\.nosuch is not a setting/],
      ['{"steps":"x"}', /config\.steps must be an integer >= 1, got "x"/],
      ['{"lr":-1}', /config\.lr must be a number > 0, got -1/],
    ] as const) {
      const r = cli('experiment', 'induction-heads', '--config', cfg);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/training/);
    }
    const nested = cli('experiment', 'sparse-approx', '--quick', '--config', '{"seer":{"steps":0}}');
    expect(nested.status).toBe(2);
    expect(nested.stderr).toMatch(/config\.seer\.steps must be an integer >= 1, got 0/);
    const badFlag = cli('experiment', 'list', '--fast');
    expect(badFlag.status).toBe(2);
    expect(badFlag.stderr).toMatch(/unknown option --fast/);
    expect(cli('frobnicate').status).toBe(2);
  });
});

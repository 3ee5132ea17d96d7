import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { getExperiment, listExperiments, registerExperiment, runExperiment } from '../lib/experiments/index.js';
import { repeatTask } from '../lib/data/repeat.js';
import { splitOf } from '../lib/data/batch.js';

const root = join(import.meta.dirname, '..');
const cli = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'attnlab.js'), ...args], { encoding: 'utf8', cwd: root, env: { ...process.env, ATTNLAB_BACKEND: '' } });

describe('experiment registry', () => {
  it('lists registered experiments and names them when one is unknown', () => {
    expect(listExperiments().map((e) => e.name)).toContain('induction-heads');
    expect(() => getExperiment('nope')).toThrow(/unknown experiment 'nope'; registered: .*induction-heads/);
  });

  it('rejects metrics that do not say their split', async () => {
    registerExperiment({ name: 'test-unsplit', paper: '-', description: '-', quick: {}, full: {}, run: async () => ({ metrics: { accuracy: 1 }, summary: '' }) });
    await expect(runExperiment('test-unsplit', { quick: true })).rejects.toThrow("reported metrics without a split prefix: accuracy");
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
});

describe('attnlab command line', () => {
  it('info --json reports the backend and versions', () => {
    const info = JSON.parse(execFileSync(process.execPath, [join(root, 'bin', 'attnlab.js'), 'info', '--json'], { encoding: 'utf8', cwd: root }));
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
    const small = cli('experiment', 'sparse-scaling', '--quick', '--json', '--config', '{"lengths": [64], "repeats": 1, "methods": ["hip"]}');
    expect(small.status).toBe(0);
    expect(JSON.parse(small.stdout).config).toMatchObject({ lengths: [64], repeats: 1, methods: ['hip'] });
    const badConfig = cli('experiment', 'induction-heads', '--config', '[1]');
    expect(badConfig.status).toBe(2);
    expect(badConfig.stderr).toMatch(/--config must be a JSON object of config fields, got '\[1\]'/);
    const badFlag = cli('experiment', 'list', '--fast');
    expect(badFlag.status).toBe(2);
    expect(badFlag.stderr).toMatch(/unknown option --fast/);
    expect(cli('frobnicate').status).toBe(2);
  });
});

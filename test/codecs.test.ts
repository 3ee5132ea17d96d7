/**
 * Artifact codecs (lib/experiments/codecs.ts): experiments whose artifacts hold trained models are cached as config +
 * weights and rebuilt, so a warm run does not retrain; and the paper-vs-ours rows show their setting notes, escaped.
 *
 * Each cached round trip: run quick with tiny overrides into a temporary cache folder, run again with `keep`: the second
 * result is `cached`, its rebuilt models compute what the trained ones did on a fixed input, nothing leaks; a changed
 * config runs again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBatch } from '../lib/data/batch.js';
import { CharTokenizer } from '../lib/data/tokenizer.js';
import { experimentBundle, referencesHtml, referencesTable, referencesText } from '../lib/display/results.js';
import { artifactCodec, charTokenizerKind, tokenBatchKind, toyLMKind, weightsKind } from '../lib/experiments/codecs.js';
import { defineExperiment, type Experiment, runExperimentWith } from '../lib/experiments/contract.js';
import { int, obj } from '../lib/experiments/schema.js';
import { ToyLM } from '../lib/layers/toylm.js';
import { medusaExperiment } from '../lib/papers/inference/medusa/experiment.js';
import { actCalibration } from '../lib/papers/interp/act/experiment.js';
import { sinkEmergence } from '../lib/papers/interp/sinks/experiment.js';
import { SinkLM } from '../lib/papers/interp/sinks/model.js';
import { useBackend } from './helpers.js';

let cache: string;
beforeAll(async () => {
  await useBackend('wasm');
  cache = mkdtempSync(join(tmpdir(), 'attnlab-codecs-'));
});
afterAll(() => rmSync(cache, { recursive: true, force: true }));

/** Runs `exp` twice into the test cache; returns the fresh result (artifacts kept) and the cached one. */
async function twice<C, A>(exp: Experiment<C, A>, overrides: Record<string, unknown>) {
  const logs: string[] = [];
  const log = (l: string) => logs.push(l);
  const fresh = await runExperimentWith(exp, { quick: true, cache, keep: true, progress: false, overrides, log });
  expect(fresh.cached).toBeUndefined();
  expect(
    logs.some((l) => l.includes('stored in the cache')),
    logs.join('\n'),
  ).toBe(true);
  const n0 = tf.memory().numTensors;
  const warm = await runExperimentWith(exp, { quick: true, cache, keep: true, progress: false, overrides, log });
  expect(warm.cached).toBeDefined();
  expect(warm.metrics).toEqual(fresh.metrics);
  return { fresh, warm, n0 };
}

describe('artifactCodec', () => {
  const SHAPE = { vocab: 9, dModel: 8, heads: 2, layers: 1, maxLen: 6 };
  interface Cfg {
    steps: number;
  }
  interface Art {
    models: { label: string; model: ToyLM }[];
    best: ToyLM;
    byName: Map<string, ToyLM>;
    test: ReturnType<typeof makeBatch>;
    tokenizer: CharTokenizer;
    probe: (ids: number[]) => string;
    dispose(): void;
  }
  let runs = 0;
  const exp = defineExperiment<Cfg, Art>({
    name: 'codec-toy',
    paper: 'none',
    description: 'two ToyLMs nudged away from their init, one of them also the best',
    schema: obj<Cfg>({ steps: int({ min: 0 }) }),
    quick: { steps: 1 },
    full: { steps: 1 },
    artifactCodec: artifactCodec([toyLMKind, tokenBatchKind, charTokenizerKind], {
      drop: ['probe'],
      rebuild: (a) => {
        a.probe = (ids) => a.tokenizer.decode(ids);
      },
    }),
    async run(cfg) {
      runs++;
      const models = [1, 2].map((seed) => {
        const model = new ToyLM({ ...SHAPE, seed });
        for (const v of model.variables()) {
          const moved = tf.tidy(() => v.add(0.01 * seed * (cfg.steps + 1)));
          v.assign(moved);
          moved.dispose();
        }
        return { label: `m${seed}`, model };
      });
      const full = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7]);
      const test = makeBatch('toy', full, new Float32Array(12).fill(1), 2, 6, 9);
      const tokenizer = CharTokenizer.fromText('abcdefgh');
      return {
        metrics: { test_x: cfg.steps },
        summary: 's',
        artifacts: {
          models,
          best: models[1].model,
          byName: new Map(models.map((m) => [m.label, m.model])),
          test,
          tokenizer,
          probe: (ids) => tokenizer.decode(ids),
          dispose: () => models.forEach((m) => m.model.dispose()),
        },
      };
    },
  });

  it('stores models once each, rebuilds them with equal outputs, restores batches, tokenizers and dropped functions, leaks nothing', async () => {
    const n0 = tf.memory().numTensors;
    const { fresh, warm } = await twice(exp, {});
    expect(runs).toBe(1);
    const a = fresh.artifacts as Art;
    const b = warm.artifacts as Art;
    const tokens = tf.tensor2d([[1, 2, 3, 4, 5, 6]], undefined, 'int32');
    for (let i = 0; i < 2; i++) {
      const la = tf.tidy(() => a.models[i].model.forward(tokens));
      const lb = tf.tidy(() => b.models[i].model.forward(tokens));
      expect(await lb.array()).toEqual(await la.array());
      tf.dispose([la, lb]);
    }
    // A model that appears twice is rebuilt once.
    expect(b.best).toBe(b.models[1].model);
    expect(b.byName.get('m1')).toBe(b.models[0].model);
    expect(b.models[0].model.config).toEqual(a.models[0].model.config);
    const ta = a.test.toTensors();
    const tb = b.test.toTensors();
    expect(await tb.inputs.array()).toEqual(await ta.inputs.array());
    expect(b.test.row(1)).toEqual(a.test.row(1));
    tf.dispose([ta.inputs, ta.targets, ta.lossMask, tb.inputs, tb.targets, tb.lossMask, tokens]);
    expect(b.tokenizer.decode([1, 2, 3])).toBe('abc');
    expect(b.probe([3, 2, 1])).toBe(a.probe([3, 2, 1]));
    a.dispose();
    b.dispose();
    b.dispose(); // idempotent
    expect(tf.memory().numTensors).toBe(n0);
  });

  it('does not reuse an entry for a changed config', async () => {
    const before = runs;
    const r = await runExperimentWith(exp, { quick: true, cache, overrides: { steps: 2 } });
    expect(r.cached).toBeUndefined();
    expect(runs).toBe(before + 1);
  });

  it('weightsKind refuses weights of another shape, naming the kind, the weight and both shapes, and leaks nothing', () => {
    const kind = weightsKind('ToyLM', ToyLM, (c: ConstructorParameters<typeof ToyLM>[0]) => new ToyLM(c));
    const m = new ToyLM({ ...SHAPE, seed: 1 });
    const stored = kind.encode(m, () => undefined) as { config: unknown; names: string[]; weights: tf.Tensor[] };
    const n0 = tf.memory().numTensors;
    const weights = stored.weights.map((w, i) => (i === 0 ? tf.zeros([3, 3]) : w.clone()));
    expect(() => kind.decode({ ...stored, weights }, () => undefined)).toThrow(
      /ToyLM codec: weight 0 \(.*\) is stored as float32 \[3,3\], the model's variable is float32 \[9,8\]/,
    );
    expect(tf.memory().numTensors).toBe(n0);
    m.dispose();
  });
});

describe('experiments with model artifacts come back from the cache', () => {
  it('medusa: the ToyLM, the heads over it and the tokenizer; same logits and head outputs', async () => {
    const { fresh, warm, n0 } = await twice(medusaExperiment, {
      model: { dModel: 16, heads: 2, layers: 1, seqLen: 40, batch: 4, steps: 3 },
      medusa: { heads: 2, steps: 2, batch: 4 },
      tree: { nodes: 4, topK: 2 },
      validation: { prompts: 1 },
      test: { prompts: 2, promptLen: 8, newTokens: 8 },
    });
    const a = fresh.artifacts!;
    const b = warm.artifacts!;
    expect(b.heads.model).toBe(b.model);
    const tokens = tf.tensor2d([[1, 2, 3, 4, 5]], undefined, 'int32');
    const [la, lb] = [a, b].map((x) => tf.tidy(() => x.model.forward(tokens)));
    expect(await lb.array()).toEqual(await la.array());
    const hidden = tf.randomNormal([3, 16], 0, 1, 'float32', 7);
    const [ha, hb] = [a, b].map((x) => x.heads.logits(hidden));
    expect(await hb.array()).toEqual(await ha.array());
    expect(b.tokenizer.decode([1, 2, 3])).toBe(a.tokenizer.decode([1, 2, 3]));
    tf.dispose([tokens, la, lb, hidden, ha, hb]);
    b.dispose();
    expect(tf.memory().numTensors).toBe(n0);
    a.dispose();
  });

  it('sink-emergence: every SinkLM and the text decoder', async () => {
    const { fresh, warm, n0 } = await twice(sinkEmergence, {
      variants: ['softmax', 'kv-bias'],
      layers: 1,
      dModel: 8,
      heads: 2,
      seqLen: 8,
      batch: 4,
      steps: 2,
      evalEvery: 2,
      evalWindows: 4,
      testWindows: 4,
    });
    const a = fresh.artifacts!;
    const b = warm.artifacts!;
    expect(b.models.map((m) => m.variant)).toEqual(['softmax', 'kv-bias']);
    for (let i = 0; i < 2; i++) {
      expect(b.models[i].model).toBeInstanceOf(SinkLM);
      const [oa, ob] = [a, b].map((x) => tf.tidy(() => x.models[i].model.forward(x.testInputs).logits));
      expect(await ob.array()).toEqual(await oa.array());
      tf.dispose([oa, ob]);
    }
    const ids = Array.from(await a.testInputs.data()).slice(0, 8);
    expect(b.decode(ids)).toBe(a.decode(ids));
    b.dispose();
    expect(tf.memory().numTensors).toBe(n0);
    a.dispose();
  });

  it('act-calibration: the SinkLM, the prompt batch and attentionMaps rebuilt over them', async () => {
    const { fresh, warm, n0 } = await twice(actCalibration, {
      seqLen: 14,
      layers: 1,
      dModel: 8,
      heads: 2,
      batch: 8,
      steps: 2,
      calibrationRows: 16,
      testRows: 16,
      thresholds: [0.1],
    });
    const a = fresh.artifacts!;
    const b = warm.artifacts!;
    expect(b.attentionMaps(2)).toEqual(a.attentionMaps(2));
    expect(b.test.row(0)).toEqual(a.test.row(0));
    b.dispose();
    expect(tf.memory().numTensors).toBe(n0);
    a.dispose();
  });
});

describe('paper-vs-ours rows show their setting, escaped', () => {
  const result = {
    experiment: 'x',
    seed: 0,
    quick: true,
    seconds: 1,
    summary: 'sum',
    metrics: { test_acc: 0.5 },
    tables: { rows: [{ model: 'row-label', v: 1 }] },
    references: [
      { metric: 'test_acc', paper: 0.9, source: 'Table 1', setting: 'ours: <b>2 layers</b> & "toy"; paper: 7B' },
      { metric: 'row-label', paper: 3, source: 'Fig. 2' },
    ],
  };

  it('in the table, the HTML (escaped) and the text form', () => {
    const t = referencesTable(result);
    expect(t.rows[0]).toEqual(['test_acc', 0.5, 0.9, 'Table 1', 'ours: <b>2 layers</b> & "toy"; paper: 7B']);
    expect(t.rows[1]).toEqual(['row-label', 'row of table rows', 3, 'Fig. 2', 'not stated']);
    const html = referencesHtml(result);
    expect(html).toContain('ours: &lt;b&gt;2 layers&lt;/b&gt; &amp; &quot;toy&quot;; paper: 7B');
    expect(html).not.toContain('<b>2 layers');
    expect(html).toContain('not stated');
    const text = referencesText(result);
    expect(text).toContain('test_acc: ours 0.5, paper 0.9');
    expect(text).toContain('setting: ours: <b>2 layers</b> & "toy"; paper: 7B');
    expect(referencesHtml({ metrics: {} })).toBe('');
  });

  it('in an experiment result as displayed', () => {
    const b = experimentBundle(result);
    expect(b['text/html']).toContain('paper vs ours');
    expect(b['text/html']).toContain('&lt;b&gt;2 layers&lt;/b&gt;');
    expect(b['text/html']).not.toContain('<b>2 layers');
    expect(b['text/plain']).toContain('setting: ours: <b>2 layers</b>');
  });
});

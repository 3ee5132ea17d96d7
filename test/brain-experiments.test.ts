/** The registered brain experiments: the required result on the quick config, and the other two end to end. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as backend from '../lib/backend/index.js';
import { runExperiment } from '../lib/catalog.js';
import type {
  BrainCaptionsArtifacts,
  BrainDecodingArtifacts,
  BrainEncoderArtifacts,
} from '../lib/papers/cogneuro/brain/index.js';
import * as brain from '../lib/papers/cogneuro/brain/index.js';
import { expectClose } from './helpers.js';

describe('brain experiments', () => {
  beforeAll(async () => {
    await backend.ready();
  });

  it('brain-encoder: every simulator and model on a tiny config; shared ridge equals per-simulator ridge; no leaks', async () => {
    const before = tf.memory().numTensors;
    const overrides = {
      voxelsPerRegion: 2,
      train: 120,
      validation: 50,
      test: 40,
      steps: 12,
      batch: 32,
      dModel: 16,
      heads: 2,
      ffn: 20,
      simulators: ['attention', 'max', 'conjunction', 'prf'],
      models: ['oracle', 'ridge', 'factorised', 'cross-only', 'transformer'],
      bootstrap: 20,
    };
    const r = await runExperiment('brain-encoder', { quick: true, seed: 0, progress: false, keep: true, overrides });
    const m = r.metrics;
    for (const s of ['attention', 'max', 'conjunction', 'prf']) {
      for (const model of ['ridge', 'factorised', 'cross_only', 'transformer']) {
        const k = `test_${s}_category_${model}_frac_ceiling`;
        expect(Number.isFinite(m[k]), k).toBe(true);
        expect(m[`${k}_ci95`], `${k}_ci95`).toBeGreaterThan(0);
        expect(Number.isFinite(m[`validation_${s}_category_${model}_r`])).toBe(true);
      }
      // The oracle exists only where the response is a linear readout of one routed vector.
      expect(m[`test_${s}_category_oracle_frac_ceiling`] !== undefined, s).toBe(s === 'attention' || s === 'prf');
      expect(m[`test_${s}_category_transformer_minus_baseline_ci95`]).toBeGreaterThan(0);
      expect(m[`test_${s}_early_routing`]).toBeGreaterThan(-1);
      // Category routing has a true map only in the attention simulator.
      expect(m[`test_${s}_category_routing`] !== undefined, s).toBe(s === 'attention');
    }
    expect(m.test_attention_category_routing).toBeGreaterThan(-1);
    expect(m.params_transformer).toBeGreaterThan(m.params_cross_only);
    const adv = r.tables!.advantage;
    expect(adv.map((a) => a.simulator)).toEqual(['attention', 'max', 'conjunction', 'prf']);
    // The baseline is the better of ridge and factorised on validation, never on test.
    for (const a of adv) {
      const s = a.simulator;
      const [vr, vf] = [m[`validation_${s}_category_ridge_r`], m[`validation_${s}_category_factorised_r`]];
      expect(a.baseline, String(s)).toBe(vr >= vf ? 'ridge' : 'factorised');
    }
    expect(r.summary).toMatch(/^Category regions, fraction of the noise ceiling/);
    const a = r.artifacts as BrainEncoderArtifacts;
    expect(a.simulators).toEqual(['attention', 'max', 'conjunction', 'prf']);
    // The shared ridge fit gives each simulator exactly its own per-voxel fit.
    const conj = a.bySimulator.conjunction!;
    const own = brain.fitRidge(
      conj.sim.train.features,
      conj.sim.train.responses,
      conj.sim.validation.features,
      conj.sim.validation.responses,
      { scales: r.config.ridgeScales },
    );
    const ownModel = brain.ridgeModel(own);
    const ownTest = brain.predictAll(ownModel, conj.sim.test.features);
    ownModel.dispose();
    expectClose(conj.predictions.ridge!.data, ownTest.data, { rtol: 1e-3, atol: 1e-3 }, 'shared vs own ridge');
    expect(a.bySimulator.attention!.transformer!.config.layer).toBe('official');
    expect(a.bySimulator.attention!.crossOnly!.config.layer).toBe('cross-only');
    expect(a.bySimulator.max!.losses.transformer).toHaveLength(12);
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);

  it('brain-captions and brain-decoding run and report their metrics (small overrides)', async () => {
    const c = await runExperiment('brain-captions', {
      quick: true,
      seed: 1,
      progress: false,
      keep: true,
      overrides: {
        voxelsPerRegion: 4,
        train: 150,
        validation: 60,
        test: 60,
        natural: 300,
        conceptScenes: 10,
        captionerSteps: 50,
      },
    });
    for (const k of ['test_agreement_projected', 'test_agreement_raw', 'test_manifold_similarity_projected'])
      expect(c.metrics[k]).toBeGreaterThanOrEqual(0);
    // A convex combination of unit natural embeddings is close to them; a raw weight need not be.
    expect(c.metrics.test_manifold_similarity_projected).toBeGreaterThan(c.metrics.test_manifold_similarity_raw);
    // Per region: the agreement columns are the metrics (category regions; none for early ones), from the kept captions.
    expect((c.artifacts as BrainCaptionsArtifacts).captions).toHaveLength(8 * 4);
    for (const row of c.tables!.regions) {
      const key = `test_${String(row.region).toLowerCase()}_agreement_raw`;
      expect(row.agreement_raw).toBe(row.truth === 'location' ? null : +c.metrics[key].toFixed(3));
    }
    const overrides = { parcels: 40, train: 300, steps: 40 };
    const d1 = await runExperiment('brain-decoding', { quick: true, seed: 2, progress: false, overrides, keep: true });
    const d2 = await runExperiment('brain-decoding', { quick: true, seed: 2, progress: false, overrides });
    expect(d1.metrics.test_whole_top5).toBeGreaterThan(d1.metrics.test_chance_top5);
    expect({ ...d1.metrics, seconds: 0 }).toEqual({ ...d2.metrics, seconds: 0 });
    const runs = (d1.artifacts as BrainDecodingArtifacts).runs;
    expect(runs.whole.losses).toHaveLength(40);
    expect(runs.whole.bestStep).toBe(d1.metrics.validation_whole_best_step);
    expect(runs.visual.ranks).toHaveLength(100);
    expect(d2.artifacts).toBeUndefined();
  }, 120_000);
});

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

describe('brain experiments', () => {
  beforeAll(async () => {
    await backend.ready();
  });

  it('brain-encoder (quick): the transformer beats ridge on every category region with fewer parameters, >= 80% of the noise ceiling', async () => {
    const before = tf.memory().numTensors;
    const r = await runExperiment('brain-encoder', { quick: true, seed: 0, progress: false, keep: true });
    const m = r.metrics;
    // Measured (seed 0, held-out test stimuli, r / ceiling): transformer 0.93-0.97, ridge 0.73-0.83, oracle 0.98-0.99.
    for (const region of ['ffa', 'eba', 'ppa', 'vwfa']) {
      expect(m[`test_${region}_transformer_frac_ceiling`], region).toBeGreaterThan(0.8);
      expect(m[`test_${region}_transformer_r`], region).toBeGreaterThan(m[`test_${region}_ridge_r`]);
      expect(m[`test_${region}_oracle_frac_ceiling`], region).toBeGreaterThan(0.95);
    }
    expect(m.params_transformer).toBeLessThan(m.params_ridge);
    expect(m.test_early_routing).toBeGreaterThan(0.8);
    expect(m.test_category_routing).toBeGreaterThan(0.3);
    expect(Math.abs(m.test_ffa_ceiling - m.test_ceiling_analytic)).toBeLessThan(0.05);
    // The artifacts the notebook draws from: the simulation and the fitted models, freed by dispose().
    const a = r.artifacts as BrainEncoderArtifacts;
    expect(a.transformer).toBeDefined();
    expect(a.losses.transformer).toHaveLength(r.config.steps);
    expect(a.sim.system.regions.map((x) => x.name)).toEqual(r.tables!.regions.map((x) => x.region));
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

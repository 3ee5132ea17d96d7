/**
 * The `brain-captions` experiment: per-voxel ridge encoders on the embedding of the simulated scenes, projected onto
 * unpaired natural embeddings (BrainSCUBA) or used raw, each captioned by its nearest concept. Agreement: the fraction
 * of category-region voxels whose caption names the region's category. Also the on-manifold similarity of each.
 * Artifacts: every voxel's captions.
 */
import * as tf from '@tensorflow/tfjs';
import type { ExperimentContext, ExperimentOutput } from '../../../../experiments/contract.js';
import { Rng } from '../../../../util/random.js';
import { type SimulationFields, simulationConfig } from '../encoder/experiment.js';
import { fitRidge } from '../encoder/ridge.js';
import { disposeSimulation, type Simulation, simulate } from '../simulate/dataset.js';
import { extractFeatures } from '../simulate/features.js';
import { DEFAULT_SCENES, drawScenes, stackPixels } from '../simulate/scenes.js';
import { coverageTensor } from '../simulate/voxels.js';
import { mat, mean, pearsonColumns } from '../stats.js';
import {
  type Concept,
  caption,
  captionerConcepts,
  conceptEmbeddings,
  createEmbedder,
  disposeCaptioner,
  disposeEmbedder,
  embed,
  manifoldSimilarity,
  nearestConcepts,
  projectToManifold,
  sceneConcept,
  trainCaptioner,
} from './index.js';

export interface BrainCaptionsConfig extends SimulationFields {
  embeddingDim: number;
  /** Weight of the category content in the embedding (createEmbedder). */
  semanticWeight: number;
  natural: number;
  conceptScenes: number;
  temperature: number;
  captionerSteps: number;
  ridgeScales: number[];
}

export interface VoxelCaption {
  voxel: number;
  region: string;
  truth: string;
  /** The trained captioner's concept for the projected and the raw weight. */
  projected: Concept;
  raw: Concept;
  /** The nearest concept embedding to each. */
  projectedNearest: Concept;
  rawNearest: Concept;
  caption: string;
  test_r: number;
}

export interface CaptionResult {
  sim: Simulation;
  captions: VoxelCaption[];
  metrics: Record<string, number>;
}

export async function captionVoxels(cfg: BrainCaptionsConfig, seed: number): Promise<CaptionResult> {
  const sim = simulate(simulationConfig(cfg), seed);
  const embedder = createEmbedder(cfg.channels, cfg.embeddingDim, seed, cfg.semanticWeight);
  const scenes = { ...DEFAULT_SCENES, size: cfg.imageSize };
  const [eTrain, eVal, eTest] = [sim.train, sim.validation, sim.test].map((s) =>
    embed(embedder, s.features, s.coverage),
  );
  const naturalScenes = drawScenes({ ...scenes, minObjects: 0 }, cfg.natural, new Rng(seed).fork('natural'));
  const natural = tf.tidy(() =>
    embed(
      embedder,
      extractFeatures(sim.extractor, stackPixels(naturalScenes)),
      coverageTensor(naturalScenes, cfg.grid),
    ),
  );
  const concepts = conceptEmbeddings(embedder, sim.extractor, scenes, cfg.conceptScenes, seed);
  const captioner = await trainCaptioner(natural, naturalScenes.map(sceneConcept), cfg.captionerSteps, seed);
  const fit = fitRidge(eTrain, sim.train.responses, eVal, sim.validation.responses, { scales: cfg.ridgeScales });
  const V = sim.system.voxelCount;
  const w = tf.tensor2d(fit.weights, [cfg.embeddingDim, V]).transpose() as tf.Tensor2D; // [V, D]
  const pred = tf.tidy(() => tf.add(tf.matMul(eTest, w, false, true), tf.tensor1d(fit.intercept)).dataSync());
  const testR = pearsonColumns(mat(sim.test.responses.rows, V, pred), sim.test.responses);
  const { projected, mixing } = projectToManifold(w, natural, cfg.temperature);
  const proj = captionerConcepts(captioner, projected);
  const raw = captionerConcepts(captioner, w);
  const projNearest = nearestConcepts(projected, concepts);
  const rawNearest = nearestConcepts(w, concepts);
  const onManifold = { projected: manifoldSimilarity(projected, natural), raw: manifoldSimilarity(w, natural) };
  const captions: VoxelCaption[] = [];
  for (const reg of sim.system.regions) {
    for (const v of reg.voxels) {
      captions.push({
        voxel: v,
        region: reg.name,
        truth: reg.category ?? 'location',
        projected: proj[v].concept,
        raw: raw[v].concept,
        projectedNearest: projNearest[v].concept,
        rawNearest: rawNearest[v].concept,
        caption: caption(proj[v]),
        test_r: testR[v],
      });
    }
  }
  const cat = captions.filter((c) => c.truth !== 'location');
  const metrics: Record<string, number> = {
    test_agreement_projected: mean(cat.map((c) => +(c.projected === c.truth))),
    test_agreement_raw: mean(cat.map((c) => +(c.raw === c.truth))),
    test_agreement_nearest_projected: mean(cat.map((c) => +(c.projectedNearest === c.truth))),
    test_agreement_nearest_raw: mean(cat.map((c) => +(c.rawNearest === c.truth))),
    test_manifold_similarity_projected: mean(onManifold.projected),
    test_manifold_similarity_raw: mean(onManifold.raw),
    test_encoder_r_category: mean(cat.map((c) => c.test_r)),
    test_encoder_r_early: mean(captions.filter((c) => c.truth === 'location').map((c) => c.test_r)),
  };
  for (const reg of sim.system.regions.filter((r) => r.kind === 'category')) {
    const rows = cat.filter((c) => c.region === reg.name);
    metrics[`test_${reg.name.toLowerCase()}_agreement_projected`] = mean(rows.map((c) => +(c.projected === c.truth)));
    metrics[`test_${reg.name.toLowerCase()}_agreement_raw`] = mean(rows.map((c) => +(c.raw === c.truth)));
  }
  tf.dispose([eTrain, eVal, eTest, natural, concepts, w, projected, mixing]);
  disposeEmbedder(embedder);
  disposeCaptioner(captioner);
  return { sim, captions, metrics };
}

/** The experiment's artifacts: one entry per voxel, region by region (plain data, nothing to dispose). */
export interface BrainCaptionsArtifacts {
  captions: VoxelCaption[];
}

export async function runBrainCaptions(
  cfg: BrainCaptionsConfig,
  ctx: ExperimentContext,
): Promise<ExperimentOutput<BrainCaptionsArtifacts>> {
  const t0 = performance.now();
  const r = await captionVoxels(cfg, ctx.seed);
  disposeSimulation(r.sim);
  const m = r.metrics;
  m.seconds = (performance.now() - t0) / 1000;
  const rows = [...new Set(r.captions.map((c) => c.region))].map((region) => {
    const cs = r.captions.filter((c) => c.region === region);
    const top = (key: 'projected' | 'raw') => {
      const counts = new Map<string, number>();
      for (const c of cs) counts.set(c[key], (counts.get(c[key]) ?? 0) + 1);
      return [...counts.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
    };
    // Agreement is defined for category regions only (an early region's truth is a location, not a concept).
    const agreement = (key: 'projected' | 'raw') =>
      cs[0].truth === 'location' ? null : +mean(cs.map((c) => +(c[key] === c.truth))).toFixed(3);
    return {
      region,
      truth: cs[0].truth,
      voxels: cs.length,
      example_caption: cs[0].caption,
      agreement_projected: agreement('projected'),
      agreement_raw: agreement('raw'),
      projected_captions: top('projected'),
      raw_captions: top('raw'),
      encoder_r: +mean(cs.map((c) => c.test_r)).toFixed(3),
    };
  });
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  return {
    metrics: m,
    tables: { regions: rows },
    artifacts: { captions: r.captions },
    summary: `Caption (captioner trained on natural embeddings) names the category of the voxel's region: projected ${pct(m.test_agreement_projected)} vs raw weights ${pct(m.test_agreement_raw)}; nearest concept embedding: projected ${pct(m.test_agreement_nearest_projected)} vs raw ${pct(m.test_agreement_nearest_raw)}; similarity to the nearest natural embedding: projected ${m.test_manifold_similarity_projected.toFixed(2)}, raw ${m.test_manifold_similarity_raw.toFixed(2)}.`,
  };
}

const base = {
  imageSize: 32,
  grid: 8,
  channels: 32,
  snr: 0.5,
  tau: 6,
  repeats: 2,
  embeddingDim: 32,
  semanticWeight: 1,
  temperature: 1 / 150,
  captionerSteps: 300,
  ridgeScales: [1e-3, 1e-2, 0.1, 1, 10, 100],
};

export const BRAIN_CAPTIONS_QUICK: BrainCaptionsConfig = {
  ...base,
  voxelsPerRegion: 24,
  train: 400,
  validation: 150,
  test: 150,
  natural: 2000,
  conceptScenes: 40,
};
export const BRAIN_CAPTIONS_FULL: BrainCaptionsConfig = {
  ...base,
  voxelsPerRegion: 48,
  train: 1000,
  validation: 300,
  test: 300,
  natural: 10000,
  conceptScenes: 100,
};

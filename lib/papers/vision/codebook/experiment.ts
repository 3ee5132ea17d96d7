/**
 * `codebook-nav`: does a codebook bottleneck make a navigation policy learn faster, generalise to new distractors, and
 * forget the distractors (Eftekhar et al., ICLR 2024, https://arxiv.org/abs/2311.04193)?
 *
 * Task: lib/data/gridworld.ts. A 7 x 7 grid, the goal category given, two other goal-category objects and several
 * distractors in view; the agent sees an egocentric window of fixed random "visual" features per object type. Two
 * policies (lib/papers/vision/codebook/index.ts, NavPolicy) with the same visual encoder, goal embedding and actor:
 * plain (E -> ReLU layer -> actor) and codebook (E -> MLP scores over K codes, dropout on the scores -> softmax mix of
 * the codes -> up-projection -> actor). Both are trained by behaviour cloning on states visited by the oracle with
 * ε-random actions (so off-path states are covered), labels the oracle's actions.
 *
 * Metrics. Success rate on held-out test layouts with the training distractor types; on out-of-distribution layouts
 * whose distractors are types never seen in training (same count, and a denser variant); the training step at which
 * success on validation layouts first reaches 80% (evaluated every `evalEvery` steps); linear probes (softmax
 * regression on standardised features, fit on train-split states, scored on test-split states) for "is the goal in
 * view" and "which type is the distractor in the cell above the agent" (states with one there; a slice of the
 * observation, so linearly readable from the raw features), on the raw observation o and on each policy's representations: E (the fused input),
 * the plain policy's hidden layer, the codebook's Ê. Success and probe accuracies carry 95% binomial intervals.
 *
 * How ours differs from the paper. The paper trains EmbCLIP (frozen CLIP ResNet-50 on RGB frames, a GRU, PPO for
 * hundreds of millions of steps in ProcTHOR houses) with K = 256 codes of 10 dimensions, and reports success, episode
 * length and curvature on ObjectNav benchmarks, Habitat transfer, and probes on the agents' representations. Here the
 * "visual features" are fixed random vectors per object type in a grid window, the policy is memoryless (no GRU, no
 * previous action: the oracle's action is a function of the current view), training is behaviour cloning from a
 * shortest-path oracle (not PPO), and the codebook is smaller (quick K = 32, full K = 64; D_c = 10 in full). "New
 * distractor distributions" are unseen distractor types rather than a new simulator. We found no figure from the
 * paper we could check, so no paper numbers are returned as references; the claims compared are directions
 * (faster convergence, better OOD success, distractor identity dropped from Ê, goal visibility kept).
 */
import * as tf from '@tensorflow/tfjs';
import {
  distractorTypes,
  type GridEpisode,
  type GridSplit,
  GridWorld,
  type GridWorldConfig,
} from '../../../data/gridworld.js';
import { artifactCodec, type ModelKind, weightsKind } from '../../../experiments/codecs.js';
import { defineExperiment } from '../../../experiments/contract.js';
import { int, num, obj } from '../../../experiments/schema.js';
import { train } from '../../../train/loop.js';
import { Rng } from '../../../util/random.js';
import { codebookPerplexity, NavPolicy, type NavPolicyConfig } from './core.js';

export interface CodebookNavConfig {
  size: number;
  goals: number;
  otherGoals: number;
  distractors: number;
  /** Distractor types in the training pool; the OOD pool has as many unseen types. */
  distractorTypeCount: number;
  /** Distractor count in the dense OOD split. */
  oodDistractors: number;
  featureDim: number;
  noiseStd: number;
  /** Training layouts rolled out by the ε-oracle for the behaviour-cloning data. */
  trainEpisodes: number;
  /** Probability of a random action while collecting (the label stays the oracle's). */
  epsilon: number;
  hidden: number;
  codes: number;
  codeDim: number;
  dropout: number;
  steps: number;
  batch: number;
  lr: number;
  evalEvery: number;
  validationEpisodes: number;
  testEpisodes: number;
  /** States per split (train / test) for the probes. */
  probeStates: number;
  probeSteps: number;
}

export interface NavTrajectory {
  episode: GridEpisode;
  /** Agent cells from the start, one per move. */
  path: [number, number][];
  success: boolean;
}

export interface CodebookNavArtifacts {
  world: GridWorld;
  /** Plain and codebook policies. */
  policies: { plain: NavPolicy; codebook: NavPolicy };
  /** Validation success by training step, per policy. */
  curves: { plain: { step: number; success: number }[]; codebook: { step: number; success: number }[] };
  /** A few test trajectories per policy (same layouts). */
  trajectories: { plain: NavTrajectory[]; codebook: NavTrajectory[] };
  dispose(): void;
}

const ci95 = (p: number, n: number) => 1.96 * Math.sqrt(Math.max(p * (1 - p), 0) / Math.max(n, 1));

/** Rolls a policy out greedily on `episodes`; returns its success rate, mean moves and every path. */
export function rollout(
  policy: NavPolicy,
  world: GridWorld,
  episodes: GridEpisode[],
): { success: number; moves: number; trajectories: NavTrajectory[] } {
  const states = episodes.map((e) => world.reset(e));
  const paths: [number, number][][] = states.map((s) => [[...s.agent]]);
  for (let t = 0; t < world.maxSteps; t++) {
    const live = states.map((s, i) => (s.done ? -1 : i)).filter((i) => i >= 0);
    if (live.length === 0) break;
    const obs = new Float32Array(live.length * world.obsDim);
    live.forEach((i, r) => world.observe(states[i], obs, r * world.obsDim));
    const actions = tf.tidy(() => {
      const { logits } = policy.forward(
        tf.tensor2d(obs, [live.length, world.obsDim]),
        tf.tensor1d(
          live.map((i) => states[i].episode.goal),
          'int32',
        ),
      );
      return logits.argMax(-1).dataSync();
    });
    live.forEach((i, r) => {
      world.step(states[i], actions[r]);
      paths[i].push([...states[i].agent]);
    });
  }
  const ok = states.filter((s) => s.success).length;
  return {
    success: ok / Math.max(states.length, 1),
    moves: states.reduce((a, s) => a + s.steps, 0) / Math.max(states.length, 1),
    trajectories: states.map((s, i) => ({ episode: s.episode, path: paths[i], success: s.success })),
  };
}

interface Visited {
  obs: Float32Array;
  goal: Int32Array;
  action: Int32Array;
  goalVisible: Int32Array;
  /** Per state, the index in `pool` of the distractor in the cell above the agent, -1 when there is none. */
  above: Int32Array;
  count: number;
}

/** States visited by the ε-oracle on `episodes`, with the oracle's action and the probe labels. */
function collect(
  world: GridWorld,
  episodes: GridEpisode[],
  epsilon: number,
  seed: number,
  pool: number[],
  limit = Infinity,
): Visited {
  const rng = new Rng(seed).fork('codebook-nav:collect');
  const chunks: Float32Array[] = [];
  const rows: { goal: number; action: number; vis: number; above: number }[] = [];
  for (const ep of episodes) {
    const s = world.reset(ep);
    while (!s.done && rows.length < limit) {
      chunks.push(world.observe(s));
      const action = world.oracle(s);
      const up = world.typeAtOffset(s, -1, 0);
      rows.push({
        goal: ep.goal,
        action,
        vis: world.goalVisible(s) ? 1 : 0,
        above: up === undefined ? -1 : pool.indexOf(up),
      });
      world.step(s, rng.next() < epsilon ? rng.int(0, 4) : action);
    }
    if (rows.length >= limit) break;
  }
  const obs = new Float32Array(chunks.length * world.obsDim);
  chunks.forEach((c, i) => obs.set(c, i * world.obsDim));
  return {
    obs,
    goal: Int32Array.from(rows, (r) => r.goal),
    action: Int32Array.from(rows, (r) => r.action),
    goalVisible: Int32Array.from(rows, (r) => r.vis),
    above: Int32Array.from(rows, (r) => r.above),
    count: rows.length,
  };
}

/**
 * A linear probe: softmax regression on z-scored features (train statistics), full-batch Adam with a small L2 penalty,
 * fit on (xTrain, yTrain), scored on (xTest, yTest). Returns test accuracy and the majority-class accuracy on test.
 */
export function linearProbe(
  xTrain: Float32Array,
  yTrain: Int32Array,
  xTest: Float32Array,
  yTest: Int32Array,
  dim: number,
  classes: number,
  steps: number,
): { accuracy: number; majority: number } {
  const nTr = yTrain.length;
  const nTe = yTest.length;
  if (xTrain.length !== nTr * dim || xTest.length !== nTe * dim)
    throw new Error(
      `linearProbe: features must be [n, ${dim}], got ${xTrain.length} and ${xTest.length} numbers for ${nTr} and ${nTe} rows`,
    );
  const counts = new Array(classes).fill(0);
  for (const y of yTrain) counts[y]++;
  const major = counts.indexOf(Math.max(...counts));
  const majority = yTest.reduce((a, y) => a + (y === major ? 1 : 0), 0) / Math.max(nTe, 1);
  const w = tf.variable(tf.zeros([dim, classes]));
  const b = tf.variable(tf.zeros([classes]));
  const opt = tf.train.adam(0.05);
  try {
    const accuracy = tf.tidy(() => {
      const xt = tf.tensor2d(xTrain, [nTr, dim]);
      const mean = xt.mean(0);
      const std = xt.sub(mean).square().mean(0).sqrt().add(1e-6);
      const xs = xt.sub(mean).div(std);
      const ys = tf.oneHot(tf.tensor1d(yTrain, 'int32'), classes);
      for (let i = 0; i < steps; i++)
        opt.minimize(
          () => tf.losses.softmaxCrossEntropy(ys, xs.matMul(w).add(b)).add(w.square().sum().mul(1e-4)) as tf.Scalar,
        );
      const xe = tf.tensor2d(xTest, [nTe, dim]).sub(mean).div(std);
      const pred = xe.matMul(w).add(b).argMax(-1);
      return pred.equal(tf.tensor1d(yTest, 'int32')).toFloat().mean().dataSync()[0];
    });
    return { accuracy, majority };
  } finally {
    opt.dispose();
    tf.dispose([w, b]);
  }
}

/** The grid world for the experiment cache: its settings (its features are a pure function of them). */
const gridWorldKind: ModelKind<GridWorld> = {
  name: 'GridWorld',
  test: (x): x is GridWorld => x instanceof GridWorld,
  encode: (w): GridWorldConfig => ({
    size: w.size,
    goals: w.goals,
    otherGoals: w.otherGoals,
    distractors: w.distractors,
    distractorPool: [...w.distractorPool],
    featureDim: w.featureDim,
    noiseStd: w.noiseStd,
    featureSeed: (w as unknown as { featureSeed: number }).featureSeed,
    maxSteps: w.maxSteps,
  }),
  decode: (s) => new GridWorld(s as GridWorldConfig),
  dispose: () => undefined,
};

export const codebookNavSchema = obj<CodebookNavConfig>({
  size: int({ min: 3, max: 15 }),
  goals: int({ min: 2, max: 16 }),
  otherGoals: int({ min: 0, max: 15 }),
  distractors: int({ min: 1, max: 40 }),
  distractorTypeCount: int({ min: 2, max: 64 }),
  oodDistractors: int({ min: 1, max: 60 }),
  featureDim: int({ min: 1, max: 64 }),
  noiseStd: num({ min: 0, max: 5 }),
  trainEpisodes: int({ min: 1 }),
  epsilon: num({ min: 0, max: 1 }),
  hidden: int({ min: 1, max: 1024 }),
  codes: int({ min: 2, max: 1024 }),
  codeDim: int({ min: 1, max: 256 }),
  dropout: num({ min: 0, max: 0.95 }),
  steps: int({ min: 1 }),
  batch: int({ min: 1 }),
  lr: num({ gt: 0 }),
  evalEvery: int({ min: 1 }),
  validationEpisodes: int({ min: 1 }),
  testEpisodes: int({ min: 1 }),
  probeStates: int({ min: 10 }),
  probeSteps: int({ min: 1 }),
});

type Variant = 'plain' | 'codebook';

export const codebookNav = defineExperiment<CodebookNavConfig, CodebookNavArtifacts>({
  name: 'codebook-nav',
  paper:
    'Eftekhar et al. 2024, Selective Visual Representations Improve Convergence and Generalization for Embodied AI (ICLR), https://arxiv.org/abs/2311.04193',
  description:
    'Grid-world object navigation with distractors, behaviour cloning from a shortest-path oracle: a plain policy vs. the same policy with a softmax codebook bottleneck. Success (in distribution and with unseen distractor types), steps to 80% validation success, and linear probes on the representations (goal in view; nearest distractor type).',
  schema: codebookNavSchema,
  quick: {
    size: 7,
    goals: 4,
    otherGoals: 2,
    distractors: 6,
    distractorTypeCount: 6,
    oodDistractors: 12,
    featureDim: 8,
    noiseStd: 0.1,
    trainEpisodes: 3000,
    epsilon: 0.2,
    hidden: 64,
    codes: 32,
    codeDim: 8,
    dropout: 0.1,
    steps: 1200,
    batch: 64,
    lr: 3e-3,
    evalEvery: 100,
    validationEpisodes: 150,
    testEpisodes: 400,
    probeStates: 2000,
    probeSteps: 150,
  },
  full: {
    size: 7,
    goals: 4,
    otherGoals: 2,
    distractors: 6,
    distractorTypeCount: 8,
    oodDistractors: 12,
    featureDim: 8,
    noiseStd: 0.1,
    trainEpisodes: 10000,
    epsilon: 0.2,
    hidden: 64,
    codes: 64,
    codeDim: 10,
    dropout: 0.1,
    steps: 5000,
    batch: 128,
    lr: 2e-3,
    evalEvery: 100,
    validationEpisodes: 300,
    testEpisodes: 1000,
    probeStates: 6000,
    probeSteps: 300,
  },
  artifactCodec: artifactCodec([
    weightsKind('NavPolicy', NavPolicy, (c: NavPolicyConfig) => new NavPolicy(c)),
    gridWorldKind,
  ]),
  async run(cfg, ctx) {
    if (cfg.otherGoals >= cfg.goals)
      throw new Error(`codebook-nav: config.otherGoals must be < goals (${cfg.goals}), got ${cfg.otherGoals}`);
    const t0 = performance.now();
    const base = {
      size: cfg.size,
      goals: cfg.goals,
      otherGoals: cfg.otherGoals,
      featureDim: cfg.featureDim,
      noiseStd: cfg.noiseStd,
      featureSeed: ctx.seed,
    };
    const trainPool = distractorTypes(cfg.goals, cfg.distractorTypeCount);
    const oodPool = distractorTypes(cfg.goals, cfg.distractorTypeCount, cfg.distractorTypeCount);
    const world = new GridWorld({ ...base, distractors: cfg.distractors, distractorPool: trainPool });
    const oodWorld = new GridWorld({ ...base, distractors: cfg.distractors, distractorPool: oodPool });
    const denseWorld = new GridWorld({ ...base, distractors: cfg.oodDistractors, distractorPool: oodPool });
    const eps = (w: GridWorld, n: number, split: GridSplit, salt: number) => w.episodes(n, ctx.seed * 7 + salt, split);
    const trainEps = eps(world, cfg.trainEpisodes, 'train', 0);
    const valEps = eps(world, cfg.validationEpisodes, 'validation', 1);
    const testEps = eps(world, cfg.testEpisodes, 'test', 2);
    const oodEps = eps(oodWorld, cfg.testEpisodes, 'test', 3);
    const denseEps = eps(denseWorld, cfg.testEpisodes, 'test', 4);
    const data = collect(world, trainEps, cfg.epsilon, ctx.seed, trainPool);
    ctx.log(`behaviour-cloning data: ${data.count} states from ${trainEps.length} layouts`);

    const policies: Partial<Record<Variant, NavPolicy>> = {};
    const curves: CodebookNavArtifacts['curves'] = { plain: [], codebook: [] };
    const trajectories: CodebookNavArtifacts['trajectories'] = { plain: [], codebook: [] };
    const artifacts: CodebookNavArtifacts = {
      world,
      policies: policies as CodebookNavArtifacts['policies'],
      curves,
      trajectories,
      dispose: () => Object.values(policies).forEach((p) => p?.dispose()),
    };
    const metrics: Record<string, number> = {};
    const rows: Record<string, string | number | boolean | null>[] = [];
    const probeRows: Record<string, string | number | boolean | null>[] = [];
    try {
      // Probe states: visited by the ε-oracle on train and test layouts.
      const probeEps = Math.ceil(cfg.probeStates / 4);
      const probeTrain = collect(
        world,
        eps(world, probeEps, 'train', 5),
        cfg.epsilon,
        ctx.seed + 1,
        trainPool,
        cfg.probeStates,
      );
      const probeTest = collect(
        world,
        eps(world, probeEps, 'test', 6),
        cfg.epsilon,
        ctx.seed + 2,
        trainPool,
        cfg.probeStates,
      );
      for (const variant of ['plain', 'codebook'] as Variant[]) {
        const vt0 = performance.now();
        const policy = new NavPolicy({
          obsDim: world.obsDim,
          goals: cfg.goals,
          hidden: cfg.hidden,
          codebook: variant === 'codebook' ? { codes: cfg.codes, dim: cfg.codeDim, dropout: cfg.dropout } : null,
          actions: 4,
          seed: ctx.seed,
        });
        policies[variant] = policy;
        const rng = new Rng(ctx.seed).fork(`codebook-nav:batches:${variant}`);
        const batches = function* () {
          for (;;) {
            const idx = Array.from({ length: cfg.batch }, () => rng.int(0, data.count));
            const obs = new Float32Array(cfg.batch * world.obsDim);
            idx.forEach((i, r) =>
              obs.set(data.obs.subarray(i * world.obsDim, (i + 1) * world.obsDim), r * world.obsDim),
            );
            yield {
              obs: tf.tensor2d(obs, [cfg.batch, world.obsDim]),
              goal: tf.tensor1d(
                Int32Array.from(idx, (i) => data.goal[i]),
                'int32',
              ),
              action: tf.tensor1d(
                Int32Array.from(idx, (i) => data.action[i]),
                'int32',
              ),
            };
          }
        };
        const curve = curves[variant];
        const run = await train({
          variables: policy.variables(),
          batches: batches(),
          steps: cfg.steps,
          optimizer: { type: 'adam', lr: cfg.lr },
          clipNorm: 1,
          seed: ctx.seed,
          progress: ctx.progress,
          dataframe: false,
          evalEvery: cfg.evalEvery,
          evaluate: (step) => {
            const success = rollout(policy, world, valEps).success;
            curve.push({ step: step + 1, success });
            return { validation_success: success };
          },
          loss: (_step, b, sctx) => {
            const { logits } = policy.forward(b.obs, b.goal, variant === 'codebook' ? sctx.seed : undefined);
            return tf.losses.softmaxCrossEntropy(tf.oneHot(b.action, 4), logits) as tf.Scalar;
          },
        });
        if (run.stopped) throw new Error(`codebook-nav (${variant}): training stopped: ${run.stopped.message}`);
        const reach = curve.find((c) => c.success >= 0.8)?.step ?? null;
        const test = rollout(policy, world, testEps);
        const ood = rollout(policy, oodWorld, oodEps);
        const dense = rollout(policy, denseWorld, denseEps);
        trajectories[variant] = test.trajectories.slice(0, 6);
        const n = cfg.testEpisodes;
        const row: Record<string, string | number | boolean | null> = {
          policy: variant === 'codebook' ? `codebook (K ${cfg.codes}, D_c ${cfg.codeDim})` : 'plain (no bottleneck)',
          test_success: test.success,
          test_success_ci95: ci95(test.success, n),
          test_ood_types_success: ood.success,
          test_ood_types_success_ci95: ci95(ood.success, n),
          test_ood_dense_success: dense.success,
          test_ood_dense_success_ci95: ci95(dense.success, n),
          test_moves: test.moves,
          validation_steps_to_80: reach,
          params: policy.parameterCount(),
          seconds: (performance.now() - vt0) / 1000,
        };
        for (const [k, v] of Object.entries(row))
          if (typeof v === 'number' && k !== 'seconds') metrics[`${variant}.${k}`] = v;

        // Representations for the probes.
        const reps = (v: Visited) =>
          tf.tidy(() => {
            const f = policy.forward(tf.tensor2d(v.obs, [v.count, world.obsDim]), tf.tensor1d(v.goal, 'int32'));
            const out: Record<string, Float32Array> = {
              o: v.obs,
              E: f.embedding.dataSync() as Float32Array,
              h: f.hidden.dataSync() as Float32Array,
            };
            if (f.bottleneck) out.Ê = f.bottleneck.dataSync() as Float32Array;
            if (f.probs) row.codebook_perplexity = codebookPerplexity(f.probs);
            return out;
          });
        const rTr = reps(probeTrain);
        const rTe = reps(probeTest);
        const dims: Record<string, number> = { o: world.obsDim, E: 2 * cfg.hidden, h: cfg.hidden, Ê: cfg.codeDim };
        const D = trainPool.length;
        const withD = (v: Visited) => Array.from({ length: v.count }, (_, i) => i).filter((i) => v.above[i] >= 0);
        const dTr = withD(probeTrain);
        const dTe = withD(probeTest);
        const pick = (x: Float32Array, d: number, idx: number[]) => {
          const o = new Float32Array(idx.length * d);
          idx.forEach((i, r) => o.set(x.subarray(i * d, (i + 1) * d), r * d));
          return o;
        };
        for (const rep of Object.keys(rTr)) {
          if (rep === 'o' && variant === 'codebook') continue; // the same observation for both policies
          const d = dims[rep];
          const vis = linearProbe(
            rTr[rep],
            probeTrain.goalVisible,
            rTe[rep],
            probeTest.goalVisible,
            d,
            2,
            cfg.probeSteps,
          );
          // Distractor identity: the type of the distractor in the cell above the agent (states with one there).
          const dis = linearProbe(
            pick(rTr[rep], d, dTr),
            Int32Array.from(dTr, (i) => probeTrain.above[i]),
            pick(rTe[rep], d, dTe),
            Int32Array.from(dTe, (i) => probeTest.above[i]),
            d,
            D,
            cfg.probeSteps,
          );
          const name = { o: 'observation', E: 'embedding', h: 'hidden', Ê: 'bottleneck' }[rep] as string;
          probeRows.push({
            policy: variant,
            representation: {
              o: 'o (observation: the fixed "visual" features)',
              E: 'E = [visual, goal]',
              h: 'h (actor input)',
              Ê: 'Ê (codebook output)',
            }[rep] as string,
            dims: d,
            test_goal_visible_accuracy: vis.accuracy,
            test_goal_visible_ci95: ci95(vis.accuracy, probeTest.count),
            goal_visible_majority: vis.majority,
            test_distractor_accuracy: dis.accuracy,
            test_distractor_ci95: ci95(dis.accuracy, dTe.length),
            distractor_majority: dis.majority,
          });
          metrics[`${variant}.test_probe_${name}_goal_visible_accuracy`] = vis.accuracy;
          metrics[`${variant}.test_probe_${name}_distractor_accuracy`] = dis.accuracy;
        }
        if (row.codebook_perplexity !== undefined)
          metrics[`${variant}.test_codebook_perplexity`] = row.codebook_perplexity as number;
        rows.push(row);
        ctx.log(
          `${variant}: test success ${test.success.toFixed(3)}, OOD types ${ood.success.toFixed(3)}, dense ${dense.success.toFixed(3)}, 80% at step ${reach ?? 'never'}`,
        );
      }
      metrics.seconds = (performance.now() - t0) / 1000;
      const [p, c] = rows;
      const probeOf = (v: Variant, rep: string) =>
        probeRows.find((r) => r.policy === v && String(r.representation).startsWith(rep));
      const cb = probeOf('codebook', 'Ê');
      const ph = probeOf('plain', 'h');
      const fmt = (x: unknown) => (typeof x === 'number' ? x.toFixed(2) : 'never');
      return {
        metrics,
        tables: { policies: rows, probes: probeRows },
        summary:
          `Test success plain ${fmt(p.test_success)} vs codebook ${fmt(c.test_success)} (±${fmt(c.test_success_ci95)}); ` +
          `unseen distractor types ${fmt(p.test_ood_types_success)} vs ${fmt(c.test_ood_types_success)}, denser ${fmt(p.test_ood_dense_success)} vs ${fmt(c.test_ood_dense_success)}; ` +
          `80% validation success at step ${fmt(p.validation_steps_to_80)} vs ${fmt(c.validation_steps_to_80)}. ` +
          `Probes: goal in view ${fmt(ph?.test_goal_visible_accuracy)} (plain h) vs ${fmt(cb?.test_goal_visible_accuracy)} (Ê); ` +
          `distractor type above the agent ${fmt(ph?.test_distractor_accuracy)} vs ${fmt(cb?.test_distractor_accuracy)} (majority class ${fmt(cb?.distractor_majority)}).`,
        artifacts,
      };
    } catch (e) {
      artifacts.dispose();
      throw e;
    }
  },
});

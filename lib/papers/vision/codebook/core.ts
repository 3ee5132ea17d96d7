/**
 * The codebook bottleneck: task-conditioned selective visual representations for embodied agents.
 *
 * Paper: Eftekhar, Zeng, Duan, Farhadi, Kembhavi, Krishna, "Selective Visual Representations Improve Convergence and
 * Generalization for Embodied AI", ICLR 2024, https://arxiv.org/abs/2311.04193 (project: embodied-codebook.github.io).
 *
 * The agent's embedding E = [visual features, goal embedding, (previous action)] is scored against K learnable codes
 * by an MLP; a softmax over the scores mixes the codes, and the mixture (a convex combination, a point in the codes'
 * hull) is all the policy sees:
 *
 *   s = MLP(E) ∈ R^K,   s̃ = dropout(s),   p = softmax(s̃),   Ê = Σ_k p_k c_k = p C,   h = W_up Ê
 *
 * C [K, D_c] is learned with everything else (the paper: K = 256, D_c = 10, trained end to end with PPO). Dropout on
 * the scores keeps every code in use (without it a few codes win early and the rest collapse). Because D_c is small and
 * the mixture is driven by the goal-conditioned scores, the policy gets a compressed view that keeps what the task needs
 * (is the goal in view, where) and drops what it does not (which distractors are around).
 *
 * Shapes: scores [b, K], codes [K, D_c], probs [b, K], out [b, D_c].
 *
 * Dropout here is inverted dropout on the scores, s̃ = s ⊙ m / (1 - rate) with m ~ Bernoulli(1 - rate) (a dropped score
 * becomes 0, not -∞, so its code keeps a share); the exact placement in the official code is unverified.
 */
import * as tf from '@tensorflow/tfjs';
import { linear } from '../../../layers/functional.js';
import { ParamFactory } from '../../../layers/params.js';
import { tfSeed } from '../../../util/random.js';

export interface CodebookOptions {
  /** Dropout rate on the scores, in [0, 1) (default 0: none). */
  dropout?: number;
  /** Seeds the dropout mask (required when dropout > 0). */
  seed?: number;
}

export interface CodebookOutput {
  /** softmax of the (dropped-out) scores, [b, K]. */
  probs: tf.Tensor2D;
  /** The convex combination of the codes, [b, D_c]. */
  out: tf.Tensor2D;
}

/** The inverted-dropout multipliers for scores of shape [b, K]: 0 or 1 / (1 - rate), seeded. */
export function scoreDropoutMask(b: number, K: number, rate: number, seed: number): tf.Tensor2D {
  if (!(rate >= 0 && rate < 1)) throw new Error(`scoreDropoutMask: rate must be in [0, 1), got ${rate}`);
  return tf.tidy(() =>
    tf
      .randomUniform([b, K], 0, 1, 'float32', tfSeed(seed))
      .greaterEqual(rate)
      .toFloat()
      .div(1 - rate),
  );
}

/** The codebook bottleneck: p = softmax(dropout(scores)), out = p · codes. */
export function codebookBottleneck(
  scores: tf.Tensor2D,
  codes: tf.Tensor2D,
  options: CodebookOptions = {},
): CodebookOutput {
  const fn = 'codebookBottleneck';
  if (scores.rank !== 2) throw new Error(`${fn}: scores must be [b, K], got shape [${scores.shape}]`);
  if (codes.rank !== 2) throw new Error(`${fn}: codes must be [K, D_c], got shape [${codes.shape}]`);
  if (codes.shape[0] !== scores.shape[1])
    throw new Error(`${fn}: codes must have K = ${scores.shape[1]} rows (scores' last axis), got ${codes.shape[0]}`);
  const rate = options.dropout ?? 0;
  if (!(rate >= 0 && rate < 1)) throw new Error(`${fn}: options.dropout must be in [0, 1), got ${rate}`);
  if (rate > 0 && options.seed === undefined)
    throw new Error(`${fn}: options.seed must be a number when dropout > 0, got undefined`);
  return tf.tidy(() => {
    const s =
      rate > 0 ? scores.mul(scoreDropoutMask(scores.shape[0], scores.shape[1], rate, options.seed as number)) : scores;
    const probs = tf.softmax(s) as tf.Tensor2D;
    return { probs, out: tf.matMul(probs, codes) as tf.Tensor2D };
  });
}

/**
 * Float64 reference: scores [b, K] and codes [K, D_c] row-major, optional dropout multipliers [b, K] (as
 * `scoreDropoutMask` returns).
 */
export function codebookBottleneckReference(
  scores: ArrayLike<number>,
  codes: ArrayLike<number>,
  b: number,
  K: number,
  Dc: number,
  mask?: ArrayLike<number>,
): { probs: Float64Array; out: Float64Array } {
  const probs = new Float64Array(b * K);
  const out = new Float64Array(b * Dc);
  for (let i = 0; i < b; i++) {
    let max = -Infinity;
    const s = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      s[k] = scores[i * K + k] * (mask ? mask[i * K + k] : 1);
      max = Math.max(max, s[k]);
    }
    let z = 0;
    for (let k = 0; k < K; k++) z += Math.exp(s[k] - max);
    for (let k = 0; k < K; k++) probs[i * K + k] = Math.exp(s[k] - max) / z;
    for (let d = 0; d < Dc; d++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += probs[i * K + k] * codes[k * Dc + d];
      out[i * Dc + d] = acc;
    }
  }
  return { probs, out };
}

/** Entropy-based perplexity of the mean code usage, exp(H(mean_b p)): how many codes are in use (1..K). */
export function codebookPerplexity(probs: tf.Tensor2D): number {
  return tf.tidy(() => {
    const m = probs.mean(0);
    return Math.exp(-m.mul(m.add(1e-12).log()).sum().dataSync()[0]);
  });
}

export interface NavPolicyConfig {
  /** Observation length (GridWorld.obsDim). */
  obsDim: number;
  /** Goal categories. */
  goals: number;
  /** Hidden width H of the visual encoder, goal embedding and policy layer. */
  hidden: number;
  /** The bottleneck, or null for the plain policy. */
  codebook: { codes: number; dim: number; dropout: number } | null;
  /** Actions (4). */
  actions: number;
  seed: number;
}

export interface NavForward {
  /** Action logits [b, actions]. */
  logits: tf.Tensor2D;
  /** E = [visual, goal] [b, 2H]. */
  embedding: tf.Tensor2D;
  /** Ê [b, D_c] (codebook policy only). */
  bottleneck?: tf.Tensor2D;
  /** Code probabilities [b, K] (codebook policy only). */
  probs?: tf.Tensor2D;
  /** The policy layer's input h [b, H]. */
  hidden: tf.Tensor2D;
}

/**
 * A memoryless navigation policy: v = relu(W_v o), g = goal embedding, E = [v, g]; plain: h = relu(W E);
 * codebook: scores = W_2 relu(W_1 E), Ê = codebookBottleneck(scores, C), h = relu(W_up Ê); logits = W_a h.
 */
export class NavPolicy {
  readonly config: NavPolicyConfig;
  private readonly f: ParamFactory;
  private readonly p: Record<string, tf.Variable>;

  constructor(config: NavPolicyConfig) {
    const fn = 'NavPolicy';
    for (const k of ['obsDim', 'goals', 'hidden', 'actions'] as const)
      if (!(Number.isInteger(config[k]) && config[k] >= 1))
        throw new Error(`${fn}: config.${k} must be an integer >= 1, got ${config[k]}`);
    const cb = config.codebook;
    if (
      cb &&
      !(
        Number.isInteger(cb.codes) &&
        cb.codes >= 2 &&
        Number.isInteger(cb.dim) &&
        cb.dim >= 1 &&
        cb.dropout >= 0 &&
        cb.dropout < 1
      )
    )
      throw new Error(
        `${fn}: config.codebook must have integer codes >= 2, dim >= 1 and dropout in [0, 1), got ${JSON.stringify(cb)}`,
      );
    this.config = config;
    const H = config.hidden;
    this.f = new ParamFactory({ scope: cb ? 'nav_codebook' : 'nav_plain', seed: config.seed });
    const v = (name: string, shape: number[], init: 'glorotUniform' | 'zeros' | { normal: number }) =>
      this.f.variable(name, shape, init);
    this.p = {
      wv: v('visual.w', [config.obsDim, H], 'glorotUniform'),
      bv: v('visual.b', [H], 'zeros'),
      goal: v('goal.embedding', [config.goals, H], { normal: 0.5 }),
      wa: v('actor.w', [H, config.actions], 'glorotUniform'),
      ba: v('actor.b', [config.actions], 'zeros'),
    };
    if (cb) {
      Object.assign(this.p, {
        w1: v('codebook.score1.w', [2 * H, H], 'glorotUniform'),
        b1: v('codebook.score1.b', [H], 'zeros'),
        w2: v('codebook.score2.w', [H, cb.codes], 'glorotUniform'),
        b2: v('codebook.score2.b', [cb.codes], 'zeros'),
        codes: v('codebook.codes', [cb.codes, cb.dim], { normal: 1 }),
        wu: v('codebook.up.w', [cb.dim, H], 'glorotUniform'),
        bu: v('codebook.up.b', [H], 'zeros'),
      });
    } else {
      Object.assign(this.p, { wh: v('policy.w', [2 * H, H], 'glorotUniform'), bh: v('policy.b', [H], 'zeros') });
    }
  }

  variables(): Record<string, tf.Variable> {
    return this.f.params();
  }

  parameterCount(): number {
    return Object.values(this.p).reduce((a, t) => a + t.size, 0);
  }

  /** obs [b, obsDim], goal int32 [b]; `dropoutSeed` turns on the score dropout (training). */
  forward(obs: tf.Tensor2D, goal: tf.Tensor1D, dropoutSeed?: number): NavForward {
    const fn = 'NavPolicy.forward';
    if (obs.rank !== 2 || obs.shape[1] !== this.config.obsDim)
      throw new Error(`${fn}: obs must be [b, ${this.config.obsDim}], got shape [${obs.shape}]`);
    if (goal.rank !== 1 || goal.shape[0] !== obs.shape[0])
      throw new Error(`${fn}: goal must be [${obs.shape[0]}], got shape [${goal.shape}]`);
    const p = this.p;
    return tf.tidy(() => {
      const vis = tf.relu(linear(obs, p.wv, p.bv));
      const embedding = tf.concat([vis, tf.gather(p.goal, goal.toInt())], 1) as tf.Tensor2D;
      const cb = this.config.codebook;
      if (!cb) {
        const hidden = tf.relu(linear(embedding, p.wh, p.bh)) as tf.Tensor2D;
        return { logits: linear(hidden, p.wa, p.ba) as tf.Tensor2D, embedding, hidden };
      }
      const scores = linear(tf.relu(linear(embedding, p.w1, p.b1)), p.w2, p.b2) as tf.Tensor2D;
      const { probs, out } = codebookBottleneck(
        scores,
        p.codes as tf.Tensor2D,
        dropoutSeed === undefined ? {} : { dropout: cb.dropout, seed: dropoutSeed },
      );
      const hidden = tf.relu(linear(out, p.wu, p.bu)) as tf.Tensor2D;
      return { logits: linear(hidden, p.wa, p.ba) as tf.Tensor2D, embedding, bottleneck: out, probs, hidden };
    });
  }

  dispose(): void {
    this.f.dispose();
  }
}

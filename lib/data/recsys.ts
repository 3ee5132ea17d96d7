/**
 * Synthetic users with long behaviour histories for target-attention recommenders (DARE, Feng et al., ICLR 2025):
 * the click on a target item depends on (i) whether the history holds behaviours of a category related to the
 * target's, which a model can only find by attending over the history, and (ii) the quality of the target and of those
 * related behaviours, which it can only read from the items' representations. Which behaviours are relevant is known,
 * so a model's top-K retrieval can be scored against the truth.
 *
 * World (shared by every split, like an item catalogue): `nCategories` categories (an even number) in fixed pairs
 * (c, c ^ 1 after a seeded shuffle: `partner[c]`), `itemsPerCategory` items each, item i of category `category[i]`
 * with a quality `quality[i] ~ N(0, 1)`; each category has a popularity `popularity[c] ~ N(0, 1)`. Item ids are
 * category-major: item c·itemsPerCategory + j.
 *
 * Users: each draws `interests` categories; each of its `historyLength` behaviours is an item of one of them with
 * probability `focus`, else of a uniformly random category. Each user has `targetsPerUser` targets, of an interest
 * category with probability 1/2, else of a random one. For a target t of category c the relevant behaviours are those
 * of category c or partner[c]; with n_rel of them and m_rel the mean quality of the relevant behaviours (0 if none),
 *
 *   P(click) = σ( bias + presence · min(n_rel, K) / K + targetQuality · q(t) + behaviourQuality · m_rel
 *                 + categoryPopularity · pop(c) ),   K = topK
 *
 * Popularity is a category-level value that the category's representation must carry but that says nothing about
 * which categories are related: with one shared embedding it leaks into the attention scores (the interference DARE
 * removes).
 * and the label is a Bernoulli draw from it (`clickProb` keeps the probability, so the Bayes AUC is computable).
 *
 * Splits are by user: the train, validation and test users come from their own random streams
 * (`new Rng(seed).fork('recsys:' + split)`), so no user (history or target) is shared between splits; the world comes
 * from `fork('recsys:world')` and is the same for the three.
 *
 * Worked example (`nCategories: 4, itemsPerCategory: 2`, pairs {0, 2} and {1, 3} after the shuffle): items 0..7 have
 * categories [0, 0, 1, 1, 2, 2, 3, 3]. A user with history [4, 2, 5, 0, 7] (categories [2, 1, 2, 0, 3]) and target
 * item 1 (category 0): the relevant behaviours are positions 0, 2, 3 (categories 0 and 2), n_rel = 3, m_rel =
 * (q[4] + q[5] + q[0]) / 3.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/random.js';

export type RecsysSplit = 'train' | 'validation' | 'test';

export interface RecsysConfig {
  /** Categories (even: they come in related pairs). */
  nCategories: number;
  itemsPerCategory: number;
  /** Behaviours per user history. */
  historyLength: number;
  /** Categories each user is interested in. */
  interests: number;
  /** Probability that a behaviour is of an interest category. */
  focus: number;
  targetsPerUser: number;
  /** K of the click model's presence term (the retrieval budget). */
  topK: number;
  /** Logit weights of the click model (see the module header). */
  bias: number;
  presence: number;
  targetQuality: number;
  behaviourQuality: number;
  /** Weight of the target category's popularity (a category-level value the representation must carry). */
  categoryPopularity: number;
  seed: number;
}

/** The item catalogue shared by every split. */
export interface RecsysWorld {
  nCategories: number;
  itemsPerCategory: number;
  nItems: number;
  /** Category of each item [nItems]. */
  category: Int32Array;
  /** Quality of each item [nItems]. */
  quality: Float64Array;
  /** The related category of each category [nCategories] (an involution without fixed points). */
  partner: Int32Array;
  /** Popularity of each category [nCategories] ~ N(0, 1). */
  popularity: Float64Array;
}

/** One split's users and their impressions (user × target), row-major. */
export interface RecsysUsers {
  split: RecsysSplit;
  users: number;
  historyLength: number;
  targetsPerUser: number;
  /** Item ids of each user's history [users, historyLength]. */
  history: Int32Array;
  /** Target item of each impression [users · targetsPerUser]; impression e belongs to user ⌊e / targetsPerUser⌋. */
  target: Int32Array;
  /** Click label (0/1) and its probability under the click model [impressions]. */
  label: Uint8Array;
  clickProb: Float64Array;
  /** Relevant behaviours per impression [impressions]. */
  relevantCount: Int32Array;
}

export interface RecsysTask {
  world: RecsysWorld;
  config: RecsysConfig;
  train: RecsysUsers;
  validation: RecsysUsers;
  test: RecsysUsers;
}

function checkInt(arg: string, v: unknown, min: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new RangeError(`recsysTask: ${arg} must be an integer >= ${min}, got ${String(v)}`);
}

function checkNum(arg: string, v: unknown, lo = -Infinity, hi = Infinity): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi)
    throw new RangeError(`recsysTask: ${arg} must be a finite number in [${lo}, ${hi}], got ${String(v)}`);
}

/** Whether behaviour item `h` is relevant to target item `t` (same or partner category). */
export function recsysRelevant(world: RecsysWorld, t: number, h: number): boolean {
  const c = world.category[t];
  const ch = world.category[h];
  return ch === c || ch === world.partner[c];
}

/** The relevance mask of impression `e` over its user's history [historyLength] (1: relevant). */
export function recsysRelevanceMask(world: RecsysWorld, users: RecsysUsers, e: number): Uint8Array {
  const u = Math.floor(e / users.targetsPerUser);
  const L = users.historyLength;
  const out = new Uint8Array(L);
  for (let j = 0; j < L; j++) out[j] = recsysRelevant(world, users.target[e], users.history[u * L + j]) ? 1 : 0;
  return out;
}

function makeWorld(cfg: RecsysConfig, rng: Rng): RecsysWorld {
  const { nCategories: C, itemsPerCategory: M } = cfg;
  const nItems = C * M;
  const category = new Int32Array(nItems);
  const quality = new Float64Array(nItems);
  for (let i = 0; i < nItems; i++) {
    category[i] = Math.floor(i / M);
    quality[i] = rng.normal();
  }
  const order = rng.shuffle(Array.from({ length: C }, (_, c) => c));
  const partner = new Int32Array(C);
  for (let p = 0; p < C; p += 2) {
    partner[order[p]] = order[p + 1];
    partner[order[p + 1]] = order[p];
  }
  const popularity = Float64Array.from({ length: C }, () => rng.normal());
  return { nCategories: C, itemsPerCategory: M, nItems, category, quality, partner, popularity };
}

function makeUsers(cfg: RecsysConfig, world: RecsysWorld, users: number, split: RecsysSplit, rng: Rng): RecsysUsers {
  const { historyLength: L, targetsPerUser: T, nCategories: C, itemsPerCategory: M } = cfg;
  const history = new Int32Array(users * L);
  const target = new Int32Array(users * T);
  const label = new Uint8Array(users * T);
  const clickProb = new Float64Array(users * T);
  const relevantCount = new Int32Array(users * T);
  const item = (c: number) => c * M + rng.int(0, M);
  for (let u = 0; u < users; u++) {
    const interests = rng.sample(C, cfg.interests);
    for (let j = 0; j < L; j++) {
      const c = rng.next() < cfg.focus ? interests[rng.int(0, interests.length)] : rng.int(0, C);
      history[u * L + j] = item(c);
    }
    for (let k = 0; k < T; k++) {
      const e = u * T + k;
      const c = rng.next() < 0.5 ? interests[rng.int(0, interests.length)] : rng.int(0, C);
      const t = item(c);
      target[e] = t;
      let n = 0;
      let q = 0;
      for (let j = 0; j < L; j++) {
        const h = history[u * L + j];
        if (recsysRelevant(world, t, h)) {
          n++;
          q += world.quality[h];
        }
      }
      const logit =
        cfg.bias +
        (cfg.presence * Math.min(n, cfg.topK)) / cfg.topK +
        cfg.targetQuality * world.quality[t] +
        cfg.behaviourQuality * (n > 0 ? q / n : 0) +
        cfg.categoryPopularity * world.popularity[c];
      const p = 1 / (1 + Math.exp(-logit));
      clickProb[e] = p;
      relevantCount[e] = n;
      label[e] = rng.next() < p ? 1 : 0;
    }
  }
  return { split, users, historyLength: L, targetsPerUser: T, history, target, label, clickProb, relevantCount };
}

/** The world and the three user splits (`users` per split). */
export function recsysTask(cfg: RecsysConfig, users: { train: number; validation: number; test: number }): RecsysTask {
  checkInt('nCategories', cfg.nCategories, 2);
  if (cfg.nCategories % 2 !== 0)
    throw new RangeError(`recsysTask: nCategories must be even (categories come in pairs), got ${cfg.nCategories}`);
  checkInt('itemsPerCategory', cfg.itemsPerCategory, 1);
  checkInt('historyLength', cfg.historyLength, 1);
  checkInt('interests', cfg.interests, 1);
  if (cfg.interests > cfg.nCategories)
    throw new RangeError(`recsysTask: interests must be <= nCategories (${cfg.nCategories}), got ${cfg.interests}`);
  checkNum('focus', cfg.focus, 0, 1);
  checkInt('targetsPerUser', cfg.targetsPerUser, 1);
  checkInt('topK', cfg.topK, 1);
  for (const k of ['bias', 'presence', 'targetQuality', 'behaviourQuality', 'categoryPopularity'] as const)
    checkNum(k, cfg[k]);
  checkNum('seed', cfg.seed);
  for (const s of ['train', 'validation', 'test'] as const) checkInt(`users.${s}`, users[s], 1);
  const root = new Rng(cfg.seed);
  const world = makeWorld(cfg, root.fork('recsys:world'));
  const make = (s: RecsysSplit) => makeUsers(cfg, world, users[s], s, root.fork(`recsys:${s}`));
  return { world, config: { ...cfg }, train: make('train'), validation: make('validation'), test: make('test') };
}

/** Tensors of impressions `rows` of a split, for a model. The caller disposes them. */
export interface RecsysBatchTensors {
  /** History item ids and their categories [b, historyLength] (int32). */
  historyItems: tf.Tensor2D;
  historyCategories: tf.Tensor2D;
  /** Target item ids and categories [b] (int32). */
  targetItems: tf.Tensor1D;
  targetCategories: tf.Tensor1D;
  /** Click labels [b] (float32 0/1). */
  labels: tf.Tensor1D;
}

/** The impressions `rows` (indices into `users.target`) as tensors. */
export function recsysBatch(world: RecsysWorld, users: RecsysUsers, rows: ArrayLike<number>): RecsysBatchTensors {
  const b = rows.length;
  const { historyLength: L, targetsPerUser: T } = users;
  const n = users.target.length;
  const hi = new Int32Array(b * L);
  const hc = new Int32Array(b * L);
  const ti = new Int32Array(b);
  const tc = new Int32Array(b);
  const y = new Float32Array(b);
  for (let r = 0; r < b; r++) {
    const e = rows[r];
    if (!Number.isInteger(e) || e < 0 || e >= n)
      throw new RangeError(`recsysBatch: rows[${r}] must be an impression index in [0, ${n}), got ${e}`);
    const u = Math.floor(e / T);
    for (let j = 0; j < L; j++) {
      const h = users.history[u * L + j];
      hi[r * L + j] = h;
      hc[r * L + j] = world.category[h];
    }
    ti[r] = users.target[e];
    tc[r] = world.category[users.target[e]];
    y[r] = users.label[e];
  }
  return {
    historyItems: tf.tensor2d(hi, [b, L], 'int32'),
    historyCategories: tf.tensor2d(hc, [b, L], 'int32'),
    targetItems: tf.tensor1d(ti, 'int32'),
    targetCategories: tf.tensor1d(tc, 'int32'),
    labels: tf.tensor1d(y),
  };
}

/**
 * Grid-world object navigation with distractors: the task of the codebook-bottleneck experiment (Eftekhar et al. 2024,
 * lib/papers/vision/codebook), a procedural stand-in for ObjectNav in AI2-THOR / Habitat.
 *
 * World. An N x N grid (N odd). One episode places the agent, the goal object (category g, one of `goals`), one object
 * of each of `otherGoals` other goal categories (in-vocabulary objects that are the goal in other episodes), and
 * `distractors` objects whose types are drawn from a pool of distractor types that are never a goal. At most one
 * object per cell; the agent may walk over every object. Actions: 0 up (row - 1), 1 down, 2 left, 3 right; a move
 * into the boundary leaves the agent in place. The episode succeeds when the agent stands on the goal's cell within
 * `maxSteps` moves (the start cell is never the goal's).
 *
 * Observation ("visual features"). The agent sees an egocentric (2R + 1) x (2R + 1) window, R = (N - 1) / 2, so from the
 * centre it sees the whole grid and from a corner a quarter of it. Every object type has a fixed random feature vector
 * of `featureDim` numbers (drawn once from `featureSeed`, shared by all splits: the frozen "visual encoder"); cells
 * outside the grid carry the wall's vector, empty cells zeros; every cell then gets N(0, noiseStd²) noise per step.
 * The observation is the window's cells, row-major, each `featureDim` long: (2R + 1)² * featureDim numbers.
 *
 * Oracle (the expert for behaviour cloning): a function of what the agent sees. Goal in view: step along the axis with
 * the larger distance to it (ties: vertical). Goal out of view: step toward the centre cell the same way (from the
 * centre the goal is always in view). It walks a shortest path once the goal is in view.
 *
 * Splits. A layout (agent cell, goal category, and every object's cell and type) belongs to exactly one split, by a
 * hash of its description: layouts are drawn from the split's own random stream and rejected unless their hash falls
 * in that split, so train, validation and test share no layout.
 *
 * Distractor distributions. `distractorPool` names the distractor type ids an episode may use (ids start at
 * `goals`); `distractorTypes(goals, n, offset)` makes the ids, e.g. a training pool of 6 types and an out-of-
 * distribution pool of 6 unseen types (offset 6), whose feature vectors the policy never saw.
 *
 * Worked example. `{ size: 3, goals: 2, otherGoals: 0, distractors: 0, featureDim: 1, noiseStd: 0 }` with the agent at
 * (0, 0) and goal category 1 at (2, 1): R = 1, the window is rows -1..1 and columns -1..1; the goal is at offset
 * (+2, +1), outside it, so the oracle heads for the centre (1, 1): |dr| = |dc| = 1, a tie, so action 1 (down). Now at
 * (1, 0) the goal is at offset (+1, +1), in view, and the oracle says 1 (down) again, then 3 (right): success after 3
 * moves. The observation at (0, 0) is 9 numbers: the top row and the left column are the wall's feature, the centre
 * cell (the agent's own) 0, the other cells 0 (empty).
 */
import { hashString, Rng } from '../util/random.js';

export type GridSplit = 'train' | 'validation' | 'test';
const SPLIT_INDEX: Record<GridSplit, number> = { train: 0, validation: 1, test: 2 };

export interface GridWorldConfig {
  /** Grid side N, odd (default 7). */
  size?: number;
  /** Goal categories (default 4). */
  goals?: number;
  /** Non-target goal-category objects per episode (default 2; at most goals - 1). */
  otherGoals?: number;
  /** Distractor objects per episode (default 6). */
  distractors?: number;
  /** Type ids the distractors are drawn from (default: `distractorTypes(goals, 6)`). */
  distractorPool?: number[];
  /** Length of each type's feature vector (default 8). */
  featureDim?: number;
  /** Per-cell observation noise σ (default 0.1). */
  noiseStd?: number;
  /** Seed of the type feature vectors (default 0), shared across splits. */
  featureSeed?: number;
  /** Moves before an episode fails (default 3N). */
  maxSteps?: number;
}

export interface GridEpisode {
  /** Agent cell [row, col] at the start. */
  start: [number, number];
  goal: number;
  /** Goal object's cell. */
  goalCell: [number, number];
  /** Every object: its cell and type id (the goal first). */
  objects: { cell: [number, number]; type: number }[];
  /** Seeds the episode's observation noise. */
  noiseSeed: number;
}

export interface GridState {
  episode: GridEpisode;
  agent: [number, number];
  steps: number;
  done: boolean;
  success: boolean;
  rng: Rng;
}

/** Distractor type ids: `n` ids after the goal categories, starting `offset` ids in. */
export function distractorTypes(goals: number, n: number, offset = 0): number[] {
  return Array.from({ length: n }, (_, i) => goals + offset + i);
}

const need = (fn: string, name: string, ok: boolean, expected: string, got: unknown) => {
  if (!ok) throw new Error(`${fn}: ${name} must be ${expected}, got ${JSON.stringify(got)}`);
};

/** A configured world: episodes per split, observations, moves, the oracle. */
export class GridWorld {
  readonly size: number;
  readonly radius: number;
  readonly goals: number;
  readonly otherGoals: number;
  readonly distractors: number;
  readonly distractorPool: number[];
  readonly featureDim: number;
  readonly noiseStd: number;
  readonly maxSteps: number;
  /** Observation length, (2R + 1)² * featureDim. */
  readonly obsDim: number;
  private readonly featureSeed: number;
  private readonly features = new Map<number, Float64Array>();

  constructor(config: GridWorldConfig = {}) {
    const fn = 'GridWorld';
    this.size = config.size ?? 7;
    need(
      fn,
      'size',
      Number.isInteger(this.size) && this.size >= 3 && this.size % 2 === 1,
      'an odd integer >= 3',
      this.size,
    );
    this.radius = (this.size - 1) / 2;
    this.goals = config.goals ?? 4;
    need(fn, 'goals', Number.isInteger(this.goals) && this.goals >= 1, 'an integer >= 1', this.goals);
    this.otherGoals = config.otherGoals ?? Math.min(2, this.goals - 1);
    need(
      fn,
      'otherGoals',
      Number.isInteger(this.otherGoals) && this.otherGoals >= 0 && this.otherGoals < this.goals,
      `an integer in [0, ${this.goals - 1}]`,
      this.otherGoals,
    );
    this.distractors = config.distractors ?? 6;
    this.distractorPool = config.distractorPool ?? distractorTypes(this.goals, 6);
    need(
      fn,
      'distractors',
      Number.isInteger(this.distractors) && this.distractors >= 0,
      'an integer >= 0',
      this.distractors,
    );
    need(
      fn,
      'distractorPool',
      this.distractorPool.every((t) => Number.isInteger(t) && t >= this.goals) &&
        (this.distractors === 0 || this.distractorPool.length > 0),
      `type ids >= goals (${this.goals}), non-empty when distractors > 0`,
      this.distractorPool,
    );
    const cells = this.size * this.size;
    need(
      fn,
      'distractors',
      1 + 1 + this.otherGoals + this.distractors <= cells,
      `at most ${cells - 2 - this.otherGoals} on a ${this.size} x ${this.size} grid`,
      this.distractors,
    );
    this.featureDim = config.featureDim ?? 8;
    need(
      fn,
      'featureDim',
      Number.isInteger(this.featureDim) && this.featureDim >= 1,
      'an integer >= 1',
      this.featureDim,
    );
    this.noiseStd = config.noiseStd ?? 0.1;
    need(fn, 'noiseStd', this.noiseStd >= 0, 'a number >= 0', this.noiseStd);
    this.featureSeed = config.featureSeed ?? 0;
    this.maxSteps = config.maxSteps ?? 3 * this.size;
    need(fn, 'maxSteps', Number.isInteger(this.maxSteps) && this.maxSteps >= 1, 'an integer >= 1', this.maxSteps);
    this.obsDim = (2 * this.radius + 1) ** 2 * this.featureDim;
  }

  /** The fixed feature vector of a type id (-1 is the wall): N(0, 1) per entry, scaled to unit RMS. */
  feature(type: number): Float64Array {
    let f = this.features.get(type);
    if (!f) {
      const rng = new Rng(this.featureSeed).fork(`gridworld-type:${type}`);
      f = Float64Array.from({ length: this.featureDim }, () => rng.normal());
      const rms = Math.sqrt(f.reduce((a, v) => a + v * v, 0) / this.featureDim) || 1;
      for (let i = 0; i < f.length; i++) f[i] /= rms;
      this.features.set(type, f);
    }
    return f;
  }

  /** `count` episodes of a split, reproducible from `seed`; layouts never shared between splits. */
  episodes(count: number, seed: number, split: GridSplit): GridEpisode[] {
    need('GridWorld.episodes', 'count', Number.isInteger(count) && count >= 0, 'an integer >= 0', count);
    need('GridWorld.episodes', 'split', split in SPLIT_INDEX, "'train', 'validation' or 'test'", split);
    const rng = new Rng(seed).fork(`gridworld:${split}`);
    const N = this.size;
    const out: GridEpisode[] = [];
    while (out.length < count) {
      const cells = rng.sample(N * N, 2 + this.otherGoals + this.distractors);
      const at = (i: number): [number, number] => [Math.floor(cells[i] / N), cells[i] % N];
      const goal = rng.int(0, this.goals);
      const others = rng.sample(this.goals - 1, this.otherGoals).map((o) => (o >= goal ? o + 1 : o));
      const objects = [{ cell: at(1), type: goal }];
      others.forEach((type, i) => objects.push({ cell: at(2 + i), type }));
      for (let i = 0; i < this.distractors; i++)
        objects.push({
          cell: at(2 + this.otherGoals + i),
          type: this.distractorPool[rng.int(0, this.distractorPool.length)],
        });
      const ep: GridEpisode = { start: at(0), goal, goalCell: at(1), objects, noiseSeed: rng.int(0, 2 ** 31) };
      if (layoutSplit(ep) === SPLIT_INDEX[split]) out.push(ep);
    }
    return out;
  }

  reset(episode: GridEpisode): GridState {
    return {
      episode,
      agent: [...episode.start],
      steps: 0,
      done: false,
      success: false,
      rng: new Rng(episode.noiseSeed),
    };
  }

  /** The object type at a cell (-1 outside the grid, undefined when empty). */
  private typeAt(ep: GridEpisode, r: number, c: number): number | undefined {
    if (r < 0 || c < 0 || r >= this.size || c >= this.size) return -1;
    return ep.objects.find((o) => o.cell[0] === r && o.cell[1] === c)?.type;
  }

  /** The egocentric observation, written into `out` at `offset` (draws this step's noise from the state's stream). */
  observe(s: GridState, out: Float32Array = new Float32Array(this.obsDim), offset = 0): Float32Array {
    const R = this.radius;
    const F = this.featureDim;
    let k = offset;
    for (let dr = -R; dr <= R; dr++)
      for (let dc = -R; dc <= R; dc++) {
        const type = this.typeAt(s.episode, s.agent[0] + dr, s.agent[1] + dc);
        const f = type === undefined ? undefined : this.feature(type);
        for (let i = 0; i < F; i++)
          out[k++] = (f ? f[i] : 0) + (this.noiseStd > 0 ? this.noiseStd * s.rng.normal() : 0);
      }
    return out;
  }

  /** Whether the goal object lies in the agent's window. */
  goalVisible(s: GridState): boolean {
    const [gr, gc] = s.episode.goalCell;
    return Math.abs(gr - s.agent[0]) <= this.radius && Math.abs(gc - s.agent[1]) <= this.radius;
  }

  /** The type id of the object in the cell at offset (dr, dc) from the agent (-1 outside the grid, undefined when empty). */
  typeAtOffset(s: GridState, dr: number, dc: number): number | undefined {
    return this.typeAt(s.episode, s.agent[0] + dr, s.agent[1] + dc);
  }

  /** The oracle's action (see the module header). */
  oracle(s: GridState): number {
    const [r, c] = s.agent;
    const [tr, tc] = this.goalVisible(s) ? s.episode.goalCell : [this.radius, this.radius];
    const dr = tr - r;
    const dc = tc - c;
    if (dr === 0 && dc === 0) throw new Error('GridWorld.oracle: the agent is at the centre with the goal out of view');
    if (Math.abs(dr) >= Math.abs(dc)) return dr < 0 ? 0 : 1;
    return dc < 0 ? 2 : 3;
  }

  /** Applies an action (0 up, 1 down, 2 left, 3 right) in place; a finished episode stays as it is. */
  step(s: GridState, action: number): GridState {
    need(
      'GridWorld.step',
      'action',
      action === 0 || action === 1 || action === 2 || action === 3,
      '0, 1, 2 or 3',
      action,
    );
    if (s.done) return s;
    const [dr, dc] = [
      [-1, 0],
      [1, 0],
      [0, -1],
      [0, 1],
    ][action];
    s.agent = [
      Math.min(this.size - 1, Math.max(0, s.agent[0] + dr)),
      Math.min(this.size - 1, Math.max(0, s.agent[1] + dc)),
    ];
    s.steps++;
    s.success = s.agent[0] === s.episode.goalCell[0] && s.agent[1] === s.episode.goalCell[1];
    s.done = s.success || s.steps >= this.maxSteps;
    return s;
  }
}

/** The split (0 train, 1 validation, 2 test) a layout belongs to: a hash of its description, mod 3. */
export function layoutSplit(ep: GridEpisode): number {
  const key = `${ep.start}|${ep.goal}|${ep.objects.map((o) => `${o.cell}:${o.type}`).join(';')}`;
  return hashString(key) % 3;
}

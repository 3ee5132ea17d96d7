/**
 * Trials (a display and one searcher's scanpath on it) and the splits the OAT experiment measures generalisation on:
 *
 * - train: displays whose target is one of the "seen" products;
 * - test-layout (unseen layouts): new arrangements, never in train (checked by `layoutKey`), with seen targets;
 * - test-target (unseen targets): new arrangements whose target is a held-out product that is never a target in train
 *   (it can appear there as a distractor, as a product on a real shelf would).
 */
import { hashSeed, Rng } from '../../util/random.js';
import { ShapeError } from '../../util/shapes.js';
import { layoutKey, makeDisplay, productCount, type SearchDisplay } from './displays.js';
import { DEFAULT_SEARCHER, type SearcherParams, simulateScanpath } from './searcher.js';

export interface Trial {
  display: SearchDisplay;
  /** Object indices in fixation order. */
  scanpath: number[];
  subject: string;
}

export interface VisualSearchConfig {
  layout: 'shelf' | 'clutter';
  /** Grid sizes [rows, cols], one drawn uniformly per display. */
  sizes: [number, number][];
  similarFraction: number;
  /** Fraction of the catalogue held out as unseen targets. */
  heldOutTargets: number;
  searcher: SearcherParams;
}

export const DEFAULT_VISUAL_SEARCH: VisualSearchConfig = {
  layout: 'shelf',
  sizes: [
    [3, 6],
    [3, 8],
    [4, 6],
  ],
  similarFraction: 0.3,
  heldOutTargets: 0.2,
  searcher: DEFAULT_SEARCHER,
};

/** The held-out (unseen) target products for a seed: a fixed fraction of the catalogue, sorted. */
export function heldOutTargets(fraction: number, seed: number): number[] {
  if (!(fraction > 0 && fraction < 1))
    throw new ShapeError(`heldOutTargets: fraction must be in (0, 1), got ${fraction}`);
  const n = productCount();
  return new Rng(hashSeed(seed) ^ 0x5eed).sample(n, Math.max(1, Math.round(n * fraction))).sort((a, b) => a - b);
}

/** `count` trials with targets drawn from `targets`; displays whose layoutKey is in `exclude` are drawn again. */
export function makeTrials(
  cfg: VisualSearchConfig,
  count: number,
  targets: readonly number[],
  rng: Rng,
  exclude?: Set<string>,
  prefix = 'd',
): Trial[] {
  if (!(Number.isInteger(count) && count >= 0))
    throw new ShapeError(`makeTrials: count must be an integer >= 0, got ${count}`);
  if (targets.length === 0) throw new ShapeError('makeTrials: targets is empty; give at least one product id');
  const trials: Trial[] = [];
  while (trials.length < count) {
    const [rows, cols] = cfg.sizes[rng.int(0, cfg.sizes.length)];
    const display = makeDisplay(
      {
        layout: cfg.layout,
        rows,
        cols,
        target: targets[rng.int(0, targets.length)],
        similarFraction: cfg.similarFraction,
        id: `${prefix}${trials.length}`,
      },
      rng,
    );
    if (exclude?.has(layoutKey(display))) continue;
    trials.push({ display, scanpath: simulateScanpath(display, rng, cfg.searcher), subject: 'sim' });
  }
  return trials;
}

export interface VisualSearchSplits {
  train: Trial[];
  /**
   * Model-selection trials (what every choice is made on): new layouts with seen targets, never in train or in either
   * test split; empty unless `counts.validation` is given.
   */
  validation: Trial[];
  testLayout: Trial[];
  testTarget: Trial[];
  /** Product ids never used as a training target. */
  unseenTargets: number[];
}

/**
 * The splits, each from its own random stream derived from `seed` (the train and test streams do not depend on
 * `counts.validation`). Layouts are disjoint across all of them: validation draws none that train has, and the test
 * splits none that train or validation has.
 */
export function makeSplits(
  cfg: VisualSearchConfig,
  counts: { train: number; test: number; validation?: number },
  seed: number,
): VisualSearchSplits {
  const unseenTargets = heldOutTargets(cfg.heldOutTargets, seed);
  const unseen = new Set(unseenTargets);
  const seen = Array.from({ length: productCount() }, (_, i) => i).filter((i) => !unseen.has(i));
  const train = makeTrials(cfg, counts.train, seen, new Rng(hashSeed(seed) ^ 0x7a11), undefined, 'train');
  const keys = new Set(train.map((t) => layoutKey(t.display)));
  const validation = makeTrials(cfg, counts.validation ?? 0, seen, new Rng(hashSeed(seed) ^ 0x7a1d), keys, 'val');
  for (const t of validation) keys.add(layoutKey(t.display));
  return {
    train,
    validation,
    testLayout: makeTrials(cfg, counts.test, seen, new Rng(hashSeed(seed) ^ 0x1a70), keys, 'layout'),
    testTarget: makeTrials(cfg, counts.test, unseenTargets, new Rng(hashSeed(seed) ^ 0x7a46), keys, 'target'),
    unseenTargets,
  };
}

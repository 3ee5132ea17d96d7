/**
 * OAT data and metrics without tensors: the display generator (determinism, one target, splits), the simulated
 * searcher (finds the target, never revisits with perfect inhibition of return, a hand-computed distribution), the CSV
 * loader (the shipped example, round trip, errors naming the line), the metrics on hand-made scanpaths, and the
 * offline Gaussian position table (gradient against finite differences).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CELL_PX, fixationDistribution, layoutKey, productId, productOf } from '../lib/data/visual-search/index.js';
import {
  behaviour,
  behaviourDelta,
  CATALOGUE,
  DEFAULT_SEARCHER,
  DEFAULT_VISUAL_SEARCH,
  editDistance,
  gaussianPeLoss,
  gaussianSimilarity,
  learnGaussianPe,
  makeDisplay,
  makeSplits,
  parseScanpathCsv,
  positionCodes,
  renderDisplay,
  renderTarget,
  ScanpathFormatError,
  type SearchDisplay,
  scanpathsToCsv,
  sequenceScore,
  simulateScanpath,
  stepAccuracy,
  summarize,
} from '../lib/papers/cogneuro/oat/index.js';
import { Rng } from '../lib/util/random.js';
import { expectClose, numericGrad } from './helpers.js';

const root = join(import.meta.dirname, '..');

describe('visual-search displays', () => {
  it('are reproducible per seed and differ across seeds', () => {
    const a = makeDisplay({ rows: 3, cols: 6, target: 17 }, new Rng(5));
    const b = makeDisplay({ rows: 3, cols: 6, target: 17 }, new Rng(5));
    const c = makeDisplay({ rows: 3, cols: 6, target: 17 }, new Rng(6));
    expect(b).toEqual(a);
    expect(layoutKey(c)).not.toBe(layoutKey(a));
    const s1 = makeSplits(DEFAULT_VISUAL_SEARCH, { train: 30, test: 10 }, 3);
    const s2 = makeSplits(DEFAULT_VISUAL_SEARCH, { train: 30, test: 10 }, 3);
    expect(s2).toEqual(s1);
  });

  it('hold one target, fill the shelf grid, and keep clutter objects in distinct cells', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 50; i++) {
      const target = rng.int(0, 192);
      const d = makeDisplay({ rows: 3, cols: 8, target }, rng);
      expect(d.objects.filter((o) => productId(o) === target)).toHaveLength(1);
      expect(productId(d.objects[d.target])).toBe(target);
      expect(new Set(d.objects.map((o) => `${o.row},${o.col}`)).size).toBe(24);
      const cl = makeDisplay({ layout: 'clutter', rows: 4, cols: 6, count: 10, target }, rng);
      expect(cl.objects).toHaveLength(10);
      expect(new Set(cl.objects.map((o) => `${o.row},${o.col}`)).size).toBe(10);
      for (const o of cl.objects) expect(Math.floor(o.x) === o.col && Math.floor(o.y) === o.row).toBe(true);
    }
    expect(productOf(productId({ category: 2, colour: 5, shape: 3, size: 1 }))).toEqual({
      category: 2,
      colour: 5,
      shape: 3,
      size: 1,
    });
    expect(() => makeDisplay({ rows: 0, cols: 3, target: 0 }, rng)).toThrow(/rows and cols must be positive integers/);
  });

  it('split into unseen layouts and unseen targets', () => {
    const s = makeSplits(DEFAULT_VISUAL_SEARCH, { train: 300, test: 50 }, 0);
    const unseen = new Set(s.unseenTargets);
    const trainKeys = new Set(s.train.map((t) => layoutKey(t.display)));
    for (const t of s.train) expect(unseen.has(productId(t.display.objects[t.display.target]))).toBe(false);
    for (const t of s.testLayout) {
      expect(trainKeys.has(layoutKey(t.display))).toBe(false);
      expect(unseen.has(productId(t.display.objects[t.display.target]))).toBe(false);
    }
    for (const t of s.testTarget) expect(unseen.has(productId(t.display.objects[t.display.target]))).toBe(true);
  });

  it('render objects in their colour at their centre, and the target template alone', () => {
    const d = makeDisplay({ rows: 2, cols: 3, target: 5 }, new Rng(2));
    const img = renderDisplay(d);
    expect([img.height, img.width]).toEqual([2 * CELL_PX, 3 * CELL_PX]);
    const px = (im: typeof img, x: number, y: number) =>
      Array.from(im.data.subarray((y * im.width + x) * 3, (y * im.width + x) * 3 + 3));
    const o = d.objects[d.target];
    const centre = px(img, Math.floor(o.x * CELL_PX), Math.floor(o.y * CELL_PX));
    const tmpl = renderTarget(d);
    expect(px(tmpl, CELL_PX / 2, CELL_PX / 2)).toEqual(centre);
    expect(centre).not.toEqual([0.92, 0.92, 0.92].map(Math.fround));
  });
});

/** The searcher with no guidance, no memory and no refixations: p(j) ∝ exp(−d_j / λ) from the display centre. */
const plain = { ...DEFAULT_SEARCHER, guidance: 0, iorStrength: 0, refixation: 0, temperature: 1, proximity: 1 };

describe('simulated searcher', () => {
  it('gives the hand-computed distribution on a 1 × 3 shelf', () => {
    const d = makeDisplay({ rows: 1, cols: 3, target: 0 }, new Rng(0));
    const first = fixationDistribution(d, [], plain);
    // Centre at x = 1.5: objects at 0.5, 1.5, 2.5 are 1, 0, 1 cells away.
    const w = [Math.exp(-1), 1, Math.exp(-1)];
    const z = w.reduce((a, b) => a + b);
    expectClose(
      Array.from(first.next),
      w.map((v) => v / z),
      { rtol: 1e-12, atol: 1e-12 },
      'first fixation',
    );
    expect(first.end).toBe(0);
    const sum = (f: ReturnType<typeof fixationDistribution>) => f.end + f.next.reduce((a, b) => a + b, 0);
    const onTarget = fixationDistribution(d, [d.target], DEFAULT_SEARCHER);
    expect(onTarget.end).toBeCloseTo(DEFAULT_SEARCHER.detection, 12);
    expect(sum(onTarget)).toBeCloseTo(1, 12);
    expect(fixationDistribution(d, new Array(20).fill((d.target + 1) % 3), DEFAULT_SEARCHER).end).toBe(1);
    expect(() => fixationDistribution(d, [3])).toThrow(/prefix\[0\] = 3 is not an object of display/);
  });

  it('finds the target and never revisits with perfect inhibition of return', () => {
    const perfect = { ...DEFAULT_SEARCHER, iorStrength: Infinity, refixation: 0, detection: 1, maxFixations: 100 };
    const rng = new Rng(4);
    for (let i = 0; i < 200; i++) {
      const d = makeDisplay({ rows: 3, cols: 6, target: rng.int(0, 192) }, rng);
      const path = simulateScanpath(d, rng, perfect);
      expect(path[path.length - 1]).toBe(d.target);
      expect(new Set(path).size).toBe(path.length);
    }
  });

  it('with the default parameters mostly finds the target, with refixations (never three looks) and revisits', () => {
    const s = makeSplits(DEFAULT_VISUAL_SEARCH, { train: 400, test: 1 }, 0);
    const b = summarize(
      s.train.map((t) => t.scanpath),
      s.train.map((t) => t.scanpath),
      s.train.map((t) => t.display.target),
    );
    expect(b.found_rate).toBeGreaterThan(0.85);
    expect(b.refix).toBeGreaterThan(0.03);
    expect(b.revisit).toBeGreaterThan(0.01);
    for (const t of s.train)
      t.scanpath.forEach((f, i) => expect(i >= 2 && f === t.scanpath[i - 1] && f === t.scanpath[i - 2]).toBe(false));
  });
});

describe('scanpath CSV loader', () => {
  const objects = readFileSync(join(root, 'data/oat/example-objects.csv'), 'utf8');
  const fixations = readFileSync(join(root, 'data/oat/example-fixations.csv'), 'utf8');

  it('reads the shipped example', () => {
    const r = parseScanpathCsv(objects, fixations);
    expect(r.displays.length).toBeGreaterThanOrEqual(2);
    expect(r.trials.length).toBeGreaterThanOrEqual(3);
    for (const t of r.trials) {
      expect(t.scanpath.length).toBeGreaterThan(0);
      for (const f of t.scanpath) expect(f).toBeLessThan(t.display.objects.length);
    }
    expect(r.space.colours.length).toBeGreaterThan(1);
    // Encoded with the simulation's vocabulary, as a model trained on it needs.
    const c = parseScanpathCsv(objects, fixations, { space: CATALOGUE });
    expect(c.space).toBe(CATALOGUE);
    const first = objects.split('\n')[1].split(',');
    expect(CATALOGUE.colours[c.displays[0].objects[0].colour]).toBe(first[7]);
    expect(() => parseScanpathCsv(objects.replace(',green,', ',teal,'), fixations, { space: CATALOGUE })).toThrow(
      /objects\.csv line \d+: column 'colour' has 'teal', which is not one of the given labels/,
    );
  });

  it('round-trips simulated trials', () => {
    const s = makeSplits(DEFAULT_VISUAL_SEARCH, { train: 5, test: 1 }, 9);
    const csv = scanpathsToCsv(s.train);
    const r = parseScanpathCsv(csv.objects, csv.fixations);
    expect(r.trials.map((t) => t.scanpath)).toEqual(s.train.map((t) => t.scanpath));
    r.trials.forEach((t, i) => {
      const d0 = s.train[i].display;
      expect(t.display.target).toBe(d0.target);
      const name = (d: SearchDisplay, j: number) => [
        d.space.categories[d.objects[j].category],
        d.space.colours[d.objects[j].colour],
        d.space.shapes[d.objects[j].shape],
      ];
      d0.objects.forEach((o, j) => {
        expect(name(t.display, j)).toEqual(name(d0, j));
        expect([t.display.objects[j].row, t.display.objects[j].col]).toEqual([o.row, o.col]);
      });
    });
  });

  const O = 'display,object,x,y,row,col,category,colour,shape,size,target';
  const good = `${O}\nd1,0,0.5,0.5,0,0,a,red,circle,0,1\nd1,1,1.5,0.5,0,1,b,blue,square,1,0\n`;
  const F = 'display,subject,fixation,object';
  const cases: [string, string, string, RegExp][] = [
    [
      'a missing column',
      'display,object,x,y\nd1,0,0,0\n',
      `${F}\n`,
      /objects\.csv line 1: header lacks column\(s\) row, col, category/,
    ],
    [
      'a bad integer',
      `${O}\nd1,0,0.5,0.5,0,0,a,red,circle,0,1\nd1,x,1.5,0.5,0,1,b,blue,square,1,0\n`,
      `${F}\n`,
      /objects\.csv line 3: column 'object' must be an integer in 0\.\.\d+ \(ids are 0\.\.n-1 within a display.*\), got 'x'/,
    ],
    [
      'a size out of range',
      `${O}\nd1,0,0.5,0.5,0,0,a,red,circle,2,1\nd1,1,1.5,0.5,0,1,b,blue,square,1,0\n`,
      `${F}\n`,
      /objects\.csv line 2: column 'size' must be a finite number in \[0, 1\], got '2'/,
    ],
    [
      'two targets',
      `${O}\nd1,0,0.5,0.5,0,0,a,red,circle,0,1\nd1,1,1.5,0.5,0,1,b,blue,square,1,1\n`,
      `${F}\n`,
      /objects\.csv line 3: display 'd1' has a second target \(object 1; the first is object 0 on line 2\)/,
    ],
    [
      'no target',
      `${O}\nd1,0,0.5,0.5,0,0,a,red,circle,0,0\nd1,1,1.5,0.5,0,1,b,blue,square,1,0\n`,
      `${F}\n`,
      /objects\.csv line 2: display 'd1' \(from this line\) has no target/,
    ],
    [
      'a short line',
      `${O}\nd1,0,0.5,0.5,0,0,a,red,circle,0\n`,
      `${F}\n`,
      /objects\.csv line 2: has 10 fields but the header has 11/,
    ],
    [
      'an unknown display',
      good,
      `${F}\nd1,s1,1,0\nd2,s1,1,0\n`,
      /fixations\.csv line 3: display 'd2' is not in objects\.csv/,
    ],
    [
      'an object outside the display',
      good,
      `${F}\nd1,s1,1,0\n# a comment\nd1,s1,2,7\n`,
      /fixations\.csv line 4: object 7 is not in display 'd1' \(it has objects 0\.\.1\)/,
    ],
    [
      // indexOf(undefined) skips an array's holes, so a display numbered 1, 2 (no 0) loaded with a hole at 0.
      'objects numbered from 1 instead of 0',
      `${O}\nd1,1,0.5,0.5,0,0,a,red,circle,0,1\nd1,2,1.5,0.5,0,1,b,blue,square,1,0\nd2,0,0.5,0.5,0,0,a,red,circle,0,1\nd2,1,1.5,0.5,0,1,b,blue,square,1,0\n`,
      `${F}\n`,
      /objects\.csv line 2: display 'd1' \(from this line\) has objects up to 2 but no object 0/,
    ],
    [
      'an object id past the number of object lines',
      `${O}\nd1,0,0.5,0.5,0,0,a,red,circle,0,1\nd1,4294967295,1.5,0.5,0,1,b,blue,square,1,0\n`,
      `${F}\n`,
      /objects\.csv line 3: column 'object' must be an integer in 0\.\.1 .*got '4294967295'/,
    ],
    [
      'a row beyond the grid limit',
      `${O}\nd1,0,0.5,0.5,1e21,0,a,red,circle,0,1\nd1,1,1.5,0.5,0,1,b,blue,square,1,0\n`,
      `${F}\n`,
      /objects\.csv line 2: column 'row' must be an integer in 0\.\.255, got '1e21'/,
    ],
    [
      'a gap in the numbering',
      good,
      `${F}\nd1,s1,1,0\nd1,s1,3,1\n`,
      /fixations\.csv line 3: fixation 3 of display 'd1', subject 's1' should be 2/,
    ],
  ];
  for (const [what, o, f, re] of cases) {
    it(`rejects ${what}, naming the line`, () => {
      expect(() => parseScanpathCsv(o, f)).toThrow(ScanpathFormatError);
      expect(() => parseScanpathCsv(o, f)).toThrow(re);
    });
  }
});

/** Longest common subsequence by plain recursion with memo: the naive reference for the NW sequence score. */
function lcs(a: number[], b: number[]): number {
  const memo = new Map<string, number>();
  const go = (i: number, j: number): number => {
    if (i === a.length || j === b.length) return 0;
    const k = `${i},${j}`;
    if (!memo.has(k)) memo.set(k, a[i] === b[j] ? 1 + go(i + 1, j + 1) : Math.max(go(i + 1, j), go(i, j + 1)));
    return memo.get(k)!;
  };
  return go(0, 0);
}

describe('scanpath metrics', () => {
  it('score hand-made scanpaths', () => {
    expect(sequenceScore([1, 2, 3], [1, 3])).toBeCloseTo(2 / 3, 12);
    expect(sequenceScore([4, 5], [4, 5])).toBe(1);
    expect(sequenceScore([1, 2], [3])).toBe(0);
    expect(sequenceScore([], [])).toBe(1);
    expect(sequenceScore([7], [1, 2, 7, 9])).toBe(0.25);
    const chars = (s: string) => [...s].map((c) => c.charCodeAt(0));
    expect(editDistance(chars('kitten'), chars('sitting'))).toBe(3);
    expect(editDistance([], [1, 2])).toBe(2);
    const b = behaviour([1, 2, 2, 3, 1, 4], 4);
    expect(b).toEqual({ found: 1, length: 6, toTarget: 6, search: 4 / 6, refix: 1 / 6, revisit: 1 / 6 });
    expect(behaviour([4, 1], 4)).toMatchObject({ found: 0, toTarget: 1 });
    expect(Number.isNaN(behaviour([1, 2], 4).toTarget)).toBe(true);
  });

  it('sequence score equals LCS / max length (random sequences against the recursive reference)', () => {
    const rng = new Rng(11);
    for (let i = 0; i < 300; i++) {
      const a = Array.from({ length: rng.int(1, 9) }, () => rng.int(0, 5));
      const b = Array.from({ length: rng.int(1, 9) }, () => rng.int(0, 5));
      expect(sequenceScore(a, b)).toBeCloseTo(lcs(a, b) / Math.max(a.length, b.length), 12);
    }
  });

  it('summarize, delta and per-step accuracy on hand-made cases', () => {
    const human = [
      [1, 2],
      [3, 3, 0],
    ];
    const targets = [2, 0];
    const pred = [
      [1, 2],
      [3, 0],
    ];
    const s = summarize(pred, human, targets);
    expect(s.seq_score).toBeCloseTo((1 + 2 / 3) / 2, 12);
    expect(s.found_rate).toBe(1);
    expect(s.fix_to_target).toBe(2);
    const h = summarize(human, human, targets);
    expect(h.seq_score).toBe(1);
    expect(behaviourDelta(h, h)).toBe(0);
    // length 2 vs 2.5 (0.2), search 1 vs (1 + 2/3)/2, refix 0 vs 1/6, others equal.
    expect(behaviourDelta(s, h)).toBeCloseTo((0.5 / 2.5 + (1 - 5 / 6) / (5 / 6) + 1 / 6 / (1 / 6)) / 5, 12);
    // Steps: [1, 2, END] and [3, 3, 0, END].
    expect(
      stepAccuracy(
        [
          [1, 2, -1],
          [3, 0, 0, -1],
        ],
        human,
      ),
    ).toBeCloseTo(6 / 7, 12);
    expect(() => stepAccuracy([[1, 2]], [[1, 2]])).toThrow(
      /predicted\[0\] has 2 steps but scanpath 0 has 2 fixations \+ END = 3/,
    );
    expect(() => summarize([[1]], human, targets)).toThrow(/positive multiple of the 2 human ones/);
  });
});

describe('Gaussian 2-D position table', () => {
  it('has the analytic gradient of its loss (finite differences)', () => {
    const rng = new Rng(3);
    const w = Array.from({ length: 5 * 3 }, () => rng.normal());
    const g = gaussianPeLoss(w, 5, 3, 2, 0.5).grad;
    const num = numericGrad(() => gaussianPeLoss(w, 5, 3, 2, 0.5).loss, w, 1e-6);
    expectClose(g, num, { rtol: 1e-5, atol: 1e-8 }, 'dL/dW');
  });

  it('learns codes whose cosine similarity is a Gaussian of the index distance', () => {
    const pe = learnGaussianPe({ size: 10, dim: 8, sigma: 2, iterations: 1500 });
    expect(pe.maxError).toBeLessThan(0.05);
    expect(gaussianSimilarity(0, 2, 2)).toBeCloseTo(Math.exp(-0.5), 12);
    const d = makeDisplay({ rows: 3, cols: 6, target: 0 }, new Rng(0));
    const two = positionCodes(d, 'gaussian2d', 16, pe);
    const one = positionCodes(d, 'sinusoidal1d', 16);
    const norm = (v: number[]) => Math.hypot(...v);
    for (let j = 0; j < d.objects.length; j++) {
      expect(norm(two[j])).toBeCloseTo(Math.sqrt(8), 4);
      expect(norm(one[j])).toBeCloseTo(Math.sqrt(8), 4);
    }
    expect(() => positionCodes(d, 'gaussian2d', 12, pe)).toThrow(/gives 2 × 8 = 16 values but dim is 12/);
    expect(CATALOGUE.colours).toHaveLength(6);
  });
});

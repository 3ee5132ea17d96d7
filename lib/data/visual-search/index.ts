/**
 * Visual-search data for object-level scanpath models (OAT, lib/papers/cogneuro/oat): displays of products with one target, a
 * stochastic human-like searcher that makes object-level scanpaths, train/test splits with unseen layouts and unseen
 * targets, and a loader for real scanpath data in a plain CSV format.
 *
 *   const splits = makeSplits(DEFAULT_VISUAL_SEARCH, { train: 2000, test: 200 }, seed);
 *   splits.train[0]  // { display: { objects: [{ category, colour, shape, size, x, y, row, col }, ...], target }, scanpath: [4, 5, 5, 12] }
 *   renderDisplay(splits.train[0].display)   // RGB image for pixel-level models
 *   const real = await loadScanpathCsv('data/oat/example-objects.csv', 'data/oat/example-fixations.csv');
 *
 * Files: displays.ts (catalogue, generator, features, rendering), crops.ts (object crops for a CNN), searcher.ts (the simulated searcher and the literature
 * its parameters come from), splits.ts (trials and splits), loader.ts (CSV format, reader and writer).
 */
export * from './crops.js';
export * from './displays.js';
export * from './loader.js';
export * from './searcher.js';
export * from './splits.js';

/**
 * Objects in clutter with known masks: each grey image holds one filled shape (the class) drawn over short random
 * strokes and small blobs (the clutter), plus pixel noise. The object's pixels are known exactly, so an attribution
 * map can be scored against them (pointing game, IoU, AUC): the task of Salient Relevance maps (Li, Tian, Mueller,
 * Chen 2017, lib/papers/classifiers/salient-relevance).
 *
 * Classes: 0 square, 1 disk, 2 triangle (apex up), 3 cross; radius 3.5 to 6.5 pixels (objects 7 to 13 pixels wide),
 * intensity 0.5 to 1, anywhere fully inside the image. Clutter: `strokes` segments 2 to 6 pixels long and `blobs`
 * 2 x 2 squares, intensity 0.3 to 0.9, drawn first (the object covers them). Noise: N(0, noiseStd²), then clipped to
 * [0, 1]. The mask is the object's pixels.
 *
 * Splits. The images are continuous draws, so train, validation and test are made disjoint by drawing each from its
 * own random stream (`new Rng(seed).fork('clutterImages:' + split)`); two splits share no draws.
 *
 * Worked example (`{ count: 1, size: 8, strokes: 0, blobs: 0, noiseStd: 0 }`, a square of radius 1.5 centred at
 * (3.5, 3.5), intensity 1): pixels (row, col) with |row + 0.5 - 3.5| <= 1.5 and |col + 0.5 - 3.5| <= 1.5, i.e. rows and
 * columns 2..4, are 1 and masked; every other pixel is 0 and unmasked; label 0.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/random.js';

export type ClutterSplit = 'train' | 'validation' | 'test';

export const CLUTTER_SHAPES = ['square', 'disk', 'triangle', 'cross'] as const;
export type ClutterShape = (typeof CLUTTER_SHAPES)[number];

export interface ClutterImagesConfig {
  /** Images. */
  count: number;
  /** Side in pixels (default 32). */
  size?: number;
  /** Clutter strokes per image (default 10). */
  strokes?: number;
  /** Clutter 2 x 2 blobs per image (default 4). */
  blobs?: number;
  /** Pixel noise σ (default 0.05). */
  noiseStd?: number;
  seed: number;
  split?: ClutterSplit;
}

export interface ClutterImages {
  count: number;
  size: number;
  /** Pixels, [count, size, size] row-major, in [0, 1]. */
  images: Float32Array;
  /** Class per image, an index into CLUTTER_SHAPES. */
  labels: Int32Array;
  /** 1 where the object is, [count, size, size]. */
  masks: Uint8Array;
  /** Images as [count, size, size, 1] and labels as int32 [count]. */
  toTensors(): { x: tf.Tensor4D; y: tf.Tensor1D };
  /** One image's pixels (or mask) as rows, for display. */
  image(i: number): number[][];
  mask(i: number): number[][];
}

/** Whether pixel centre offset (dx, dy) from the object's centre lies inside a shape of radius r (y grows down). */
export function insideShape(shape: ClutterShape, dx: number, dy: number, r: number): boolean {
  switch (shape) {
    case 'square':
      return Math.abs(dx) <= r && Math.abs(dy) <= r;
    case 'disk':
      return dx * dx + dy * dy <= r * r;
    case 'triangle':
      return dy <= r && dy >= -r && Math.abs(dx) <= (dy + r) / 2;
    case 'cross':
      return (Math.abs(dx) <= r / 3 && Math.abs(dy) <= r) || (Math.abs(dy) <= r / 3 && Math.abs(dx) <= r);
  }
}

function checkCount(fn: string, name: string, v: unknown, min: number): void {
  if (!(typeof v === 'number' && Number.isInteger(v) && v >= min))
    throw new RangeError(`${fn}: ${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
}

/** Draws `count` images of one split (see the module header). */
export function clutterImages(config: ClutterImagesConfig): ClutterImages {
  const fn = 'clutterImages';
  const size = config.size ?? 32;
  const strokes = config.strokes ?? 10;
  const blobs = config.blobs ?? 4;
  const noiseStd = config.noiseStd ?? 0.05;
  const split = config.split ?? 'train';
  checkCount(fn, 'count', config.count, 1);
  checkCount(fn, 'size', size, 16);
  checkCount(fn, 'strokes', strokes, 0);
  checkCount(fn, 'blobs', blobs, 0);
  if (!(Number.isFinite(noiseStd) && noiseStd >= 0))
    throw new RangeError(`${fn}: noiseStd must be a finite number >= 0, got ${noiseStd}`);
  if (!Number.isFinite(config.seed)) throw new RangeError(`${fn}: seed must be a finite number, got ${config.seed}`);
  if (!['train', 'validation', 'test'].includes(split))
    throw new RangeError(`${fn}: split must be 'train', 'validation' or 'test', got ${JSON.stringify(split)}`);
  const rng = new Rng(config.seed).fork(`clutterImages:${split}`);
  const n = config.count;
  const px = size * size;
  const images = new Float32Array(n * px);
  const masks = new Uint8Array(n * px);
  const labels = new Int32Array(n);
  const canvas = new Float64Array(px);
  for (let k = 0; k < n; k++) {
    canvas.fill(0);
    for (let s = 0; s < strokes; s++) {
      const x0 = rng.next() * size;
      const y0 = rng.next() * size;
      const angle = rng.next() * 2 * Math.PI;
      const length = 2 + rng.next() * 4;
      const v = 0.3 + 0.6 * rng.next();
      for (let t = 0; t <= length; t += 0.25) {
        const x = Math.floor(x0 + t * Math.cos(angle));
        const y = Math.floor(y0 + t * Math.sin(angle));
        if (x >= 0 && x < size && y >= 0 && y < size) canvas[y * size + x] = Math.max(canvas[y * size + x], v);
      }
    }
    for (let s = 0; s < blobs; s++) {
      const x0 = rng.int(0, size - 1);
      const y0 = rng.int(0, size - 1);
      const v = 0.3 + 0.6 * rng.next();
      for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) canvas[(y0 + dy) * size + x0 + dx] = v;
    }
    const label = rng.int(0, CLUTTER_SHAPES.length);
    const shape = CLUTTER_SHAPES[label];
    const r = 3.5 + 3 * rng.next();
    const cx = r + rng.next() * (size - 2 * r);
    const cy = r + rng.next() * (size - 2 * r);
    const v = 0.5 + 0.5 * rng.next();
    labels[k] = label;
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        if (!insideShape(shape, x + 0.5 - cx, y + 0.5 - cy, r)) continue;
        canvas[y * size + x] = v;
        masks[k * px + y * size + x] = 1;
      }
    for (let i = 0; i < px; i++) {
      const noisy = noiseStd > 0 ? canvas[i] + noiseStd * rng.normal() : canvas[i];
      images[k * px + i] = Math.min(1, Math.max(0, noisy));
    }
  }
  const rows = (a: ArrayLike<number>, i: number): number[][] => {
    if (!(Number.isInteger(i) && i >= 0 && i < n))
      throw new RangeError(`${fn}: image index must be in [0, ${n}), got ${i}`);
    return Array.from({ length: size }, (_, y) => Array.from({ length: size }, (_, x) => a[i * px + y * size + x]));
  };
  return {
    count: n,
    size,
    images,
    labels,
    masks,
    toTensors: () => ({
      x: tf.tensor4d(images, [n, size, size, 1]),
      y: tf.tensor1d(labels, 'int32'),
    }),
    image: (i) => rows(images, i),
    mask: (i) => rows(masks, i),
  };
}

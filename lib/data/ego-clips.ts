/**
 * Procedural egocentric clips for next-active-object anticipation (GANO, Thakur et al. 2023,
 * lib/papers/vision/gano): a few frames of a small top-down scene in which a "hand" blob moves toward one of N
 * objects, the next active object (NAO).
 *
 * Scene. A `size` x `size` image with 4 channels: 3 colour channels, in which each object is a filled square of side
 * `objectSize` painted in its noun's colour (noun k of K has a fixed colour from NOUN_COLOURS), and one hand channel.
 * The N objects are placed at random without overlap (at least one pixel apart) and stay still. The hand starts near
 * the bottom edge and moves toward the target object's centre at a random speed (pixels per frame), with a
 * sideways curvature that fades as it approaches and per-frame position noise (σ `noise` pixels). It is drawn as a
 * Gaussian blob (σ 1 pixel) on the hand channel. Every pixel then gets N(0, pixelNoise²).
 *
 * Detections. Every object's box in the last frame, [x0, y0, x1, y1] in [0, 1] (pixel edges / size), with its noun;
 * the order of objects is random, so the target's index carries no information.
 *
 * Labels. `target`: the NAO's index among the detections; `box` and `noun`: its box and noun; `ttc`: time to contact,
 * the frames after the last one until the hand centre would reach the object's border at its speed:
 * max(0, distance to the object's nearest border point) / speed (a continuous value).
 *
 * Patch tokens. `patches` holds the clip cut into non-overlapping `patch` x `patch` tiles per frame, flattened in
 * (frame, row, column) order, each tile as (y, x, channel) values: [count, frames * (size / patch)², patch² · 4].
 *
 * Splits. Each split draws from its own stream (`new Rng(seed).fork('egoClips:' + split)`), so train, validation and
 * test clips are independent draws of continuous positions and speeds.
 *
 * Worked example. `egoClips({ count: 1, frames: 2, size: 8, objects: 1, nouns: 1, objectSize: 2, patch: 4, noise: 0,
 * pixelNoise: 0, curvature: 0 }, 'train', 0)` puts one red 2x2 square somewhere in the top part, e.g. at pixels
 * x 4..5, y 1..2 (box [0.5, 0.125, 0.75, 0.375]); the hand starts near the bottom, e.g. at (3.5, 7), and moves toward
 * (5, 2) at, say, 1.2 pixels per frame, so frame 1 has it at about (3.84, 5.83); its distance to the square's border
 * is then about 2.9, so ttc ≈ 2.9 / 1.2 ≈ 2.4 frames; target 0, noun 0; patches [1, 2 * 4, 64].
 */
import { Rng } from '../util/random.js';

export type EgoClipSplit = 'train' | 'validation' | 'test';

/** Noun colours (RGB in [0, 1]); noun k uses NOUN_COLOURS[k]. */
export const NOUN_COLOURS: readonly (readonly [number, number, number])[] = [
  [1, 0, 0],
  [0, 1, 0],
  [0, 0, 1],
  [1, 1, 0],
  [1, 0, 1],
  [0, 1, 1],
  [1, 0.5, 0],
  [0.5, 0, 1],
];

export interface EgoClipConfig {
  count: number;
  /** Frames per clip (default 4). */
  frames?: number;
  /** Image side in pixels (default 16); a multiple of `patch`. */
  size?: number;
  /** Objects per scene N (default 3). */
  objects?: number;
  /** Noun classes K (default 4, at most NOUN_COLOURS.length); objects of one scene may share a noun. */
  nouns?: number;
  /** Object square side in pixels (default 3). */
  objectSize?: number;
  /** Patch side in pixels (default 4). */
  patch?: number;
  /** Hand position noise σ per frame, pixels (default 0.3). */
  noise?: number;
  /** Pixel noise σ (default 0.05). */
  pixelNoise?: number;
  /** Largest sideways offset of the hand's path as a fraction of the distance (default 0.3). */
  curvature?: number;
}

export interface EgoClips {
  count: number;
  frames: number;
  size: number;
  objects: number;
  nouns: number;
  patch: number;
  /** [count, frames, size, size, 4] (channels: r, g, b, hand). */
  pixels: Float32Array;
  /** [count, frames * (size / patch)², patch² · 4]. */
  patches: Float32Array;
  /** [count, objects, 4]: every object's box [x0, y0, x1, y1] in [0, 1]. */
  boxes: Float32Array;
  /** [count, objects]: every object's noun. */
  classes: Int32Array;
  /** [count]: the next active object's index among the detections. */
  target: Int32Array;
  /** [count]: the next active object's noun. */
  noun: Int32Array;
  /** [count, 4]: the next active object's box. */
  box: Float32Array;
  /** [count]: time to contact in frames after the last one. */
  ttc: Float32Array;
  /** [count][frames]: the hand centre (x, y) per frame, in pixels. */
  hand: [number, number][][];
}

const INT = (name: string, v: number, lo: number, hi = Number.POSITIVE_INFINITY): void => {
  if (!Number.isInteger(v) || v < lo || v > hi)
    throw new Error(`egoClips: ${name} must be an integer in [${lo}, ${hi}], got ${v}`);
};

/** Draws `count` clips of one split (see the module header). */
export function egoClips(config: EgoClipConfig, split: EgoClipSplit, seed: number): EgoClips {
  const count = config.count;
  const frames = config.frames ?? 4;
  const size = config.size ?? 16;
  const objects = config.objects ?? 3;
  const nouns = config.nouns ?? 4;
  const objectSize = config.objectSize ?? 3;
  const patch = config.patch ?? 4;
  const noise = config.noise ?? 0.3;
  const pixelNoise = config.pixelNoise ?? 0.05;
  const curvature = config.curvature ?? 0.3;
  INT('count', count, 1);
  INT('frames', frames, 1, 64);
  INT('size', size, 4, 256);
  INT('objects', objects, 1, 16);
  INT('nouns', nouns, 1, NOUN_COLOURS.length);
  INT('objectSize', objectSize, 1, Math.floor(size / 2));
  INT('patch', patch, 1, size);
  if (size % patch !== 0)
    throw new Error(`egoClips: size must be a multiple of patch, got size ${size}, patch ${patch}`);
  for (const [name, v] of [
    ['noise', noise],
    ['pixelNoise', pixelNoise],
    ['curvature', curvature],
  ] as const)
    if (!(v >= 0 && Number.isFinite(v))) throw new Error(`egoClips: ${name} must be a number >= 0, got ${v}`);
  if (!['train', 'validation', 'test'].includes(split))
    throw new Error(`egoClips: split must be 'train', 'validation' or 'test', got ${JSON.stringify(split)}`);
  // Objects live in the top 2/3 of the image; the hand starts in the bottom row.
  const top = Math.floor((size * 2) / 3);
  const cells = Math.floor(top / (objectSize + 1)) * Math.floor(size / (objectSize + 1));
  if (cells < objects)
    throw new Error(`egoClips: ${objects} objects of side ${objectSize} do not fit in a ${size}x${size} scene`);

  const rng = new Rng(seed).fork(`egoClips:${split}`);
  const grid = size / patch;
  const tokens = frames * grid * grid;
  const tokenDim = patch * patch * 4;
  const pixels = new Float32Array(count * frames * size * size * 4);
  const patches = new Float32Array(count * tokens * tokenDim);
  const boxes = new Float32Array(count * objects * 4);
  const classes = new Int32Array(count * objects);
  const target = new Int32Array(count);
  const noun = new Int32Array(count);
  const box = new Float32Array(count * 4);
  const ttc = new Float32Array(count);
  const hand: [number, number][][] = [];

  for (let i = 0; i < count; i++) {
    // Objects: rejection sampling of top-left corners, at least one pixel apart.
    const placed: [number, number][] = [];
    while (placed.length < objects) {
      const x = rng.int(0, size - objectSize + 1);
      const y = rng.int(0, top - objectSize + 1);
      if (placed.every(([px, py]) => Math.abs(px - x) > objectSize || Math.abs(py - y) > objectSize))
        placed.push([x, y]);
    }
    for (let o = 0; o < objects; o++) {
      const [x, y] = placed[o];
      boxes.set([x / size, y / size, (x + objectSize) / size, (y + objectSize) / size], (i * objects + o) * 4);
      classes[i * objects + o] = rng.int(0, nouns);
    }
    const t = rng.int(0, objects);
    target[i] = t;
    noun[i] = classes[i * objects + t];
    box.set(boxes.subarray((i * objects + t) * 4, (i * objects + t + 1) * 4), i * 4);
    const [ox, oy] = placed[t];
    const cx = ox + objectSize / 2;
    const cy = oy + objectSize / 2;
    // Hand path: from the bottom toward the target's centre, bent sideways by a fading offset.
    const sx = 0.5 + rng.next() * (size - 1);
    const sy = size - 0.5;
    const dist = Math.hypot(cx - sx, cy - sy);
    const speed = (0.3 + 0.5 * rng.next()) * (dist / frames);
    const bend = (rng.next() * 2 - 1) * curvature * dist;
    const ux = (cx - sx) / dist;
    const uy = (cy - sy) / dist;
    const path: [number, number][] = [];
    for (let f = 0; f < frames; f++) {
      const along = speed * f;
      const frac = Math.min(1, along / dist);
      const side = bend * Math.sin(Math.PI * frac) * (1 - frac);
      const hx = sx + ux * along - uy * side + noise * rng.normal();
      const hy = sy + uy * along + ux * side + noise * rng.normal();
      path.push([hx, hy]);
    }
    hand.push(path);
    const [lx, ly] = path[frames - 1];
    const gx = Math.max(ox - lx, 0, lx - (ox + objectSize));
    const gy = Math.max(oy - ly, 0, ly - (oy + objectSize));
    ttc[i] = Math.hypot(gx, gy) / speed;

    for (let f = 0; f < frames; f++) {
      const base = (i * frames + f) * size * size * 4;
      for (let o = 0; o < objects; o++) {
        const [x, y] = placed[o];
        const colour = NOUN_COLOURS[classes[i * objects + o]];
        for (let yy = y; yy < y + objectSize; yy++)
          for (let xx = x; xx < x + objectSize; xx++)
            for (let c = 0; c < 3; c++) pixels[base + (yy * size + xx) * 4 + c] = colour[c];
      }
      const [hx, hy] = path[f];
      for (let yy = 0; yy < size; yy++)
        for (let xx = 0; xx < size; xx++) {
          const d2 = (xx + 0.5 - hx) ** 2 + (yy + 0.5 - hy) ** 2;
          pixels[base + (yy * size + xx) * 4 + 3] = Math.exp(-d2 / 2);
        }
      if (pixelNoise > 0) for (let p = 0; p < size * size * 4; p++) pixels[base + p] += pixelNoise * rng.normal();
      for (let gyi = 0; gyi < grid; gyi++)
        for (let gxi = 0; gxi < grid; gxi++) {
          const tok = (i * tokens + (f * grid + gyi) * grid + gxi) * tokenDim;
          let k = 0;
          for (let py = 0; py < patch; py++)
            for (let px = 0; px < patch; px++)
              for (let c = 0; c < 4; c++)
                patches[tok + k++] = pixels[base + ((gyi * patch + py) * size + gxi * patch + px) * 4 + c];
        }
    }
  }
  return { count, frames, size, objects, nouns, patch, pixels, patches, boxes, classes, target, noun, box, ttc, hand };
}

/** Intersection over union of two [x0, y0, x1, y1] boxes (0 when both are empty). */
export function boxIoU(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  const area = (x: ArrayLike<number>) => Math.max(0, x[2] - x[0]) * Math.max(0, x[3] - x[1]);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Procedural scenes: face-, body-, place- and word-like shapes at random positions and sizes on textured
 * backgrounds. Every pixel keeps the category that drew it, so the true object location is known.
 *
 * Worked example (size 32, grid 8): a scene with a face of size 12 px centred at (10, 20) has `labels[y*32+x] = 0`
 * on the face's pixels, and `coverage(scene, 8)[0]` is an 8 x 8 map whose cell (row 5, col 2) holds the fraction of
 * that 4 x 4 pixel cell the face covers.
 *
 * Shape legend: S image size (pixels), G feature grid size, K categories.
 */
import type { Rng } from '../../../../util/random.js';
import { ShapeError } from '../../../../util/shapes.js';

export const CATEGORIES = ['face', 'body', 'place', 'word'] as const;
export type Category = (typeof CATEGORIES)[number];

export interface SceneObject {
  category: Category;
  /** Centre in pixels and size (the side of the bounding square) in pixels. */
  x: number;
  y: number;
  size: number;
}

export interface Scene {
  size: number;
  /** RGB in [0, 1], [S, S, 3] row-major. */
  pixels: Float32Array;
  /** Per pixel: the category index that drew it, or -1 for background. [S, S] */
  labels: Int8Array;
  objects: SceneObject[];
}

export interface SceneConfig {
  /** Image side in pixels (default 32). */
  size: number;
  /** Objects per scene, drawn uniformly from [min, max]. */
  minObjects: number;
  maxObjects: number;
  /** Object size as a fraction of the image side, uniform in [min, max]. */
  minScale: number;
  maxScale: number;
}

export const DEFAULT_SCENES: SceneConfig = { size: 32, minObjects: 1, maxObjects: 3, minScale: 0.28, maxScale: 0.5 };

type Painter = (x: number, y: number) => [number, number, number] | null;

class Canvas {
  readonly pixels: Float32Array;
  readonly labels: Int8Array;
  constructor(readonly size: number) {
    this.pixels = new Float32Array(size * size * 3);
    this.labels = new Int8Array(size * size).fill(-1);
  }
  /** Paint every pixel whose centre, in object coordinates u, v ∈ [-1, 1], the painter colours. */
  paint(o: SceneObject, label: number, painter: Painter): void {
    const half = o.size / 2;
    const x0 = Math.max(0, Math.floor(o.x - half));
    const x1 = Math.min(this.size - 1, Math.ceil(o.x + half));
    const y0 = Math.max(0, Math.floor(o.y - half));
    const y1 = Math.min(this.size - 1, Math.ceil(o.y + half));
    for (let py = y0; py <= y1; py++) {
      for (let px = x0; px <= x1; px++) {
        const u = (px + 0.5 - o.x) / half;
        const v = (py + 0.5 - o.y) / half;
        if (Math.abs(u) > 1 || Math.abs(v) > 1) continue;
        const c = painter(u, v);
        if (!c) continue;
        const i = py * this.size + px;
        this.pixels.set(c, i * 3);
        this.labels[i] = label;
      }
    }
  }
}

const inEllipse = (u: number, v: number, cu: number, cv: number, ru: number, rv: number) =>
  ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1;
const nearSegment = (u: number, v: number, a: [number, number], b: [number, number], w: number) => {
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const t = Math.max(0, Math.min(1, ((u - a[0]) * dx + (v - a[1]) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(u - a[0] - t * dx, v - a[1] - t * dy) <= w;
};

/** One painter per category, with a little per-object variation in colour. */
function painter(category: Category, rng: Rng): Painter {
  const jitter = (c: [number, number, number]) =>
    c.map((x) => Math.min(1, Math.max(0, x + 0.08 * (rng.next() - 0.5)))) as [number, number, number];
  switch (category) {
    case 'face': {
      const skin = jitter([0.93, 0.72, 0.55]);
      const dark: [number, number, number] = [0.1, 0.08, 0.08];
      return (u, v) => {
        if (!inEllipse(u, v, 0, 0, 0.8, 0.95)) return null;
        if (inEllipse(u, v, -0.32, -0.25, 0.14, 0.14) || inEllipse(u, v, 0.32, -0.25, 0.14, 0.14)) return dark;
        if (Math.abs(v - 0.45) < 0.08 && Math.abs(u) < 0.38) return dark;
        return skin;
      };
    }
    case 'body': {
      const shirt = jitter([0.2, 0.35, 0.85]);
      const limb = jitter([0.15, 0.15, 0.4]);
      return (u, v) => {
        if (inEllipse(u, v, 0, -0.78, 0.2, 0.2)) return [0.9, 0.7, 0.55];
        if (inEllipse(u, v, 0, -0.15, 0.3, 0.45)) return shirt;
        if (nearSegment(u, v, [-0.15, 0.25], [-0.35, 0.98], 0.1) || nearSegment(u, v, [0.15, 0.25], [0.35, 0.98], 0.1))
          return limb;
        if (
          nearSegment(u, v, [-0.25, -0.45], [-0.75, 0.05], 0.08) ||
          nearSegment(u, v, [0.25, -0.45], [0.75, 0.05], 0.08)
        )
          return limb;
        return null;
      };
    }
    case 'place': {
      const wall = jitter([0.6, 0.45, 0.3]);
      const roof = jitter([0.55, 0.1, 0.1]);
      return (u, v) => {
        if (v < -0.1 && v >= -0.95 && Math.abs(u) <= (v + 0.95) * 1.05) return roof;
        if (v >= -0.1 && Math.abs(u) <= 0.85) {
          const wx = ((u + 0.85) / 0.34) % 1;
          const wy = ((v + 0.1) / 0.3) % 1;
          return wx > 0.35 && wx < 0.8 && wy > 0.3 && wy < 0.75 && v < 0.9 ? [0.95, 0.9, 0.5] : wall;
        }
        return null;
      };
    }
    case 'word': {
      const ink: [number, number, number] = [0.05, 0.05, 0.05];
      const letters = Array.from({ length: 4 }, () => rng.int(0, 4));
      return (u, v) => {
        if (Math.abs(v) > 0.45) return null;
        const slot = Math.min(3, Math.floor((u + 1) * 2));
        const lu = (u + 1) * 2 - slot - 0.5; // [-0.5, 0.5] inside the letter
        const lv = v / 0.35;
        const k = letters[slot];
        const stroke =
          (k === 0 && (Math.abs(lu + 0.25) < 0.12 || Math.abs(lv) < 0.15)) || // vertical + bar
          (k === 1 && (Math.abs(lv + 0.8) < 0.2 || Math.abs(lv - 0.8) < 0.2 || Math.abs(lu) < 0.12)) || // I-beam
          (k === 2 && Math.abs(lu - lv * 0.3) < 0.12) || // slash
          (k === 3 && Math.abs(Math.hypot(lu, lv * 0.5) - 0.3) < 0.1); // ring
        return stroke && Math.abs(lv) <= 1 ? ink : [0.97, 0.97, 0.92];
      };
    }
  }
}

/** Smooth texture: three random gratings and a colour tint, plus fine noise. */
function background(canvas: Canvas, rng: Rng): void {
  const S = canvas.size;
  const tint = [0.35 + 0.3 * rng.next(), 0.35 + 0.3 * rng.next(), 0.35 + 0.3 * rng.next()];
  const waves = Array.from({ length: 3 }, () => {
    const angle = rng.next() * Math.PI;
    const freq = (2 + 6 * rng.next()) / S;
    return {
      cx: Math.cos(angle) * freq * 2 * Math.PI,
      cy: Math.sin(angle) * freq * 2 * Math.PI,
      phase: rng.next() * 2 * Math.PI,
      amp: 0.06 + 0.06 * rng.next(),
    };
  });
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      let t = 0;
      for (const w of waves) t += w.amp * Math.sin(w.cx * x + w.cy * y + w.phase);
      for (let c = 0; c < 3; c++)
        canvas.pixels[(y * S + x) * 3 + c] = Math.min(1, Math.max(0, tint[c] + t + 0.03 * rng.normal()));
    }
  }
}

export function drawScene(cfg: SceneConfig, rng: Rng): Scene {
  const S = cfg.size;
  const canvas = new Canvas(S);
  background(canvas, rng);
  const count = rng.int(cfg.minObjects, cfg.maxObjects + 1);
  const objects: SceneObject[] = [];
  for (let i = 0; i < count; i++) {
    const category = CATEGORIES[rng.int(0, CATEGORIES.length)];
    const size = S * (cfg.minScale + (cfg.maxScale - cfg.minScale) * rng.next());
    const o = { category, size, x: size / 2 + rng.next() * (S - size), y: size / 2 + rng.next() * (S - size) };
    canvas.paint(o, CATEGORIES.indexOf(category), painter(category, rng));
    objects.push(o);
  }
  return { size: S, pixels: canvas.pixels, labels: canvas.labels, objects };
}

export function drawScenes(cfg: SceneConfig, n: number, rng: Rng): Scene[] {
  return Array.from({ length: n }, () => drawScene(cfg, rng));
}

/**
 * The fraction of each grid cell covered by each category: [K][G*G] (row-major cells). Later objects occlude
 * earlier ones, as in the pixels.
 */
export function coverage(scene: Scene, grid: number): Float32Array[] {
  const S = scene.size;
  if (S % grid !== 0) throw new ShapeError(`coverage: image size ${S} is not a multiple of grid ${grid}`);
  const cell = S / grid;
  const out = CATEGORIES.map(() => new Float32Array(grid * grid));
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const l = scene.labels[y * S + x];
      if (l >= 0) out[l][Math.floor(y / cell) * grid + Math.floor(x / cell)] += 1 / (cell * cell);
    }
  }
  return out;
}

/** Pixels of many scenes as one [n, S, S, 3] buffer. */
export function stackPixels(scenes: readonly Scene[]): Float32Array {
  const S = scenes[0]?.size ?? 0;
  const out = new Float32Array(scenes.length * S * S * 3);
  scenes.forEach((s, i) => out.set(s.pixels, i * S * S * 3));
  return out;
}

/**
 * Flatland: 2-D scenes of a few coloured discs, seen by pinhole cameras on a circle around the scene as 1-D images.
 * The novel-view-synthesis world of the DragView experiment (lib/papers/vision/dragview).
 *
 * A scene holds 2-4 non-overlapping discs (centres within `sceneRadius` of the origin, colours from a palette of six).
 * A camera sits at angle θ on the circle of radius `cameraRadius` and looks at the origin; its image has `width`
 * pixels, RGB in [0, 1]. Pixel u's ray leaves the camera along forward + s · tan(fov / 2) · right, with
 * s = 2 (u + 0.5) / width − 1, and takes the colour of the nearest disc it hits, or the background colour.
 * `project` is the inverse: a 2-D point's continuous pixel coordinate (pixel centres at 0, 1, ..., width − 1) and its
 * depth along the camera's forward axis.
 *
 *   const ex = flatlandViews({ seed: 1, split: 'train', count: 1, width: 8, supports: 2, maxDrag: Math.PI / 2 })[0];
 *   ex.scene.discs        // e.g. [{ x: 0.41, y: -0.2, r: 0.3, color: [0.9, 0.15, 0.1] }, ...]
 *   ex.sourceAngle        // θs in [0, 2π)
 *   ex.drag               // Δ in [−maxDrag, maxDrag]: the target camera sits at θs + Δ
 *   ex.source, ex.target  // Float64Array [width * 3], row-major (pixel, channel)
 *   ex.supports           // `supports` images at ex.supportAngles (the model never sees those angles)
 *
 * Splits: each example's scene and cameras come from a generator seeded by (seed, split, index), so the train,
 * validation and test streams are independent draws of continuous disc positions and radii: two splits share a scene
 * with probability ~0, and `sceneKey` (discs rounded to 1e-3) lets a caller check it (the tests do).
 */
import { hashSeed, hashString, Rng } from '../util/random.js';

export type FlatlandSplit = 'train' | 'validation' | 'test';

export interface Disc {
  x: number;
  y: number;
  r: number;
  color: [number, number, number];
}

export interface FlatlandScene {
  discs: Disc[];
  background: [number, number, number];
}

/** The shared intrinsics and rig: every camera of every scene uses these. */
export interface FlatlandRig {
  width: number;
  /** Full field of view in radians. */
  fov: number;
  cameraRadius: number;
}

export const DEFAULT_RIG: Omit<FlatlandRig, 'width'> = { fov: (50 * Math.PI) / 180, cameraRadius: 3 };

export const PALETTE: [number, number, number][] = [
  [0.9, 0.15, 0.1],
  [0.1, 0.75, 0.2],
  [0.15, 0.3, 0.95],
  [0.95, 0.85, 0.1],
  [0.85, 0.2, 0.85],
  [0.1, 0.85, 0.9],
];
export const BACKGROUND: [number, number, number] = [0.12, 0.12, 0.12];

/** A camera's centre, forward and right unit vectors at angle θ on the rig circle. */
export function cameraFrame(
  theta: number,
  radius: number,
): { c: [number, number]; f: [number, number]; r: [number, number] } {
  const c: [number, number] = [radius * Math.cos(theta), radius * Math.sin(theta)];
  const f: [number, number] = [-Math.cos(theta), -Math.sin(theta)];
  return { c, f, r: [f[1], -f[0]] };
}

function checkRig(fn: string, rig: FlatlandRig): void {
  if (!Number.isInteger(rig.width) || rig.width < 2)
    throw new Error(`${fn}: rig.width must be an integer >= 2, got ${rig.width}`);
  if (!(rig.fov > 0 && rig.fov < Math.PI)) throw new Error(`${fn}: rig.fov must be in (0, π) radians, got ${rig.fov}`);
  if (!(rig.cameraRadius > 0)) throw new Error(`${fn}: rig.cameraRadius must be > 0, got ${rig.cameraRadius}`);
}

/** The 1-D image of `scene` from the camera at angle `theta`: Float64Array [width * 3] (pixel-major RGB). */
export function renderView(scene: FlatlandScene, theta: number, rig: FlatlandRig): Float64Array {
  checkRig('renderView', rig);
  const { c, f, r } = cameraFrame(theta, rig.cameraRadius);
  const t = Math.tan(rig.fov / 2);
  const out = new Float64Array(rig.width * 3);
  for (let u = 0; u < rig.width; u++) {
    const s = (2 * (u + 0.5)) / rig.width - 1;
    let dx = f[0] + s * t * r[0];
    let dy = f[1] + s * t * r[1];
    const n = Math.hypot(dx, dy);
    dx /= n;
    dy /= n;
    let best = Infinity;
    let color = scene.background;
    for (const d of scene.discs) {
      // |c + λ d − p|² = r²  →  λ² + 2 λ (d·(c − p)) + |c − p|² − r² = 0
      const ox = c[0] - d.x;
      const oy = c[1] - d.y;
      const b = dx * ox + dy * oy;
      const disc = b * b - (ox * ox + oy * oy - d.r * d.r);
      if (disc < 0) continue;
      const lam = -b - Math.sqrt(disc);
      if (lam > 0 && lam < best) {
        best = lam;
        color = d.color;
      }
    }
    out.set(color, u * 3);
  }
  return out;
}

/** Continuous pixel coordinate and forward depth of the 2-D point (x, y) in the camera at angle `theta`. */
export function project(x: number, y: number, theta: number, rig: FlatlandRig): { u: number; depth: number } {
  const { c, f, r } = cameraFrame(theta, rig.cameraRadius);
  const dx = x - c[0];
  const dy = y - c[1];
  const depth = dx * f[0] + dy * f[1];
  const s = (dx * r[0] + dy * r[1]) / (depth * Math.tan(rig.fov / 2));
  return { u: ((s + 1) * rig.width) / 2 - 0.5, depth };
}

/** A seeded scene: `minDiscs`-`maxDiscs` non-overlapping discs with distinct palette colours. */
export function randomScene(
  rng: Rng,
  opts: { minDiscs?: number; maxDiscs?: number; sceneRadius?: number } = {},
): FlatlandScene {
  const lo = opts.minDiscs ?? 2;
  const hi = opts.maxDiscs ?? 4;
  const R = opts.sceneRadius ?? 1;
  const n = rng.int(lo, hi + 1);
  const colors = rng.sample(PALETTE.length, n);
  const discs: Disc[] = [];
  for (let i = 0; i < n; i++) {
    for (let attempt = 0; attempt < 200; attempt++) {
      const rad = R * Math.sqrt(rng.next());
      const a = 2 * Math.PI * rng.next();
      const d: Disc = {
        x: rad * Math.cos(a),
        y: rad * Math.sin(a),
        r: 0.2 + 0.25 * rng.next(),
        color: PALETTE[colors[i]],
      };
      if (discs.every((e) => Math.hypot(e.x - d.x, e.y - d.y) > e.r + d.r + 0.05)) {
        discs.push(d);
        break;
      }
    }
  }
  return { discs, background: BACKGROUND };
}

export interface FlatlandOptions {
  seed: number;
  split: FlatlandSplit;
  count: number;
  width: number;
  /** Unposed support views per example. */
  supports: number;
  /** |drag| of the target relative to the source, radians, drawn uniformly in [−maxDrag, maxDrag]. */
  maxDrag: number;
  /** Index of the first example (so a stream can be drawn in pieces). Default 0. */
  offset?: number;
  rig?: Partial<Omit<FlatlandRig, 'width'>>;
}

export interface FlatlandExample {
  scene: FlatlandScene;
  sourceAngle: number;
  drag: number;
  /** The support cameras' angles: the generator knows them, DragView does not (the noisy-pose baseline gets them noised). */
  supportAngles: number[];
  source: Float64Array;
  target: Float64Array;
  supports: Float64Array[];
}

/** A scene's identity: its discs' centres and radii rounded to 1e-3. */
export const sceneKey = (s: FlatlandScene): string =>
  s.discs.map((d) => `${d.x.toFixed(3)},${d.y.toFixed(3)},${d.r.toFixed(3)}`).join(';');

function exampleRng(seed: number, split: FlatlandSplit, index: number): Rng {
  return new Rng(hashSeed(hashSeed(seed) ^ hashString(`flatland:${split}:${index}`)));
}

/** `count` examples of `split` (see the module header). */
export function flatlandViews(o: FlatlandOptions): FlatlandExample[] {
  const fn = 'flatlandViews';
  if (!['train', 'validation', 'test'].includes(o.split))
    throw new Error(`${fn}: split must be 'train', 'validation' or 'test', got ${JSON.stringify(o.split)}`);
  if (!Number.isInteger(o.count) || o.count < 1)
    throw new Error(`${fn}: count must be an integer >= 1, got ${o.count}`);
  if (!Number.isInteger(o.supports) || o.supports < 0)
    throw new Error(`${fn}: supports must be an integer >= 0, got ${o.supports}`);
  if (!(o.maxDrag >= 0 && o.maxDrag <= Math.PI))
    throw new Error(`${fn}: maxDrag must be in [0, π] radians, got ${o.maxDrag}`);
  const rig: FlatlandRig = { ...DEFAULT_RIG, ...o.rig, width: o.width };
  checkRig(fn, rig);
  const offset = o.offset ?? 0;
  const out: FlatlandExample[] = [];
  for (let i = offset; i < offset + o.count; i++) {
    const rng = exampleRng(o.seed, o.split, i);
    const scene = randomScene(rng);
    const sourceAngle = 2 * Math.PI * rng.next();
    const drag = o.maxDrag * (2 * rng.next() - 1);
    const supportAngles = Array.from({ length: o.supports }, () => 2 * Math.PI * rng.next());
    out.push({
      scene,
      sourceAngle,
      drag,
      supportAngles,
      source: renderView(scene, sourceAngle, rig),
      target: renderView(scene, sourceAngle + drag, rig),
      supports: supportAngles.map((a) => renderView(scene, a, rig)),
    });
  }
  return out;
}

/**
 * DragView: novel view synthesis from one source view, a "drag" of the camera, and unposed support views.
 *
 * Paper: Fan et al. 2023, "DragView: Generalizable Novel View Synthesis with Unposed Imagery",
 * https://arxiv.org/abs/2310.03704 (project page https://zhiwenfan.github.io/DragView/; no official code found).
 *
 * The mechanism, in flatland (lib/data/flatland.ts: 2-D scenes, 1-D images):
 *   1. The user drags the source camera by Δ around the scene centre; the target camera's pose relative to the source is
 *      known from Δ alone. P points x_{u,k} = c_t + z_k (f_t + s_u tan(fov/2) r_t) along each target pixel u's ray are
 *      projected into the source view: (ũ_{u,k}, depth_{u,k}) = π_src(x_{u,k})                       (`rayPointsInView`)
 *   2. Pixel-aligned source features by 1-D linear interpolation at ũ:
 *      F_src(ũ) = (1 − w) F[⌊ũ⌋] + w F[⌊ũ⌋ + 1],  w = ũ − ⌊ũ⌋                                       (`sample1d`)
 *   3. Each ray point's token attends over ALL pixels of the unposed support views (no epipolar line: no poses):
 *      y = softmax(q Kᵀ / √d + log mask) V,  q [b, n, d], K [b, m, d]                                 (`crossAttention`)
 *   4. A ray transformer over the P points of a ray decodes the pixel colour (model.ts).
 *
 * Shape legend: b batch, W pixels per image, P points per ray, n = W·P ray points, S support views, m = S·W support
 * pixels, d feature width. Each tensor function has a float64 reference beside it (plain loops).
 */
import * as tf from '@tensorflow/tfjs';
import { cameraFrame, type FlatlandRig } from '../../../data/flatland.js';
import { assertRank, fmt, ShapeError } from '../../../util/shapes.js';

export interface RayPoints {
  /** Continuous pixel coordinate in the viewing camera, per target pixel u and point k: index u·P + k. */
  u: Float64Array;
  /** Depth along the viewing camera's forward axis (≤ 0: behind it). */
  depth: Float64Array;
  /** 1 when the point lies in front of the viewing camera and inside its image (u in [−0.5, W − 0.5]), else 0. */
  inView: Float64Array;
}

/**
 * Where the P points along each pixel ray of the camera at `targetAngle` land in the camera at `viewAngle` (both on
 * the rig circle). `depths` are the points' depths along the target camera's forward axis. With viewAngle 0 and
 * targetAngle Δ this is DragView's drag projection (flatland is rotation-invariant, so only Δ matters).
 */
export function rayPointsInView(targetAngle: number, viewAngle: number, rig: FlatlandRig, depths: number[]): RayPoints {
  const fn = 'rayPointsInView';
  if (!Number.isFinite(targetAngle)) throw new Error(`${fn}: targetAngle must be a finite number, got ${targetAngle}`);
  if (!Number.isFinite(viewAngle)) throw new Error(`${fn}: viewAngle must be a finite number, got ${viewAngle}`);
  if (!depths.length || depths.some((z) => !(z > 0)))
    throw new Error(`${fn}: depths must be a non-empty list of numbers > 0, got [${depths}]`);
  const W = rig.width;
  const P = depths.length;
  const tan = Math.tan(rig.fov / 2);
  const t = cameraFrame(targetAngle, rig.cameraRadius);
  const v = cameraFrame(viewAngle, rig.cameraRadius);
  const out: RayPoints = {
    u: new Float64Array(W * P),
    depth: new Float64Array(W * P),
    inView: new Float64Array(W * P),
  };
  for (let u = 0; u < W; u++) {
    const s = (2 * (u + 0.5)) / W - 1;
    const dx = t.f[0] + s * tan * t.r[0];
    const dy = t.f[1] + s * tan * t.r[1];
    for (let k = 0; k < P; k++) {
      const px = t.c[0] + depths[k] * dx - v.c[0];
      const py = t.c[1] + depths[k] * dy - v.c[1];
      const z = px * v.f[0] + py * v.f[1];
      const x = px * v.r[0] + py * v.r[1];
      const i = u * P + k;
      out.depth[i] = z;
      if (z > 1e-6) {
        out.u[i] = ((x / (z * tan) + 1) * W) / 2 - 0.5;
        out.inView[i] = out.u[i] >= -0.5 && out.u[i] <= W - 0.5 ? 1 : 0;
      } else {
        out.u[i] = -1;
      }
    }
  }
  return out;
}

/**
 * 1-D linear interpolation of per-pixel features at continuous coordinates: features [b, W, C], coords [b, N] →
 * [b, N, C]. Coordinates are clamped to [0, W − 1] (a point outside the image reads the edge pixel; callers mask it
 * with `inView`). Differentiable in `features` (the coordinates come from geometry and carry no gradient).
 */
export function sample1d(features: tf.Tensor, coords: tf.Tensor): tf.Tensor3D {
  const fn = 'sample1d';
  assertRank(fn, 'features', features, 3, '[batch, pixels, channels]');
  assertRank(fn, 'coords', coords, 2, '[batch, points]');
  const [b, W] = features.shape;
  if (coords.shape[0] !== b)
    throw new ShapeError(
      `${fn}: coords has batch ${coords.shape[0]} (shape ${fmt(coords.shape)}) but features has ${b}`,
    );
  if (W < 2) throw new ShapeError(`${fn}: features needs at least 2 pixels, got shape ${fmt(features.shape)}`);
  return tf.tidy(() => {
    const u = coords.toFloat().clipByValue(0, W - 1);
    const i0 = u.floor().clipByValue(0, W - 2);
    const w = u.sub(i0).expandDims(-1); // [b, N, 1]
    const lo = i0.toInt();
    // The interpolation as a sparse [b, N, W] matrix times the features (a matmul has a gradient on every backend).
    const interp = tf
      .oneHot(lo, W)
      .mul(tf.scalar(1).sub(w))
      .add(tf.oneHot(lo.add(tf.scalar(1, 'int32')), W).mul(w));
    return tf.matMul(interp, features) as tf.Tensor3D;
  });
}

/** Float64 reference of `sample1d`: features row-major [b, W, C], coords [b, N] → [b, N, C]. */
export function sample1dReference(
  features: ArrayLike<number>,
  shape: [number, number, number],
  coords: ArrayLike<number>,
  N: number,
): Float64Array {
  const [b, W, C] = shape;
  const out = new Float64Array(b * N * C);
  for (let i = 0; i < b; i++)
    for (let n = 0; n < N; n++) {
      const u = Math.min(W - 1, Math.max(0, coords[i * N + n]));
      const i0 = Math.min(W - 2, Math.floor(u));
      const w = u - i0;
      for (let c = 0; c < C; c++)
        out[(i * N + n) * C + c] = (1 - w) * features[(i * W + i0) * C + c] + w * features[(i * W + i0 + 1) * C + c];
    }
  return out;
}

/**
 * Single-head cross-attention with an optional key mask: q [b, n, d], k [b, m, d], v [b, m, e], keyMask [b, m] (1 keep,
 * 0 drop; a query whose keys are all dropped gets zeros) → [b, n, e].
 */
export function crossAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, keyMask?: tf.Tensor): tf.Tensor3D {
  const fn = 'crossAttention';
  assertRank(fn, 'q', q, 3, '[batch, queries, dim]');
  assertRank(fn, 'k', k, 3, '[batch, keys, dim]');
  assertRank(fn, 'v', v, 3, '[batch, keys, valueDim]');
  if (q.shape[0] !== k.shape[0] || k.shape[0] !== v.shape[0])
    throw new ShapeError(`${fn}: batch sizes differ: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)}`);
  if (q.shape[2] !== k.shape[2])
    throw new ShapeError(`${fn}: q has shape ${fmt(q.shape)} but k has ${fmt(k.shape)}; their last dims must match`);
  if (k.shape[1] !== v.shape[1])
    throw new ShapeError(`${fn}: k has ${k.shape[1]} keys (${fmt(k.shape)}) but v has ${v.shape[1]} (${fmt(v.shape)})`);
  if (keyMask && (keyMask.rank !== 2 || keyMask.shape[0] !== k.shape[0] || keyMask.shape[1] !== k.shape[1]))
    throw new ShapeError(
      `${fn}: keyMask must have shape [${k.shape[0]},${k.shape[1]}] [batch, keys], got ${fmt(keyMask.shape)}`,
    );
  return tf.tidy(() => {
    let s = tf.matMul(q, k, false, true).div(Math.sqrt(q.shape[2] as number)); // [b, n, m]
    if (!keyMask) return tf.matMul(tf.softmax(s), v) as tf.Tensor3D;
    const m = keyMask.toFloat().expandDims(1); // [b, 1, m]
    s = s.add(tf.scalar(1).sub(m).mul(-1e9));
    const p = tf.softmax(s).mul(m); // all-dropped rows: uniform softmax times 0
    return tf.matMul(p, v) as tf.Tensor3D;
  });
}

/** Float64 reference of `crossAttention` (row-major arrays; keyMask [b, m] or undefined). */
export function crossAttentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dims: { b: number; n: number; m: number; d: number; e: number },
  keyMask?: ArrayLike<number>,
): Float64Array {
  const { b, n, m, d, e } = dims;
  const out = new Float64Array(b * n * e);
  for (let i = 0; i < b; i++)
    for (let a = 0; a < n; a++) {
      const s = new Float64Array(m);
      let max = -Infinity;
      let any = false;
      for (let j = 0; j < m; j++) {
        if (keyMask && keyMask[i * m + j] === 0) continue;
        any = true;
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[(i * n + a) * d + c] * k[(i * m + j) * d + c];
        s[j] = dot / Math.sqrt(d);
        max = Math.max(max, s[j]);
      }
      if (!any) continue;
      let z = 0;
      for (let j = 0; j < m; j++) {
        s[j] = keyMask && keyMask[i * m + j] === 0 ? 0 : Math.exp(s[j] - max);
        z += s[j];
      }
      for (let j = 0; j < m; j++)
        for (let c = 0; c < e; c++) out[(i * n + a) * e + c] += (s[j] / z) * v[(i * m + j) * e + c];
    }
  return out;
}

/** PSNR in dB of a prediction against a target in [0, 1] (equal-length arrays); capped at 60 dB for a perfect match. */
export function psnr(pred: ArrayLike<number>, target: ArrayLike<number>): number {
  let se = 0;
  for (let i = 0; i < target.length; i++) se += (pred[i] - target[i]) ** 2;
  const mse = se / target.length;
  return mse <= 1e-6 ? 60 : -10 * Math.log10(mse);
}

/**
 * SSIM of two 1-D RGB images [W * 3] (pixel-major): per channel, a sliding window of `window` pixels (uniform weights,
 * valid positions only), C1 = 0.01², C2 = 0.03² for data in [0, 1]; the mean over windows and channels.
 */
export function ssim1d(pred: ArrayLike<number>, target: ArrayLike<number>, window = 5): number {
  const W = target.length / 3;
  if (!Number.isInteger(W) || pred.length !== target.length)
    throw new Error(
      `ssim1d: pred and target must be equal-length [W * 3] arrays, got ${pred.length} and ${target.length}`,
    );
  const win = Math.min(window, W);
  const C1 = 0.01 ** 2;
  const C2 = 0.03 ** 2;
  let total = 0;
  let count = 0;
  for (let c = 0; c < 3; c++)
    for (let s = 0; s + win <= W; s++) {
      let mx = 0;
      let my = 0;
      for (let i = s; i < s + win; i++) {
        mx += pred[i * 3 + c];
        my += target[i * 3 + c];
      }
      mx /= win;
      my /= win;
      let vx = 0;
      let vy = 0;
      let cxy = 0;
      for (let i = s; i < s + win; i++) {
        const a = pred[i * 3 + c] - mx;
        const t = target[i * 3 + c] - my;
        vx += a * a;
        vy += t * t;
        cxy += a * t;
      }
      vx /= win;
      vy /= win;
      cxy /= win;
      total += ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
      count++;
    }
  return total / count;
}

/**
 * The DragView model in flatland and its two baselines, one class with a `variant`:
 *   'dragview'     source projection by the drag + cross-attention from every ray point to ALL support pixels (no poses)
 *   'source-only'  the same without support views
 *   'noisy-pose'   GNT-like: each ray point is projected into every support view with a given (noised) pose, and
 *                  attends over the S features it reads there (epipolar sampling needs poses; noise misplaces it)
 * Every variant shares the pixel encoder (a width-3 1-D convolution and a linear layer), the view-dependent modulation
 * of the sampled source feature by the point's geometry (its depths in the target and source cameras, whether the
 * source sees it, the drag), and the ray transformer (one pre-norm block over the P points of a ray, then attention
 * pooling over the points and a linear RGB head with a sigmoid).
 *
 * Shapes: b batch, W pixels, P points per ray, n = W·P, S supports, d width, G = 6 geometry features per point.
 */
import * as tf from '@tensorflow/tfjs';
import type { FlatlandExample, FlatlandRig } from '../../../data/flatland.js';
import type { NormParams } from '../../../layers/functional.js';
import { type BlockConfig, type BlockParams, blockForward, layerNorm, linear } from '../../../layers/functional.js';
import { ParamFactory } from '../../../layers/params.js';
import { makeBlock, makeNorm } from '../../../layers/weights.js';
import type { Rng } from '../../../util/random.js';
import { crossAttention, rayPointsInView, sample1d } from './index.js';

export type DragViewVariant = 'dragview' | 'source-only' | 'noisy-pose';

export interface DragViewModelConfig {
  variant: DragViewVariant;
  rig: FlatlandRig;
  /** Points per target ray, at depths spread evenly over [cameraRadius − depthSpan, cameraRadius + depthSpan]. */
  points: number;
  depthSpan: number;
  dModel: number;
  heads: number;
  supports: number;
  seed: number;
}

const G = 6;

/** A batch as plain arrays (made in JS from the geometry; turned into tensors inside the loss). */
export interface DragViewBatch {
  b: number;
  source: Float32Array; // [b, W, 3]
  supports: Float32Array; // [b, S, W, 3]
  target: Float32Array; // [b, W, 3]
  srcU: Float32Array; // [b, n]
  srcInView: Float32Array; // [b, n]
  geo: Float32Array; // [b, n, G]
  /** noisy-pose only: [b, S, n] coordinates and in-view flags in each support, [b, n, S, 2] their geometry. */
  supU?: Float32Array;
  supInView?: Float32Array;
  supGeo?: Float32Array;
}

export function rayDepths(cfg: Pick<DragViewModelConfig, 'points' | 'depthSpan' | 'rig'>): number[] {
  const R = cfg.rig.cameraRadius;
  return Array.from({ length: cfg.points }, (_, k) => R - cfg.depthSpan + (2 * cfg.depthSpan * (k + 0.5)) / cfg.points);
}

/**
 * Builds a batch: the drag projection into the source for every example, and for 'noisy-pose' the projection into each
 * support with its angle relative to the source plus N(0, poseNoise²) (drawn from `rng`).
 */
export function makeBatch(
  examples: FlatlandExample[],
  cfg: DragViewModelConfig,
  opts: { poseNoise?: number; rng?: Rng } = {},
): DragViewBatch {
  const W = cfg.rig.width;
  const P = cfg.points;
  const S = cfg.supports;
  const n = W * P;
  const b = examples.length;
  const depths = rayDepths(cfg);
  const R = cfg.rig.cameraRadius;
  const out: DragViewBatch = {
    b,
    source: new Float32Array(b * W * 3),
    supports: new Float32Array(b * S * W * 3),
    target: new Float32Array(b * W * 3),
    srcU: new Float32Array(b * n),
    srcInView: new Float32Array(b * n),
    geo: new Float32Array(b * n * G),
  };
  const noisy = cfg.variant === 'noisy-pose';
  if (noisy) {
    out.supU = new Float32Array(b * S * n);
    out.supInView = new Float32Array(b * S * n);
    out.supGeo = new Float32Array(b * n * S * 2);
  }
  examples.forEach((ex, i) => {
    if (ex.supports.length !== S)
      throw new Error(`makeBatch: example ${i} has ${ex.supports.length} support views, the model takes ${S}`);
    out.source.set(ex.source, i * W * 3);
    out.target.set(ex.target, i * W * 3);
    ex.supports.forEach((s, j) => out.supports.set(s, (i * S + j) * W * 3));
    const rp = rayPointsInView(ex.drag, 0, cfg.rig, depths);
    for (let u = 0; u < W; u++)
      for (let k = 0; k < P; k++) {
        const a = u * P + k;
        out.srcU[i * n + a] = rp.u[a];
        out.srcInView[i * n + a] = rp.inView[a];
        out.geo.set(
          [
            (depths[k] - R) / cfg.depthSpan,
            (rp.depth[a] - R) / cfg.depthSpan,
            rp.inView[a],
            Math.sin(ex.drag),
            Math.cos(ex.drag),
            (2 * u) / (W - 1) - 1,
          ],
          (i * n + a) * G,
        );
      }
    if (noisy) {
      ex.supportAngles.forEach((angle, j) => {
        const noise = opts.poseNoise && opts.rng ? opts.poseNoise * opts.rng.normal() : 0;
        const sp = rayPointsInView(ex.drag, angle - ex.sourceAngle + noise, cfg.rig, depths);
        for (let a = 0; a < n; a++) {
          (out.supU as Float32Array)[(i * S + j) * n + a] = sp.u[a];
          (out.supInView as Float32Array)[(i * S + j) * n + a] = sp.inView[a];
          (out.supGeo as Float32Array).set(
            [(sp.depth[a] - R) / cfg.depthSpan, sp.inView[a]],
            ((i * n + a) * S + j) * 2,
          );
        }
      });
    }
  });
  return out;
}

interface Params {
  conv: tf.Variable; // [9, d]: a width-3 convolution over RGB, as a linear map of each pixel and its two neighbours
  convB: tf.Variable;
  enc: tf.Variable; // [d, d]
  encB: tf.Variable;
  pos: tf.Variable; // [W, d]
  gate: tf.Variable; // [G, d]
  gateB: tf.Variable;
  geo: tf.Variable; // [G, d]
  geoB: tf.Variable;
  ln: NormParams;
  wq: tf.Variable;
  wk: tf.Variable;
  wv: tf.Variable;
  wo: tf.Variable;
  supGeo?: tf.Variable; // [2, d] (noisy-pose)
  ray: BlockParams;
  pool: tf.Variable; // [d, 1]
  head: tf.Variable; // [d, 3]
  headB: tf.Variable;
}

export class DragViewModel {
  readonly config: DragViewModelConfig;
  private readonly factory: ParamFactory;
  private readonly p: Params;
  private readonly blockCfg: BlockConfig;

  constructor(config: DragViewModelConfig) {
    const fn = 'DragViewModel';
    if (!['dragview', 'source-only', 'noisy-pose'].includes(config.variant))
      throw new Error(
        `${fn}: variant must be 'dragview', 'source-only' or 'noisy-pose', got ${JSON.stringify(config.variant)}`,
      );
    for (const k of ['points', 'dModel', 'heads'] as const)
      if (!Number.isInteger(config[k]) || config[k] < 1)
        throw new Error(`${fn}: ${k} must be an integer >= 1, got ${config[k]}`);
    if (!(config.depthSpan > 0 && config.depthSpan < config.rig.cameraRadius))
      throw new Error(
        `${fn}: depthSpan must be in (0, cameraRadius = ${config.rig.cameraRadius}), got ${config.depthSpan}`,
      );
    this.config = config;
    const d = config.dModel;
    const f = new ParamFactory({ scope: `dragview_${config.variant.replace('-', '_')}`, seed: config.seed });
    this.factory = f;
    this.blockCfg = { dModel: d, heads: config.heads, mlpRatio: 2 };
    const w = (name: string, shape: number[]) => f.variable(name, shape, 'glorotUniform');
    const z = (name: string, shape: number[]) => f.variable(name, shape, 'zeros');
    this.p = {
      conv: w('conv', [9, d]),
      convB: z('convB', [d]),
      enc: w('enc', [d, d]),
      encB: z('encB', [d]),
      pos: f.variable('pos', [config.rig.width, d], { normal: 0.1 }),
      gate: w('gate', [G, d]),
      gateB: z('gateB', [d]),
      geo: w('geo', [G, d]),
      geoB: z('geoB', [d]),
      ln: makeNorm(f.child('ln'), d),
      wq: w('wq', [d, d]),
      wk: w('wk', [d, d]),
      wv: w('wv', [d, d]),
      wo: w('wo', [d, d]),
      ...(config.variant === 'noisy-pose' ? { supGeo: w('supGeo', [2, d]) } : {}),
      ray: makeBlock(f.child('ray'), this.blockCfg),
      pool: w('pool', [d, 1]),
      head: w('head', [d, 3]),
      headB: z('headB', [3]),
    };
  }

  variables(): tf.Variable[] {
    return Object.values(this.factory.params());
  }

  parameterCount(): number {
    return this.variables().reduce((a, v) => a + v.size, 0);
  }

  /** Per-pixel features of images [B, W, 3] → [B, W, d]. */
  private encode(img: tf.Tensor): tf.Tensor3D {
    // Each pixel with its left and right neighbours (zero-padded), [B, W, 9]: a width-3 convolution written as a
    // matmul, whose gradient every backend has (wasm has no Conv2DBackpropFilter).
    const W = img.shape[1] as number;
    const padded = img.pad([
      [0, 0],
      [1, 1],
      [0, 0],
    ]);
    const win = tf.concat([padded.slice([0, 0, 0], [-1, W, 3]), img, padded.slice([0, 2, 0], [-1, W, 3])], 2);
    const h = tf.relu(linear(win, this.p.conv, this.p.convB));
    return linear(h, this.p.enc, this.p.encB) as tf.Tensor3D;
  }

  /** Predicted target images [b, W, 3] in [0, 1]. */
  forward(batch: DragViewBatch): tf.Tensor3D {
    const { rig, points: P, supports: S, dModel: d, variant } = this.config;
    const W = rig.width;
    const n = W * P;
    const b = batch.b;
    return tf.tidy(() => {
      const p = this.p;
      const src = this.encode(tf.tensor3d(batch.source, [b, W, 3]));
      const inView = tf.tensor3d(batch.srcInView, [b, n, 1]);
      const geo = tf.tensor3d(batch.geo, [b, n, G]);
      // View-dependent modulation: the sampled source feature, gated and shifted by the point's geometry.
      let tok = sample1d(src, tf.tensor2d(batch.srcU, [b, n]))
        .mul(inView)
        .mul(tf.sigmoid(linear(geo, p.gate, p.gateB)))
        .add(linear(geo, p.geo, p.geoB));
      if (variant !== 'source-only' && S > 0) {
        const sup = this.encode(tf.tensor3d(batch.supports, [b * S, W, 3])); // [b·S, W, d]
        const q = linear(layerNorm(tok, p.ln.gamma, p.ln.beta), p.wq);
        let y: tf.Tensor;
        if (variant === 'dragview') {
          // Every ray point attends over all S·W support pixels: no poses, so no epipolar line to restrict it to.
          const keys = sup.add(p.pos).reshape([b, S * W, d]);
          y = crossAttention(q, linear(keys, p.wk), linear(keys, p.wv));
        } else {
          if (!batch.supU || !batch.supInView || !batch.supGeo)
            throw new Error(
              "DragViewModel.forward: the 'noisy-pose' variant needs a batch made with its config (supU)",
            );
          // Epipolar sampling: each point reads each support at its projection under the given pose; attends over S.
          const read = sample1d(sup, tf.tensor2d(batch.supU, [b * S, n])) // [b·S, n, d]
            .reshape([b, S, n, d])
            .transpose([0, 2, 1, 3])
            .reshape([b * n, S, d]);
          const keys = read.add(linear(tf.tensor3d(batch.supGeo, [b * n, S, 2]), p.supGeo as tf.Tensor));
          const mask = tf
            .tensor4d(batch.supInView, [b, S, n, 1])
            .transpose([0, 2, 1, 3])
            .reshape([b * n, S]);
          y = crossAttention(q.reshape([b * n, 1, d]), linear(keys, p.wk), linear(keys, p.wv), mask).reshape([b, n, d]);
        }
        tok = tok.add(linear(y, p.wo));
      }
      // Ray transformer over the P points of each ray, then attention pooling and the colour head.
      const x = blockForward(p.ray, tok.reshape([b * W, P, d]), this.blockCfg);
      const a = tf.softmax(linear(x, p.pool).reshape([b * W, P])).expandDims(-1); // [b·W, P, 1]
      const ray = x.mul(a).sum(1); // [b·W, d]
      return tf.sigmoid(linear(ray, p.head, p.headB)).reshape([b, W, 3]) as tf.Tensor3D;
    });
  }

  /** Mean squared error against the batch's targets (a scalar). */
  loss(batch: DragViewBatch): tf.Scalar {
    return tf.tidy(() => {
      const pred = this.forward(batch);
      return tf.losses.meanSquaredError(tf.tensor3d(batch.target, pred.shape), pred) as tf.Scalar;
    });
  }

  /** Predictions as plain arrays [W * 3] per example, in chunks of `chunk`. */
  predict(batches: DragViewBatch[]): Float32Array[] {
    const W = this.config.rig.width;
    const out: Float32Array[] = [];
    for (const batch of batches) {
      const pred = this.forward(batch);
      const data = pred.dataSync() as Float32Array;
      pred.dispose();
      for (let i = 0; i < batch.b; i++) out.push(data.slice(i * W * 3, (i + 1) * W * 3));
    }
    return out;
  }

  dispose(): void {
    this.factory.dispose();
  }
}

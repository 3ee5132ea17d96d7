/**
 * GANO: guided attention for the next active object (Thakur, Beyan, Morerio, Murino, Del Bue 2023, "Enhancing Next
 * Active Object-based Egocentric Action Anticipation with Guided Attention", https://arxiv.org/abs/2305.12953; the
 * CVPR 2023 Ego4D STA challenge version: https://github.com/sanketsans/ganov2).
 *
 * The mechanism. Detections (box + noun embedding) are *guiding queries* that cross-attend to the clip's
 * spatio-temporal patch tokens, so each object token gathers the motion and context around it:
 *
 *   q_i = W_box · box_i + E[noun_i]                                  (one query per detection)
 *   A^h = softmax_p( (Q W_q^h)(X W_k^h)ᵀ / √d_h )                    (per head h, over all T·P patch tokens)
 *   GA(Q, X) = concat_h( A^h X W_v^h ) W_o
 *
 * Shapes: queries [b, n, d] (n detections), tokens [b, p, d] (p = frames · patches per frame), weights [b, h, n, p],
 * output [b, n, d]. (The challenge code, noun_attn.py, lets patch tokens query the boxes instead; we follow the
 * paper's description, objects as queries, which is what makes the per-object attention map readable.)
 *
 * `guidedAttention` is the pure function; `guidedAttentionReference` the float64 loops beside it; `GanoModel` the
 * trainable model with the three fusions the paper's ablation compares: 'guided' (the above), 'concat' (object
 * features concatenated to mean-pooled video features, no attention) and 'video' (no detections).
 */
import * as tf from '@tensorflow/tfjs';
import { gelu, linear, mergeHeads, splitHeads } from '../../../layers/functional.js';
import { ParamFactory } from '../../../layers/params.js';

export interface GuidedAttentionParams {
  wq: tf.Tensor; // [d, d]
  wk: tf.Tensor; // [d, d]
  wv: tf.Tensor; // [d, d]
  wo: tf.Tensor; // [d, d]
}

export interface GuidedAttentionOutput {
  /** [b, n, d]: one attended feature per guiding query. */
  out: tf.Tensor3D;
  /** [b, h, n, p]: each query's attention over the patch tokens. */
  weights: tf.Tensor4D;
}

function checkShapes(fn: string, q: readonly number[], x: readonly number[], w: readonly number[][], heads: number) {
  if (q.length !== 3) throw new Error(`${fn}: queries must be [b, n, d], got shape [${q}]`);
  if (x.length !== 3) throw new Error(`${fn}: tokens must be [b, p, d], got shape [${x}]`);
  if (q[0] !== x[0] || q[2] !== x[2])
    throw new Error(`${fn}: queries [${q}] and tokens [${x}] must share batch and feature size`);
  const d = q[2];
  if (!Number.isInteger(heads) || heads < 1 || d % heads !== 0)
    throw new Error(`${fn}: heads must be a positive integer dividing d = ${d}, got ${heads}`);
  for (const [name, s] of ['wq', 'wk', 'wv', 'wo'].map((n, i) => [n, w[i]] as const))
    if (s.length !== 2 || s[0] !== d || s[1] !== d)
      throw new Error(`${fn}: ${name} must be [${d}, ${d}], got shape [${s}]`);
}

/** Guided cross-attention: detection queries [b, n, d] attend to patch tokens [b, p, d] (see the header). */
export function guidedAttention(
  queries: tf.Tensor,
  tokens: tf.Tensor,
  p: GuidedAttentionParams,
  heads: number,
): GuidedAttentionOutput {
  checkShapes('guidedAttention', queries.shape, tokens.shape, [p.wq.shape, p.wk.shape, p.wv.shape, p.wo.shape], heads);
  return tf.tidy(() => {
    const d = queries.shape[2] as number;
    const dh = d / heads;
    const q = splitHeads(linear(queries, p.wq), heads, dh); // [b, h, n, dh]
    const k = splitHeads(linear(tokens, p.wk), heads, dh); // [b, h, p, dh]
    const v = splitHeads(linear(tokens, p.wv), heads, dh); // [b, h, p, dh]
    const weights = tf.softmax(tf.matMul(q, k, false, true).mul(1 / Math.sqrt(dh))) as tf.Tensor4D; // [b, h, n, p]
    const out = linear(mergeHeads(tf.matMul(weights, v)), p.wo) as tf.Tensor3D; // [b, n, d]
    return { out, weights };
  });
}

/** Float64 reference of `guidedAttention`: queries [b][n][d], tokens [b][p][d], weights [d][d] each. */
export function guidedAttentionReference(
  queries: number[][][],
  tokens: number[][][],
  p: { wq: number[][]; wk: number[][]; wv: number[][]; wo: number[][] },
  heads: number,
): { out: number[][][]; weights: number[][][][] } {
  const shape3 = (a: number[][][]) => [a.length, a[0]?.length ?? 0, a[0]?.[0]?.length ?? 0];
  const shape2 = (a: number[][]) => [a.length, a[0]?.length ?? 0];
  checkShapes(
    'guidedAttentionReference',
    shape3(queries),
    shape3(tokens),
    [shape2(p.wq), shape2(p.wk), shape2(p.wv), shape2(p.wo)],
    heads,
  );
  const matVec = (rows: number[][], w: number[][]) =>
    rows.map((r) => w[0].map((_, j) => r.reduce((s, x, i) => s + x * w[i][j], 0)));
  const d = queries[0][0].length;
  const dh = d / heads;
  const out: number[][][] = [];
  const weights: number[][][][] = [];
  for (let b = 0; b < queries.length; b++) {
    const q = matVec(queries[b], p.wq);
    const k = matVec(tokens[b], p.wk);
    const v = matVec(tokens[b], p.wv);
    const concat = q.map(() => new Array<number>(d).fill(0));
    const wb: number[][][] = [];
    for (let h = 0; h < heads; h++) {
      const wh: number[][] = [];
      for (let i = 0; i < q.length; i++) {
        const s = k.map((kr) => {
          let dot = 0;
          for (let c = h * dh; c < (h + 1) * dh; c++) dot += q[i][c] * kr[c];
          return dot / Math.sqrt(dh);
        });
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        const a = e.map((x) => x / z);
        wh.push(a);
        for (let c = h * dh; c < (h + 1) * dh; c++) concat[i][c] = a.reduce((acc, aj, j) => acc + aj * v[j][c], 0);
      }
      wb.push(wh);
    }
    out.push(matVec(concat, p.wo));
    weights.push(wb);
  }
  return { out, weights };
}

export type GanoFusion = 'guided' | 'concat' | 'video';

export interface GanoModelConfig {
  fusion: GanoFusion;
  /** Patch token size (patch² · channels), count (frames · grid², grid² patches per frame) and frames. */
  tokenDim: number;
  tokens: number;
  frames: number;
  /** Detections per clip and noun classes. */
  objects: number;
  nouns: number;
  dModel: number;
  heads: number;
  seed: number;
}

export interface GanoInputs {
  /** [b, tokens, tokenDim] */
  patches: tf.Tensor3D;
  /** [b, objects, 4] */
  boxes: tf.Tensor3D;
  /** [b, objects] int32 */
  classes: tf.Tensor2D;
}

export interface GanoOutputs {
  /** [b, nouns]: next-active-object noun logits. */
  nounLogits: tf.Tensor2D;
  /** [b, 4]: next-active-object box in [0, 1]. */
  box: tf.Tensor2D;
  /** [b]: time to contact (frames). */
  ttc: tf.Tensor1D;
  /** [b, objects]: which detection is the next active object (fusions with detections). */
  objectLogits?: tf.Tensor2D;
  /** [b, heads, objects, tokens]: the guided attention (fusion 'guided' only). */
  attention?: tf.Tensor4D;
}

/**
 * The model. Patch tokens: a linear embedding plus a position embedding (the patch's own box through W_box, the
 * detections' box embedding, so that queries and keys share one coordinate code, plus a learned frame embedding),
 * then a GELU MLP (residual); `pooled` is their mean. Object queries: q_i = W_box · box_i + E[noun_i]. Fusion:
 *   guided  o_i = q_i + GA(Q, X)_i (the detections attend to the patch tokens), then o_i += MLP(o_i);
 *   concat  o_i = q_i + MLP(q_i) (no attention: the objects see the video only through `pooled` below);
 *   video   no detections: h = GELU(W pooled); box = sigmoid(W_box h), regressed directly.
 * With detections, each object's [o_i, pooled] goes through one GELU layer to h_i; a score s_i = w · h_i says which
 * detection is the next active object (trained by cross-entropy on the target index), a = softmax(s),
 * h = Σ a_i h_i and box = Σ a_i box_i + 0.1 · tanh(W_box h) (the chosen detection's box, refined). Heads on h: noun
 * logits, ttc = softplus(w h) · ttcScale.
 */
export class GanoModel {
  readonly config: GanoModelConfig;
  readonly factory: ParamFactory;
  private readonly p: Record<string, tf.Variable>;
  private readonly patchBoxes: tf.Tensor2D;
  private readonly frameIndex: tf.Tensor1D;
  /** TTC targets are of order a few frames; the head predicts ttc / ttcScale. */
  static readonly ttcScale = 4;

  constructor(config: GanoModelConfig) {
    const { fusion, tokenDim, tokens, frames, objects, nouns, dModel: d, heads } = config;
    if (!['guided', 'concat', 'video'].includes(fusion))
      throw new Error(`GanoModel: fusion must be 'guided', 'concat' or 'video', got ${JSON.stringify(fusion)}`);
    for (const [name, v] of Object.entries({ tokenDim, tokens, frames, objects, nouns, dModel: d, heads }))
      if (!Number.isInteger(v) || v < 1) throw new Error(`GanoModel: ${name} must be a positive integer, got ${v}`);
    if (d % heads !== 0) throw new Error(`GanoModel: heads must divide dModel = ${d}, got ${heads}`);
    const grid = Math.round(Math.sqrt(tokens / frames));
    if (grid * grid * frames !== tokens)
      throw new Error(`GanoModel: tokens must be frames · grid², got tokens ${tokens}, frames ${frames}`);
    // Each patch token's own box [x0, y0, x1, y1] in [0, 1] and frame, in (frame, row, column) order.
    const patchBoxes: number[] = [];
    const frameIndex: number[] = [];
    for (let t = 0; t < frames; t++)
      for (let r = 0; r < grid; r++)
        for (let c = 0; c < grid; c++) {
          patchBoxes.push(c / grid, r / grid, (c + 1) / grid, (r + 1) / grid);
          frameIndex.push(t);
        }
    this.patchBoxes = tf.tensor2d(patchBoxes, [tokens, 4]);
    this.frameIndex = tf.tensor1d(frameIndex, 'int32');
    this.config = config;
    this.factory = new ParamFactory({ scope: `gano_${fusion}`, seed: config.seed });
    const f = this.factory;
    const w = (name: string, shape: number[]) => f.variable(name, shape, { normal: 1 / Math.sqrt(shape[0]) });
    const z = (name: string, shape: number[]) => f.variable(name, shape, 'zeros');
    const fused = fusion === 'video' ? d : 2 * d;
    this.p = {
      embed: w('embed', [tokenDim, d]),
      embedB: z('embed_b', [d]),
      boxEmbed: w('query.box', [4, d]),
      frameEmbed: f.variable('frame', [frames, d], { normal: 0.1 }),
      vw1: w('video_mlp.w1', [d, 2 * d]),
      vb1: z('video_mlp.b1', [2 * d]),
      vw2: w('video_mlp.w2', [2 * d, d]),
      vb2: z('video_mlp.b2', [d]),
      hw: w('head.w', [fused, 2 * d]),
      hb: z('head.b', [2 * d]),
      noun: w('head.noun', [2 * d, nouns]),
      nounB: z('head.noun_b', [nouns]),
      box: w('head.box', [2 * d, 4]),
      boxB: z('head.box_b', [4]),
      ttc: w('head.ttc', [2 * d, 1]),
      ttcB: z('head.ttc_b', [1]),
    };
    if (fusion !== 'video') {
      Object.assign(this.p, {
        nounEmbed: f.variable('query.noun', [nouns, d], { normal: 1 }),
        ow1: w('object_mlp.w1', [d, 2 * d]),
        ob1: z('object_mlp.b1', [2 * d]),
        ow2: w('object_mlp.w2', [2 * d, d]),
        ob2: z('object_mlp.b2', [d]),
        score: w('pool.score', [2 * d, 1]),
      });
    }
    if (fusion === 'guided') {
      Object.assign(this.p, {
        wq: w('attn.wq', [d, d]),
        wk: w('attn.wk', [d, d]),
        wv: w('attn.wv', [d, d]),
        wo: w('attn.wo', [d, d]),
      });
    }
  }

  /** The trainable variables, by key. */
  params(): Record<string, tf.Variable> {
    return this.factory.params();
  }

  forward(x: GanoInputs): GanoOutputs {
    const { fusion, objects, tokens, tokenDim, heads } = this.config;
    const [b] = x.patches.shape;
    if (x.patches.shape[1] !== tokens || x.patches.shape[2] !== tokenDim)
      throw new Error(`GanoModel.forward: patches must be [b, ${tokens}, ${tokenDim}], got [${x.patches.shape}]`);
    if (fusion !== 'video' && (x.boxes.shape[0] !== b || x.boxes.shape[1] !== objects || x.boxes.shape[2] !== 4))
      throw new Error(`GanoModel.forward: boxes must be [${b}, ${objects}, 4], got [${x.boxes.shape}]`);
    if (fusion !== 'video' && (x.classes.shape[0] !== b || x.classes.shape[1] !== objects))
      throw new Error(`GanoModel.forward: classes must be [${b}, ${objects}], got [${x.classes.shape}]`);
    const p = this.p;
    const mlp = (t: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor) =>
      linear(gelu(linear(t, w1, b1)), w2, b2);
    return tf.tidy(() => {
      // Position: the patch's own box through the detections' box embedding, plus a learned frame embedding.
      const pos = linear(this.patchBoxes, p.boxEmbed).add(tf.gather(p.frameEmbed, this.frameIndex)); // [p, d]
      let v = linear(x.patches, p.embed, p.embedB).add(pos); // [b, p, d]
      v = v.add(mlp(v, p.vw1, p.vb1, p.vw2, p.vb2));
      const pooled = v.mean(1); // [b, d]
      let h: tf.Tensor; // [b, 2d]
      let box: tf.Tensor; // [b, 4]
      let objectLogits: tf.Tensor2D | undefined;
      let attention: tf.Tensor4D | undefined;
      if (fusion === 'video') {
        h = gelu(linear(pooled, p.hw, p.hb));
        box = tf.sigmoid(linear(h, p.box, p.boxB));
      } else {
        const q = linear(x.boxes, p.boxEmbed).add(tf.gather(p.nounEmbed, x.classes)); // [b, n, d]
        let o = q;
        if (fusion === 'guided') {
          const ga = guidedAttention(q, v, { wq: p.wq, wk: p.wk, wv: p.wv, wo: p.wo }, heads);
          attention = ga.weights;
          o = o.add(ga.out);
        }
        o = o.add(mlp(o, p.ow1, p.ob1, p.ow2, p.ob2)); // [b, n, d]
        const u = tf.concat([o, pooled.expandDims(1).tile([1, objects, 1])], 2); // [b, n, 2d]
        const hi = gelu(linear(u, p.hw, p.hb)); // [b, n, 2d]
        objectLogits = linear(hi, p.score).squeeze([2]) as tf.Tensor2D; // [b, n]
        const a = tf.softmax(objectLogits).expandDims(2); // [b, n, 1]
        h = a.mul(hi).sum(1);
        box = a
          .mul(x.boxes)
          .sum(1)
          .add(tf.tanh(linear(h, p.box, p.boxB)).mul(0.1));
      }
      return {
        nounLogits: linear(h, p.noun, p.nounB) as tf.Tensor2D,
        box: box as tf.Tensor2D,
        ttc: tf
          .softplus(linear(h, p.ttc, p.ttcB))
          .reshape([b])
          .mul(GanoModel.ttcScale) as tf.Tensor1D,
        ...(objectLogits ? { objectLogits } : {}),
        ...(attention ? { attention } : {}),
      };
    });
  }

  dispose(): void {
    this.factory.dispose();
    tf.dispose([this.patchBoxes, this.frameIndex]);
  }
}

/**
 * The two transformers the paper compares on real-valued arrays, in the authors' layer layout (no layer norm, no
 * residual: the MLP reads the layer's input beside its attention output):
 *
 *   h^0   = X_in W_in + b_in                                    X_in = x (positional) or [x ; P] (standard)
 *   h^ℓ+1 = W_2 relu(W_1 [h^ℓ ; attn^ℓ(h^ℓ)] + b_1) + b_2       attn^ℓ: positional (weights from P) or standard (from h^ℓ)
 *   ŷ     = h^L W_out + b_out                                   [b, n, 1]
 *
 * Each array of n numbers gets `scratch` extra nodes holding 0 after it (the authors' "additional nodes"): with one-hot
 * P of width maxLen + scratch (rows 0..n-1 for the array, the last `scratch` rows for the extra nodes, whatever n is),
 * an attention row can put the mass it does not spend on the array onto them, which is how fixed positional weights
 * express a sum rather than a mean (cumsum_i = N · Σ_{j<=i} x_j / N). P is the same in every layer. The positional model gets no
 * position in its input: its attention is where position lives. The standard model gets P concatenated to the input
 * (the authors' "X|P" baseline) and attends with `attentionForward` from lib/layers (queries and keys from h^ℓ). Both
 * have the same width, depth, heads and MLP; their parameter counts differ only by the query/key projections and the
 * input layer (`parameterCount()`).
 *
 * Shape legend: b batch, n array length (<= maxLen), s = n + scratch nodes, p = maxLen + scratch positional width,
 * m model width, h heads, f MLP hidden.
 */
import * as tf from '@tensorflow/tfjs';
import {
  type AttentionConfig,
  type AttentionParams,
  attentionForward,
  linear,
  type MlpParams,
} from '../../../layers/functional.js';
import { HookRegistry } from '../../../layers/hooks.js';
import { ParamFactory } from '../../../layers/params.js';
import { makeAttention } from '../../../layers/weights.js';
import { type PositionalAttentionParams, positionalAttention, positionalWeights } from './attention.js';

/**
 * One-hot encodings of an n-array followed by `scratch` extra nodes, [n + scratch, maxLen + scratch]: rows 0..n-1 of
 * the identity, then its last `scratch` rows (the extra nodes keep their encodings whatever n is).
 */
export function arrayPositions(n: number, maxLen: number, scratch: number): tf.Tensor2D {
  if (!Number.isInteger(n) || n < 1 || n > maxLen)
    throw new RangeError(`arrayPositions: n must be an integer in [1, maxLen = ${maxLen}], got ${n}`);
  if (!Number.isInteger(scratch) || scratch < 0)
    throw new RangeError(`arrayPositions: scratch must be an integer >= 0, got ${scratch}`);
  const p = maxLen + scratch;
  const out = new Float32Array((n + scratch) * p);
  for (let i = 0; i < n; i++) out[i * p + i] = 1;
  for (let j = 0; j < scratch; j++) out[(n + j) * p + maxLen + j] = 1;
  return tf.tensor2d(out, [n + scratch, p]);
}

export type AttentionKind = 'positional' | 'standard';

export interface ArrayTransformerConfig {
  attention: AttentionKind;
  /** Longest array; the one-hot positional encodings have width maxLen + scratch. */
  maxLen: number;
  /** Zero-valued extra nodes after every array (default 1). */
  scratch?: number;
  dModel: number;
  heads: number;
  layers: number;
  /** MLP hidden width. */
  mlpHidden: number;
  /** Positional attention's query/key width per head; default maxLen + scratch (the positional width, as the authors). */
  qkDim?: number;
  seed: number;
}

interface Layer {
  attn: PositionalAttentionParams | AttentionParams;
  mlp: MlpParams;
}

export class ArrayTransformer {
  readonly config: Required<ArrayTransformerConfig>;
  private readonly factory: ParamFactory;
  private readonly input: { w: tf.Variable; b: tf.Variable };
  private readonly output: { w: tf.Variable; b: tf.Variable };
  private readonly blocks: Layer[];
  private readonly attnConfig: AttentionConfig;

  constructor(config: ArrayTransformerConfig) {
    const fn = 'ArrayTransformer';
    const scratch = config.scratch ?? 1;
    const c = { scratch, qkDim: config.maxLen + scratch, ...config };
    if (c.attention !== 'positional' && c.attention !== 'standard')
      throw new RangeError(`${fn}: attention must be 'positional' or 'standard', got '${String(c.attention)}'`);
    for (const k of ['maxLen', 'dModel', 'heads', 'layers', 'mlpHidden', 'qkDim'] as const) {
      if (!Number.isInteger(c[k]) || c[k] < 1) throw new RangeError(`${fn}: ${k} must be an integer >= 1, got ${c[k]}`);
    }
    if (!Number.isInteger(c.scratch) || c.scratch < 0)
      throw new RangeError(`${fn}: scratch must be an integer >= 0, got ${c.scratch}`);
    if (c.dModel % c.heads !== 0)
      throw new RangeError(`${fn}: dModel (${c.dModel}) must be divisible by heads (${c.heads})`);
    this.config = c;
    const m = c.dModel;
    const p = c.maxLen + c.scratch;
    const f = new ParamFactory({ scope: `${c.attention}_array_transformer`, seed: c.seed });
    this.factory = f;
    const dense = (g: ParamFactory, name: string, shape: [number, number]) => ({
      w: g.variable(`w${name}`, shape, 'xavierUniform'),
      b: g.variable(`b${name}`, [shape[1]], 'zeros'),
    });
    this.input = dense(f.child('input'), '', [c.attention === 'standard' ? 1 + p : 1, m]);
    this.attnConfig = { dModel: m, heads: c.heads, useBias: true };
    this.blocks = Array.from({ length: c.layers }, (_, l) => {
      const g = f.child(`layers.${l}`);
      const a = g.child('attn');
      const attn: PositionalAttentionParams | AttentionParams =
        c.attention === 'standard'
          ? makeAttention(a, this.attnConfig, { weights: 'xavierUniform' })
          : {
              wq: a.variable('wq', [p, c.heads * c.qkDim], 'xavierUniform'),
              wk: a.variable('wk', [p, c.heads * c.qkDim], 'xavierUniform'),
              wv: a.variable('wv', [m, m], 'xavierUniform'),
              wo: a.variable('wo', [m, m], 'xavierUniform'),
              bq: a.variable('bq', [c.heads * c.qkDim], 'zeros'),
              bk: a.variable('bk', [c.heads * c.qkDim], 'zeros'),
              bv: a.variable('bv', [m], 'zeros'),
              bo: a.variable('bo', [m], 'zeros'),
            };
      const mg = g.child('mlp');
      const one = dense(mg, '1', [2 * m, c.mlpHidden]);
      const two = dense(mg, '2', [c.mlpHidden, m]);
      return { attn, mlp: { w1: one.w, b1: one.b, w2: two.w, b2: two.b } };
    });
    this.output = dense(f.child('output'), '', [m, 1]);
  }

  /** Trainable variables by key (`layers.0.attn.wq`, ...), for `train()`. */
  variables(): Record<string, tf.Variable> {
    return this.factory.params();
  }

  parameterCount(): number {
    return Object.values(this.factory.params()).reduce((a, v) => a + v.size, 0);
  }

  /**
   * x [b, n, 1] -> ŷ [b, n, 1]. With `patterns`, each layer's attention weights over the n + scratch nodes are pushed
   * onto it: [h, s, s] for positional attention (one map for the whole batch), [b, h, s, s] for standard attention.
   */
  forward(x: tf.Tensor3D, patterns?: tf.Tensor[]): tf.Tensor3D {
    const fn = 'ArrayTransformer.forward';
    const { maxLen, scratch, heads, attention } = this.config;
    if (x.rank !== 3 || x.shape[2] !== 1) throw new RangeError(`${fn}: x must be [b, n, 1], got shape [${x.shape}]`);
    const [b, n] = x.shape;
    if (n > maxLen) throw new RangeError(`${fn}: x has ${n} positions but the model's maxLen is ${maxLen}`);
    return tf.tidy(() => {
      const P = arrayPositions(n, maxLen, scratch); // [s, p]
      const xs = scratch ? tf.concat([x, tf.zeros([b, scratch, 1])], 1) : x; // [b, s, 1]
      const inp = attention === 'standard' ? tf.concat([xs, P.expandDims(0).tile([b, 1, 1])], -1) : xs;
      let h = linear(inp, this.input.w, this.input.b) as tf.Tensor3D; // [b, s, m]
      this.blocks.forEach((layer, l) => {
        let a: tf.Tensor3D;
        if (attention === 'positional') {
          const r = positionalAttention(h, P, layer.attn as PositionalAttentionParams, heads);
          if (patterns) patterns.push(tf.keep(r.weights));
          a = r.output;
        } else {
          const hooks = patterns ? new HookRegistry() : undefined;
          hooks?.add(`layers.${l}.attn.hook_pattern`, (w) => void patterns?.push(tf.keep(w.clone())));
          a = attentionForward(layer.attn as AttentionParams, h, null, this.attnConfig, {
            hooks,
            prefix: `layers.${l}.attn`,
          });
        }
        const mid = tf.relu(linear(tf.concat([h, a], -1), layer.mlp.w1, layer.mlp.b1)); // [b, s, f]
        h = linear(mid, layer.mlp.w2, layer.mlp.b2) as tf.Tensor3D; // [b, s, m]
      });
      const m = this.config.dModel;
      return linear(h.slice([0, 0, 0], [b, n, m]), this.output.w, this.output.b) as tf.Tensor3D; // [b, n, 1]
    });
  }

  /** Mean squared error of forward(x) against y [b, n, 1]. */
  loss(x: tf.Tensor3D, y: tf.Tensor3D): tf.Scalar {
    return tf.tidy(() => tf.losses.meanSquaredError(y, this.forward(x)) as tf.Scalar);
  }

  /**
   * The positional model's attention maps at length n, per layer [h, s, s] (the n array nodes, then the scratch
   * nodes): they depend on nothing else, so this is every input's attention. The caller disposes them.
   */
  attentionMaps(n: number): tf.Tensor3D[] {
    if (this.config.attention !== 'positional')
      throw new Error(
        "ArrayTransformer.attentionMaps: a standard model's attention depends on its input; use forward(x, patterns)",
      );
    if (!Number.isInteger(n) || n < 1 || n > this.config.maxLen)
      throw new RangeError(
        `ArrayTransformer.attentionMaps: n must be an integer in [1, ${this.config.maxLen}], got ${n}`,
      );
    return tf.tidy(() => {
      const P = arrayPositions(n, this.config.maxLen, this.config.scratch);
      return this.blocks.map((layer) =>
        positionalWeights(P, layer.attn as PositionalAttentionParams, this.config.heads),
      );
    });
  }

  dispose(): void {
    this.factory.dispose();
  }
}

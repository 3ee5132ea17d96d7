/**
 * The long-sequence click model of the DARE paper in two embedding variants (thuml/DARE, model/base_model_pytorch.py
 * and model/din_pytorch.py with `soft_search`, `use_cross_feature`):
 *
 *   'twin'  one embedding table per field (item id, category); the same embedding is the attention key / query and the
 *           aggregated representation (TWIN, the shared-embedding baseline).
 *   'dare'  two tables per field: attention embeddings (dim d_a) for the search and the attention weights, and
 *           representation embeddings (dim d_r) for what is aggregated and for the target's representation.
 *
 * For a target t and history h_1..h_L (each embedding is the concatenation [item; category]):
 *
 *   q = A(t), k_j = A(h_j), v_j = R(h_j)             (TWIN: A = R)
 *   u = topKTargetAttention(q, k, v, K)               (attention.ts)
 *   logit = MLP([R(t), u, R(t) ⊙ u])                  (target representation, history summary, their cross feature)
 *
 * Shape legend: b impressions, L behaviours, d_a / d_r per-field dims (keys 2·d_a, values 2·d_r), K kept.
 */
import * as tf from '@tensorflow/tfjs';
import { embedding } from '../../../backend/ops.js';
import type { RecsysBatchTensors } from '../../../data/recsys.js';
import { ParamFactory } from '../../../layers/params.js';
import { keptAttention, targetSearch } from './attention.js';

export type DareKind = 'dare' | 'twin';

export interface DareModelOptions {
  kind: DareKind;
  nItems: number;
  nCategories: number;
  /** Per-field attention embedding dim d_a (TWIN: must equal representationDim, one table). */
  attentionDim: number;
  /** Per-field representation embedding dim d_r. */
  representationDim: number;
  /** Behaviours kept by the search. */
  topK: number;
  /** Hidden widths of the prediction MLP. */
  hidden: number[];
  seed: number;
}

/** Entries of an int32 [b, L] at positions [b, K] → [b, K]. */
function pick(x: tf.Tensor2D, indices: tf.Tensor2D): tf.Tensor2D {
  const [b, L] = x.shape;
  const K = indices.shape[1];
  const flat = tf.add(indices, tf.mul(tf.range(0, b, 1, 'int32'), tf.scalar(L, 'int32')).reshape([b, 1]));
  return tf.gather(x.reshape([b * L]), flat.reshape([b * K])).reshape([b, K]) as tf.Tensor2D;
}

interface Tables {
  item: tf.Variable;
  category: tf.Variable;
}

/** A trainable TWIN or DARE click model (a thin wrapper over `topKTargetAttention`). */
export class DareModel {
  readonly options: DareModelOptions;
  private readonly factory: ParamFactory;
  readonly attention: Tables;
  readonly representation: Tables;
  private readonly mlp: { w: tf.Variable; b: tf.Variable }[];

  constructor(options: DareModelOptions) {
    const fn = 'DareModel';
    const o = options;
    if (o.kind !== 'dare' && o.kind !== 'twin')
      throw new Error(`${fn}: kind must be 'dare' or 'twin', got ${JSON.stringify(o.kind)}`);
    for (const k of ['nItems', 'nCategories', 'attentionDim', 'representationDim', 'topK'] as const)
      if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`${fn}: ${k} must be an integer >= 1, got ${o[k]}`);
    if (o.kind === 'twin' && o.attentionDim !== o.representationDim)
      throw new Error(
        `${fn}: a 'twin' model has one embedding table, so attentionDim must equal representationDim, got ${o.attentionDim} and ${o.representationDim}`,
      );
    if (!Array.isArray(o.hidden) || o.hidden.some((h) => !Number.isInteger(h) || h < 1))
      throw new Error(`${fn}: hidden must be a list of integers >= 1, got ${JSON.stringify(o.hidden)}`);
    this.options = { ...o, hidden: [...o.hidden] };
    this.factory = new ParamFactory({ scope: `${o.kind}_a${o.attentionDim}_r${o.representationDim}`, seed: o.seed });
    // nn.Embedding's default init, N(0, 1), as in the official code.
    const table = (name: string, n: number, d: number) => this.factory.variable(name, [n, d], { normal: 1 });
    this.attention = {
      item: table('attention.item', o.nItems, o.attentionDim),
      category: table('attention.category', o.nCategories, o.attentionDim),
    };
    this.representation =
      o.kind === 'twin'
        ? this.attention
        : {
            item: table('representation.item', o.nItems, o.representationDim),
            category: table('representation.category', o.nCategories, o.representationDim),
          };
    const widths = [6 * o.representationDim, ...o.hidden, 1];
    this.mlp = widths.slice(1).map((w, i) => ({
      w: this.factory.variable(`mlp.${i}.w`, [widths[i], w], 'glorotUniform'),
      b: this.factory.variable(`mlp.${i}.b`, [w], 'zeros'),
    }));
  }

  variables(): Record<string, tf.Variable> {
    return this.factory.params();
  }

  parameterCount(): number {
    return Object.values(this.variables()).reduce((a, v) => a + v.size, 0);
  }

  private embed(t: Tables, items: tf.Tensor, categories: tf.Tensor): tf.Tensor {
    return tf.concat([embedding(t.item as tf.Tensor2D, items), embedding(t.category as tf.Tensor2D, categories)], -1);
  }

  /** Click logits [b], with the search's kept positions [b, K] and weights [b, K]. */
  forward(x: RecsysBatchTensors): { logits: tf.Tensor1D; indices: tf.Tensor2D; weights: tf.Tensor2D } {
    const { topK } = this.options;
    const L = x.historyItems.shape[1];
    if (topK > L) throw new Error(`DareModel.forward: topK ${topK} exceeds the history length ${L}`);
    return tf.tidy(() => {
      const q = this.embed(this.attention, x.targetItems, x.targetCategories);
      // Search over the whole history (no gradient flows through the choice), then look up only the kept
      // behaviours' keys and values, which is what the gradient reaches: topKTargetAttention(q, k, v, K) in fewer ops.
      const indices = targetSearch(q, this.embed(this.attention, x.historyItems, x.historyCategories), topK);
      const items = pick(x.historyItems, indices);
      const categories = pick(x.historyCategories, indices);
      const a = keptAttention(
        q,
        this.embed(this.attention, items, categories),
        this.embed(this.representation, items, categories),
      );
      const target = this.embed(this.representation, x.targetItems, x.targetCategories);
      let h: tf.Tensor = tf.concat([target, a.out, tf.mul(target, a.out)], 1);
      this.mlp.forEach((layer, i) => {
        h = tf.add(tf.matMul(h, layer.w), layer.b);
        if (i < this.mlp.length - 1) h = tf.leakyRelu(h, 0.1);
      });
      return { logits: h.reshape([-1]) as tf.Tensor1D, indices, weights: a.weights };
    });
  }

  /** Mean binary cross-entropy of the click logits (the official two-way softmax loss is the same function). */
  loss(x: RecsysBatchTensors): tf.Scalar {
    return tf.tidy(() => {
      const { logits } = this.forward(x);
      return tf.mean(tf.sub(tf.softplus(logits), tf.mul(x.labels, logits))) as tf.Scalar;
    });
  }

  dispose(): void {
    this.factory.dispose();
  }
}

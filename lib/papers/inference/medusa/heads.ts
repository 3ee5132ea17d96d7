/**
 * Medusa heads on a frozen ToyLM: K extra next-next-token heads on the backbone's last hidden state, and their
 * Medusa-1 training (backbone frozen).
 *
 *   head k (k = 1..K):  p_t^(k) = softmax( W2^(k) (h_t + SiLU(W1^(k) h_t + b1^(k))) )  predicts token t + k + 1
 *   W1 = 0, b1 = 0, W2 = the backbone's LM head at the start, so every head starts as the LM head (the official init).
 *   Medusa-1 loss:  Σ_k λ^(k-1) · CE(p_t^(k), x_{t+k+1})   (λ = `decay`, the backbone's weights are not trained)
 *
 * Shape legend: b batch, s positions, n rows (b · s), m d_model, K heads, V vocab.
 *   hidden [n, m] -> head logits [n, K, V]
 */
import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import type { TextDataset } from '../../../data/corpus.js';
import { linear, normForward } from '../../../layers/functional.js';
import { ParamFactory } from '../../../layers/params.js';
import type { ForwardOptions, ToyLM } from '../../../layers/toylm.js';
import { type StepRecord, train } from '../../../train/loop.js';

/** One Medusa head: a residual SiLU block W1 [m, m], b1 [m], then its own LM head W2 [m, V]. */
export interface MedusaHeadWeights {
  w1: tf.Tensor;
  b1: tf.Tensor;
  w2: tf.Tensor;
}

/** The same weights as plain float64 arrays, row-major (for {@link medusaHeadLogitsNaive}). */
export interface MedusaHeadWeights64 {
  w1: ArrayLike<number>;
  b1: ArrayLike<number>;
  w2: ArrayLike<number>;
}

function checkHeads(fn: string, heads: MedusaHeadWeights[], hidden: tf.Tensor): [number, number] {
  if (!Array.isArray(heads) || heads.length === 0)
    throw new Error(`${fn}: heads must be a non-empty array of head weights, got ${JSON.stringify(heads?.length)}`);
  if (hidden.rank !== 2) throw new Error(`${fn}: hidden must have shape [rows, dModel], got [${hidden.shape}]`);
  const m = hidden.shape[1] as number;
  const V = heads[0].w2.shape[1] as number;
  heads.forEach((p, k) => {
    const want = (name: string, t: tf.Tensor, shape: number[]) => {
      if (t.shape.join() !== shape.join())
        throw new Error(`${fn}: heads[${k}].${name} must have shape [${shape}], got [${t.shape}]`);
    };
    want('w1', p.w1, [m, m]);
    want('b1', p.b1, [m]);
    want('w2', p.w2, [m, V]);
  });
  return [m, V];
}

/** The K heads' logits: hidden [n, m] -> [n, K, V], head k = (h + SiLU(h W1 + b1)) W2. */
export function medusaHeadLogits(heads: MedusaHeadWeights[], hidden: tf.Tensor): tf.Tensor3D {
  checkHeads('medusaHeadLogits', heads, hidden);
  return tf.tidy(() => {
    const out = heads.map((p) => {
      const a = linear(hidden, p.w1, p.b1);
      return linear(hidden.add(a.mul(tf.sigmoid(a))), p.w2); // SiLU(a) = a · σ(a)
    });
    return tf.stack(out, 1) as tf.Tensor3D;
  });
}

/** The K heads' weights packed for decoding: w1 [m, K·m], b1 [K·m], w2 [K, m, V]; one product per stage. */
export interface PackedHeads {
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  w2: tf.Tensor3D;
  dispose(): void;
}

/** {@link medusaHeadLogits} on packed weights: hidden [n, m] -> [n, K, V] in a fixed number of ops. */
export function packedHeadLogits(p: PackedHeads, hidden: tf.Tensor): tf.Tensor3D {
  const [K, m, V] = p.w2.shape;
  if (hidden.rank !== 2 || hidden.shape[1] !== m)
    throw new Error(`packedHeadLogits: hidden must have shape [rows, ${m}], got [${hidden.shape}]`);
  return tf.tidy(() => {
    const n = hidden.shape[0] as number;
    const a = linear(hidden, p.w1, p.b1); // [n, K·m]
    const r = a.mul(tf.sigmoid(a)).reshape([n, K, m]).add(hidden.expandDims(1)); // h + SiLU(h W1 + b1)
    return tf
      .matMul(r.transpose([1, 0, 2]), p.w2)
      .transpose([1, 0, 2])
      .reshape([n, K, V]) as tf.Tensor3D;
  });
}

/** Float64 reference of {@link medusaHeadLogits}: hidden [n, m] row-major -> [n, K, V]. */
export function medusaHeadLogitsNaive(
  heads: MedusaHeadWeights64[],
  hidden: ArrayLike<number>,
  n: number,
  m: number,
  V: number,
): Float64Array {
  const K = heads.length;
  const out = new Float64Array(n * K * V);
  const r = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < K; k++) {
      const { w1, b1, w2 } = heads[k];
      for (let j = 0; j < m; j++) {
        let a = b1[j];
        for (let c = 0; c < m; c++) a += hidden[i * m + c] * w1[c * m + j];
        r[j] = hidden[i * m + j] + a / (1 + Math.exp(-a));
      }
      for (let v = 0; v < V; v++) {
        let z = 0;
        for (let j = 0; j < m; j++) z += r[j] * w2[j * V + v];
        out[(i * K + k) * V + v] = z;
      }
    }
  }
  return out;
}

/** The backbone's final layer norm and LM head, read from a ToyLM's weights (not copied, not trained here). */
function backboneOutput(model: ToyLM): { gamma: tf.Tensor; beta: tf.Tensor; lmHead: tf.Tensor; transposed: boolean } {
  model.build();
  const find = (name: string) => model.weights.find((w) => w.originalName === name)?.read();
  const gamma = find('ln_final.gamma');
  const beta = find('ln_final.beta');
  const unembed = find('unembed');
  const embed = find('embed');
  if (!gamma || !beta || !(unembed ?? embed))
    throw new Error(`MedusaHeads: the model has no ln_final / unembed weights (weights: ${model.weights.length})`);
  return unembed
    ? { gamma, beta, lmHead: unembed, transposed: false }
    : { gamma, beta, lmHead: embed as tf.Tensor, transposed: true };
}

/**
 * The backbone's forward pass with its last hidden state (after the final layer norm, what the LM head reads):
 * logits [b, s, V], hidden [b, s, m]. The caller disposes both.
 */
export function forwardWithHidden(
  model: ToyLM,
  tokens: tf.Tensor,
  opts: ForwardOptions = {},
): { logits: tf.Tensor3D; hidden: tf.Tensor3D } {
  const name = `blocks.${model.config.layers - 1}.hook_resid_post`;
  const { value: logits, cache } = model.hooks.record(name, () => model.forward(tokens, opts));
  try {
    const { gamma, beta } = backboneOutput(model);
    const hidden = tf.tidy(() => normForward({ gamma, beta }, cache.get(name))) as tf.Tensor3D;
    return { logits, hidden };
  } finally {
    cache.dispose();
  }
}

export interface MedusaHeadsOptions {
  /** Number of heads K (head k predicts token t + k + 1). */
  heads: number;
  seed?: number;
}

/** K Medusa heads for a ToyLM: their own variables, initialised from the backbone's LM head. */
export class MedusaHeads {
  readonly count: number;
  readonly weights: MedusaHeadWeights[];
  private readonly factory: ParamFactory;

  constructor(
    readonly model: ToyLM,
    options: MedusaHeadsOptions,
  ) {
    const K = options.heads;
    if (!Number.isInteger(K) || K < 1) throw new Error(`MedusaHeads: options.heads must be an integer >= 1, got ${K}`);
    this.count = K;
    const { dModel: m, vocab: V } = model.config;
    const { lmHead, transposed } = backboneOutput(model);
    const w2 = (transposed ? lmHead.transpose() : lmHead).dataSync(); // [m, V]
    this.factory = new ParamFactory({ scope: 'medusa', seed: options.seed ?? 0 });
    this.weights = Array.from({ length: K }, (_, k) => {
      const f = this.factory.child(`heads.${k}`);
      return {
        w1: f.variable('w1', [m, m], 'zeros'),
        b1: f.variable('b1', [m], 'zeros'),
        w2: f.variable('w2', [m, V], { values: w2 }),
      };
    });
  }

  /** The heads' trainable variables (the backbone's are not among them). */
  variables(): tf.Variable[] {
    return Object.values(this.factory.params());
  }

  /** The heads' current weights packed for decoding (a copy: the caller disposes it). */
  pack(): PackedHeads {
    const t = tf.tidy(() => ({
      w1: tf.concat(
        this.weights.map((p) => p.w1),
        1,
      ) as tf.Tensor2D,
      b1: tf.concat(
        this.weights.map((p) => p.b1),
        0,
      ) as tf.Tensor1D,
      w2: tf.stack(this.weights.map((p) => p.w2)) as tf.Tensor3D,
    }));
    return { ...t, dispose: () => tf.dispose([t.w1, t.b1, t.w2]) };
  }

  /** hidden [n, m] -> logits [n, K, V]. */
  logits(hidden: tf.Tensor): tf.Tensor3D {
    return medusaHeadLogits(this.weights, hidden);
  }

  /**
   * The Medusa-1 loss on a window: tokens [b, s + 1]; head k at position t predicts tokens[t + k + 1] (k = 1..K),
   * weighted decay^(k-1), each head's cross-entropy averaged over the positions where its target exists. Returns the
   * weighted sum and each head's own loss (for logging; the caller disposes them).
   */
  loss(tokens: tf.Tensor, decay: number): { total: tf.Scalar; perHead: tf.Scalar[] } {
    const fn = 'MedusaHeads.loss';
    if (tokens.rank !== 2)
      throw new Error(`${fn}: tokens must have shape [batch, positions + 1], got [${tokens.shape}]`);
    const [b, s1] = tokens.shape as [number, number];
    const s = s1 - 1;
    const K = this.count;
    if (s < K + 1) throw new Error(`${fn}: windows must hold more than heads + 1 (${K + 1}) inputs, got ${s}`);
    if (!(decay > 0 && decay <= 1)) throw new Error(`${fn}: decay must be in (0, 1], got ${decay}`);
    return tf.tidy(() => {
      const ids = tokens.toInt();
      const inputs = ids.slice([0, 0], [b, s]);
      const { logits, hidden } = forwardWithHidden(this.model, inputs);
      logits.dispose(); // the backbone is frozen: gradients reach only the heads' variables
      const perHead: tf.Scalar[] = [];
      let total = tf.scalar(0);
      this.weights.forEach((p, i) => {
        const k = i + 1;
        const n = s - k; // positions t with a target t + k + 1 <= s
        const h = hidden.slice([0, 0, 0], [b, n, -1]).reshape([b * n, -1]);
        const z = medusaHeadLogits([p], h).squeeze([1]); // [b·n, V]
        const target = ids.slice([0, k + 1], [b, n]).flatten();
        const ce = tf.logSoftmax(z).mul(tf.oneHot(target, this.model.config.vocab)).sum(-1).mean().neg() as tf.Scalar;
        perHead.push(tf.keep(ce));
        total = total.add(ce.mul(decay ** i));
      });
      return { total: total as tf.Scalar, perHead };
    });
  }

  dispose(): void {
    this.factory.dispose();
  }
}

export interface MedusaTrainOptions {
  steps: number;
  batch: number;
  seqLen: number;
  lr: number;
  /** λ: head k's loss weight is λ^(k-1). */
  decay: number;
  seed: number;
  progress?: boolean | 'auto';
}

/** Medusa-1: train the heads on random windows of `data` with the backbone frozen. */
export async function trainMedusaHeads(
  heads: MedusaHeads,
  data: TextDataset,
  o: MedusaTrainOptions,
): Promise<{ records: StepRecord[]; headLoss: number[] }> {
  const headLoss = new Array(heads.count).fill(0);
  const tail = Math.max(1, Math.round(o.steps * 0.1));
  const run = await train({
    variables: heads.variables(),
    steps: o.steps,
    optimizer: { type: 'adamw', lr: o.lr, weightDecay: 0 },
    schedule: { type: 'cosine', warmup: Math.round(o.steps * 0.05) },
    clipNorm: 1,
    seed: o.seed,
    progress: o.progress ?? false,
    dataframe: false,
    loss: (step) => {
      const b = data.sample({ batch: o.batch, seqLen: o.seqLen, seed: stepSeed(o.seed, step) });
      const { inputs, targets, lossMask } = b.toTensors();
      try {
        const tokens = tf.concat([inputs, targets.slice([0, o.seqLen - 1], [-1, 1])], 1);
        const { total, perHead } = heads.loss(tokens, o.decay);
        tokens.dispose();
        if (step >= o.steps - tail) perHead.forEach((l, k) => (headLoss[k] += l.dataSync()[0] / tail));
        tf.dispose(perHead);
        return total;
      } finally {
        tf.dispose([inputs, targets, lossMask]);
      }
    },
  });
  if (run.stopped) throw new Error(`trainMedusaHeads: training stopped: ${run.stopped.message}`);
  return { records: run.records, headLoss };
}

/**
 * Circuit discovery with discrete sparse autoencoders on attention-head outputs.
 *
 * Paper: O'Neill & Bui, 2024, "Sparse Autoencoders Enable Scalable and Reliable Circuit Identification in Language
 * Models", https://arxiv.org/abs/2405.12522 (no official code found).
 *
 * Method: run the model on *positive* prompts (it can predict the answer) and *negative* ones (minimally corrupted so
 * that it cannot); take each head's output at the final position; train one sparse autoencoder per head on them;
 * discretise each activation to the index of its largest latent (an integer code); a head whose codes on positive
 * prompts never occur on negative ones is doing something specific to the task, so it is a circuit node, and two heads
 * whose positive-only codes co-occur on the same prompts are joined by an edge.
 *
 * SAE (one per component c, all trained at once; ReLU encoder, linear decoder with unit-norm rows, L1 penalty):
 *
 *   f = ReLU((x − b_dec) W_enc + b_enc)          x̂ = f W_dec + b_dec
 *   L = 1/(C·N) Σ_{c,n} [ ‖x̂_{c,n} − x_{c,n}‖² + λ ‖f_{c,n}‖₁ ]
 *
 * Codes and scores (u_{c,i} = 1 when positive prompt i's code at head c occurs on no negative prompt at c):
 *
 *   code_{c,n} = argmax_m f_{c,n,m}, or −1 when every latent is 0
 *   node(c)    = 1/P Σ_i u_{c,i}                                 (share of positives with a positive-only code)
 *   edge(a, b) = 1/P Σ_i u_{a,i} · u_{b,i}    for a in an earlier layer than b
 *
 * Shape legend: C components (heads), N activations, D head dim, M latents, P positive prompts.
 *   x [C, N, D]; wEnc [C, D, M], bEnc [C, M], wDec [C, M, D], bDec [C, D] -> f [C, N, M], x̂ [C, N, D]; codes [C][N]
 */
import * as tf from '@tensorflow/tfjs';
import { Adam } from '../../../train/optim.js';
import { Rng } from '../../../util/random.js';

export interface SaeParams {
  wEnc: tf.Tensor3D;
  bEnc: tf.Tensor2D;
  wDec: tf.Tensor3D;
  bDec: tf.Tensor2D;
}

/** The parameters as float64 arrays (row-major, shapes as in SaeParams): the reference's input. */
export interface SaeParams64 {
  C: number;
  D: number;
  M: number;
  wEnc: Float64Array;
  bEnc: Float64Array;
  wDec: Float64Array;
  bDec: Float64Array;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** Shapes of x and params, checked; returns [C, N, D, M]. */
function checkShapes(fn: string, x: tf.Tensor, p: SaeParams): [number, number, number, number] {
  if (x.rank !== 3) throw new Error(`${fn}: x must have shape [components, n, dim]; got ${shapeStr(x.shape)}`);
  const [C, N, D] = x.shape as [number, number, number];
  const M = p.wEnc.shape[2];
  const want: [string, tf.Tensor, number[]][] = [
    ['wEnc', p.wEnc, [C, D, M]],
    ['bEnc', p.bEnc, [C, M]],
    ['wDec', p.wDec, [C, M, D]],
    ['bDec', p.bDec, [C, D]],
  ];
  for (const [name, t, s] of want) {
    if (t.shape.join() !== s.join())
      throw new Error(
        `${fn}: params.${name} must have shape ${shapeStr(s)} for x ${shapeStr(x.shape)}; got ${shapeStr(t.shape)}`,
      );
  }
  return [C, N, D, M];
}

/** Latents f = ReLU((x − b_dec) W_enc + b_enc): [C, N, M]. */
export function saeEncode(x: tf.Tensor, p: SaeParams): tf.Tensor3D {
  checkShapes('saeEncode', x, p);
  return tf.tidy(
    () => tf.relu(tf.add(tf.matMul(tf.sub(x, p.bDec.expandDims(1)), p.wEnc), p.bEnc.expandDims(1))) as tf.Tensor3D,
  );
}

/** Reconstruction x̂ = f W_dec + b_dec: [C, N, D]. */
export function saeDecode(f: tf.Tensor, p: SaeParams): tf.Tensor3D {
  if (f.rank !== 3 || f.shape[0] !== p.wDec.shape[0] || f.shape[2] !== p.wDec.shape[1])
    throw new Error(
      `saeDecode: f must have shape [${p.wDec.shape[0]}, n, ${p.wDec.shape[1]}] for params.wDec ${shapeStr(p.wDec.shape)}; got ${shapeStr(f.shape)}`,
    );
  return tf.tidy(() => tf.add(tf.matMul(f, p.wDec), p.bDec.expandDims(1)));
}

/** The SAE loss L (see the header), a scalar; differentiable in the parameters. */
export function saeLoss(x: tf.Tensor, p: SaeParams, l1: number): tf.Scalar {
  const [C, N] = checkShapes('saeLoss', x, p);
  if (!(l1 >= 0) || !Number.isFinite(l1)) throw new Error(`saeLoss: l1 must be a finite number >= 0; got ${l1}`);
  return tf.tidy(() => {
    const f = saeEncode(x, p);
    const err = tf.sub(saeDecode(f, p), x);
    return tf.div(tf.add(tf.sum(tf.square(err)), tf.mul(l1, tf.sum(f))), C * N) as tf.Scalar;
  });
}

/** Float64 reference of `saeLoss` and its gradient in every parameter, with plain loops. x is [C][N][D]. */
export function naiveSaeLoss(
  x: number[][][],
  p: SaeParams64,
  l1: number,
): { loss: number; grads: { wEnc: Float64Array; bEnc: Float64Array; wDec: Float64Array; bDec: Float64Array } } {
  const { C, D, M } = p;
  const N = x[0]?.length ?? 0;
  const g = {
    wEnc: new Float64Array(C * D * M),
    bEnc: new Float64Array(C * M),
    wDec: new Float64Array(C * M * D),
    bDec: new Float64Array(C * D),
  };
  const scale = 1 / (C * N);
  let loss = 0;
  for (let c = 0; c < C; c++) {
    for (let n = 0; n < N; n++) {
      const xc = x[c]![n]!;
      const centred = Array.from({ length: D }, (_, d) => xc[d]! - p.bDec[c * D + d]!);
      const pre = new Float64Array(M);
      const f = new Float64Array(M);
      for (let m = 0; m < M; m++) {
        let s = p.bEnc[c * M + m]!;
        for (let d = 0; d < D; d++) s += centred[d]! * p.wEnc[(c * D + d) * M + m]!;
        pre[m] = s;
        f[m] = Math.max(0, s);
      }
      const err = new Float64Array(D);
      for (let d = 0; d < D; d++) {
        let s = p.bDec[c * D + d]!;
        for (let m = 0; m < M; m++) s += f[m]! * p.wDec[(c * M + m) * D + d]!;
        err[d] = s - xc[d]!;
        loss += scale * err[d]! * err[d]!;
      }
      for (let m = 0; m < M; m++) loss += scale * l1 * f[m]!;
      // Backward: dL/dx̂ = 2·err·scale; dL/df = (dL/dx̂) W_decᵀ + λ·scale; through ReLU where pre > 0.
      const dOut = Array.from(err, (e) => 2 * e * scale);
      for (let d = 0; d < D; d++) g.bDec[c * D + d]! += dOut[d]!;
      const dPre = new Float64Array(M);
      for (let m = 0; m < M; m++) {
        let df = l1 * scale;
        for (let d = 0; d < D; d++) {
          df += dOut[d]! * p.wDec[(c * M + m) * D + d]!;
          g.wDec[(c * M + m) * D + d]! += f[m]! * dOut[d]!;
        }
        dPre[m] = pre[m]! > 0 ? df : 0;
        g.bEnc[c * M + m]! += dPre[m]!;
      }
      for (let d = 0; d < D; d++) {
        let dCentred = 0;
        for (let m = 0; m < M; m++) {
          g.wEnc[(c * D + d) * M + m]! += centred[d]! * dPre[m]!;
          dCentred += dPre[m]! * p.wEnc[(c * D + d) * M + m]!;
        }
        g.bDec[c * D + d]! -= dCentred; // centred = x − b_dec
      }
    }
  }
  return { loss, grads: g };
}

/** Float64 reference of the discrete codes (argmax latent, −1 when none is active). x is [C][N][D]. */
export function naiveCodes(x: number[][][], p: SaeParams64): number[][] {
  const { D, M } = p;
  return x.map((rows, c) =>
    rows.map((xc) => {
      let best = -1;
      let bestV = 0;
      for (let m = 0; m < M; m++) {
        let s = p.bEnc[c * M + m]!;
        for (let d = 0; d < D; d++) s += (xc[d]! - p.bDec[c * D + d]!) * p.wEnc[(c * D + d) * M + m]!;
        if (s > bestV) {
          bestV = s;
          best = m;
        }
      }
      return best;
    }),
  );
}

/** Discrete codes [C][N]: the index of each activation's largest latent, or −1 when every latent is 0. */
export function saeCodes(x: tf.Tensor, p: SaeParams): number[][] {
  const [C, N, , M] = checkShapes('saeCodes', x, p);
  const f = saeEncode(x, p);
  const v = f.dataSync();
  f.dispose();
  return Array.from({ length: C }, (_, c) =>
    Array.from({ length: N }, (_, n) => {
      let best = -1;
      let bestV = 0;
      for (let m = 0; m < M; m++) {
        const a = v[(c * N + n) * M + m]!;
        if (a > bestV) {
          bestV = a;
          best = m;
        }
      }
      return best;
    }),
  );
}

export interface TrainSaeOptions {
  /** Latents per component (the codebook size). */
  latents: number;
  /** λ, the L1 weight. */
  l1: number;
  steps: number;
  lr?: number;
  seed: number;
}

/** Trained SAEs: their parameters (owned: call dispose) and the loss before and after training. */
export interface TrainedSaes {
  params: SaeParams;
  /** Each component's inputs were divided by this (its root mean squared norm over the training set) before training. */
  scale: Float64Array;
  initialLoss: number;
  finalLoss: number;
  dispose(): void;
}

/** x divided per component by `scale` (a [C] vector). */
export function scaleComponents(x: tf.Tensor, scale: ArrayLike<number>): tf.Tensor3D {
  return tf.tidy(() => tf.div(x, tf.tensor1d(Array.from(scale)).reshape([-1, 1, 1])) as tf.Tensor3D);
}

/**
 * Train one SAE per component on x [C, N, D], all at once with Adam (full batch), decoder rows renormalised to unit
 * norm after each step. Inputs are scaled per component to unit root mean squared norm, so one λ suits every head.
 * Decoder rows start as seeded random unit vectors, the encoder as their transpose, b_dec at the mean.
 */
export function trainSaes(x: tf.Tensor, opts: TrainSaeOptions): TrainedSaes {
  const fn = 'trainSaes';
  if (x.rank !== 3) throw new Error(`${fn}: x must have shape [components, n, dim]; got ${shapeStr(x.shape)}`);
  const [C, N, D] = x.shape as [number, number, number];
  if (N < 1) throw new Error(`${fn}: x has no activations (n = 0)`);
  const { latents: M, l1, steps, seed } = opts;
  const lr = opts.lr ?? 1e-2;
  if (!Number.isInteger(M) || M < 1) throw new Error(`${fn}: opts.latents must be an integer >= 1; got ${M}`);
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`${fn}: opts.steps must be an integer >= 0; got ${steps}`);
  if (!(l1 >= 0) || !Number.isFinite(l1)) throw new Error(`${fn}: opts.l1 must be a finite number >= 0; got ${l1}`);
  if (!(lr > 0)) throw new Error(`${fn}: opts.lr must be > 0; got ${lr}`);
  const sq = tf.tidy(() => tf.sqrt(tf.mean(tf.sum(tf.square(x), 2), 1)).dataSync());
  const scale = Float64Array.from(sq, (s) => (s > 0 ? s : 1));
  const xs = scaleComponents(x, scale);
  const rng = new Rng(seed);
  const dec = new Float32Array(C * M * D);
  for (let r = 0; r < C * M; r++) {
    let norm = 0;
    for (let d = 0; d < D; d++) {
      const v = rng.normal();
      dec[r * D + d] = v;
      norm += v * v;
    }
    for (let d = 0; d < D; d++) dec[r * D + d]! /= Math.sqrt(norm) || 1;
  }
  // tf.variable copies its initial value, which is disposed here.
  const variable = (init: tf.Tensor) => {
    const v = tf.variable(init, true);
    init.dispose();
    return v;
  };
  const wDec = variable(tf.tensor3d(dec, [C, M, D]));
  const wEnc = variable(tf.transpose(wDec, [0, 2, 1]));
  const bEnc = variable(tf.zeros([C, M]));
  const bDec = variable(tf.mean(xs, 1));
  const params = { wEnc, bEnc, wDec, bDec } as unknown as SaeParams;
  const vars = [wEnc, bEnc, wDec, bDec];
  const opt = new Adam(vars, { lr });
  const lossNow = () => tf.tidy(() => saeLoss(xs, params, l1).dataSync()[0]!);
  const initialLoss = lossNow();
  for (let s = 0; s < steps; s++) {
    const { value, grads } = tf.variableGrads(() => saeLoss(xs, params, l1), vars);
    opt.apply(grads);
    tf.dispose([value, ...Object.values(grads)]);
    tf.tidy(() => {
      wDec.assign(tf.div(wDec, tf.maximum(tf.norm(wDec, 'euclidean', 2, true), 1e-8)));
    });
  }
  const finalLoss = lossNow();
  opt.dispose();
  xs.dispose();
  return {
    params,
    scale,
    initialLoss,
    finalLoss,
    dispose: () => tf.dispose(vars),
  };
}

export interface CodeCircuit {
  /** node[c]: share of positive prompts whose code at c occurs on no negative prompt. */
  nodes: number[];
  /** Edges a -> b (layer of a < layer of b) with their score, highest first. */
  edges: { from: number; to: number; score: number }[];
  /** u[c][i]: positive prompt i's code at c is positive-only. */
  uniquePositive: boolean[][];
}

/**
 * Nodes and edges from codes on positive and negative prompts (see the header). `layerOf[c]` is component c's layer:
 * edges join earlier layers to later ones. Codes are [C][P] and [C][Q].
 */
export function circuitFromCodes(
  positive: readonly (readonly number[])[],
  negative: readonly (readonly number[])[],
  layerOf: readonly number[],
): CodeCircuit {
  const fn = 'circuitFromCodes';
  const C = positive.length;
  if (negative.length !== C) throw new Error(`${fn}: negative has ${negative.length} components; positive has ${C}`);
  if (layerOf.length !== C)
    throw new Error(`${fn}: layerOf has ${layerOf.length} entries; positive has ${C} components`);
  const P = positive[0]?.length ?? 0;
  if (P === 0) throw new Error(`${fn}: positive has no prompts`);
  positive.forEach((row, c) => {
    if (row.length !== P) throw new Error(`${fn}: positive[${c}] has ${row.length} prompts; positive[0] has ${P}`);
  });
  const uniquePositive = positive.map((row, c) => {
    const seen = new Set(negative[c]);
    return row.map((code) => !seen.has(code));
  });
  const nodes = uniquePositive.map((u) => u.filter(Boolean).length / P);
  const edges: CodeCircuit['edges'] = [];
  for (let a = 0; a < C; a++) {
    for (let b = 0; b < C; b++) {
      if (layerOf[a]! >= layerOf[b]!) continue;
      let both = 0;
      for (let i = 0; i < P; i++) if (uniquePositive[a]![i] && uniquePositive[b]![i]) both++;
      edges.push({ from: a, to: b, score: both / P });
    }
  }
  edges.sort((x, y) => y.score - x.score || x.from - y.from || x.to - y.to);
  return { nodes, edges, uniquePositive };
}

/** Node and edge scores averaged over groups of prompts, and each group's node scores. */
export interface GroupedCodeCircuit {
  nodes: number[];
  edges: { from: number; to: number; score: number }[];
  /** groups[g][c]: node score of component c on group g alone. */
  groups: number[][];
}

/**
 * `circuitFromCodes` on consecutive groups of `groupSize` positive prompts and `groupSize` negative prompts (group g:
 * prompts g·groupSize to (g+1)·groupSize − 1 of each; a last incomplete group is dropped), scores averaged. The
 * paper scores a handful of examples at a time; "occurs on no negative prompt" means something else among 10
 * negatives than among 1000, so a large test set is scored as many small groups of the paper's size.
 */
export function circuitFromCodeGroups(
  positive: readonly (readonly number[])[],
  negative: readonly (readonly number[])[],
  layerOf: readonly number[],
  groupSize: number,
): GroupedCodeCircuit {
  const fn = 'circuitFromCodeGroups';
  const P = positive[0]?.length ?? 0;
  const Q = negative[0]?.length ?? 0;
  if (!Number.isInteger(groupSize) || groupSize < 1)
    throw new Error(`${fn}: groupSize must be an integer >= 1; got ${groupSize}`);
  const G = Math.floor(Math.min(P, Q) / groupSize);
  if (G < 1)
    throw new Error(`${fn}: groupSize ${groupSize} needs at least that many prompts; got ${P} positive, ${Q} negative`);
  const slice = (rows: readonly (readonly number[])[], g: number) =>
    rows.map((r) => r.slice(g * groupSize, (g + 1) * groupSize));
  const parts = Array.from({ length: G }, (_, g) => circuitFromCodes(slice(positive, g), slice(negative, g), layerOf));
  const C = positive.length;
  const nodes = Array.from({ length: C }, (_, c) => parts.reduce((a, p) => a + p.nodes[c]!, 0) / G);
  const edgeSum = new Map<string, { from: number; to: number; score: number }>();
  for (const p of parts)
    for (const e of p.edges) {
      const k = `${e.from}>${e.to}`;
      const acc = edgeSum.get(k) ?? { from: e.from, to: e.to, score: 0 };
      acc.score += e.score / G;
      edgeSum.set(k, acc);
    }
  const edges = [...edgeSum.values()].sort((x, y) => y.score - x.score || x.from - y.from || x.to - y.to);
  return { nodes, edges, groups: parts.map((p) => p.nodes) };
}

/** Area under the ROC curve of `scores` against boolean `labels` (ties count 1/2); NaN without both classes. */
export function rocAuc(scores: readonly number[], labels: readonly boolean[]): number {
  if (scores.length !== labels.length)
    throw new Error(`rocAuc: labels has ${labels.length} entries; scores has ${scores.length}`);
  let pos = 0;
  let neg = 0;
  let wins = 0;
  for (let i = 0; i < scores.length; i++) {
    if (!labels[i]) continue;
    pos++;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j]) continue;
      wins += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  for (const l of labels) if (!l) neg++;
  return pos && neg ? wins / (pos * neg) : Number.NaN;
}

/** The ROC curve's points (false-positive rate, true-positive rate) from the highest threshold down. */
export function rocCurve(scores: readonly number[], labels: readonly boolean[]): { fpr: number; tpr: number }[] {
  const P = labels.filter(Boolean).length;
  const N = labels.length - P;
  const thresholds = [...new Set(scores)].sort((a, b) => b - a);
  const pts = [{ fpr: 0, tpr: 0 }];
  for (const t of thresholds) {
    let tp = 0;
    let fp = 0;
    scores.forEach((s, i) => {
      if (s >= t) {
        if (labels[i]) tp++;
        else fp++;
      }
    });
    pts.push({ fpr: N ? fp / N : 0, tpr: P ? tp / P : 0 });
  }
  return pts;
}

/** Precision and recall of the predicted set against the true set (booleans per component); NaN when undefined. */
export function precisionRecall(
  predicted: readonly boolean[],
  truth: readonly boolean[],
): { precision: number; recall: number; f1: number } {
  if (predicted.length !== truth.length)
    throw new Error(`precisionRecall: truth has ${truth.length} entries; predicted has ${predicted.length}`);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  predicted.forEach((p, i) => {
    if (p && truth[i]) tp++;
    else if (p) fp++;
    else if (truth[i]) fn++;
  });
  const precision = tp + fp ? tp / (tp + fp) : Number.NaN;
  const recall = tp + fn ? tp / (tp + fn) : Number.NaN;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : Number.NaN;
  return { precision, recall, f1 };
}

/** The parameters as float64 arrays, for the reference. */
export function saeParams64(p: SaeParams): SaeParams64 {
  const [C, D, M] = p.wEnc.shape;
  return {
    C,
    D,
    M,
    wEnc: Float64Array.from(p.wEnc.dataSync()),
    bEnc: Float64Array.from(p.bEnc.dataSync()),
    wDec: Float64Array.from(p.wDec.dataSync()),
    bDec: Float64Array.from(p.bDec.dataSync()),
  };
}

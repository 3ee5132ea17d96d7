/**
 * Attention AT and Attention iAT: adversarial training on the pre-softmax attention scores, and the float64
 * references of both perturbations.
 *
 * Paper: Kitada & Iyatomi 2021, "Attention Meets Perturbations: Robust and Interpretable Attention with Adversarial
 * Training", IEEE Access, https://arxiv.org/abs/2009.12064 (official code shunk031/attention-meets-perturbation,
 * amep/modules/attention_layer/bc/advt.py and amep/models/bc/at_advt.py).
 *
 *   g     = ∂L/∂s                    gradient of the loss with respect to the scores s [T] of one sentence
 *   AT    r = ε g / ‖g‖₂
 *   iAT   d_j = (s_j − s) / ‖s_j − s‖₂ for the other sentences j of the batch (directions toward their attention),
 *         α = (d_j · g)_j,  α_adv = ε α / ‖α‖₂,  r = Σ_j α_adv,j d_j
 *   loss  L(s) + λ L(s + r)          with r held constant (no gradient flows through it), λ = 1 in the paper
 *
 * iAT follows the paper's equations (Sato et al. 2018's interpretable AT moved from word embeddings to attention
 * scores): the perturbation lies in the span of the differences between this sentence's scores and the others'. The
 * official code builds the same differences but normalises them over the batch axis and takes the gradient with
 * respect to the normalised combination; we use the paper's form. Padding is left out of every difference and norm.
 *
 * Shape legend: b sentences, T words. scores / grad / mask / r [b, T].
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, type TextClassifier } from '../text-attention/model.js';

export type AttentionTraining = 'vanilla' | 'at' | 'iat';

const TINY = 1e-12;

function checkPair(fn: string, a: tf.Tensor, aName: string, mask: tf.Tensor): void {
  if (a.rank !== 2) throw new Error(`${fn}: ${aName} must be [b, T], got [${a.shape}]`);
  if (mask.shape.join() !== a.shape.join())
    throw new Error(`${fn}: mask must be [${a.shape}] like ${aName}, got [${mask.shape}]`);
}

function checkEps(fn: string, eps: number): void {
  if (!(typeof eps === 'number' && Number.isFinite(eps) && eps >= 0))
    throw new Error(`${fn}: eps must be a finite number >= 0, got ${eps}`);
}

/** Attention AT's perturbation r = ε g/‖g‖ per sentence (padding excluded). */
export function atPerturbation(grad: tf.Tensor, mask: tf.Tensor, eps: number): tf.Tensor2D {
  checkPair('atPerturbation', grad, 'grad', mask);
  checkEps('atPerturbation', eps);
  return tf.tidy(() => {
    const g = tf.mul(grad, mask);
    const n = tf.sqrt(tf.add(tf.sum(tf.square(g), 1, true), TINY));
    return tf.mul(tf.div(g, n), eps) as tf.Tensor2D;
  });
}

/** Attention iAT's perturbation (see the module header); needs a batch of at least 2 sentences. */
export function iatPerturbation(scores: tf.Tensor, grad: tf.Tensor, mask: tf.Tensor, eps: number): tf.Tensor2D {
  checkPair('iatPerturbation', scores, 'scores', mask);
  checkPair('iatPerturbation', grad, 'grad', mask);
  checkEps('iatPerturbation', eps);
  const [b, T] = scores.shape;
  if (b < 2)
    throw new Error(`iatPerturbation: scores must hold >= 2 sentences (directions go to the others), got ${b}`);
  return tf.tidy(() => {
    const s = tf.mul(scores, mask);
    // diff[i, j, t] = (s_j − s_i)_t on sentence i's words
    const diff = tf.mul(tf.sub(s.reshape([1, b, T]), s.reshape([b, 1, T])), mask.reshape([b, 1, T]));
    const dir = tf.div(diff, tf.sqrt(tf.add(tf.sum(tf.square(diff), 2, true), TINY))); // [b, b, T]
    const g = tf.mul(grad, mask);
    const alpha = tf.matMul(dir, g.reshape([b, T, 1])).reshape([b, b]); // α[i, j] = d_ij · g_i
    const alphaAdv = tf.mul(tf.div(alpha, tf.sqrt(tf.add(tf.sum(tf.square(alpha), 1, true), TINY))), eps);
    return tf.matMul(alphaAdv.reshape([b, 1, b]), dir).reshape([b, T]) as tf.Tensor2D;
  });
}

/** Float64 reference of `atPerturbation` (row-major [b·T]). */
export function atPerturbationReference(
  grad: ArrayLike<number>,
  mask: ArrayLike<number>,
  b: number,
  T: number,
  eps: number,
): Float64Array {
  const r = new Float64Array(b * T);
  for (let i = 0; i < b; i++) {
    let n = TINY;
    for (let t = 0; t < T; t++) n += (grad[i * T + t] * mask[i * T + t]) ** 2;
    for (let t = 0; t < T; t++) r[i * T + t] = (eps * grad[i * T + t] * mask[i * T + t]) / Math.sqrt(n);
  }
  return r;
}

/** Float64 reference of `iatPerturbation` (row-major [b·T]). */
export function iatPerturbationReference(
  scores: ArrayLike<number>,
  grad: ArrayLike<number>,
  mask: ArrayLike<number>,
  b: number,
  T: number,
  eps: number,
): Float64Array {
  const r = new Float64Array(b * T);
  for (let i = 0; i < b; i++) {
    const dirs: Float64Array[] = [];
    const alpha = new Float64Array(b);
    for (let j = 0; j < b; j++) {
      const d = new Float64Array(T);
      let n = TINY;
      for (let t = 0; t < T; t++) {
        const m = mask[i * T + t];
        d[t] = (scores[j * T + t] * mask[j * T + t] - scores[i * T + t] * m) * m;
        n += d[t] ** 2;
      }
      for (let t = 0; t < T; t++) {
        d[t] /= Math.sqrt(n);
        alpha[j] += d[t] * grad[i * T + t] * mask[i * T + t];
      }
      dirs.push(d);
    }
    let an = TINY;
    for (let j = 0; j < b; j++) an += alpha[j] ** 2;
    for (let j = 0; j < b; j++)
      for (let t = 0; t < T; t++) r[i * T + t] += ((eps * alpha[j]) / Math.sqrt(an)) * dirs[j][t];
  }
  return r;
}

/**
 * The gradient of the classification loss with respect to the pre-softmax scores, g [b, T], and the scores [b, T]
 * of a model with 'additive' pooling.
 */
export function scoreGradient(
  model: TextClassifier,
  tokens: tf.Tensor,
  mask: tf.Tensor2D,
  labels: tf.Tensor1D,
): { grad: tf.Tensor2D; scores: tf.Tensor2D } {
  return tf.tidy(() => {
    const [b, T] = mask.shape;
    const embedded = model.embed(tokens);
    const f = (delta: tf.Tensor) => crossEntropy(model.forwardEmbedded(embedded, mask, delta).logits, labels);
    const grad = tf.grad(f)(tf.zeros([b, T])) as tf.Tensor2D;
    const scores = model.forwardEmbedded(embedded, mask).scores.reshape([b, T]) as tf.Tensor2D;
    return { grad, scores };
  });
}

/** The perturbation `mode` trains with (zeros for 'vanilla'); r is a constant of the next loss. */
export function adversarialPerturbation(
  model: TextClassifier,
  tokens: tf.Tensor,
  mask: tf.Tensor2D,
  labels: tf.Tensor1D,
  mode: AttentionTraining,
  eps: number,
): tf.Tensor2D {
  if (mode !== 'vanilla' && mode !== 'at' && mode !== 'iat')
    throw new Error(`adversarialPerturbation: mode must be 'vanilla', 'at' or 'iat', got ${JSON.stringify(mode)}`);
  if (mode === 'vanilla') return tf.zeros(mask.shape) as tf.Tensor2D;
  return tf.tidy(() => {
    const { grad, scores } = scoreGradient(model, tokens, mask, labels);
    return mode === 'at' ? atPerturbation(grad, mask, eps) : iatPerturbation(scores, grad, mask, eps);
  });
}

/** L(s) + λ L(s + r): the training loss of Attention AT / iAT (λ = 0 or r = 0 gives vanilla training). */
export function adversarialLoss(
  model: TextClassifier,
  tokens: tf.Tensor,
  mask: tf.Tensor2D,
  labels: tf.Tensor1D,
  r: tf.Tensor,
  lambda: number,
): tf.Scalar {
  return tf.tidy(() => {
    const embedded = model.embed(tokens);
    const clean = crossEntropy(model.forwardEmbedded(embedded, mask).logits, labels);
    if (lambda === 0) return clean;
    const adv = crossEntropy(model.forwardEmbedded(embedded, mask, r).logits, labels);
    return tf.add(clean, tf.mul(adv, lambda)) as tf.Scalar;
  });
}

/**
 * Word importance by gradient, ‖∂ log p(ŷ)/∂e_t‖₂ [b, T] for the predicted class ŷ (0 on padding): the attribution
 * attention is compared with (Jain & Wallace 2019; Kitada & Iyatomi's Kendall τ).
 */
export function gradientImportance(model: TextClassifier, tokens: tf.Tensor, mask: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const embedded = model.embed(tokens);
    const pred = tf.argMax(model.forwardEmbedded(embedded, mask).logits, 1);
    const f = (x: tf.Tensor) => {
      const lp = tf.logSoftmax(model.forwardEmbedded(x as tf.Tensor3D, mask).logits);
      return tf.sum(tf.mul(lp, tf.oneHot(pred, lp.shape[1])));
    };
    const g = tf.grad(f)(embedded);
    return tf.mul(tf.sqrt(tf.sum(tf.square(g), 2)), mask) as tf.Tensor2D;
  });
}

/** Kendall's τ-b between two equally long lists (NaN when either is constant). */
export function kendallTau(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length)
    throw new Error(`kendallTau: a and b must be equally long, got ${a.length} and ${b.length}`);
  let conc = 0;
  let disc = 0;
  let tiesA = 0;
  let tiesB = 0;
  for (let i = 0; i < a.length; i++)
    for (let j = i + 1; j < a.length; j++) {
      const x = Math.sign(a[i] - a[j]);
      const y = Math.sign(b[i] - b[j]);
      if (x === 0 && y === 0) continue;
      if (x === 0) tiesA++;
      else if (y === 0) tiesB++;
      else if (x === y) conc++;
      else disc++;
    }
  return (conc - disc) / Math.sqrt((conc + disc + tiesA) * (conc + disc + tiesB));
}

/**
 * Frozen language-model blocks as visual encoder layers.
 *
 * Paper: Pang, Xie, Wang, Wang, "Frozen Transformers in Language Models Are Effective Visual Encoder Layers", ICLR 2024,
 * https://arxiv.org/abs/2310.12973 (code: github.com/ziqipang/LM4VisualEncoding, `vit_llama.py`).
 *
 * A ViT's output tokens go through a linear map into the LM's width, one frozen transformer block taken from a
 * pre-trained LM (the last block of LLaMA-7B in the paper, used without its causal mask), and a linear map back:
 *
 *   z = ViT(x) [b, n, d]  ->  u = z W_in [b, n, m]  ->  u' = Block_frozen(u)  ->  z' = u' W_out [b, n, d]  ->  head
 *
 * W_in [d, m] and W_out [m, d] have no bias (the official mappers are nn.Linear(..., bias=False)); only the ViT, the
 * two mappers and the head train. The paper's "information filtering" hypothesis: the frozen block amplifies the
 * tokens that matter (feature norms concentrate on the object).
 *
 * Here the block is a ToyLM block (pre-norm: x + MHA(LN₁ x), then + MLP(LN₂ x), exact GELU, no attention biases),
 * taken out of a ToyLM trained on the project's text corpus, run with no mask.
 *
 * Shapes: x [b, n, d] (n visual tokens), W_in [d, m], W_out [m, d], the block of width m.
 */
import * as tf from '@tensorflow/tfjs';
import { type BlockConfig, type BlockParams, blockForward } from '../../../layers/functional.js';
import type { ToyLM } from '../../../layers/toylm.js';

export interface FrozenBlockParams {
  /** [d, m] */
  mapIn: tf.Tensor2D;
  /** [m, d] */
  mapOut: tf.Tensor2D;
  block: BlockParams;
  /** The block's config; `causal` is overridden to false. */
  blockConfig: BlockConfig;
}

/** z' = Block(z W_in) W_out, the block run without a causal mask. */
export function frozenBlockAdapter(x: tf.Tensor3D, p: FrozenBlockParams): tf.Tensor3D {
  const fn = 'frozenBlockAdapter';
  if (x.rank !== 3) throw new Error(`${fn}: x must be [b, n, d], got shape [${x.shape}]`);
  const [d, m] = p.mapIn.shape;
  if (d !== x.shape[2]) throw new Error(`${fn}: p.mapIn must be [d = ${x.shape[2]}, m], got shape [${p.mapIn.shape}]`);
  if (m !== p.blockConfig.dModel)
    throw new Error(`${fn}: p.mapIn's width must be the block's dModel ${p.blockConfig.dModel}, got ${m}`);
  if (p.mapOut.shape[0] !== m || p.mapOut.shape[1] !== d)
    throw new Error(`${fn}: p.mapOut must be [m = ${m}, d = ${d}], got shape [${p.mapOut.shape}]`);
  return tf.tidy(() => {
    const u = tf.matMul(x.reshape([-1, d]), p.mapIn).reshape([x.shape[0], x.shape[1], m]);
    const v = blockForward(p.block, u, { ...p.blockConfig, causal: false });
    return tf.matMul(v.reshape([-1, m]), p.mapOut).reshape([x.shape[0], x.shape[1], d]) as tf.Tensor3D;
  });
}

/**
 * Copies of the last block's weights of a ToyLM (plain tensors, not variables: frozen, and independent of the model,
 * which may be disposed), with its block config. Dispose the returned block with `disposeBlock`.
 */
export function lastBlockOf(lm: ToyLM): { block: BlockParams; blockConfig: BlockConfig } {
  const L = lm.config.layers - 1;
  const vars = lm.variables();
  const get = (key: string): tf.Tensor => {
    const re = new RegExp(`(^|/)blocks\\.${L}\\.${key.replace(/\./g, '\\.')}(_\\d+)?$`);
    const v = vars.find((x) => re.test(x.name));
    if (!v)
      throw new Error(
        `lastBlockOf: the ToyLM has no variable 'blocks.${L}.${key}' (variables: ${vars.map((x) => x.name).join(', ')})`,
      );
    return tf.clone(v);
  };
  const cfg = lm.blockConfig;
  if (cfg.attention && cfg.attention.kind !== 'mha')
    throw new Error(
      `lastBlockOf: only multi-head attention blocks are supported, got ${JSON.stringify(cfg.attention)}`,
    );
  return {
    block: {
      ln1: { gamma: get('ln1.gamma'), beta: get('ln1.beta') },
      attn: { wq: get('attn.wq'), wk: get('attn.wk'), wv: get('attn.wv'), wo: get('attn.wo') },
      ln2: { gamma: get('ln2.gamma'), beta: get('ln2.beta') },
      mlp: { w1: get('mlp.w1'), b1: get('mlp.b1'), w2: get('mlp.w2'), b2: get('mlp.b2') },
    },
    blockConfig: { ...cfg, causal: false },
  };
}

/** Disposes a block's tensors. */
export function disposeBlock(b: BlockParams): void {
  tf.dispose([b.ln1.gamma, b.ln1.beta, b.attn.wq, b.attn.wk, b.attn.wv, b.attn.wo, b.ln2.gamma, b.ln2.beta]);
  tf.dispose([b.mlp.w1, b.mlp.b1, b.mlp.w2, b.mlp.b2]);
}

// ---------------------------------------------------------------------------------------------------------------
// Float64 reference.

/** erf in float64: the Maclaurin series for |x| < 2.5, erfc's continued fraction beyond (both to about 1e-15). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 80; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return Math.sign(x) * ((2 / Math.sqrt(Math.PI)) * sum);
  }
  // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export interface FrozenBlockParams64 {
  d: number;
  m: number;
  heads: number;
  /** MLP hidden width. */
  hidden: number;
  mapIn: ArrayLike<number>;
  mapOut: ArrayLike<number>;
  ln1g: ArrayLike<number>;
  ln1b: ArrayLike<number>;
  wq: ArrayLike<number>;
  wk: ArrayLike<number>;
  wv: ArrayLike<number>;
  wo: ArrayLike<number>;
  ln2g: ArrayLike<number>;
  ln2b: ArrayLike<number>;
  w1: ArrayLike<number>;
  b1: ArrayLike<number>;
  w2: ArrayLike<number>;
  b2: ArrayLike<number>;
}

/** Float64 frozenBlockAdapter on x [b, n, d] (row-major); returns [b, n, d]. */
export function frozenBlockAdapterReference(
  x: ArrayLike<number>,
  b: number,
  n: number,
  p: FrozenBlockParams64,
): Float64Array {
  const { d, m, heads, hidden } = p;
  const hd = m / heads;
  const mat = (
    a: ArrayLike<number>,
    rows: number,
    k: number,
    w: ArrayLike<number>,
    cols: number,
    bias?: ArrayLike<number>,
  ) => {
    const o = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) {
        let s = bias ? bias[j] : 0;
        for (let t = 0; t < k; t++) s += a[i * k + t] * w[t * cols + j];
        o[i * cols + j] = s;
      }
    return o;
  };
  const ln = (a: Float64Array, g: ArrayLike<number>, be: ArrayLike<number>) => {
    const o = new Float64Array(a.length);
    for (let i = 0; i < a.length / m; i++) {
      let mu = 0;
      for (let j = 0; j < m; j++) mu += a[i * m + j] / m;
      let v = 0;
      for (let j = 0; j < m; j++) v += (a[i * m + j] - mu) ** 2 / m;
      for (let j = 0; j < m; j++) o[i * m + j] = ((a[i * m + j] - mu) / Math.sqrt(v + 1e-5)) * g[j] + be[j];
    }
    return o;
  };
  const out = new Float64Array(b * n * d);
  for (let bi = 0; bi < b; bi++) {
    const xs = Array.from({ length: n * d }, (_, i) => x[bi * n * d + i]);
    const u = mat(xs, n, d, p.mapIn, m);
    const h = ln(u, p.ln1g, p.ln1b);
    const q = mat(h, n, m, p.wq, m);
    const k = mat(h, n, m, p.wk, m);
    const v = mat(h, n, m, p.wv, m);
    const z = new Float64Array(n * m);
    for (let hh = 0; hh < heads; hh++)
      for (let i = 0; i < n; i++) {
        const s = new Float64Array(n);
        let mx = -Infinity;
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let t = 0; t < hd; t++) acc += q[i * m + hh * hd + t] * k[j * m + hh * hd + t];
          s[j] = acc / Math.sqrt(hd);
          mx = Math.max(mx, s[j]);
        }
        let zsum = 0;
        for (let j = 0; j < n; j++) zsum += Math.exp(s[j] - mx);
        for (let j = 0; j < n; j++) {
          const w = Math.exp(s[j] - mx) / zsum;
          for (let t = 0; t < hd; t++) z[i * m + hh * hd + t] += w * v[j * m + hh * hd + t];
        }
      }
    const a = mat(z, n, m, p.wo, m);
    const r1 = u.map((val, i) => val + a[i]);
    const h2 = ln(r1, p.ln2g, p.ln2b);
    const g1 = mat(h2, n, m, p.w1, hidden, p.b1).map((val) => 0.5 * val * (1 + erf(val / Math.SQRT2)));
    const f = mat(g1, n, hidden, p.w2, m, p.b2);
    const r2 = r1.map((val, i) => val + f[i]);
    const o = mat(r2, n, m, p.mapOut, d);
    out.set(o, bi * n * d);
  }
  return out;
}

/**
 * The share of token feature norm on the given tokens: Σ_{i ∈ object} ‖z_i‖ / Σ_i ‖z_i‖ per image, averaged. z [b, n, d],
 * objectMask [b, n] (1 on object tokens).
 */
export function objectNormFraction(z: tf.Tensor3D, objectMask: tf.Tensor2D): number {
  return tf.tidy(() => {
    const norms = z.square().sum(-1).sqrt();
    return norms.mul(objectMask).sum(-1).div(norms.sum(-1).add(1e-12)).mean().dataSync()[0];
  });
}

/**
 * The attention interventions of CausalMM, PAI, PAINT and VAR as decoding methods of a ToyVLM: each turns
 * (images, prompt tokens) into next-token logits [b, V] through hooks on the model's attention (see toyvlm/index.ts for
 * the hook points), and greedy decoding with any of them answers questions and writes captions.
 *
 *   greedy    plain logits
 *   causalmm  ℓ* = (1 + 2γ) ℓ − γ ℓ_cf-vis − γ ℓ_cf-lang with plausibility ε = 0.1: ℓ_cf-vis with every encoder
 *             attention map replaced by uniform attention, ℓ_cf-lang with the decoder's decoding rows replaced by
 *             reversed attention (max − A, the official code's LLM-side edit)
 *   pai       pre-softmax boost α|a| to all 17 image tokens, decoding rows, every decoder layer
 *   paint     boost α to the top informed patches and β = α·3/7 (the code's 0.7 : 0.3) to the bottom-stream patches,
 *             chosen from the encoder's CLS attention (first and second-to-last encoder layers)
 *   var       redistribute a fraction p of the sink attention in image-centric heads (ρ 0.5, min image attention 0.2),
 *             sinks by massive activation (τ 20) when the BOS token shows one, else by column mean (ACT-style)
 */
import * as tf from '@tensorflow/tfjs';
import { TOKEN } from '../../../data/scenes.js';
import type { HookFn } from '../../../layers/hooks.js';
import { causalCombine, counterfactualHook } from '../causalmm/index.js';
import { boostHook, informedTokens, paiBoost, paintBoost } from '../paint/index.js';
import { IMAGE_TOKENS, PATCHES, type ToyVLM, withHooks } from '../toyvlm/index.js';
import { columnMeanSinks, redistributeHook, sinkDimensions, sinkScores } from '../var/index.js';

export type SteerMethod = 'greedy' | 'causalmm' | 'pai' | 'paint' | 'var';
export const STEER_METHODS: readonly SteerMethod[] = ['greedy', 'causalmm', 'pai', 'paint', 'var'];

/** A method and its one tuned hyperparameter: γ (causalmm), α (pai, paint), p (var); ignored by greedy. */
export interface SteerSetting {
  method: SteerMethod;
  strength: number;
}

/**
 * The papers' settings: CausalMM γ 0.5 (its default; its evaluation scripts pass 1), PAINT α 0.7 (β 0.3, from its
 * modPAI/attention.py), VAR p 0.6 (its config), PAI α 0.5 (PAI tunes α per model; 0.5 is the value we take for
 * LLaVA-1.5, and PAI's second ingredient, the text-only logit contrast, is left out, as in PAINT's PAI baseline).
 */
export const PAPER_SETTINGS: Record<SteerMethod, SteerSetting> = {
  greedy: { method: 'greedy', strength: 0 },
  causalmm: { method: 'causalmm', strength: 0.5 },
  pai: { method: 'pai', strength: 0.5 },
  paint: { method: 'paint', strength: 0.7 },
  var: { method: 'var', strength: 0.6 },
};

/** VAR's sink threshold τ and the column-mean fallback's ratio. */
export const VAR_TAU = 20;
export const COLUMN_MEAN_RATIO = 2;

/** What a VAR call found: whether the BOS token showed a massive activation, and the sinks per example. */
export interface SinkReport {
  massive: boolean;
  /** φ of the BOS token at the last decoder layer's input. */
  bosPhi: number;
  /** Sink image tokens per example (indices into the 17 image tokens). */
  sinks: number[][];
}

const decoderPatterns = /^blocks\.\d+\.attn\.hook_pattern$/;
const decoderScores = /^blocks\.\d+\.attn\.hook_scores$/;
const encoderPatterns = /^enc\.blocks\.\d+\.attn\.hook_pattern$/;

/**
 * Next-token logits [b, V] after `tokens` [b, n] under a steering method. The decoding rows are the decoder positions
 * from `fromText` (a text index, default the last) on; PAI, PAINT, VAR and CausalMM's language counterfactual edit only
 * those rows. `onSinks` receives VAR's sink report.
 */
export function steeredLogits(
  model: ToyVLM,
  images: tf.Tensor4D,
  tokens: tf.Tensor2D,
  setting: SteerSetting,
  opts: {
    fromText?: number;
    onSinks?: (r: SinkReport) => void;
    /** Hooks run after the intervention's (e.g. a recorder of the steered patterns; the factual run for CausalMM). */
    after?: [string | RegExp, HookFn][];
  } = {},
): tf.Tensor2D {
  const n = tokens.shape[1];
  const after = opts.after ?? [];
  const run = (hooks: [string | RegExp, HookFn][]) => withHooks(model, [...hooks, ...after], plain);
  const fromRow = IMAGE_TOKENS + (opts.fromText ?? n - 1);
  const keys = IMAGE_TOKENS + n;
  const plain = () => model.nextLogits(images, tokens);
  const s = setting.strength;
  switch (setting.method) {
    case 'greedy':
      return run([]);
    case 'causalmm': {
      const l = run([]);
      const vis = withHooks(model, [[encoderPatterns, counterfactualHook('uniform')]], plain);
      const lang = withHooks(
        model,
        [[decoderPatterns, counterfactualHook('reversed', { causal: true, fromRow })]],
        plain,
      );
      try {
        return causalCombine(l, [vis, lang], { gamma: s, epsilon: 0.1 });
      } finally {
        tf.dispose([l, vis, lang]);
      }
    }
    case 'pai': {
      const boost = paiBoost(keys, 0, IMAGE_TOKENS, s);
      try {
        return run([[decoderScores, boostHook(boost, fromRow)]]);
      } finally {
        boost.dispose();
      }
    }
    case 'paint': {
      const sel = paintSelection(model, images);
      const boost = paintBoost(sel, keys, 1, s, (s * 3) / 7); // patches follow the CLS token
      try {
        return run([[decoderScores, boostHook(boost, fromRow)]]);
      } finally {
        boost.dispose();
      }
    }
    case 'var': {
      const { sink, report } = findSinks(model, images, tokens, fromRow);
      opts.onSinks?.(report);
      const image = tf.tensor1d(Array.from({ length: keys }, (_, j) => (j < IMAGE_TOKENS ? 1 : 0)));
      try {
        return run([[decoderPatterns, redistributeHook(sink, image, { p: s, rho: 0.5, fromRow })]]);
      } finally {
        tf.dispose([sink, image]);
      }
    }
  }
}

/** CLS-to-patch attention (summed over heads) of one encoder layer's recorded pattern [b, h, 17, 17] -> [b][16]. */
function clsAttention(p: tf.Tensor): number[][] {
  const [b, h, , t] = p.shape;
  const d = p.dataSync();
  return Array.from({ length: b }, (_, x) =>
    Array.from({ length: PATCHES }, (_, j) => {
      let a = 0;
      for (let y = 0; y < h; y++) a += d[((x * h + y) * t + 0) * t + 1 + j];
      return a;
    }),
  );
}

/** PAINT's informed tokens of each image, from the encoder's first and second-to-last layers' CLS attention. */
export function paintSelection(model: ToyVLM, images: tf.Tensor4D): ReturnType<typeof informedTokens>[] {
  const L = model.config.encoderLayers;
  const late = Math.max(0, L - 2);
  const { value, cache } = model.hooks.record(encoderPatterns, () => model.encode(images));
  try {
    const e = clsAttention(cache.get('enc.blocks.0.attn.hook_pattern'));
    const l = clsAttention(cache.get(`enc.blocks.${late}.attn.hook_pattern`));
    return e.map((row, i) => informedTokens(row, l[i], 0.25));
  } finally {
    value.dispose();
    cache.dispose();
  }
}

/**
 * VAR's sink tokens for each example: D_sink = the 2 largest |x_d| of the BOS token's hidden state at the last decoder
 * layer's input; when the BOS token's φ exceeds τ (a massive activation), image tokens with φ > τ are sinks; otherwise
 * the column-mean rule over the image tokens and BOS, on the first decoder layer's decoding rows. BOS is always a sink
 * (the text sink). Returns sink [b, keys] and the report.
 */
export function findSinks(
  model: ToyVLM,
  images: tf.Tensor4D,
  tokens: tf.Tensor2D,
  fromRow: number,
): { sink: tf.Tensor2D; report: SinkReport } {
  const L = model.config.decoderLayers - 1;
  const names = new RegExp(`^blocks\\.(${L}\\.hook_resid_pre|0\\.attn\\.hook_pattern)$`);
  const { value, cache } = model.hooks.record(names, () => model.forward(images, tokens));
  try {
    const hidden = cache.get(`blocks.${L}.hook_resid_pre`); // [b, keys, m]
    const [b, keys, m] = hidden.shape;
    const hd = hidden.dataSync();
    const bos = IMAGE_TOKENS;
    const phis: number[] = [];
    const massiveSinks: number[][] = [];
    for (let x = 0; x < b; x++) {
      const row = hd.subarray((x * keys + bos) * m, (x * keys + bos + 1) * m);
      const dims = sinkDimensions(row, 2);
      const phi = sinkScores(hd.subarray(x * keys * m, (x + 1) * keys * m), m, dims);
      phis.push(phi[bos]);
      massiveSinks.push(Array.from({ length: IMAGE_TOKENS }, (_, j) => j).filter((j) => phi[j] > VAR_TAU));
    }
    const bosPhi = phis.reduce((a, v) => a + v, 0) / b;
    const massive = bosPhi > VAR_TAU;
    let sinks: number[][];
    if (massive) sinks = massiveSinks;
    else {
      const w = cache.get('blocks.0.attn.hook_pattern');
      const cand = Array.from({ length: keys }, (_, j) => (j <= IMAGE_TOKENS ? 1 : 0));
      const cm = columnMeanSinks(
        w.dataSync(),
        w.shape as [number, number, number, number],
        cand,
        COLUMN_MEAN_RATIO,
        fromRow,
      );
      sinks = Array.from({ length: b }, (_, x) =>
        Array.from({ length: IMAGE_TOKENS }, (_, j) => j).filter((j) => cm[x * keys + j] > 0),
      );
    }
    const flat = new Float32Array(b * keys);
    sinks.forEach((list, x) => {
      for (const j of list) flat[x * keys + j] = 1;
      flat[x * keys + bos] = 1;
    });
    return { sink: tf.tensor2d(flat, [b, keys]), report: { massive, bosPhi, sinks } };
  } finally {
    value.dispose();
    cache.dispose();
  }
}

/** Greedy answers (argmax token) of `tokens` [b, n] under a method: one token per row. */
export function answer(model: ToyVLM, images: tf.Tensor4D, tokens: tf.Tensor2D, setting: SteerSetting): number[] {
  const l = steeredLogits(model, images, tokens, setting);
  const a = l.argMax(-1);
  try {
    return Array.from(a.dataSync());
  } finally {
    tf.dispose([l, a]);
  }
}

/**
 * Greedy captions under a method: prompt [b, n], up to `steps` tokens, each row stopping at 'end'. Every generated
 * token's query is steered (as a KV-cache decoder steering each step would be).
 */
export function caption(
  model: ToyVLM,
  images: tf.Tensor4D,
  prompt: number[][],
  steps: number,
  setting: SteerSetting,
): number[][] {
  const b = prompt.length;
  const n = prompt[0].length;
  const rows = prompt.map((p) => [...p]);
  const done = new Array<boolean>(b).fill(false);
  for (let t = 0; t < steps && done.some((d) => !d); t++) {
    const tokens = tf.tensor2d(rows.flat(), [b, rows[0].length], 'int32');
    try {
      const l = steeredLogits(model, images, tokens, setting, { fromText: n - 1 });
      const a = l.argMax(-1);
      const next = a.dataSync();
      tf.dispose([l, a]);
      rows.forEach((r, i) => {
        r.push(done[i] ? TOKEN.end : next[i]);
        if (next[i] === TOKEN.end) done[i] = true;
      });
    } finally {
      tokens.dispose();
    }
  }
  return rows.map((r) => r.slice(n));
}

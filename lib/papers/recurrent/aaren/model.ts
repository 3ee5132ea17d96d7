/**
 * Aaren layers and the two small sequence models the `aaren` experiment compares: a stack of Aaren blocks and a causal
 * Transformer of the same width, depth and MLP, reading one real value per step.
 *
 * Aaren (Feng et al. 2024, §3.3): attention of one learned, input-independent query per head over the prefix,
 *   k_t = x_t W_K,  v_t = x_t W_V,  s_t = q_hᵀ k_t / √d,  o_t = scan(s, v)_t  (scan.ts),  y_t = [o_t over heads] W_O
 * so training runs the parallel scan and streaming runs one O(1) step per token.
 *
 * Both models: x_t W_in + b_in + sinusoidal position, then pre-norm blocks x + mix(ln1 x), x + mlp(ln2 x) with mix =
 * Aaren or causal multi-head softmax attention (lib/layers), then a final layer norm and a linear head per position.
 * The Transformer's block is lib/layers' makeBlock/blockForward; Aaren's has the same norms and MLP, and its own
 * mixing (no W_Q: a [heads, headDim] query instead, so it has dModel² - dModel fewer parameters per layer).
 *
 * Shape legend: b batch, n positions, m dModel, h heads, d head dim, c input channels, o outputs per position.
 */
import * as tf from '@tensorflow/tfjs';
import { KVCache } from '../../../layers/cache.js';
import {
  type BlockConfig,
  type BlockParams,
  blockForward,
  linear,
  type MlpParams,
  mergeHeads,
  mlpForward,
  type NormParams,
  normForward,
  splitHeads,
} from '../../../layers/functional.js';
import { ParamFactory } from '../../../layers/params.js';
import { makeBlock, makeMlp, makeNorm } from '../../../layers/weights.js';
import { sinusoidal } from '../../../positional/sinusoidal.js';
import { type AarenState, aarenInitState, aarenScan, aarenStep, disposeAarenState } from './scan.js';

export interface AarenMixParams {
  /** The learned query of each head [h, d]. */
  query: tf.Tensor;
  wk: tf.Tensor; // [m, h*d]
  wv: tf.Tensor; // [m, h*d]
  wo: tf.Tensor; // [h*d, m]
}

/** Aaren's scores and values for x [b, n, m]: s [b, h, n] = q_hᵀk_t/√d, v [b, h, n, d]. */
function scoresAndValues(p: AarenMixParams, x: tf.Tensor, heads: number): { s: tf.Tensor3D; v: tf.Tensor4D } {
  const d = p.query.shape[1] as number;
  const k = splitHeads(linear(x, p.wk), heads, d); // [b, h, n, d]
  const v = splitHeads(linear(x, p.wv), heads, d);
  const s = k.mul(p.query.expandDims(0).expandDims(2)).sum(3).div(Math.sqrt(d)) as tf.Tensor3D;
  return { s, v };
}

/** Aaren's token mixing over x [b, n, m] by the parallel scan -> [b, n, m]. */
export function aarenMix(p: AarenMixParams, x: tf.Tensor3D): tf.Tensor3D {
  const heads = p.query.shape[0] as number;
  return tf.tidy(() => {
    const { s, v } = scoresAndValues(p, x, heads);
    return linear(mergeHeads(aarenScan(s, v)), p.wo) as tf.Tensor3D;
  });
}

/** One streamed token x_t [b, 1, m] through Aaren's mixing: the output [b, 1, m] and the next state. */
export function aarenMixStep(
  p: AarenMixParams,
  state: AarenState,
  x: tf.Tensor3D,
): { out: tf.Tensor3D; state: AarenState } {
  const heads = p.query.shape[0] as number;
  const { s, v } = scoresAndValues(p, x, heads);
  const r = aarenStep(state, s.squeeze([2]) as tf.Tensor2D, v.squeeze([2]) as tf.Tensor3D);
  const out = linear(r.out.reshape([x.shape[0], 1, -1]), p.wo) as tf.Tensor3D;
  tf.dispose([s, v, r.out]);
  return { out, state: r.state };
}

export type SequenceModelKind = 'aaren' | 'transformer';

export interface SequenceModelConfig {
  kind: SequenceModelKind;
  /** Input channels per step. */
  inputDim: number;
  /** Outputs per position (forecast horizon or classes). */
  outputDim: number;
  dModel: number;
  heads: number;
  layers: number;
  /** MLP hidden = mlpRatio · dModel (default 2). */
  mlpRatio?: number;
  seed: number;
}

interface AarenBlockParams {
  ln1: NormParams;
  mix: AarenMixParams;
  ln2: NormParams;
  mlp: MlpParams;
}

/** The streaming state of a {@link SequenceModel}: Aaren's (m, u, w) per layer, or the Transformer's KV cache. */
export interface StreamState {
  /** Tokens consumed. */
  t: number;
  aaren?: AarenState[];
  cache?: KVCache;
}

/** Aaren or causal-Transformer sequence model (see the module header). */
export class SequenceModel {
  readonly config: Required<SequenceModelConfig>;
  private readonly f: ParamFactory;
  private readonly win: tf.Tensor;
  private readonly bin: tf.Tensor;
  private readonly aarenBlocks: AarenBlockParams[] = [];
  private readonly blocks: BlockParams[] = [];
  private readonly lnf: NormParams;
  private readonly head: { w: tf.Tensor; b: tf.Tensor };

  constructor(config: SequenceModelConfig) {
    const fn = 'SequenceModel';
    const c = { mlpRatio: 2, ...config };
    if (c.kind !== 'aaren' && c.kind !== 'transformer')
      throw new Error(`${fn}: kind must be 'aaren' or 'transformer', got ${JSON.stringify(c.kind)}`);
    for (const k of ['inputDim', 'outputDim', 'dModel', 'heads', 'layers'] as const) {
      if (!(Number.isInteger(c[k]) && c[k] > 0)) throw new Error(`${fn}: ${k} must be an integer > 0, got ${c[k]}`);
    }
    if (c.dModel % c.heads !== 0)
      throw new Error(`${fn}: dModel must be a multiple of heads, got dModel ${c.dModel} and heads ${c.heads}`);
    this.config = c;
    const m = c.dModel;
    const f = new ParamFactory({ scope: c.kind, seed: c.seed });
    this.f = f;
    const init = { weights: { normal: 0.02 }, output: { normal: 0.02 / Math.sqrt(2 * c.layers) } };
    this.win = f.variable('in.w', [c.inputDim, m], { normal: 1 / Math.sqrt(c.inputDim) });
    this.bin = f.variable('in.b', [m], 'zeros');
    for (let l = 0; l < c.layers; l++) {
      const g = f.child(`blocks.${l}`);
      if (c.kind === 'transformer') {
        this.blocks.push(makeBlock(g, this.blockConfig(), c.layers));
      } else {
        const d = m / c.heads;
        const a = g.child('mix');
        this.aarenBlocks.push({
          mix: {
            query: a.variable('query', [c.heads, d], init.weights),
            wk: a.variable('wk', [m, m], init.weights),
            wv: a.variable('wv', [m, m], init.weights),
            wo: a.variable('wo', [m, m], init.output),
          },
          ln1: makeNorm(g.child('ln1'), m),
          ln2: makeNorm(g.child('ln2'), m),
          mlp: makeMlp(g.child('mlp'), m, Math.round(c.mlpRatio * m), init),
        });
      }
    }
    this.lnf = makeNorm(f.child('lnf'), m);
    this.head = {
      w: f.variable('head.w', [m, c.outputDim], init.weights),
      b: f.variable('head.b', [c.outputDim], 'zeros'),
    };
  }

  private blockConfig(): BlockConfig {
    const c = this.config;
    return { dModel: c.dModel, heads: c.heads, causal: true, mlpRatio: c.mlpRatio };
  }

  /** Trainable variables by key. */
  params(): Record<string, tf.Variable> {
    return this.f.params();
  }

  /** Number of trainable scalars. */
  paramCount(): number {
    return Object.values(this.params()).reduce((a, v) => a + v.size, 0);
  }

  private embed(x: tf.Tensor, start: number): tf.Tensor3D {
    const [b, n] = x.shape;
    return tf.tidy(() => {
      const pe = sinusoidal(
        Array.from({ length: n as number }, (_, i) => start + i),
        this.config.dModel,
      );
      return linear(x, this.win, this.bin)
        .add(pe.expandDims(0))
        .reshape([b as number, n as number, -1]) as tf.Tensor3D;
    });
  }

  /** x [b, n, c] -> outputs at every position [b, n, o]; position t sees steps 0..t only. */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    const c = this.config;
    if (x.rank !== 3 || x.shape[2] !== c.inputDim)
      throw new Error(`SequenceModel.forward: x must have shape [batch, n, ${c.inputDim}], got [${x.shape}]`);
    return tf.tidy(() => {
      let h: tf.Tensor = this.embed(x, 0);
      for (let l = 0; l < c.layers; l++) {
        if (c.kind === 'transformer') {
          h = blockForward(this.blocks[l], h, this.blockConfig());
        } else {
          const p = this.aarenBlocks[l];
          h = h.add(aarenMix(p.mix, normForward(p.ln1, h) as tf.Tensor3D));
          h = h.add(mlpForward(p.mlp, normForward(p.ln2, h)));
        }
      }
      return linear(normForward(this.lnf, h), this.head.w, this.head.b) as tf.Tensor3D;
    });
  }

  /** The empty streaming state for a batch of b rows. */
  initStream(b: number): StreamState {
    const c = this.config;
    if (c.kind === 'transformer') return { t: 0, cache: new KVCache(c.layers) };
    return { t: 0, aaren: Array.from({ length: c.layers }, () => aarenInitState(b, c.heads, c.dModel / c.heads)) };
  }

  /**
   * One streamed step x_t [b, 1, c] -> outputs [b, 1, o] and the next state (the old state's tensors are freed;
   * a KV cache grows in place). Streaming n steps equals `forward` on the n steps.
   */
  step(state: StreamState, x: tf.Tensor3D): { out: tf.Tensor3D; state: StreamState } {
    const c = this.config;
    if (x.rank !== 3 || x.shape[1] !== 1 || x.shape[2] !== c.inputDim)
      throw new Error(`SequenceModel.step: x must have shape [batch, 1, ${c.inputDim}], got [${x.shape}]`);
    const next: AarenState[] = [];
    const out = tf.tidy(() => {
      let h: tf.Tensor = this.embed(x, state.t);
      for (let l = 0; l < c.layers; l++) {
        if (c.kind === 'transformer') {
          h = blockForward(this.blocks[l], h, this.blockConfig(), { cache: state.cache, layer: l });
        } else {
          const p = this.aarenBlocks[l];
          const r = aarenMixStep(p.mix, (state.aaren as AarenState[])[l], normForward(p.ln1, h) as tf.Tensor3D);
          next.push(r.state);
          tf.keep(r.state.m);
          tf.keep(r.state.u);
          tf.keep(r.state.w);
          h = h.add(r.out);
          h = h.add(mlpForward(p.mlp, normForward(p.ln2, h)));
        }
      }
      return linear(normForward(this.lnf, h), this.head.w, this.head.b) as tf.Tensor3D;
    });
    if (c.kind === 'transformer') return { out, state: { t: state.t + 1, cache: state.cache } };
    for (const s of state.aaren ?? []) disposeAarenState(s);
    return { out, state: { t: state.t + 1, aaren: next } };
  }

  /** Frees a streaming state. */
  disposeStream(state: StreamState): void {
    state.cache?.dispose();
    for (const s of state.aaren ?? []) disposeAarenState(s);
  }

  dispose(): void {
    this.f.dispose();
  }
}

/**
 * The MQAR models of Zoology (Arora et al., ICLR 2024) and BASED (Arora et al., ICML 2024): token embedding, a stack of
 * pre-norm residual blocks x + mixer(LN(x)), a final layer norm and an unembedding. The official MQAR sweeps use two
 * layers with an identity state mixer (no MLP) and alternate the mixers per layer (zoology/mixers/hybrid.py: layer 0 a
 * BaseConv with kernel 3, layer 1 the sequence mixer under test); `mixerStack` builds those stacks by name.
 *
 * Each mixer has a parallel form (`forward`, training) and a step form (`step`, one token with a recurrent state);
 * `stateBytes` counts the bytes of the state tensors a step actually keeps.
 *
 * Shape legend: inputs [b, T] int32; x [b, T, m]; logits [b, T, V]; one step: tokens [b], logits [b, V].
 */
import * as tf from '@tensorflow/tfjs';
import { embedding } from '../../../backend/ops.js';
import { layerNorm, linear, mergeHeads, splitHeads } from '../../../layers/functional.js';
import { ParamFactory } from '../../../layers/params.js';
import {
  type BasedParams,
  type BasedState,
  basedInit,
  basedMixer,
  basedStep,
  type KvCache,
  kvCacheInit,
  windowAttention,
  windowAttentionStep,
} from '../based/based.js';
import { type FeatureMapKind, stateBytes, tidyObject } from '../based/linear-attention.js';
import { type FlowState, flowAttention, flowInitState, flowStep } from '../flowformer/index.js';
import { type BaseConvParams, baseConv, baseConvStep, type ConvState, causalConvInit } from './baseconv.js';

/** One layer's sequence mixer. */
export type MixerSpec =
  /** Causal softmax attention (window 0 = full, else sliding window of that many keys). */
  | { kind: 'attention'; heads: number; window: number }
  /** BaseConv with `kernel` taps (-1: as long as the sequence). */
  | { kind: 'baseconv'; kernel: number }
  /** Linear attention with a feature map plus (window > 0) sliding-window softmax: BASED with 'taylor'. */
  | { kind: 'linear'; heads: number; featureDim: number; featureMap: FeatureMapKind; window: number }
  /** Causal Flow-Attention (Flowformer, lib/papers/recurrent/flowformer), head dim m / heads. */
  | { kind: 'flow'; heads: number };

export interface MqarModelConfig {
  vocabSize: number;
  seqLen: number;
  dModel: number;
  layers: MixerSpec[];
  /** Learned absolute position embeddings (the pure-attention baseline needs them; conv stacks carry position). */
  positions: boolean;
  seed: number;
}

/** The model families of the frontier experiment. */
export type ModelName =
  | 'attention'
  | 'attention-pe'
  | 'baseconv'
  | 'hybrid'
  | 'sliding'
  | 'linear-elu'
  | 'based'
  | 'flowformer';
export const MODEL_NAMES: readonly ModelName[] = [
  'attention',
  'attention-pe',
  'baseconv',
  'hybrid',
  'sliding',
  'linear-elu',
  'based',
  'flowformer',
];

/**
 * The layer stack of each model (two layers, as in the official sweeps):
 *   attention   [BaseConv k=3, attention] (the attention model of the official BASED sweep, no position embeddings)
 *   attention-pe [attention, attention] with learned position embeddings (a plain two-layer transformer, no MLP)
 *   baseconv    [BaseConv k=3, BaseConv k=T] (Zoology's kernel_size [3, -1])
 *   hybrid      [BaseConv k=T, attention] (a gated convolution plus one attention layer)
 *   sliding     [BaseConv k=3, sliding-window attention]     (BASED Fig. 2's sliding-window baseline)
 *   linear-elu  [BaseConv k=3, elu+1 linear attention]
 *   based       [BaseConv k=3, Taylor linear attention + sliding window]
 *   flowformer  [BaseConv k=3, causal Flow-Attention]
 */
export function mixerStack(
  name: ModelName,
  o: { featureDim: number; window: number; heads?: number },
): { layers: MixerSpec[]; positions: boolean } {
  const heads = o.heads ?? 1;
  const short: MixerSpec = { kind: 'baseconv', kernel: 3 };
  const long: MixerSpec = { kind: 'baseconv', kernel: -1 };
  const attn: MixerSpec = { kind: 'attention', heads, window: 0 };
  switch (name) {
    case 'attention':
      return { layers: [short, attn], positions: false };
    case 'attention-pe':
      return { layers: [attn, attn], positions: true };
    case 'baseconv':
      return { layers: [short, long], positions: false };
    case 'hybrid':
      return { layers: [long, attn], positions: false };
    case 'sliding':
      return { layers: [short, { kind: 'attention', heads, window: o.window }], positions: false };
    case 'linear-elu':
      return {
        layers: [short, { kind: 'linear', heads, featureDim: o.featureDim, featureMap: 'elu1', window: 0 }],
        positions: false,
      };
    case 'based':
      return {
        layers: [short, { kind: 'linear', heads, featureDim: o.featureDim, featureMap: 'taylor', window: o.window }],
        positions: false,
      };
    case 'flowformer':
      return { layers: [short, { kind: 'flow', heads }], positions: false };
    default:
      throw new RangeError(`mixerStack: name must be one of ${MODEL_NAMES.join(', ')}, got ${String(name)}`);
  }
}

interface AttnParams {
  wq: tf.Tensor;
  wk: tf.Tensor;
  wv: tf.Tensor;
  wo: tf.Tensor;
}

type LayerParams =
  | { kind: 'attention'; p: AttnParams }
  | { kind: 'baseconv'; p: BaseConvParams }
  | { kind: 'linear'; p: BasedParams }
  | { kind: 'flow'; p: AttnParams };

type LayerState =
  | { kind: 'attention'; s: KvCache }
  | { kind: 'baseconv'; s: ConvState }
  | { kind: 'linear'; s: BasedState }
  | { kind: 'flow'; s: FlowState };

/** The model's recurrent state: one entry per layer and the position of the next token. */
export interface MqarState {
  layers: LayerState[];
  position: number;
}

function checkSpec(fn: string, s: MixerSpec, m: number, t: number): void {
  const bad = (msg: string) => {
    throw new RangeError(`${fn}: layer ${JSON.stringify(s)}: ${msg}`);
  };
  if (s.kind === 'attention' || s.kind === 'linear' || s.kind === 'flow')
    if (!Number.isInteger(s.heads) || s.heads < 1 || m % s.heads !== 0) bad(`heads must divide dModel ${m}`);
  if ((s.kind === 'attention' || s.kind === 'linear') && (!Number.isInteger(s.window) || s.window < 0))
    bad('window must be an integer >= 0');
  if (s.kind === 'linear' && (!Number.isInteger(s.featureDim) || s.featureDim < 1))
    bad('featureDim must be an integer >= 1');
  if (s.kind === 'baseconv' && !(s.kernel === -1 || (Number.isInteger(s.kernel) && s.kernel >= 1 && s.kernel <= t)))
    bad(`kernel must be -1 or an integer in [1, seqLen ${t}]`);
  if (!['attention', 'baseconv', 'linear', 'flow'].includes(s.kind))
    bad("kind must be 'attention', 'baseconv', 'linear' or 'flow'");
}

export class MqarModel {
  readonly config: MqarModelConfig;
  private readonly factory: ParamFactory;
  private readonly embed: tf.Variable;
  private readonly pos?: tf.Variable;
  private readonly norms: { g: tf.Variable; b: tf.Variable }[];
  private readonly layers: LayerParams[];
  private readonly unembed: tf.Variable;

  constructor(config: MqarModelConfig) {
    const fn = 'MqarModel';
    const { vocabSize: vocab, seqLen: t, dModel: m } = config;
    for (const [k, v, min] of [
      ['vocabSize', vocab, 2],
      ['seqLen', t, 1],
      ['dModel', m, 1],
    ] as const)
      if (!Number.isInteger(v) || v < min) throw new RangeError(`${fn}: ${k} must be an integer >= ${min}, got ${v}`);
    if (!Array.isArray(config.layers) || config.layers.length === 0)
      throw new RangeError(`${fn}: layers must be a non-empty list of mixers, got ${JSON.stringify(config.layers)}`);
    for (const s of config.layers) checkSpec(fn, s, m, t);
    this.config = config;
    const f = new ParamFactory({ scope: 'mqar', seed: config.seed });
    this.factory = f;
    const w = { normal: 0.02 };
    this.embed = f.variable('embed', [vocab, m], { normal: 1 / Math.sqrt(m) });
    if (config.positions) this.pos = f.variable('pos', [t, m], w);
    this.norms = [...config.layers, null].map((_, i) => ({
      g: f.variable(`ln${i}.gamma`, [m], 'ones'),
      b: f.variable(`ln${i}.beta`, [m], 'zeros'),
    }));
    this.layers = config.layers.map((s, i): LayerParams => {
      const c = f.child(`layer${i}`);
      const mm = (name: string, cols = m) => c.variable(name, [m, cols], 'xavierUniform');
      if (s.kind === 'flow') return { kind: 'flow', p: { wq: mm('wq'), wk: mm('wk'), wv: mm('wv'), wo: mm('wo') } };
      if (s.kind === 'attention')
        return { kind: 'attention', p: { wq: mm('wq'), wk: mm('wk'), wv: mm('wv'), wo: mm('wo') } };
      if (s.kind === 'baseconv') {
        const taps = s.kernel === -1 ? t : s.kernel;
        return {
          kind: 'baseconv',
          p: {
            w1: mm('w1'),
            b1: c.variable('b1', [m], 'zeros'),
            w2: mm('w2'),
            b2: c.variable('b2', [m], 'zeros'),
            // PyTorch Conv1d's default scale for a short kernel; the long kernel decays with 1/√taps likewise.
            kernel: c.variable('kernel', [taps, m], { uniform: 1 / Math.sqrt(taps) }),
          },
        };
      }
      const hf = s.heads * s.featureDim;
      return {
        kind: 'linear',
        p: {
          wq: mm('wq', hf),
          wk: mm('wk', hf),
          wv: mm('wv'),
          wo: mm('wo'),
          sq: mm('sq'),
          sk: mm('sk'),
          sv: mm('sv'),
          so: mm('so'),
        },
      };
    });
    this.unembed = f.variable('unembed', [m, vocab], 'xavierUniform');
  }

  /** Trainable variables by key (the unused window projections of a window-0 linear mixer are left out). */
  params(): Record<string, tf.Variable> {
    const all = this.factory.params();
    const out: Record<string, tf.Variable> = {};
    for (const [k, v] of Object.entries(all)) {
      const i = /^layer(\d+)\.(s[qkvo])$/.exec(k);
      const s = i ? this.config.layers[Number(i[1])] : undefined;
      if (s && s.kind === 'linear' && s.window === 0) continue;
      out[k] = v;
    }
    return out;
  }

  /** Parameter count (of `params()`). */
  paramCount(): number {
    return Object.values(this.params()).reduce((a, v) => a + v.size, 0);
  }

  private mix(i: number, x: tf.Tensor): tf.Tensor {
    const s = this.config.layers[i];
    const l = this.layers[i];
    if (l.kind === 'baseconv') return baseConv(x, l.p);
    if (l.kind === 'linear' && s.kind === 'linear')
      return basedMixer(x, l.p, {
        heads: s.heads,
        featureDim: s.featureDim,
        window: s.window,
        featureMap: s.featureMap,
      });
    if (l.kind === 'attention' && s.kind === 'attention') {
      const m = this.config.dModel;
      const [q, k, v] = [l.p.wq, l.p.wk, l.p.wv].map((w) => splitHeads(linear(x, w), s.heads, m / s.heads));
      return linear(mergeHeads(windowAttention(q, k, v, s.window || Number.POSITIVE_INFINITY)), l.p.wo);
    }
    if (l.kind === 'flow' && s.kind === 'flow') {
      const m = this.config.dModel;
      const [q, k, v] = [l.p.wq, l.p.wk, l.p.wv].map((w) => splitHeads(linear(x, w), s.heads, m / s.heads));
      return linear(mergeHeads(flowAttention(q, k, v, { causal: true, aggregation: 'quadratic' })), l.p.wo);
    }
    throw new Error(`MqarModel: layer ${i} has params of kind ${l.kind} but spec ${s.kind}`);
  }

  /** Parallel form: inputs [b, T] int32 (T <= seqLen) -> logits [b, T, V]. */
  forward(inputs: tf.Tensor): tf.Tensor3D {
    if (inputs.rank !== 2 || inputs.dtype !== 'int32' || (inputs.shape[1] as number) > this.config.seqLen)
      throw new RangeError(
        `MqarModel.forward: inputs must be int32 [b, T <= ${this.config.seqLen}], got ${inputs.dtype} [${inputs.shape}]`,
      );
    const t = inputs.shape[1] as number;
    return tf.tidy(() => {
      let x: tf.Tensor = embedding(this.embed as tf.Tensor2D, inputs as tf.Tensor2D);
      if (this.pos) x = x.add(this.pos.slice([0, 0], [t, -1]));
      this.layers.forEach((_, i) => {
        const n = this.norms[i];
        x = x.add(this.mix(i, layerNorm(x, n.g, n.b)));
      });
      const n = this.norms[this.layers.length];
      return linear(layerNorm(x, n.g, n.b), this.unembed) as tf.Tensor3D;
    });
  }

  /** The empty state for `b` rows. */
  initState(b: number): MqarState {
    const m = this.config.dModel;
    return {
      position: 0,
      layers: this.config.layers.map((s): LayerState => {
        if (s.kind === 'baseconv') return { kind: 'baseconv', s: causalConvInit(b, m) };
        if (s.kind === 'attention') return { kind: 'attention', s: kvCacheInit(b, s.heads, m / s.heads) };
        if (s.kind === 'flow') {
          const dh = m / s.heads;
          return { kind: 'flow', s: flowInitState(b, s.heads, dh, dh) };
        }
        return {
          kind: 'linear',
          s: basedInit(b, m, { heads: s.heads, featureDim: s.featureDim, window: s.window, featureMap: s.featureMap }),
        };
      }),
    };
  }

  /** Recurrent form: tokens [b] int32 at `state.position` -> logits [b, V] and the next state (the old one is kept). */
  step(state: MqarState, tokens: tf.Tensor): { logits: tf.Tensor2D; state: MqarState } {
    if (tokens.rank !== 1 || tokens.dtype !== 'int32')
      throw new RangeError(`MqarModel.step: tokens must be int32 [b], got ${tokens.dtype} [${tokens.shape}]`);
    if (state.position >= this.config.seqLen)
      throw new RangeError(`MqarModel.step: position ${state.position} is past seqLen ${this.config.seqLen}`);
    const m = this.config.dModel;
    const b = tokens.shape[0];
    return tidyObject(() => {
      let x: tf.Tensor = embedding(this.embed as tf.Tensor2D, tokens.reshape([b, 1]) as tf.Tensor2D).reshape([b, m]);
      if (this.pos) x = x.add(this.pos.slice([state.position, 0], [1, -1]));
      const next: LayerState[] = this.layers.map((l, i) => {
        const s = this.config.layers[i];
        const n = this.norms[i];
        const h = layerNorm(x, n.g, n.b);
        const st = state.layers[i];
        let y: tf.Tensor;
        let out: LayerState;
        if (l.kind === 'baseconv' && st.kind === 'baseconv') {
          const r = baseConvStep(st.s, h, l.p);
          y = r.y;
          out = { kind: 'baseconv', s: r.state };
        } else if (l.kind === 'linear' && st.kind === 'linear' && s.kind === 'linear') {
          const r = basedStep(st.s, h, l.p, {
            heads: s.heads,
            featureDim: s.featureDim,
            window: s.window,
            featureMap: s.featureMap,
          });
          y = r.y;
          out = { kind: 'linear', s: r.state };
        } else if (l.kind === 'attention' && st.kind === 'attention' && s.kind === 'attention') {
          const dh = m / s.heads;
          const [q, k, v] = [l.p.wq, l.p.wk, l.p.wv].map((w) => linear(h, w).reshape([b, s.heads, dh]));
          const r = windowAttentionStep(st.s, q, k, v, s.window || Number.POSITIVE_INFINITY);
          y = linear(r.y.reshape([b, m]), l.p.wo);
          out = { kind: 'attention', s: r.cache };
        } else if (l.kind === 'flow' && st.kind === 'flow' && s.kind === 'flow') {
          const dh = m / s.heads;
          const [q, k, v] = [l.p.wq, l.p.wk, l.p.wv].map((w) => linear(h, w).reshape([b, s.heads, dh]) as tf.Tensor3D);
          const r = flowStep(st.s, q, k, v);
          y = linear(r.out.reshape([b, m]), l.p.wo);
          out = { kind: 'flow', s: r.state };
        } else throw new Error(`MqarModel.step: layer ${i}'s state is of kind ${st.kind}, its params ${l.kind}`);
        x = x.add(y);
        return out;
      });
      const n = this.norms[this.layers.length];
      return {
        logits: linear(layerNorm(x, n.g, n.b), this.unembed) as tf.Tensor2D,
        state: { layers: next, position: state.position + 1 },
      };
    });
  }

  dispose(): void {
    this.factory.dispose();
  }
}

/** The tensors a state holds. */
export function stateTensors(state: MqarState): tf.Tensor[] {
  return state.layers.flatMap((l) => {
    if (l.kind === 'baseconv') return [l.s.past];
    if (l.kind === 'attention') return [l.s.k, l.s.v];
    if (l.kind === 'flow') return [l.s.keySum, l.s.querySum, l.s.keyOutSum, l.s.queryInSum, l.s.expSum, l.s.kv];
    return [l.s.la.s, l.s.la.z, l.s.kv.k, l.s.kv.v];
  });
}

/** Bytes of the recurrent state, counted from its tensors (per batch row when `perRow`). */
export function mqarStateBytes(state: MqarState, perRow = true): number {
  const ts = stateTensors(state);
  const rows = ts.length ? ts[0].shape[0] : 1;
  return stateBytes(ts) / (perRow ? rows : 1);
}

export function disposeState(state: MqarState): void {
  tf.dispose(stateTensors(state));
}

/**
 * Runs the step form over inputs [b, T] and returns logits [b, T, V] and the state bytes per row after each token
 * (what the state holds at that point).
 */
export function runRecurrent(model: MqarModel, inputs: tf.Tensor2D): { logits: tf.Tensor3D; bytes: number[] } {
  const [b, t] = inputs.shape;
  let state = model.initState(b);
  const out: tf.Tensor2D[] = [];
  const bytes: number[] = [];
  for (let i = 0; i < t; i++) {
    const tok = tf.tidy(() => inputs.slice([0, i], [b, 1]).reshape([b]));
    const r = model.step(state, tok);
    tok.dispose();
    disposeState(state);
    state = r.state;
    out.push(r.logits);
    bytes.push(mqarStateBytes(state));
  }
  disposeState(state);
  const logits = tf.stack(out, 1) as tf.Tensor3D;
  tf.dispose(out);
  return { logits, bytes };
}

/**
 * Experiment `sink-emergence`: does the first token become an attention sink, and does it stay one when the softmax is
 * replaced? (Gu et al. 2025, §7.3 and §7.4, Tables 4 and 6.)
 *
 * Four SinkLMs (./model.ts), identical but for the attention, are trained as character LMs on Moby Dick (lib/data/
 * corpus.ts; train / validation / test are disjoint character ranges): softmax, sigmoid without normalisation,
 * sigmoid with normalisation, and softmax with a learned key/value slot (kv-bias). Every `evalEvery` steps, on fixed
 * validation windows: the validation loss and Sink^ε_1 (the % of heads whose mean attention on the first token exceeds
 * ε = 0.3). At the end, on test windows: loss, Sink^ε_1, and for kv-bias the share of heads whose mean attention on
 * the bias slot exceeds ε (the paper's Sink_*). As in the paper, the unnormalised sigmoid is scored on its "proxy"
 * weights (each row divided by its sum).
 *
 * How ours differs from the paper: the paper trains ~60M-parameter LLaMA-style models (10 layers, d 768, RoPE, SwiGLU,
 * RMSNorm) on 5B Pile tokens for 20k steps at context 2048 and measures at T = 64; we train ~30k-parameter GPT-2
 * style models (2 layers, learned positions, GELU, LayerNorm) on one book, character-level, for 100 (quick) or 1200
 * steps at T = seqLen, and measure at that T. The paper's kv-bias row we cite is its "K biases" setting (learned key,
 * value fixed at 0; Table 4); ours learns the value too (the official `kv_bias` config). Learning rate and weight decay
 * are fixed, not tuned (the paper also compares at a fixed lr 4e-4, weight decay 0.1). Sinks need "effective
 * optimisation on enough data" (the paper's §4-5): at our scale they may not emerge at all, and the summary says so
 * when softmax shows none.
 */
import * as tf from '@tensorflow/tfjs';
import { makeBatch, type TokenBatch } from '../../../data/batch.js';
import { loadCorpus, sampleWindows } from '../../../data/corpus.js';
import { CharTokenizer } from '../../../data/tokenizer.js';
import { artifactCodec, type ModelKind, weightsKind } from '../../../experiments/codecs.js';
import { defineExperiment, type PaperReference } from '../../../experiments/contract.js';
import { int, list, num, obj, oneOf } from '../../../experiments/schema.js';
import { train } from '../../../train/loop.js';
import { Rng } from '../../../util/random.js';
import { importance, proxyWeights, SINK_EPSILON, type SinkVariant, sinkRate } from './core.js';
import { SinkLM, type SinkLMConfig } from './model.js';

export interface SinkEmergenceConfig {
  variants: SinkVariant[];
  layers: number;
  dModel: number;
  heads: number;
  seqLen: number;
  batch: number;
  steps: number;
  lr: number;
  weightDecay: number;
  /** Validation loss and Sink_1 every this many steps (and after the last). */
  evalEvery: number;
  /** Windows of the validation and of the test split that the metrics are measured on. */
  evalWindows: number;
  testWindows: number;
  epsilon: number;
  /**
   * 'text': windows start anywhere in the book (the paper's packed pre-training data); 'bos': every window starts with
   * one fixed extra token (the paper's Table 10, right: a token fixed at position 1 during pre-training takes the sink).
   */
  start: 'text' | 'bos';
}

/** What one model shows on a batch. */
export interface SinkMeasure {
  loss: number;
  /** Sink^ε_1 in %. */
  sink1: number;
  /** 95% half-widths of Sink^ε_1 and of the mean first-token importance: percentile bootstrap over the windows. */
  sink1Ci95: number;
  firstTokenCi95: number;
  /** [layer][head] importance α of the first token. */
  firstToken: number[][];
  /** kv-bias only: [layer][head] mean attention on the bias slot, and Sink^ε_* in %. */
  bias?: number[][];
  biasSink?: number;
}

export interface SinkCurvePoint {
  step: number;
  validation_loss: number;
  validation_sink1: number;
  validation_bias_sink?: number;
}

export interface SinkTrained {
  variant: SinkVariant;
  model: SinkLM;
  curve: SinkCurvePoint[];
  test: SinkMeasure;
}

export interface SinkEmergenceArtifacts {
  models: SinkTrained[];
  /** The test windows' inputs [testWindows, seqLen] (for attention maps). */
  testInputs: tf.Tensor2D;
  decode: (ids: ArrayLike<number>) => string;
  dispose(): void;
}

/** Metric-name key of a variant: softmax, sigmoid, sigmoid_norm, kv_bias. */
export const variantKey = (v: SinkVariant): string => v.replace('-', '_');

/** Loss, Sink^ε_1 and first-token (and bias-slot) importances of `model` on `batch`. */
export function measureSinks(model: SinkLM, batch: TokenBatch, epsilon = SINK_EPSILON, bootstrap = 200): SinkMeasure {
  const { inputs, targets } = batch.toTensors();
  const variant = model.config.variant;
  const { logits, weights } = model.forward(inputs, { record: true });
  try {
    const loss = tf.tidy(
      () => tf.logSoftmax(logits).mul(tf.oneHot(targets, model.config.vocab)).sum(-1).mean().neg().dataSync()[0],
    );
    const firstToken: number[][] = [];
    const bias: number[][] = [];
    /** [layer] per-window first-token importance, row-major [b, h]. */
    const perWindow: Float32Array[] = [];
    for (const w of weights) {
      const [a, pw, b] = tf.tidy(() => {
        const s = w.shape[2];
        const tokens = variant === 'kv-bias' ? w.slice([0, 0, 0, 1], [-1, -1, -1, s]) : w;
        const scored = variant === 'sigmoid' ? proxyWeights(tokens) : tokens;
        return [
          importance(scored, 0),
          scored.slice([0, 0, 0, 0], [-1, -1, -1, 1]).mean([2, 3]),
          variant === 'kv-bias' ? w.slice([0, 0, 0, 0], [-1, -1, -1, 1]).mean([0, 2, 3]) : null,
        ];
      });
      firstToken.push(Array.from(a.dataSync()));
      perWindow.push(Float32Array.from(pw.dataSync()));
      if (b) bias.push(Array.from(b.dataSync()));
      tf.dispose([a, pw, b as tf.Tensor | null].filter((t): t is tf.Tensor => t !== null));
    }
    const ci = bootstrapSinks(perWindow, batch.batch, firstToken[0].length, epsilon, bootstrap);
    const m: SinkMeasure = {
      loss,
      sink1: sinkRate(firstToken, epsilon),
      sink1Ci95: ci.sink1,
      firstTokenCi95: ci.alpha,
      firstToken,
    };
    if (variant === 'kv-bias') Object.assign(m, { bias, biasSink: sinkRate(bias, epsilon) });
    return m;
  } finally {
    tf.dispose([inputs, targets, logits, ...weights]);
  }
}

/**
 * Percentile-bootstrap 95% half-widths of Sink^ε_1 (%) and of the mean first-token importance, resampling windows
 * (the model fixed; a fixed resampling seed, so a run is reproducible). perWindow[layer] is [windows, heads].
 */
function bootstrapSinks(
  perWindow: Float32Array[],
  windows: number,
  heads: number,
  epsilon: number,
  B: number,
): { sink1: number; alpha: number } {
  if (B < 1 || windows < 2) return { sink1: Number.NaN, alpha: Number.NaN };
  const rng = new Rng(0).fork('sink-emergence:bootstrap');
  const sinks: number[] = [];
  const alphas: number[] = [];
  const pick = new Int32Array(windows);
  for (let r = 0; r < B; r++) {
    for (let i = 0; i < windows; i++) pick[i] = rng.int(0, windows);
    const imp = perWindow.map((pw) =>
      Array.from({ length: heads }, (_, h) => {
        let acc = 0;
        for (let i = 0; i < windows; i++) acc += pw[pick[i] * heads + h];
        return acc / windows;
      }),
    );
    sinks.push(sinkRate(imp, epsilon));
    alphas.push(mean(imp.flat()));
  }
  const half = (xs: number[]) => {
    xs.sort((x, y) => x - y);
    const q = (f: number) => xs[Math.min(xs.length - 1, Math.round(f * (xs.length - 1)))];
    return (q(0.975) - q(0.025)) / 2;
  };
  return { sink1: half(sinks), alpha: half(alphas) };
}

const r3 = (x: number) => +x.toFixed(3);
const r2 = (x: number) => +x.toFixed(2);

/** SinkLM for the experiment cache: its config and variables (act-calibration uses it too). */
export const sinkLMKind: ModelKind<SinkLM> = weightsKind('SinkLM', SinkLM, (c: SinkLMConfig) => new SinkLM(c));

export const sinkEmergence = defineExperiment<SinkEmergenceConfig, SinkEmergenceArtifacts>({
  name: 'sink-emergence',
  paper:
    'Gu et al. 2025, When Attention Sink Emerges in Language Models: An Empirical View (ICLR), https://arxiv.org/abs/2410.10781',
  description:
    'Character LMs on Moby Dick with softmax, sigmoid without and with normalisation, and softmax + a learned key/value slot: Sink_1 (share of heads putting > 0.3 of their attention on the first token) over training, at comparable validation loss.',
  schema: obj<SinkEmergenceConfig>({
    variants: list(oneOf('softmax', 'sigmoid', 'sigmoid-norm', 'kv-bias'), { min: 1, unique: true }),
    layers: int({ min: 1, max: 12 }),
    dModel: int({ min: 4 }),
    heads: int({ min: 1 }),
    seqLen: int({ min: 4, max: 1024 }),
    batch: int({ min: 1 }),
    steps: int({ min: 1 }),
    lr: num({ gt: 0 }),
    weightDecay: num({ min: 0 }),
    evalEvery: int({ min: 1 }),
    evalWindows: int({ min: 1 }),
    testWindows: int({ min: 1 }),
    epsilon: num({ gt: 0, max: 1 }),
    start: oneOf('text', 'bos'),
  }),
  quick: {
    variants: ['softmax', 'sigmoid', 'sigmoid-norm', 'kv-bias'],
    layers: 2,
    dModel: 32,
    heads: 4,
    seqLen: 32,
    batch: 16,
    steps: 100,
    lr: 3e-3,
    weightDecay: 0.1,
    evalEvery: 25,
    evalWindows: 32,
    testWindows: 128,
    epsilon: SINK_EPSILON,
    start: 'text',
  },
  full: {
    variants: ['softmax', 'sigmoid', 'sigmoid-norm', 'kv-bias'],
    layers: 2,
    dModel: 32,
    heads: 4,
    seqLen: 64,
    batch: 16,
    steps: 1200,
    lr: 3e-3,
    weightDecay: 0.1,
    evalEvery: 100,
    evalWindows: 64,
    testWindows: 256,
    epsilon: SINK_EPSILON,
    start: 'text',
  },
  artifactCodec: artifactCodec([sinkLMKind], {
    drop: ['decode'],
    rebuild: (a, cfg) => {
      a.decode = decoder(CharTokenizer.fromText(loadCorpus().text('train')), cfg);
    },
  }),
  async run(cfg, ctx) {
    if (cfg.dModel % cfg.heads !== 0)
      throw new Error(`sink-emergence: dModel (${cfg.dModel}) must be divisible by heads (${cfg.heads})`);
    const corpus = loadCorpus();
    const tokenizer = CharTokenizer.fromText(corpus.text('train'));
    const ids = {
      train: tokenizer.encode(corpus.text('train')),
      validation: tokenizer.encode(corpus.text('validation')),
      test: tokenizer.encode(corpus.text('test')),
    };
    const bos = tokenizer.vocabSize; // only used with start 'bos'
    const vocab = tokenizer.vocabSize + (cfg.start === 'bos' ? 1 : 0);
    const windows = (split: keyof typeof ids, batch: number, seed: number, step = 0): TokenBatch =>
      cfg.start === 'bos'
        ? withBos(sampleWindows(ids[split], vocab, { batch, seqLen: cfg.seqLen - 1, seed, step }), bos)
        : sampleWindows(ids[split], vocab, { batch, seqLen: cfg.seqLen, seed, step });
    const validation = windows('validation', cfg.evalWindows, ctx.seed);
    const test = windows('test', cfg.testWindows, ctx.seed);
    const models: SinkTrained[] = [];
    const testInputs = test.toTensors();
    tf.dispose([testInputs.targets, testInputs.lossMask]);
    const artifacts: SinkEmergenceArtifacts = {
      models,
      testInputs: testInputs.inputs as tf.Tensor2D,
      decode: decoder(tokenizer, cfg),
      dispose: () => {
        for (const m of models) m.model.dispose();
        testInputs.inputs.dispose();
      },
    };
    const metrics: Record<string, number> = {};
    const rows: Record<string, string | number>[] = [];
    try {
      for (const variant of cfg.variants) {
        ctx.log(`training the ${variant} model (${cfg.steps} steps)`);
        const t0 = performance.now();
        const model = new SinkLM({
          vocab,
          dModel: cfg.dModel,
          heads: cfg.heads,
          layers: cfg.layers,
          maxLen: cfg.seqLen,
          variant,
          seed: ctx.seed,
        });
        const trained: SinkTrained = { variant, model, curve: [], test: undefined as unknown as SinkMeasure };
        models.push(trained);
        const batches = function* () {
          for (let step = 0; ; step++) yield windows('train', cfg.batch, ctx.seed, step);
        };
        const run = await train({
          variables: model.variables(),
          batches: batches(),
          steps: cfg.steps,
          optimizer: { type: 'adamw', lr: cfg.lr, weightDecay: cfg.weightDecay },
          schedule: { type: 'cosine', warmup: Math.round(cfg.steps * 0.05) },
          clipNorm: 1,
          seed: ctx.seed,
          progress: ctx.progress,
          dataframe: false,
          evalEvery: cfg.evalEvery,
          evaluate: (step) => {
            const m = measureSinks(model, validation, cfg.epsilon, 0);
            const point: SinkCurvePoint = { step: step + 1, validation_loss: m.loss, validation_sink1: m.sink1 };
            if (m.biasSink !== undefined) point.validation_bias_sink = m.biasSink;
            trained.curve.push(point);
            return { validation_loss: m.loss, validation_sink1: m.sink1 };
          },
          loss: (_step, b) => {
            const t = b.toTensors();
            return model.loss(t.inputs, t.targets);
          },
        });
        if (run.stopped) throw new Error(`sink-emergence (${variant}): training stopped: ${run.stopped.message}`);
        trained.test = measureSinks(model, test, cfg.epsilon);
        const k = variantKey(variant);
        const val = trained.curve[trained.curve.length - 1];
        const seconds = (performance.now() - t0) / 1000;
        metrics[`test_sink1_${k}`] = trained.test.sink1;
        metrics[`test_sink1_${k}_ci95`] = trained.test.sink1Ci95;
        metrics[`test_first_token_importance_${k}_ci95`] = trained.test.firstTokenCi95;
        metrics[`test_loss_${k}`] = trained.test.loss;
        metrics[`validation_loss_${k}`] = val.validation_loss;
        metrics[`validation_sink1_${k}`] = val.validation_sink1;
        metrics[`test_first_token_importance_${k}`] = mean(trained.test.firstToken.flat());
        if (trained.test.biasSink !== undefined) {
          metrics[`test_bias_sink_${k}`] = trained.test.biasSink;
          metrics[`test_bias_importance_${k}`] = mean(trained.test.bias!.flat());
        }
        metrics[`params_${k}`] = model.parameterCount();
        metrics[`seconds_${k}`] = seconds;
        rows.push({
          variant,
          test_sink1_pct: r2(trained.test.sink1),
          test_sink1_pct_ci95: r2(trained.test.sink1Ci95),
          test_bias_sink_pct: trained.test.biasSink === undefined ? '' : r2(trained.test.biasSink),
          test_first_token_importance: r3(mean(trained.test.firstToken.flat())),
          test_first_token_importance_ci95: r3(trained.test.firstTokenCi95),
          validation_loss: r3(val.validation_loss),
          test_loss: r3(trained.test.loss),
          seconds: +seconds.toFixed(1),
        });
      }
    } catch (e) {
      artifacts.dispose();
      throw e;
    }
    return {
      metrics,
      tables: {
        variants: rows,
        paper: PAPER_ROWS.map((r) => ({ ...r })),
      },
      references: references(cfg.variants, cfg),
      summary: summarize(metrics, cfg.variants, cfg),
      artifacts,
    };
  },
});

/** The same windows one position longer, with `bos` in front: inputs [BOS, x...], targets [x..., next]. */
function withBos(b: TokenBatch, bos: number): TokenBatch {
  const s = b.seqLen + 1;
  const full = new Int32Array(b.batch * (s + 1));
  for (let r = 0; r < b.batch; r++) {
    full[r * (s + 1)] = bos;
    full.set(b.inputs.subarray(r * b.seqLen, (r + 1) * b.seqLen), r * (s + 1) + 1);
    full[r * (s + 1) + s] = b.targets[(r + 1) * b.seqLen - 1];
  }
  return makeBatch(b.task, full, new Float32Array(b.batch * s).fill(1), b.batch, s, b.vocabSize);
}

/** Token ids back to text (the BOS id, when there is one, left out). */
function decoder(tokenizer: CharTokenizer, cfg: SinkEmergenceConfig): (ids: ArrayLike<number>) => string {
  const bos = tokenizer.vocabSize;
  return (xs) => tokenizer.decode(Array.from(xs).filter((x) => x !== bos || cfg.start !== 'bos'));
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The paper's 60M LLaMA-style models on the Pile (T = 64, ε = 0.3); unverified (see `references`). */
const PAPER_ROWS = [
  {
    variant: 'softmax',
    sink1_pct: 18.18,
    valid_loss: 3.73,
    source: 'Table 6 (and Table 2, default setting); unverified',
  },
  {
    variant: 'sigmoid',
    sink1_pct: 0.44,
    valid_loss: 3.7,
    source: 'Table 6, sigmoid w/o normalization (proxy scores); unverified',
  },
  {
    variant: 'sigmoid-norm',
    sink1_pct: 30.24,
    valid_loss: 3.74,
    source: 'Table 6, sigmoid with normalization; unverified',
  },
  {
    variant: 'kv-bias',
    sink1_pct: 0.0,
    valid_loss: Number.NaN,
    source: 'Table 4, K biases (v* = 0): Sink_* = 73.34%; unverified',
  },
];

function references(variants: SinkVariant[], cfg: SinkEmergenceConfig): PaperReference[] {
  // The tables' numbers could not be checked against the paper's text in this review (only its abstract was
  // readable): they stay, marked unverified, until someone reads Tables 4 and 6.
  const src =
    'Gu et al. 2025, 60M LLaMA-style LM on 5B Pile tokens, T = 64, eps = 0.3 (unverified: table value not re-checked)';
  const setting =
    `ours: ${cfg.layers}-layer GPT-2-style char LM (d ${cfg.dModel}, learned positions, GELU, LayerNorm) trained ${cfg.steps} steps on Moby-Dick, ` +
    `measured on test windows at T = ${cfg.seqLen}. Paper: ~60M-parameter LLaMA-style models (10 layers, d 768, RoPE) trained 20k steps on 5B Pile tokens, measured at T = 64`;
  const out: PaperReference[] = [];
  const has = (v: SinkVariant) => variants.includes(v);
  if (has('softmax'))
    out.push({ metric: 'test_sink1_softmax', paper: 18.18, source: `${src}; Table 6, softmax`, setting });
  if (has('sigmoid'))
    out.push({
      metric: 'test_sink1_sigmoid',
      paper: 0.44,
      source: `${src}; Table 6, sigmoid w/o normalization (proxy)`,
      setting,
    });
  if (has('sigmoid-norm'))
    out.push({
      metric: 'test_sink1_sigmoid_norm',
      paper: 30.24,
      source: `${src}; Table 6, sigmoid with normalization`,
      setting,
    });
  if (has('kv-bias')) {
    const kv = `${setting}; our slot learns its value too (the official kv_bias config), the paper's row fixes v* = 0`;
    out.push({
      metric: 'test_sink1_kv_bias',
      paper: 0,
      source: `${src}; Table 4, K biases (learned k*, v* = 0)`,
      setting: kv,
    });
    out.push({
      metric: 'test_bias_sink_kv_bias',
      paper: 73.34,
      source: `${src}; Table 4, K biases, Sink_* on the bias`,
      setting: kv,
    });
  }
  return out;
}

function summarize(m: Record<string, number>, variants: SinkVariant[], cfg: SinkEmergenceConfig): string {
  const parts = variants.map((v) => {
    const k = variantKey(v);
    const bias =
      m[`test_bias_sink_${k}`] === undefined ? '' : `, ${m[`test_bias_sink_${k}`].toFixed(0)}% on the bias slot`;
    return `${v} ${m[`test_sink1_${k}`].toFixed(0)} ± ${m[`test_sink1_${k}_ci95`].toFixed(0)}%${bias} (mean alpha_1 ${m[`test_first_token_importance_${k}`].toFixed(3)} ± ${m[`test_first_token_importance_${k}_ci95`].toFixed(3)}, validation loss ${m[`validation_loss_${k}`].toFixed(2)})`;
  });
  // Uniform causal attention gives the first token alpha_1 = (1/T) sum_t 1/t.
  let uniform = 0;
  for (let t = 1; t <= cfg.seqLen; t++) uniform += 1 / t / cfg.seqLen;
  let s = `Sink_1 on test windows: ${parts.join('; ')}. Uniform attention would give alpha_1 = ${uniform.toFixed(3)}.`;
  if (variants.includes('softmax') && m.test_sink1_softmax === 0)
    s += ` Softmax shows no first-token sink: at this scale (${cfg.layers} layers, d ${cfg.dModel}, ${cfg.steps} steps) the sink did not emerge, so the paper's contrast between the variants is not reproduced here (its 60M-parameter models show the sink after 1-2k steps).`;
  return s;
}

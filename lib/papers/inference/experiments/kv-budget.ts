/**
 * Experiment `kv-budget`: how small can the KV cache get before answers change? One ToyLM (RoPE), trained once on
 * needle retrieval and multi-hop reasoning traces (lib/data/needles.ts: needleTask, traceTask) plus language modelling
 * of the filler and of repeated random tokens, is decoded through KV-cache policies (lib/papers/inference/kv) at
 * budgets of 30, 50 and 70% of the prompt's cache: full, sliding window, StreamingLLM sinks + recent, H2O,
 * LazyEviction, DuoAttention (gates optimised, vs heads by retrieval score, vs random heads) and RazorAttention with
 * and without its compensation token. Headline: exact-match accuracy (test split, 95% CI) against the KV bytes
 * measured from the cache's tensors (mean over the decoding passes, as a fraction of the full cache's bytes at the
 * same passes).
 *
 * Papers: DuoAttention (Xiao et al., ICLR 2025, https://arxiv.org/abs/2410.10819), LazyEviction (Zhang et al. 2025,
 * https://arxiv.org/abs/2506.15969), RazorAttention (Tang et al. 2024, https://arxiv.org/abs/2407.15891), with H2O
 * (Zhang et al. 2023, https://arxiv.org/abs/2306.14048) and StreamingLLM (Xiao et al. 2024,
 * https://arxiv.org/abs/2309.17453) as baselines.
 *
 * Protocol: the prompt (everything before `QUERY k`) is prefilled, the policy compresses the cache, then `QUERY k` and
 * the answer are fed one token per pass (teacher forcing; for exact match this equals greedy decoding), the policy
 * selecting after every pass, so the answer is read from the compressed cache. DuoAttention's streaming heads attend
 * to sinks + recent already in the prefill (the paper's deployment, duo/policy.ts); the other policies see the whole
 * prompt in the prefill and evict afterwards (kvpress). Budget β of a P-token prompt: window, sinks, H2O (half heavy,
 * half recent) and LazyEviction keep round(β·P) tokens per head; DuoAttention and RazorAttention keep everything on n
 * retrieval heads and about S = sinks + recent tokens on the others, n = round(heads · (β·P − S) / (P − S)).
 * DuoAttention's gates are optimised on multi-needle training rows (distillation + L1, duo/gates.ts), retrieval scores
 * (Wu et al.) are measured on validation needle rows, RazorAttention's echo / induction scores on repeated random
 * tokens (its heads: echo and induction in the paper's 1 : 15 ratio); LazyEviction's observation window W is picked
 * per budget and task on the validation split. No test row is used for any choice.
 *
 * How ours differs from the papers: DuoAttention optimises gates for 2000 steps on Llama/Mistral models with 1K-32K
 * token passkey contexts (sink 128, recent 256) and reports up to 2.55x KV memory reduction for MHA models within about
 * a point of full attention; we use a 16-head toy model, prompts of tens of tokens, a few hundred gate steps, sinks 2
 * and recent 4, and one queried needle among several (theirs: ten passkeys, all recalled). LazyEviction's traces are
 * long LLM reasoning chains (50-70% reduction at comparable accuracy on math benchmarks); ours are synthetic alias
 * chains of two hops. RazorAttention (> 70% reduction, training-free) works on pretrained LLMs with strong echo and
 * induction heads and sizes its buffer from the compression ratio; ours keeps a fixed sinks + recent buffer. The
 * papers' numbers are compared in direction only (is the reduction reached within about a point of full accuracy?).
 *
 * Measured (seed 0, wasm-native, one thread, load average ~15 on two cores). Full config: 1111 s wall, 298 s CPU. Test
 * exact match (± 95% CI, 384 rows per task), full cache: needle 0.628 ± 0.048, trace 0.383 ± 0.049. Needle at the 50%
 * budget: DuoAttention (gates) 0.622 ± 0.049 at 0.498 of the full KV bytes (2.0x smaller, drop 0.005), heads by
 * retrieval score 0.583, random heads 0.042 ± 0.010, window 0.445, sinks 0.411, H2O 0.503, LazyEviction 0.411;
 * at 30%: DuoAttention 0.583 at 0.275 of the bytes, H2O 0.404, window 0.276, random heads 0.044. RazorAttention does
 * not reproduce here: 0.086 at 30% and 50% (0.075 without the compensation token), 0.555 at 70% (our echo /
 * induction probe picks layer-0/2 heads, not the needle's retrieval heads L1H0, L2H1). Trace at 50%: LazyEviction
 * 0.411 at 0.510 of the bytes (full 0.383: comparable, as the paper says), H2O 0.375, DuoAttention 0.372, window
 * 0.292; at 30% the attention-score policies hold up (H2O 0.414, LazyEviction 0.391) where window falls to 0.096.
 * Quick config: 136 s wall, 24 s CPU; its model does not learn the needles (full-cache accuracy 0.021), and its
 * summary says it is too small to test the claims.
 */
import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import {
  type NeedleBatch,
  needleTask,
  repeatedRandomTokens,
  type TraceBatch,
  traceTask,
} from '../../../data/needles.js';
import { artifactCodec, tokenBatchKind, toyLMKind } from '../../../experiments/codecs.js';
import { defineExperiment, type PaperReference } from '../../../experiments/contract.js';
import { int, list, num, obj, oneOf } from '../../../experiments/schema.js';
import { ToyLM } from '../../../layers/toylm.js';
import { type StepRecord, train } from '../../../train/loop.js';
import { transformerRecipe } from '../../../train/recipe.js';
import { Rng } from '../../../util/random.js';
import { proportionCi95, sharedRowsCi95 } from '../../../util/stats.js';
import { type GateBatch, headsFromGates, optimiseGates } from '../duo/gates.js';
import { decodeDuo } from '../duo/policy.js';
import { decodeWithPolicy, type PolicyDecode } from '../kv/decode.js';
import { H2OPolicy } from '../kv/h2o.js';
import { FullPolicy, type KVPolicy, SinkPolicy, WindowPolicy } from '../kv/policy.js';
import { LazyEvictionPolicy } from '../lazy-eviction/index.js';
import { probeEchoInduction, RazorPolicy, razorRetrievalHeads } from '../razor/index.js';
import { recordPatterns, retrievalScores } from '../retrieval-heads/scores.js';

export interface KvBudgetConfig {
  /** Needle task (lib/data/needles.ts): positions, needles per haystack, values per needle, key/value/vocab sizes. */
  seqLen: number;
  needles: number;
  valueLen: number;
  keys: number;
  values: number;
  vocabSize: number;
  dModel: number;
  heads: number;
  layers: number;
  /** Position code of the ToyLM. */
  positional: 'learned' | 'rope';
  steps: number;
  batch: number;
  lr: number;
  /** Weight of the answer tokens against the filler (language-modelling) tokens in the training loss. */
  answerWeight: number;
  /**
   * Multi-hop reasoning traces (lib/data/needles.ts traceTask, LazyEviction's setting): chains per row and links per
   * chain; variables and values are the needle task's key and value tokens. traceRows: trace rows per training step.
   */
  traceChains: number;
  traceHops: number;
  traceRows: number;
  /**
   * Rows of repeated random tokens per training step (language modelling on the repeat), which gives the copy
   * (induction) circuit a dense training signal early on; 0 for none.
   */
  repeatRows: number;
  /** KV budgets as fractions of the prompt's cache. */
  budgets: number[];
  /** Attention sinks (StreamingLLM, DuoAttention and RazorAttention streaming heads). */
  sinks: number;
  /** Recent window of DuoAttention's and RazorAttention's streaming heads. */
  recent: number;
  /** DuoAttention gate optimisation: steps, batch, lr, L1 weight, needles per (multi-passkey) haystack. */
  gateSteps: number;
  gateBatch: number;
  gateLr: number;
  regWeight: number;
  gateNeedles: number;
  /** LazyEviction observation windows W tried (picked on validation per budget). */
  lazyWindows: number[];
  /** Random head sets per budget (DuoAttention with random retrieval heads). */
  randomDraws: number;
  validationRows: number;
  testRows: number;
}

/** One policy at one budget, on the test split. */
export interface BudgetRow {
  task: string;
  policy: string;
  budget: number;
  /** Exact-match accuracy of the answer and its 95% CI half-width. */
  test_accuracy: number;
  test_accuracy_ci95: number;
  /** Mean measured KV bytes over the decoding passes / the full cache's. */
  kv_fraction: number;
  /** Mean measured KV bytes over the decoding passes (all rows, layers, heads). */
  kv_bytes: number;
  /** Retrieval heads (DuoAttention, RazorAttention) or W (LazyEviction) or kept tokens (others). */
  setting: string;
}

export interface KvBudgetArtifacts {
  model: ToyLM;
  /** [layer][kvHead] DuoAttention gates after optimisation. */
  gates: number[][];
  /** [layer][head] retrieval scores (validation split). */
  retrievalScores: number[][];
  /** [layer][head] RazorAttention echo and induction scores (repeated random tokens). */
  echo: number[][];
  induction: number[][];
  /** LazyEviction's W per budget (percent), picked on validation. */
  lazyWindows: Record<string, number>;
  /** Every (task, policy, budget) row on the test split. */
  rows: BudgetRow[];
  records: StepRecord[];
  gateRecords: StepRecord[];
  dispose(): void;
}

/** The prompt, teacher-forced tokens and graded steps of a needle batch (see the module comment). */
export interface EvalSet {
  prompt: tf.Tensor2D;
  teacher: number[][];
  steps: number;
  /** Decoding steps whose predictions are graded, and the expected tokens per row. */
  answerSteps: number[];
  answers: number[][];
  rows: number;
  dispose(): void;
}

/** Splits a needle batch into prompt (before `QUERY k`), fed tokens and answers. All rows share the layout. */
export function needleEvalSet(batch: NeedleBatch): EvalSet {
  return evalSet(
    batch,
    batch.rows.map((r) => ({ answerStart: r.answerStart, answer: r.values })),
  );
}

/** The same for a reasoning-trace batch (`QUERY a_last` -> the chain's value). */
export function traceEvalSet(batch: TraceBatch): EvalSet {
  return evalSet(
    batch,
    batch.rows.map((r) => ({ answerStart: r.answerStart, answer: [r.value] })),
  );
}

function evalSet(batch: NeedleBatch | TraceBatch, rows: { answerStart: number; answer: number[] }[]): EvalSet {
  const S = batch.seqLen;
  const Q = rows[0].answerStart - 1; // the QUERY token's input position
  if (rows.some((r) => r.answerStart - 1 !== Q))
    throw new Error('evalSet: rows must share the answer position (the generators put it at the end)');
  const inputs = Array.from({ length: batch.batch }, (_, b) => Array.from(batch.inputs.subarray(b * S, (b + 1) * S)));
  const teacher = inputs.map((r) => r.slice(Q));
  const prompt = tf.tensor2d(
    inputs.map((r) => r.slice(0, Q)),
    [batch.batch, Q],
    'int32',
  );
  const valueLen = rows[0].answer.length;
  // The pass that feeds input position p predicts target p: pass t feeds position Q - 1 + t.
  const answerSteps = Array.from({ length: valueLen }, (_, i) => rows[0].answerStart + i - Q + 1);
  return {
    prompt,
    teacher,
    steps: S - Q + 1,
    answerSteps,
    answers: rows.map((r) => r.answer),
    rows: batch.batch,
    dispose: () => prompt.dispose(),
  };
}

export interface PolicyScore {
  accuracy: number;
  ci95: number;
  /** Mean bytes over the passes, and per pass. */
  meanBytes: number;
  bytes: number[];
  correct: boolean[];
}

/** Exact match of the graded steps of a decode. */
export function scoreDecode(set: EvalSet, d: PolicyDecode): PolicyScore {
  const correct = set.answers.map((ans, r) => ans.every((tok, i) => d.tokens[r][set.answerSteps[i]] === tok));
  const accuracy = correct.filter(Boolean).length / set.rows;
  return {
    accuracy,
    ci95: proportionCi95(accuracy, set.rows),
    meanBytes: d.bytes.reduce((a, b) => a + b, 0) / d.bytes.length,
    bytes: d.bytes,
    correct,
  };
}

/** Decodes an eval set through a policy (teacher-forced) and scores it. */
export function runPolicy(model: ToyLM, set: EvalSet, policy: KVPolicy): PolicyScore {
  return scoreDecode(set, decodeWithPolicy(model, set.prompt, set.steps, policy, { teacher: set.teacher }));
}

/** Number of retrieval heads for budget β: n = round(heads · (β·P − S) / (P − S)), clipped to [0, heads]. */
export function retrievalHeadCount(budget: number, promptLen: number, streamTokens: number, heads: number): number {
  const r = (budget * promptLen - streamTokens) / Math.max(1, promptLen - streamTokens);
  return Math.max(0, Math.min(heads, Math.round(heads * r)));
}

/** [layer][head] table with the given heads (flat indices layer * kvHeads + head) true. */
function headTable(layers: number, kvHeads: number, flat: number[]): boolean[][] {
  const set = new Set(flat);
  return Array.from({ length: layers }, (_, l) => Array.from({ length: kvHeads }, (_, h) => set.has(l * kvHeads + h)));
}

export const kvBudgetSchema = obj<KvBudgetConfig>({
  seqLen: int({ min: 8, max: 1024 }),
  needles: int({ min: 1 }),
  valueLen: int({ min: 1 }),
  keys: int({ min: 2 }),
  values: int({ min: 2 }),
  vocabSize: int({ min: 8 }),
  dModel: int({ min: 4 }),
  heads: int({ min: 1 }),
  layers: int({ min: 1, max: 12 }),
  positional: oneOf('learned', 'rope'),
  steps: int({ min: 1 }),
  batch: int({ min: 1 }),
  lr: num({ gt: 0 }),
  answerWeight: num({ gt: 0 }),
  repeatRows: int({ min: 0 }),
  traceChains: int({ min: 1 }),
  traceHops: int({ min: 1 }),
  traceRows: int({ min: 0 }),
  budgets: list(num({ gt: 0, max: 0.99 }), { min: 1, unique: true }),
  sinks: int({ min: 0 }),
  recent: int({ min: 1 }),
  gateSteps: int({ min: 1 }),
  gateBatch: int({ min: 1 }),
  gateLr: num({ gt: 0 }),
  regWeight: num({ min: 0 }),
  gateNeedles: int({ min: 1 }),
  lazyWindows: list(int({ min: 1 }), { min: 1, unique: true }),
  randomDraws: int({ min: 1 }),
  validationRows: int({ min: 1 }),
  testRows: int({ min: 1 }),
});

function pct(b: number): string {
  return String(Math.round(b * 100));
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

export const kvBudget = defineExperiment<KvBudgetConfig, KvBudgetArtifacts>({
  name: 'kv-budget',
  schema: kvBudgetSchema,
  paper:
    'Xiao et al. 2025, DuoAttention, https://arxiv.org/abs/2410.10819; Zhang et al. 2025, LazyEviction, https://arxiv.org/abs/2506.15969; Tang et al. 2024, RazorAttention, https://arxiv.org/abs/2407.15891',
  description:
    'Needle retrieval through KV-cache policies at 30/50/70% budgets: full, window, sinks, H2O, LazyEviction, DuoAttention (optimised gates vs retrieval-score heads vs random heads), RazorAttention with/without its compensation token; test accuracy against measured KV bytes.',
  quick: {
    seqLen: 32,
    needles: 2,
    valueLen: 2,
    keys: 6,
    values: 10,
    vocabSize: 32,
    dModel: 32,
    heads: 4,
    layers: 2,
    positional: 'rope',
    steps: 250,
    batch: 24,
    lr: 1e-2,
    answerWeight: 4,
    traceChains: 2,
    traceHops: 2,
    traceRows: 8,
    repeatRows: 8,
    budgets: [0.3, 0.5, 0.7],
    sinks: 2,
    recent: 4,
    gateSteps: 30,
    gateBatch: 16,
    gateLr: 0.02,
    regWeight: 0.05,
    gateNeedles: 3,
    lazyWindows: [4, 8],
    randomDraws: 2,
    validationRows: 48,
    testRows: 96,
  },
  full: {
    seqLen: 48,
    needles: 2,
    valueLen: 2,
    keys: 6,
    values: 12,
    vocabSize: 32,
    dModel: 48,
    heads: 4,
    layers: 4,
    positional: 'rope',
    steps: 1000,
    batch: 32,
    lr: 5e-3,
    answerWeight: 4,
    traceChains: 2,
    traceHops: 2,
    traceRows: 16,
    repeatRows: 16,
    budgets: [0.3, 0.5, 0.7],
    sinks: 2,
    recent: 4,
    gateSteps: 200,
    gateBatch: 16,
    gateLr: 0.02,
    regWeight: 0.05,
    gateNeedles: 4,
    lazyWindows: [4, 8, 16],
    randomDraws: 4,
    validationRows: 192,
    testRows: 384,
  },
  artifactCodec: artifactCodec([toyLMKind, tokenBatchKind]),
  async run(cfg, ctx) {
    const t0 = performance.now();
    const task = {
      seqLen: cfg.seqLen,
      needles: cfg.needles,
      valueLen: cfg.valueLen,
      keys: cfg.keys,
      values: cfg.values,
      vocabSize: cfg.vocabSize,
    };
    const traceCfg = {
      seqLen: cfg.seqLen,
      chains: cfg.traceChains,
      hops: cfg.traceHops,
      vars: cfg.keys,
      values: cfg.values,
      vocabSize: cfg.vocabSize,
    };
    const model = new ToyLM({
      vocab: cfg.vocabSize,
      dModel: cfg.dModel,
      heads: cfg.heads,
      layers: cfg.layers,
      maxLen: cfg.seqLen,
      positional: cfg.positional,
      seed: ctx.seed,
    });
    const sets: EvalSet[] = [];
    let ok = false;
    try {
      // 1. Train the model once: needle answers (weighted) + filler language modelling.
      ctx.log(`training the ${cfg.layers}x${cfg.heads} ToyLM (${cfg.steps} steps)`);
      const batches = function* () {
        for (let step = 0; ; step++) {
          const b = needleTask({ ...task, batch: cfg.batch, seed: stepSeed(ctx.seed, step), split: 'train' });
          const { inputs, targets, lossMask } = b.toTensors();
          lossMask.dispose();
          const w = new Float32Array(b.answerMask.length);
          for (let i = 0; i < w.length; i++) w[i] = b.answerMask[i] * cfg.answerWeight + b.lmMask[i];
          let rep: { inputs: tf.Tensor2D; targets: tf.Tensor2D; weights: tf.Tensor2D } | undefined;
          if (cfg.repeatRows > 0) {
            // BOS x1..xL x1..xL (+ padding to seqLen + 1); the loss counts the second copy's predictions.
            const L = Math.floor(cfg.seqLen / 2);
            const data = repeatedRandomTokens(cfg.repeatRows, L, b.firstKey, cfg.vocabSize, stepSeed(ctx.seed, step));
            const full = data.map((r) => [...r, ...new Array<number>(cfg.seqLen + 1 - r.length).fill(0)]);
            rep = {
              inputs: tf.tensor2d(
                full.map((r) => r.slice(0, cfg.seqLen)),
                [cfg.repeatRows, cfg.seqLen],
                'int32',
              ),
              targets: tf.tensor2d(
                full.map((r) => r.slice(1)),
                [cfg.repeatRows, cfg.seqLen],
                'int32',
              ),
              weights: tf.tensor2d(
                full.map((_, __) => Array.from({ length: cfg.seqLen }, (_, t) => (t > L && t < 2 * L ? 1 : 0))),
                [cfg.repeatRows, cfg.seqLen],
              ),
            };
          }
          let trace: { inputs: tf.Tensor2D; targets: tf.Tensor2D; weights: tf.Tensor2D } | undefined;
          if (cfg.traceRows > 0) {
            const t = traceTask({ ...traceCfg, batch: cfg.traceRows, seed: stepSeed(ctx.seed, step), split: 'train' });
            const tt = t.toTensors();
            tt.lossMask.dispose();
            const tw = new Float32Array(t.answerMask.length);
            for (let i = 0; i < tw.length; i++) tw[i] = t.answerMask[i] * cfg.answerWeight + t.lmMask[i];
            trace = { inputs: tt.inputs, targets: tt.targets, weights: tf.tensor2d(tw, [cfg.traceRows, cfg.seqLen]) };
          }
          yield { inputs, targets, weights: tf.tensor2d(w, [cfg.batch, cfg.seqLen]), rep, trace };
        }
      };
      const run = await train({
        variables: model.variables(),
        batches: batches(),
        steps: cfg.steps,
        ...transformerRecipe(cfg.steps, cfg.lr),
        seed: ctx.seed,
        progress: ctx.progress,
        dataframe: false,
        loss: (_step, b) => {
          let l = model.loss(b.inputs, b.targets, b.weights);
          for (const x of [b.rep, b.trace]) if (x) l = l.add(model.loss(x.inputs, x.targets, x.weights)) as tf.Scalar;
          return l;
        },
      });
      if (run.stopped) throw new Error(`kv-budget: training stopped: ${run.stopped.message}`);
      const trainSeconds = (performance.now() - t0) / 1000;

      const validation = needleTask({ ...task, batch: cfg.validationRows, seed: ctx.seed, split: 'validation' });
      const test = needleTask({ ...task, batch: cfg.testRows, seed: ctx.seed, split: 'test' });
      const valSet = needleEvalSet(validation);
      const testSet = needleEvalSet(test);
      sets.push(valSet, testSet);
      const L = cfg.layers;
      const H = cfg.heads;
      const total = L * H;

      // 2. Retrieval scores (Wu et al.) on the validation split.
      const valInputs = tf.tensor2d(validation.inputs, [validation.batch, validation.seqLen], 'int32');
      const rows = Array.from({ length: validation.batch }, (_, b) =>
        Array.from(validation.inputs.subarray(b * validation.seqLen, (b + 1) * validation.seqLen)),
      );
      const rec = recordPatterns(model, valInputs);
      valInputs.dispose();
      const rScores = retrievalScores(rec.patterns, rows, rec.emitted, validation.rows);
      // RazorAttention's echo / induction scores on repeated random tokens (not needle rows).
      const echoInd = probeEchoInduction(model, {
        rows: cfg.validationRows,
        L: Math.floor((cfg.seqLen - 1) / 2),
        lo: validation.firstKey,
        hi: cfg.vocabSize,
        seed: ctx.seed,
      });

      // 3. DuoAttention's gates: frozen model, distillation + L1 on multi-needle training haystacks.
      ctx.log(`optimising DuoAttention gates (${cfg.gateSteps} steps)`);
      const g0 = performance.now();
      const window = { sinks: cfg.sinks, recent: cfg.recent };
      const gateBatches = function* (): Generator<GateBatch> {
        for (let step = 0; ; step++) {
          const b = needleTask({
            ...task,
            needles: cfg.gateNeedles,
            keys: Math.max(cfg.keys, cfg.gateNeedles),
            batch: cfg.gateBatch,
            seed: stepSeed(ctx.seed, cfg.steps + step),
            split: 'train',
          });
          yield {
            inputs: tf.tensor2d(b.inputs, [b.batch, b.seqLen], 'int32'),
            answerMask: tf.tensor2d(b.answerMask, [b.batch, b.seqLen]),
          };
        }
      };
      const opt = await optimiseGates(model, {
        batches: gateBatches(),
        steps: cfg.gateSteps,
        window,
        lr: cfg.gateLr,
        regWeight: cfg.regWeight,
        seed: ctx.seed,
        progress: ctx.progress,
      });
      const gateSeconds = (performance.now() - g0) / 1000;

      // 4. Policies at every budget, on each task (needle = passkey retrieval, trace = multi-hop reasoning trace).
      const e0 = performance.now();
      const tasks: { name: string; val: EvalSet; test: EvalSet }[] = [{ name: 'needle', val: valSet, test: testSet }];
      if (cfg.traceRows > 0) {
        const tv = traceEvalSet(
          traceTask({ ...traceCfg, batch: cfg.validationRows, seed: ctx.seed, split: 'validation' }),
        );
        sets.push(tv);
        const tt = traceEvalSet(traceTask({ ...traceCfg, batch: cfg.testRows, seed: ctx.seed, split: 'test' }));
        sets.push(tt);
        tasks.push({ name: 'trace', val: tv, test: tt });
      }
      const out: BudgetRow[] = [];
      const fullAcc: Record<string, PolicyScore> = {};
      const rng = new Rng(ctx.seed).fork('kv-budget:random-heads');
      const S = cfg.sinks + cfg.recent;
      const lazySetting: Record<string, number> = {};
      const names = (t: boolean[][]) =>
        t.flatMap((r, l) => r.flatMap((x, h) => (x ? [`L${l}H${h}`] : []))).join(' ') || 'none';
      for (const tk of tasks) {
        const testSet = tk.test;
        const P = testSet.prompt.shape[1];
        const full = runPolicy(model, testSet, new FullPolicy());
        fullAcc[tk.name] = full;
        const fraction = (s: PolicyScore) => mean(s.bytes.map((b, i) => b / full.bytes[i]));
        const push = (policy: string, budget: number, s: PolicyScore, setting: string, acc = s.accuracy, ci = s.ci95) =>
          out.push({
            task: tk.name,
            policy,
            budget,
            test_accuracy: acc,
            test_accuracy_ci95: ci,
            kv_fraction: fraction(s),
            kv_bytes: s.meanBytes,
            setting,
          });
        push('full', 1, full, `${P} prompt tokens`);
        for (const beta of cfg.budgets) {
          const B = Math.max(1, Math.round(beta * P));
          const n = retrievalHeadCount(beta, P, S, total);
          const duoHeads = headsFromGates(opt.gates, n / total);
          const scoreHeads = headsFromGates(rScores, n / total);
          const describe = (t: boolean[][]) => `${n}/${total} heads: ${names(t)}`;
          // RazorAttention: echo and induction heads in the paper's ratio (about 1 : 15), n in all (overlaps merge).
          const echoHeads = Math.min(n, Math.round(n / 16));
          const razorHeads = razorRetrievalHeads(echoInd, { echoHeads, inductionHeads: n - echoHeads });
          const describeRazor = (t: boolean[][]) =>
            `${t.flat().filter(Boolean).length}/${total} heads (${echoHeads} echo + ${n - echoHeads} induction): ${names(t)}`;
          const heavy = Math.floor(B / 2);
          const sinks = Math.min(cfg.sinks, B - 1);
          // LazyEviction's observation window W: the best validation accuracy (ties: the first in the list).
          let lazyW = cfg.lazyWindows[0];
          let bestVal = -1;
          for (const W of cfg.lazyWindows) {
            const v = runPolicy(model, tk.val, new LazyEvictionPolicy({ budget: B, window: W })).accuracy;
            if (v > bestVal) [bestVal, lazyW] = [v, W];
          }
          lazySetting[`${tk.name}_${pct(beta)}`] = lazyW;
          const duo = (heads: boolean[][]) =>
            scoreDecode(
              testSet,
              decodeDuo(model, testSet.prompt, testSet.steps, heads, window, { teacher: testSet.teacher }),
            );
          push('window', beta, runPolicy(model, testSet, new WindowPolicy(B)), `${B} tokens`);
          push(
            'sinks',
            beta,
            runPolicy(model, testSet, new SinkPolicy({ sinks, recent: B - sinks })),
            `${sinks} + ${B - sinks} tokens`,
          );
          push(
            'h2o',
            beta,
            runPolicy(model, testSet, new H2OPolicy({ heavy, recent: B - heavy })),
            `${heavy} heavy + ${B - heavy} recent`,
          );
          push(
            'lazy-eviction',
            beta,
            runPolicy(model, testSet, new LazyEvictionPolicy({ budget: B, window: lazyW })),
            `${B} tokens, W = ${lazyW} (validation)`,
          );
          push('duo-gates', beta, duo(duoHeads), describe(duoHeads));
          push('duo-retrieval-score', beta, duo(scoreHeads), describe(scoreHeads));
          // Random retrieval heads: several draws on the same test rows (the interval counts the rows once).
          const draws: PolicyScore[] = [];
          for (let d = 0; d < cfg.randomDraws; d++) draws.push(duo(headTable(L, H, rng.sample(total, n))));
          const acc = mean(draws.map((d) => d.accuracy));
          out.push({
            task: tk.name,
            policy: 'duo-random',
            budget: beta,
            test_accuracy: acc,
            test_accuracy_ci95: sharedRowsCi95(
              draws.map((d) => d.accuracy),
              testSet.rows,
            ),
            kv_fraction: mean(draws.map(fraction)),
            kv_bytes: mean(draws.map((d) => d.meanBytes)),
            setting: `${n}/${total} heads, ${draws.length} draws`,
          });
          push(
            'razor',
            beta,
            runPolicy(model, testSet, new RazorPolicy({ retrieval: razorHeads, ...window, compensation: 'count' })),
            `${describeRazor(razorHeads)}, compensation token`,
          );
          push(
            'razor-no-compensation',
            beta,
            runPolicy(model, testSet, new RazorPolicy({ retrieval: razorHeads, ...window, compensation: 'none' })),
            describeRazor(razorHeads),
          );
        }
      }
      const evalSeconds = (performance.now() - e0) / 1000;

      const metrics: Record<string, number> = {
        train_loss: mean(run.records.slice(-10).map((r) => r.loss)),
        train_gate_distill: opt.finalDistill,
        params: model.parameterCount(),
        seconds_train: trainSeconds,
        seconds_gates: gateSeconds,
        seconds_eval: evalSeconds,
      };
      for (const r of out) {
        const key =
          r.policy === 'full' ? `${r.task}_full` : `${r.task}_${r.policy.replace(/-/g, '_')}_${pct(r.budget)}`;
        metrics[`test_accuracy_${key}`] = r.test_accuracy;
        metrics[`test_accuracy_${key}_ci95`] = r.test_accuracy_ci95;
        if (r.policy !== 'full') metrics[`test_kv_fraction_${key}`] = r.kv_fraction;
      }
      const find = (task: string, policy: string, budget: number) =>
        out.find((r) => r.task === task && r.policy === policy && r.budget === budget);
      const toy =
        `ours: a ${cfg.layers}-layer, ${cfg.heads}-head ToyLM (d ${cfg.dModel}, ${cfg.positional} positions) trained ${cfg.steps} steps on synthetic ` +
        `needle and trace rows of ${cfg.seqLen} tokens, exact match on ${cfg.testRows} test rows per task`;
      const references: PaperReference[] = [];
      const headline = find('needle', 'duo-gates', 0.5);
      if (headline) {
        metrics.test_kv_reduction_needle_duo_gates_50 = 1 / headline.kv_fraction;
        metrics.test_accuracy_drop_needle_duo_gates_50 = fullAcc.needle.accuracy - headline.test_accuracy;
        references.push(
          {
            metric: 'test_kv_reduction_needle_duo_gates_50',
            paper: 2.55,
            source:
              'DuoAttention abstract and §4.2: up to 2.55x KV-cache memory reduction for MHA models (1.67x for GQA), Llama-2-7B-32K-Instruct, NIAH/LongBench',

            setting:
              `${toy}; DuoAttention gates optimised ${cfg.gateSteps} steps, sinks ${cfg.sinks} + recent ${cfg.recent} on streaming heads, at the 50% budget. ` +
              'Paper: Llama-2-7B-32K-Instruct, gates optimised 2000 steps on passkey contexts of 1K-32K tokens, sink 128 + recent 256',
          },
          {
            metric: 'test_accuracy_drop_needle_duo_gates_50',
            paper: 0.01,
            source:
              'DuoAttention §4: accuracy within about 1 point of full attention at the deployed sparsity (an upper bound, not a measured drop)',

            setting:
              `${toy}; exact-match drop from the full cache at the 50% budget on one queried needle among ${cfg.needles}. ` +
              'Paper: Llama/Mistral models on NIAH with ten passkeys, all recalled, and LongBench',
          },
        );
      }
      const lazyTask = fullAcc.trace ? 'trace' : 'needle';
      const lazy = find(lazyTask, 'lazy-eviction', 0.5);
      if (lazy) {
        metrics[`test_kv_saved_${lazyTask}_lazy_eviction_50`] = 1 - lazy.kv_fraction;
        metrics[`test_accuracy_drop_${lazyTask}_lazy_eviction_50`] = fullAcc[lazyTask].accuracy - lazy.test_accuracy;
        references.push({
          metric: `test_kv_saved_${lazyTask}_lazy_eviction_50`,
          paper: 0.5,
          source:
            'LazyEviction abstract: 50-70% KV-cache reduction at comparable accuracy (lower end), long-reasoning math benchmarks on reasoning LLMs',

          setting:
            `${toy}; ${lazyTask === 'trace' ? `synthetic alias chains of ${cfg.traceHops} hops` : 'needle rows (no trace task in this config)'}, window W picked on validation, 50% budget. ` +
            'Paper: reasoning LLMs on long chain-of-thought math benchmarks',
        });
      }
      const razor = find('needle', 'razor', 0.3);
      if (razor) {
        metrics.test_kv_saved_needle_razor_30 = 1 - razor.kv_fraction;
        metrics.test_accuracy_drop_needle_razor_30 = fullAcc.needle.accuracy - razor.test_accuracy;
        references.push({
          metric: 'test_kv_saved_needle_razor_30',
          paper: 0.7,
          source:
            'RazorAttention abstract: over 70% KV-cache reduction without noticeable performance loss (LongBench, NIAH; Qwen, Llama-2/3, Baichuan)',

          setting:
            `${toy}; echo / induction heads scored on repeated random tokens, a fixed sinks ${cfg.sinks} + recent ${cfg.recent} buffer on the other heads, 30% budget. ` +
            'Paper: pretrained Qwen, Llama-2/3, Baichuan on LongBench and NIAH, buffer sized from the compression ratio',
        });
      }
      const artifacts: KvBudgetArtifacts = {
        model,
        gates: opt.gates,
        retrievalScores: rScores,
        echo: echoInd.echo,
        induction: echoInd.induction,
        lazyWindows: lazySetting,
        rows: out,
        records: run.records,
        gateRecords: opt.records,
        dispose: () => model.dispose(),
      };
      ok = true;
      const d = headline;
      const rand = find('needle', 'duo-random', 0.5);
      const win = find('needle', 'window', 0.5);
      return {
        metrics,
        tables: {
          budgets: out.map((r) => ({
            ...r,
            test_accuracy: +r.test_accuracy.toFixed(4),
            test_accuracy_ci95: +r.test_accuracy_ci95.toFixed(4),
            kv_fraction: +r.kv_fraction.toFixed(4),
            kv_bytes: Math.round(r.kv_bytes),
          })),
          heads: opt.gates.flatMap((row, l) =>
            row.map((g, h) => ({
              layer: l,
              head: h,
              gate: +g.toFixed(4),
              retrieval_score: +rScores[l][h].toFixed(4),
              echo_score: +echoInd.echo[l][h].toFixed(4),
              induction_score: +echoInd.induction[l][h].toFixed(4),
            })),
          ),
        },
        references,
        summary: [
          `Full cache, test exact match: ${tasks.map((t) => `${t.name} ${fullAcc[t.name].accuracy.toFixed(3)} ± ${fullAcc[t.name].ci95.toFixed(3)}`).join(', ')}.`,
          d
            ? `DuoAttention (optimised gates) at the ${pct(d.budget)}% budget keeps ${(d.kv_fraction * 100).toFixed(0)}% of the needle task's KV bytes with accuracy ${d.test_accuracy.toFixed(3)} ± ${d.test_accuracy_ci95.toFixed(3)}` +
              (rand ? `; random heads ${rand.test_accuracy.toFixed(3)} ± ${rand.test_accuracy_ci95.toFixed(3)}` : '') +
              (win
                ? `; a window of the same budget ${win.test_accuracy.toFixed(3)} ± ${win.test_accuracy_ci95.toFixed(3)}.`
                : '.')
            : '',
          fullAcc.needle.accuracy < 0.5
            ? `The full-cache model is below 0.5 on the needles (${cfg.steps} training steps): this run is too small to test the papers' claims; use the full config.`
            : '',
        ]
          .filter(Boolean)
          .join(' '),
        artifacts,
      };
    } finally {
      for (const s of sets) s.dispose();
      if (!ok) model.dispose();
    }
  },
});

/**
 * `test-time-memory`: associative recall beyond a 32-token sliding window (Titans, arXiv 2501.00663; Miras, arXiv
 * 2504.13173). Rows of filler hold key-value pairs at least `window` tokens before the questions
 * (lib/data/memory-recall.ts); a sliding-window attention alone is at chance on them, a test-time memory must carry
 * them. Compared: SWA alone; SWA + Titans memory (MAG) and its ablations (no momentum, no forgetting); SWA + linear
 * attention, + DeltaNet, + Moneta, + Yaad, + Memora (each the same MAG gate over a Miras memory). A corrupted variant
 * adds large outliers to a fraction of the value writes, where Yaad's Huber bias should beat l2 (Titans, DeltaNet).
 *
 * Differences from the papers: no outer training. Tokens map to fixed random unit embeddings (a key table and a value
 * table, seeded), with the key at t taken from the previous token (the short convolution in front of Titans' and
 * Miras' projections does this in a trained model), and the answer is the value id whose embedding is nearest the
 * output. What is compared is therefore the test-time learning rule itself; its hyperparameters (θ, α, η, Huber δ)
 * are picked per model and length on validation rows, the way a trained model would set its gates, and the MAG
 * gate is fixed (σ(20 (max window score - 0.75)): trust the window when the key is in it). The filler is a
 * repeating cycle, so a surprise-driven (l2) memory stops writing it while a dot-product one keeps adding it.
 * Memories are linear (the papers use MLP memories), gates are constants rather than data-dependent, lengths are
 * 256-1024 rather than the papers' 2K-16K+ (S-NIAH), and the papers' RULER numbers are not comparable, so no paper
 * numbers are cited as references: the claims checked are the papers' directions.
 */
import * as tf from '@tensorflow/tfjs';
import { memoryRecallTask } from '../../../data/memory-recall.js';
import { defineExperiment } from '../../../experiments/contract.js';
import { bool, int, list, num, obj, oneOf } from '../../../experiments/schema.js';
import { Rng } from '../../../util/random.js';
import { type MemorySpec, mirasMemory, SPECS } from '../miras/memory.js';
import { magCombine, slidingWindowAttention, titansSpec } from './mag.js';

export const MODELS = [
  'swa',
  'titans',
  'titans-no-momentum',
  'titans-no-forgetting',
  'linear-attention',
  'deltanet',
  'moneta',
  'yaad',
  'memora',
] as const;
export type ModelName = (typeof MODELS)[number];

export interface TestTimeMemoryConfig {
  lengths: number[];
  window: number;
  dim: number;
  pairs: number;
  keys: number;
  values: number;
  filler: number;
  chunk: number;
  validationRows: number;
  testRows: number;
  models: ModelName[];
  lrGrid: number[];
  decayGrid: number[];
  momentumGrid: number[];
  huberGrid: number[];
  /** Moneta's θ grid: its l3 gradient r|r| is about |r| times the l2 one, so it needs larger steps. */
  monetaLrGrid: number[];
  /** Memora's simplex scale c (W = c·softmax): the memory's entries are c/dv on average. */
  memoraScaleGrid: number[];
  outliers: boolean;
  outlierLength: number;
  outlierRepeats: number;
  outlierFraction: number;
  outlierScale: number;
}

const schema = obj<TestTimeMemoryConfig>({
  lengths: list(int({ min: 64, max: 4096 }), { min: 1 }),
  window: int({ min: 1 }),
  dim: int({ min: 4, max: 256 }),
  pairs: int({ min: 1 }),
  keys: int({ min: 1 }),
  values: int({ min: 2 }),
  filler: int({ min: 1 }),
  chunk: int({ min: 1, max: 64 }),
  validationRows: int({ min: 1 }),
  testRows: int({ min: 1 }),
  models: list(oneOf(...MODELS), { min: 1 }),
  lrGrid: list(num({ gt: 0 }), { min: 1 }),
  decayGrid: list(num({ min: 0, max: 1 }), { min: 1 }),
  momentumGrid: list(num({ min: 0, max: 1 }), { min: 1 }),
  huberGrid: list(num({ gt: 0 }), { min: 1 }),
  monetaLrGrid: list(num({ gt: 0 }), { min: 1 }),
  memoraScaleGrid: list(num({ gt: 0 }), { min: 1 }),
  outliers: bool(),
  outlierLength: int({ min: 64, max: 4096 }),
  outlierRepeats: int({ min: 1 }),
  outlierFraction: num({ min: 0, max: 1 }),
  outlierScale: num({ min: 0 }),
});

export interface Hyper {
  lr: number;
  decay: number;
  momentum: number;
  delta: number;
  /** Memora's simplex scale (0 for the other models). */
  scale: number;
}

export interface TestTimeMemoryArtifacts {
  /** Test accuracy per model and length (the recall-vs-length figure). */
  curves: { model: ModelName; length: number; accuracy: number; ci95: number }[];
  /** The tuned Titans memory after the first test row at the longest length: W [dim][dim]. */
  memory: number[][];
  /** Readout of that memory through the row's pair keys and values: score[i][j] = E_K[key_i] W E_V[value_j]ᵀ. */
  readout: number[][];
  dispose(): void;
}

/** The Miras spec and the grid each model is tuned over. */
function modelSpec(m: Exclude<ModelName, 'swa'>, chunk: number, h: Hyper): MemorySpec {
  switch (m) {
    case 'titans':
      return titansSpec({ chunk });
    case 'titans-no-momentum':
      return titansSpec({ chunk, momentum: false });
    case 'titans-no-forgetting':
      return titansSpec({ chunk, forgetting: false });
    case 'linear-attention':
      return { ...SPECS.linearAttention, chunk };
    case 'deltanet':
      return { ...SPECS.deltaNet, chunk };
    case 'moneta':
      return { ...SPECS.moneta, chunk };
    case 'yaad':
      return { ...SPECS.yaad, bias: { kind: 'huber', delta: h.delta }, chunk };
    case 'memora':
      return { ...SPECS.memora, retention: { kind: 'kl', scale: h.scale }, chunk };
  }
}

function grid(m: ModelName, c: TestTimeMemoryConfig): Hyper[] {
  if (m === 'swa' || m === 'linear-attention') return [{ lr: 1, decay: 0, momentum: 0, delta: 0, scale: 0 }];
  const lrs = m === 'moneta' ? c.monetaLrGrid : c.lrGrid;
  const decays = m === 'titans-no-forgetting' || m === 'deltanet' ? [0] : c.decayGrid;
  const moms = m === 'titans' || m === 'titans-no-forgetting' ? c.momentumGrid : [0];
  const deltas = m === 'yaad' ? c.huberGrid : [0];
  const scales = m === 'memora' ? c.memoraScaleGrid : [0];
  const out: Hyper[] = [];
  for (const lr of lrs)
    for (const decay of decays)
      for (const momentum of moms)
        for (const delta of deltas) for (const scale of scales) out.push({ lr, decay, momentum, delta, scale });
  return out;
}

interface Embedded {
  q: tf.Tensor3D;
  k: tf.Tensor3D;
  v: tf.Tensor3D;
  answers: Int32Array;
}

/** Random unit rows [n, d]. */
function unitTable(n: number, d: number, rng: Rng): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) {
      out[i * d + j] = rng.normal();
      s += out[i * d + j] ** 2;
    }
    for (let j = 0; j < d; j++) out[i * d + j] /= Math.sqrt(s);
  }
  return out;
}

export const testTimeMemory = defineExperiment<TestTimeMemoryConfig, TestTimeMemoryArtifacts>({
  name: 'test-time-memory',
  paper:
    'Behrouz, Zhong, Mirrokni 2025, "Titans: Learning to Memorize at Test Time", arXiv, https://arxiv.org/abs/2501.00663; ' +
    'Behrouz, Razaviyayn, Zhong, Mirrokni 2025, "It\'s All Connected: A Journey Through Test-Time Memorization, ' +
    'Attentional Bias, Retention, and Online Optimization" (Miras), arXiv, https://arxiv.org/abs/2504.13173',
  description:
    'Associative recall beyond a 32-token sliding window at lengths 256-1024: SWA alone vs SWA + Titans memory ' +
    '(ablations: no momentum, no forgetting) vs linear attention, DeltaNet, Moneta, Yaad, Memora; and with 10-20% ' +
    'outlier value writes, where Huber (Yaad) should beat l2.',
  schema,
  quick: {
    lengths: [256],
    window: 32,
    dim: 64,
    pairs: 8,
    keys: 64,
    values: 64,
    filler: 4,
    chunk: 16,
    validationRows: 16,
    testRows: 64,
    models: [...MODELS],
    lrGrid: [0.1, 0.4],
    decayGrid: [0],
    momentumGrid: [0.5],
    huberGrid: [0.15],
    monetaLrGrid: [1, 4],
    memoraScaleGrid: [64, 256],
    outliers: true,
    outlierLength: 256,
    outlierRepeats: 3,
    outlierFraction: 0.15,
    outlierScale: 8,
  },
  full: {
    lengths: [256, 512, 1024],
    window: 32,
    dim: 64,
    pairs: 8,
    keys: 64,
    values: 64,
    filler: 4,
    chunk: 16,
    validationRows: 24,
    testRows: 128,
    models: [...MODELS],
    lrGrid: [0.1, 0.25, 0.5],
    decayGrid: [0, 0.005],
    momentumGrid: [0.5, 0.9],
    huberGrid: [0.05, 0.15],
    monetaLrGrid: [1, 4],
    memoraScaleGrid: [64, 256],
    outliers: true,
    outlierLength: 256,
    outlierRepeats: 3,
    outlierFraction: 0.15,
    outlierScale: 8,
  },
  async run(c, ctx) {
    const rng = new Rng(ctx.seed * 7919 + 11);
    const vocab = c.keys + c.values + c.filler;
    const eK = unitTable(vocab, c.dim, rng);
    const eV = unitTable(vocab, c.dim, rng);
    const valueTable = tf.tensor2d(eV.subarray(c.keys * c.dim, (c.keys + c.values) * c.dim), [c.values, c.dim]);
    const noiseRng = rng.fork('outliers');
    const swaScale = 16; // sharp window softmax over unit vectors: logits 16·cos·√d / √d

    /** Embeds a batch: q_t = E_K[x_t], k_t = E_K[x_{t-1}], v_t = E_V[x_t] (+ outlier where flagged). */
    const embed = (len: number, rows: number, split: 'validation' | 'test', outlier: boolean): Embedded => {
      const task = memoryRecallTask(
        {
          seqLen: len,
          pairs: c.pairs,
          keys: c.keys,
          values: c.values,
          filler: c.filler,
          window: c.window,
          repeats: outlier ? c.outlierRepeats : 1,
          outlierFraction: outlier ? c.outlierFraction : 0,
        },
        rows,
        ctx.seed,
        split,
      );
      const d = c.dim;
      const q = new Float32Array(rows * len * d);
      const k = new Float32Array(rows * len * d);
      const v = new Float32Array(rows * len * d);
      for (let i = 0; i < rows * len; i++) {
        const x = task.tokens[i];
        q.set(eK.subarray(x * d, (x + 1) * d), i * d);
        if (i % len > 0) k.set(eK.subarray(task.tokens[i - 1] * d, task.tokens[i - 1] * d + d), i * d);
        v.set(eV.subarray(x * d, (x + 1) * d), i * d);
        if (task.outlier[i])
          for (let j = 0; j < d; j++) v[i * d + j] += (c.outlierScale * noiseRng.normal()) / Math.sqrt(d);
      }
      const answers = task.answers.map((a) => a - c.keys);
      return {
        q: tf.tensor3d(q, [rows, len, d]),
        k: tf.tensor3d(k, [rows, len, d]),
        v: tf.tensor3d(v, [rows, len, d]),
        answers,
      };
    };

    /** Accuracy of one model with one setting on an embedded batch; optionally the first row's final memory. */
    const evaluate = (m: ModelName, h: Hyper, e: Embedded, keepMemory = false) => {
      const [rows, len, d] = e.q.shape;
      const P = c.pairs;
      const tail = Math.min(len, P + c.window);
      let memory: tf.Tensor2D | null = null;
      const pred = tf.tidy(() => {
        const sl = (x: tf.Tensor3D, from: number, n: number) => x.slice([0, from, 0], [rows, n, d]) as tf.Tensor3D;
        const qT = sl(e.q, len - tail, tail);
        const kT = sl(e.k, len - tail, tail);
        const vT = sl(e.v, len - tail, tail);
        const ySwa = sl(slidingWindowAttention(tf.mul(qT, swaScale), kT, vT, c.window), tail - P, P);
        let out: tf.Tensor = ySwa;
        if (m !== 'swa') {
          const spec = modelSpec(m, c.chunk, h);
          const mem = mirasMemory(e.q, e.k, e.v, { lr: h.lr, decay: h.decay, momentum: h.momentum }, spec);
          if (keepMemory) memory = tf.keep(mem.state.w.slice([0, 0, 0], [1, d, d]).reshape([d, d]) as tf.Tensor2D);
          // Gate: trust the window when the asked key is in it (its best score is near 1 for unit embeddings).
          const scores = tf.matMul(sl(qT, tail - P, P), kT, false, true); // [rows, P, tail]
          const mask = new Float32Array(P * tail);
          for (let i = 0; i < P; i++)
            for (let j = 0; j < tail; j++) {
              const qi = tail - P + i;
              mask[i * tail + j] = j <= qi && j > qi - c.window ? 0 : -1e9;
            }
          const best = tf.max(tf.add(scores, tf.tensor2d(mask, [P, tail])), -1);
          const g = tf.mul(tf.sub(best, 0.75), 20);
          out = magCombine(ySwa, sl(mem.y, len - P, P), g);
        }
        return tf.argMax(tf.matMul(out.reshape([rows * P, d]), valueTable, false, true), -1);
      });
      const p = pred.dataSync();
      pred.dispose();
      let hit = 0;
      for (let i = 0; i < p.length; i++) if (p[i] === e.answers[i]) hit++;
      return { acc: hit / p.length, n: p.length, memory: memory as tf.Tensor2D | null };
    };

    const ci = (a: number, n: number) => 1.96 * Math.sqrt((a * (1 - a)) / n);
    const fmt = (h: Hyper, m: ModelName) =>
      m === 'swa' || m === 'linear-attention'
        ? '-'
        : `θ=${h.lr} α=${h.decay}${m === 'titans' || m === 'titans-no-forgetting' ? ` η=${h.momentum}` : ''}${m === 'yaad' ? ` δ=${h.delta}` : ''}${m === 'memora' ? ` c=${h.scale}` : ''}`;

    /** Tunes every model on validation, evaluates the pick on test; returns rows of the table. */
    const sweep = (len: number, models: ModelName[], outlier: boolean) => {
      const val = embed(len, c.validationRows, 'validation', outlier);
      const test = embed(len, c.testRows, 'test', outlier);
      const rows: { model: ModelName; acc: number; ci: number; val: number; h: Hyper; memory: tf.Tensor2D | null }[] =
        [];
      for (const m of models) {
        let best = { h: grid(m, c)[0], acc: -1 };
        for (const h of grid(m, c)) {
          const r = evaluate(m, h, val);
          if (r.acc > best.acc) best = { h, acc: r.acc };
        }
        const r = evaluate(m, best.h, test, m === 'titans');
        rows.push({ model: m, acc: r.acc, ci: ci(r.acc, r.n), val: best.acc, h: best.h, memory: r.memory });
        ctx.log(
          `T=${len}${outlier ? ' outliers' : ''} ${m}: validation ${best.acc.toFixed(3)}, test ${r.acc.toFixed(3)}`,
        );
      }
      tf.dispose([val.q, val.k, val.v, test.q, test.k, test.v]);
      return { rows, test };
    };

    const metrics: Record<string, number> = {};
    const recallRows: Record<string, string | number>[] = [];
    const curves: TestTimeMemoryArtifacts['curves'] = [];
    let memory: number[][] = [];
    let readout: number[][] = [];
    const longest = Math.max(...c.lengths);
    for (const len of c.lengths) {
      const { rows } = sweep(len, c.models, false);
      for (const r of rows) {
        metrics[`test_accuracy_${r.model}_T${len}`] = r.acc;
        metrics[`test_accuracy_ci95_${r.model}_T${len}`] = r.ci;
        metrics[`validation_accuracy_${r.model}_T${len}`] = r.val;
        curves.push({ model: r.model, length: len, accuracy: r.acc, ci95: r.ci });
        recallRows.push({
          model: r.model === 'swa' ? 'SWA alone' : `SWA + ${r.model}`,
          length: len,
          test_accuracy: Number(r.acc.toFixed(4)),
          ci95: Number(r.ci.toFixed(4)),
          validation_accuracy: Number(r.val.toFixed(4)),
          chosen: fmt(r.h, r.model),
        });
        if (r.memory) {
          if (len === longest) {
            memory = r.memory.arraySync();
            // Readout through the first test row's pairs: rebuild that row's keys and values.
            const task = memoryRecallTask(
              { seqLen: len, pairs: c.pairs, keys: c.keys, values: c.values, filler: c.filler, window: c.window },
              1,
              ctx.seed,
              'test',
            );
            const keysAsked = Array.from(task.tokens.subarray(len - c.pairs, len));
            const d = c.dim;
            const w = memory;
            readout = keysAsked.map((key) =>
              Array.from(task.answers, (val) => {
                let s = 0;
                for (let i = 0; i < d; i++)
                  for (let j = 0; j < d; j++) s += eK[key * d + i] * w[i][j] * eV[val * d + j];
                return s;
              }),
            );
          }
          r.memory.dispose();
        }
      }
    }

    const outlierRows: Record<string, string | number>[] = [];
    if (c.outliers) {
      const models = c.models.filter((m) => ['titans', 'deltanet', 'yaad', 'moneta', 'memora'].includes(m));
      const { rows } = sweep(c.outlierLength, models, true);
      for (const r of rows) {
        r.memory?.dispose();
        metrics[`test_accuracy_outliers_${r.model}`] = r.acc;
        metrics[`test_accuracy_ci95_outliers_${r.model}`] = r.ci;
        outlierRows.push({
          model: `SWA + ${r.model}`,
          bias: r.model === 'yaad' ? 'Huber' : r.model === 'moneta' ? 'l3' : 'l2',
          test_accuracy: Number(r.acc.toFixed(4)),
          ci95: Number(r.ci.toFixed(4)),
          validation_accuracy: Number(r.val.toFixed(4)),
          chosen: fmt(r.h, r.model),
        });
      }
    }
    valueTable.dispose();

    const at = (m: ModelName, len: number) => metrics[`test_accuracy_${m}_T${len}`];
    const L = longest;
    const parts = [
      `At T=${L}: SWA alone ${at('swa', L)?.toFixed(3) ?? 'n/a'}, SWA + Titans ${at('titans', L)?.toFixed(3) ?? 'n/a'}`,
    ];
    parts.push(
      `linear attention ${at('linear-attention', L)?.toFixed(3) ?? 'n/a'}, DeltaNet ${at('deltanet', L)?.toFixed(3) ?? 'n/a'}`,
    );
    if (c.outliers && metrics.test_accuracy_outliers_yaad !== undefined)
      parts.push(
        `with ${Math.round(c.outlierFraction * 100)}% outlier writes Yaad ${metrics.test_accuracy_outliers_yaad.toFixed(3)} vs Titans ${metrics.test_accuracy_outliers_titans?.toFixed(3) ?? 'n/a'} and DeltaNet ${metrics.test_accuracy_outliers_deltanet?.toFixed(3) ?? 'n/a'}`,
      );
    return {
      metrics,
      tables: { recall: recallRows, outliers: outlierRows },
      summary: `${parts.join('; ')} (chance ${(1 / c.values).toFixed(3)}; test rows ${c.testRows} x ${c.pairs} questions).`,
      artifacts: { curves, memory, readout, dispose() {} },
    };
  },
});

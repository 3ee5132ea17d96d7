/**
 * SeerAttention: a learned gate predicts which key blocks matter, trained by self-distillation from the model's own
 * attention.
 *
 * Paper: Gao, Zeng, Du, Cao, So, Cao, Yang & Yang, 2024, "SeerAttention: Learning Intrinsic Sparse Attention in Your
 * LLMs", https://arxiv.org/abs/2410.13276
 *
 * AttnGate, per head: queries are average-pooled over query blocks of bq positions; keys are pooled over key blocks of
 * B positions by max, min and average, concatenated; each goes through a linear map and the block logits give a
 * distribution over key blocks:
 *
 *   q̃ = avgpool(Q) W_q,   k̃ = [maxpool(K); minpool(K); avgpool(K)] W_k,   G = softmax_blocks(q̃ k̃ᵀ / √d_g)
 *
 * (causal: a query block sees key blocks up to the one holding its last position). The gate is trained with the base
 * model frozen to match the block-level ground truth: the true attention map max-pooled over bq x B tiles and
 * row-normalised,   L = KL(GT ‖ G) = Σ GT (log GT − log G).
 * At inference each query block always keeps the key blocks holding its own positions, plus the `topk` earlier blocks
 * with the largest gate logits (or those whose gate probability, renormalised over earlier blocks, reaches
 * `threshold`), and attends exactly to them. The paper pools queries over bq = B = 64; the default here is bq = 1 (a
 * gate query per token, as SeerAttention-R does for decoding): then the choice reads only the query itself and complete
 * earlier key blocks, so a future token never changes an earlier output.
 *
 * Shape legend: b batch, h query heads, g kv heads, n queries = m keys, d head dim, e value dim, B block, nb blocks,
 * d_g gate dim.
 *   q [b, h, n, d], k [b, g, n, d], v [b, g, n, e]; gate wq [h, d, d_g], wk [h, 3d, d_g] -> gate [b, h, n/bq, n/B],
 *   output [b, h, n, e]
 * With every block kept the result equals dense attention.
 */
import * as tf from '@tensorflow/tfjs';
import { checkQkv, MASKED_SCORE, repeatKv } from '../../../attention/dense.js';
import { matmul } from '../../../backend/ops.js';
import { ParamFactory } from '../../../layers/params.js';
import { train } from '../../../train/loop.js';
import { fmt, ShapeError } from '../../../util/shapes.js';
import { blockCovers, densePairs, type SparseResult } from '../cost.js';
import { constant, readTidy } from '../gather.js';
import { ropeReasons, type SparseMethod, selfAttentionReasons } from '../method.js';
import { f64, naiveAttendBlocks, qkvRows } from '../naive.js';
import { checkBlock, checkScale, rejectRope, type SparseBaseOptions } from '../options.js';
import { attendSelected, blockSelection, topIndices } from '../selection.js';

export interface SeerGate {
  wq: tf.Tensor; // [h, d, d_g]
  wk: tf.Tensor; // [h, 3d, d_g]
}

export interface SeerOptions extends SparseBaseOptions {
  /** Keys per block (default 16). */
  blockSize?: number;
  /** Queries pooled into one gate query (default 1). */
  queryBlock?: number;
  /** Earlier key blocks kept per query block, besides its own (default 4). */
  topk?: number;
  /** Instead of topk: keep blocks whose gate probability is at least this. */
  threshold?: number;
}

/** A gate with random weights [h, d, d_g] and [h, 3d, d_g], drawn with seeds `seed` and `seed + 1` (counter stream). */
export function initSeerGate(
  heads: number,
  dim: number,
  gateDim: number,
  seed = 0,
): { wq: tf.Variable; wk: tf.Variable } {
  const f = new ParamFactory({ scope: 'seer_gate', seed: { kind: 'counter', start: seed } });
  return {
    wq: f.variable('wq', [heads, dim, gateDim], { normal: 1 / Math.sqrt(dim) }),
    wk: f.variable('wk', [heads, 3 * dim, gateDim], { normal: 1 / Math.sqrt(3 * dim) }),
  };
}

function checkGate(fn: string, gate: SeerGate, heads: number, dim: number): number {
  const { wq, wk } = gate;
  if (wq.rank !== 3 || wq.shape[0] !== heads || wq.shape[1] !== dim)
    throw new ShapeError(
      `${fn}: gate.wq must have shape [heads=${heads}, dim=${dim}, gateDim], but has ${fmt(wq.shape)}`,
    );
  if (wk.rank !== 3 || wk.shape[0] !== heads || wk.shape[1] !== 3 * dim || wk.shape[2] !== wq.shape[2]) {
    throw new ShapeError(
      `${fn}: gate.wk must have shape [heads=${heads}, 3*dim=${3 * dim}, gateDim=${wq.shape[2]}], but has ${fmt(wk.shape)}`,
    );
  }
  return wq.shape[2] as number;
}

interface Geometry {
  B: number;
  bq: number;
  nqb: number;
  nkb: number;
}

/** Last key block a query block sees, causally. */
const lastBlock = (g: Geometry, qb: number) => Math.floor(((qb + 1) * g.bq - 1) / g.B);
/** First key block holding one of the query block's positions. */
const ownBlock = (g: Geometry, qb: number) => Math.floor((qb * g.bq) / g.B);

function blockCausalBias(g: Geometry): tf.Tensor2D {
  return tf.tensor2d(
    Float32Array.from({ length: g.nqb * g.nkb }, (_, i) =>
      i % g.nkb <= lastBlock(g, Math.floor(i / g.nkb)) ? 0 : MASKED_SCORE,
    ),
    [g.nqb, g.nkb],
  );
}

function checkSelf(
  fn: string,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  o: { blockSize?: number; queryBlock?: number },
) {
  const s = checkQkv(fn, q, k, v);
  if (s.queries !== s.keys)
    throw new ShapeError(
      `${fn}: q has shape ${fmt(q.shape)} and k has ${fmt(k.shape)}; SeerAttention gates self-attention (queries = keys)`,
    );
  checkBlock(fn, 'blockSize', o.blockSize);
  checkBlock(fn, 'queryBlock', o.queryBlock);
  const B = o.blockSize ?? 16;
  const bq = o.queryBlock ?? 1;
  if (s.queries % B !== 0)
    throw new ShapeError(`${fn}: ${s.queries} positions are not a multiple of options.blockSize (${B})`);
  if (s.queries % bq !== 0)
    throw new ShapeError(`${fn}: ${s.queries} positions are not a multiple of options.queryBlock (${bq})`);
  return { s, g: { B, bq, nqb: s.queries / bq, nkb: s.queries / B } };
}

/** Gate log-probabilities [b, h, nb, nb] over key blocks (causal); differentiable in the gate weights. */
export type GateGeometry = { blockSize?: number; queryBlock?: number; causal?: boolean };

export function seerGateLogProbs(q: tf.Tensor, k: tf.Tensor, gate: SeerGate, options: GateGeometry = {}): tf.Tensor4D {
  const fn = 'seerGateLogProbs';
  const { s, g } = checkSelf(fn, q, k, k, options);
  const dg = checkGate(fn, gate, s.heads, s.dim);
  return tf.tidy(() => {
    const H = s.heads;
    const D = s.dim;
    const kk = repeatKv(k as tf.Tensor4D, H / s.kvHeads).reshape([s.batch * H * g.nkb, g.B, D]);
    const qp = q
      .reshape([s.batch * H * g.nqb, g.bq, D])
      .mean(1)
      .reshape([s.batch, H, g.nqb, D]);
    const kp = tf.concat([kk.max(1), kk.min(1), kk.mean(1)], 1).reshape([s.batch, H, g.nkb, 3 * D]);
    const perHead = (x: tf.Tensor, w: tf.Tensor, rows: number, width: number) =>
      matmul(x.transpose([1, 0, 2, 3]).reshape([H, s.batch * rows, width]), w)
        .reshape([H, s.batch, rows, dg])
        .transpose([1, 0, 2, 3]);
    const qt = perHead(qp, gate.wq, g.nqb, D);
    const kt = perHead(kp, gate.wk, g.nkb, 3 * D);
    let logits = matmul(qt, kt, false, true).div(Math.sqrt(dg)); // [b, h, nqb, nkb]
    if (options.causal ?? true) logits = logits.add(blockCausalBias(g));
    return tf.logSoftmax(logits) as tf.Tensor4D;
  });
}

/** Ground truth for the gate: the dense attention map max-pooled over bq x B tiles, rows normalised. [b, h, nqb, nkb] */
export function seerGroundTruth(
  q: tf.Tensor,
  k: tf.Tensor,
  options: GateGeometry & { scale?: number } = {},
): tf.Tensor4D {
  const fn = 'seerGroundTruth';
  const { s, g } = checkSelf(fn, q, k, k, options);
  const scale = checkScale(fn, options.scale, s.dim);
  const causal = options.causal ?? true;
  const n = s.queries;
  // Query rows in pieces of whole query blocks, so the n x n map is never held at once.
  const rows = g.bq * Math.max(1, Math.floor((1 << 22) / (n * g.bq * s.batch * s.heads)));
  return tf.tidy(() => {
    const kk = repeatKv(k as tf.Tensor4D, s.heads / s.kvHeads);
    const pieces: tf.Tensor[] = [];
    for (let r0 = 0; r0 < n; r0 += rows) {
      const r = Math.min(rows, n - r0);
      // One scope per piece, so only the pooled rows outlive it.
      pieces.push(
        tf.tidy(() => {
          let sc = matmul(q.slice([0, 0, r0, 0], [-1, -1, r, -1]), kk, false, true).mul(scale); // [b, h, r, n]
          if (causal) {
            const bias = new Float32Array(r * n);
            for (let i = 0; i < r; i++) bias.fill(MASKED_SCORE, i * n + r0 + i + 1, (i + 1) * n);
            sc = sc.add(tf.tensor2d(bias, [r, n]));
          }
          const a = tf.softmax(sc).reshape([s.batch * s.heads * (r / g.bq), g.bq, g.nkb, g.B]);
          return a.max([1, 3]).reshape([s.batch, s.heads, r / g.bq, g.nkb]);
        }),
      );
    }
    const pooled = pieces.length === 1 ? pieces[0] : tf.concat(pieces, 2);
    return pooled.div(pooled.sum(-1, true)) as tf.Tensor4D;
  });
}

/** Distillation loss KL(GT ‖ gate), mean over batch, heads and query blocks. The ground truth is a constant. */
export function seerDistillLoss(q: tf.Tensor, k: tf.Tensor, gate: SeerGate, options: GateGeometry = {}): tf.Scalar {
  return tf.tidy(() => {
    const gt = constant(seerGroundTruth(q, k, options));
    const logG = seerGateLogProbs(q, k, gate, options);
    const logGt = gt.add(1e-12).log();
    return gt.mul(logGt.sub(logG)).sum(-1).mean() as tf.Scalar;
  });
}

/**
 * Kept key blocks per (b, h, query block) from block scores [b*h*nqb*nkb] (logits or probabilities): the blocks holding
 * the query block's positions, plus the `topk` best earlier blocks (or those at or above `threshold` once the scores,
 * as probabilities, are renormalised over the earlier blocks).
 */
export function selectBlocks(
  probs: ArrayLike<number>,
  bh: number,
  g: Geometry,
  causal: boolean,
  o: { topk?: number; threshold?: number },
): number[][] {
  const out: number[][] = [];
  for (let x = 0; x < bh; x++) {
    for (let qb = 0; qb < g.nqb; qb++) {
      const row = Array.from({ length: g.nkb }, (_, j) => probs[(x * g.nqb + qb) * g.nkb + j]);
      const first = causal ? ownBlock(g, qb) : g.nkb;
      const own = causal ? Array.from({ length: lastBlock(g, qb) - first + 1 }, (_, i) => first + i) : [];
      const cands = Array.from({ length: first }, (_, j) => j);
      let chosen: number[];
      if (o.threshold !== undefined) {
        const z = cands.reduce((a, j) => a + row[j], 0);
        chosen = cands.filter((j) => row[j] / z >= o.threshold!);
      } else {
        chosen = topIndices(row, o.topk ?? 4, cands);
      }
      out.push([...new Set([...chosen, ...own])].sort((a, b) => a - b));
    }
  }
  return out;
}

/** Block-sparse attention over the gate's chosen blocks; see the module header. */
export function seerAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  gate: SeerGate,
  options: SeerOptions = {},
): SparseResult & { blocks: number[][] } {
  const fn = 'seerAttention';
  rejectRope(fn, options);
  const { s, g } = checkSelf(fn, q, k, v, options);
  checkBlock(fn, 'topk', options.topk);
  const dg = checkGate(fn, gate, s.heads, s.dim);
  const causal = options.causal ?? true;
  const probs = readTidy(() => seerGateLogProbs(q, k, gate, { ...options, causal }).exp());
  return attendBlocks(
    fn,
    q,
    k,
    v,
    selectBlocks(probs, s.batch * s.heads, g, causal, options),
    g,
    causal,
    checkScale(fn, options.scale, s.dim),
    s.batch * s.heads * g.nqb * g.nkb * dg,
  );
}

/** Oracle block choice: the top-k blocks of the true pooled attention (what the gate is trained to predict). */
export function seerOracleAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: SeerOptions = {},
): SparseResult & { blocks: number[][] } {
  const fn = 'seerOracleAttention';
  rejectRope(fn, options);
  const { s, g } = checkSelf(fn, q, k, v, options);
  const causal = options.causal ?? true;
  const gt = readTidy(() => seerGroundTruth(q, k, { ...options, causal }));
  const r = attendBlocks(
    fn,
    q,
    k,
    v,
    selectBlocks(gt, s.batch * s.heads, g, causal, options),
    g,
    causal,
    checkScale(fn, options.scale, s.dim),
    0,
  );
  r.stats.method = 'seer-oracle';
  r.stats.selectionPairs = densePairs(s, causal);
  return r;
}

function attendBlocks(
  fn: string,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  blocks: number[][],
  g: Geometry,
  causal: boolean,
  scale: number,
  selectionPairs: number,
) {
  const s = checkQkv(fn, q, k, v);
  const { output, pairs } = attendSelected(fn, q, k, v, blockSelection(blocks, g.B, s.keys, g.bq), { scale, causal });
  let perHead = 0;
  for (let qb = 0; qb < g.nqb; qb++) perHead += causal ? lastBlock(g, qb) + 1 : g.nkb;
  const blocksTotal = s.batch * s.heads * perHead;
  return {
    output,
    blocks,
    covers: blockCovers(blocks, s.heads, s.queries, g.bq, g.B),
    stats: {
      method: 'seer',
      pairs,
      densePairs: densePairs(s, causal),
      selectionPairs,
      blocksKept: blocks.reduce((a, b) => a + b.length, 0),
      blocksTotal,
    },
  };
}

/** Float64 loop reference of `seerAttention`: gate probabilities by loops, the same block choice, softmax per query. */
export function seerAttentionNaive(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  gate: SeerGate,
  options: SeerOptions = {},
): { output: Float64Array; probs: Float64Array; blocks: number[][] } {
  const fn = 'seerAttentionNaive';
  rejectRope(fn, options);
  const { s, g } = checkSelf(fn, q, k, v, options);
  const dg = checkGate(fn, gate, s.heads, s.dim);
  const causal = options.causal ?? true;
  const scale = checkScale(fn, options.scale, s.dim);
  const D = s.dim;
  const groups = s.heads / s.kvHeads;
  const { q: qr, k: kr, v: vr } = qkvRows(q, k, v);
  const wq = f64(gate.wq);
  const wk = f64(gate.wk);
  const project = (x: Float64Array, w: Float64Array, h: number) => {
    const out = new Float64Array(dg);
    for (let o = 0; o < dg; o++) for (let d = 0; d < x.length; d++) out[o] += x[d] * w[(h * x.length + d) * dg + o];
    return out;
  };
  const probs = new Float64Array(s.batch * s.heads * g.nqb * g.nkb);
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      const kvh = Math.floor(h / groups);
      const qt = Array.from({ length: g.nqb }, (_, qb) => {
        const qp = new Float64Array(D);
        for (let t = qb * g.bq; t < (qb + 1) * g.bq; t++) qr(b, h, t).forEach((x, d) => (qp[d] += x / g.bq));
        return project(qp, wq, h);
      });
      const kt = Array.from({ length: g.nkb }, (_, kb) => {
        const kp = new Float64Array(3 * D);
        for (let d = 0; d < D; d++) {
          kp[d] = -Infinity;
          kp[D + d] = Infinity;
        }
        for (let t = kb * g.B; t < (kb + 1) * g.B; t++) {
          kr(b, kvh, t).forEach((x, d) => {
            kp[d] = Math.max(kp[d], x);
            kp[D + d] = Math.min(kp[D + d], x);
            kp[2 * D + d] += x / g.B;
          });
        }
        return project(kp, wk, h);
      });
      for (let i = 0; i < g.nqb; i++) {
        const logits = Array.from({ length: g.nkb }, (_, j) =>
          !causal || j <= lastBlock(g, i)
            ? qt[i].reduce((x, ai, o) => x + ai * kt[j][o], 0) / Math.sqrt(dg)
            : -Infinity,
        );
        const mx = Math.max(...logits);
        const z = logits.reduce((x, l) => x + Math.exp(l - mx), 0);
        logits.forEach((l, j) => (probs[((b * s.heads + h) * g.nqb + i) * g.nkb + j] = Math.exp(l - mx) / z));
      }
    }
  }
  const blocks = selectBlocks(probs, s.batch * s.heads, g, causal, options);
  const output = naiveAttendBlocks(
    s,
    { q: qr, k: kr, v: vr },
    (b, h, i) => blocks[(b * s.heads + h) * g.nqb + Math.floor(i / g.bq)],
    g.B,
    scale,
    causal,
  );
  return { output, probs, blocks };
}

/**
 * Float64 loop reference of `seerOracleAttention`: the dense causal weights per query, max-pooled over bq x B tiles
 * and row-normalised (the distillation target), the same block choice, softmax per query.
 */
export function seerOracleAttentionNaive(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: SeerOptions = {},
): { output: Float64Array; blocks: number[][] } {
  const fn = 'seerOracleAttentionNaive';
  rejectRope(fn, options);
  const { s, g } = checkSelf(fn, q, k, v, options);
  const causal = options.causal ?? true;
  const scale = checkScale(fn, options.scale, s.dim);
  const groups = s.heads / s.kvHeads;
  const rows = qkvRows(q, k, v);
  const gt = new Float64Array(s.batch * s.heads * g.nqb * g.nkb);
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      for (let i = 0; i < s.queries; i++) {
        const keys = Array.from({ length: causal ? i + 1 : s.keys }, (_, j) => j);
        const sc = keys.map(
          (j) => rows.k(b, Math.floor(h / groups), j).reduce((a, x, d) => a + x * rows.q(b, h, i)[d], 0) * scale,
        );
        const mx = Math.max(...sc);
        const z = sc.reduce((a, x) => a + Math.exp(x - mx), 0);
        const row = ((b * s.heads + h) * g.nqb + Math.floor(i / g.bq)) * g.nkb;
        sc.forEach(
          (x, j) => (gt[row + Math.floor(j / g.B)] = Math.max(gt[row + Math.floor(j / g.B)], Math.exp(x - mx) / z)),
        );
      }
    }
  }
  for (let r = 0; r < gt.length; r += g.nkb) {
    const z = gt.subarray(r, r + g.nkb).reduce((a, x) => a + x, 0);
    for (let j = 0; j < g.nkb; j++) gt[r + j] /= z;
  }
  const blocks = selectBlocks(gt, s.batch * s.heads, g, causal, options);
  const output = naiveAttendBlocks(
    s,
    rows,
    (b, h, i) => blocks[(b * s.heads + h) * g.nqb + Math.floor(i / g.bq)],
    g.B,
    scale,
    causal,
  );
  return { output, blocks };
}

/** Distil a gate (in place) from the dense attention of q, k: `steps` AdamW steps on `seerDistillLoss`. */
export async function trainSeerGate(
  gate: { wq: tf.Variable; wk: tf.Variable },
  q: tf.Tensor,
  k: tf.Tensor,
  geometry: GateGeometry,
  training: { steps: number; lr: number; seed: number },
): Promise<void> {
  const run = await train({
    variables: [gate.wq, gate.wk],
    steps: training.steps,
    optimizer: { type: 'adamw', lr: training.lr, weightDecay: 0 },
    seed: training.seed,
    progress: false,
    dataframe: false,
    loss: () => seerDistillLoss(q, k, gate, geometry),
  });
  if (run.stopped) throw new Error(`trainSeerGate: training stopped: ${run.stopped.message}`);
}

/** Seer's options as a method: the block choice plus the gate's width (`gateDim`, default 16) for a new gate. */
export type SeerMethodOptions = SeerOptions & { gateDim?: number };

/** Why Seer (and its oracle) cannot take these inputs: it gates self-attention over whole blocks. */
function seerReasons(q: tf.Tensor, k: tf.Tensor, o: SeerOptions): string[] {
  const n = q.shape[2] as number;
  const whole = (arg: 'blockSize' | 'queryBlock', size: number) =>
    n % size === 0 ? [] : [`${n} positions are not a multiple of options.${arg} (${size})`];
  return [
    ...selfAttentionReasons(q, k, 'SeerAttention'),
    ...whole('blockSize', o.blockSize ?? 16),
    ...whole('queryBlock', o.queryBlock ?? 1),
    ...ropeReasons(o, q.shape[3] as number, false),
  ];
}

const seerPaper = {
  citation: 'Gao et al. 2024, SeerAttention: Learning Intrinsic Sparse Attention in Your LLMs',
  url: 'https://arxiv.org/abs/2410.13276',
};
/** Seer's budget of about `keys` keys: the own block plus the gate's best earlier ones, in blocks of 16. */
const seerKeys = (_n: number, keys: number): SeerMethodOptions => ({
  blockSize: 16,
  queryBlock: 16,
  topk: Math.max(1, Math.round(keys / 16) - 2) + 1,
});
const seerCase = (label: string, o: SeerMethodOptions) => ({
  label,
  shape: [1, 2, 32, 8] as [number, number, number, number],
  kvHeads: 1,
  exact: { blockSize: 4, topk: 64, ...o },
  sparse: { blockSize: 4, topk: 2, ...o },
  reach: o.queryBlock,
});

/** SeerAttention as a `SparseMethod` (see ../method.ts); its state is the gate, trained on a sample and reused. */
export const seerMethod: SparseMethod<SeerMethodOptions, { wq: tf.Variable; wk: tf.Variable }> = {
  name: 'seer',
  kind: 'paper',
  paper: seerPaper,
  attend: (q, k, v, o, gate) => seerAttention(q, k, v, gate, o),
  reference: (q, k, v, o, gate) => seerAttentionNaive(q, k, v, gate, o).output,
  supports: (q, k, _v, o) => seerReasons(q, k, o),
  state: {
    fitTo: 'sample',
    async create(o, ctx) {
      const gate = initSeerGate(ctx.heads, ctx.dim, ctx.training?.width ?? o.gateDim ?? 16, ctx.seed);
      if (ctx.data && ctx.training)
        await trainSeerGate(
          gate,
          ctx.data.q,
          ctx.data.k,
          { blockSize: o.blockSize, queryBlock: o.queryBlock, causal: o.causal },
          { ...ctx.training, seed: ctx.seed },
        );
      return gate;
    },
    dispose: (gate) => tf.dispose([gate.wq, gate.wk]),
  },
  budgets: {
    timing: () => ({ blockSize: 64, queryBlock: 64, topk: 8, gateDim: 32 }),
    keys: seerKeys,
  },
  cases: [seerCase('per query', { gateDim: 4 }), seerCase('query blocks', { gateDim: 4, queryBlock: 4 })],
};

/** The oracle block choice (the gate's training target) as a `SparseMethod`: an upper bound for the learned gate. */
export const seerOracleMethod: SparseMethod<SeerOptions> = {
  name: 'seer-oracle',
  kind: 'oracle',
  paper: seerPaper,
  attend: (q, k, v, o) => seerOracleAttention(q, k, v, o),
  reference: (q, k, v, o) => seerOracleAttentionNaive(q, k, v, o).output,
  supports: (q, k, _v, o) => seerReasons(q, k, o),
  budgets: { keys: seerKeys },
  cases: [seerCase('per query', {})],
};

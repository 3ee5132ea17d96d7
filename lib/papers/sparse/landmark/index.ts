/**
 * Landmark attention: a landmark token per block gates access to the block, so blocks can be retrieved by content.
 *
 * Paper: Mohtashami & Jaggi, NeurIPS 2023, "Landmark Attention: Random-Access Infinite Context Length for
 * Transformers", https://arxiv.org/abs/2305.16300
 *
 * The sequence is cut into blocks of L positions whose last position holds a landmark token (see `insertLandmarks`).
 * Grouped softmax: for query i in block c(i), a regular token j of an earlier block β gets weight
 *
 *   w_ij = softmax_{j' ∈ β, regular}(s_ij') · softmax_{u ∈ U_i}(s_iu)|_{u = landmark(β)},
 *   U_i = { landmarks of earlier blocks } ∪ { positions of block c(i) that are <= i },
 *
 * and a token of the query's own block gets its weight in the outer softmax over U_i directly; landmark values are
 * never read. Training uses every earlier block (`topk` unset): O(n²). At inference each query keeps only the `topk`
 * earlier blocks with the largest landmark score q · k_landmark (max over the queries of a query block), which gives
 * random access to context far beyond the training length at O(n/L + topk·L) scores per query.
 *
 * Positions (`rope`): trained with RoPE at absolute positions, a model asked at 4-16x its training length would meet
 * query-key distances it never saw. The paper's answer (§3.2.1, "stingy" position mapping; inference in chunks with a
 * block cache) places the retrieved blocks just before the current one. With `rope` set, q and k come WITHOUT rotary
 * embedding and are rotated here: a query block's retrieved blocks take consecutive positions in their original order,
 * its own block follows, so retrieved block r's token t sits at r·L + t, own-block token t at R_i·L + t (R_i = blocks
 * retrieved), and the query at R_i·L + its offset in the block; every distance stays below (topk + 1)·L. Retrieval
 * scores are taken as if each candidate block were the one just before the query's (distance offset + 1 to its
 * landmark). Without retrieval (training) `rope` rotates at absolute positions: the training model and the compact
 * inference agree whenever every earlier block is retrieved and there are at most topk of them.
 *
 * Shape legend: b batch, h query heads, g kv heads, n queries, m keys (queries end-aligned), d head dim, e value dim,
 * L block length including its landmark.
 *   q [b, h, n, d], k [b, g, m, d], v [b, g, m, e] -> output [b, h, n, e]
 * With topk covering every earlier block the result equals the full grouped softmax.
 */
import * as tf from '@tensorflow/tfjs';
import { checkQkv, MASKED_SCORE, repeatKv } from '../../../attention/dense.js';
import { matmul } from '../../../backend/ops.js';
import { rope as applyRopeAt, positionRange } from '../../../positional/rope.js';
import { ShapeError } from '../../../util/shapes.js';
import { ropeRow, rotateRows } from '../compact-positions.js';
import type { SparseResult } from '../cost.js';
import { gatherRows, readTidy } from '../gather.js';
import { ropeReasons, type SparseMethod } from '../method.js';
import { qkvRows } from '../naive.js';
import { checkBlock, checkRope, checkScale, type SparseBaseOptions } from '../options.js';
import { topIndices } from '../selection.js';

export interface LandmarkOptions extends Omit<SparseBaseOptions, 'causal'> {
  /** Positions per block, the landmark being the last (default 16). */
  blockSize: number;
  /** Earlier blocks each query block retrieves; unset = all (training). */
  topk?: number;
  /**
   * With `topk`: the blocks just before the query's block that are always kept, on top of the `topk` retrieved ones
   * (default 0). The paper's inference keeps a local chunk (~250 tokens) at exact positions and retrieves only beyond
   * it; with compact positions these blocks keep their exact distances to the query.
   */
  localBlocks?: number;
  /**
   * Queries sharing one retrieval (must divide blockSize; default 1: per token as in the paper). Without `topk` and
   * `queryBlock` the grouped softmax runs on dense [n, m] score matrices with block masks (`landmarkGroupedDense`).
   */
  queryBlock?: number;
}

/** Insert `landmark` after every blockSize-1 tokens of each row: [b, s] -> [b, s'] with s' = blocks·blockSize. */
export function insertLandmarks(rows: number[][], blockSize: number, landmark: number): number[][] {
  return rows.map((r) => {
    const out: number[] = [];
    r.forEach((t, i) => {
      out.push(t);
      if ((i + 1) % (blockSize - 1) === 0) out.push(landmark);
    });
    return out;
  });
}

/** Whether absolute position p holds a landmark. */
export const isLandmark = (p: number, blockSize: number): boolean => (p + 1) % blockSize === 0;

function resolve(fn: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o: LandmarkOptions) {
  const s = checkQkv(fn, q, k, v);
  checkBlock(fn, 'blockSize', o.blockSize);
  if (o.blockSize < 2)
    throw new ShapeError(`${fn}: options.blockSize must be >= 2 (one token and its landmark), got ${o.blockSize}`);
  checkBlock(fn, 'topk', o.topk);
  checkBlock(fn, 'queryBlock', o.queryBlock);
  const bq = o.queryBlock ?? 1;
  if (o.blockSize % bq !== 0)
    throw new ShapeError(`${fn}: options.queryBlock (${bq}) must divide options.blockSize (${o.blockSize})`);
  if ((s.keys - s.queries) % bq !== 0)
    throw new ShapeError(
      `${fn}: the ${s.keys - s.queries} cached keys before the queries must be a multiple of queryBlock (${bq})`,
    );
  const ropeBase = checkRope(fn, o.rope, s.dim)?.base;
  const local = o.localBlocks ?? 0;
  if (!(Number.isInteger(local) && local >= 0))
    throw new ShapeError(`${fn}: options.localBlocks must be a non-negative integer, got ${o.localBlocks}`);
  return { s, L: o.blockSize, bq, scale: checkScale(fn, o.scale, s.dim), topk: o.topk, ropeBase, local };
}

/** Retrieved earlier blocks per (b, h, query block), by landmark score; `score(blk, kb)` = max over the block's queries. */
function retrieve(
  nBlk: number,
  currentOf: (blk: number) => number,
  topk: number | undefined,
  local: number,
  score: (blk: number, cands: number[]) => number[],
): number[][] {
  return Array.from({ length: nBlk }, (_, blk) => {
    const all = Array.from({ length: currentOf(blk) }, (_, i) => i);
    if (topk === undefined || all.length <= topk + local) return all;
    // The `local` blocks just before the query's are always kept; the best `topk` of the others are retrieved.
    const far = all.slice(0, all.length - local);
    const chosen = topIndices(score(blk, far), topk).map((i) => far[i]);
    return [...chosen.sort((a, b) => a - b), ...all.slice(all.length - local)];
  });
}

/**
 * The training path: the grouped softmax over every earlier block, on dense score matrices. One [n, m] score product;
 * the inner softmax runs over each earlier block's regular keys ([n, m/L, L] view), the outer one over the earlier
 * landmarks and the own block's keys <= the query; a retrieved token's weight is its inner weight times its block's
 * landmark weight. Same O(n·m) as the paper's training, but a few large tensor ops instead of a gather per query block
 * (measured at b 16, h 4, n 272, d 16, forward + backward: 123 ms vs 7.6 s for the per-query gather, without its
 * [n, (n/L + 1)·L, d] gathered keys).
 */
function landmarkGroupedDense(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  s: ReturnType<typeof checkQkv>,
  L: number,
  scale: number,
): SparseResult & { retrieved: number[][] } {
  const { batch: B, heads: H, kvHeads: G, queries: N, keys: M, valueDim: E } = s;
  const off = M - N;
  const nbK = Math.ceil(M / L);
  const P = nbK * L;
  const inner = new Float32Array(N * P); // 1 where key j is a regular token of a block before the query's
  const outer = new Float32Array(N * P); // 1 where j is an earlier landmark or in the query's block and <= the query
  const own = new Float32Array(N * P);
  const retrievedRow: number[][] = [];
  let pairsRow = 0;
  let dense = 0;
  for (let i = 0; i < N; i++) {
    const pos = off + i;
    const cb = Math.floor(pos / L);
    for (let j = 0; j < P; j++) {
      const kb = Math.floor(j / L);
      const lm = isLandmark(j, L);
      if (kb < cb && !lm) inner[i * P + j] = 1;
      if ((kb < cb && lm) || (kb === cb && j <= pos)) outer[i * P + j] = 1;
      if (kb === cb && j <= pos) own[i * P + j] = 1;
    }
    retrievedRow.push(Array.from({ length: cb }, (_, x) => x));
    pairsRow += cb * L + (pos - cb * L + 1);
    dense += Math.min(M, pos + 1);
  }
  const output = tf.tidy(() => {
    const groups = H / G;
    const kk = repeatKv(k as tf.Tensor4D, groups);
    const vv = repeatKv(v as tf.Tensor4D, groups);
    const pad = (t: tf.Tensor4D) =>
      P > M
        ? tf.pad(t, [
            [0, 0],
            [0, 0],
            [0, P - M],
            [0, 0],
          ])
        : t;
    // Scale q (small) rather than the [n, P] scores: every full-size op counts here.
    const sc = matmul(q.mul(scale).reshape([B * H, N, s.dim]), pad(kk).reshape([B * H, P, s.dim]), false, true).reshape(
      [B * H, N, P],
    );
    const bias = (m: Float32Array) =>
      tf.tensor3d(
        m.map((x) => (x === 1 ? 0 : MASKED_SCORE)),
        [1, N, P],
      );
    // The inner softmax of a block that is not an earlier one is garbage; its gate is masked below (a small [n, m/L]
    // mask: the own block's landmark slot is live in the outer softmax when the query is that landmark).
    const inW = tf.softmax(sc.add(bias(inner)).reshape([B * H, N, nbK, L]));
    const outW = tf.softmax(sc.add(bias(outer)));
    const earlier = Float32Array.from({ length: N * nbK }, (_, x) =>
      x % nbK < Math.floor((off + Math.floor(x / nbK)) / L) ? 1 : 0,
    );
    const gateW = outW
      .reshape([B * H, N, nbK, L])
      .slice([0, 0, 0, L - 1], [B * H, N, nbK, 1])
      .mul(tf.tensor4d(earlier, [1, N, nbK, 1]));
    const w = inW
      .mul(gateW)
      .reshape([B * H, N, P])
      .add(outW.mul(tf.tensor3d(own, [1, N, P])));
    return matmul(w, pad(vv).reshape([B * H, P, E])).reshape([B, H, N, E]) as tf.Tensor4D;
  });
  const retrieved: number[][] = [];
  for (let bh = 0; bh < B * H; bh++) retrieved.push(...retrievedRow);
  const kept = retrievedRow.reduce((a, r) => a + r.length, 0) * B * H;
  return {
    output,
    retrieved,
    covers: (_b, _h, i, j) => {
      const kb = Math.floor(j / L);
      const cb = Math.floor((off + i) / L);
      return kb === cb ? j <= off + i : kb < cb && !isLandmark(j, L);
    },
    stats: {
      method: 'landmark',
      pairs: pairsRow * B * H,
      densePairs: dense * B * H,
      selectionPairs: 0,
      blocksKept: kept,
      blocksTotal: kept,
    },
  };
}

/** Landmark attention (grouped softmax over retrieved blocks); see the module header. Always causal. */
export function landmarkAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: LandmarkOptions,
): SparseResult & { retrieved: number[][] } {
  const fn = 'landmarkAttention';
  const { s, L, bq, scale, topk, ropeBase, local } = resolve(fn, q, k, v, options);
  if (topk === undefined && options.queryBlock === undefined) {
    if (ropeBase === undefined) return landmarkGroupedDense(q, k, v, s, L, scale);
    // Every earlier block is retrieved: compact positions are the absolute ones.
    const qr = applyRopeAt(q, positionRange(s.keys - s.queries, s.queries), { base: ropeBase });
    const kr = applyRopeAt(k, positionRange(0, s.keys), { base: ropeBase });
    try {
      return landmarkGroupedDense(qr, kr, v, s, L, scale);
    } finally {
      tf.dispose([qr, kr]);
    }
  }
  const { batch: B, heads: H, kvHeads: G, queries: N, keys: M, dim: D, valueDim: E } = s;
  const off = M - N;
  const nb = Math.ceil(N / bq);
  const X = B * H * nb;
  const groups = H / G;
  const currentOf = (blk: number) => Math.floor((off + (blk % nb) * bq) / L);
  let selectionPairs = 0;
  const score = (blk: number, cands: number[]): number[] => {
    const qb = blk % nb;
    const bh = Math.floor(blk / nb);
    const [b, h] = [Math.floor(bh / H), bh % H];
    const nq = Math.min(N, (qb + 1) * bq) - qb * bq;
    selectionPairs += nq * cands.length;
    return cands.map((kb) => lmScores[((b * H + h) * nb + qb) * maxCur + kb]);
  };
  // Landmark scores for every (query block, earlier block): max over the block's queries, one batched product.
  const maxCur = Math.max(0, ...Array.from({ length: nb }, (_, qb) => currentOf(qb)));
  let lmScores: Float32Array = new Float32Array(0);
  if (topk !== undefined && maxCur > topk + local) {
    lmScores = readTidy(() => {
      const lmRows = new Int32Array(B * G * maxCur);
      for (let bg = 0; bg < B * G; bg++)
        for (let kb = 0; kb < maxCur; kb++) lmRows[bg * maxCur + kb] = bg * M + kb * L + L - 1;
      let lm = gatherRows(k.reshape([B * G * M, D]) as tf.Tensor2D, lmRows).reshape([B, G, maxCur, D]);
      if (groups > 1)
        lm = lm
          .reshape([B, G, 1, maxCur * D])
          .tile([1, 1, groups, 1])
          .reshape([B, H, maxCur, D]);
      const pad = nb * bq - N;
      let qp =
        pad > 0
          ? tf.pad(q, [
              [0, 0],
              [0, 0],
              [0, pad],
              [0, 0],
            ])
          : q;
      // Compact positions: each candidate landmark scored as the one just before the query's block (landmark at 0).
      if (ropeBase !== undefined)
        qp = rotateRows(
          qp.reshape([B * H, nb * bq, D]),
          Float32Array.from({ length: B * H * nb * bq }, (_, x) => ((off + (x % (nb * bq))) % L) + 1),
          ropeBase,
        );
      let sc = matmul(qp.reshape([B * H, nb * bq, D]), lm.reshape([B * H, maxCur, D]), false, true); // [bh, n, blocks]
      if (pad > 0)
        sc = sc.add(
          tf.tensor3d(
            Float32Array.from({ length: nb * bq }, (_, i) => (i < N ? 0 : -Infinity)),
            [1, nb * bq, 1],
          ),
        );
      return sc.reshape([B * H, nb, bq, maxCur]).max(2);
    });
  }
  const retrieved = retrieve(X, currentOf, topk, local, score);
  const R = Math.max(1, ...retrieved.map((r) => r.length));
  const S = R * L + L;
  const rows = new Int32Array(X * S);
  const innerBias = new Float32Array(X * bq * R * (L - 1));
  const lmBias = new Float32Array(X * bq * R);
  const curBias = new Float32Array(X * bq * L);
  const curAllowed = new Float32Array(X * bq * L);
  // Compact positions (rope): retrieved block r's token t at r·L + t, own-block token t at R_i·L + t.
  const posK = ropeBase === undefined ? null : new Float32Array(X * S);
  const posQ = ropeBase === undefined ? null : new Float32Array(X * bq);
  let pairs = 0;
  for (let blk = 0; blk < X; blk++) {
    const bh = Math.floor(blk / nb);
    const qb = blk % nb;
    const base = (Math.floor(bh / H) * G + Math.floor((bh % H) / groups)) * M;
    const ret = retrieved[blk];
    const cb = currentOf(blk);
    for (let r = 0; r < R; r++)
      for (let t = 0; t < L; t++) rows[blk * S + r * L + t] = r < ret.length ? base + ret[r] * L + t : base;
    for (let t = 0; t < L; t++) rows[blk * S + R * L + t] = base + Math.min(M - 1, cb * L + t);
    if (posK && posQ) {
      for (let x = 0; x < R * L; x++) posK[blk * S + x] = x;
      for (let t = 0; t < L; t++) posK[blk * S + R * L + t] = ret.length * L + t;
      for (let i = 0; i < bq; i++) posQ[blk * bq + i] = ret.length * L + (off + qb * bq + i - cb * L);
    }
    for (let i = 0; i < bq; i++) {
      const qi = qb * bq + i;
      const pos = off + qi;
      const real = qi < N;
      for (let r = 0; r < R; r++) {
        const ok = real && r < ret.length;
        lmBias[(blk * bq + i) * R + r] = ok ? 0 : MASKED_SCORE;
        for (let t = 0; t < L - 1; t++) innerBias[((blk * bq + i) * R + r) * (L - 1) + t] = ok ? 0 : MASKED_SCORE;
        if (ok) pairs += L;
      }
      for (let t = 0; t < L; t++) {
        const ok = real && cb * L + t <= pos && cb * L + t < M;
        curBias[(blk * bq + i) * L + t] = ok ? 0 : MASKED_SCORE;
        curAllowed[(blk * bq + i) * L + t] = ok ? 1 : 0;
        if (ok) pairs++;
      }
    }
  }
  const output = tf.tidy(() => {
    const pad = nb * bq - N;
    const qp =
      pad > 0
        ? tf.pad(q, [
            [0, 0],
            [0, 0],
            [0, pad],
            [0, 0],
          ])
        : q;
    let ks: tf.Tensor = gatherRows(k.reshape([B * G * M, D]) as tf.Tensor2D, rows).reshape([X, S, D]);
    const vs = gatherRows(v.reshape([B * G * M, E]) as tf.Tensor2D, rows).reshape([X, S, E]);
    let q3: tf.Tensor = qp.reshape([X, bq, D]);
    if (ropeBase !== undefined && posK && posQ) {
      ks = rotateRows(ks, posK, ropeBase);
      q3 = rotateRows(q3, posQ, ropeBase);
    }
    const sc = matmul(q3, ks, false, true).mul(scale); // [X, bq, S]
    const ret = sc.slice([0, 0, 0], [X, bq, R * L]).reshape([X, bq, R, L]);
    const inner = tf.softmax(ret.slice([0, 0, 0, 0], [X, bq, R, L - 1]).add(tf.tensor4d(innerBias, [X, bq, R, L - 1])));
    const lmLogit = ret
      .slice([0, 0, 0, L - 1], [X, bq, R, 1])
      .reshape([X, bq, R])
      .add(tf.tensor3d(lmBias, [X, bq, R]));
    const cur = sc.slice([0, 0, R * L], [X, bq, L]).add(tf.tensor3d(curBias, [X, bq, L]));
    const outer = tf.softmax(tf.concat([lmLogit, cur], 2)); // [X, bq, R + L]
    const gate = outer.slice([0, 0, 0], [X, bq, R]).mul(
      tf.tensor3d(
        lmBias.map((x) => (x === 0 ? 1 : 0)),
        [X, bq, R],
      ),
    );
    const wRet = tf.concat([inner.mul(gate.expandDims(3)), tf.zeros([X, bq, R, 1])], 3).reshape([X, bq, R * L]);
    const wCur = outer.slice([0, 0, R], [X, bq, L]).mul(tf.tensor3d(curAllowed, [X, bq, L]));
    const o = matmul(tf.concat([wRet, wCur], 2), vs).reshape([B, H, nb * bq, E]);
    return (pad > 0 ? o.slice([0, 0, 0, 0], [B, H, N, E]) : o) as tf.Tensor4D;
  });
  let densePairs = 0;
  for (let i = 0; i < N; i++) densePairs += Math.min(M, off + i + 1);
  const blocksTotal = retrieved.reduce((a, _, blk) => a + currentOf(blk), 0);
  const sets = retrieved.map((r) => new Set(r));
  return {
    output,
    retrieved,
    // Own block, or a retrieved block's regular tokens.
    covers: (b, h, i, j) => {
      const kb = Math.floor(j / L);
      return (
        kb === Math.floor((off + i) / L) || (sets[(b * H + h) * nb + Math.floor(i / bq)].has(kb) && !isLandmark(j, L))
      );
    },
    stats: {
      method: 'landmark',
      pairs,
      densePairs: densePairs * B * H,
      selectionPairs,
      blocksKept: retrieved.reduce((a, r) => a + r.length, 0),
      blocksTotal,
    },
  };
}

/** Float64 loop reference of `landmarkAttention`: the grouped softmax written per query from its definition. */
export function landmarkAttentionNaive(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: LandmarkOptions,
): { output: Float64Array; retrieved: number[][] } {
  const fn = 'landmarkAttentionNaive';
  const { s, L, bq, scale, topk, ropeBase, local } = resolve(fn, q, k, v, options);
  const { batch: B, heads: H, kvHeads: G, queries: N, keys: M, valueDim: E } = s;
  const off = M - N;
  const nb = Math.ceil(N / bq);
  const groups = H / G;
  const { q: qr, k: kr, v: vr } = qkvRows(q, k, v);
  const dot = (a: Float64Array, b: Float64Array) => a.reduce((x, ai, d) => x + ai * b[d], 0) * scale;
  const currentOf = (blk: number) => Math.floor((off + (blk % nb) * bq) / L);
  // With rope, q and k carry no rotation yet: rotate each at its compact position (the header's definition).
  const at = (x: Float64Array, p: number) => (ropeBase === undefined ? x : ropeRow(x, p, ropeBase));
  const retrieved = retrieve(B * H * nb, currentOf, topk, local, (blk, cands) => {
    const qb = blk % nb;
    const bh = Math.floor(blk / nb);
    const [b, h] = [Math.floor(bh / H), bh % H];
    return cands.map((kb) => {
      let best = -Infinity;
      for (let qi = qb * bq; qi < Math.min(N, (qb + 1) * bq); qi++)
        best = Math.max(
          best,
          dot(at(qr(b, h, qi), ((off + qi) % L) + 1), at(kr(b, Math.floor(h / groups), kb * L + L - 1), 0)),
        );
      return best;
    });
  });
  const output = new Float64Array(B * H * N * E);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / groups);
      for (let i = 0; i < N; i++) {
        const pos = off + i;
        const cb = Math.floor(pos / L);
        const ret = retrieved[(b * H + h) * nb + Math.floor(i / bq)];
        // Compact positions: retrieved block r at r·L.., the own block after them (absolute without retrieval).
        const own = ret.length * L;
        const qi = at(qr(b, h, i), own + pos - cb * L);
        const kAt = (j: number) =>
          at(
            kr(b, g, j),
            ret.indexOf(Math.floor(j / L)) >= 0 ? ret.indexOf(Math.floor(j / L)) * L + (j % L) : own + j - cb * L,
          );
        // Outer softmax over retrieved landmarks and own-block positions <= pos.
        const outer: { s: number; block?: number; j?: number }[] = ret.map((kb) => ({
          s: dot(qi, kAt(kb * L + L - 1)),
          block: kb,
        }));
        for (let j = cb * L; j <= pos; j++) outer.push({ s: dot(qi, kAt(j)), j });
        const mx = Math.max(...outer.map((u) => u.s));
        const z = outer.reduce((a, u) => a + Math.exp(u.s - mx), 0);
        const o = new Float64Array(E);
        for (const u of outer) {
          const wu = Math.exp(u.s - mx) / z;
          if (u.j !== undefined) {
            const vj = vr(b, g, u.j);
            for (let e = 0; e < E; e++) o[e] += wu * vj[e];
          } else {
            const kb = u.block!;
            const inner = Array.from({ length: L - 1 }, (_, t) => dot(qi, kAt(kb * L + t)));
            const im = Math.max(...inner);
            const iz = inner.reduce((a, x) => a + Math.exp(x - im), 0);
            inner.forEach((x, t) => {
              const vj = vr(b, g, kb * L + t);
              for (let e = 0; e < E; e++) o[e] += wu * (Math.exp(x - im) / iz) * vj[e];
            });
          }
        }
        output.set(o, ((b * H + h) * N + i) * E);
      }
    }
  }
  return { output, retrieved };
}

/** Landmark attention as a `SparseMethod` (see ../method.ts): trained into SparseLM as the 'landmark' kind. */
export const landmarkMethod: SparseMethod<LandmarkOptions> = {
  name: 'landmark',
  kind: 'paper',
  paper: {
    citation: 'Mohtashami & Jaggi 2023, Landmark Attention: Random-Access Infinite Context Length for Transformers',
    url: 'https://arxiv.org/abs/2305.16300',
  },
  attend: (q, k, v, o) => landmarkAttention(q, k, v, o),
  reference: (q, k, v, o) => landmarkAttentionNaive(q, k, v, o).output,
  supports(q, k, _v, o) {
    const bq = o.queryBlock ?? 1;
    const reasons = ropeReasons(o, q.shape[3] as number, true);
    if (o.blockSize % bq !== 0)
      reasons.push(`options.queryBlock (${bq}) must divide options.blockSize (${o.blockSize})`);
    const cached = (k.shape[2] as number) - (q.shape[2] as number);
    if (cached % bq !== 0)
      reasons.push(`the ${cached} cached keys before the queries must be a multiple of queryBlock (${bq})`);
    return reasons;
  },
  budgets: { timing: () => ({ blockSize: 64, topk: 4, queryBlock: 64 }) },
  lm: { kind: 'landmark', decodes: true },
  cases: [
    {
      label: 'retrieval',
      shape: [1, 2, 32, 8],
      kvHeads: 1,
      exact: { blockSize: 4, topk: 64 },
      sparse: { blockSize: 4, topk: 2 },
      // Every earlier block retrieved: the full grouped softmax (training).
      equals: (q, k, v) => landmarkAttentionNaive(q, k, v, { blockSize: 4 }).output,
    },
    {
      label: 'compact rope',
      shape: [1, 2, 32, 8],
      kvHeads: 1,
      exact: { blockSize: 4, topk: 64, rope: {} },
      sparse: { blockSize: 4, topk: 2, localBlocks: 1, rope: { base: 100 } },
      equals: (q, k, v) => landmarkAttentionNaive(q, k, v, { blockSize: 4, rope: {} }).output,
    },
  ],
};

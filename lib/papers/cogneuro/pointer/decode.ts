/**
 * Decoding: greedy and beam search. Both run the decoder one step at a time, read the masked log-probabilities back,
 * choose on the CPU (validity masks depend on what was chosen), and feed the chosen point's coordinates back in.
 */
import * as tf from '@tensorflow/tfjs';
import {
  type DecoderState,
  decodeStep,
  type Encoded,
  encode,
  maskLogits,
  outputPositions,
  type PointerModel,
} from './model.js';
import {
  type Decoding,
  disposeBatch,
  type Example,
  type MaskOptions,
  makeBatch,
  type TaskSpec,
  validPositions,
} from './tasks.js';

export interface Decoded {
  /** The answer as point indices (EOS dropped). */
  answer: number[];
  /** Positions chosen at each step (EOS = 0 included). */
  positions: number[];
  /** Sum of log-probabilities of the chosen positions. */
  logp: number;
  /** Per step, the output distribution over positions (only with `record`). */
  probs?: number[][];
}

export interface DecodeOptions {
  /** Keep each step's distribution (for plots). */
  record?: boolean;
  /** Examples per decoding batch. */
  batchSize?: number;
  /** `masked` (default) or the paper's `unconstrained` decoding (see `Decoding`). */
  decoding?: Decoding;
}

/** The step masks' options for a model: its decoding, and whether its outputs are a fixed vocabulary. */
export function maskOptions(model: PointerModel, decoding: Decoding = 'masked'): MaskOptions {
  return { decoding, fixedVocabulary: model.config.kind.startsWith('seq2seq') };
}

function inputFor(task: TaskSpec, ex: Example, pos: number, out: Float32Array, offset: number): void {
  const c = task.coordDim;
  out.fill(0, offset, offset + c + 1);
  if (pos > 0 && pos <= ex.points.length) ex.points[pos - 1].forEach((v, k) => (out[offset + k] = v));
}

/** tf.tidy for an encoding (whose optional keys tidy's types do not accept). */
function tidyEncoded(f: () => Encoded): Encoded {
  return tf.tidy(() => f() as unknown as tf.TensorContainer) as unknown as Encoded;
}

function inChunks<T>(items: T[], size: number, f: (chunk: T[]) => Decoded[]): Decoded[] {
  const out: Decoded[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...f(items.slice(i, i + size)));
  return out;
}

function finished(task: TaskSpec, ex: Example, positions: number[]): boolean {
  const last = positions[positions.length - 1];
  return (task.eos && positions.length > 0 && last === 0) || positions.length >= task.maxSteps(ex.points.length);
}

function answerOf(positions: number[]): number[] {
  return positions.filter((p) => p > 0).map((p) => p - 1);
}

/** Greedy decoding: at each step the most probable valid position. */
export function greedyDecode(
  model: PointerModel,
  task: TaskSpec,
  examples: Example[],
  opts: DecodeOptions = {},
): Decoded[] {
  const mask = maskOptions(model, opts.decoding);
  return inChunks(examples, opts.batchSize ?? 256, (chunk) =>
    greedyChunk(model, task, chunk, opts.record ?? false, mask),
  );
}

function greedyChunk(
  model: PointerModel,
  task: TaskSpec,
  examples: Example[],
  record: boolean,
  mask: MaskOptions,
): Decoded[] {
  const b = examples.length;
  const c = task.coordDim;
  const n = Math.max(...examples.map((e) => e.points.length));
  const p = outputPositions(model, n);
  const batch = makeBatch(task, examples, p);
  const enc = tidyEncoded(() => encode(model, batch.x, batch.lengths));
  const res: Decoded[] = examples.map(() => ({ answer: [], positions: [], logp: 0, probs: record ? [] : undefined }));
  const done = examples.map(() => false);
  let state: DecoderState = { h: enc.h, c: enc.c };
  const inp = new Float32Array(b * (c + 1));
  for (let r = 0; r < b; r++) inp[r * (c + 1) + c] = 1; // GO
  const maxSteps = Math.max(...examples.map((e) => task.maxSteps(e.points.length)));
  try {
    for (let step = 0; step < maxSteps && done.some((x) => !x); step++) {
      const valid = new Float32Array(b * p);
      examples.forEach((e, r) => valid.set(validPositions(task, e.points.length, p, res[r].positions, mask), r * p));
      const prev = state;
      const { logp, next } = tf.tidy(() => {
        const s = decodeStep(model, enc, prev, tf.tensor2d(inp, [b, c + 1]));
        const lp = tf.logSoftmax(maskLogits(s.logits, tf.tensor2d(valid, [b, p])));
        return { logp: tf.keep(lp), next: { h: tf.keep(s.state.h), c: tf.keep(s.state.c) } };
      });
      tf.dispose([prev.h, prev.c]);
      state = next;
      const lp = logp.dataSync() as Float32Array;
      logp.dispose();
      for (let r = 0; r < b; r++) {
        if (done[r]) continue;
        let best = -1;
        for (let j = 0; j < p; j++) if (valid[r * p + j] && (best < 0 || lp[r * p + j] > lp[r * p + best])) best = j;
        res[r].positions.push(best);
        res[r].logp += lp[r * p + best];
        if (record) res[r].probs!.push(Array.from(lp.subarray(r * p, r * p + p), Math.exp));
        inputFor(task, examples[r], best, inp, r * (c + 1));
        done[r] = finished(task, examples[r], res[r].positions);
      }
    }
  } finally {
    tf.dispose(
      [state.h, state.c, enc.memory, enc.keys, enc.attnBias, enc.h, enc.c].filter(
        (t) => t && !t.isDisposed,
      ) as tf.Tensor[],
    );
    disposeBatch(batch);
  }
  for (const r of res) r.answer = answerOf(r.positions);
  return res;
}

interface Hyp {
  positions: number[];
  logp: number;
  done: boolean;
  /** Row of the state this hypothesis continues from. */
  row: number;
}

/**
 * Beam search of width k: each example keeps the k most probable valid partial answers; a finished hypothesis
 * (EOS, or the full length) carries over unchanged. Returns the most probable finished answer per example.
 */
export function beamDecode(
  model: PointerModel,
  task: TaskSpec,
  examples: Example[],
  width: number,
  opts: DecodeOptions = {},
): Decoded[] {
  if (!(Number.isInteger(width) && width >= 1))
    throw new Error(`beamDecode: width must be a positive integer, got ${width}`);
  const size = Math.max(1, Math.floor((opts.batchSize ?? 256) / width));
  const mask = maskOptions(model, opts.decoding);
  return inChunks(examples, size, (chunk) => beamChunk(model, task, chunk, width, mask));
}

function beamChunk(model: PointerModel, task: TaskSpec, examples: Example[], K: number, mask: MaskOptions): Decoded[] {
  const B = examples.length;
  const c = task.coordDim;
  const n = Math.max(...examples.map((e) => e.points.length));
  const p = outputPositions(model, n);
  const batch = makeBatch(task, examples, p);
  // Rows r*K .. r*K + K - 1 hold example r's hypotheses; the encoding is repeated per row.
  const rep = tf.tensor1d(
    Array.from({ length: B * K }, (_, i) => Math.floor(i / K)),
    'int32',
  );
  const enc = tidyEncoded(() => {
    const e = encode(model, batch.x, batch.lengths);
    return {
      memory: tf.gather(e.memory, rep) as tf.Tensor3D,
      keys: e.keys ? (tf.gather(e.keys, rep) as tf.Tensor3D) : undefined,
      attnBias: tf.gather(e.attnBias, rep) as tf.Tensor2D,
      h: tf.gather(e.h, rep) as tf.Tensor2D,
      c: tf.gather(e.c, rep) as tf.Tensor2D,
    };
  });
  rep.dispose();
  let state: DecoderState = { h: enc.h, c: enc.c };
  // Only one live hypothesis per example at the start.
  let beams: Hyp[][] = examples.map(() => [{ positions: [], logp: 0, done: false, row: 0 }]);
  const maxSteps = Math.max(...examples.map((e) => task.maxSteps(e.points.length)));
  const rows = B * K;
  try {
    for (let step = 0; step < maxSteps && beams.some((bs) => bs.some((h) => !h.done)); step++) {
      const inp = new Float32Array(rows * (c + 1));
      const valid = new Float32Array(rows * p).fill(1);
      beams.forEach((bs, r) =>
        bs.forEach((hyp, k) => {
          const row = r * K + k;
          if (hyp.positions.length === 0) inp[row * (c + 1) + c] = 1;
          else inputFor(task, examples[r], hyp.positions[hyp.positions.length - 1], inp, row * (c + 1));
          valid.set(validPositions(task, examples[r].points.length, p, hyp.positions, mask), row * p);
        }),
      );
      const prev = state;
      const { logp, next } = tf.tidy(() => {
        const s = decodeStep(model, enc, prev, tf.tensor2d(inp, [rows, c + 1]));
        const lp = tf.logSoftmax(maskLogits(s.logits, tf.tensor2d(valid, [rows, p])));
        return { logp: tf.keep(lp), next: { h: tf.keep(s.state.h), c: tf.keep(s.state.c) } };
      });
      tf.dispose([prev.h, prev.c]);
      const lp = logp.dataSync() as Float32Array;
      logp.dispose();
      const parents = new Int32Array(rows);
      beams = beams.map((bs, r) => {
        const cand: { parent: number; pos: number; logp: number }[] = [];
        bs.forEach((hyp, k) => {
          if (hyp.done) return cand.push({ parent: k, pos: -1, logp: hyp.logp });
          const row = r * K + k;
          for (let j = 0; j < p; j++)
            if (valid[row * p + j]) cand.push({ parent: k, pos: j, logp: hyp.logp + lp[row * p + j] });
        });
        // Stable sort: ties keep the lower parent and position, as greedy's argmax does.
        cand.sort((a, b) => b.logp - a.logp);
        return cand.slice(0, K).map((cd, k) => {
          const parent = bs[cd.parent];
          parents[r * K + k] = r * K + cd.parent;
          if (cd.pos < 0) return { ...parent, row: r * K + k };
          const positions = [...parent.positions, cd.pos];
          return { positions, logp: cd.logp, done: finished(task, examples[r], positions), row: r * K + k };
        });
      });
      for (let r = 0; r < B; r++) for (let k = beams[r].length; k < K; k++) parents[r * K + k] = r * K;
      const idx = tf.tensor1d(parents, 'int32');
      state = { h: tf.gather(next.h, idx) as tf.Tensor2D, c: tf.gather(next.c, idx) as tf.Tensor2D };
      tf.dispose([idx, next.h, next.c]);
    }
  } finally {
    tf.dispose([state.h, state.c, enc.memory, enc.keys, enc.attnBias].filter((t) => t && !t.isDisposed) as tf.Tensor[]);
    disposeBatch(batch);
  }
  return beams.map((bs) => {
    const best = bs.reduce((a, h) => (h.logp > a.logp ? h : a), bs[0]);
    return { answer: answerOf(best.positions), positions: best.positions, logp: best.logp };
  });
}

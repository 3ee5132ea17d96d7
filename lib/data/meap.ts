/**
 * MEAP's input masking (Zhuang et al., ICML 2025, https://arxiv.org/abs/2502.07490): before a next-token-prediction
 * step, a fraction of the INPUT tokens is replaced by a [MASK] id; the targets stay the original next tokens, so the
 * model still predicts x[t+1] at every position t, now from a context with holes in it.
 *
 * As in the official pre-training code (scitix/MEAP, MEAP-Pretain/pretrained/meap_*.py):
 *   - exactly n = max(1, floor(seqLen · ratio)) positions are masked (ratio 0 masks nothing: plain NTP);
 *   - they are drawn uniformly without replacement from [0, seqLen - 1): position 0 (the first token, whatever it is)
 *     can be masked, the last input position never is;
 *   - the same positions are masked in every row of the batch, and special tokens get no protection.
 * The official code reseeds Python's `random` with 50 + (step mod 51), so it cycles through 51 patterns; here the
 * positions come from the step's own seed (train()'s `StepContext.seed`), so a run is reproducible and patterns do
 * not repeat.
 *
 * ```ts
 * // inside any train() loss: mask 15% of the inputs, score against the untouched targets
 * loss: (_step, b, ctx) => {
 *   const t = b.toTensors();
 *   return model.loss(meapMaskTensor(t.inputs, { ratio: 0.15, maskId: MASK, seed: ctx.seed }), t.targets);
 * }
 * // seqLen 8, ratio 0.25 -> 2 positions, e.g. inputs [1 9 4 4 7 5 6 2] -> [1 M 4 4 7 M 6 2], targets unchanged
 * ```
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/random.js';
import { checkInt, makeBatch, type TokenBatch } from './batch.js';

export interface MeapMaskConfig {
  /** Fraction of the inputs to mask, in [0, 1); 0 is plain next-token prediction. */
  ratio: number;
  /** The [MASK] token id (a valid id of the model's vocabulary, usually one the data never uses). */
  maskId: number;
  /** The step's seed: the same seed gives the same positions. */
  seed: number;
}

function checkConfig(fn: string, seqLen: number, cfg: MeapMaskConfig): void {
  checkInt(fn, 'seqLen', seqLen, 2);
  if (typeof cfg?.ratio !== 'number' || !(cfg.ratio >= 0 && cfg.ratio < 1))
    throw new RangeError(`${fn}: ratio must be a number in [0, 1), got ${String(cfg?.ratio)}`);
  checkInt(fn, 'maskId', cfg.maskId, 0);
  if (typeof cfg.seed !== 'number' || !Number.isFinite(cfg.seed))
    throw new RangeError(`${fn}: seed must be a finite number, got ${String(cfg.seed)}`);
}

/** How many positions a row of `seqLen` inputs has masked at `ratio`: max(1, floor(seqLen · ratio)), 0 at ratio 0. */
export function meapMaskCount(seqLen: number, ratio: number): number {
  return ratio === 0 ? 0 : Math.min(seqLen - 1, Math.max(1, Math.floor(seqLen * ratio)));
}

/** The masked input positions of one step, ascending: meapMaskCount distinct positions uniform in [0, seqLen - 1). */
export function meapPositions(seqLen: number, cfg: MeapMaskConfig): number[] {
  checkConfig('meapPositions', seqLen, cfg);
  const n = meapMaskCount(seqLen, cfg.ratio);
  return new Rng(cfg.seed)
    .fork('meap')
    .sample(seqLen - 1, n)
    .sort((a, b) => a - b);
}

/** A copy of row-major ids `[batch, seqLen]` with the step's positions set to `maskId` in every row. */
export function meapMaskIds(ids: Int32Array, batch: number, seqLen: number, cfg: MeapMaskConfig): Int32Array {
  checkInt('meapMaskIds', 'batch', batch, 1);
  if (ids.length !== batch * seqLen)
    throw new RangeError(
      `meapMaskIds: ids has ${ids.length} entries, expected batch · seqLen = ${batch} · ${seqLen} = ${batch * seqLen}`,
    );
  const positions = meapPositions(seqLen, cfg);
  const out = ids.slice();
  for (let b = 0; b < batch; b++) for (const p of positions) out[b * seqLen + p] = cfg.maskId;
  return out;
}

/** The batch with its inputs masked; targets and lossMask are the original ones. */
export function meapMaskBatch(batch: TokenBatch, cfg: MeapMaskConfig): TokenBatch {
  if (!(cfg.maskId < batch.vocabSize))
    throw new RangeError(
      `meapMaskBatch: maskId must be < the batch's vocabSize ${batch.vocabSize}, got ${String(cfg.maskId)}`,
    );
  const { batch: B, seqLen: S } = batch;
  const inputs = meapMaskIds(batch.inputs, B, S, cfg);
  // makeBatch takes full rows [B, S + 1] and shifts them; its targets would then carry the masks, so they are
  // overwritten with the original targets (the batch's toTensors and row read the same arrays).
  const full = new Int32Array(B * (S + 1));
  for (let b = 0; b < B; b++) {
    full.set(inputs.subarray(b * S, (b + 1) * S), b * (S + 1));
    full[b * (S + 1) + S] = batch.targets[b * S + S - 1];
  }
  const masked = makeBatch(batch.task, full, batch.lossMask, B, S, batch.vocabSize);
  masked.targets.set(batch.targets);
  return masked;
}

/**
 * The tensor form, for a loss that already holds its inputs as a tensor: ids `[batch, seqLen]` -> a new int32 tensor
 * with the step's positions set to `maskId` (the caller disposes it; inside train()'s loss it is freed with the step).
 */
export function meapMaskTensor(ids: tf.Tensor, cfg: MeapMaskConfig): tf.Tensor2D {
  if (ids.rank !== 2)
    throw new RangeError(`meapMaskTensor: ids must have rank 2 [batch, seqLen], got shape [${ids.shape.join(', ')}]`);
  const [, S] = ids.shape;
  const positions = meapPositions(S, cfg);
  const hole = new Int32Array(S);
  for (const p of positions) hole[p] = 1;
  return tf.tidy(() => {
    const int = ids.dtype === 'int32' ? ids : ids.toInt();
    const at = tf.tensor2d(hole, [1, S], 'int32'); // 1 at the masked positions, broadcast over the rows
    return int.mul(tf.scalar(1, 'int32').sub(at)).add(at.mul(tf.scalar(cfg.maskId, 'int32'))) as tf.Tensor2D;
  });
}

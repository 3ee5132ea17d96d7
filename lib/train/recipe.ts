/**
 * The training recipe the project's small transformers share (set by the induction-heads experiment and reused by
 * every experiment that trains a ToyLM-sized model from scratch): AdamW with weight decay 0.01, a cosine schedule with
 * 5% linear warm-up, gradient clipping at global norm 1. Spread it into `train()`'s options:
 *
 *   await train({ variables, batches, steps: cfg.steps, ...transformerRecipe(cfg.steps, cfg.lr), loss })
 */
import type { TrainOptions } from './loop.js';

export function transformerRecipe(
  steps: number,
  lr: number,
): Required<Pick<TrainOptions, 'optimizer' | 'schedule' | 'clipNorm'>> {
  if (!(Number.isInteger(steps) && steps > 0))
    throw new RangeError(`transformerRecipe: steps must be a positive integer, got ${steps}`);
  if (!(lr > 0 && Number.isFinite(lr)))
    throw new RangeError(`transformerRecipe: lr must be a finite number > 0, got ${lr}`);
  return {
    optimizer: { type: 'adamw', lr, weightDecay: 0.01 },
    schedule: { type: 'cosine', warmup: Math.round(steps * 0.05) },
    clipNorm: 1,
  };
}

/**
 * Learning-rate schedules as pure functions of the 0-based step index: `lr(step)` is the rate used by update `step`.
 *
 * Warmup is linear and reaches the peak on its last step: lr(s) = peak·(s+1)/warmup for s < warmup.
 * After warmup, with progress p = (s - warmup) / (total - warmup) clamped to [0, 1]:
 *   cosine: lr = min + (peak - min)·(1 + cos(π·p))/2
 *   linear: lr = peak - (peak - min)·p
 */
export type Schedule = (step: number) => number;

/** Serializable form of a schedule, the `schedule` option of `train` (peak = the optimizer's lr, total = steps). */
export type ScheduleConfig =
  | { type: 'constant' }
  | { type: 'cosine'; warmup?: number; minLr?: number; total?: number }
  | { type: 'linear'; warmup?: number; minLr?: number; total?: number };

export interface WarmupDecayOptions {
  peak: number;
  /** Steps of linear warmup (0: start at the peak). */
  warmup: number;
  /** Step at which the decay reaches `min` (it stays there after). */
  total: number;
  /** Final rate; default 0. */
  min?: number;
}

export function constant(lr: number): Schedule {
  checkRate('constant', 'lr', lr);
  return () => lr;
}

export function warmupCosine(o: WarmupDecayOptions): Schedule {
  const { peak, warmup, total, min } = checked('warmupCosine', o);
  return (step) => {
    if (step < warmup) return (peak * (step + 1)) / warmup;
    const p = progress(step, warmup, total);
    return min + ((peak - min) * (1 + Math.cos(Math.PI * p))) / 2;
  };
}

export function warmupLinear(o: WarmupDecayOptions): Schedule {
  const { peak, warmup, total, min } = checked('warmupLinear', o);
  return (step) => {
    if (step < warmup) return (peak * (step + 1)) / warmup;
    return peak - (peak - min) * progress(step, warmup, total);
  };
}

/** Build a schedule from its config; `peak` and `total` fill what the config leaves out. */
export function makeSchedule(config: ScheduleConfig, peak: number, total: number): Schedule {
  switch (config.type) {
    case 'constant':
      return constant(peak);
    case 'cosine':
      return warmupCosine({ peak, warmup: config.warmup ?? 0, total: config.total ?? total, min: config.minLr ?? 0 });
    case 'linear':
      return warmupLinear({ peak, warmup: config.warmup ?? 0, total: config.total ?? total, min: config.minLr ?? 0 });
    default:
      throw new Error(
        `makeSchedule: unknown schedule type '${(config as { type: unknown }).type}'; expected constant, cosine or linear`,
      );
  }
}

function progress(step: number, warmup: number, total: number): number {
  return Math.min(1, Math.max(0, (step - warmup) / Math.max(1, total - warmup)));
}

function checked(fn: string, o: WarmupDecayOptions): Required<WarmupDecayOptions> {
  const min = o.min ?? 0;
  checkRate(fn, 'peak', o.peak);
  checkRate(fn, 'min', min);
  if (!Number.isInteger(o.warmup) || o.warmup < 0)
    throw new Error(`${fn}: warmup must be an integer >= 0, got ${o.warmup}`);
  if (!Number.isInteger(o.total) || o.total < o.warmup) {
    throw new Error(`${fn}: total must be an integer >= warmup (${o.warmup}), got ${o.total}`);
  }
  return { peak: o.peak, warmup: o.warmup, total: o.total, min };
}

function checkRate(fn: string, arg: string, x: number): void {
  if (!(Number.isFinite(x) && x >= 0)) throw new Error(`${fn}: ${arg} must be a finite number >= 0, got ${x}`);
}

/**
 * Training: Adam/AdamW with state for checkpoints, global-norm clipping, learning-rate schedules, a training loop with
 * progress and a clean NaN stop, a training-dynamics recorder (stats and weight blocks every N steps), atomic checkpoint
 * files, and a file IOHandler for tfjs models.
 *
 *   const opt = { type: 'adamw', lr: 3e-4, weightDecay: 0.1, noDecay: al.train.noDecayBiasNorm } as const;
 *   const { history, stopped } = await al.train.train({
 *     variables, steps: 1000, optimizer: opt, schedule: { type: 'cosine', warmup: 100 }, clipNorm: 1,
 *     loss: (step) => lossFn(step),
 *   });
 */

export type { Checkpoint, CheckpointMeta, SaveCheckpointOptions, TensorEntry } from './checkpoint.js';
export { fileHandler, loadCheckpoint, restoreCheckpoint, restoreVariables, saveCheckpoint } from './checkpoint.js';
export type { DataFrame } from './history.js';
export { loadDanfo, recordsToDataFrame } from './history.js';
export type { StepContext, StepRecord, StopInfo, TrainOptions, TrainResult } from './loop.js';
export { train, variablesOf } from './loop.js';
export type { AdamOptions, OptimizerConfig, OptimizerState, OptimizerType, VariableSet } from './optim.js';
export { Adam, AdamW, clipByGlobalNorm, globalNorm, makeOptimizer, noDecayBiasNorm, variableEntries } from './optim.js';
export type { ProgressMode, ProgressReporter, ProgressState, ProgressTarget } from './progress.js';
export { createProgress, describe as describeProgress } from './progress.js';
export { transformerRecipe } from './recipe.js';
export type { BlockFrame, RecorderOptions, RecorderRow } from './recorder.js';
export { Recorder } from './recorder.js';
export type { Schedule, ScheduleConfig, WarmupDecayOptions } from './schedule.js';
export { constant, makeSchedule, warmupCosine, warmupLinear } from './schedule.js';
export type { Initializer, InitializerKind } from './seed.js';
export { seededInitializer, seededVariable, weightSeed } from './seed.js';

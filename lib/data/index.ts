/**
 * Data for attention experiments: seeded synthetic tasks (copy, induction, MQAR, passkey, sorting) and a tokenized text
 * corpus (Moby Dick), all returning the same {@link TokenBatch}: `inputs`/`targets` `[batch, seqLen]` in next-token
 * framing and a `lossMask` over the graded positions.
 *
 * ```ts
 * const b = al.data.mqarTask({ batch: 64, seqLen: 64, vocabSize: 128, numPairs: 8, seed: 0 });
 * const t = b.toTensors(); // { inputs, targets, lossMask }: [64, 64]; dispose when done
 * ```
 */

export * from './action-video.js';
export * from './array-tasks.js';
export * from './batch.js';
export * from './circuit-tasks.js';
export * from './clutter-images.js';
export * from './corpus.js';
export * from './ego-clips.js';
export * as flatland from './flatland.js';
export * from './gridworld.js';
export * from './kv-facts.js';
export * from './linear-regression.js';
export * from './meap.js';
export * from './memory-recall.js';
export * from './mqar-powerlaw.js';
export * from './needles.js';
export * from './planted.js';
export * from './prompts.js';
export * from './recall.js';
export * from './recsys.js';
export * from './repeat.js';
export * as scenes from './scenes.js';
export * from './sentiment.js';
export * from './sequence-classes.js';
export * from './tasks.js';
export * from './time-series.js';
export * from './tokenizer.js';

/**
 * The shared text classifier of the classifiers family: word embeddings → BiGRU → attention pooling → linear layer,
 * with additive attention (Bahdanau-style tanh scores over padded sentences) as a pure function and its float64
 * reference, the pooling options LAMA and structured self-attention (from ../lama), Attention AT's score perturbation
 * hook (`delta`), training and evaluation on lib/data/sentiment.ts, and attention drawn as highlighted text.
 *
 *   s_t = vᵀ tanh(W h_t + c),  a = softmax_t(s + δ) over the words,  z = Σ_t a_t h_t
 *
 * Shape legend: b sentences, T words, d state size (2 × GRU size), m heads; h [b, T, d], mask [b, T],
 * weights [b, m, T], logits [b, C].
 *
 *   const task = al.data.sentimentTask({ minLen: 6, maxLen: 10, sentimentWords: 2, topicWords: 0, fillerPerSplit: 200 });
 *   const model = new TextClassifier({ vocabSize: task.vocabSize, embedDim: 16, hidden: 16, classes: task.classes,
 *     pooling: { kind: 'additive', dim: 16 }, seed: 0 });
 *   await trainTextClassifier(model, task.sample('train', 2000, 1), { steps: 200, batch: 32, lr: 5e-3, seed: 0 });
 *   evaluateTextClassifier(model, task.sample('test', 1000, 2)).accuracy;
 *
 * Files: attention.ts (mechanism + reference), model.ts (BiGRU classifier), train.ts, display.ts.
 */
export {
  type AdditiveOutput,
  type AdditiveParams,
  type AdditiveParams64,
  additiveAttention,
  additiveAttentionReference,
  additiveScores,
  attendWithScores,
  maskedSoftmax,
  maskedSoftmax64,
} from './attention.js';
export { attentionHtml } from './display.js';
export {
  crossEntropy,
  gruDirection,
  sentenceTensors,
  TextClassifier,
  type TextClassifierOptions,
  type TextForward,
  type TextPooling,
} from './model.js';
export {
  attentionMass,
  evaluateTextClassifier,
  type TextEvaluation,
  type TextTrainOptions,
  trainTextClassifier,
} from './train.js';

/**
 * Untrimmed 1-D "videos" with action segments: the task of class-semantics attention (Sridhar et al. 2021,
 * lib/papers/vision/csa). Each video is T frames of two feature streams, as a two-stream temporal action detector
 * sees them: recognition features R (frame-level class scores, rich in class semantics) and localisation features F
 * (generic encoder channels, where the action's signal is buried among nuisance channels).
 *
 * Segments. 1 to `maxSegments` non-overlapping segments per video, lengths in [minLen, maxLen], each of one of K action
 * classes, separated by at least 2 background frames.
 *
 * R [T, K + 1]: softmax over (K classes, background) of logits β·onehot(label_t) + N(0, rNoise²); label_t is the class of
 * the segment covering t, else background (index K).
 *
 * F [T, C], C = K * groupSize + nuisance: channel group c (channels c·groupSize .. (c + 1)·groupSize − 1) carries a fixed
 * random pattern (per class, unit RMS) times `signal` on the frames of class-c segments; the boundary frames (first
 * and last) get an extra ±`edge` bump on the group's first channel; the last `nuisance` channels carry background
 * activity: random bursts of the same size as a segment's signal, placed anywhere, which look like actions to a
 * detector that cannot tell relevant channels from irrelevant ones. Every channel then gets N(0, fNoise²). A detector
 * must find the channels and frames that matter; R says which class is present (which channel group) and when.
 *
 * Splits. Videos are continuous draws; train, validation and test each come from their own random stream
 * (`new Rng(seed).fork('actionVideos:' + split)`), so no two splits share a draw.
 *
 * Worked example. `{ count: 1, T: 8, classes: 1, groupSize: 1, nuisance: 0, minSegments: 1, maxSegments: 1, minLen: 3,
 * maxLen: 3, beta: 0, rNoise: 0, fNoise: 0, signal: 1, edge: 0 }` puts one class-0 segment of 3 frames somewhere in
 * [1, 7): say frames 2..4. R is [0.5, 0.5] on every frame (β = 0: no class evidence); F has one channel, whose
 * pattern is ±1 (unit RMS), so F is ±1 on frames 2, 3, 4 and 0 elsewhere; segments = [{ start: 2, end: 5, label: 0 }]
 * (end exclusive).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/random.js';

export type ActionVideoSplit = 'train' | 'validation' | 'test';

export interface ActionSegment {
  /** First frame. */
  start: number;
  /** One past the last frame. */
  end: number;
  label: number;
}

export interface ActionVideoConfig {
  count: number;
  /** Frames per video (default 64). */
  T?: number;
  /** Action classes K (default 4). */
  classes?: number;
  /** Localisation channels per class (default 4). */
  groupSize?: number;
  /** Nuisance localisation channels (default 16). */
  nuisance?: number;
  /** Segments per video (default 1..3). */
  minSegments?: number;
  maxSegments?: number;
  /** Segment lengths (default 6..18 frames). */
  minLen?: number;
  maxLen?: number;
  /** Recognition logit margin β (default 2.5). */
  beta?: number;
  /** Recognition logit noise σ (default 1). */
  rNoise?: number;
  /** Localisation channel noise σ (default 1). */
  fNoise?: number;
  /** Localisation signal amplitude (default 1). */
  signal?: number;
  /** Boundary bump amplitude (default 1). */
  edge?: number;
  /** Nuisance bursts per video (default 2). */
  bursts?: number;
  seed: number;
  split?: ActionVideoSplit;
}

export interface ActionVideos {
  count: number;
  T: number;
  classes: number;
  /** Localisation channels C. */
  channels: number;
  /** [count, T, K + 1] row-major. */
  recognition: Float32Array;
  /** [count, T, C] row-major. */
  localisation: Float32Array;
  segments: ActionSegment[][];
  /** Per video and frame: the segment's class, or K for background; [count, T]. */
  labels: Int32Array;
  toTensors(): { r: tf.Tensor3D; f: tf.Tensor3D };
}

const need = (name: string, ok: boolean, expected: string, got: unknown) => {
  if (!ok) throw new Error(`actionVideos: ${name} must be ${expected}, got ${JSON.stringify(got)}`);
};

/** Draws `count` videos of a split (see the module header). */
export function actionVideos(config: ActionVideoConfig): ActionVideos {
  const T = config.T ?? 64;
  const K = config.classes ?? 4;
  const G = config.groupSize ?? 4;
  const N = config.nuisance ?? 16;
  const minS = config.minSegments ?? 1;
  const maxS = config.maxSegments ?? 3;
  const minL = config.minLen ?? 6;
  const maxL = config.maxLen ?? 18;
  const beta = config.beta ?? 2.5;
  const rNoise = config.rNoise ?? 1;
  const fNoise = config.fNoise ?? 1;
  const signal = config.signal ?? 1;
  const edge = config.edge ?? 1;
  const bursts = config.bursts ?? 2;
  const split = config.split ?? 'train';
  need('count', Number.isInteger(config.count) && config.count >= 0, 'an integer >= 0', config.count);
  need('classes', Number.isInteger(K) && K >= 1, 'an integer >= 1', K);
  need('groupSize', Number.isInteger(G) && G >= 1, 'an integer >= 1', G);
  need('nuisance', Number.isInteger(N) && N >= 0, 'an integer >= 0', N);
  need('minLen', Number.isInteger(minL) && minL >= 1 && minL <= maxL, `an integer in [1, maxLen = ${maxL}]`, minL);
  need(
    'minSegments',
    Number.isInteger(minS) && minS >= 1 && minS <= maxS,
    `an integer in [1, maxSegments = ${maxS}]`,
    minS,
  );
  need(
    'T',
    Number.isInteger(T) && T >= maxS * (maxL + 2) + 2,
    `an integer >= maxSegments * (maxLen + 2) + 2 = ${maxS * (maxL + 2) + 2}`,
    T,
  );
  need('split', ['train', 'validation', 'test'].includes(split), "'train', 'validation' or 'test'", split);
  const C = K * G + N;
  const patternRng = new Rng(config.seed).fork('actionVideos:patterns');
  const patterns = Array.from({ length: K }, () => {
    const p = Float64Array.from({ length: G }, () => patternRng.normal());
    const rms = Math.sqrt(p.reduce((a, v) => a + v * v, 0) / G) || 1;
    return p.map((v) => v / rms);
  });
  const rng = new Rng(config.seed).fork(`actionVideos:${split}`);
  const recognition = new Float32Array(config.count * T * (K + 1));
  const localisation = new Float32Array(config.count * T * C);
  const labels = new Int32Array(config.count * T).fill(K);
  const segments: ActionSegment[][] = [];
  for (let v = 0; v < config.count; v++) {
    const n = rng.int(minS, maxS + 1);
    const lens = Array.from({ length: n }, () => rng.int(minL, maxL + 1));
    // Place the segments in order with random gaps (>= 2 frames between and >= 1 at each end).
    const free = T - lens.reduce((a, l) => a + l, 0) - 2 * (n - 1) - 2;
    const cuts = Array.from({ length: n }, () => rng.int(0, free + 1)).sort((a, b) => a - b);
    const segs: ActionSegment[] = [];
    let t = 1;
    for (let i = 0; i < n; i++) {
      const start = t + cuts[i] - (i > 0 ? cuts[i - 1] : 0);
      const seg = { start, end: start + lens[i], label: rng.int(0, K) };
      segs.push(seg);
      t = seg.end + 2;
    }
    segments.push(segs);
    const F = (tt: number, c: number) => (v * T + tt) * C + c;
    for (const s of segs)
      for (let tt = s.start; tt < s.end; tt++) {
        labels[v * T + tt] = s.label;
        for (let g = 0; g < G; g++) localisation[F(tt, s.label * G + g)] += signal * patterns[s.label][g];
        if (tt === s.start) localisation[F(tt, s.label * G)] += edge;
        if (tt === s.end - 1) localisation[F(tt, s.label * G)] -= edge;
      }
    if (N > 0)
      for (let b = 0; b < bursts; b++) {
        const len = rng.int(minL, maxL + 1);
        const start = rng.int(0, T - len + 1);
        const ch = rng.sample(N, Math.min(N, G));
        const amp = ch.map(() => rng.normal());
        for (let tt = start; tt < start + len; tt++)
          ch.forEach((c, i) => (localisation[F(tt, K * G + c)] += signal * amp[i]));
      }
    for (let tt = 0; tt < T; tt++) {
      for (let c = 0; c < C; c++) localisation[F(tt, c)] += fNoise > 0 ? fNoise * rng.normal() : 0;
      const logits = Array.from(
        { length: K + 1 },
        (_, k) => (k === labels[v * T + tt] ? beta : 0) + (rNoise > 0 ? rNoise * rng.normal() : 0),
      );
      const m = Math.max(...logits);
      const z = logits.reduce((a, l) => a + Math.exp(l - m), 0);
      logits.forEach((l, k) => (recognition[(v * T + tt) * (K + 1) + k] = Math.exp(l - m) / z));
    }
  }
  return {
    count: config.count,
    T,
    classes: K,
    channels: C,
    recognition,
    localisation,
    segments,
    labels,
    toTensors: () => ({
      r: tf.tensor3d(recognition, [config.count, T, K + 1]),
      f: tf.tensor3d(localisation, [config.count, T, C]),
    }),
  };
}

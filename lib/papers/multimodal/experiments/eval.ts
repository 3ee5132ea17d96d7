/**
 * Evaluation sets and scores shared by the ToyVLM experiments: colour questions sorted into in-prior and
 * prior-conflicting, POPE-style yes/no probes, captions scored CHAIR-style, and means with 95% confidence intervals.
 */
import * as tf from '@tensorflow/tfjs';
import {
  captionPrompt,
  colourQuestion,
  drawScenes,
  IMAGE_SIZE,
  PRIOR_COLOUR,
  parseCaption,
  probeQuestion,
  type Scene,
  type SceneObject,
  type SceneSplit,
  TOKEN,
} from '../../../data/scenes.js';
import { Rng } from '../../../util/random.js';
import { meanCi } from '../../../util/stats.js';

/** Mean and half-width of its normal 95% confidence interval (1.96 · sd / √n). */
export { meanCi };

/** One colour question: the scene, the object asked about and whether its colour is its shape's prior colour. */
export interface ColourItem {
  scene: Scene;
  object: SceneObject;
  inPrior: boolean;
}

export interface ProbeItem {
  scene: Scene;
  shape: number;
  colour: number;
  present: boolean;
}

/** Images [n, 32, 32, 3] of scenes. */
export function imagesOf(scenes: readonly Scene[]): tf.Tensor4D {
  const data = new Float32Array(scenes.length * IMAGE_SIZE * IMAGE_SIZE * 3);
  scenes.forEach((s, i) => data.set(s.pixels, i * IMAGE_SIZE * IMAGE_SIZE * 3));
  return tf.tensor4d(data, [scenes.length, IMAGE_SIZE, IMAGE_SIZE, 3]);
}

/** Token rows [n, len] of equal-length prompts. */
export function tokensOf(rows: readonly number[][]): tf.Tensor2D {
  return tf.tensor2d(rows.flat(), [rows.length, rows[0].length], 'int32');
}

/**
 * `n` colour questions on fresh scenes of `split` whose colours follow `prior`; half are asked about an object in its
 * prior colour and half about one in another colour (scenes without such an object are skipped), so both groups have
 * n/2 items.
 */
export function colourItems(n: number, seed: number, split: SceneSplit, prior: number): ColourItem[] {
  const want = { in: Math.ceil(n / 2), out: Math.floor(n / 2) };
  const out: ColourItem[] = [];
  const rng = new Rng(seed).fork(`colour-items:${split}`);
  for (let round = 0; want.in + want.out > 0; round++) {
    if (round > 50) throw new Error(`colourItems: could not draw ${n} questions from ${split} with prior ${prior}`);
    for (const scene of drawScenes(4 * n, seed + 7919 * round, split, { prior })) {
      const groups = [
        scene.objects.filter((o) => o.colour === PRIOR_COLOUR[o.shape]),
        scene.objects.filter((o) => o.colour !== PRIOR_COLOUR[o.shape]),
      ];
      const order = rng.next() < 0.5 ? [0, 1] : [1, 0];
      for (const g of order) {
        const key = g === 0 ? 'in' : 'out';
        if (want[key] > 0 && groups[g].length > 0) {
          out.push({ scene, object: groups[g][rng.int(0, groups[g].length)], inPrior: g === 0 });
          want[key]--;
          break;
        }
      }
      if (want.in + want.out === 0) break;
    }
  }
  return out;
}

/** POPE-style probes: half about present objects, half about absent ones in their shape's prior colour. */
export function probeItems(n: number, seed: number, split: SceneSplit, prior: number): ProbeItem[] {
  const rng = new Rng(seed).fork(`probe-items:${split}`);
  return drawScenes(n, seed + 104_729, split, { prior }).map((scene, i) => {
    if (i % 2 === 0) {
      const o = scene.objects[rng.int(0, scene.objects.length)];
      return { scene, shape: o.shape, colour: o.colour, present: true };
    }
    const candidates = [0, 1, 2, 3].filter(
      (s) => !scene.objects.some((o) => o.shape === s && o.colour === PRIOR_COLOUR[s]),
    );
    if (candidates.length === 0) {
      // every shape is there in its prior colour: probe a shape in another colour, which is then absent
      const shape = rng.int(0, 4);
      const colour = [0, 1, 2, 3].filter((c) => c !== PRIOR_COLOUR[shape])[rng.int(0, 3)];
      return { scene, shape, colour, present: false };
    }
    const shape = candidates[rng.int(0, candidates.length)];
    return { scene, shape, colour: PRIOR_COLOUR[shape], present: false };
  });
}

export function colourPrompts(items: readonly ColourItem[]): number[][] {
  return items.map((it) => colourQuestion(it.object.shape));
}

export function probePrompts(items: readonly ProbeItem[]): number[][] {
  return items.map((it) => probeQuestion(it.colour, it.shape));
}

export function captionPrompts(n: number): number[][] {
  return Array.from({ length: n }, () => captionPrompt());
}

/** Per caption: mentions of (colour, shape) pairs absent from the scene, mentions, and scene objects mentioned. */
export function chairCounts(
  scene: Scene,
  tokens: readonly number[],
): { hallucinated: number; mentioned: number; recalled: number } {
  const said = parseCaption(tokens);
  const has = (c: number, s: number) => scene.objects.some((o) => o.colour === c && o.shape === s);
  const hallucinated = said.filter((m) => !has(m.colour, m.shape)).length;
  const recalled = scene.objects.filter((o) => said.some((m) => m.colour === o.colour && m.shape === o.shape)).length;
  return { hallucinated, mentioned: said.length, recalled };
}

/** Whether a colour answer token is the object's colour. */
export function colourCorrect(item: ColourItem, token: number): number {
  return token === TOKEN.colour(item.object.colour) ? 1 : 0;
}

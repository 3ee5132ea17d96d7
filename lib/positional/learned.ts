/**
 * Learned absolute position embeddings (as in BERT and GPT-2): a trainable table `[maxPositions, dim]` whose row p is
 * added to the token at position p,
 *
 *   out[b, s, :] = x[b, s, :] + table[offset + s, :]
 *
 * `offset` is the number of tokens already in a KV cache, so incremental decoding uses the same rows as a full pass.
 * The lookup is a contiguous slice (not a gather): its gradient is fast on every backend, wasm included.
 *
 * Shapes: x [batch, seq, dim], table [maxPositions, dim].
 */
import * as tf from '@tensorflow/tfjs';
import { tfSeed } from '../util/random.js';
import { assertRank, fmt, ShapeError } from '../util/shapes.js';

/** x + table[offset : offset + seq] (broadcast over batch). */
export function addLearnedPositions(x: tf.Tensor, table: tf.Tensor, offset = 0): tf.Tensor3D {
  const fn = 'addLearnedPositions';
  assertRank(fn, 'x', x, 3, '[batch, seq, dim]');
  assertRank(fn, 'table', table, 2, '[maxPositions, dim]');
  const [, seq, dim] = x.shape;
  const [maxPositions, tableDim] = table.shape;
  if (tableDim !== dim)
    throw new ShapeError(`${fn}: table has shape ${fmt(table.shape)} but x has ${fmt(x.shape)}; the dims must match`);
  if (!Number.isInteger(offset) || offset < 0 || offset + seq > maxPositions) {
    throw new ShapeError(
      `${fn}: positions [${offset}, ${offset + seq}) of x ${fmt(x.shape)} exceed the table's maxPositions (${maxPositions}); offset must be an integer in [0, ${maxPositions - seq}]`,
    );
  }
  return tf.tidy(() => tf.add(x, tf.slice(table, [offset, 0], [seq, dim])) as tf.Tensor3D);
}

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface LearnedPositionEmbeddingArgs extends LayerArgs {
  /** Rows in the table: the longest sequence (cache included) the layer accepts. */
  maxPositions: number;
  /** Initial weights ~ N(0, stddev²); default 0.02 (GPT-2). */
  stddev?: number;
  /** Seed of the initializer; omitted: tfjs's unseeded random. */
  seed?: number;
}

/**
 * Adds learned position embeddings to `[batch, seq, dim]` input. A real `tf.layers.Layer`: usable in `tf.sequential` /
 * `tf.model`, trained by `fit`, saved and loaded (registered as `LearnedPositionEmbedding`).
 *
 * ```ts
 * const pos = new LearnedPositionEmbedding({ maxPositions: 512 });
 * const h = pos.apply(tokens) as tf.Tensor;                            // positions 0..seq-1
 * const hNext = pos.apply(newTokens, { positionOffset: cacheLength });  // KV cache: later positions
 * ```
 */
export class LearnedPositionEmbedding extends tf.layers.Layer {
  static className = 'LearnedPositionEmbedding';
  readonly maxPositions: number;
  readonly stddev: number;
  readonly seed: number | undefined;
  private table: tf.LayerVariable | null = null;

  constructor(args: LearnedPositionEmbeddingArgs) {
    super(args);
    const fn = 'LearnedPositionEmbedding';
    if (!Number.isInteger(args.maxPositions) || args.maxPositions <= 0) {
      throw new ShapeError(`${fn}: maxPositions must be a positive integer, got ${args.maxPositions}`);
    }
    this.maxPositions = args.maxPositions;
    this.stddev = args.stddev ?? 0.02;
    if (!(this.stddev >= 0)) throw new ShapeError(`${fn}: stddev must be >= 0, got ${this.stddev}`);
    this.seed = args.seed;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const dim = shape[shape.length - 1];
    if (shape.length !== 3 || dim == null) {
      throw new ShapeError(
        `LearnedPositionEmbedding: input must have shape [batch, seq, dim] with a known dim, got ${JSON.stringify(shape)}`,
      );
    }
    this.table = this.addWeight(
      'embeddings',
      [this.maxPositions, dim],
      'float32',
      tf.initializers.randomNormal({
        mean: 0,
        stddev: this.stddev,
        seed: this.seed === undefined ? undefined : tfSeed(this.seed),
      }),
    );
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  /** kwargs.positionOffset: tokens already cached (default 0). */
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { positionOffset?: number }): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return addLearnedPositions(x, this.table!.read(), kwargs.positionOffset ?? 0);
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      ...super.getConfig(),
      maxPositions: this.maxPositions,
      stddev: this.stddev,
    };
    if (this.seed !== undefined) config.seed = this.seed;
    return config;
  }
}

tf.serialization.registerClass(LearnedPositionEmbedding);

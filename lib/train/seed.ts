/**
 * Seeded weight initialisation: one run seed plus a weight's name gives that weight's own stream, so adding a layer
 * does not change the initial values of the others. The seeds are the ParamFactory's 'mixed' stream (layers/params.ts),
 * the factory models use; these functions serve code that wants a lone tfjs initializer or variable.
 */
import * as tf from '@tensorflow/tfjs';
import { weightSeed } from '../layers/params.js';
import { tfSeed } from '../util/random.js';

export { weightSeed };

/** A tfjs-layers initializer (its class is not exported by name). */
export type Initializer = ReturnType<typeof tf.initializers.glorotUniform>;

export type InitializerKind =
  | 'glorotUniform'
  | 'glorotNormal'
  | 'heNormal'
  | 'heUniform'
  | 'randomNormal'
  | 'truncatedNormal';

/**
 * A tfjs initializer seeded from (seed, name), for `kernelInitializer` or `initializer.apply(shape)`.
 * `stddev` applies to randomNormal / truncatedNormal (default 0.02, GPT-2's).
 */
export function seededInitializer(
  seed: number,
  name: string,
  kind: InitializerKind = 'glorotUniform',
  stddev = 0.02,
): Initializer {
  const s = tfSeed(weightSeed(seed, name));
  switch (kind) {
    case 'glorotUniform':
      return tf.initializers.glorotUniform({ seed: s });
    case 'glorotNormal':
      return tf.initializers.glorotNormal({ seed: s });
    case 'heNormal':
      return tf.initializers.heNormal({ seed: s });
    case 'heUniform':
      return tf.initializers.heUniform({ seed: s });
    case 'randomNormal':
      return tf.initializers.randomNormal({ mean: 0, stddev, seed: s });
    case 'truncatedNormal':
      return tf.initializers.truncatedNormal({ mean: 0, stddev, seed: s });
    default:
      throw new Error(`seededInitializer: unknown kind '${String(kind)}'`);
  }
}

/** A trainable variable named `name`, initialised from (seed, name). */
export function seededVariable(
  seed: number,
  name: string,
  shape: number[],
  kind: InitializerKind = 'glorotUniform',
  stddev = 0.02,
): tf.Variable {
  return tf.tidy(() => tf.variable(seededInitializer(seed, name, kind, stddev).apply(shape), true, name));
}

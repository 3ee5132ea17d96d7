/** Seeded trainable variables with unique names (tfjs rejects two variables of one name), one stream per weight name. */
import * as tf from '@tensorflow/tfjs';
import { seededInitializer } from '../../../train/seed.js';

let models = 0;

export interface ParamFactory {
  glorot(name: string, shape: number[]): tf.Variable;
  normal(name: string, shape: number[], sd: number): tf.Variable;
  constant(name: string, shape: number[], value: number): tf.Variable;
}

export function paramFactory(prefix: string, seed: number): ParamFactory {
  const uid = `${prefix}${models++}`;
  const make = (name: string, init: () => tf.Tensor) => tf.tidy(() => tf.variable(init(), true, `${uid}/${name}`));
  return {
    glorot: (name, shape) => make(name, () => seededInitializer(seed, `${prefix}.${name}`, 'glorotUniform').apply(shape)),
    normal: (name, shape, sd) => make(name, () => seededInitializer(seed, `${prefix}.${name}`, 'randomNormal', sd).apply(shape)),
    constant: (name, shape, value) => make(name, () => tf.fill(shape, value)),
  };
}

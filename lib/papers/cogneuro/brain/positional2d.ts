/**
 * 2-D sine/cosine position encoding for a grid of tokens (as DETR and the transformer brain encoder use): half the
 * channels encode the row, half the column, each with the 1-D sinusoidal encoding of lib/positional.
 *
 *   PE[(r, c)] = [ sinusoidal(r, dim/2) , sinusoidal(c, dim/2) ]      tokens in row-major order, [G*G, dim]
 */
import * as tf from '@tensorflow/tfjs';
import { sinusoidal } from '../../../positional/index.js';
import { ShapeError } from '../../../util/shapes.js';

export function sinusoidal2d(grid: number, dim: number, base = 100): tf.Tensor2D {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0)
    throw new ShapeError(`sinusoidal2d: dim must be a positive even integer, got ${dim}`);
  if (!Number.isInteger(grid) || grid <= 0)
    throw new ShapeError(`sinusoidal2d: grid must be a positive integer, got ${grid}`);
  return tf.tidy(() => {
    const axis = sinusoidal(grid, dim / 2, { base }); // [G, dim/2]
    const rows = tf.tile(axis.expandDims(1), [1, grid, 1]); // [G, G, dim/2]: varies with the row
    const cols = tf.tile(axis.expandDims(0), [grid, 1, 1]); // varies with the column
    return tf.concat([rows, cols], 2).reshape([grid * grid, dim]) as tf.Tensor2D;
  });
}

/**
 * The options every sparse method accepts (scale, causal, compact rotary positions) and the argument checks they share;
 * each check names the function, the option, the expected and the actual value.
 */
import { ShapeError } from '../../util/shapes.js';

/** Options every method accepts. */
export interface SparseBaseOptions {
  /** Multiplies the scores; default 1/sqrt(d). */
  scale?: number;
  /** Decoder attention: query at position p sees keys <= p. Default true. */
  causal?: boolean;
  /**
   * Compact rotary positions (LongHeads, HiP only; the other methods reject it). When set, q and k are given WITHOUT
   * rotary embedding: the method picks its keys from the un-rotated q and k (position-free scores), then rotates the
   * selected keys and the queries (rotate-half RoPE, `base` default 10000) by their compact positions (see the module
   * header), so every query sees query-key distances smaller than its selection's size, i.e. within the trained
   * length, however long the sequence.
   */
  rope?: { base?: number };
}

/** Resolved `options.rope`: undefined when unset; throws, naming `options.rope`, on a bad base or an odd head dim. */
export function checkRope(fn: string, rope: SparseBaseOptions['rope'], dim: number): { base: number } | undefined {
  if (rope === undefined) return undefined;
  const base = rope.base ?? 10000;
  if (!(Number.isFinite(base) && base > 0))
    throw new ShapeError(`${fn}: options.rope.base must be a positive finite number, got ${base}`);
  if (dim % 2 !== 0) throw new ShapeError(`${fn}: options.rope needs an even head dim (rotate-half pairs), got ${dim}`);
  return { base };
}

/** For methods without compact positions: throws, naming `options.rope`, when it is set. */
export function rejectRope(fn: string, options: { rope?: unknown }): void {
  if (options.rope !== undefined) {
    throw new ShapeError(
      `${fn}: options.rope (compact rotary positions) is supported by longHeadsAttention, hipAttention and landmarkAttention only; rotate q and k before calling`,
    );
  }
}

/** `options.scale` resolved (default 1/sqrt(d)); throws, naming it, when not finite. */
export function checkScale(fn: string, scale: number | undefined, dim: number): number {
  const sc = scale ?? 1 / Math.sqrt(dim);
  if (!Number.isFinite(sc)) throw new ShapeError(`${fn}: options.scale must be a finite number, got ${sc}`);
  return sc;
}

/** Throws, naming `options.<arg>`, unless v is undefined or a positive integer. */
export function checkBlock(fn: string, arg: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v <= 0))
    throw new ShapeError(`${fn}: options.${arg} must be a positive integer, got ${v}`);
}

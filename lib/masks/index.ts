/**
 * Typed attention masks.
 *
 * A mask answers one question, `allows(batch, queryPos, keyPos)`, and `materialize(queries, keys)` turns it into a
 * bool tensor `[batch|1, 1, queries, keys]` that broadcasts over heads. Queries are end-aligned with keys: with a KV
 * cache holding `keys` positions, query i sits at absolute position `keys - queries + i`. Masks compose with `and()`.
 * `spec` is a plain description that fused kernels read to decide whether they support the mask.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../util/shapes.js';

export type MaskSpec =
  | { kind: 'causal' }
  | { kind: 'slidingWindow'; window: number }
  | { kind: 'sinkWindow'; sinks: number; window: number }
  | { kind: 'padding'; lengths: number[] }
  | { kind: 'blockDiagonal'; sizes: number[] }
  | { kind: 'and'; parts: MaskSpec[] };

export abstract class Mask {
  abstract readonly spec: MaskSpec;

  /** Whether query at absolute position `q` may attend key at position `k`, in batch row `b`. */
  abstract allows(b: number, q: number, k: number): boolean;

  /** Batch size the mask is tied to (padding lengths), or undefined when it is the same for every row. */
  get batchSize(): number | undefined {
    return undefined;
  }

  /** Check the mask fits `keys` positions; throws a ShapeError naming the problem. */
  check(_queries: number, _keys: number): void {}

  /** Intersection: a key is visible only if every mask allows it. */
  and(...others: Mask[]): Mask {
    return and(this, ...others);
  }

  /** Throw a ShapeError unless the mask applies to `queries` end-aligned with `keys` (so keys >= queries). */
  assertFits(queries: number, keys: number, fn = 'Mask.materialize'): void {
    if (!Number.isInteger(queries) || queries < 1)
      throw new ShapeError(`${fn}: queries must be a positive integer, got ${queries}`);
    if (!Number.isInteger(keys) || keys < queries) {
      throw new ShapeError(`${fn}: keys must be an integer >= queries (${queries}), got ${keys}`);
    }
    this.check(queries, keys);
  }

  /** A bool tensor `[batch|1, 1, queries, keys]` (true = may attend). The caller disposes it. */
  materialize(queries: number, keys: number): tf.Tensor4D {
    this.assertFits(queries, keys);
    const batch = this.batchSize ?? 1;
    const offset = keys - queries;
    const data = new Uint8Array(batch * queries * keys);
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < queries; i++) {
        const row = (b * queries + i) * keys;
        for (let j = 0; j < keys; j++) data[row + j] = this.allows(b, offset + i, j) ? 1 : 0;
      }
    }
    return tf.tensor4d(data, [batch, 1, queries, keys], 'bool');
  }

  /** Rows of 0/1 for one batch row, for printing and plotting. */
  toArray(queries: number, keys = queries, b = 0): number[][] {
    this.check(queries, keys);
    const offset = keys - queries;
    return Array.from({ length: queries }, (_, i) =>
      Array.from({ length: keys }, (_, j) => (this.allows(b, offset + i, j) ? 1 : 0)),
    );
  }

  abstract describe(): string;

  toString(): string {
    return this.describe();
  }
}

class Causal extends Mask {
  readonly spec = { kind: 'causal' } as const;
  allows(_b: number, q: number, k: number): boolean {
    return k <= q;
  }
  describe(): string {
    return 'causal';
  }
}

class SlidingWindow extends Mask {
  readonly spec: MaskSpec;
  constructor(readonly window: number) {
    super();
    this.spec = { kind: 'slidingWindow', window };
  }
  allows(_b: number, q: number, k: number): boolean {
    return k <= q && k > q - this.window;
  }
  describe(): string {
    return `slidingWindow(${this.window})`;
  }
}

class SinkWindow extends Mask {
  readonly spec: MaskSpec;
  constructor(
    readonly sinks: number,
    readonly window: number,
  ) {
    super();
    this.spec = { kind: 'sinkWindow', sinks, window };
  }
  allows(_b: number, q: number, k: number): boolean {
    return k <= q && (k < this.sinks || k > q - this.window);
  }
  describe(): string {
    return `sinkWindow(${this.sinks}, ${this.window})`;
  }
}

class Padding extends Mask {
  readonly spec: MaskSpec;
  constructor(readonly lengths: number[]) {
    super();
    this.spec = { kind: 'padding', lengths: [...lengths] };
  }
  override get batchSize(): number {
    return this.lengths.length;
  }
  override check(_queries: number, keys: number): void {
    const bad = this.lengths.findIndex((l) => l > keys);
    if (bad >= 0)
      throw new ShapeError(`masks.padding: lengths[${bad}] = ${this.lengths[bad]} exceeds the ${keys} keys`);
  }
  allows(b: number, _q: number, k: number): boolean {
    return k < this.lengths[b];
  }
  describe(): string {
    return `padding([${this.lengths.join(',')}])`;
  }
}

class BlockDiagonal extends Mask {
  readonly spec: MaskSpec;
  private readonly segmentOf: Int32Array;
  constructor(readonly sizes: number[]) {
    super();
    this.spec = { kind: 'blockDiagonal', sizes: [...sizes] };
    const total = sizes.reduce((a, b) => a + b, 0);
    this.segmentOf = new Int32Array(total);
    let pos = 0;
    sizes.forEach((s, i) => {
      this.segmentOf.fill(i, pos, pos + s);
      pos += s;
    });
  }
  override check(_queries: number, keys: number): void {
    if (this.segmentOf.length !== keys) {
      throw new ShapeError(
        `masks.blockDiagonal: sizes [${this.sizes.join(',')}] sum to ${this.segmentOf.length}, but there are ${keys} keys`,
      );
    }
  }
  allows(_b: number, q: number, k: number): boolean {
    return this.segmentOf[q] === this.segmentOf[k];
  }
  describe(): string {
    return `blockDiagonal([${this.sizes.join(',')}])`;
  }
}

class Intersection extends Mask {
  readonly spec: MaskSpec;
  constructor(readonly parts: Mask[]) {
    super();
    this.spec = { kind: 'and', parts: parts.map((p) => p.spec) };
    const sizes = new Set(parts.map((p) => p.batchSize).filter((b) => b !== undefined));
    if (sizes.size > 1)
      throw new ShapeError(`masks.and: parts are tied to different batch sizes (${[...sizes].join(', ')})`);
  }
  override get batchSize(): number | undefined {
    return this.parts.map((p) => p.batchSize).find((b) => b !== undefined);
  }
  override check(queries: number, keys: number): void {
    for (const p of this.parts) p.check(queries, keys);
  }
  allows(b: number, q: number, k: number): boolean {
    return this.parts.every((p) => p.allows(b, q, k));
  }
  describe(): string {
    return this.parts.map((p) => p.describe()).join(' & ');
  }
}

function positiveInt(fn: string, arg: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new ShapeError(`masks.${fn}: ${arg} must be a positive integer, got ${v}`);
}

/** Key j visible to query i iff j <= i. */
export function causal(): Mask {
  return new Causal();
}

/** Causal, and only the last `window` positions (the query's own included). */
export function slidingWindow(window: number): Mask {
  positiveInt('slidingWindow', 'window', window);
  return new SlidingWindow(window);
}

/** StreamingLLM-style: the first `sinks` positions plus a causal window of `window` positions. */
export function sinkWindow(sinks: number, window: number): Mask {
  if (!Number.isInteger(sinks) || sinks < 0)
    throw new ShapeError(`masks.sinkWindow: sinks must be an integer >= 0, got ${sinks}`);
  positiveInt('sinkWindow', 'window', window);
  return new SinkWindow(sinks, window);
}

/** Keys at positions >= lengths[b] are padding in batch row b. */
export function padding(lengths: number[]): Mask {
  if (!Array.isArray(lengths) || lengths.length === 0)
    throw new ShapeError('masks.padding: lengths must be a non-empty array, one length per batch row');
  lengths.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0)
      throw new ShapeError(`masks.padding: lengths[${i}] must be an integer >= 0, got ${l}`);
  });
  return new Padding(lengths);
}

/** Packed sequences: positions attend only within their own segment; `sizes` are the segment lengths in order. */
export function blockDiagonal(sizes: number[]): Mask {
  if (!Array.isArray(sizes) || sizes.length === 0)
    throw new ShapeError('masks.blockDiagonal: sizes must be a non-empty array of segment lengths');
  sizes.forEach((s, i) => positiveInt('blockDiagonal', `sizes[${i}]`, s));
  return new BlockDiagonal(sizes);
}

/** Intersection of masks. */
export function and(...parts: Mask[]): Mask {
  if (parts.length === 0) throw new ShapeError('masks.and: needs at least one mask');
  const flat = parts.flatMap((p) => (p instanceof Intersection ? p.parts : [p]));
  return flat.length === 1 ? flat[0] : new Intersection(flat);
}

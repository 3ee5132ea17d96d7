/**
 * Config schemas: every experiment config is a plain, JSON-serialisable object described by a schema, so a user's
 * overrides can be checked before any work starts. An unknown key, a wrong type or an out-of-range value is a
 * `ConfigError` naming the key's path, what was expected and what was given:
 *
 *   config.steps must be an integer >= 1, got "x"
 *   config.nosuch is not a setting (settings: seqLen, vocabSize, ...)
 *
 * A schema is typed against its config interface (`Schema<C>` has one field per key of C, optional keys wrapped in
 * `opt`), so a config and its schema cannot drift apart without a type error.
 *
 *   const schema = obj<MyConfig>({ steps: int({ min: 1 }), lr: num({ gt: 0 }), models: list(oneOf('a', 'b'), { min: 1 }) });
 */

/** One key's description: what it accepts, and the check. T is the type of the value it accepts. */
export interface Field<T> {
  /** What the field accepts, as read in an error: "an integer >= 1". */
  readonly expects: string;
  /** Appends one message per problem found in `value` at `path`. */
  check(value: unknown, path: string, errors: string[]): void;
  /** Object fields only: their keys' fields (overrides merge into them key by key). */
  readonly shape?: Record<string, Field<unknown>>;
  /** The key may be left out (`opt`). */
  readonly optional?: boolean;
  /** Keeps T in the type (a Field<number> is not a Field<string>). */
  readonly _type?: (t: T) => T;
}

/** One field per key of C; keys that C makes optional take `opt(...)`. */
export type Schema<C> = { [K in keyof C]-?: Field<C[K]> };

/** A config's schema, as `obj` returns it. */
export type ConfigSchema<C> = Field<C> & { readonly shape: Record<string, Field<unknown>> };

/** The config was not valid; `problems` lists every message (the error's message joins them). */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly problems: string[],
    prefix = '',
  ) {
    super(`${prefix}${problems.join('; ')}`);
  }
}

const show = (v: unknown): string => {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

interface Range {
  /** Inclusive bounds. */
  min?: number;
  max?: number;
  /** Exclusive lower bound (e.g. a learning rate > 0). */
  gt?: number;
}

function rangeText(r: Range): string {
  const parts: string[] = [];
  if (r.gt !== undefined) parts.push(`> ${r.gt}`);
  if (r.min !== undefined) parts.push(`>= ${r.min}`);
  if (r.max !== undefined) parts.push(`<= ${r.max}`);
  return parts.length ? ` ${parts.join(' and ')}` : '';
}

function numeric(integer: boolean, r: Range): Field<number> {
  const expects = `${integer ? 'an integer' : 'a number'}${rangeText(r)}`;
  return {
    expects,
    check(v, path, errors) {
      const ok =
        typeof v === 'number' &&
        Number.isFinite(v) &&
        (!integer || Number.isInteger(v)) &&
        (r.min === undefined || v >= r.min) &&
        (r.max === undefined || v <= r.max) &&
        (r.gt === undefined || v > r.gt);
      if (!ok) errors.push(`${path} must be ${expects}, got ${show(v)}`);
    },
  };
}

/** An integer, optionally within bounds. */
export const int = (r: Range = {}): Field<number> => numeric(true, r);
/** A finite number, optionally within bounds. */
export const num = (r: Range = {}): Field<number> => numeric(false, r);

export function bool(): Field<boolean> {
  return {
    expects: 'true or false',
    check(v, path, errors) {
      if (typeof v !== 'boolean') errors.push(`${path} must be true or false, got ${show(v)}`);
    },
  };
}

/** A string; `nonEmpty` (default true) rejects "". */
export function str(nonEmpty = true): Field<string> {
  const expects = nonEmpty ? 'a non-empty string' : 'a string';
  return {
    expects,
    check(v, path, errors) {
      if (typeof v !== 'string' || (nonEmpty && v === '')) errors.push(`${path} must be ${expects}, got ${show(v)}`);
    },
  };
}

/** One of the listed values (strings or numbers). */
export function oneOf<const V extends string | number>(...values: V[]): Field<V> {
  const expects = `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
  return {
    expects,
    check(v, path, errors) {
      if (!(values as unknown[]).includes(v)) errors.push(`${path} must be ${expects}, got ${show(v)}`);
    },
  };
}

/** An array of items, its length optionally bounded; `unique` rejects repeated items. */
export function list<T>(item: Field<T>, opts: { min?: number; max?: number; unique?: boolean } = {}): Field<T[]> {
  const len = rangeText({ min: opts.min, max: opts.max });
  const expects = `a list${len ? ` of length${len}` : ''} of ${item.expects}${opts.unique ? ', without repeats' : ''}`;
  return {
    expects,
    check(v, path, errors) {
      if (!Array.isArray(v)) {
        errors.push(`${path} must be ${expects}, got ${show(v)}`);
        return;
      }
      if ((opts.min !== undefined && v.length < opts.min) || (opts.max !== undefined && v.length > opts.max)) {
        errors.push(`${path} must have length${len}, got ${v.length} items`);
      }
      v.forEach((x, i) => item.check(x, `${path}[${i}]`, errors));
      if (opts.unique) {
        const seen = new Set<string>();
        for (const x of v) {
          const key = JSON.stringify(x);
          if (seen.has(key)) errors.push(`${path} lists ${show(x)} twice`);
          seen.add(key);
        }
      }
    },
  };
}

/** A fixed-length array whose entries each have their own field: `tuple(int(), int())` for [number, number]. */
export function tuple<const T extends unknown[]>(...items: { [I in keyof T]: Field<T[I]> }): Field<T> {
  const expects = `a list of ${items.length}: [${items.map((f) => f.expects).join(', ')}]`;
  return {
    expects,
    check(v, path, errors) {
      if (!Array.isArray(v) || v.length !== items.length) {
        errors.push(`${path} must be ${expects}, got ${show(v)}`);
        return;
      }
      items.forEach((f, i) => (f as Field<unknown>).check(v[i], `${path}[${i}]`, errors));
    },
  };
}

/** The key may be absent (or undefined). */
export function opt<T>(field: Field<T>): Field<T | undefined> {
  return {
    expects: `${field.expects} (optional)`,
    shape: field.shape,
    optional: true,
    check(v, path, errors) {
      if (v !== undefined) field.check(v, path, errors);
    },
  };
}

/** An object with exactly these keys: a missing required key or an unknown key is an error. */
export function obj<C>(shape: Schema<C>): ConfigSchema<C> {
  const fields = shape as Record<string, Field<unknown>>;
  const keys = Object.keys(fields);
  return {
    expects: `an object with keys ${keys.join(', ')}`,
    shape: fields,
    check(v, path, errors) {
      if (!isPlainObject(v)) {
        errors.push(`${path} must be an object with keys ${keys.join(', ')}, got ${show(v)}`);
        return;
      }
      for (const k of Object.keys(v)) {
        if (!(k in fields)) errors.push(`${path}.${k} is not a setting (settings: ${keys.join(', ')})`);
      }
      for (const k of keys) {
        if (v[k] === undefined && !fields[k].optional)
          errors.push(`${path}.${k} is missing: it must be ${fields[k].expects}`);
        else fields[k].check(v[k], `${path}.${k}`, errors);
      }
    },
  };
}

/**
 * `overrides` over `base`, key by key into nested objects (so `{ seer: { steps: 1 } }` keeps the other seer
 * settings); arrays and other values replace. Neither argument is modified.
 */
export function deepMerge<C>(base: C, overrides: unknown): C {
  if (!isPlainObject(base) || !isPlainObject(overrides)) return (overrides === undefined ? base : overrides) as C;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(overrides))
    out[k] = isPlainObject(out[k]) && isPlainObject(v) ? deepMerge(out[k], v) : v;
  return out as C;
}

/** Deep-copies a JSON-like value, so a caller's later edits cannot reach a validated config. */
export function cloneConfig<C>(c: C): C {
  return structuredClone(c);
}

/** Throws a ConfigError listing every problem of `value` against `schema`; returns it typed otherwise. */
export function validate<C>(schema: Field<C>, value: unknown, prefix = ''): C {
  const errors: string[] = [];
  schema.check(value, 'config', errors);
  if (errors.length) throw new ConfigError(errors, prefix);
  return value as C;
}

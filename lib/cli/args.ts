import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** A small argv parser: `--flag`, `--key value`, `--key=value`, positionals. Unknown flags are errors. */
export interface Parsed {
  positionals: string[];
  flags: Record<string, string | true>;
}

export function parseArgs(argv: string[], known: { flags?: string[]; options?: string[] }, command: string): Parsed {
  const flags: Record<string, string | true> = {};
  const positionals: string[] = [];
  const f = new Set(known.flags ?? []);
  const o = new Set(known.options ?? []);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const [key, inline] = a.slice(2).split(/=(.*)/s, 2);
    if (f.has(key)) {
      if (inline !== undefined) throw new UsageError(`${command}: --${key} takes no value`);
      flags[key] = true;
    } else if (o.has(key)) {
      const v = inline ?? argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${command}: --${key} needs a value`);
      flags[key] = v;
    } else {
      const all = [...f, ...o].map((k) => `--${k}`).join(', ');
      throw new UsageError(`${command}: unknown option --${key}${all ? ` (known: ${all})` : ''}`);
    }
  }
  return { positionals, flags };
}

export class UsageError extends Error {
  override name = 'UsageError';
}

function stat(p: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined; // ENOTDIR: a file on the way, found further up
    throw e;
  }
}

function writable(p: string): boolean {
  try {
    accessSync(p, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Why a folder could not be created at `dir` (its nearest existing ancestor is a file or not writable), or undefined. */
function creatable(dir: string): string | undefined {
  let d = dir;
  while (!stat(d)) {
    const up = dirname(d);
    if (up === d) return `no part of ${dir} exists`;
    d = up;
  }
  if (!stat(d)!.isDirectory()) return `${d} is a file, so no folder can be made under it`;
  if (!writable(d)) return `the folder ${d} is not writable`;
  return undefined;
}

/**
 * Why `file` cannot be written (it is a folder, is read-only, or its folder cannot be made), or undefined when it can.
 * Commands check their --out with it before any work starts, so a long run is never lost to a typo.
 */
export function outputFileProblem(file: string): string | undefined {
  const p = resolve(file);
  const s = stat(p);
  if (s?.isDirectory()) return `${p} is a folder; give a file name`;
  if (s) return writable(p) ? undefined : `${p} exists and is not writable`;
  return creatable(dirname(p));
}

/** Why `dir` cannot be used as an output folder (it is a file, is read-only, or cannot be made), or undefined. */
export function outputDirProblem(dir: string): string | undefined {
  const p = resolve(dir);
  const s = stat(p);
  if (s && !s.isDirectory()) return `${p} is a file, not a folder`;
  if (s) return writable(p) ? undefined : `the folder ${p} is not writable`;
  return creatable(p);
}

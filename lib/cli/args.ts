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

/**
 * The layout's rules, read from the import statements of lib/ (see lib/papers/README.md):
 * - infrastructure (every folder of lib/ but papers/ and the two files on top) never imports a paper, the catalog or
 *   the command line;
 * - no import circle anywhere in lib/;
 * - every file that defines an experiment is reached from lib/catalog.ts (nothing registers by being imported).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const lib = join(root, 'lib');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'build' || e.name === 'node_modules' ? [] : sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

const files = sources(lib);
const rel = (p: string) => relative(root, p);
/** Each file's relative imports (static, dynamic and re-exports), as repository paths of .ts files. */
const graph = new Map<string, string[]>(
  files.map((f) => {
    const text = readFileSync(f, 'utf8');
    const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]);
    return [rel(f), specs.map((s) => rel(resolve(dirname(f), s.replace(/\.js$/, '.ts'))))];
  }),
);

const INFRASTRUCTURE = [
  'backend',
  'attention',
  'masks',
  'positional',
  'layers',
  'train',
  'data',
  'display',
  'experiments',
  'bench',
  'util',
];
const TOP = ['lib/papers/', 'lib/catalog.ts', 'lib/cli/', 'lib/index.ts'];

describe('layout', () => {
  it('reads a plausible import graph', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(graph.get('lib/catalog.ts')).toContain('lib/experiments/contract.ts');
  });

  it('infrastructure never imports a paper, the catalog, the command line or the package root', () => {
    const upward: string[] = [];
    for (const [file, deps] of graph) {
      const folder = file.split('/')[1];
      if (!INFRASTRUCTURE.includes(folder)) continue;
      for (const d of deps) if (TOP.some((t) => d.startsWith(t))) upward.push(`${file} -> ${d}`);
    }
    expect(upward).toEqual([]);
  });

  it('has no import circle', () => {
    // Tarjan's strongly connected components; any component of more than one file is a circle.
    let index = 0;
    const idx = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const on = new Set<string>();
    const circles: string[][] = [];
    const visit = (v: string) => {
      idx.set(v, index);
      low.set(v, index++);
      stack.push(v);
      on.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!graph.has(w)) continue;
        if (!idx.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
      if (low.get(v) === idx.get(v)) {
        const comp: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          on.delete(w);
          comp.push(w);
        } while (w !== v);
        if (comp.length > 1) circles.push(comp.sort());
      }
    };
    for (const v of graph.keys()) if (!idx.has(v)) visit(v);
    expect(circles).toEqual([]);
  });

  it('every file that defines an experiment is reached from the catalog', () => {
    const reached = new Set<string>();
    const walk = (f: string) => {
      if (reached.has(f)) return;
      reached.add(f);
      for (const d of graph.get(f) ?? []) walk(d);
    };
    walk('lib/catalog.ts');
    const defining = files
      .map(rel)
      .filter(
        (f) => f !== 'lib/experiments/contract.ts' && /defineExperiment[<(]/.test(readFileSync(join(root, f), 'utf8')),
      );
    expect(defining.length).toBeGreaterThan(5);
    expect(defining.filter((f) => !reached.has(f))).toEqual([]);
  });
});

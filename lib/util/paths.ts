/**
 * Where the attnlab package lives on disk, found from this module (works from lib/ sources and from dist/lib/). The one
 * package-root finder: the native addon's path, the Jupyter kernel (kernel/paths.ts) and the CLI all ask it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, 'package.json');
    if (existsSync(p) && (JSON.parse(readFileSync(p, 'utf8')) as { name?: string }).name === 'attnlab')
      return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`attnlab: cannot find the package root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The version field of a package resolvable from the attnlab root, or undefined when it is not installed. */
export function installedVersion(pkg: string): string | undefined {
  const p = join(packageRoot(), 'node_modules', pkg, 'package.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version : undefined;
}

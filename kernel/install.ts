/**
 * Writes the `attnlab` kernelspec (kernel.json and a logo) with absolute paths, so Jupyter starts the kernel with
 * this Node binary and this package's build, whatever PATH holds. No Python involved.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { plotlyFileName, plotlyScriptSource } from '../lib/display/plotly.js';
import { heatmapPng } from '../lib/display/png.js';
import { PACKAGE_ROOT } from './paths.js';

export const KERNEL_NAME = 'attnlab';
export const DISPLAY_NAME = 'TypeScript (attnlab)';

export interface InstallOptions {
  /** Install under the per-user Jupyter data directory (the default when not root). */
  user?: boolean;
  /** Install under `PREFIX/share/jupyter/kernels/` (a virtualenv, a test's temporary Jupyter path). */
  prefix?: string;
  /** The package root whose `dist/kernel/main.js` runs; defaults to this package. */
  root?: string;
  /** Told when the install re-points a kernelspec that ran another checkout (default: `console.warn`). */
  warn?: (message: string) => void;
}

/** Jupyter's per-user data directory, as `jupyter --data-dir` reports it. */
export function userDataDir(): string {
  if (process.env.JUPYTER_DATA_DIR) return process.env.JUPYTER_DATA_DIR;
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Jupyter');
  if (process.platform === 'win32') return join(process.env.APPDATA ?? homedir(), 'jupyter');
  return join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'jupyter');
}

export function systemDataDir(): string {
  return process.platform === 'win32'
    ? join(process.env.PROGRAMDATA ?? 'C:\\ProgramData', 'jupyter')
    : '/usr/local/share/jupyter';
}

export function kernelSpecDir(opts: InstallOptions = {}): string {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const dataDir = opts.prefix
    ? join(opts.prefix, 'share', 'jupyter')
    : opts.user || !isRoot
      ? userDataDir()
      : systemDataDir();
  return join(dataDir, 'kernels', KERNEL_NAME);
}

export function kernelSpec(root: string): Record<string, unknown> {
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  return {
    argv: [
      process.execPath,
      '--enable-source-maps',
      join(root, 'dist', 'kernel', 'main.js'),
      '--connection-file',
      '{connection_file}',
    ],
    display_name: DISPLAY_NAME,
    language: 'typescript',
    interrupt_mode: 'signal',
    metadata: { attnlab: { root, version } },
  };
}

/** A 64x64 logo: a causal attention pattern (lower triangle, strongest on the diagonal). */
function logo(size: number): Buffer {
  const n = 8;
  const values = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) values[i * n + j] = j === i ? 1 : 0.35 + 0.3 * (j / n);
  return heatmapPng(values, n, n, size / n);
}

/** The checkout an installed kernelspec runs (its metadata, or the path of its `main.js`), if there is one. */
export function installedRoot(dir: string): string | undefined {
  try {
    const spec = JSON.parse(readFileSync(join(dir, 'kernel.json'), 'utf8')) as {
      argv?: string[];
      metadata?: { attnlab?: { root?: string } };
    };
    const main = spec.argv?.find((a) => a.endsWith(join('dist', 'kernel', 'main.js')));
    return spec.metadata?.attnlab?.root ?? (main ? resolve(main, '..', '..', '..') : undefined);
  } catch {
    return undefined;
  }
}

/**
 * Write the kernelspec; returns its directory. The spec is user-wide (one `attnlab` for every notebook), so installing
 * from a second checkout makes every notebook run that checkout's kernel: that is said, naming both checkouts.
 */
export function installKernelSpec(opts: InstallOptions = {}): string {
  const root = opts.root ?? PACKAGE_ROOT;
  const entry = join(root, 'dist', 'kernel', 'main.js');
  if (!existsSync(entry)) throw new Error(`kernel install: ${entry} does not exist; build first (npm run build)`);
  const dir = kernelSpecDir(opts);
  const previous = installedRoot(dir);
  if (previous !== undefined && resolve(previous) !== resolve(root))
    (opts.warn ?? console.warn)(
      `attnlab kernel install: the "${KERNEL_NAME}" kernelspec in ${dir} ran the checkout ${previous}; it now runs ` +
        `${resolve(root)}, for every notebook that uses it (install with --prefix for a kernelspec per checkout)`,
    );
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'kernel.json'), `${JSON.stringify(kernelSpec(root), null, 2)}\n`);
  writeFileSync(join(dir, 'logo-64x64.png'), logo(64));
  writeFileSync(join(dir, 'logo-32x32.png'), logo(32));
  // Served by Jupyter at <base>/kernelspecs/attnlab/<file>: figures drawn on a reloaded page load plotly.js from it.
  for (const f of readdirSync(dir)) if (/^plotly-.*\.min\.js$/.test(f)) rmSync(join(dir, f));
  writeFileSync(join(dir, plotlyFileName()), plotlyScriptSource());
  return dir;
}

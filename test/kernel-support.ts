/** Shared by the kernel, notebook and report tests: a built kernel, a private kernelspec, and the Python to drive it. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');

/** Build `dist/` when the kernel is missing (tsc emits even while other files of the tree have type errors). */
export function ensureBuilt(): void {
  if (
    existsSync(join(ROOT, 'dist', 'kernel', 'main.js')) &&
    existsSync(join(ROOT, 'dist', 'lib', 'display', 'index.js'))
  )
    return;
  spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')],
    { stdio: 'inherit' },
  );
  if (!existsSync(join(ROOT, 'dist', 'kernel', 'main.js'))) throw new Error('dist/kernel/main.js is missing after tsc');
}

/** A Python 3 that has Jupyter's client libraries (Debian's, not a pyenv shim that lacks them). */
export function jupyterPython(): string {
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(candidate, ['-c', 'import jupyter_client, nbformat'], { stdio: 'ignore' });
    if (r.status === 0) return candidate;
  }
  throw new Error('no python3 with jupyter_client and nbformat (apt-get install -y jupyter-client python3-nbclient)');
}

/** Install the attnlab kernelspec under a fresh temporary prefix; returns the env that makes Jupyter find it. */
export async function privateKernelEnv(): Promise<NodeJS.ProcessEnv> {
  ensureBuilt();
  const prefix = mkdtempSync(join(tmpdir(), 'attnlab-jupyter-'));
  const { installKernelSpec } = (await import(
    join(ROOT, 'dist', 'kernel', 'install.js')
  )) as typeof import('../kernel/install.js');
  installKernelSpec({ prefix, root: ROOT });
  return { ...process.env, JUPYTER_PATH: join(prefix, 'share', 'jupyter') };
}

export function hasCommand(cmd: string, args: string[] = ['--version']): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const CHROMIUM = '/usr/bin/chromium';

export interface RenderCheck {
  figures: number;
  rendered: number;
  /** Requests to anything but file: and data: URLs (all blocked). */
  blocked: string[];
  pageErrors: string[];
  /** The text of each figure that was not drawn (what it says instead). */
  undrawn: string[];
}

export interface RenderOptions {
  timeoutMs?: number;
  /** Open `url` instead of `file://htmlFile`, answering requests to it and to each key of `serve` (a URL) with the file. */
  url?: string;
  serve?: Record<string, string>;
}

/**
 * Open an HTML file in headless Chromium with the network cut off and count figures (`.attnlab-plot`) that plotly
 * drew (`.main-svg` inside). Waits until every figure is drawn or `timeoutMs` passes.
 */
export async function renderInChromium(htmlFile: string, opts: RenderOptions = {}): Promise<RenderCheck> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const served: Record<string, string> = { ...opts.serve, ...(opts.url ? { [opts.url]: htmlFile } : {}) };
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage();
    const blocked: string[] = [];
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
      const file = served[url];
      if (file) return route.fulfill({ path: file });
      blocked.push(url);
      return route.abort();
    });
    await page.goto(opts.url ?? `file://${htmlFile}`, { waitUntil: 'load', timeout: timeoutMs });
    const count = () =>
      page.evaluate(() => {
        const plots = Array.from(document.querySelectorAll('.attnlab-plot'));
        const drawn = (p: Element) => p.querySelector('.main-svg') !== null;
        return {
          figures: plots.length,
          rendered: plots.filter(drawn).length,
          undrawn: plots.filter((p) => !drawn(p)).map((p) => p.textContent ?? ''),
        };
      });
    await page
      .waitForFunction(
        // Drawn, or saying why not.
        () =>
          Array.from(document.querySelectorAll('.attnlab-plot')).every(
            (p) => p.querySelector('.main-svg') || p.textContent,
          ),
        undefined,
        { timeout: timeoutMs },
      )
      .catch(() => undefined);
    return { ...(await count()), blocked, pageErrors };
  } finally {
    await browser.close();
  }
}

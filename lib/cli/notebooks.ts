/**
 * `attnlab run` and `attnlab report`: execute notebooks headlessly with this package's kernel.
 *
 *   attnlab run [--quick] [--timeout S] NOTEBOOK...            exit 1 naming the notebook and cell when a cell fails
 *   attnlab report [--out DIR] [--quick] [--timeout S] NOTEBOOK...
 *                                                             self-contained HTML per notebook plus index.html
 *
 * Execution is Jupyter's own (nbclient, via scripts/kernel-nbrun.py). The kernelspec used is written to a private
 * temporary Jupyter path on every run, so the run always uses this checkout's kernel whatever else is installed.
 * `--quick` sets ATTNLAB_QUICK=1 in the kernel's environment: notebooks read it to shrink their workloads.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, join, relative, resolve } from 'node:path';
import { installKernelSpec, KERNEL_NAME } from '../../kernel/install.js';
import { escapeHtml } from '../display/html.js';
import { plotlyScript } from '../display/plotly.js';
import { packageRoot } from '../util/paths.js';

export const QUICK_ENV = 'ATTNLAB_QUICK';

export interface NotebookResult {
  notebook: string;
  title: string;
  ok: boolean;
  seconds: number;
  /** 1-based index among all cells of the cell that failed. */
  cell?: number;
  source?: string;
  ename?: string;
  evalue?: string;
  html?: string;
}

interface Options {
  notebooks: string[];
  quick: boolean;
  timeout: number;
  out: string;
}

function parse(argv: string[], command: string): Options | string {
  const o: Options = { notebooks: [], quick: false, timeout: 1800, out: 'reports' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') o.quick = true;
    else if (a === '--timeout' || a === '--out') {
      const v = argv[++i];
      if (v === undefined) return `${a} needs a value`;
      if (a === '--out') o.out = v;
      else if (!(Number(v) > 0)) return `--timeout takes seconds per cell, got ${JSON.stringify(v)}`;
      else o.timeout = Number(v);
    } else if (a.startsWith('--')) return `unknown option ${a}`;
    else o.notebooks.push(a);
  }
  if (o.notebooks.length === 0) return `${command} needs at least one NOTEBOOK.ipynb`;
  const missing = o.notebooks.filter((n) => !existsSync(n));
  if (missing.length) return `no such notebook: ${missing.join(', ')}`;
  return o;
}

function jupyterPython(): string {
  for (const candidate of [process.env.ATTNLAB_PYTHON, '/usr/bin/python3', 'python3']) {
    if (!candidate) continue;
    const r = spawnSync(candidate, ['-c', 'import nbclient, nbconvert'], { stdio: 'ignore' });
    if (r.status === 0) return candidate;
  }
  throw new Error('needs Python 3 with nbclient and nbconvert: apt-get install -y python3-nbclient jupyter-nbconvert');
}

/**
 * Execute `notebooks` with the attnlab kernel; with `htmlDir`, also export each to HTML there. Resolves with one
 * result per notebook, in order.
 */
export async function executeNotebooks(
  notebooks: string[],
  opts: { quick?: boolean; timeout?: number; htmlDir?: string; onResult?: (r: NotebookResult) => void } = {},
): Promise<NotebookResult[]> {
  const prefix = mkdtempSync(join(tmpdir(), 'attnlab-kernelspec-'));
  try {
    installKernelSpec({ prefix });
    const jupyterPath = [join(prefix, 'share', 'jupyter'), process.env.JUPYTER_PATH].filter(Boolean).join(delimiter);
    const env: NodeJS.ProcessEnv = { ...process.env, JUPYTER_PATH: jupyterPath };
    if (opts.quick) env[QUICK_ENV] = '1';
    const args = [
      join(packageRoot(), 'scripts', 'kernel-nbrun.py'),
      '--kernel',
      KERNEL_NAME,
      '--timeout',
      String(opts.timeout ?? 1800),
    ];
    if (opts.htmlDir) args.push('--html-dir', opts.htmlDir);
    const child = spawn(jupyterPython(), [...args, ...notebooks], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const results: NotebookResult[] = [];
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.startsWith('@@attnlab ')) {
          const r = JSON.parse(line.slice('@@attnlab '.length)) as NotebookResult;
          results.push(r);
          opts.onResult?.(r);
        } else if (line) process.stdout.write(`${line}\n`);
      }
    });
    const code = await new Promise<number>((res, rej) => {
      child.on('error', rej);
      child.on('close', (c) => res(c ?? 1));
    });
    if (results.length !== notebooks.length) {
      throw new Error(
        `notebook runner exited with code ${code} after ${results.length} of ${notebooks.length} notebooks`,
      );
    }
    return results;
  } finally {
    rmSync(prefix, { recursive: true, force: true });
  }
}

function describeFailure(r: NotebookResult): string {
  const where = r.cell ? `cell ${r.cell}${r.source ? ` (${r.source})` : ''}` : 'before any cell ran';
  return `${r.notebook}: ${where}: ${r.ename ?? 'Error'}: ${r.evalue ?? ''}`.trimEnd();
}

function printResult(r: NotebookResult): void {
  if (r.ok) console.log(`ok    ${r.notebook} (${r.seconds.toFixed(1)} s)`);
  else console.error(`FAIL  ${describeFailure(r)}`);
}

export async function runCommand(argv: string[]): Promise<number> {
  const o = parse(argv, 'attnlab run');
  if (typeof o === 'string') {
    console.error(`attnlab run: ${o}\nusage: attnlab run [--quick] [--timeout SECONDS] NOTEBOOK...`);
    return 2;
  }
  const results = await executeNotebooks(o.notebooks, { quick: o.quick, timeout: o.timeout, onResult: printResult });
  return results.every((r) => r.ok) ? 0 : 1;
}

/**
 * Make an nbconvert HTML export self-contained: drop `<script src=...>` (nbconvert's require.js and MathJax links,
 * unused by the outputs), and keep exactly one copy of plotly.js, before the first figure, when there are figures.
 */
export function selfContained(html: string): string {
  let out = html.replace(/<script\b[^>]*\bsrc\s*=[^>]*>\s*<\/script>/gi, '');
  const embed = /<script type="text\/javascript" data-attnlab-plotly="[^"]*">[\s\S]*?<\/script>/g;
  const copies = out.match(embed)?.length ?? 0;
  const hasFigures = out.includes('class="attnlab-plot"');
  if (copies > 1) {
    let seen = 0;
    out = out.replace(embed, (m) => (seen++ === 0 ? m : ''));
  } else if (copies === 0 && hasFigures) {
    out = out.replace(/<\/head>/i, `${plotlyScript()}</head>`);
  }
  return out;
}

function indexPage(results: NotebookResult[], outDir: string): string {
  const rows = results
    .map((r) => {
      const href = r.html ? relative(outDir, r.html) : '';
      const size = r.html ? `${(statSync(r.html).size / 1e6).toFixed(1)} MB` : '';
      const status = r.ok ? 'ok' : `failed at ${escapeHtml(describeFailure(r).slice(r.notebook.length + 2))}`;
      return (
        `<tr><td><a href="${escapeHtml(href)}">${escapeHtml(r.title)}</a></td><td>${escapeHtml(basename(r.notebook))}</td>` +
        `<td>${status}</td><td>${r.seconds.toFixed(1)} s</td><td>${size}</td></tr>`
      );
    })
    .join('\n');
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>attnlab reports</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}td,th{padding:4px 12px;text-align:left;border-bottom:1px solid #ddd}</style>
</head><body><h1>attnlab reports</h1>
<p>Generated ${escapeHtml(new Date().toISOString())}. Each report is a single HTML file that renders offline.</p>
<table><thead><tr><th>report</th><th>notebook</th><th>status</th><th>run time</th><th>size</th></tr></thead><tbody>
${rows}
</tbody></table></body></html>
`;
}

export async function reportCommand(argv: string[]): Promise<number> {
  const o = parse(argv, 'attnlab report');
  if (typeof o === 'string') {
    console.error(`attnlab report: ${o}\nusage: attnlab report [--out DIR] [--quick] [--timeout SECONDS] NOTEBOOK...`);
    return 2;
  }
  const outDir = resolve(o.out);
  mkdirSync(outDir, { recursive: true });
  const results = await executeNotebooks(o.notebooks, {
    quick: o.quick,
    timeout: o.timeout,
    htmlDir: outDir,
    onResult: printResult,
  });
  for (const r of results) {
    if (r.html) writeFileSync(r.html, selfContained(readFileSync(r.html, 'utf8')));
  }
  const index = join(outDir, 'index.html');
  writeFileSync(index, indexPage(results, outDir));
  console.log(`wrote ${results.filter((r) => r.html).length} report(s) and ${index}`);
  return results.every((r) => r.ok) ? 0 : 1;
}

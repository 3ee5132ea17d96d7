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
 *
 * A batch survives a bad notebook: a file that is not notebook JSON is a failed result naming the file (and the line
 * and column of a JSON error) without reaching Jupyter, and if the runner dies on a notebook (an nbformat error, a
 * crash), that notebook fails with the runner's last error line and the runner restarts on the ones after it. `report`
 * checks that --out can be written before anything runs, and always writes index.html, failures included.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, join, relative, resolve } from 'node:path';
import { installKernelSpec, KERNEL_NAME } from '../../kernel/install.js';
import { escapeHtml } from '../display/html.js';
import { plotlyScript } from '../display/plotly.js';
import { packageRoot } from '../util/paths.js';
import { outputDirProblem } from './args.js';

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
  if (command === 'attnlab report') {
    const problem = outputDirProblem(o.out);
    if (problem) return `--out ${o.out}: ${problem}`;
  }
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

/** Why `path` is not a notebook Jupyter can read (not JSON, or no cells), or undefined. */
function notebookProblem(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return `cannot be read (${(e as Error).message})`;
  }
  let nb: unknown;
  try {
    nb = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    if (pos) {
      const before = text.slice(0, Number(pos[1])).split('\n');
      return `not valid notebook JSON at line ${before.length}, column ${before[before.length - 1].length + 1} (${msg})`;
    }
    return `not valid notebook JSON (${msg})`;
  }
  const o = nb as { cells?: unknown; worksheets?: unknown; nbformat?: unknown };
  if (typeof nb !== 'object' || nb === null || Array.isArray(nb))
    return `a notebook is a JSON object, this file holds ${Array.isArray(nb) ? 'an array' : typeof nb}`;
  if (!Array.isArray(o.cells) && !Array.isArray(o.worksheets))
    return `not a notebook (no "cells" list; nbformat ${JSON.stringify(o.nbformat ?? null)})`;
  return undefined;
}

/** The program that executes notebooks and prints `@@attnlab {json}` per notebook (for tests: a stand-in). */
export interface NotebookRunner {
  command: string;
  args: string[];
}

/**
 * Execute `notebooks` with the attnlab kernel; with `htmlDir`, also export each to HTML there. Resolves with one
 * result per notebook, in order; a notebook that cannot be read or kills the runner is a failed result naming it.
 */
export async function executeNotebooks(
  notebooks: string[],
  opts: {
    quick?: boolean;
    timeout?: number;
    htmlDir?: string;
    onResult?: (r: NotebookResult) => void;
    runner?: NotebookRunner;
  } = {},
): Promise<NotebookResult[]> {
  const results = new Map<number, NotebookResult>();
  const failed = (notebook: string, ename: string, evalue: string): NotebookResult => ({
    notebook,
    title: basename(notebook).replace(/\.ipynb$/i, ''),
    ok: false,
    seconds: 0,
    ename,
    evalue,
  });
  const report = (i: number, r: NotebookResult) => {
    results.set(i, r);
    opts.onResult?.(r);
  };
  const runnable: number[] = [];
  notebooks.forEach((nb, i) => {
    const problem = notebookProblem(nb);
    if (problem) report(i, failed(nb, 'NotebookFormatError', problem));
    else runnable.push(i);
  });
  if (runnable.length) {
    const prefix = mkdtempSync(join(tmpdir(), 'attnlab-kernelspec-'));
    try {
      let runner = opts.runner;
      const env: NodeJS.ProcessEnv = { ...process.env };
      if (!runner) {
        installKernelSpec({ prefix });
        env.JUPYTER_PATH = [join(prefix, 'share', 'jupyter'), process.env.JUPYTER_PATH].filter(Boolean).join(delimiter);
        runner = {
          command: jupyterPython(),
          args: [join(packageRoot(), 'scripts', 'kernel-nbrun.py'), '--kernel', KERNEL_NAME],
        };
      }
      if (opts.quick) env[QUICK_ENV] = '1';
      const args = [...runner.args, '--timeout', String(opts.timeout ?? 1800)];
      if (opts.htmlDir) args.push('--html-dir', opts.htmlDir);
      // One runner for the batch; if it dies, the notebook it was on fails and a new runner takes the rest.
      let todo = runnable;
      while (todo.length) {
        const batch = todo;
        const { got, code, stderrTail } = await runOnce(
          runner.command,
          [...args, ...batch.map((i) => notebooks[i])],
          env,
          batch.length,
          (k, r) => report(batch[k], { ...r, notebook: notebooks[batch[k]] }),
        );
        if (got === batch.length) break;
        const nb = notebooks[batch[got]];
        const last = stderrTail.trim().split('\n').pop()?.trim() || `exit code ${code}`;
        report(batch[got], failed(nb, 'RunnerError', `the notebook runner stopped on this notebook: ${last}`));
        todo = batch.slice(got + 1);
      }
    } finally {
      rmSync(prefix, { recursive: true, force: true });
    }
  }
  return notebooks.map((_, i) => results.get(i)!);
}

/** Run the runner once; `got` is how many notebooks it reported before it exited. */
async function runOnce(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  expected: number,
  onResult: (k: number, r: NotebookResult) => void,
): Promise<{ got: number; code: number; stderrTail: string }> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let got = 0;
  let pending = '';
  let stderrTail = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.startsWith('@@attnlab ')) {
        if (got < expected) onResult(got++, JSON.parse(line.slice('@@attnlab '.length)) as NotebookResult);
      } else if (line) process.stdout.write(`${line}\n`);
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    process.stderr.write(chunk);
    stderrTail = (stderrTail + chunk).slice(-4096);
  });
  const code = await new Promise<number>((res, rej) => {
    child.on('error', rej);
    child.on('close', (c) => res(c ?? 1));
  });
  return { got, code, stderrTail };
}

function describeFailure(r: NotebookResult): string {
  const where = r.cell ? `cell ${r.cell}${r.source ? ` (${r.source})` : ''}` : 'before any cell ran';
  return `${r.notebook}: ${where}: ${r.ename ?? 'Error'}: ${r.evalue ?? ''}`.trimEnd();
}

function printResult(r: NotebookResult): void {
  if (r.ok) console.log(`ok    ${r.notebook} (${r.seconds.toFixed(1)} s)`);
  else console.error(`FAIL  ${describeFailure(r)}`);
}

/** `runner`: a stand-in for the Jupyter runner (tests). */
export async function runCommand(argv: string[], runner?: NotebookRunner): Promise<number> {
  const o = parse(argv, 'attnlab run');
  if (typeof o === 'string') {
    console.error(`attnlab run: ${o}\nusage: attnlab run [--quick] [--timeout SECONDS] NOTEBOOK...`);
    return 2;
  }
  const results = await executeNotebooks(o.notebooks, {
    quick: o.quick,
    timeout: o.timeout,
    onResult: printResult,
    runner,
  });
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
      const size = r.html && existsSync(r.html) ? `${(statSync(r.html).size / 1e6).toFixed(1)} MB` : '';
      const status = r.ok ? 'ok' : `failed at ${escapeHtml(describeFailure(r).slice(r.notebook.length + 2))}`;
      return (
        `<tr><td>${href ? `<a href="${escapeHtml(href)}">${escapeHtml(r.title)}</a>` : escapeHtml(r.title)}</td><td>${escapeHtml(basename(r.notebook))}</td>` +
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

export async function reportCommand(argv: string[], runner?: NotebookRunner): Promise<number> {
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
    runner,
  });
  for (const r of results) {
    if (r.html && existsSync(r.html)) writeFileSync(r.html, selfContained(readFileSync(r.html, 'utf8')));
  }
  const index = join(outDir, 'index.html');
  writeFileSync(index, indexPage(results, outDir));
  console.log(`wrote ${results.filter((r) => r.html).length} report(s) and ${index}`);
  return results.every((r) => r.ok) ? 0 : 1;
}

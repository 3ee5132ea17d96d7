/**
 * `attnlab run` and `attnlab report`: execute notebooks headlessly with this package's kernel.
 *
 *   attnlab run [--quick] [--timeout S] [--cache DIR|off] NOTEBOOK...   exit 1 naming the notebook and cell that failed
 *   attnlab report [--out DIR] [--quick] [--timeout S] [--cache DIR|off] [--single-file] [--hide-code] NOTEBOOK...
 *
 * `report` writes a site: one HTML page per notebook (titled with the notebook's title, math typeset with KaTeX,
 * a banner on quick runs), the one copy of plotly.js and KaTeX's stylesheet and fonts that every page links, and
 * index.html listing each notebook's title, summary (its first paragraph), run mode, status and time. With
 * `--single-file` each page is self-contained instead (plotly.js, KaTeX's CSS and fonts inline). Everything renders
 * offline; see lib/cli/report-html.ts. `--hide-code` leaves code cells' source out of the pages. `--cache` sets the
 * experiment cache the kernel uses (ATTNLAB_CACHE, see lib/experiments/cache.ts). Progress (notebook i of n, cell i
 * of n, elapsed, the latest training bar) goes to stderr while notebooks run.
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
import { plotlyFileName } from '../display/plotly.js';
import { packageRoot } from '../util/paths.js';
import { outputDirProblem } from './args.js';
import {
  finishPage,
  katexInlineCss,
  notebookOutline,
  shareStyles,
  summaryHtml,
  writeKatexAssets,
  writePlotlyAsset,
} from './report-html.js';

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

/** A notebook's progress line from the runner: cell `cell` of `cells` started, or its latest progress `text`. */
export interface CellProgress {
  cell: number;
  cells: number;
  text?: string;
}

interface Options {
  notebooks: string[];
  quick: boolean;
  timeout: number;
  out: string;
  cache?: string;
  singleFile: boolean;
  hideCode: boolean;
}

function parse(argv: string[], command: string): Options | string {
  const o: Options = { notebooks: [], quick: false, timeout: 1800, out: 'reports', singleFile: false, hideCode: false };
  const report = command === 'attnlab report';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') o.quick = true;
    else if (report && a === '--single-file') o.singleFile = true;
    else if (report && a === '--hide-code') o.hideCode = true;
    else if (a === '--timeout' || a === '--cache' || (report && a === '--out')) {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) return `${a} needs a value`;
      if (a === '--out') o.out = v;
      else if (a === '--cache') o.cache = v;
      else if (!(Number(v) > 0)) return `--timeout takes seconds per cell, got ${JSON.stringify(v)}`;
      else o.timeout = Number(v);
    } else if (a.startsWith('--')) return `unknown option ${a}`;
    else o.notebooks.push(a);
  }
  if (o.notebooks.length === 0) return `${command} needs at least one NOTEBOOK.ipynb`;
  const missing = o.notebooks.filter((n) => !existsSync(n));
  if (missing.length) return `no such notebook: ${missing.join(', ')}`;
  if (report) {
    const problem = outputDirProblem(o.out);
    if (problem) return `--out ${o.out}: ${problem}`;
  }
  if (o.cache !== undefined && o.cache !== 'off') {
    const problem = outputDirProblem(o.cache);
    if (problem) return `--cache ${o.cache}: ${problem}`;
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
    /** Leave code cells' source out of the HTML. */
    hideCode?: boolean;
    /** The experiment cache folder, or 'off' (sets ATTNLAB_CACHE for the kernel). */
    cache?: string;
    onResult?: (r: NotebookResult) => void;
    /** Called as cells start and with each cell's latest progress text; `index` is the notebook's, 0-based. */
    onProgress?: (index: number, p: CellProgress) => void;
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
      if (opts.cache !== undefined) env.ATTNLAB_CACHE = opts.cache === 'off' ? 'off' : resolve(opts.cache);
      const args = [...runner.args, '--timeout', String(opts.timeout ?? 1800)];
      if (opts.htmlDir) args.push('--html-dir', opts.htmlDir);
      if (opts.hideCode) args.push('--hide-code');
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
          (k, p) => opts.onProgress?.(batch[k], p),
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
  onProgress: (k: number, p: CellProgress) => void,
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
      } else if (line.startsWith('@@attnlab-progress ')) {
        if (got < expected) onProgress(got, JSON.parse(line.slice('@@attnlab-progress '.length)) as CellProgress);
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

/**
 * Progress on stderr: `[i/n] notebook: cell c/N, S s (total T s) | latest training bar`. Redrawn in place on a
 * terminal; in a log, one line per cell start and at most one progress-text line every 10 s.
 */
export function progressPrinter(
  notebooks: string[],
  stream: { write(s: string): unknown; isTTY?: boolean } = process.stderr,
): { progress: (index: number, p: CellProgress) => void; result: (r: NotebookResult) => void } {
  const t0 = performance.now();
  let nbStart = t0;
  let current = -1;
  let lastText = Number.NEGATIVE_INFINITY;
  let drawn = false;
  const clear = () => {
    if (drawn && stream.isTTY) stream.write('\r\x1b[K');
    drawn = false;
  };
  return {
    progress(index, p) {
      const now = performance.now();
      if (index !== current) {
        current = index;
        nbStart = now;
      }
      const s = (ms: number) => `${(ms / 1000).toFixed(0)} s`;
      const line =
        `[${index + 1}/${notebooks.length}] ${basename(notebooks[index] ?? '')}: cell ${p.cell}/${p.cells}, ` +
        `${s(now - nbStart)} (total ${s(now - t0)})${p.text ? ` | ${p.text}` : ''}`;
      if (stream.isTTY) {
        stream.write(`\r${line.slice(0, 160)}\x1b[K`);
        drawn = true;
      } else if (!p.text || now - lastText >= 10_000) {
        if (p.text) lastText = now;
        stream.write(`${line}\n`);
      }
    },
    result(r) {
      clear();
      printResult(r);
    },
  };
}

function printResult(r: NotebookResult): void {
  if (r.ok) console.log(`ok    ${r.notebook} (${r.seconds.toFixed(1)} s)`);
  else console.error(`FAIL  ${describeFailure(r)}`);
}

/** `runner`: a stand-in for the Jupyter runner (tests). */
export async function runCommand(argv: string[], runner?: NotebookRunner): Promise<number> {
  const o = parse(argv, 'attnlab run');
  if (typeof o === 'string') {
    console.error(`attnlab run: ${o}\nusage: ${RUN_USAGE}`);
    return 2;
  }
  const printer = progressPrinter(o.notebooks);
  const results = await executeNotebooks(o.notebooks, {
    quick: o.quick,
    timeout: o.timeout,
    cache: o.cache,
    onResult: printer.result,
    onProgress: printer.progress,
    runner,
  });
  return results.every((r) => r.ok) ? 0 : 1;
}

export const RUN_USAGE = 'attnlab run [--quick] [--timeout SECONDS] [--cache DIR|off] NOTEBOOK...';
export const REPORT_USAGE =
  'attnlab report [--out DIR] [--quick] [--timeout SECONDS] [--cache DIR|off] [--single-file] [--hide-code] NOTEBOOK...';

/**
 * Make an nbconvert HTML export a self-contained page that renders offline: `<script src>` removed, math typeset
 * with KaTeX's CSS and fonts inline, and exactly one copy of plotly.js when there are figures (see `finishPage`).
 */
export function selfContained(html: string): string {
  return finishPage(html, { mode: 'single' });
}

function indexPage(results: NotebookResult[], outDir: string, quick: boolean, singleFile: boolean): string {
  const rows = results
    .map((r) => {
      const href = r.html ? relative(outDir, r.html) : '';
      const size = r.html && existsSync(r.html) ? `${(statSync(r.html).size / 1e6).toFixed(2)} MB` : '';
      const status = r.ok ? 'ok' : `failed at ${escapeHtml(describeFailure(r).slice(r.notebook.length + 2))}`;
      const { summary } = notebookOutline(r.notebook);
      return (
        `<tr><td>${href ? `<a href="${escapeHtml(href)}">${escapeHtml(r.title)}</a>` : escapeHtml(r.title)}` +
        `<div class="file">${escapeHtml(basename(r.notebook))}</div></td>` +
        `<td class="summary">${summary ? summaryHtml(summary) : ''}</td><td>${quick ? 'quick' : 'full'}</td>` +
        `<td>${status}</td><td>${r.seconds.toFixed(1)} s</td><td>${size}</td></tr>`
      );
    })
    .join('\n');
  const math = rows.includes('class="katex');
  const katexCss = !math
    ? ''
    : singleFile
      ? `<style>${katexInlineCss()}</style>`
      : '<link rel="stylesheet" href="katex/katex.min.css">';
  const banner = quick
    ? '<div class="attnlab-banner" role="note">quick run: small models, short training; numbers are not the paper&#39;s setting.</div>'
    : '';
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>attnlab reports</title>${katexCss}
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}td,th{padding:6px 12px;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}
.file{color:#666;font-size:85%}.summary{max-width:40em}.attnlab-banner{background:#fff4ce;border:1px solid #e0b000;padding:8px 12px;margin:8px 0 16px;font-weight:600}</style>
</head><body><h1>attnlab reports</h1>${banner}
<p>Generated ${escapeHtml(new Date().toISOString())}, ${quick ? 'quick' : 'full'} mode. ${
    singleFile
      ? 'Each report is a single HTML file that renders offline.'
      : 'The pages share this folder&#39;s copy of plotly.js and KaTeX; copy the whole folder to share them. They render offline.'
  }</p>
<table><thead><tr><th>report</th><th>summary</th><th>mode</th><th>status</th><th>run time</th><th>size</th></tr></thead><tbody>
${rows}
</tbody></table></body></html>
`;
}

export async function reportCommand(argv: string[], runner?: NotebookRunner): Promise<number> {
  const o = parse(argv, 'attnlab report');
  if (typeof o === 'string') {
    console.error(`attnlab report: ${o}\nusage: ${REPORT_USAGE}`);
    return 2;
  }
  const t0 = performance.now();
  const outDir = resolve(o.out);
  mkdirSync(outDir, { recursive: true });
  const printer = progressPrinter(o.notebooks);
  const results = await executeNotebooks(o.notebooks, {
    quick: o.quick,
    timeout: o.timeout,
    htmlDir: outDir,
    hideCode: o.hideCode,
    cache: o.cache,
    onResult: printer.result,
    onProgress: printer.progress,
    runner,
  });
  const mode = o.singleFile ? 'single' : 'site';
  let figures = false;
  let math = false;
  for (const r of results) {
    const { title } = notebookOutline(r.notebook);
    if (title) r.title = title;
    if (!r.html || !existsSync(r.html)) continue;
    const page = finishPage(readFileSync(r.html, 'utf8'), {
      title: r.title,
      quick: o.quick,
      mode,
      plotlyHref: plotlyFileName(),
      katexHref: 'katex/katex.min.css',
    });
    figures ||= page.includes('class="attnlab-plot"');
    math ||= page.includes('class="katex');
    writeFileSync(r.html, mode === 'site' ? shareStyles(page, outDir) : page);
  }
  const index = join(outDir, 'index.html');
  const indexHtml = indexPage(results, outDir, o.quick, o.singleFile);
  math ||= indexHtml.includes('class="katex');
  if (mode === 'site') {
    if (figures) writePlotlyAsset(outDir);
    if (math) writeKatexAssets(join(outDir, 'katex'));
  }
  writeFileSync(index, indexHtml);
  const seconds = (performance.now() - t0) / 1000;
  console.log(`wrote ${results.filter((r) => r.html).length} report(s) and ${index} in ${seconds.toFixed(1)} s`);
  return results.every((r) => r.ok) ? 0 : 1;
}

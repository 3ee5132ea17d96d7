/**
 * `attnlab report`: math typeset offline (KaTeX), the report site (index with titles, summaries and run mode; pages
 * sharing one plotly.js; --hide-code), --single-file pages, the quick-run banner, progress, and the experiment cache.
 *
 * One small notebook runs end to end in the real kernel (single-file, quick); the site tests use a stand-in runner that
 * exports tiny notebooks with pre-filled outputs through nbconvert without a kernel. Pages are checked in headless
 * Chromium with the network cut off.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cacheKey,
  codeVersion,
  decodeValue,
  encodeValue,
  listEntries,
  resetCodeVersion,
  resolveCacheDir,
} from '../lib/experiments/cache.js';
import { defineExperiment, runExperimentWith } from '../lib/experiments/contract.js';
import { int, obj } from '../lib/experiments/schema.js';
import { CHROMIUM, ensureBuilt, ROOT, renderInChromium } from './kernel-support.js';

type Cell =
  | { type: 'markdown'; source: string }
  | { type: 'code'; source: string; outputs?: Record<string, unknown>[] };

function notebook(cells: Cell[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: 'attnlab', display_name: 'TypeScript (attnlab)', language: 'typescript' } },
    cells: cells.map((c, i) =>
      c.type === 'markdown'
        ? { id: `c${i}`, cell_type: 'markdown', metadata: {}, source: c.source }
        : {
            id: `c${i}`,
            cell_type: 'code',
            metadata: {},
            source: c.source,
            outputs: c.outputs ?? [],
            execution_count: c.outputs?.length ? i : null,
          },
    ),
  });
}

const MATH_MD =
  '## Pointer attention\n\nThe score is $u^i_j = v^\\top \\tanh(W_1 e_j + W_2 d_i)$ for $j < n$, and in display:\n\n' +
  '$$\np(C_i \\mid C_1, \\dots, C_{i-1}) = \\operatorname{softmax}(u^i)\n$$\n\n' +
  'Code stays code: `cost = $5` and a price of \\$5, and $$\\frac{1}{2}$$ inline.';

/** Chromium, offline: figures drawn, KaTeX elements, raw TeX left in markdown cells, KaTeX's font loaded. */
async function inspect(file: string) {
  const base = await renderInChromium(file);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox'] });
  try {
    const page = await browser.newPage();
    const blocked: string[] = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
      blocked.push(url);
      return route.abort();
    });
    await page.goto(`file://${file}`, { waitUntil: 'load' });
    const math = await page.evaluate(async () => {
      await document.fonts.ready;
      const md = Array.from(document.querySelectorAll('.jp-MarkdownCell, td.summary'));
      const raw = md
        .map((c) => {
          const copy = c.cloneNode(true) as Element;
          for (const k of Array.from(copy.querySelectorAll('.katex, code'))) k.remove();
          return copy.textContent ?? '';
        })
        .join('\n');
      return {
        katex: document.querySelectorAll('.katex').length,
        displays: document.querySelectorAll('.katex-display').length,
        errors: document.querySelectorAll('.katex-error').length,
        rawDollars: raw.includes('$$'),
        rawTex: /\\(tanh|frac|operatorname)/.test(raw),
        fontLoaded: document.fonts.check('16px KaTeX_Main') && document.fonts.check('16px KaTeX_Math'),
        katexWidth: (document.querySelector('.katex .base') as HTMLElement | null)?.getBoundingClientRect().width ?? 0,
        banner: document.querySelector('.attnlab-banner')?.textContent ?? null,
        title: document.title,
        codeInputs: document.querySelectorAll('.jp-InputArea-editor').length,
      };
    });
    return { ...base, ...math, blocked: [...base.blocked, ...blocked] };
  } finally {
    await browser.close();
  }
}

describe('math and pages (report-html)', () => {
  it('typesets $...$ and $$...$$ in markdown cells only, leaving code spans, code cells and outputs alone', async () => {
    const { renderMath } = await import('../lib/cli/report-html.js');
    const html =
      '<html><head></head><body>' +
      '<div class="jp-Cell jp-MarkdownCell jp-Notebook-cell"><div class="jp-RenderedMarkdown">' +
      '<p>Let $x_i &lt; y$ and <code>cost $a$</code>; pay \\$5 and $6.</p>\n$$\n\\sum_i a_i &lt; b\n$$' +
      '<pre><code>$$ code $$</code></pre><p>$\\frac{1}{$ broken</p></div></div>' +
      '<div class="jp-Cell jp-CodeCell jp-Notebook-cell"><pre>x = "$$a$$"</pre><div class="jp-OutputArea">$y$</div></div>' +
      '</body></html>';
    const out = renderMath(html);
    const [md, code] = out.split('<div class="jp-Cell jp-CodeCell');
    expect(md).toContain('<code>cost $a$</code>');
    expect(md).toContain('<pre><code>$$ code $$</code></pre>');
    expect(md).toContain('pay $5 and $6.');
    expect(md).toContain('<annotation encoding="application/x-tex">x_i &lt; y</annotation>');
    expect(md).toMatch(/class="katex-display"[\s\S]*\\sum_i a_i &lt; b/);
    // A formula KaTeX cannot parse is shown as its error, with the source, not dropped.
    expect(md).toMatch(/class="katex-error"[^>]*title="ParseError[^"]*"[^>]*>\\frac\{1\}\{/);
    expect(code).toBe(
      ' jp-Notebook-cell"><pre>x = "$$a$$"</pre><div class="jp-OutputArea">$y$</div></div></body></html>',
    );
    expect(renderMath('<p>no cells $x$</p>')).toBe('<p>no cells $x$</p>');
  });

  it('finishes a page: title, banner only on quick pages, plotly.js once or linked, idempotent', async () => {
    const { finishPage } = await import('../lib/cli/report-html.js');
    const { plotlyScript, plotlyFileName } = await import('../lib/display/plotly.js');
    const fig = '<div id="f" class="attnlab-plot"></div>';
    const raw =
      '<html><head><title>Notebook</title><script src="https://cdn.example/require.js"></script></head><body class="jp-Notebook">' +
      `${plotlyScript()}${fig}${plotlyScript()}${fig}</body></html>`;
    const single = finishPage(raw, { title: 'A <b> & "c"', quick: true });
    expect(single).toContain('<title>A &lt;b&gt; &amp; &quot;c&quot;</title>');
    expect(single.match(/data-attnlab-plotly=/g)).toHaveLength(1);
    expect(single).not.toMatch(/<script\b[^>]*\bsrc=/);
    expect(single).toMatch(
      /<body[^>]*><div class="attnlab-banner" role="note">quick run: small models, short training/,
    );
    expect(finishPage(single, { title: 'x' })).toBe(single);
    const site = finishPage(raw, { title: 'T', mode: 'site', plotlyHref: plotlyFileName() });
    expect(site).not.toContain('data-attnlab-plotly=');
    expect(site.match(new RegExp(`<script src="${plotlyFileName()}"></script>`, 'g'))).toHaveLength(1);
    expect(site).not.toContain('attnlab-banner" role');
    expect(site.length).toBeLessThan(raw.length / 1.5);
  });

  it("reads a notebook's title and first paragraph; the summary is escaped and its math typeset", async () => {
    const { notebookOutline, summaryHtml } = await import('../lib/cli/report-html.js');
    const dir = mkdtempSync(join(tmpdir(), 'attnlab-outline-'));
    const nb = join(dir, 'x.ipynb');
    writeFileSync(
      nb,
      notebook([
        { type: 'markdown', source: '# The <title>\n\n## Setup' },
        { type: 'code', source: '1' },
        {
          type: 'markdown',
          source: 'First **bold** paragraph with `a<b` and $x^2$ and [a link](http://x).\n\nSecond.',
        },
      ]),
    );
    const o = notebookOutline(nb);
    expect(o.title).toBe('The <title>');
    expect(o.summary).toBe('First **bold** paragraph with `a<b` and $x^2$ and [a link](http://x).');
    const h = summaryHtml(o.summary!);
    expect(h).toContain('<strong>bold</strong>');
    expect(h).toContain('<code>a&lt;b</code>');
    expect(h).toContain('class="katex"');
    expect(h).toContain('a link');
    expect(h).not.toContain('http://x');
  });

  it('prints progress: notebook i of n, cell i of n, elapsed, the latest training line', async () => {
    const { progressPrinter } = await import('../lib/cli/notebooks.js');
    const lines: string[] = [];
    const p = progressPrinter(['a/one.ipynb', 'b/two.ipynb'], { write: (s: string) => lines.push(s), isTTY: false });
    p.progress(1, { cell: 3, cells: 9 });
    p.progress(1, { cell: 3, cells: 9, text: 'step 40/100 loss 1.23' });
    p.progress(1, { cell: 3, cells: 9, text: 'step 41/100 loss 1.20' }); // within 10 s: not printed in a log
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[2\/2\] two\.ipynb: cell 3\/9, \d+ s \(total \d+ s\)\n$/);
    expect(lines[1]).toMatch(/^\[2\/2\] two\.ipynb: cell 3\/9, \d+ s \(total \d+ s\) \| step 40\/100 loss 1\.23\n$/);
    const tty: string[] = [];
    const q = progressPrinter(['x.ipynb'], { write: (s: string) => tty.push(s), isTTY: true });
    q.progress(0, { cell: 1, cells: 2, text: 'a' });
    q.progress(0, { cell: 1, cells: 2, text: 'b' });
    expect(tty).toHaveLength(2);
    expect(tty[1]!.startsWith('\r[1/1] x.ipynb: cell 1/2, ')).toBe(true);
    expect(tty[1]!.endsWith(' | b\x1b[K')).toBe(true);
  });
});

/** A runner with the real runner's protocol that exports notebooks (with their stored outputs) without a kernel. */
const STAND_IN = `
import argparse, json, os, sys, nbformat
from nbconvert import HTMLExporter
p = argparse.ArgumentParser()
p.add_argument("notebooks", nargs="+"); p.add_argument("--timeout"); p.add_argument("--html-dir")
p.add_argument("--hide-code", action="store_true")
a = p.parse_args()
for path in a.notebooks:
    nb = nbformat.read(path, as_version=4)
    for i, c in enumerate(nb.cells):
        print("@@attnlab-progress " + json.dumps({"cell": i + 1, "cells": len(nb.cells)}), flush=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    ex = HTMLExporter(exclude_input=True, exclude_input_prompt=True) if a.hide_code else HTMLExporter()
    body, _ = ex.from_notebook_node(nb)
    html = os.path.join(a.html_dir, stem + ".html")
    open(html, "w", encoding="utf-8").write(body)
    print("@@attnlab " + json.dumps({"notebook": path, "title": stem, "ok": True, "seconds": 0.5, "html": html}), flush=True)
`;

const python = ['/usr/bin/python3', 'python3'].find(
  (c) => spawnSync(c, ['-c', 'import nbconvert, nbformat'], { stdio: 'ignore' }).status === 0,
);

describe.skipIf(!python)('report site (stand-in runner, no kernel)', () => {
  let dir: string;
  let runner: { command: string; args: string[] };
  const nbs: string[] = [];
  const outputsWithFigure = async (title: string) => {
    const d = await import('../lib/display/index.js');
    return [
      {
        output_type: 'display_data',
        metadata: {},
        data: {
          'text/html': d.figureHtml(d.lineChart([1, 4, 9], { title }), { includePlotly: true }),
          'text/plain': 'figure',
        },
      },
      { output_type: 'stream', name: 'stdout', text: 'costs $$5 and $x$ in an output\n' },
    ];
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'attnlab-site-'));
    writeFileSync(join(dir, 'runner.py'), STAND_IN);
    runner = { command: python!, args: [join(dir, 'runner.py')] };
    for (const [i, name] of ['00-alpha', '01-beta'].entries()) {
      const nb = join(dir, `${name}.ipynb`);
      writeFileSync(
        nb,
        notebook([
          { type: 'markdown', source: `# Notebook ${name} <&>\n\nWhat ${name} shows, with $\\alpha_${i}$.` },
          { type: 'markdown', source: MATH_MD },
          { type: 'code', source: 'const price = "$$a$$"; show()', outputs: await outputsWithFigure(name) },
        ]),
      );
      nbs.push(nb);
    }
  }, 60_000);

  it('writes index.html (titles, summaries, mode), pages sharing one plotly.js, KaTeX once beside them', async () => {
    const { reportCommand } = await import('../lib/cli/notebooks.js');
    const { plotlyFileName } = await import('../lib/display/plotly.js');
    const out = join(dir, 'site');
    const code = await reportCommand(['--out', out, ...nbs], runner);
    expect(code).toBe(0);
    const files = readdirSync(out).sort();
    const css = files.filter((f) => /^notebook-[0-9a-f]{12}\.css$/.test(f));
    expect(css).toHaveLength(1); // nbconvert's theme, shared by both pages
    expect(files).toEqual(['00-alpha.html', '01-beta.html', 'index.html', 'katex', plotlyFileName(), ...css].sort());
    expect(readdirSync(join(out, 'katex', 'fonts')).every((f) => f.endsWith('.woff2'))).toBe(true);
    const index = readFileSync(join(out, 'index.html'), 'utf8');
    expect(index).toContain('<a href="00-alpha.html">Notebook 00-alpha &lt;&amp;&gt;</a>');
    expect(index).toContain('What 01-beta shows, with');
    expect(index).toMatch(/<td>full<\/td>/);
    expect(index).not.toContain('attnlab-banner" role');
    for (const f of ['00-alpha.html', '01-beta.html']) {
      const html = readFileSync(join(out, f), 'utf8');
      expect(html).not.toContain('data-attnlab-plotly=');
      expect(html).toContain(`<script src="${plotlyFileName()}"></script>`);
      expect(html).toContain('<link rel="stylesheet" href="katex/katex.min.css">');
      expect(html).toContain(`<link rel="stylesheet" href="${css[0]}">`);
      expect(html).not.toContain('<style type="text/css">');
      expect(html.length).toBeLessThan(300_000); // plotly.js alone is 4.8 MB, nbconvert's CSS 0.55 MB
    }
  });

  it.skipIf(!existsSync(CHROMIUM))(
    'site pages render figures and math offline; code and outputs keep their dollars',
    async () => {
      const page = join(dir, 'site', '00-alpha.html');
      const r = await inspect(page);
      expect(r).toMatchObject({ figures: 1, rendered: 1, pageErrors: [], blocked: [], undrawn: [] });
      expect(r.title).toBe('Notebook 00-alpha <&>');
      expect(r.katex).toBeGreaterThanOrEqual(5);
      expect(r.displays).toBe(2);
      expect(r).toMatchObject({ errors: 0, rawDollars: false, rawTex: false, fontLoaded: true, banner: null });
      expect(r.katexWidth).toBeGreaterThan(0);
      const html = readFileSync(page, 'utf8');
      expect(html).toContain('costs $$5 and $x$ in an output');
      const idx = await inspect(join(dir, 'site', 'index.html'));
      expect(idx).toMatchObject({ pageErrors: [], blocked: [], rawDollars: false, fontLoaded: true });
      expect(idx.katex).toBe(2);
    },
    180_000,
  );

  it.skipIf(!existsSync(CHROMIUM))(
    '--single-file --hide-code --quick: self-contained pages, no code, the quick banner, math offline',
    async () => {
      const { reportCommand } = await import('../lib/cli/notebooks.js');
      const out = join(dir, 'single');
      const code = await reportCommand(['--out', out, '--single-file', '--hide-code', '--quick', nbs[0]!], runner);
      expect(code).toBe(0);
      expect(readdirSync(out).sort()).toEqual(['00-alpha.html', 'index.html']);
      const html = readFileSync(join(out, '00-alpha.html'), 'utf8');
      expect(html).not.toMatch(/<script\b[^>]*\bsrc=/i);
      expect(html).not.toMatch(/<link\b/i);
      expect(html.match(/data-attnlab-plotly=/g)).toHaveLength(1);
      expect(html).not.toContain('const price');
      expect(readFileSync(join(out, 'index.html'), 'utf8')).toMatch(/attnlab-banner[\s\S]*<td>quick<\/td>/);
      const r = await inspect(join(out, '00-alpha.html'));
      expect(r).toMatchObject({ figures: 1, rendered: 1, pageErrors: [], blocked: [], rawDollars: false });
      expect(r).toMatchObject({ fontLoaded: true, codeInputs: 0, errors: 0 });
      expect(r.katex).toBeGreaterThanOrEqual(5); // markdown cells stay when code is hidden
      expect(r.banner).toContain("quick run: small models, short training; numbers are not the paper's setting");
    },
    180_000,
  );

  it('reports progress for each cell of each notebook', async () => {
    const { executeNotebooks } = await import('../lib/cli/notebooks.js');
    const seen: string[] = [];
    const out = join(dir, 'progress');
    mkdirSync(out);
    await executeNotebooks(nbs, {
      htmlDir: out,
      runner,
      onProgress: (i, p) => seen.push(`${i}:${p.cell}/${p.cells}`),
    });
    expect(seen).toEqual(['0:1/3', '0:2/3', '0:3/3', '1:1/3', '1:2/3', '1:3/3']);
  }, 60_000);

  it('rejects a bad --cache before running anything', async () => {
    const { reportCommand } = await import('../lib/cli/notebooks.js');
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const errors: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args.join(' '));
    try {
      expect(await reportCommand(['--out', join(dir, 'o2'), '--cache', join(file, 'sub'), nbs[0]!], runner)).toBe(2);
    } finally {
      console.error = original;
    }
    expect(errors.join('\n')).toContain(`--cache ${join(file, 'sub')}: ${file} is a file`);
  });
});

const FIGURES = [
  `import * as d from 'attnlab/display';
const w = [[1, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]];
d.attentionHeatmap(w, { tokens: ['a', 'b', 'a'], title: 'one head' })`,
  `d.display(d.trainingCurves([{ step: 0, loss: 3 }, { step: 10, loss: 2 }, { step: 20, loss: 1.2 }]))`,
  `d.attentionGrid([[[[1, 0], [0.4, 0.6]], [[1, 0], [0.9, 0.1]]], [[[1, 0], [0.2, 0.8]], [[1, 0], [0.5, 0.5]]]])`,
  `d.lineChart([{ y: [1, 4, 9], name: 'squares' }, { y: [1, 2, 3], name: 'linear' }], { title: 'lines' })`,
];

describe('attnlab report (real kernel, --single-file --quick)', () => {
  let dir: string;
  let code: number;
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'attnlab-report-'));
    writeFileSync(
      join(dir, 'figures.ipynb'),
      notebook([
        { type: 'markdown', source: '# Figures <check> & "escapes"' },
        { type: 'markdown', source: MATH_MD },
        ...FIGURES.map((source) => ({ type: 'code' as const, source })),
        { type: 'code', source: `console.log('quick:', process.env.ATTNLAB_QUICK ?? 'unset', '$$a$$')` },
      ]),
    );
    const { reportCommand } = await import('../lib/cli/notebooks.js');
    code = await reportCommand(['--out', join(dir, 'out'), '--quick', '--single-file', join(dir, 'figures.ipynb')]);
  }, 240_000);

  it('writes a report and an index, exit code 0', () => {
    expect(code).toBe(0);
    expect(existsSync(join(dir, 'out', 'figures.html'))).toBe(true);
    const index = readFileSync(join(dir, 'out', 'index.html'), 'utf8');
    expect(index).toContain('href="figures.html"');
    expect(index).toContain('Figures &lt;check&gt; &amp; &quot;escapes&quot;');
  });

  it('is self-contained: no external scripts, plotly.js exactly once, quick mode set, output dollars kept', () => {
    const html = readFileSync(join(dir, 'out', 'figures.html'), 'utf8');
    expect(html).not.toMatch(/<script\b[^>]*\bsrc=/i);
    expect(html.match(/data-attnlab-plotly=/g)).toHaveLength(1);
    expect(html).toContain('quick: 1 $$a$$');
    expect(html).toContain('<title>Figures &lt;check&gt; &amp; &quot;escapes&quot;</title>');
  });

  it.skipIf(!existsSync(CHROMIUM))(
    'renders every figure and formula offline in headless Chromium',
    async () => {
      const r = await inspect(join(dir, 'out', 'figures.html'));
      expect(r.figures).toBe(FIGURES.length);
      expect(r.rendered).toBe(r.figures);
      expect(r.pageErrors).toEqual([]);
      expect(r.blocked).toEqual([]);
      expect(r).toMatchObject({ rawDollars: false, rawTex: false, errors: 0, fontLoaded: true });
      expect(r.katex).toBeGreaterThanOrEqual(4);
      expect(r.banner).toContain('quick run');
    },
    120_000,
  );
});

describe('attnlab run', () => {
  it('exits non-zero naming the notebook and the failing cell', async () => {
    ensureBuilt();
    const dir = mkdtempSync(join(tmpdir(), 'attnlab-run-'));
    const nb = join(dir, 'broken.ipynb');
    writeFileSync(
      nb,
      notebook([
        { type: 'markdown', source: '# Broken' },
        { type: 'code', source: 'const fine = 1;' },
        { type: 'code', source: 'throw new Error("cell three fails")' },
        { type: 'code', source: 'fine' },
      ]),
    );
    const { runCommand } = await import('../lib/cli/notebooks.js');
    const errors: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args.join(' '));
    let code: number;
    try {
      code = await runCommand([nb]);
    } finally {
      console.error = original;
    }
    expect(code).toBe(1);
    expect(errors.join('\n')).toContain(`${nb}: cell 3 (throw new Error("cell three fails")): Error: cell three fails`);
  }, 120_000);
});
/**
 * A notebook page reloaded (or opened in a second tab) holds later figures' HTML but not the first figure's, which
 * carried plotly.js: each figure loads plotly.js from the Jupyter server (the kernelspec's copy), or says why it cannot.
 */
describe.skipIf(!existsSync(CHROMIUM))('figures on a page without the first figure', () => {
  let dir: string;
  let page: string;
  let plotlyFile: string;
  const server = 'http://jupyter.test';
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'attnlab-reload-'));
    const { installKernelSpec } = await import('../kernel/install.js');
    const d = await import('../lib/display/index.js');
    const specDir = installKernelSpec({ prefix: join(dir, 'prefix'), root: ROOT });
    plotlyFile = d.plotlyFileName();
    expect(existsSync(join(specDir, plotlyFile))).toBe(true);
    const later = [1, 2].map((i) => d.figureHtml(d.lineChart([1, i, 3]), { includePlotly: false }));
    expect(later.join('')).not.toContain('data-attnlab-plotly=');
    // JupyterLab and Notebook 7 put the base URL in #jupyter-config-data.
    page = join(dir, 'page.html');
    writeFileSync(
      page,
      '<!DOCTYPE html><html><head><script id="jupyter-config-data" type="application/json">' +
        `{"baseUrl": "/user/me/"}</script></head><body>${later.join('')}</body></html>`,
    );
  });

  it('loads plotly.js from the Jupyter server and draws every figure', async () => {
    const r = await renderInChromium(page, {
      url: `${server}/user/me/lab/tree/x.ipynb`,
      serve: {
        [`${server}/user/me/kernelspecs/attnlab/${plotlyFile}`]: join(
          dir,
          'prefix',
          'share',
          'jupyter',
          'kernels',
          'attnlab',
          plotlyFile,
        ),
      },
    });
    expect(r).toMatchObject({ figures: 2, rendered: 2, blocked: [], pageErrors: [], undrawn: [] });
  }, 120_000);

  it('says why when the server does not serve plotly.js', async () => {
    const r = await renderInChromium(page, { url: `${server}/user/me/lab/tree/x.ipynb` });
    expect(r.rendered).toBe(0);
    expect(r.blocked).toEqual([`${server}/user/me/kernelspecs/attnlab/${plotlyFile}`]);
    expect(r.undrawn).toHaveLength(2);
    for (const text of r.undrawn) {
      expect(text).toContain('This figure cannot be drawn: plotly.js is not on this page');
      expect(text).toContain(`the Jupyter server did not serve /user/me/kernelspecs/attnlab/${plotlyFile}`);
    }
  }, 120_000);

  it('says why in a file that is not served by Jupyter', async () => {
    const r = await renderInChromium(page);
    expect(r.rendered).toBe(0);
    expect(r.undrawn).toHaveLength(2);
    expect(r.undrawn[0]).toContain('this file is not served by Jupyter');
  }, 120_000);
});

/** A tiny experiment that counts its runs; its artifacts are data and a tensor (cacheable) or a class instance. */
class Model {
  constructor(readonly w: tf.Tensor) {}
  dispose() {
    this.w.dispose();
  }
}
let runs = 0;
const tinySchema = obj<{ n: number; model: number }>({ n: int({ min: 1 }), model: int({ min: 0, max: 1 }) });
const tiny = defineExperiment<
  { n: number; model: number },
  { w: tf.Tensor; curve: number[]; map: Map<number, Float32Array>; nan: number; model?: Model; dispose(): void }
>({
  name: 'tiny-cache',
  paper: 'none',
  description: 'counts runs',
  schema: tinySchema,
  quick: { n: 3, model: 0 },
  full: { n: 5, model: 0 },
  async run(cfg, ctx) {
    runs++;
    const w = tf.tidy(() => tf.range(0, cfg.n).mul(ctx.seed + 1));
    const model = cfg.model ? new Model(tf.ones([2])) : undefined;
    const sum = w.sum();
    const total = (await sum.array()) as number;
    sum.dispose();
    return {
      metrics: { test_sum: total },
      tables: { rows: [{ n: cfg.n, ok: true, note: null }] },
      references: [{ metric: 'test_sum', paper: 1, source: 'nowhere', setting: 'a test fixture' }],
      summary: `sum of ${cfg.n}`,
      artifacts: {
        w,
        curve: [1, 2, 3],
        map: new Map([[cfg.n, new Float32Array([0.5, cfg.n])]]),
        nan: Number.NaN,
        ...(model ? { model } : {}),
        dispose: () => {
          w.dispose();
          model?.dispose();
        },
      },
    };
  },
});

describe('experiment cache', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'attnlab-cache-'));
  });
  afterEach(() => resetCodeVersion());
  const fresh = () => {
    const d = join(dir, `c${Math.random().toString(36).slice(2)}`);
    return d;
  };

  it('is off under vitest and with ATTNLAB_CACHE=off; a folder or false wins', () => {
    const saved = process.env.ATTNLAB_CACHE;
    try {
      delete process.env.ATTNLAB_CACHE;
      expect(resolveCacheDir()).toBeUndefined();
      expect(resolveCacheDir('/x')).toBe('/x');
      expect(resolveCacheDir(false)).toBeUndefined();
      process.env.ATTNLAB_CACHE = '/y';
      expect(resolveCacheDir()).toBe('/y');
      process.env.ATTNLAB_CACHE = 'off';
      expect(resolveCacheDir()).toBeUndefined();
      expect(resolveCacheDir('off')).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.ATTNLAB_CACHE;
      else process.env.ATTNLAB_CACHE = saved;
    }
  });

  it('reuses a run: same metrics, tables, references, artifacts restored; no tensors leak', async () => {
    const cache = fresh();
    const before = runs;
    const a = await runExperimentWith(tiny, { quick: true, seed: 2, cache, keep: true });
    const wA = await a.artifacts!.w.array();
    a.artifacts!.dispose();
    expect(runs).toBe(before + 1);
    expect(listEntries(cache)).toHaveLength(1);
    const n0 = tf.memory().numTensors;
    const b = await runExperimentWith(tiny, { quick: true, seed: 2, cache, keep: true });
    expect(runs).toBe(before + 1);
    expect(b.cached?.path).toContain(join(cache, 'tiny-cache'));
    expect(b.cached?.key).toBe(
      cacheKey({ experiment: 'tiny-cache', config: { n: 3, model: 0 }, seed: 2, quick: true }),
    );
    expect(b.metrics).toEqual(a.metrics);
    expect(b.tables).toEqual(a.tables);
    expect(b.references).toEqual(a.references);
    expect(b.summary).toBe(a.summary);
    expect(b.seconds).toBeCloseTo(a.seconds, 6);
    expect(await b.artifacts!.w.array()).toEqual(wA);
    expect(b.artifacts!.curve).toEqual([1, 2, 3]);
    expect(b.artifacts!.map.get(3)).toEqual(new Float32Array([0.5, 3]));
    expect(b.artifacts!.nan).toBeNaN();
    b.artifacts!.dispose();
    expect(tf.memory().numTensors).toBe(n0);
    // keep: false restores no tensors at all.
    const c = await runExperimentWith(tiny, { quick: true, seed: 2, cache });
    expect(c.artifacts).toBeUndefined();
    expect(c.cached).toBeDefined();
    expect(tf.memory().numTensors).toBe(n0);
    expect(runs).toBe(before + 1);
  });

  it('never reuses an entry for another config, seed, mode or code version', async () => {
    const cache = fresh();
    const before = runs;
    await runExperimentWith(tiny, { quick: true, seed: 0, cache });
    await runExperimentWith(tiny, { quick: true, seed: 0, cache, overrides: { n: 4 } });
    await runExperimentWith(tiny, { quick: true, seed: 1, cache });
    await runExperimentWith(tiny, { quick: false, seed: 0, cache, overrides: { n: 3 } });
    expect(runs).toBe(before + 4);
    const changed = await runExperimentWith(tiny, { quick: true, seed: 0, cache, overrides: { n: 4 } });
    expect(changed.cached).toBeDefined();
    expect(changed.metrics.test_sum).toBe(6);
    resetCodeVersion('0.1.0+a-changed-library');
    const rerun = await runExperimentWith(tiny, { quick: true, seed: 0, cache });
    expect(rerun.cached).toBeUndefined();
    expect(runs).toBe(before + 5);
    expect(listEntries(cache)).toHaveLength(5);
  });

  it('a data file the config names, replaced under the same path, is another key', () => {
    const file = join(dir, 'data.csv');
    writeFileSync(file, 'a,b\n1,2\n');
    const parts = { experiment: 'x', config: { data: { path: file }, n: 1 }, seed: 0, quick: true, version: 'v' };
    const k1 = cacheKey(parts);
    expect(cacheKey(parts)).toBe(k1);
    writeFileSync(file, 'a,b\n1,2\n3,4\n');
    expect(cacheKey(parts)).not.toBe(k1);
    expect(cacheKey({ ...parts, config: { data: { path: join(dir, 'missing.csv') }, n: 1 } })).not.toBe(k1);
  });

  it('hashes the package version and every lib source: one changed byte is another version', () => {
    const root = mkdtempSync(join(tmpdir(), 'attnlab-pkg-'));
    mkdirSync(join(root, 'lib', 'sub'), { recursive: true });
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'attnlab', version: '9.9.9' }));
    writeFileSync(join(root, 'lib', 'sub', 'a.ts'), 'export const a = 1;');
    const v1 = codeVersion(root);
    expect(v1).toMatch(/^9\.9\.9\+[0-9a-f]{16}$/);
    expect(codeVersion(root)).toBe(v1);
    writeFileSync(join(root, 'lib', 'sub', 'a.ts'), 'export const a = 2;');
    const v2 = codeVersion(root);
    expect(v2).not.toBe(v1);
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'attnlab', version: '9.9.10' }));
    expect(codeVersion(root)).not.toBe(v2);
    expect(codeVersion()).toMatch(/^0\.1\.0\+/);
  });

  it('stores nothing when the artifacts cannot be restored (a trained model object), and runs again', async () => {
    const cache = fresh();
    const before = runs;
    const logs: string[] = [];
    const n0 = tf.memory().numTensors;
    await runExperimentWith(tiny, { quick: true, cache, overrides: { model: 1 }, log: (l) => logs.push(l) });
    await runExperimentWith(tiny, { quick: true, cache, overrides: { model: 1 } });
    expect(runs).toBe(before + 2);
    expect(listEntries(cache)).toEqual([]);
    expect(existsSync(join(cache, 'tiny-cache')) ? readdirSync(join(cache, 'tiny-cache')) : []).toEqual([]);
    expect(logs.join('\n')).toContain('not cached: artifacts cannot be stored: artifacts.model is a Model instance');
    expect(tf.memory().numTensors).toBe(n0);
  });

  it('an experiment with an artifactCodec caches its model objects', async () => {
    const cache = fresh();
    const withCodec = { ...tiny, name: 'tiny-codec' } as typeof tiny;
    withCodec.artifactCodec = {
      encode: (a) => ({ ...a, model: a.model ? { w: a.model.w } : undefined }),
      decode: (s) => {
        const o = s as {
          w: tf.Tensor;
          curve: number[];
          map: Map<number, Float32Array>;
          nan: number;
          model?: { w: tf.Tensor };
        };
        const model = o.model ? new Model(o.model.w) : undefined;
        return {
          ...o,
          model,
          dispose: () => {
            o.w.dispose();
            model?.dispose();
          },
        };
      },
    };
    const before = runs;
    const a = await runExperimentWith(withCodec, { quick: true, cache, overrides: { model: 1 } });
    const n0 = tf.memory().numTensors;
    const b = await runExperimentWith(withCodec, { quick: true, cache, overrides: { model: 1 }, keep: true });
    expect(runs).toBe(before + 1);
    expect(b.metrics).toEqual(a.metrics);
    expect(b.artifacts!.model).toBeInstanceOf(Model);
    expect(await b.artifacts!.model!.w.array()).toEqual([1, 1]);
    b.artifacts!.dispose();
    expect(tf.memory().numTensors).toBe(n0);
  });

  it('an entry that does not restore is removed and the experiment runs', async () => {
    const cache = fresh();
    const before = runs;
    await runExperimentWith(tiny, { quick: true, seed: 5, cache });
    const [entry] = listEntries(cache);
    writeFileSync(join(cache, 'tiny-cache', entry!.key, 'tensors.ckpt'), 'garbage');
    const r = await runExperimentWith(tiny, { quick: true, seed: 5, cache, keep: true });
    r.artifacts!.dispose();
    expect(r.cached).toBeUndefined();
    expect(runs).toBe(before + 2);
    // And it was stored again, whole.
    const again = await runExperimentWith(tiny, { quick: true, seed: 5, cache, keep: true });
    again.artifacts!.dispose();
    expect(again.cached).toBeDefined();
    expect(runs).toBe(before + 2);
    rmSync(cache, { recursive: true, force: true });
  });

  it('encodes plain data and tensors and nothing else', () => {
    const t = tf.tensor([1, 2]);
    const tensors: Record<string, tf.Tensor> = {};
    const enc = encodeValue({ a: [t, t], s: new Set(['x']), u: undefined, inf: -Infinity }, tensors);
    expect(Object.keys(tensors)).toEqual(['t0']);
    const back = decodeValue(JSON.parse(JSON.stringify(enc)), tensors) as Record<string, unknown>;
    expect(back).toEqual({ a: [t, t], s: new Set(['x']), u: undefined, inf: -Infinity });
    expect(() => encodeValue({ f: () => 1 }, {})).toThrow('artifacts.f is a function');
    const str = tf.tensor(['a']);
    expect(() => encodeValue([str], {})).toThrow('artifacts[0] is a string tensor');
    str.dispose();
    t.dispose();
  });
});

describe('modelCodec', () => {
  it('stores a ToyLM as config and weights and rebuilds one that computes the same logits, through the cache', async () => {
    const { ToyLM } = await import('../lib/layers/toylm.js');
    const { modelCodec } = await import('../lib/experiments/cache.js');
    const lm = modelCodec(
      (c: ConstructorParameters<typeof ToyLM>[0]) => new ToyLM(c),
      (m) => m.config,
    );
    let trained = 0;
    const exp = defineExperiment<{ steps: number }, { model: InstanceType<typeof ToyLM>; dispose(): void }>({
      name: 'tiny-toylm',
      paper: 'none',
      description: 'a ToyLM nudged away from its init',
      schema: obj<{ steps: number }>({ steps: int({ min: 0 }) }),
      quick: { steps: 1 },
      full: { steps: 1 },
      async run(cfg) {
        trained++;
        const model = new ToyLM({ vocab: 7, dModel: 8, heads: 2, layers: 1, maxLen: 6, seed: 3 });
        for (const v of model.variables()) v.assign(tf.tidy(() => v.add(0.01 * (cfg.steps + 1))));
        return { metrics: { test_x: 1 }, summary: 's', artifacts: { model, dispose: () => model.dispose() } };
      },
      artifactCodec: {
        encode: (a) => ({ model: lm.encode(a.model) }),
        decode: (s) => {
          const model = lm.decode((s as { model: Parameters<typeof lm.decode>[0] }).model);
          return { model, dispose: () => model.dispose() };
        },
      },
    });
    const cache = mkdtempSync(join(tmpdir(), 'attnlab-cache-lm-'));
    const tokens = tf.tensor2d([[1, 2, 3, 4, 5, 6]], undefined, 'int32');
    const a = await runExperimentWith(exp, { quick: true, cache, keep: true });
    const la = tf.tidy(() => a.artifacts!.model.forward(tokens));
    a.artifacts!.dispose();
    const n0 = tf.memory().numTensors;
    const b = await runExperimentWith(exp, { quick: true, cache, keep: true });
    expect(trained).toBe(1);
    expect(b.cached).toBeDefined();
    const lb = tf.tidy(() => b.artifacts!.model.forward(tokens));
    expect(await lb.array()).toEqual(await la.array());
    lb.dispose();
    b.artifacts!.dispose();
    expect(tf.memory().numTensors).toBe(n0);
    tf.dispose([la, tokens]);
  });
});

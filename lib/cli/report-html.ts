/**
 * Finishing an nbconvert HTML export into a report page that renders offline: math typeset server-side with KaTeX,
 * plotly.js embedded once (single file) or shared by every page of a site, the notebook's title, a banner on
 * quick-mode pages, and the index page of a site.
 *
 * Math: nbconvert leaves a markdown cell's `$...$`, `$$...$$`, `\(...\)` and `\[...\]` verbatim (HTML-escaped) for
 * MathJax, which a report cannot load offline. `renderMath` typesets them with `katex.renderToString` inside markdown
 * cells only, never inside `<code>`/`<pre>`, code cells or outputs; a formula KaTeX cannot parse is shown in place
 * as KaTeX's red error text with its source, not dropped. The page then needs KaTeX's stylesheet and fonts: inlined
 * (fonts as woff2 `data:` URIs) in a single file, or written once beside the pages of a site (`katex/`).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import katex from 'katex';
import { escapeHtml } from '../display/html.js';
import { plotlyFileName, plotlyScript, plotlyScriptSource } from '../display/plotly.js';

const PLOTLY_EMBED = /<script type="text\/javascript" data-attnlab-plotly="[^"]*">[\s\S]*?<\/script>/g;
const SCRIPT_SRC = /<script\b[^>]*\bsrc\s*=[^>]*>\s*<\/script>/gi;
/** nbconvert's MathJax loader and configuration (useless offline, and MathJax would re-typeset KaTeX's output). */
const MATHJAX_BLOCK = /<!-- Load mathjax -->[\s\S]*?<!-- End of mathjax configuration -->/g;
const MARKER = 'data-attnlab-report';

function unescapeHtml(s: string): string {
  return s.replace(
    /&(lt|gt|amp|quot|#39|#x27|#(\d+)|#x([0-9a-f]+));/gi,
    (m, name: string, dec?: string, hex?: string) => {
      if (dec) return String.fromCodePoint(Number(dec));
      if (hex) return String.fromCodePoint(Number.parseInt(hex, 16));
      const map: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', '#39': "'", '#x27': "'" };
      return map[name.toLowerCase()] ?? m;
    },
  );
}

function typeset(tex: string, displayMode: boolean): string {
  return katex.renderToString(unescapeHtml(tex).trim(), { displayMode, throwOnError: false, output: 'htmlAndMathml' });
}

/**
 * Math delimiters in one run of HTML-escaped text: display `$$...$$` and `\[...\]`, inline `\(...\)` and `$...$`
 * (pandoc's rule: no space just inside the dollars, and no digit right after the closing one, so "$5 and $6" is
 * text); `\$` is a literal dollar.
 */
const MATH = /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)|\\\$|\$(?!\s)((?:\\\$|[^$])+?)(?<!\s)\$(?!\d)/g;

/** Typeset the math in a run of text (no tags inside). */
export function renderMathText(text: string): string {
  if (!text.includes('$') && !text.includes('\\(') && !text.includes('\\[')) return text;
  return text.replace(MATH, (m, display?: string, bracket?: string, paren?: string, inline?: string) => {
    if (m === '\\$') return '$';
    if (display !== undefined) return typeset(display, true);
    if (bracket !== undefined) return typeset(bracket, true);
    if (paren !== undefined) return typeset(paren, false);
    return typeset(inline!, false);
  });
}

/** Typeset math in an HTML fragment's text, leaving tags, `<code>`, `<pre>`, `<script>` and `<style>` alone. */
export function renderMathInFragment(html: string): string {
  const parts = html.split(/(<[^>]*>)/);
  let skip = 0;
  let skipTag = '';
  let out = '';
  let text = '';
  const flush = () => {
    out += skip ? text : renderMathText(text);
    text = '';
  };
  for (const part of parts) {
    if (!part.startsWith('<')) {
      text += part;
      continue;
    }
    const tag = /^<(\/?)([a-z0-9]+)/i.exec(part);
    const name = tag?.[2]?.toLowerCase() ?? '';
    // Inline formatting tags do not split a formula's text (mistune never puts them inside math, but keep text whole).
    flush();
    if (['code', 'pre', 'script', 'style', 'kbd', 'samp'].includes(name) && !part.endsWith('/>')) {
      if (tag![1] === '') {
        if (skip === 0) skipTag = name;
        if (name === skipTag) skip++;
      } else if (name === skipTag && skip > 0) skip--;
    }
    out += part;
  }
  flush();
  return out;
}

/** Typeset the math of every markdown cell of an nbconvert page (code cells and outputs are left as they are). */
export function renderMath(html: string): string {
  const cellStart = /<div class="jp-Cell (?:[^"]*)"/g;
  const starts: { at: number; markdown: boolean }[] = [];
  for (const m of html.matchAll(cellStart))
    starts.push({ at: m.index ?? 0, markdown: /\bjp-MarkdownCell\b/.test(m[0]) });
  if (!starts.some((s) => s.markdown)) return html;
  const end = html.search(/<\/body>/i);
  let out = html.slice(0, starts[0]!.at);
  starts.forEach((s, i) => {
    const stop = i + 1 < starts.length ? starts[i + 1]!.at : end >= 0 ? end : html.length;
    const cell = html.slice(s.at, stop);
    out += s.markdown ? renderMathInFragment(cell) : cell;
  });
  return out + html.slice(end >= 0 && starts.length ? end : html.length);
}

let katexDir: string | undefined;
function katexDist(): string {
  katexDir ??= join(dirname(createRequire(import.meta.url).resolve('katex')), '..', 'dist');
  if (!existsSync(join(katexDir, 'katex.min.css'))) katexDir = dirname(createRequire(import.meta.url).resolve('katex'));
  return katexDir;
}

/** KaTeX's stylesheet with its fonts inlined as woff2 `data:` URIs (every browser that runs plotly.js reads woff2). */
export function katexInlineCss(): string {
  const dir = katexDist();
  const css = readFileSync(join(dir, 'katex.min.css'), 'utf8');
  return css.replace(/src:\s*url\(fonts\/([\w-]+)\.woff2\)\s*format\("woff2"\)[^;}]*/g, (_m, font: string) => {
    const data = readFileSync(join(dir, 'fonts', `${font}.woff2`)).toString('base64');
    return `src:url(data:font/woff2;base64,${data}) format("woff2")`;
  });
}

/** Write KaTeX's stylesheet and woff2 fonts under `dir` (`dir/katex.min.css`, `dir/fonts/`). */
export function writeKatexAssets(dir: string): void {
  const src = katexDist();
  mkdirSync(join(dir, 'fonts'), { recursive: true });
  const css = readFileSync(join(src, 'katex.min.css'), 'utf8').replace(
    /src:\s*url\(fonts\/([\w-]+)\.woff2\)\s*format\("woff2"\)[^;}]*/g,
    (_m, font: string) => `src:url(fonts/${font}.woff2) format("woff2")`,
  );
  writeFileSync(join(dir, 'katex.min.css'), css);
  for (const f of readdirSync(join(src, 'fonts')).filter((f) => f.endsWith('.woff2')))
    copyFileSync(join(src, 'fonts', f), join(dir, 'fonts', f));
}

/**
 * Site mode: move the page's `<style type="text/css">` blocks of its head (nbconvert's theme, about 0.55 MB) into a
 * stylesheet under `dir` named by the hash of its content, so pages with the same styles share one file; the page
 * links it. Returns the page.
 */
export function shareStyles(html: string, dir: string): string {
  const end = html.search(/<\/head>/i);
  if (end < 0) return html;
  const head = html.slice(0, end);
  const blocks = head.match(/<style type="text\/css">[\s\S]*?<\/style>/g);
  if (!blocks) return html;
  const css = blocks.map((b) => b.replace(/^<style type="text\/css">/, '').replace(/<\/style>$/, '')).join('\n');
  const name = `notebook-${createHash('sha256').update(css).digest('hex').slice(0, 12)}.css`;
  if (!existsSync(join(dir, name))) writeFileSync(join(dir, name), css);
  let first = true;
  const newHead = head.replace(/<style type="text\/css">[\s\S]*?<\/style>/g, () => {
    if (!first) return '';
    first = false;
    return `<link rel="stylesheet" href="${name}">`;
  });
  return newHead + html.slice(end);
}

/** Write the site's one copy of plotly.js under `dir`; returns its file name. */
export function writePlotlyAsset(dir: string): string {
  const name = plotlyFileName();
  const file = join(dir, name);
  if (!existsSync(file)) writeFileSync(file, plotlyScriptSource());
  return name;
}

export const QUICK_BANNER =
  'quick run: small models, short training; numbers are not the paper&#39;s setting. Run the report without --quick ' +
  'for the full settings.';

export interface PageOptions {
  /** The page title (the notebook's). */
  title?: string;
  /** Put the quick-run banner at the top of the page. */
  quick?: boolean;
  /**
   * 'single': one self-contained file (plotly.js and KaTeX's CSS and fonts inline). 'site': link `plotlyHref` and
   * `katexHref` (relative URLs of the shared files) instead.
   */
  mode?: 'single' | 'site';
  plotlyHref?: string;
  katexHref?: string;
}

/**
 * Make an nbconvert export a finished report page: scripts loaded from elsewhere (require.js, MathJax) removed, math
 * typeset, plotly.js exactly once when there are figures (inline, or a link to the site's shared copy), KaTeX's CSS
 * when there is math, the notebook's title, and the quick-run banner. Idempotent.
 */
export function finishPage(html: string, opts: PageOptions = {}): string {
  if (html.includes(`${MARKER}=`)) return html;
  const mode = opts.mode ?? 'single';
  let out = html.replace(MATHJAX_BLOCK, '').replace(SCRIPT_SRC, '');
  out = renderMath(out);
  const hasFigures = out.includes('class="attnlab-plot"');
  let head = '';
  if (mode === 'single') {
    const copies = out.match(PLOTLY_EMBED)?.length ?? 0;
    if (copies > 1) {
      let seen = 0;
      out = out.replace(PLOTLY_EMBED, (m) => (seen++ === 0 ? m : ''));
    } else if (copies === 0 && hasFigures) head += plotlyScript();
  } else {
    out = out.replace(PLOTLY_EMBED, '');
    if (hasFigures) head += `<script src="${escapeHtml(opts.plotlyHref ?? plotlyFileName())}"></script>`;
  }
  if (out.includes('class="katex')) {
    head +=
      mode === 'single'
        ? `<style data-attnlab-katex>${katexInlineCss()}</style>`
        : `<link rel="stylesheet" href="${escapeHtml(opts.katexHref ?? 'katex/katex.min.css')}">`;
  }
  head += `<style>.attnlab-banner{background:#fff4ce;border:1px solid #e0b000;padding:8px 12px;margin:8px 0 16px;font:600 14px system-ui,sans-serif}</style>`;
  if (opts.title !== undefined)
    out = out.replace(/<title>[\s\S]*?<\/title>/i, `<title>${escapeHtml(opts.title)}</title>`);
  out = out.replace(/<\/head>/i, `${head}</head>`);
  const banner = opts.quick ? `<div class="attnlab-banner" role="note">${QUICK_BANNER}</div>` : '';
  out = out.replace(/<body\b([^>]*)>/i, (_m, attrs: string) => `<body${attrs} ${MARKER}="${mode}">${banner}`);
  return out;
}

/** A notebook's title (its first `# ` heading) and summary (its first markdown paragraph that is not a heading). */
export function notebookOutline(path: string): { title?: string; summary?: string } {
  let cells: { cell_type?: string; source?: string | string[] }[] = [];
  try {
    cells = (JSON.parse(readFileSync(path, 'utf8')) as { cells?: typeof cells }).cells ?? [];
  } catch {
    return {};
  }
  let title: string | undefined;
  let summary: string | undefined;
  for (const c of cells) {
    if (c.cell_type !== 'markdown') continue;
    const src = Array.isArray(c.source) ? c.source.join('') : (c.source ?? '');
    for (const block of src.split(/\n\s*\n/)) {
      const b = block.trim();
      if (!b) continue;
      if (title === undefined && b.startsWith('# ')) {
        title = b.split('\n')[0]!.slice(2).trim();
        const rest = b.split('\n').slice(1).join('\n').trim();
        if (rest && summary === undefined && !/^(#|```|\||<)/.test(rest)) summary = rest;
        continue;
      }
      if (summary === undefined && !/^(#|```|\||<|!\[|[-*] |\d+\. |\$\$)/.test(b)) summary = b;
    }
    if (title !== undefined && summary !== undefined) break;
  }
  return { title, summary };
}

/** Markdown of a summary paragraph as HTML: escaped, with code spans, bold/italic, links' text, and typeset math. */
export function summaryHtml(markdown: string): string {
  const parts = markdown.replace(/\s+/g, ' ').split(/(`[^`]+`)/);
  return parts
    .map((p) => {
      if (p.startsWith('`') && p.endsWith('`') && p.length > 1) return `<code>${escapeHtml(p.slice(1, -1))}</code>`;
      const text = escapeHtml(p)
        .replace(/\[([^\]]+)\]\([^)]*\)/g, '$1')
        .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
        .replace(/(^|[^\w*])\*([^*\s][^*]*)\*/g, '$1<em>$2</em>');
      return renderMathText(text);
    })
    .join('');
}

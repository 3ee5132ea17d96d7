/**
 * Plotly figures in notebooks and exported HTML.
 *
 * A figure goes out as `application/vnd.plotly.v1+json` (JupyterLab renders it natively), `text/html` (what the
 * classic UI and nbconvert's HTML export use) and `text/plain`. The HTML carries plotly.js itself the first time a
 * process shows a figure, so a saved notebook or a report holds one copy and needs no network. A later figure on a
 * page without `window.Plotly` (the notebook page was reloaded, a second tab, the first output was cleared) loads
 * plotly.js from the Jupyter server, which serves the copy that `attnlab kernel install` put in the kernelspec
 * directory at `<base url>kernelspecs/attnlab/plotly-<version>.min.js`; when that fails the figure says why.
 */

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { MimeBundle } from './handle.js';

export const PLOTLY_MIME = 'application/vnd.plotly.v1+json';

/** A plotly trace: `type` plus whatever attributes that trace type takes. */
export type Trace = { type?: string; name?: string } & Record<string, unknown>;
export type Layout = Record<string, unknown>;

/** A plain plotly figure object, as `Plotly.newPlot` takes it. */
export interface Figure {
  data: Trace[];
  layout?: Layout;
  config?: Record<string, unknown>;
  frames?: unknown[];
}

const FIGURE_KEYS = new Set(['data', 'layout', 'config', 'frames']);

/** A plain object with a `data` array of trace objects and no keys plotly would not know. */
export function isFigure(x: unknown): x is Figure {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  if (proto !== Object.prototype && proto !== null) return false;
  const f = x as Record<string, unknown>;
  if (!Array.isArray(f.data) || !Object.keys(f).every((k) => FIGURE_KEYS.has(k))) return false;
  return f.data.every((t) => t !== null && typeof t === 'object' && ('type' in t || 'x' in t || 'y' in t || 'z' in t));
}

let plotlySource: string | undefined;
let plotlyVersion: string | undefined;

function loadPlotly(): { source: string; version: string } {
  if (plotlySource === undefined) {
    const req = createRequire(import.meta.url);
    plotlySource = readFileSync(req.resolve('plotly.js-dist-min'), 'utf8');
    plotlyVersion = /plotly\.js v([\w.-]+)/.exec(plotlySource.slice(0, 200))?.[1] ?? 'unknown';
  }
  return { source: plotlySource, version: plotlyVersion! };
}

/** The kernelspec's copy of plotly.js (see `installKernelSpec`), named by version so an old copy is never used. */
export function plotlyFileName(): string {
  return `plotly-${loadPlotly().version}.min.js`;
}

/** plotly.js itself (the `plotly.js-dist-min` bundle). */
export function plotlyScriptSource(): string {
  return loadPlotly().source;
}

/** Whether this process already sent plotly.js out in an HTML output. */
let embedded = false;

/** Forget that plotly.js was sent, so the next figure carries it again (a new notebook, a new report). */
export function resetPlotlyEmbedding(): void {
  embedded = false;
}

/** The `<script>` that defines `window.Plotly`, marked so that a report can find and move it. */
export function plotlyScript(): string {
  const { source, version } = loadPlotly();
  // plotly.min.js contains no "</script"; the guard keeps it that way if a future build does.
  return `<script type="text/javascript" data-attnlab-plotly="${version}">${source.replace(/<\/script/gi, '<\\/script')}</script>`;
}

/** JSON that is safe inside a `<script>` element. */
function scriptJson(x: unknown): string {
  return JSON.stringify(x)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export interface FigureHtmlOptions {
  /** Include plotly.js: `'auto'` (default) the first time in this process, or always/never. */
  includePlotly?: 'auto' | boolean;
}

export function figureHtml(fig: Figure, opts: FigureHtmlOptions = {}): string {
  const include = opts.includePlotly ?? 'auto';
  const withLib = include === 'auto' ? !embedded : include;
  if (withLib) embedded = true;
  const id = `attnlab-plot-${randomBytes(6).toString('hex')}`;
  const height = typeof fig.layout?.height === 'number' ? fig.layout.height : 450;
  const spec = {
    data: fig.data,
    layout: fig.layout ?? {},
    config: { responsive: true, ...fig.config },
    frames: fig.frames,
  };
  const draw =
    `(function(){var fig=${scriptJson(spec)},id=${JSON.stringify(id)},file=${JSON.stringify(plotlyFileName())};` +
    'function el(){return document.getElementById(id);}' +
    "function draw(){window.Plotly.newPlot(id,fig).then(function(){el().setAttribute('data-rendered','1');});}" +
    'if(window.Plotly){draw();return;}' +
    // Another figure may be loading plotly.js already: one request per page.
    'var w=window,q=w.__attnlabPlotlyWaiters;' +
    "function fail(why){var e=el();if(e&&!e.querySelector('.main-svg')){e.style.height='auto';" +
    "e.textContent='This figure cannot be drawn: plotly.js is not on this page and '+why+'. plotly.js is sent with " +
    "the first figure a kernel shows; re-run the cell that drew the first figure, or run \\'attnlab kernel install\\' " +
    "and reload.';}}" +
    'if(q){q.push([draw,fail]);return;}q=w.__attnlabPlotlyWaiters=[[draw,fail]];' +
    'function done(why){w.__attnlabPlotlyWaiters=undefined;q.forEach(function(f){w.Plotly?f[0]():f[1](why);});}' +
    "var c=document.getElementById('jupyter-config-data'),base=document.body&&document.body.getAttribute('data-base-url');" +
    'try{if(!base&&c)base=JSON.parse(c.textContent).baseUrl;}catch(x){}' +
    // A page not served by Jupyter (an export): wait briefly in case an earlier output still defines it.
    "if(location.protocol==='file:'){var n=0,t=setInterval(function(){if(w.Plotly||++n>40){clearInterval(t);" +
    "done('this file is not served by Jupyter');}},50);return;}" +
    "var url=(base||'/').replace(/\\/?$/,'/')+'kernelspecs/attnlab/'+file,s=document.createElement('script');" +
    "s.src=url;s.onload=function(){done('loading '+url+' did not define it');};" +
    "s.onerror=function(){done('the Jupyter server did not serve '+url);};document.head.appendChild(s);})();";
  return (
    (withLib ? plotlyScript() : '') +
    `<div id="${id}" class="attnlab-plot" style="width:100%;height:${height}px"></div>` +
    `<script type="text/javascript">${draw}</script>`
  );
}

function describe(fig: Figure): string {
  const title = fig.layout?.title;
  const text = typeof title === 'string' ? title : (title as { text?: string } | undefined)?.text;
  const kinds = fig.data.map((t) => t.type ?? 'scatter');
  return `Figure${text ? ` "${text}"` : ''}: ${fig.data.length} trace${fig.data.length === 1 ? '' : 's'} (${[...new Set(kinds)].join(', ')})`;
}

export function figureBundle(fig: Figure): MimeBundle {
  return {
    [PLOTLY_MIME]: { data: fig.data, layout: fig.layout ?? {}, ...(fig.config ? { config: fig.config } : {}) },
    'text/html': figureHtml(fig),
    'text/plain': describe(fig),
  };
}

/**
 * An attention viewer that needs no network: pick a layer and head, hover (or focus, or tap) a token to see where it
 * attends, and a heads-by-layers grid of small patterns, like CircuitsVis' `attention_patterns` or bertviz' head view.
 *
 *   al.display(al.display.attentionViewer(tokens, patterns))   // patterns: [layers][heads][q][k], a tensor, or per layer
 *
 * The output is one HTML fragment: the tokens, names and grid images are rendered here (escaped), and a small inline
 * script (no `src`, no CDN) adds the interaction, so it works in the live kernel, in a saved notebook and in an exported
 * report (`attnlab report` removes only scripts loaded from elsewhere). Without scripts the grid and the first head's
 * pattern still show. Each thumbnail is a PNG `data:` URI on one colour scale from 0 to the largest weight shown.
 *
 * Shapes: `patterns` is a tensor [L, H, Q, K] or [L, B, H, Q, K], nested arrays [L][H][Q][K], or one entry per layer
 * (tensor or nested arrays) of [H, Q, K] or [B, H, Q, K]; `opts.batch` picks the row of a batched pattern. Q = K = the
 * number of tokens.
 */
import { randomBytes } from 'node:crypto';
import { JUPYTER_DISPLAY, type MimeBundle } from './handle.js';
import { escapeHtml } from './html.js';
import { encodePng, viridis } from './png.js';
import { isTensor, type TensorLike } from './tensor.js';

type Nested = number[] | Nested[];
/** One layer's weights: [H, Q, K] or [B, H, Q, K]. */
export type LayerPattern = TensorLike | number[][][] | number[][][][];
export type AttentionPatterns = TensorLike | readonly LayerPattern[];

export interface AttentionViewerOptions {
  /** Row of a batched pattern ([B, H, Q, K] per layer, or a rank-5 tensor). Default 0. */
  batch?: number;
  title?: string;
  /** One name per layer (default `layer 0`, ...). */
  layerNames?: readonly string[];
  /** One name per head (default `head 0`, ...). */
  headNames?: readonly string[];
  /** Layer and head shown first. Default 0, 0. */
  layer?: number;
  head?: number;
  /** Refuse more than this many tokens (the page carries L·H·T² numbers). Default 512. */
  maxTokens?: number;
}

const FN = 'attentionViewer';

function shapeOf(x: unknown): number[] {
  if (isTensor(x)) return [...x.shape];
  const s: number[] = [];
  let v: unknown = x;
  while (Array.isArray(v)) {
    s.push(v.length);
    v = v[0];
  }
  return s;
}

function describe(x: unknown): string {
  if (isTensor(x)) return `a tensor of shape [${x.shape.join(', ')}]`;
  if (Array.isArray(x)) return `nested arrays of shape [${shapeOf(x).join(', ')}]`;
  return x === null ? 'null' : typeof x;
}

/** Flat values of a tensor, or of nested arrays checked to be rectangular with shape `shape`. */
function flatValues(x: TensorLike | Nested, shape: number[], what: string): Float64Array {
  if (isTensor(x)) {
    if (x.isDisposed) throw new Error(`${FN}: ${what} is a disposed tensor`);
    return Float64Array.from(x.dataSync() as ArrayLike<number>, Number);
  }
  const out = new Float64Array(shape.reduce((a, b) => a * b, 1));
  let i = 0;
  const walk = (v: unknown, d: number, path: string) => {
    if (!Array.isArray(v) || v.length !== shape[d])
      throw new RangeError(
        `${FN}: ${what}${path} must have length ${shape[d]} (a rectangular array of shape [${shape.join(', ')}]); got ${Array.isArray(v) ? `length ${v.length}` : typeof v}`,
      );
    if (d === shape.length - 1) {
      for (const n of v) out[i++] = typeof n === 'number' ? n : Number.NaN;
    } else v.forEach((c, j) => walk(c, d + 1, `${path}[${j}]`));
  };
  walk(x, 0, '');
  return out;
}

/** The viewer's data: weights[l][h] is a row-major Q x K matrix (Q = K = T). */
interface ViewerData {
  layers: number;
  heads: number;
  tokens: number;
  weights: Float64Array[][];
}

/** Read `patterns` into per-layer, per-head matrices, checking shapes against `tokens`. */
function readPatterns(patterns: AttentionPatterns, T: number, batch: number): ViewerData {
  const pick = (values: Float64Array, shape: number[], what: string): Float64Array[] => {
    // shape is [H, Q, K] or [B, H, Q, K]
    let offset = 0;
    let [H, Q, K] = shape as [number, number, number];
    if (shape.length === 4) {
      const B = shape[0]!;
      if (!Number.isInteger(batch) || batch < 0 || batch >= B)
        throw new RangeError(`${FN}: opts.batch must be an integer in [0, ${B - 1}] for ${what}; got ${batch}`);
      [, H, Q, K] = shape as [number, number, number, number];
      offset = batch * H * Q * K;
    } else if (shape.length !== 3)
      throw new TypeError(
        `${FN}: ${what} must be [heads, q, k] or [batch, heads, q, k]; got shape [${shape.join(', ')}]`,
      );
    if (Q !== T || K !== T)
      throw new RangeError(
        `${FN}: ${what} has ${Q} queries and ${K} keys, but tokens has ${T} entries; they must all be equal`,
      );
    return Array.from({ length: H }, (_, h) => values.slice(offset + h * Q * K, offset + (h + 1) * Q * K));
  };
  let perLayer: Float64Array[][];
  if (isTensor(patterns)) {
    const s = [...patterns.shape];
    if (s.length !== 4 && s.length !== 5)
      throw new TypeError(
        `${FN}: patterns as one tensor must be [layers, heads, q, k] or [layers, batch, heads, q, k]; got shape [${s.join(', ')}]`,
      );
    const values = flatValues(patterns, s, 'patterns');
    const per = s.slice(1).reduce((a, b) => a * b, 1);
    perLayer = Array.from({ length: s[0]! }, (_, l) =>
      pick(values.subarray(l * per, (l + 1) * per), s.slice(1), `patterns[${l}]`),
    );
  } else if (Array.isArray(patterns)) {
    perLayer = patterns.map((p, l) => {
      const s = shapeOf(p);
      if (!isTensor(p) && !Array.isArray(p))
        throw new TypeError(`${FN}: patterns[${l}] must be a tensor or nested arrays; got ${describe(p)}`);
      return pick(flatValues(p as TensorLike | Nested, s, `patterns[${l}]`), s, `patterns[${l}]`);
    });
  } else
    throw new TypeError(
      `${FN}: patterns must be a tensor or an array of layers ([layers][heads][q][k]); got ${describe(patterns)}`,
    );
  if (perLayer.length === 0) throw new RangeError(`${FN}: patterns has no layers`);
  const heads = perLayer[0]!.length;
  if (heads === 0) throw new RangeError(`${FN}: patterns[0] has no heads`);
  perLayer.forEach((hs, l) => {
    if (hs.length !== heads)
      throw new RangeError(
        `${FN}: every layer must have ${heads} heads (as patterns[0]); patterns[${l}] has ${hs.length}`,
      );
    hs.forEach((w, h) => {
      const bad = w.findIndex((v) => !Number.isFinite(v) || v < 0);
      if (bad >= 0)
        throw new RangeError(
          `${FN}: attention weights must be finite and >= 0; patterns[${l}] head ${h} has ${w[bad]} at query ${Math.floor(bad / T)}, key ${bad % T}`,
        );
    });
  });
  return { layers: perLayer.length, heads, tokens: T, weights: perLayer };
}

/** A T x T pattern as a PNG `data:` URI, one pixel per weight, viridis from 0 to `max`. */
function patternPng(w: Float64Array, T: number, max: number): string {
  const rgb = new Uint8Array(T * T * 3);
  for (let i = 0; i < T * T; i++) rgb.set(viridis(max > 0 ? w[i]! / max : 0), i * 3);
  return `data:image/png;base64,${encodePng(T, T, rgb).toString('base64')}`;
}

/** JSON that is safe inside a `<script>` element. */
function scriptJson(x: unknown): string {
  return JSON.stringify(x)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function names(given: readonly string[] | undefined, n: number, prefix: string, what: string): string[] {
  if (given === undefined) return Array.from({ length: n }, (_, i) => `${prefix} ${i}`);
  if (given.length !== n) throw new RangeError(`${FN}: opts.${what} must have ${n} entries; got ${given.length}`);
  return given.map(String);
}

const STYLE =
  '.attnlab-av{font:13px system-ui,sans-serif;color:#222;max-width:100%}' +
  '.attnlab-av .av-title{font-weight:600;margin:4px 0}' +
  '.attnlab-av .av-controls{margin:4px 0 8px}.attnlab-av select{margin-right:12px}' +
  '.attnlab-av .av-main{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}' +
  '.attnlab-av .av-tokens{max-width:40em;line-height:2;font-family:ui-monospace,monospace}' +
  '.attnlab-av .av-tok{padding:2px 3px;margin:1px;border:1px solid #ccc;border-radius:3px;cursor:pointer;white-space:pre;' +
  'display:inline-block;line-height:1.3}' +
  '.attnlab-av .av-tok.av-query{outline:2px solid #d62728}' +
  '.attnlab-av .av-tok.av-locked{outline-style:dashed}' +
  '.attnlab-av .av-status{min-height:1.4em;color:#444;margin-top:6px;font-family:ui-monospace,monospace}' +
  '.attnlab-av .av-big{position:relative;width:240px;height:240px;flex:none}' +
  '.attnlab-av .av-big img{width:240px;height:240px;image-rendering:pixelated;display:block}' +
  '.attnlab-av .av-row{position:absolute;left:0;width:240px;border:1px solid #d62728;box-sizing:border-box;display:none}' +
  '.attnlab-av .av-grid{border-collapse:collapse;margin-top:10px}' +
  '.attnlab-av .av-grid td,.attnlab-av .av-grid th{padding:2px;font-weight:normal;font-size:11px;text-align:center}' +
  '.attnlab-av .av-thumb{width:56px;height:56px;image-rendering:pixelated;border:2px solid transparent;cursor:pointer;display:block}' +
  '.attnlab-av .av-thumb.av-selected{border-color:#d62728}' +
  '.attnlab-av .av-caption{color:#666;font-size:11px;margin-top:4px}';

/**
 * The interaction, run once per viewer (the root's id is passed in). Hover, focus or tap a token to show its row;
 * click (or Enter) locks it so the pointer can move to the controls; the selects and grid switch layer and head.
 * Text is only ever set with textContent.
 */
const SCRIPT = `(function(id,d){var root=document.getElementById(id);if(!root||root.getAttribute('data-ready'))return;
var T=d.tokens.length,L=d.weights.length,H=d.weights[0].length,layer=d.layer,head=d.head,query=-1,locked=false;
var toks=root.querySelectorAll('.av-tok'),thumbs=root.querySelectorAll('.av-thumb'),ls=root.querySelector('.av-layer'),
hs=root.querySelector('.av-head'),big=root.querySelector('.av-big img'),row=root.querySelector('.av-row'),
status=root.querySelector('.av-status');
function fmt(x){return x.toFixed(3);}
function paint(){var w=d.weights[layer][head];
for(var i=0;i<T;i++){var t=toks[i];t.classList.toggle('av-query',i===query);t.classList.toggle('av-locked',i===query&&locked);
if(query<0){t.style.background='';t.setAttribute('data-weight','');t.title='query '+i+': hover to see where it attends';continue;}
var rowMax=0;for(var k=0;k<T;k++)rowMax=Math.max(rowMax,w[query*T+k]);
var v=w[query*T+i],a=rowMax>0?v/rowMax:0;t.style.background='rgba(31,119,180,'+a.toFixed(3)+')';
t.setAttribute('data-weight',String(v));t.title='attention from query '+query+' to key '+i+': '+fmt(v);}
for(var j=0;j<thumbs.length;j++){var th=thumbs[j];th.classList.toggle('av-selected',+th.getAttribute('data-layer')===layer&&+th.getAttribute('data-head')===head);}
big.src=d.images[layer][head];big.alt=d.layerNames[layer]+', '+d.headNames[head];
root.setAttribute('data-layer',String(layer));root.setAttribute('data-head',String(head));root.setAttribute('data-query',String(query));
if(query<0){row.style.display='none';status.textContent=d.layerNames[layer]+', '+d.headNames[head]+': hover, focus or tap a token';return;}
row.style.display='block';row.style.top=(240*query/T)+'px';row.style.height=Math.max(2,240/T)+'px';
var order=[];for(var k2=0;k2<T;k2++)order.push(k2);order.sort(function(a,b){return w[query*T+b]-w[query*T+a];});
status.textContent=d.layerNames[layer]+', '+d.headNames[head]+': '+JSON.stringify(d.tokens[query])+' ('+query+') attends to '+
order.slice(0,3).filter(function(k){return w[query*T+k]>0;}).map(function(k){return JSON.stringify(d.tokens[k])+' ('+k+') '+fmt(w[query*T+k]);}).join(', ');}
function show(i){if(!locked){query=i;paint();}}
for(var i=0;i<T;i++)(function(i){var t=toks[i];
t.addEventListener('mouseenter',function(){show(i);});t.addEventListener('focus',function(){show(i);});
t.addEventListener('click',function(){if(locked&&query===i){locked=false;}else{locked=true;query=i;}paint();});
t.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();t.click();}
else if(e.key==='ArrowRight'&&i+1<T){toks[i+1].focus();}else if(e.key==='ArrowLeft'&&i>0){toks[i-1].focus();}});})(i);
root.querySelector('.av-tokens').addEventListener('mouseleave',function(){if(!locked){query=-1;paint();}});
ls.addEventListener('change',function(){layer=+ls.value;paint();});hs.addEventListener('change',function(){head=+hs.value;paint();});
for(var j=0;j<thumbs.length;j++)(function(th){function pick(){layer=+th.getAttribute('data-layer');head=+th.getAttribute('data-head');
ls.value=String(layer);hs.value=String(head);paint();}th.addEventListener('click',pick);
th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();pick();}});})(thumbs[j]);
paint();root.setAttribute('data-ready','1');})`;

/** What `attentionViewer` returns: displays itself in a notebook; `html` is the fragment, `text` a plain summary. */
export class AttentionViewer {
  readonly html: string;
  readonly text: string;
  constructor(html: string, text: string) {
    this.html = html;
    this.text = text;
  }
  [JUPYTER_DISPLAY](): MimeBundle {
    return { 'text/html': this.html, 'text/plain': this.text };
  }
  toString(): string {
    return this.text;
  }
}

/**
 * An interactive attention viewer for `tokens` and their attention `patterns` (see the module header for shapes).
 * Throws when shapes disagree with `tokens`, when a weight is negative or not finite, or when an option is out of range.
 */
export function attentionViewer(
  tokens: readonly string[],
  patterns: AttentionPatterns,
  opts: AttentionViewerOptions = {},
): AttentionViewer {
  if (!Array.isArray(tokens) || tokens.length === 0)
    throw new TypeError(`${FN}: tokens must be a non-empty array of strings; got ${describe(tokens)}`);
  const maxTokens = opts.maxTokens ?? 512;
  if (tokens.length > maxTokens)
    throw new RangeError(
      `${FN}: tokens has ${tokens.length} entries, more than opts.maxTokens = ${maxTokens} (slice the sequence, or raise maxTokens)`,
    );
  const toks = tokens.map(String);
  const d = readPatterns(patterns, toks.length, opts.batch ?? 0);
  const layerNames = names(opts.layerNames, d.layers, 'layer', 'layerNames');
  const headNames = names(opts.headNames, d.heads, 'head', 'headNames');
  const layer = opts.layer ?? 0;
  const head = opts.head ?? 0;
  if (!Number.isInteger(layer) || layer < 0 || layer >= d.layers)
    throw new RangeError(`${FN}: opts.layer must be an integer in [0, ${d.layers - 1}]; got ${layer}`);
  if (!Number.isInteger(head) || head < 0 || head >= d.heads)
    throw new RangeError(`${FN}: opts.head must be an integer in [0, ${d.heads - 1}]; got ${head}`);
  const T = d.tokens;
  let max = 0;
  for (const hs of d.weights) for (const w of hs) for (const v of w) max = Math.max(max, v);
  const images = d.weights.map((hs) => hs.map((w) => patternPng(w, T, max)));
  const id = `attnlab-av-${randomBytes(6).toString('hex')}`;
  const option = (n: string, i: number, sel: number) =>
    `<option value="${i}"${i === sel ? ' selected' : ''}>${escapeHtml(n)}</option>`;
  const tokenSpans = toks
    .map((t, i) => `<span class="av-tok" tabindex="0" data-index="${i}" role="button">${escapeHtml(t)}</span>`)
    .join('');
  const grid =
    `<table class="av-grid"><thead><tr><th></th>${headNames.map((n) => `<th>${escapeHtml(n)}</th>`).join('')}</tr></thead><tbody>` +
    layerNames
      .map(
        (ln, l) =>
          `<tr><th>${escapeHtml(ln)}</th>` +
          headNames
            .map(
              (hn, h) =>
                `<td><img class="av-thumb${l === layer && h === head ? ' av-selected' : ''}" tabindex="0" role="button" ` +
                `data-layer="${l}" data-head="${h}" src="${images[l]![h]}" alt="${escapeHtml(`${ln}, ${hn}`)}" ` +
                `title="${escapeHtml(`${ln}, ${hn}`)}"></td>`,
            )
            .join('') +
          '</tr>',
      )
      .join('') +
    '</tbody></table>';
  const round = (v: number) => Math.round(v * 1e5) / 1e5;
  const data = {
    tokens: toks,
    weights: d.weights.map((hs) => hs.map((w) => Array.from(w, round))),
    images,
    layerNames,
    headNames,
    layer,
    head,
  };
  const html =
    `<style>${STYLE}</style>` +
    `<div id="${id}" class="attnlab-av" data-layer="${layer}" data-head="${head}" data-query="-1">` +
    (opts.title ? `<div class="av-title">${escapeHtml(opts.title)}</div>` : '') +
    `<div class="av-controls"><label>layer <select class="av-layer">${layerNames.map((n, i) => option(n, i, layer)).join('')}</select></label>` +
    `<label>head <select class="av-head">${headNames.map((n, i) => option(n, i, head)).join('')}</select></label></div>` +
    `<div class="av-main"><div><div class="av-tokens">${tokenSpans}</div><div class="av-status"></div></div>` +
    `<div class="av-big"><img src="${images[layer]![head]}" alt="${escapeHtml(`${layerNames[layer]}, ${headNames[head]}`)}"><div class="av-row"></div></div></div>` +
    grid +
    `<div class="av-caption">Token shading: the hovered query's weight on each key relative to that row's largest weight ` +
    `(the tooltip gives the value). Images: rows are queries, columns keys, viridis from 0 to ${escapeHtml(max.toPrecision(3))}; click a thumbnail to select its head.</div>` +
    `</div><script type="text/javascript">${SCRIPT}(${JSON.stringify(id)},${scriptJson(data)});</script>`;
  const text = `Attention viewer: ${d.layers} layer${d.layers === 1 ? '' : 's'} x ${d.heads} head${d.heads === 1 ? '' : 's'}, ${T} tokens${opts.title ? ` (${opts.title})` : ''}`;
  return new AttentionViewer(html, text);
}

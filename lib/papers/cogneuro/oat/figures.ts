/**
 * Plotly figures for scanpaths: displays drawn as images (cell units on both axes) with numbered fixations over them,
 * and per-object weights (attention, pointer probabilities) as circles over the objects.
 */

import { CELL_PX, renderDisplay, type SearchDisplay } from '../../../data/visual-search/displays.js';
import type { Figure, Layout, Trace } from '../../../display/plotly.js';

export interface ScanpathPanel {
  display: SearchDisplay;
  title: string;
  /** Named scanpaths drawn over the display (object indices). */
  paths: { name: string; path: readonly number[]; color: string }[];
  /** Optional per-object weights drawn as circles (e.g. attention). */
  weights?: readonly number[];
}

function imageTrace(d: SearchDisplay, axis: string): Trace {
  const img = renderDisplay(d);
  const z = Array.from({ length: img.height }, (_, y) =>
    Array.from({ length: img.width }, (_, x) =>
      Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3), (v) => Math.round(v * 255)),
    ),
  );
  // Pixel centres in cell units, so traces over it use object coordinates.
  return {
    type: 'image',
    z,
    x0: 0.5 / CELL_PX,
    dx: 1 / CELL_PX,
    y0: 0.5 / CELL_PX,
    dy: 1 / CELL_PX,
    hoverinfo: 'skip',
    xaxis: `x${axis}`,
    yaxis: `y${axis}`,
  };
}

/**
 * Displays side by side, each with its scanpaths: a line through the fixated objects and the fixation number at each
 * (repeated numbers on one object are refixations or revisits). The target is ringed in black.
 */
export function scanpathFigure(panels: readonly ScanpathPanel[], title: string): Figure {
  const K = panels.length,
    gap = 0.015;
  const data: Trace[] = [];
  const layout: Layout = {
    title: { text: title },
    height: 360,
    margin: { t: 70, b: 80, l: 20, r: 20 },
    legend: { orientation: 'h', y: -0.25 },
  };
  const named = new Set<string>();
  panels.forEach((p, k) => {
    const ax = k === 0 ? '' : String(k + 1);
    const d = p.display;
    data.push(imageTrace(d, ax));
    const t = d.objects[d.target];
    data.push({
      type: 'scatter',
      mode: 'markers',
      x: [t.x],
      y: [t.y],
      marker: { size: 26, color: 'rgba(0,0,0,0)', line: { color: 'black', width: 2 } },
      name: 'target',
      legendgroup: 'target',
      showlegend: !named.has('target'),
      hoverinfo: 'skip',
      xaxis: `x${ax}`,
      yaxis: `y${ax}`,
    });
    named.add('target');
    if (p.weights) {
      const max = Math.max(...p.weights, 1e-9);
      data.push({
        type: 'scatter',
        mode: 'markers',
        x: d.objects.map((o) => o.x),
        y: d.objects.map((o) => o.y),
        name: 'weight',
        showlegend: false,
        marker: {
          size: p.weights.map((w) => 6 + 30 * Math.sqrt(w / max)),
          color: 'rgba(214,39,40,0.45)',
          line: { color: '#d62728', width: 1 },
        },
        text: p.weights.map((w, j) => `object ${j}: ${w.toFixed(3)}`),
        hoverinfo: 'text',
        xaxis: `x${ax}`,
        yaxis: `y${ax}`,
      });
    }
    p.paths.forEach((s, si) => {
      // Each path gets a small offset so two paths over the same objects stay readable.
      const off = (si - (p.paths.length - 1) / 2) * 0.12;
      const xs = s.path.map((j) => d.objects[j].x + off),
        ys = s.path.map((j) => d.objects[j].y + off);
      data.push({
        type: 'scatter',
        mode: 'lines+markers+text',
        x: xs,
        y: ys,
        text: s.path.map((_, i) => String(i + 1)),
        textposition: 'top right',
        textfont: { color: s.color, size: 12 },
        line: { color: s.color, width: 2 },
        marker: { color: s.color, size: 7 },
        name: s.name,
        legendgroup: s.name,
        showlegend: !named.has(s.name),
        hovertext: s.path.map((j, i) => `${s.name}: fixation ${i + 1} on object ${j}`),
        hoverinfo: 'text',
        xaxis: `x${ax}`,
        yaxis: `y${ax}`,
      });
      named.add(s.name);
    });
    layout[`xaxis${ax}`] = {
      domain: [k / K + gap, (k + 1) / K - gap],
      range: [0, d.cols],
      showticklabels: false,
      showgrid: false,
      zeroline: false,
      title: { text: p.title },
    };
    layout[`yaxis${ax}`] = {
      range: [d.rows, 0],
      showticklabels: false,
      showgrid: false,
      zeroline: false,
      scaleanchor: `x${ax}`,
    };
  });
  return { data, layout };
}

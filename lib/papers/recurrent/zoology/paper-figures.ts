/**
 * The papers' figure values for `mqar-frontier`, as numbers: Zoology's Fig. 2 (MQAR accuracy vs model dimension per
 * sequence length, attention and four gated-convolution models) and BASED's Fig. 2 right panel (MQAR accuracy vs
 * recurrent state bytes, one point per model configuration).
 *
 * How they were read: both figures are PNGs in the official repository (HazyResearch/zoology: `assets/figure2.png`
 * for Zoology, `zoology/experiments/paper_configs/arxiv24_based_figure2/figure.png` for BASED). The markers were located
 * by colour in the decoded pixels and mapped to data coordinates through the figures' own gridlines (Zoology: y
 * gridlines 0, 0.25, ..., 1 and the four categorical widths; BASED: the y gridlines 0.2-1.0 and the x gridlines at
 * 2^12-2^22 bytes). Read error is about ±0.02 in accuracy and ±0.05 in log2 bytes. In Zoology's figure 22 of the 80
 * markers sit under another model's marker, where the colour search cannot isolate them: 19 were read by eye from the
 * same image (ZOOLOGY_FIG2_BY_EYE) and 3 are not readable (null). These are readings of plots, not the authors' data.
 *
 * Settings (not ours): Zoology trains 2-layer models on vocab 8,192, (seq, pairs) = (64, 4), (128, 8), (256, 16),
 * (512, 64), 64 epochs over 100k examples, best learning rate per point. BASED's frontier is validation accuracy over a
 * test mixture of (seq, pairs) from (64, 4) to (1024, 256), best learning rate per state size; state bytes count the
 * KV cache for sliding window, the d' x d state for BASED, the state of Mamba/H3, the filter for Hyena.
 */

/** Zoology Fig. 2: accuracy per model at d_model 64, 128, 256, 512, for each sequence length (null: hidden marker). */
export const ZOOLOGY_FIG2: Record<
  'attention' | 'baseconv' | 'hyena' | 'rwkv' | 'h3',
  Record<64 | 128 | 256 | 512, (number | null)[]>
> = {
  attention: {
    64: [1.0, 1.0, 1.0, 1.0],
    128: [1.0, 1.0, 1.0, 1.0],
    256: [1.0, 1.0, 1.0, 1.0],
    512: [1.0, 1.0, 1.0, 1.0],
  },
  baseconv: {
    64: [0.7, 0.94, 0.96, 1.0],
    128: [0.37, 0.61, 0.84, 0.96],
    256: [0.14, 0.33, 0.81, 0.93],
    512: [0.02, 0.03, 0.05, 0.71],
  },
  hyena: {
    64: [0.52, 0.75, 0.84, 0.87],
    128: [0.2, 0.63, 0.74, 0.84],
    256: [0.06, 0.13, 0.53, 0.69],
    512: [0.02, 0.04, 0.08, 0.17],
  },
  rwkv: {
    64: [0.77, null, 0.95, 0.98],
    128: [0.17, 0.49, 0.75, 0.91],
    256: [0.04, 0.06, 0.67, 0.79],
    512: [0.01, 0.01, 0.14, 0.36],
  },
  h3: {
    64: [0.92, 1.0, 0.98, 0.98],
    128: [0.25, 0.73, 0.91, 0.76],
    256: [0.06, 0.64, 0.6, 0.66],
    512: [null, null, 0.02, 0.09],
  },
};

/** Zoology Fig. 2 values read by eye, not by the colour search: `model/seq/width`. */
export const ZOOLOGY_FIG2_BY_EYE = [
  'attention/64/128',
  'attention/64/256',
  'attention/64/512',
  'rwkv/64/256',
  'rwkv/64/512',
  'h3/64/256',
  'h3/64/512',
  'hyena/128/64',
  'hyena/128/128',
  'hyena/128/256',
  'hyena/256/64',
  'hyena/512/64',
  'hyena/512/128',
  'h3/256/64',
  'h3/256/256',
  'h3/256/512',
  'baseconv/512/64',
  'baseconv/512/128',
  'baseconv/512/256',
];

/** The widths of ZOOLOGY_FIG2's columns. */
export const ZOOLOGY_FIG2_WIDTHS = [64, 128, 256, 512] as const;

/** BASED Fig. 2 (right): [log2 state bytes, accuracy] per marker, per model. */
export const BASED_FIG2: Record<'based' | 'sliding' | 'mamba' | 'h3' | 'hyena' | 'attention', [number, number][]> = {
  based: [
    [12.53, 0.54],
    [13.51, 0.71],
    [14.5, 0.82],
    [15.28, 0.89],
    [15.5, 0.85],
    [16.27, 0.97],
    [16.38, 0.96],
    [16.5, 0.87],
    [17.27, 0.99],
    [18.28, 0.99],
    [19.36, 1.0],
  ],
  sliding: [
    [13.0, 0.07],
    [14.0, 0.14],
    [15.0, 0.31],
    [16.0, 0.51],
    [17.0, 0.65],
    [18.0, 0.8],
    [19.0, 0.94],
    [20.0, 1.0],
  ],
  mamba: [
    [13.0, 0.57],
    [14.0, 0.58],
    [14.0, 0.61],
    [14.58, 0.58],
    [15.0, 0.65],
    [15.0, 0.7],
    [15.0, 0.77],
    [15.59, 0.82],
    [16.0, 0.75],
    [16.0, 0.8],
    [16.59, 0.82],
    [17.0, 0.83],
    [17.0, 0.89],
    [17.59, 0.86],
    [18.0, 0.86],
    [18.0, 0.91],
    [18.59, 0.88],
    [19.0, 0.86],
  ],
  h3: [
    [13.0, 0.19],
    [15.0, 0.26],
    [17.0, 0.31],
    [19.0, 0.36],
  ],
  hyena: [
    [19.0, 0.21],
    [20.0, 0.34],
    [21.0, 0.45],
    [22.0, 0.51],
  ],
  attention: [
    [19.0, 1.0],
    [21.0, 1.0],
  ],
};

/** Our model names and the paper models they stand beside (Zoology's BaseConv is ours; the others have no twin here). */
const SOURCE_FIG2 =
  'Zoology (Arora et al., ICLR 2024) Fig. 2, panel seq 64 (4 pairs), vocab 8,192; digitised from the figure in the official repo (±0.02)';

/** One row per (paper figure, model, x): the digitised values, for plotting beside ours. */
export function paperFigureRows(): {
  figure: string;
  model: string;
  seqLen: number | null;
  x: number;
  accuracy: number;
}[] {
  const rows: { figure: string; model: string; seqLen: number | null; x: number; accuracy: number }[] = [];
  for (const [model, panels] of Object.entries(ZOOLOGY_FIG2))
    for (const [seq, values] of Object.entries(panels))
      values.forEach((v, i) => {
        if (v !== null)
          rows.push({ figure: 'zoology-fig2', model, seqLen: Number(seq), x: ZOOLOGY_FIG2_WIDTHS[i], accuracy: v });
      });
  for (const [model, points] of Object.entries(BASED_FIG2))
    for (const [log2Bytes, accuracy] of points)
      rows.push({ figure: 'based-fig2', model, seqLen: null, x: 2 ** log2Bytes, accuracy });
  return rows;
}

/**
 * References for our width-sweep rows at a width the paper also trained (64, the paper's narrowest), beside Zoology's
 * seq-64 panel, the closest to our (seq 32, 4 pairs) task: BaseConv (the experiment passes its BaseConv rows; attention
 * has its own ≈1.0 references).
 */
export function zoologyReferences(
  ours: { model: string; dModel: number }[],
): { metric: string; paper: number; source: string; setting: string }[] {
  const out: { metric: string; paper: number; source: string; setting: string }[] = [];
  const setting =
    'ours: seq 32, 4 pairs, 32 keys + 32 values, a few hundred steps on fresh batches, best lr on validation, test on held-out rows; paper: seq 64, 4 pairs, vocab 8,192, 64 epochs over 100k examples';
  for (const r of ours) {
    const col = ZOOLOGY_FIG2_WIDTHS.indexOf(r.dModel as 64);
    if (col < 0) continue;
    const fig =
      r.model === 'attention' ? ZOOLOGY_FIG2.attention : r.model === 'baseconv' ? ZOOLOGY_FIG2.baseconv : null;
    const v = fig?.[64][col];
    if (v === null || v === undefined) continue;
    out.push({ metric: `${r.model}.d${r.dModel}.test_accuracy`, paper: v, source: SOURCE_FIG2, setting });
  }
  return out;
}

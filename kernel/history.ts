/** In-memory input history for `history_request` (tail, range and search), one session per kernel process. */
export const SESSION_NUMBER = 1;

interface Entry {
  line: number;
  input: string;
  output: string | null;
}

export interface HistoryRequest {
  output?: boolean;
  hist_access_type?: 'range' | 'tail' | 'search';
  session?: number;
  start?: number;
  stop?: number;
  n?: number;
  pattern?: string;
  unique?: boolean;
}

export type HistoryRow = [number, number, string | [string, string | null]];

export class History {
  private readonly entries: Entry[] = [];

  add(line: number, input: string): void {
    this.entries.push({ line, input, output: null });
  }

  setOutput(line: number, output: string): void {
    const e = this.entries.find((x) => x.line === line);
    if (e) e.output = output;
  }

  query(req: HistoryRequest): HistoryRow[] {
    let rows: Entry[];
    switch (req.hist_access_type) {
      case 'tail':
        rows = this.entries.slice(-(req.n ?? 10));
        break;
      case 'range': {
        // Session 0 (or a negative offset) means "this session", as in IPython.
        const session = req.session ?? 0;
        if (session > 0 && session !== SESSION_NUMBER) return [];
        const start = req.start ?? 1;
        const stop = req.stop ?? Number.POSITIVE_INFINITY;
        rows = this.entries.filter((e) => e.line >= start && e.line < stop);
        break;
      }
      case 'search': {
        const re = globToRegExp(req.pattern ?? '*');
        rows = this.entries.filter((e) => re.test(e.input));
        if (req.unique) {
          const seen = new Set<string>();
          rows = rows
            .reverse()
            .filter((e) => !seen.has(e.input) && seen.add(e.input))
            .reverse();
        }
        if (req.n) rows = rows.slice(-req.n);
        break;
      }
      default:
        return [];
    }
    return rows.map((e) => [SESSION_NUMBER, e.line, req.output ? [e.input, e.output] : e.input]);
  }
}

/** IPython's search patterns are globs (`*`, `?`) matched against the whole input. */
function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '[\\s\\S]*')
    .replace(/\?/g, '[\\s\\S]');
  return new RegExp(`^${body}$`);
}

/**
 * The language side of the kernel: tslab's TypeScript compiler and executor, driven so that the kernel gets the last
 * value and the error as objects instead of text that tslab would print.
 *
 * tslab's executor reports through a console-like object it is given: `log(value)` for the cell's last expression,
 * `error('%s%d:%d - %s', file, line, col, text)` per type error, and `error(e)` for a thrown error. We hand it our own.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';
import { PACKAGE_ROOT } from './paths.js';

export { PACKAGE_ROOT };

const requireHere = createRequire(import.meta.url);
const TSLAB_DIR = dirname(requireHere.resolve('tslab/package.json'));
/** Loads tslab's internals and their dependencies from tslab's own folder. */
export const requireTslab = createRequire(join(TSLAB_DIR, 'package.json'));

/** The subset of TypeScript's API this module touches (tslab ships its own fork of TypeScript 5.0). */
interface TsNode {
  kind: number;
  name?: TsNode;
  expression?: TsNode;
  end: number;
  getStart(file?: unknown): number;
  getText(file?: unknown): string;
  getChildren(file?: unknown): TsNode[];
}
interface TsModule {
  version: string;
  forEachChild(node: unknown, visit: (child: TsNode) => void): void;
  SyntaxKind: { ShorthandPropertyAssignment: number; EndOfFileToken: number; AwaitExpression: number };
  createWatchCompilerHost: (...args: unknown[]) => unknown;
  createSourceFile(
    name: string,
    text: string,
    target: number,
    setParents?: boolean,
    kind?: number,
  ): {
    parseDiagnostics?: { start: number; length: number; messageText: unknown }[];
  };
  ScriptTarget: { Latest: number };
  ScriptKind: { TS: number };
}

interface QuickInfo {
  displayParts?: { text: string }[];
  documentation?: { text: string }[];
}

interface TslabConverter {
  convert(prevDecl: string, src: string): { output?: string };
  close(): void;
}
interface TslabExecutor {
  execute(src: string): Promise<boolean>;
  inspect(src: string, position: number): QuickInfo | undefined;
  complete(src: string, position: number): { start: number; end: number; candidates: string[] };
  interrupt(): void;
  close(): void;
}

const SELF = readPackageName();
/**
 * Module names served from this package's ES module build: the package itself and its display module (light:
 * no tfjs), keyed by name, valued by the path under `dist/lib` without extension.
 */
const SELF_MODULES = new Map([
  [SELF, 'index'],
  [`${SELF}/display`, 'display/index'],
]);
const SELF_IMPORT = new RegExp(
  `(?:from|import|require)\\s*\\(?\\s*['"](${[...SELF_MODULES.keys()].map((k) => k.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')).join('|')})['"]`,
  'g',
);

function readPackageName(): string {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { name: string };
  return pkg.name;
}

/**
 * tslab compiles with Node10 module resolution, which ignores package self-references, so `import * as al from
 * 'attnlab'` would not type-check inside this repository. Map the names to our own declarations with `paths`.
 *
 * The compiler options are built inside tslab's converter, and TypeScript's exports are read-only getters, so the
 * converter is handed a copy of the TypeScript module (through the require cache) whose `createWatchCompilerHost`
 * adds the mapping. This must run before tslab's converter is first loaded.
 */
function patchCompilerOptions(real: TsModule): TsModule {
  const descriptors = Object.getOwnPropertyDescriptors(real);
  for (const d of Object.values(descriptors)) d.configurable = true;
  const patched = Object.defineProperties({}, descriptors) as TsModule;
  Object.defineProperty(patched, 'createWatchCompilerHost', {
    enumerable: true,
    value: function (this: unknown, ...args: unknown[]) {
      const options = args[1] as Record<string, unknown> | undefined;
      if (options && typeof options === 'object') {
        const paths: Record<string, string[]> = { ...(options.paths as object) };
        for (const [name, file] of SELF_MODULES) paths[name] = [join(PACKAGE_ROOT, 'dist', 'lib', `${file}.d.ts`)];
        options.paths = paths;
      }
      return real.createWatchCompilerHost.apply(this, args);
    },
  });
  const cached = requireTslab.cache[requireTslab.resolve('@tslab/typescript-for-tslab')];
  if (!cached) throw new Error('tslab TypeScript module is not in the require cache');
  cached.exports = patched;
  return patched;
}

export const ts: TsModule = patchCompilerOptions(requireTslab('@tslab/typescript-for-tslab'));
const tslabConverter: { createConverter(o: { isJS: boolean; isBrowser: boolean }): TslabConverter } =
  requireTslab('./dist/converter.js');
const tslabExecutor: {
  createExecutor(
    root: string,
    convs: unknown,
    console: { log(...a: unknown[]): void; error(...a: unknown[]): void },
  ): TslabExecutor;
} = requireTslab('./dist/executor.js');
const tslabInspect: { printQuickInfo(info: QuickInfo): string } = requireTslab('./dist/inspect.js');
/** tslab's own `display` API (`import { display } from 'tslab'`) writes through this module's global. */
export const tslabJupyter: { lastWriteDisplayData: unknown } = requireTslab('./dist/jupyter.js');

export type RunOutcome =
  | { status: 'ok'; hasValue: boolean; value?: unknown }
  | { status: 'error'; ename: string; evalue: string; traceback: string[] };

class Converters {
  private nodeConv?: TslabConverter;
  private browserConv?: TslabConverter;
  /** The JavaScript the executor ran last (line L of it is line L of `evalmachine.<anonymous>` in a stack). */
  lastOutput = '';
  get node(): TslabConverter {
    if (!this.nodeConv) {
      const conv = tslabConverter.createConverter({ isJS: false, isBrowser: false });
      const convert = conv.convert.bind(conv);
      conv.convert = (prevDecl, src) => {
        const converted = convert(prevDecl, src);
        this.lastOutput = converted.output ?? '';
        return converted;
      };
      this.nodeConv = conv;
    }
    return this.nodeConv;
  }
  get browser(): TslabConverter {
    return (this.browserConv ??= tslabConverter.createConverter({ isJS: false, isBrowser: true }));
  }
  close(): void {
    this.nodeConv?.close();
    this.browserConv?.close();
  }
}

/** Frames from Node and the kernel's own machinery, dropped from tracebacks. */
const INTERNAL_FRAME = /\(node:|at node:|sigintHandlersWrap|[\\/]tslab[\\/]dist[\\/]|[\\/]kernel[\\/]\w+\.[jt]s/;

/** Where a stack frame of a cell points to in the cell's source: its name (`Cell In[5]`), the code and what ran. */
export interface CellSource {
  name: string;
  code: string;
  output: string;
}

const CELL_FRAME = /^\s*at (?:.*\()?evalmachine\.<anonymous>:(\d+):(\d+)\)?$/;
const LINE_MARK = /\/\*@L(\d+)\*\//g;

/**
 * `at evalmachine.<anonymous>:9:7` -> `Cell In[5], line 4` and the line's text, as IPython writes it. The executor
 * runs TypeScript's output, whose lines are not the cell's; the markers `markLines` put at the ends of the cell's
 * lines survive compilation and say which cell line an output line came from (the first marker at or after the
 * column). A frame without a marker on its line stays as Node wrote it. Frames in functions of earlier cells are
 * mapped against the last cell's output (Node names every cell `evalmachine.<anonymous>`).
 */
function cellFrame(frame: string, cell: CellSource): string[] {
  const m = CELL_FRAME.exec(frame);
  if (!m) return [frame];
  const outputLines = cell.output.split('\n');
  if (Number(m[1]) > outputLines.length) return []; // the executor's wrapper around the cell
  const text = outputLines[Number(m[1]) - 1] ?? '';
  const column = Number(m[2]) - 1;
  const marks = [...text.matchAll(LINE_MARK)];
  const mark = marks.find((k) => (k.index ?? 0) >= column) ?? marks.at(-1);
  const codeLines = cell.code.split('\n');
  // tslab rewrites the cell's last expression (dropping its mark) into `exports.tsLastExpr = ...`.
  const lastExpression = /^exports\.tsLastExpr\d* = /.test(text)
    ? codeLines.length - [...codeLines].reverse().findIndex((l) => l.trim())
    : 0;
  const line = mark ? Number(mark[1]) : lastExpression;
  if (!line) return [frame];
  return [`${cell.name}, line ${line}`, `    ${codeLines[line - 1]?.trim() ?? ''}`];
}

/**
 * Where an interrupt can stop awaiting code. A loop like `while (true) { await null }` runs on microtasks only, so
 * neither the VM's SIGINT watchdog (synchronous code) nor the kernel's SIGINT handler (which needs the event loop) ever
 * gets to run. Every `await X` in a cell becomes `await Promise.resolve(X).finally(HOOK)`: the same type and value as
 * `await X`, except that at most every `YIELD_MS` the hook first lets the event loop run (so the SIGINT handler can),
 * and once the cell that started this chain of awaits is interrupted it throws a `KeyboardInterrupt` there. Which cell
 * started a chain is an `AsyncLocalStorage` value set around the cell's execution, so a function of an earlier cell
 * awaiting in a loop started by this cell stops too, and background work of cells that finished is left alone.
 * (The operand must not start with `(`: tslab parses a cell as a script, where `await (x)` calls a function `await`.)
 */
const AWAIT_HOOK_NAME = '__attnlabAwait';
const AWAIT_OPEN = 'Promise.resolve(';
const AWAIT_CLOSE = `).finally((globalThis as any).${AWAIT_HOOK_NAME})`;
const YIELD_MS = 20;

/** What a cell's awaits report to: the running cell's number, and the cells that were interrupted. */
export class CellScope {
  private readonly storage = new AsyncLocalStorage<number>();
  private readonly interrupted = new Set<number>();
  private lastYield = 0;
  private running: number | undefined;

  constructor() {
    const hook = (): Promise<void> | undefined => {
      this.check();
      const now = performance.now();
      if (now - this.lastYield < YIELD_MS) return undefined;
      this.lastYield = now;
      return new Promise<void>((r) => setImmediate(r)).then(() => {
        this.lastYield = performance.now();
        this.check();
      });
    };
    Object.defineProperty(globalThis, AWAIT_HOOK_NAME, { value: hook, configurable: true });
  }

  /** Runs cell `n` (its synchronous part and every async continuation it starts) in its scope. */
  run<T>(n: number, fn: () => Promise<T>): Promise<T> {
    this.running = n;
    return this.storage.run(n, fn).finally(() => {
      if (this.running === n) this.running = undefined;
    });
  }

  /** Stops the running cell's awaits (at the next one each chain reaches); false when no cell is running. */
  interrupt(): boolean {
    if (this.running === undefined) return false;
    this.interrupted.add(this.running);
    return true;
  }

  private check(): void {
    const n = this.storage.getStore();
    if (n !== undefined && this.interrupted.has(n)) throw new KeyboardInterrupt();
  }
}

export class KeyboardInterrupt extends Error {
  override name = 'KeyboardInterrupt';
  constructor() {
    super('Interrupted: the cell was stopped at an await');
  }
}

/** Where text was inserted into a cell: line (1-based), column (0-based) in the new text, and how many characters. */
export interface Insert {
  line: number;
  column: number;
  length: number;
}

/** `await X` -> `await Promise.resolve(X).finally(hook)` (see CellScope), with the inserts so diagnostics can be mapped back. */
export function instrumentAwaits(code: string): { code: string; inserts: Insert[] } {
  const file = ts.createSourceFile('cell.ts', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const edits: { at: number; text: string }[] = [];
  const visit = (node: TsNode): void => {
    if (node.kind === ts.SyntaxKind.AwaitExpression && node.expression) {
      edits.push({ at: node.expression.getStart(file), text: AWAIT_OPEN });
      edits.push({ at: node.expression.end, text: AWAIT_CLOSE });
    }
    ts.forEachChild(node, visit);
  };
  ts.forEachChild(file, visit);
  // Apply from the start, recording each insert's place in the output.
  edits.sort((a, b) => a.at - b.at || (a.text === AWAIT_CLOSE ? -1 : 1));
  let out = '';
  let from = 0;
  const inserts: Insert[] = [];
  for (const e of edits) {
    out += code.slice(from, e.at);
    const lineStart = out.lastIndexOf('\n') + 1;
    inserts.push({ line: out.split('\n').length, column: out.length - lineStart, length: e.text.length });
    out += e.text;
    from = e.at;
  }
  return { code: out + code.slice(from), inserts };
}

/** A diagnostic `L:C - text` of instrumented code, with C moved back past the inserts before it on line L. */
export function unshiftDiagnostic(diagnostic: string, inserts: readonly Insert[]): string {
  return diagnostic.replace(/^(.*?)(\d+):(\d+)( - )/, (_, file: string, l: string, c: string, sep: string) => {
    const line = Number(l);
    const column = Number(c) - 1;
    const shift = inserts
      .filter((i) => i.line === line && i.column < column)
      .reduce((sum, i) => sum + Math.min(i.length, column - i.column), 0);
    return `${file}${line}:${column - shift + 1}${sep}`;
  });
}

/**
 * Append `/*@L<n>*\/` after the last token of each line `n` of `code` (a token's end is never inside a string, a
 * template's text or a comment, so the marks change nothing but comments; lines ending inside a block comment or a
 * template's text get none). Positions of everything before a mark are unchanged, so diagnostics keep their columns.
 */
export function markLines(code: string): string {
  const file = ts.createSourceFile(
    'cell.ts',
    code,
    ts.ScriptTarget.Latest,
    true,
    ts.ScriptKind.TS,
  ) as unknown as TsNode;
  const ends = new Set<number>();
  const visit = (node: TsNode): void => {
    const children = node.getChildren(file);
    if (children.length === 0) {
      const lineEnd = code.indexOf('\n', node.end);
      const rest = code.slice(node.end, lineEnd < 0 ? code.length : lineEnd);
      const isToken = node.kind !== ts.SyntaxKind.EndOfFileToken && node.end > 0;
      if (isToken && /^[ \t\r]*(\/\/.*)?$/.test(rest)) ends.add(node.end);
    } else for (const child of children) visit(child);
  };
  visit(file);
  let out = '';
  let from = 0;
  for (const at of [...ends].sort((a, b) => a - b)) {
    const line = code.slice(0, at).split('\n').length;
    out += `${code.slice(from, at)}/*@L${line}*/`;
    from = at;
  }
  return out + code.slice(from);
}

export function errorOutcome(e: unknown, cell?: CellSource): Extract<RunOutcome, { status: 'error' }> {
  if (e instanceof Error) {
    const lines = (e.stack ?? `${e.name}: ${e.message}`).split('\n');
    // Node puts the offending source line with a caret above "Name: message" for errors from vm scripts.
    const head = lines.findIndex((l) => l.startsWith(`${e.name}:`) || l === e.name);
    const frames = lines.slice(Math.max(0, head)).filter((l, i) => i === 0 || !INTERNAL_FRAME.test(l));
    const traceback = cell ? frames.flatMap((l, i) => (i === 0 ? [l] : cellFrame(l, cell))) : frames;
    return { status: 'error', ename: e.name || 'Error', evalue: e.message, traceback };
  }
  const text = typeof e === 'string' ? e : format('%o', e);
  return { status: 'error', ename: 'Error', evalue: text, traceback: [`Uncaught ${text}`] };
}

export class Engine {
  private readonly executor: TslabExecutor;
  private readonly converters = new Converters();
  private lastValue: { value: unknown } | undefined;
  private diagnostics: string[] = [];
  private thrown: { error: unknown } | undefined;
  private readonly selfModules = new Map<string, unknown>();
  private readonly scope = new CellScope();
  private cells = 0;

  constructor(rootDir = process.cwd()) {
    this.converters.node; // compile the standard library declarations now, not in the first cell
    this.executor = tslabExecutor.createExecutor(rootDir, this.converters, {
      log: (value: unknown) => {
        this.lastValue = { value };
      },
      error: (...args: unknown[]) => {
        if (typeof args[0] === 'string' && args[0].includes('%d:%d')) this.diagnostics.push(format(...args));
        else this.thrown = { error: args[0] };
      },
    });
    this.hookRequire();
  }

  /** Serve `require('attnlab')` (and `attnlab/display`) from the ES module build, imported ahead of the cell (see `run`). */
  private hookRequire(): void {
    const g = globalThis as { __tslab__?: { require: NodeJS.Require } };
    const box = g.__tslab__;
    if (!box) throw new Error('tslab executor did not install its require hook');
    const inner = box.require;
    box.require = new Proxy(inner, {
      apply: (target, thisArg, args: unknown[]) => {
        const mod = typeof args[0] === 'string' ? this.selfModules.get(args[0]) : undefined;
        if (mod) return mod;
        return Reflect.apply(target, thisArg, args);
      },
    });
  }

  /**
   * tslab turns imports into CommonJS `require`. Our package is an ES module (it may use top-level await), so a cell
   * that imports it gets the module loaded with `import()` first, and the same instance the kernel's display code uses.
   */
  private async preloadSelf(code: string): Promise<void> {
    for (const match of code.matchAll(SELF_IMPORT)) {
      const name = match[1]!;
      if (this.selfModules.has(name)) continue;
      const entry = join(PACKAGE_ROOT, 'dist', 'lib', `${SELF_MODULES.get(name)}.js`);
      if (!existsSync(entry)) continue; // let the normal resolution report what is missing
      this.selfModules.set(name, await import(pathToFileURL(entry).href));
    }
  }

  /** Run a cell; `name` (`Cell In[5]`) is what tracebacks call it. */
  async run(code: string, name = 'Cell'): Promise<RunOutcome> {
    this.lastValue = undefined;
    this.diagnostics = [];
    this.thrown = undefined;
    try {
      await this.preloadSelf(code);
    } catch (e) {
      return errorOutcome(e);
    }
    this.converters.lastOutput = '';
    const instrumented = instrumentAwaits(expandShorthandProperties(code));
    const ok = await this.scope.run(++this.cells, () => this.executor.execute(markLines(instrumented.code)));
    if (this.diagnostics.length > 0) {
      const traceback = this.diagnostics.map((d) => unshiftDiagnostic(d, instrumented.inserts));
      const first = traceback[0]!.replace(/^.*?\d+:\d+ - /, '');
      return { status: 'error', ename: 'TypeScriptError', evalue: first, traceback };
    }
    // Assigned by the executor's callbacks, which the compiler's flow analysis cannot see.
    const thrown = this.thrown as { error: unknown } | undefined;
    const last = this.lastValue as { value: unknown } | undefined;
    if (thrown) return errorOutcome(thrown.error, { name, code, output: this.converters.lastOutput });
    if (!ok) return { status: 'error', ename: 'Error', evalue: 'execution failed', traceback: [] };
    return last ? { status: 'ok', hasValue: true, value: last.value } : { status: 'ok', hasValue: false };
  }

  complete(code: string, cursor: number): { start: number; end: number; matches: string[] } {
    const info = this.executor.complete(code, cursor);
    return { start: info.start, end: info.end, matches: info.candidates };
  }

  inspect(code: string, cursor: number): string | undefined {
    const info = this.executor.inspect(code, cursor);
    return info ? tslabInspect.printQuickInfo(info) : undefined;
  }

  interrupt(): void {
    this.scope.interrupt();
    this.executor.interrupt();
  }

  close(): void {
    this.executor.close();
  }
}

/**
 * `{ x }` -> `{ x: x }`. tslab rewrites references to variables of earlier cells into `exports.x`, but not inside a
 * shorthand property, which then fails with "x is not defined" at run time. Writing the property out avoids that;
 * the two forms mean the same (also as destructuring targets, with or without a default).
 */
export function expandShorthandProperties(code: string): string {
  const file = ts.createSourceFile('cell.ts', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const inserts: { at: number; text: string }[] = [];
  const visit = (node: TsNode): void => {
    if (node.kind === ts.SyntaxKind.ShorthandPropertyAssignment && node.name) {
      inserts.push({ at: node.name.end, text: `: ${node.name.getText(file)}` });
    }
    ts.forEachChild(node, visit);
  };
  ts.forEachChild(file, visit);
  let out = code;
  for (const { at, text } of inserts.sort((a, b) => b.at - a.at)) out = out.slice(0, at) + text + out.slice(at);
  return out;
}

export type Completeness = { status: 'complete' } | { status: 'incomplete'; indent: string } | { status: 'invalid' };

/**
 * Whether `code` can run as is, needs more lines (an error at the very end: "'}' expected", an open template or
 * comment), or can never parse (an error before the end).
 */
export function isComplete(code: string): Completeness {
  const file = ts.createSourceFile('cell.ts', code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const diags = file.parseDiagnostics ?? [];
  if (diags.length === 0) return { status: 'complete' };
  const end = code.length;
  const atEnd = diags.some((d) => {
    const text = typeof d.messageText === 'string' ? d.messageText : '';
    return (
      (d.start >= end && text.endsWith('expected.')) ||
      /^Unterminated (template|comment)/.test(text) ||
      text === "'*/' expected."
    );
  });
  if (!atEnd) return { status: 'invalid' };
  if (/\n\s*\n\s*$/.test(code)) return { status: 'invalid' }; // two blank lines: the user is done typing
  const lastLine = code.slice(code.lastIndexOf('\n') + 1);
  const indent = lastLine.match(/^\s*/)![0];
  return { status: 'incomplete', indent: /[{([]\s*$/.test(lastLine) ? `${indent}  ` : indent };
}

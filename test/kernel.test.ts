/**
 * Jupyter's kernel conformance suite (Debian's python3-jupyter-kernel-test) against the attnlab kernel, with the
 * TypeScript samples and extra checks in kernel/conformance/test_conformance.py.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isComplete } from '../kernel/engine.js';
import { History } from '../kernel/history.js';
import { ensureBuilt, jupyterPython, privateKernelEnv, ROOT } from './kernel-support.js';

describe('attnlab kernel', () => {
  it('passes the Jupyter kernel conformance suite', async () => {
    const env = { ...(await privateKernelEnv()), ATTNLAB_KERNEL: 'attnlab' };
    const r = spawnSync(jupyterPython(), ['-m', 'unittest', 'discover', '-v', '-s', 'kernel/conformance'], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      timeout: 280_000,
    });
    const log = `${r.stdout}\n${r.stderr}`;
    expect(r.status, log).toBe(0);
    expect(log).toMatch(/^OK/m);
    expect(log).not.toMatch(/\.\.\. (FAIL|ERROR)/);
  }, 300_000);

  it('tells complete, incomplete and invalid code apart', () => {
    expect(isComplete('const x = 1;').status).toBe('complete');
    expect(isComplete('for (const x of xs) {')).toEqual({ status: 'incomplete', indent: '  ' });
    expect(isComplete('const s = `open').status).toBe('incomplete');
    expect(isComplete('/* open comment').status).toBe('incomplete');
    expect(isComplete('let x = );').status).toBe('invalid');
  });

  it('answers history queries by tail, range and glob search', () => {
    const h = new History();
    ['a = 1', 'b = 2', 'a + b', 'a = 1'].forEach((code, i) => h.add(i + 1, code));
    h.setOutput(3, '3');
    expect(h.query({ hist_access_type: 'tail', n: 2 }).map((r) => r[1])).toEqual([3, 4]);
    expect(h.query({ hist_access_type: 'range', session: 0, start: 2, stop: 4 }).map((r) => r[2])).toEqual([
      'b = 2',
      'a + b',
    ]);
    expect(h.query({ hist_access_type: 'tail', n: 1, output: true })[0]![2]).toEqual(['a = 1', null]);
    expect(h.query({ hist_access_type: 'search', pattern: 'a =*' })).toHaveLength(2);
    expect(h.query({ hist_access_type: 'search', pattern: 'a =*', unique: true })).toHaveLength(1);
  });
});

/**
 * Notebooks are compiled by tslab's TypeScript (a 5.0 fork, the version kernel_info reports), the library by the
 * project's (5.9). The library's declarations must mean the same to the older compiler: every public module, read by
 * the kernel's compiler with the kernel's module mapping, gives no error.
 */
describe("the library's declarations under the kernel's TypeScript", () => {
  it('type-check without errors', async () => {
    ensureBuilt();
    const { requireTslab } = await import('../kernel/engine.js');
    const kts = requireTslab('@tslab/typescript-for-tslab') as typeof import('typescript');
    expect(kts.version).toMatch(/^5\.0\./);
    const dir = mkdtempSync(join(tmpdir(), 'attnlab-kernel-ts-'));
    const consumer = join(dir, 'cell.ts');
    writeFileSync(
      consumer,
      [
        "import * as al from 'attnlab';",
        "import * as display from 'attnlab/display';",
        'export const names: string[] = Object.keys(al).concat(Object.keys(display));',
        'export const q = al.tf.zeros([1, 1, 4, 8]) as al.tf.Tensor4D;',
        'export const out = al.attention.sdpa(q, q, q, { mask: al.masks.causal() });',
        'export const experiments = al.experiments.listExperiments().map((e) => e.name);',
      ].join('\n'),
    );
    const options: import('typescript').CompilerOptions = {
      target: kts.ScriptTarget.ES2019,
      module: kts.ModuleKind.CommonJS,
      moduleResolution: kts.ModuleResolutionKind.NodeJs,
      strict: true,
      noEmit: true,
      esModuleInterop: true,
      baseUrl: ROOT,
      paths: {
        attnlab: [join(ROOT, 'dist', 'lib', 'index.d.ts')],
        'attnlab/display': [join(ROOT, 'dist', 'lib', 'display', 'index.d.ts')],
      },
      typeRoots: [join(ROOT, 'node_modules', '@types')],
      types: ['node'],
    };
    const program = kts.createProgram([consumer], options);
    const errors = kts
      .getPreEmitDiagnostics(program)
      .filter((d) => !d.file || d.file.fileName === consumer || d.file.fileName.includes(`${join(ROOT, 'dist')}`))
      .map((d) => {
        const where = d.file ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '';
        return `${where} ${kts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
    expect(errors).toEqual([]);
  }, 120_000);
});

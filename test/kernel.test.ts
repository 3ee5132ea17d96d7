/**
 * Jupyter's kernel conformance suite (Debian's python3-jupyter-kernel-test) against the attnlab kernel, with the
 * TypeScript samples and extra checks in kernel/conformance/test_conformance.py.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isComplete } from '../kernel/engine.js';
import { History } from '../kernel/history.js';
import { jupyterPython, privateKernelEnv, ROOT } from './kernel-support.js';

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

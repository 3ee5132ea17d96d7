#!/usr/bin/env node
/**
 * Runs Jupyter's kernel conformance suite (kernel/conformance/test_conformance.py) against the attnlab kernel and
 * against plain tslab, with the same TypeScript samples, and prints each suite test's outcome side by side.
 *
 *   node scripts/kernel-conformance.mjs        (needs `npm run build` and python3-jupyter-kernel-test)
 *
 * Both kernelspecs are written to a temporary Jupyter path; nothing is installed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const prefix = mkdtempSync(join(tmpdir(), 'attnlab-conformance-'));
const kernels = join(prefix, 'share', 'jupyter', 'kernels');

const { installKernelSpec } = await import(join(root, 'dist', 'kernel', 'install.js'));
installKernelSpec({ prefix, root });
mkdirSync(join(kernels, 'tslab'), { recursive: true });
writeFileSync(
  join(kernels, 'tslab', 'kernel.json'),
  JSON.stringify({
    argv: [
      process.execPath,
      join(root, 'node_modules', 'tslab', 'bin', 'tslab'),
      'kernel',
      '--config-path',
      '{connection_file}',
    ],
    display_name: 'tslab',
    language: 'typescript',
  }),
);

/** test name -> 'ok' | 'FAIL' | 'ERROR' | 'skipped', from unittest's verbose output (subtests fold into their test). */
function run(kernel) {
  const r = spawnSync(python, ['-m', 'unittest', 'discover', '-v', '-s', join(root, 'kernel', 'conformance')], {
    cwd: root,
    env: { ...process.env, JUPYTER_PATH: join(prefix, 'share', 'jupyter'), ATTNLAB_KERNEL: kernel },
    encoding: 'utf8',
    timeout: 600_000,
  });
  const outcomes = new Map();
  const rank = { ok: 0, skipped: 1, FAIL: 2, ERROR: 3 };
  for (const line of `${r.stdout}\n${r.stderr}`.split('\n')) {
    const m = /^\s*(test_\w+) \(.*\.\.\. (ok|FAIL|ERROR|skipped)/.exec(line);
    if (!m) continue;
    const prev = outcomes.get(m[1]);
    if (!prev || rank[m[2]] > rank[prev]) outcomes.set(m[1], m[2]);
  }
  return outcomes;
}

const ours = run('attnlab');
const theirs = run('tslab');
const names = [...new Set([...theirs.keys(), ...ours.keys()])].sort();
const suite = names.filter((n) => theirs.has(n));
console.log(`${'test'.padEnd(46)} ${'attnlab'.padEnd(8)} tslab`);
for (const n of names)
  console.log(`${n.padEnd(46)} ${(ours.get(n) ?? '-').padEnd(8)} ${theirs.get(n) ?? '(attnlab only)'}`);
const passed = (m) => suite.filter((n) => m.get(n) === 'ok').length;
const applicable = (m) => suite.filter((n) => m.get(n) !== 'skipped').length;
console.log(
  `\nsuite tests passed: attnlab ${passed(ours)}/${applicable(ours)}, tslab ${passed(theirs)}/${applicable(theirs)}`,
);
rmSync(prefix, { recursive: true, force: true });

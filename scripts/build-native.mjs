#!/usr/bin/env node
/**
 * Build the native kernel addon (lib/backend/native) when it is missing or older than its sources.
 *
 * Never fails set-up: when the addon cannot be built (no compiler, no OpenBLAS, no node headers) it prints one line
 * saying why and exits 0; the library then runs on the pure wasm backend. `--force` rebuilds; `--quiet` prints only
 * failures; `--install-deps` installs Debian's libopenblas-dev with apt-get when it is missing and we are root (CI).
 * Exit code 1 only with `--strict` (CI uses it to insist on the native path).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'lib', 'backend', 'native');
const out = join(dir, 'build', 'Release', 'attnlab_native.node');
const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');
const strict = args.has('--strict');

function done(ok, msg) {
  if (!ok || !quiet) console.log(`build-native: ${msg}`);
  process.exit(ok || !strict ? 0 : 1);
}

function newestSource() {
  const files = [join(dir, 'binding.gyp'), ...readdirSync(join(dir, 'src')).map((f) => join(dir, 'src', f))];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

if (process.env.ATTNLAB_NATIVE === '0') done(true, 'skipped (ATTNLAB_NATIVE=0)');
if (!args.has('--force') && existsSync(out) && statSync(out).mtimeMs >= newestSource())
  done(true, 'native addon is up to date');

const libDirs = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/usr/local/lib',
  '/opt/homebrew/opt/openblas/lib',
];
const haveBlas = () =>
  libDirs.some((d) => existsSync(join(d, 'libopenblas.so')) || existsSync(join(d, 'libopenblas.dylib')));
if (!haveBlas() && args.has('--install-deps') && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
  console.log('build-native: installing libopenblas-dev with apt-get...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    spawnSync(
      'apt-get',
      ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'libopenblas-dev'],
      { stdio: 'inherit', env },
    );
  if (install().status !== 0) {
    spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { stdio: 'inherit', env });
    install();
  }
}
if (!haveBlas()) {
  done(
    false,
    'not built: OpenBLAS not found (install it: apt-get install -y libopenblas-dev); using the pure wasm backend',
  );
}
const cxx = spawnSync(process.env.CXX ?? 'g++', ['--version'], { stdio: 'ignore' });
if (cxx.status !== 0) done(false, 'not built: no C++ compiler (install g++ and make); using the pure wasm backend');

// node-gyp ships inside npm; use the local node headers when present so nothing is downloaded.
const npmRoot = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' }).stdout?.trim();
const gyp = [
  npmRoot && join(npmRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].find((p) => p && existsSync(p));
if (!gyp) done(false, 'not built: node-gyp not found (it ships with npm); using the pure wasm backend');
const headers = [dirname(dirname(process.execPath)), '/usr'].find((p) =>
  existsSync(join(p, 'include', 'node', 'node_api.h')),
);
const gypArgs = [gyp, 'rebuild', '-j', '2', ...(headers ? [`--nodedir=${headers}`] : [])];
const t0 = Date.now();
const r = spawnSync(process.execPath, gypArgs, { cwd: dir, encoding: 'utf8' });
if (r.status !== 0) {
  const lines = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .filter((l) => /error/i.test(l))
    .slice(0, 5);
  done(false, `not built: node-gyp failed (${lines.join(' | ') || `exit ${r.status}`}); using the pure wasm backend`);
}
done(true, `built ${out.slice(root.length + 1)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

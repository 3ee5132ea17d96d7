#!/usr/bin/env node
/**
 * Set-up for `npm start` and `npm test`: installs whatever is missing, quickly does nothing when all is there.
 *
 *   node scripts/setup.mjs            set up only
 *   node scripts/setup.mjs --test     set up what the test suite needs (npm test's pretest)
 *   node scripts/setup.mjs --start    set up, then open Jupyter on notebooks/ at 127.0.0.1 (npm start)
 *   node scripts/setup.mjs --build    only compile TypeScript and the native addon (npm install's prepare)
 *
 * Steps: Debian packages (as root; otherwise a message naming the command to run), npm dependencies, the TypeScript
 * build, the native kernel addon, the Jupyter kernelspec. Uses Node built-ins only: it runs before node_modules exists.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv.includes('--start')
  ? 'start'
  : process.argv.includes('--test')
    ? 'test'
    : process.argv.includes('--build')
      ? 'build'
      : 'setup';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const log = (msg) => console.log(`[attnlab setup] ${msg}`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    console.error(`[attnlab setup] failed: ${cmd} ${args.join(' ')} (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

const ok = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
// Debian's Jupyter lives in the system python; a pyenv or venv python3 earlier on PATH would not see it.
const py = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) {
    console.error(`[attnlab setup] Node ${process.versions.node} is too old: attnlab needs Node 20 or newer.`);
    process.exit(1);
  }
}

/** Debian packages by purpose, each with a check that tells whether it is present. */
function aptNeeds() {
  const needs = [];
  const jupyter = ok(py, ['-c', 'import notebook, nbclient, nbconvert, jupyter_client']);
  if (mode === 'start' || mode === 'test') {
    if (!jupyter) needs.push('jupyter-notebook', 'jupyter-nbconvert', 'python3-nbclient', 'jupyter-client');
  }
  if (mode === 'test') {
    if (!ok(py, ['-c', 'import jupyter_kernel_test'])) needs.push('python3-jupyter-kernel-test');
    if (!existsSync('/usr/bin/chromium')) needs.push('chromium');
    // attnlab hub's load test (test/hub.test.ts) and the deploy files' syntax check.
    if (!existsSync('/usr/bin/jupyterhub')) needs.push('jupyterhub', 'configurable-http-proxy');
    if (!ok(py, ['-c', 'import yaml'])) needs.push('python3-yaml');
  }
  const blas = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'].some((d) =>
    existsSync(join(d, 'libopenblas.so')),
  );
  if (!blas && mode !== 'build') needs.push('libopenblas-dev');
  if (!ok('g++', ['--version']) && mode !== 'build') needs.push('g++', 'make');
  return needs;
}

function installApt(pkgs) {
  if (pkgs.length === 0) return;
  const cmd = `apt-get update && apt-get install -y ${pkgs.join(' ')}`;
  if (!isRoot || !existsSync('/usr/bin/apt-get')) {
    const why = isRoot ? 'apt-get is not available' : 'not running as root';
    console.error(
      `[attnlab setup] missing system packages: ${pkgs.join(' ')}\n  ${why}; install them with:\n    sudo ${cmd}`,
    );
    if (mode === 'start' || mode === 'test') {
      const required = pkgs.filter((p) => p !== 'libopenblas-dev' && p !== 'chromium');
      if (required.length) process.exit(1);
    }
    return;
  }
  log(`installing Debian packages: ${pkgs.join(' ')}`);
  run('bash', ['-c', cmd], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

function newest(paths) {
  let t = 0;
  const walk = (p) => {
    if (!existsSync(p)) return;
    const s = statSync(p);
    if (s.isDirectory()) {
      for (const f of readdirSync(p)) if (f !== 'node_modules' && f !== 'build') walk(join(p, f));
    } else if (/\.(ts|json)$/.test(p)) t = Math.max(t, s.mtimeMs);
  };
  paths.forEach(walk);
  return t;
}

function npmDeps() {
  const stamp = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (
    existsSync(stamp) &&
    statSync(stamp).mtimeMs >= statSync(lock).mtimeMs &&
    existsSync(join(root, 'node_modules', 'typescript'))
  )
    return;
  log('installing npm dependencies (npm ci)');
  // --ignore-scripts: our own prepare step would run before the tree is complete; setup builds right after.
  run('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts']);
}

function build() {
  const stamp = join(root, 'dist', '.build-stamp');
  const src = newest([
    join(root, 'lib'),
    join(root, 'kernel'),
    join(root, 'tsconfig.json'),
    join(root, 'package.json'),
  ]);
  if (!existsSync(stamp) || statSync(stamp).mtimeMs < src) {
    log('compiling TypeScript (tsc)');
    run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
    writeFileSync(stamp, `${new Date().toISOString()}\n`);
  }
  if (existsSync(join(root, 'scripts', 'build-native.mjs')))
    run(process.execPath, [join(root, 'scripts', 'build-native.mjs'), '--quiet']);
}

function kernelspec() {
  const dirs = [
    join(
      process.env.JUPYTER_DATA_DIR ?? join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'jupyter'),
      'kernels',
      'attnlab',
    ),
    '/usr/local/share/jupyter/kernels/attnlab',
  ];
  const main = join(root, 'dist', 'kernel', 'main.js');
  const current = dirs.some((d) => {
    try {
      return JSON.parse(readFileSync(join(d, 'kernel.json'), 'utf8')).argv.includes(main);
    } catch {
      return false;
    }
  });
  if (current) return;
  log('installing the Jupyter kernelspec "attnlab"');
  run(process.execPath, [join(root, 'bin', 'attnlab.js'), 'kernel', 'install', '--user']);
}

/**
 * The processes `npm start` runs us under (npm, then sh), or the shell that ran us: Jupyter stops when any of them is
 * gone, so killing `npm start` by its PID (or closing its terminal) never leaves Jupyter behind. Killed processes can
 * linger as zombies until reaped, and count as gone.
 */
function launchers() {
  const stat = (pid) => {
    try {
      return readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return undefined;
    }
  };
  const cmdline = (pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      return '';
    }
  };
  const chain = [];
  let pid = process.ppid;
  for (let i = 0; i < 4 && pid > 1; i++) {
    chain.push(pid);
    if (/(^|[\s/])npm(-cli\.js)?\b/.test(cmdline(pid))) break;
    const s = stat(pid);
    pid = s ? Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) : 0;
  }
  const viaNpm = chain.length > 0 && /(^|[\s/])npm(-cli\.js)?\b/.test(cmdline(chain.at(-1)));
  const watched = viaNpm ? chain : [process.ppid];
  const gone = (p) => {
    const s = stat(p);
    return s === undefined || /^\d+ \(.*\) Z/.test(s);
  };
  return { watched, gone: () => watched.find(gone) };
}

function startJupyter() {
  // Python sets PR_SET_PDEATHSIG first: if this process is killed (even with SIGKILL), Jupyter gets SIGTERM.
  const prelude = [
    'import ctypes, os, runpy, signal, sys',
    'try:',
    '    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)',
    'except Exception:',
    '    pass',
    `if os.getppid() != ${process.pid}:`,
    '    sys.exit("attnlab: the process that started Jupyter is gone")',
    'runpy.run_module("notebook", run_name="__main__", alter_sys=True)',
  ].join('\n');
  const args = ['-c', prelude, '--no-browser', '--ip=127.0.0.1', `--notebook-dir=${join(root, 'notebooks')}`];
  if (isRoot) args.push('--allow-root');
  log('starting Jupyter on notebooks/ (Ctrl-C stops it); pick the kernel "TypeScript (attnlab)"');
  const child = spawn(py, args, { cwd: root, stdio: ['inherit', 'inherit', 'pipe'] });
  let printed = false;
  child.stderr.on('data', (chunk) => {
    process.stderr.write(chunk);
    const m = /(http:\/\/127\.0\.0\.1:\d+\/\S*)/.exec(String(chunk));
    if (m && !printed) {
      printed = true;
      console.log(`\n[attnlab setup] Jupyter is running: open ${m[1]} (pid ${child.pid})\n`);
    }
  });
  let stopping = false;
  const stop = (sig, why) => {
    if (stopping) return;
    stopping = true;
    if (why) log(why);
    child.kill(sig);
    // Jupyter shuts its kernels down on SIGTERM; if it hangs, it is killed.
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
    process.on(sig, () => stop(sig === 'SIGINT' ? 'SIGINT' : 'SIGTERM'));
  if (existsSync('/proc/self/stat')) {
    const { watched, gone } = launchers();
    const timer = setInterval(() => {
      const pid = gone();
      if (pid !== undefined) stop('SIGTERM', `process ${pid} (of ${watched.join(', ')}) is gone: stopping Jupyter`);
    }, 1000);
    child.on('exit', () => clearInterval(timer));
  }
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
}

checkNode();
if (mode === 'build') {
  build();
  process.exit(0);
}
installApt(aptNeeds());
npmDeps();
build();
if (mode !== 'build') kernelspec();
if (mode === 'start') startJupyter();
else log('ready');

/**
 * `attnlab hub`: serve attnlab to a class from one machine with JupyterHub (Debian's jupyterhub 3.0).
 *
 *   attnlab hub [--ip 127.0.0.1] [--port 8000] [--dir DIR] [--password P] [--mem 2G] [--cpus 1]
 *               [--cull-kernels 1800] [--stop-servers 3600] [--admin NAME] [--no-start]
 *   attnlab hub load-test --users N [--notebook NB] [--port 8100] [--json] [--keep-users]
 *
 * `hub` installs what is missing (Debian's jupyterhub when run as root), installs the attnlab kernel system-wide
 * (/usr/local/share/jupyter/kernels/attnlab, running this checkout's build, so no student needs `npm ci`), writes
 * DIR/hub.json and DIR/jupyterhub_config.py (from scripts/hub/) and starts JupyterHub bound to 127.0.0.1 unless --ip
 * says otherwise. Students log in with any username and the class password, which is generated once and kept in
 * DIR/password unless --password (or ATTNLAB_HUB_PASSWORD) gives one. See scripts/hub/jupyterhub_config.py for what
 * each student gets (caps, culling, notebooks) and how to swap the authenticator for a university's.
 *
 * `hub load-test` starts a hub on --port in a temporary DIR with an admin service token, runs scripts/hub/loadtest.py
 * (N students log in, start a server, run the notebook in quick mode, log out, all at once), stops the hub, removes the
 * Unix accounts it created (unless --keep-users), and prints the figures. Loopback only.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { installKernelSpec } from '../../kernel/install.js';
import { packageRoot } from '../util/paths.js';
import { parseArgs, UsageError } from './args.js';

/** Everything jupyterhub_config.py reads (DIR/hub.json). */
export interface HubSettings {
  ip: string;
  port: number;
  dir: string;
  password: string;
  notebooks: string;
  memLimitBytes: number;
  cpuLimit: number;
  cullKernelSeconds: number;
  stopServerSeconds: number;
  admins: string[];
  /** An admin service token for the load test only. */
  serviceToken?: string;
  /** Install the kernelspec under PREFIX/share/jupyter instead of system-wide (the load test: it must not re-point
   * the machine's kernel), and point the students' servers at it. */
  kernelPrefix?: string;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** "2G", "512M", "1.5G", or bytes -> bytes. */
export function parseBytes(s: string, arg = '--mem'): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)i?B?$/i.exec(s.trim());
  if (!m) throw new UsageError(`attnlab hub: ${arg} must be a size like 512M or 2G, got ${JSON.stringify(s)}`);
  const mult = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[
    m[2].toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'
  ];
  const bytes = Math.round(Number(m[1]) * mult);
  if (bytes < 256 * 2 ** 20)
    throw new UsageError(`attnlab hub: ${arg} must be at least 256M (a kernel needs about 300 MB), got ${s}`);
  return bytes;
}

function intOption(v: string | true | undefined, name: string, def: number, lo: number, hi: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi)
    throw new UsageError(`attnlab hub: --${name} must be an integer in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
  return n;
}

/** The settings `hub` would use for these arguments (no side effects but reading DIR/password). */
export function hubSettings(argv: string[]): { settings: HubSettings; noStart: boolean } {
  const { flags, positionals } = parseArgs(
    argv,
    {
      flags: ['no-start'],
      options: ['ip', 'port', 'dir', 'password', 'mem', 'cpus', 'cull-kernels', 'stop-servers', 'admin'],
    },
    'attnlab hub',
  );
  if (positionals.length) throw new UsageError(`attnlab hub: unexpected argument ${JSON.stringify(positionals[0])}`);
  const ip = typeof flags.ip === 'string' ? flags.ip : '127.0.0.1';
  if (!/^(\d{1,3}\.){3}\d{1,3}$|^::1?$|^localhost$/.test(ip))
    throw new UsageError(
      `attnlab hub: --ip must be an IP address (e.g. 127.0.0.1 or 0.0.0.0), got ${JSON.stringify(ip)}`,
    );
  const cpuCount = cpus().length;
  const cpuLimit = flags.cpus === undefined ? 1 : Number(flags.cpus);
  if (!(cpuLimit > 0 && cpuLimit <= cpuCount))
    throw new UsageError(
      `attnlab hub: --cpus must be a number in (0, ${cpuCount}] (this machine's cores), got ${flags.cpus}`,
    );
  const dir = resolve(
    typeof flags.dir === 'string' ? flags.dir : isRoot() ? '/var/lib/attnlab-hub' : join(homedir(), '.attnlab-hub'),
  );
  let password = typeof flags.password === 'string' ? flags.password : (process.env.ATTNLAB_HUB_PASSWORD ?? '');
  if (!password && existsSync(join(dir, 'password'))) password = readFileSync(join(dir, 'password'), 'utf8').trim();
  if (!password) password = randomBytes(9).toString('base64url');
  if (password.length < 6) throw new UsageError('attnlab hub: --password must have at least 6 characters');
  return {
    noStart: flags['no-start'] === true,
    settings: {
      ip,
      port: intOption(flags.port, 'port', 8000, 1024, 65533),
      dir,
      password,
      notebooks: join(packageRoot(), 'notebooks'),
      memLimitBytes: parseBytes(typeof flags.mem === 'string' ? flags.mem : '2G'),
      cpuLimit,
      cullKernelSeconds: intOption(flags['cull-kernels'], 'cull-kernels', 1800, 60, 7 * 86400),
      stopServerSeconds: intOption(flags['stop-servers'], 'stop-servers', 3600, 60, 7 * 86400),
      admins: typeof flags.admin === 'string' ? flags.admin.split(',').map((s) => s.trim().toLowerCase()) : [],
    },
  };
}

/** Path components of `p` that other users cannot enter or read (students' kernels run this checkout). */
export function unreadableForOthers(p: string): string[] {
  const bad: string[] = [];
  let cur = resolve(p);
  for (;;) {
    const st = statSync(cur);
    if (st.isDirectory() ? (st.mode & 0o001) === 0 : (st.mode & 0o004) === 0) bad.push(cur);
    const up = dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  return bad;
}

function requireSetup(): void {
  if (!isRoot())
    throw new Error(
      'attnlab hub must run as root: JupyterHub creates a Unix account per student and starts their server as that user (run it with sudo)',
    );
  if (!existsSync('/usr/bin/jupyterhub') || !existsSync('/usr/bin/configurable-http-proxy')) {
    if (!existsSync('/usr/bin/apt-get'))
      throw new Error('attnlab hub needs JupyterHub (jupyterhub and configurable-http-proxy); install them first');
    console.log('attnlab hub: installing Debian packages jupyterhub and configurable-http-proxy (apt-get)...');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const r = spawnSync('bash', ['-c', 'apt-get update && apt-get install -y jupyterhub configurable-http-proxy'], {
      stdio: 'inherit',
      env,
    });
    if (r.status !== 0) throw new Error(`apt-get install jupyterhub failed (exit ${r.status})`);
  }
  const root = packageRoot();
  const main = join(root, 'dist', 'kernel', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: build first (npm run build)`);
  const bad = unreadableForOthers(main);
  if (bad.length)
    throw new Error(
      `students could not run the kernel: ${bad.join(', ')} ${bad.length > 1 ? 'are' : 'is'} not readable by other users; put the checkout somewhere world-readable (e.g. /opt/attnlab) or chmod o+rx those`,
    );
}

/** Write DIR/hub.json, DIR/jupyterhub_config.py and DIR/password; install the system-wide kernelspec. */
export function prepareHub(s: HubSettings): string {
  requireSetup();
  mkdirSync(s.dir, { recursive: true, mode: 0o700 });
  chmodSync(s.dir, 0o700);
  writeFileSync(join(s.dir, 'password'), `${s.password}\n`, { mode: 0o600 });
  writeFileSync(join(s.dir, 'hub.json'), `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  const config = join(s.dir, 'jupyterhub_config.py');
  copyFileSync(join(packageRoot(), 'scripts', 'hub', 'jupyterhub_config.py'), config);
  const spec = installKernelSpec({ prefix: s.kernelPrefix ?? '/usr/local', warn: (m) => console.warn(m) });
  console.log(`attnlab hub: kernel installed ${s.kernelPrefix ? 'for this hub' : 'system-wide'} in ${spec}`);
  return config;
}

function startHub(s: HubSettings, config: string, stdio: 'inherit' | 'pipe'): ChildProcess {
  return spawn('/usr/bin/jupyterhub', ['-f', config], {
    cwd: s.dir,
    stdio: stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ATTNLAB_HUB_SETTINGS: join(s.dir, 'hub.json') },
    detached: stdio === 'pipe',
  });
}

async function waitForHub(url: string, child: ChildProcess, seconds: number, log: () => string): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    if (child.exitCode !== null) throw new Error(`JupyterHub exited (code ${child.exitCode}):\n${log()}`);
    try {
      const r = await fetch(`${url}/hub/api/`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`JupyterHub did not answer at ${url} within ${seconds} s:\n${log()}`);
}

export async function hubCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'load-test') return loadTestCommand(argv.slice(1));
  const { settings: s, noStart } = hubSettings(argv);
  const config = prepareHub(s);
  const url = `http://${s.ip.includes(':') ? `[${s.ip}]` : s.ip}:${s.port}`;
  if (noStart) {
    console.log(
      `attnlab hub: ready; start it with\n  ATTNLAB_HUB_SETTINGS=${join(s.dir, 'hub.json')} jupyterhub -f ${config}`,
    );
    return 0;
  }
  console.log(
    [
      `attnlab hub: starting JupyterHub at ${url}${s.ip === '127.0.0.1' ? ' (this machine only; --ip 0.0.0.0 to serve the network, behind TLS)' : ''}`,
      `  students log in with any name (lower case letters, digits, - and _) and the class password: ${s.password}`,
      `  each gets ~/attnlab-notebooks, the attnlab kernel, ${(s.memLimitBytes / 2 ** 30).toFixed(1)} GiB and ${s.cpuLimit} CPU(s); idle kernels stop after ${s.cullKernelSeconds} s`,
      `  settings and state: ${s.dir}; Ctrl-C stops the hub and every student's server`,
    ].join('\n'),
  );
  const child = startHub(s, config, 'inherit');
  const stop = () => child.kill('SIGTERM');
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return new Promise((res) => child.on('exit', (code) => res(code ?? 1)));
}

/** The JSON loadtest.py prints. */
export interface LoadTestReport {
  summary: {
    users: number;
    failures: number;
    wall_s: number;
    first_result_s_max: number;
    notebook_s_median: number | null;
    notebook_s_max: number;
    peak_rss_mb_max: number;
  };
  students: Record<string, unknown>[];
}

/** Start a throwaway hub, run N students through `notebook`, stop it, remove the accounts; returns the report. */
export async function runLoadTest(opts: {
  users: number;
  notebook: string;
  port?: number;
  keepUsers?: boolean;
  timeout?: number;
  prefix?: string;
}): Promise<LoadTestReport> {
  const dir = mkdtempSync(join(tmpdir(), 'attnlab-hub-'));
  // The kernelspec goes to a folder of its own that students can read (the hub's folder holds the password).
  const kernelPrefix = mkdtempSync(join(tmpdir(), 'attnlab-hub-kernel-'));
  chmodSync(kernelPrefix, 0o755);
  const prefix = opts.prefix ?? `lt${randomBytes(2).toString('hex')}x`;
  const s: HubSettings = {
    ...hubSettings(['--dir', dir, '--port', String(opts.port ?? 8100)]).settings,
    serviceToken: randomBytes(24).toString('hex'),
    kernelPrefix,
  };
  const config = prepareHub(s);
  const child = startHub(s, config, 'pipe');
  let log = '';
  child.stdout?.on('data', (d) => (log += d));
  child.stderr?.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${s.port}`;
  try {
    await waitForHub(url, child, 60, () => log.slice(-4000));
    const r = spawnSync(
      '/usr/bin/python3',
      [
        join(packageRoot(), 'scripts', 'hub', 'loadtest.py'),
        ...['--url', url, '--token', s.serviceToken!, '--password', s.password],
        ...['--users', String(opts.users), '--notebook', resolve(opts.notebook), '--prefix', prefix],
        ...['--timeout', String(opts.timeout ?? 600)],
      ],
      { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 },
    );
    if (r.status !== 0)
      throw new Error(`loadtest.py failed (exit ${r.status}): ${r.stderr.slice(-2000)}\nhub log:\n${log.slice(-3000)}`);
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!) as LoadTestReport;
    if (report.summary.failures) (report as LoadTestReport & { hubLog?: string }).hubLog = log.slice(-6000);
    return report;
  } finally {
    if (child.pid) {
      try {
        process.kill(-child.pid, 'SIGTERM'); // the hub, its proxy and any server still up
      } catch {
        // already gone
      }
      await new Promise((r) => setTimeout(r, 1500));
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (!opts.keepUsers)
      for (let i = 1; i <= opts.users; i++) {
        const name = `${prefix}${String(i).padStart(2, '0')}`;
        spawnSync('pkill', ['-KILL', '-u', name]);
        spawnSync('userdel', ['-r', name], { stdio: 'ignore' });
        for (const g of ['attnlab', 'memory/attnlab', 'cpu/attnlab'])
          try {
            rmdirSync(join('/sys/fs/cgroup', g, name));
          } catch {
            // removed when the server stopped, or never made
          }
      }
    rmSync(dir, { recursive: true, force: true });
    rmSync(kernelPrefix, { recursive: true, force: true });
  }
}

async function loadTestCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(
    argv,
    { flags: ['json', 'keep-users'], options: ['users', 'notebook', 'port', 'timeout'] },
    'attnlab hub load-test',
  );
  if (positionals.length)
    throw new UsageError(`attnlab hub load-test: unexpected argument ${JSON.stringify(positionals[0])}`);
  const users = intOption(flags.users, 'users', 0, 1, 200);
  if (!users) throw new UsageError('attnlab hub load-test: --users N is required');
  const notebook =
    typeof flags.notebook === 'string' ? flags.notebook : join(packageRoot(), 'notebooks', '00-attention-basics.ipynb');
  const report = await runLoadTest({
    users,
    notebook,
    port: intOption(flags.port, 'port', 8100, 1024, 65533),
    timeout: intOption(flags.timeout, 'timeout', 600, 10, 7200),
    keepUsers: flags['keep-users'] === true,
  });
  if (flags.json) console.log(JSON.stringify(report, null, 2));
  else {
    const x = report.summary;
    console.log(
      `${x.users} students, ${x.failures} failures, wall ${x.wall_s} s; first result within ${x.first_result_s_max} s; ` +
        `notebook done: median ${x.notebook_s_median} s, slowest ${x.notebook_s_max} s; peak memory per student ${x.peak_rss_mb_max} MB (${cpus().length} cores)`,
    );
    for (const st of report.students) if (!st.ok) console.log(`  ${st.user}: ${st.error}`);
  }
  return report.summary.failures ? 1 : 0;
}

/**
 * The PyTorch CPU peer: a long-lived `python3 torch_bench.py` process driven over JSON lines, so that its runs
 * interleave with the library's in one benchmark.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { packageRoot } from '../util/paths.js';
import type { Workload } from './workloads.js';

/** The peer script; it ships as source in lib/bench/peer/ (tsc does not copy it into dist/). */
export function peerScript(): string {
  const p = join(packageRoot(), 'lib', 'bench', 'peer', 'torch_bench.py');
  if (!existsSync(p)) throw new Error(`bench: the PyTorch peer script is missing: expected ${p}`);
  return p;
}

/** The environment PyTorch must run with on this machine: 2 threads, passive OpenMP waiting. */
export function peerEnv(threads: number): NodeJS.ProcessEnv {
  return { ...process.env, OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'PASSIVE' };
}

/** A Python that imports torch (Debian's python3-torch lives in /usr/bin/python3, not in a pyenv python). */
export function findTorchPython(): { python?: string; tried: string[] } {
  const candidates = [process.env.ATTNLAB_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => Boolean(p));
  for (const p of candidates) {
    const r = spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return { python: p, tried: candidates };
  }
  return { tried: candidates };
}

/** Make sure a torch-capable Python exists, installing Debian's python3-torch when allowed. */
export function ensureTorch(install: boolean, log: (s: string) => void): { python?: string; reason?: string } {
  const found = findTorchPython();
  if (found.python) return { python: found.python };
  const missing = `PyTorch is not installed (tried ${found.tried.join(', ')})`;
  if (!install) return { reason: `${missing}; \`attnlab bench --peer torch\` installs it` };
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return {
      reason: `${missing}; installing it needs root: run \`sudo apt-get install -y python3-torch\`, then bench again`,
    };
  }
  log('bench: installing python3-torch with apt-get (about a minute)...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', 'python3-torch'], { stdio: 'inherit', env });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
    r = spawnSync('apt-get', ['install', '-y', 'python3-torch'], { stdio: 'inherit', env });
  }
  if (r.status !== 0) return { reason: `${missing}; \`apt-get install -y python3-torch\` failed (exit ${r.status})` };
  const again = findTorchPython();
  return again.python ? { python: again.python } : { reason: `${missing}, even after installing python3-torch` };
}

interface Reply {
  ok: boolean;
  error?: string;
  seconds?: number;
  torch?: string;
  threads?: number;
}

export class TorchPeer {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly queue: ((line: string) => void)[] = [];
  private stderr = '';
  version = '';
  threads = 0;

  private constructor(python: string, threads: number) {
    this.proc = spawn(python, [peerScript(), String(threads)], { env: peerEnv(threads) });
    this.proc.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    });
    this.lines = createInterface({ input: this.proc.stdout });
    this.lines.on('line', (l) => this.queue.shift()?.(l));
    this.proc.on('exit', () => {
      for (const w of this.queue.splice(0))
        w(JSON.stringify({ ok: false, error: `the torch peer exited: ${this.stderr.trim().split('\n').pop() ?? ''}` }));
    });
  }

  static async start(python: string, threads: number): Promise<TorchPeer> {
    const p = new TorchPeer(python, threads);
    const hello = await p.next();
    if (!hello.ok) throw new Error(`bench: the torch peer did not start: ${hello.error}`);
    p.version = hello.torch ?? '';
    p.threads = hello.threads ?? threads;
    return p;
  }

  private next(): Promise<Reply> {
    return new Promise((resolve) => this.queue.push((l) => resolve(JSON.parse(l) as Reply)));
  }

  private async request(req: object): Promise<Reply> {
    const reply = this.next();
    this.proc.stdin.write(`${JSON.stringify(req)}\n`);
    return reply;
  }

  async setup(w: Workload): Promise<string | null> {
    const r = await this.request({ cmd: 'setup', name: w.name, kind: w.peer.kind, params: w.peer.params });
    return r.ok ? null : (r.error ?? 'setup failed');
  }

  /** Seconds for one run. */
  async run(w: Workload): Promise<number> {
    const r = await this.request({ cmd: 'run', name: w.name });
    if (!r.ok || r.seconds === undefined) throw new Error(`bench: torch ${w.name}: ${r.error}`);
    return r.seconds;
  }

  async dispose(w: Workload): Promise<void> {
    await this.request({ cmd: 'dispose', name: w.name });
  }

  close(): void {
    this.proc.stdin.end();
    this.proc.kill();
  }
}

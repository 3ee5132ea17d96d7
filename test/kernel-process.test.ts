/** The kernel as an OS process: it does not outlive the process that started it; its kernelspec says which checkout runs. */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureBuilt, hasCommand, ROOT } from './kernel-support.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Running and not a zombie (a re-parented child may wait for a reaper that never comes). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!existsSync('/proc/self/stat'))('kernel process', () => {
  it('exits when its parent process is gone', async () => {
    ensureBuilt();
    const dir = mkdtempSync(join(tmpdir(), 'attnlab-orphan-'));
    const connection = join(dir, 'kernel.json');
    const ports = { shell_port: 0, iopub_port: 0, stdin_port: 0, control_port: 0, hb_port: 0 };
    for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
    writeFileSync(
      connection,
      JSON.stringify({ ...ports, ip: '127.0.0.1', transport: 'tcp', signature_scheme: 'hmac-sha256', key: 'k' }),
    );
    // A parent that starts the kernel in the background, prints its pid and lives 3 s (a client that then dies).
    const env = { ...process.env };
    delete env.JPY_PARENT_PID;
    const parent = spawn(
      'sh',
      [
        '-c',
        `"$0" "$1" --connection-file "$2" & echo $!; sleep 3`,
        process.execPath,
        join(ROOT, 'dist', 'kernel', 'main.js'),
        connection,
      ],
      { env, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const kernel = await new Promise<number>((resolve) =>
      parent.stdout.once('data', (b) => resolve(Number(String(b).trim()))),
    );
    const parentExit = new Promise((r) => parent.once('exit', r));
    try {
      await sleep(2000);
      expect(running(kernel), 'the kernel runs while its parent does').toBe(true);
      await parentExit;
      const deadline = Date.now() + 10_000;
      while (running(kernel) && Date.now() < deadline) await sleep(100);
      expect(running(kernel), 'the kernel exits within 10 s of its parent').toBe(false);
    } finally {
      if (running(kernel)) process.kill(kernel, 'SIGKILL');
    }
  }, 30_000);
});

/** `npm start` in a checkout; resolves with npm's and Jupyter's pids once Jupyter says where it runs. */
async function npmStart(): Promise<{ npm: ReturnType<typeof spawn>; jupyter: number; log: () => string }> {
  const env = { ...process.env, BROWSER: 'true' };
  const npm = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  npm.stderr!.on('data', (b) => {
    log += String(b);
  });
  const jupyter = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Jupyter did not start in 120 s:\n${log}`)), 120_000);
    npm.stdout!.on('data', (b) => {
      log += String(b);
      const m = /Jupyter is running: open \S+ \(pid (\d+)\)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    npm.once('exit', (code) => reject(new Error(`npm start exited (${code}) before Jupyter ran:\n${log}`)));
  });
  return { npm, jupyter, log: () => log };
}

describe.skipIf(!existsSync('/proc/self/stat') || !hasCommand('jupyter-notebook'))('npm start', () => {
  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'stops Jupyter when npm is killed by its pid (%s)',
    async (signal) => {
      const { npm, jupyter, log } = await npmStart();
      try {
        expect(running(jupyter), 'Jupyter runs while npm start does').toBe(true);
        npm.kill(signal);
        const deadline = Date.now() + 20_000;
        while (running(jupyter) && Date.now() < deadline) await sleep(200);
        expect(running(jupyter), `Jupyter stops within 20 s of npm's ${signal}:\n${log()}`).toBe(false);
      } finally {
        if (running(jupyter)) process.kill(jupyter, 'SIGKILL');
      }
    },
    180_000,
  );
});

describe('kernel install', () => {
  it('names the checkout in the spec and warns before re-pointing it to another checkout', async () => {
    ensureBuilt();
    const { installKernelSpec, installedRoot } = await import('../kernel/install.js');
    const dir = mkdtempSync(join(tmpdir(), 'attnlab-spec-'));
    const other = join(dir, 'other-checkout');
    mkdirSync(join(other, 'dist', 'kernel'), { recursive: true });
    writeFileSync(join(other, 'dist', 'kernel', 'main.js'), '');
    writeFileSync(join(other, 'package.json'), '{"version": "0.0.1"}');
    const prefix = join(dir, 'prefix');
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);

    const spec = installKernelSpec({ prefix, root: ROOT, warn });
    expect(installedRoot(spec)).toBe(ROOT);
    installKernelSpec({ prefix, root: ROOT, warn });
    expect(warnings, 'reinstalling the same checkout is silent').toEqual([]);

    installKernelSpec({ prefix, root: other, warn });
    expect(installedRoot(spec)).toBe(other);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`ran the checkout ${ROOT}; it now runs ${other}`);
  });
});

/**
 * Entry point of the attnlab kernel, started by Jupyter from the kernelspec:
 *
 *   node dist/kernel/main.js --connection-file /path/to/kernel-1234.json
 */
import { readFileSync } from 'node:fs';
import { type ConnectionInfo, KernelServer } from './server.js';

function connectionFile(argv: string[]): string {
  const at = argv.findIndex((a) => a === '--connection-file' || a === '-f');
  const path = at >= 0 ? argv[at + 1] : argv.find((a) => a.endsWith('.json'));
  if (!path) throw new Error('usage: attnlab-kernel --connection-file FILE (Jupyter passes {connection_file})');
  return path;
}

/** The parent's pid as the OS has it now (Node's `process.ppid` is read once at startup on some versions). */
function currentParent(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Exit when the process that started us is gone (a client killed with -9, a crashed Jupyter server), as ipykernel's
 * parent poller does: an orphaned kernel would otherwise hold its memory and ports forever. Watches the parent at
 * startup (re-parenting shows it died) and Jupyter's launcher, which names itself in JPY_PARENT_PID.
 */
function exitWithParent(intervalMs = 1000): void {
  const parent = process.ppid;
  const launcher = Number(process.env.JPY_PARENT_PID) || undefined;
  const timer = setInterval(() => {
    const now = currentParent();
    const parentGone = now === undefined ? !alive(parent) : now !== parent;
    if (parentGone || (launcher !== undefined && !alive(launcher))) {
      console.error(`attnlab kernel: parent process ${parentGone ? parent : launcher} is gone; exiting`);
      process.exit(0);
    }
  }, intervalMs);
  timer.unref();
}

if (process.ppid > 1) exitWithParent();

const conn = JSON.parse(readFileSync(connectionFile(process.argv.slice(2)), 'utf8')) as ConnectionInfo;
const server = new KernelServer(conn);

// Jupyter interrupts with SIGINT (interrupt_mode "signal"): synchronous code is stopped by the VM
// (breakOnSigint); awaiting code is stopped here.
process.on('SIGINT', () => server.interrupt());
// A rejected promise nobody awaited, or a throw in a callback, must not take the kernel down: the server owns the
// process's handlers for both and reports them in the cell's output.

await server.start();

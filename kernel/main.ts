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

const conn = JSON.parse(readFileSync(connectionFile(process.argv.slice(2)), 'utf8')) as ConnectionInfo;
const server = new KernelServer(conn);

// Jupyter interrupts with SIGINT (interrupt_mode "signal"): synchronous code is stopped by the VM
// (breakOnSigint); awaiting code is stopped here.
process.on('SIGINT', () => server.interrupt());
// A rejected promise nobody awaited, or a throw in a callback, must not take the kernel down.
process.on('uncaughtException', (e) => console.error('Uncaught exception:', e));
process.on('unhandledRejection', (e) => console.error('Unhandled promise rejection:', e));

await server.start();

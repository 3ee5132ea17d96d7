/** `attnlab info`: versions, backend choice with reasons, capabilities. */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, homedir, totalmem } from 'node:os';
import { join } from 'node:path';
import { installedVersion, packageRoot } from '../util/paths.js';
import { parseArgs } from './args.js';

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

function probe(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  return r.status === 0 ? (r.stdout || r.stderr).trim().split('\n')[0] : undefined;
}

function kernelspecPath(): string | undefined {
  const dirs = [
    join(homedir(), '.local/share/jupyter/kernels/attnlab'),
    '/usr/local/share/jupyter/kernels/attnlab',
    '/usr/share/jupyter/kernels/attnlab',
  ];
  return dirs.find((d) => existsSync(join(d, 'kernel.json')));
}

export async function collectInfo() {
  const backend = await import('../backend/index.js');
  const tf = await import('@tensorflow/tfjs');
  const report = await backend.ready();
  const { listExperiments } = await import('../catalog.js');
  return {
    attnlab: packageVersion(),
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    versions: {
      tfjs: tf.version_core,
      'tfjs-backend-wasm': installedVersion('@tensorflow/tfjs-backend-wasm'),
      'tfjs-node-gpu': installedVersion('@tensorflow/tfjs-node-gpu') ?? null,
      tslab: installedVersion('tslab'),
      typescript: installedVersion('typescript'),
      'danfojs-node': installedVersion('danfojs-node'),
      'plotly.js-dist-min': installedVersion('plotly.js-dist-min'),
    },
    backend: report,
    capabilities: {
      scoring: ['softmax', 'sigmoid', 'softmax-sink'],
      masks: ['causal', 'slidingWindow', 'sinkWindow', 'padding', 'blockDiagonal', 'and'],
      positional: ['sinusoidal', 'learned', 'rope', 'alibi'],
      experiments: listExperiments().map((e) => e.name),
      jupyter: probe('jupyter', ['--version']) !== undefined,
      kernelspec: kernelspecPath() ?? null,
      chromium: existsSync('/usr/bin/chromium'),
      torchPeer:
        probe(existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', [
          '-c',
          'import torch; print(torch.__version__)',
        ]) ?? null,
    },
  };
}

export async function infoCommand(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, { flags: ['json'] }, 'attnlab info');
  const info = await collectInfo();
  if (flags.json) {
    console.log(JSON.stringify(info, null, 2));
    return 0;
  }
  const b = info.backend;
  const lines = [
    `attnlab ${info.attnlab}  (node ${info.node}, ${info.platform}, ${info.cpus} cpus, ${info.memoryGiB} GiB)`,
    '',
    `backend: ${b.chosen}${b.how === 'auto' ? '' : ` (from ${b.how})`}`,
    ...Object.entries(b.notChosen).map(([n, r]) => `  not ${n}: ${r}`),
    ...(b.nativeKernels.length ? [`  native kernels: ${b.nativeKernels.join(', ')}`] : []),
    '',
    'versions:',
    ...Object.entries(info.versions).map(([k, v]) => `  ${k.padEnd(20)} ${v ?? 'not installed'}`),
    '',
    'capabilities:',
    `  scoring     ${info.capabilities.scoring.join(', ')}`,
    `  masks       ${info.capabilities.masks.join(', ')}`,
    `  positional  ${info.capabilities.positional.join(', ')}`,
    `  experiments ${info.capabilities.experiments.join(', ')}`,
    `  jupyter     ${info.capabilities.jupyter ? 'yes' : 'no (npm start installs it)'}; kernelspec ${info.capabilities.kernelspec ?? 'not installed'}`,
    `  reports     ${info.capabilities.chromium ? 'chromium found' : 'no chromium (only needed to check reports)'}`,
    `  torch peer  ${info.capabilities.torchPeer ?? 'not installed (attnlab bench --peer torch installs it)'}`,
  ];
  console.log(lines.join('\n'));
  return 0;
}

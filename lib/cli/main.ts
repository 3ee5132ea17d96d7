/**
 * The `attnlab` command line. Each command is a function from argv to an exit code; heavy modules load only for the
 * command that needs them.
 */
import { UsageError } from './args.js';

interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  info: {
    summary: 'versions, the active tensor backend and why the others were not chosen, what this install can do',
    usage: 'attnlab info [--json]',
    run: async (argv) => (await import('./info.js')).infoCommand(argv),
  },
  experiment: {
    summary: 'list or run registered experiments',
    usage:
      'attnlab experiment list [--json]\n       attnlab experiment NAME [--quick] [--seed N] [--config \'{"field": value}\'] [--json] [--out FILE]',
    run: async (argv) => (await import('./experiment.js')).experimentCommand(argv),
  },
  run: {
    summary: 'execute notebooks headlessly with the attnlab kernel; fails naming the notebook and cell',
    usage: 'attnlab run [--quick] [--timeout SECONDS] [--cache DIR|off] NOTEBOOK...',
    run: async (argv) => (await import('./notebooks.js')).runCommand(argv),
  },
  report: {
    summary:
      'execute notebooks and write a report site (index.html, pages sharing one plotly.js, math typeset offline); --single-file for self-contained pages',
    usage:
      'attnlab report [--out DIR] [--quick] [--timeout SECONDS] [--cache DIR|off] [--single-file] [--hide-code] NOTEBOOK...',
    run: async (argv) => (await import('./notebooks.js')).reportCommand(argv),
  },
  bench: {
    summary:
      "benchmark GEMM, attention and a ToyLM training step on the library's backends, against PyTorch CPU with --peer torch",
    usage:
      'attnlab bench [--peer torch|none] [--json] [--out FILE] [--only NAMES] [--repeats N] [--backends LIST] [--budget S] [--threads N] [--list]',
    run: async (argv) => (await import('./bench.js')).benchCommand(argv),
  },
  hub: {
    summary:
      'serve attnlab to a class: JupyterHub with the attnlab kernel system-wide, per-student caps and culling (as root); load-test it',
    usage:
      'attnlab hub [--ip 127.0.0.1] [--port 8000] [--dir DIR] [--password P] [--mem 2G] [--cpus 1] [--cull-kernels S] [--stop-servers S] [--admin NAMES] [--no-start]\n       attnlab hub load-test --users N [--notebook NB] [--port 8100] [--timeout S] [--json] [--keep-users]',
    run: async (argv) => (await import('./hub.js')).hubCommand(argv),
  },
  kernel: {
    summary: 'install the Jupyter kernelspec (attnlab kernel install [--user|--prefix P]) or start the kernel',
    usage: 'attnlab kernel install [--user|--prefix P]',
    run: async (argv) => (await import('./kernel.js')).kernelCommand(argv),
  },
};

function help(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    'attnlab: learn, test and measure attention mechanisms',
    '',
    'usage: attnlab COMMAND [options]',
    '',
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(w)}  ${c.summary}`),
    '',
    "attnlab COMMAND --help shows a command's usage.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    const { packageVersion } = await import('./info.js');
    console.log(packageVersion());
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`attnlab: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`usage: ${cmd.usage}\n\n${cmd.summary}`);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\nusage: ${cmd.usage}`);
      return 2;
    }
    console.error(`attnlab ${name}: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.ATTNLAB_DEBUG && e instanceof Error) console.error(e.stack);
    return 1;
  }
}

/**
 * `attnlab kernel ...`: manage the Jupyter kernelspec.
 *
 *   attnlab kernel install [--user | --prefix P]   write the "attnlab" kernelspec (absolute paths)
 *   attnlab kernel spec                            print the kernel.json that install would write
 *   attnlab kernel path [--user | --prefix P]      print where the kernelspec goes
 */
import { type InstallOptions, installKernelSpec, kernelSpec, kernelSpecDir } from '../../kernel/install.js';
import { packageRoot } from '../util/paths.js';

const USAGE =
  'usage: attnlab kernel install [--user | --prefix PATH]\n       attnlab kernel spec | path [--user | --prefix PATH]';

function parseInstallOptions(args: string[]): InstallOptions | string {
  const opts: InstallOptions = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--user') opts.user = true;
    else if (a === '--prefix') {
      const p = args[++i];
      if (!p) return '--prefix needs a directory';
      opts.prefix = p;
    } else if (a.startsWith('--prefix=')) opts.prefix = a.slice('--prefix='.length);
    else return `unknown argument ${JSON.stringify(a)}`;
  }
  if (opts.user && opts.prefix) return '--user and --prefix exclude each other';
  return opts;
}

export async function kernelCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    console.log(USAGE);
    return sub === undefined ? 2 : 0;
  }
  const opts = parseInstallOptions(rest);
  if (typeof opts === 'string') {
    console.error(`attnlab kernel ${sub}: ${opts}\n${USAGE}`);
    return 2;
  }
  switch (sub) {
    case 'install':
      try {
        const dir = installKernelSpec(opts);
        console.log(`Installed kernelspec attnlab in ${dir}`);
        return 0;
      } catch (e) {
        console.error(`attnlab kernel install: ${(e as Error).message}`);
        return 1;
      }
    case 'spec':
      console.log(JSON.stringify(kernelSpec(packageRoot()), null, 2));
      return 0;
    case 'path':
      console.log(kernelSpecDir(opts));
      return 0;
    default:
      console.error(`attnlab kernel: unknown subcommand ${JSON.stringify(sub)}\n${USAGE}`);
      return 2;
  }
}

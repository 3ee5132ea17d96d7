#!/usr/bin/env node
// The attnlab command line; the TypeScript sources are compiled to dist/ by `npm run build` (npm start/test do it).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/lib/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error(
    'attnlab: the package is not built yet (dist/ is missing). Run `npm run build`, or `npm start` / `npm test`, which build it.',
  );
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));

#!/usr/bin/env node
// pgscale's command-line entry point: runs the compiled CLI from dist/ (built by `npm install`
// through the `prepare` script, or by `npm run build`). In a development checkout without dist/
// it falls back to the TypeScript sources through tsx (PGSCALE_DEV=1 forces that, for tests).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (existsSync(compiled) && !process.env.PGSCALE_DEV) {
  const { main } = await import(pathToFileURL(compiled).href);
  await main(process.argv.slice(2));
} else {
  try {
    await import('tsx/esm');
  } catch {
    console.error('pgscale: dist/ is missing; run `npm run build` (or `npm install`) first.');
    process.exit(1);
  }
  const { main } = await import(new URL('../src/cli/main.ts', import.meta.url).href);
  await main(process.argv.slice(2));
}

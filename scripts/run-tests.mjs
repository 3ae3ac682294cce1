#!/usr/bin/env node
// Lists the test files (Node 20's --test does not glob) and runs them with node:test through tsx.
// Unit tests sit beside the code (src/**/*.test.ts); integration tests live in test/ and start
// real PostgreSQL processes. `--unit` runs only the former; extra arguments are file filters.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => !a.startsWith('--'));

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

let files = walk(join(root, 'src'));
if (!unitOnly) files.push(...walk(join(root, 'test')));
if (filters.length) files = files.filter((f) => filters.some((x) => f.includes(x)));
files.sort();
// The slowest files start first: with a few running at once, a long file that starts last decides
// the run's length alone (the corpus, at 4 minutes, sorted near the end). Measured on full runs.
const SLOW_FIRST = [
  'sharding-corpus',
  'multi-host',
  'demo',
  'backup',
  'sharding-move-faults',
  'sharding-add-group',
  'sharding-move',
  'reload',
  'restart-reinit',
  'sharding-tx-faults',
];
const rank = (f) => {
  const i = SLOW_FIRST.findIndex((s) => f.includes(s));
  return i < 0 ? SLOW_FIRST.length : i;
};
files.sort((a, b) => rank(a) - rank(b));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.PGSCALE_TEST_CONCURRENCY ?? '2';
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { cwd: root, stdio: 'inherit' },
);
process.exit(r.status ?? 1);

/**
 * The dependency rule of docs/architecture.md: imports go downward only, and no module imports
 * itself back through a cycle (an ESM cycle can crash at start-up). Pure code scan, no processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { repoRoot } from './harness.js';

/** What each top-level folder of src/ may import (besides itself). */
const allowed: Record<string, string[]> = {
  'errors.ts': [],
  protocol: ['errors.ts'],
  sql: ['errors.ts', 'protocol'],
  config: ['errors.ts'],
  obs: ['errors.ts', 'config'],
  cluster: ['errors.ts', 'config', 'obs', 'protocol'],
  topology: ['errors.ts', 'config', 'obs'],
  sharding: ['errors.ts', 'protocol', 'sql', 'config', 'obs', 'topology'],
  ha: ['errors.ts', 'config', 'obs', 'cluster', 'topology', 'protocol'],
  proxy: ['errors.ts', 'protocol', 'sql', 'sharding', 'topology', 'config', 'obs'],
  web: ['errors.ts', 'config', 'obs', 'cluster', 'topology', 'ha', 'proxy', 'protocol', 'sql', 'sharding'],
  controller: ['errors.ts', 'config', 'obs', 'cluster', 'topology', 'ha', 'proxy', 'web', 'protocol', 'sql'],
  demo: [
    'errors.ts',
    'config',
    'obs',
    'cluster',
    'topology',
    'ha',
    'proxy',
    'web',
    'controller',
    'protocol',
    'sql',
    'sharding',
  ],
  cli: ['*'],
};

const src = join(repoRoot, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)) {
    if (/^\s*import\s+type\s/m.test(m[0]) || /^\s*export\s+type\s/m.test(m[0])) continue;
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
  }
  for (const m of text.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g))
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
  return out;
}

const layer = (f: string) => relative(src, f).split('/')[0]!;

test('imports go downward only', () => {
  const bad: string[] = [];
  for (const f of files(src)) {
    const from = layer(f);
    const ok = allowed[from];
    assert.ok(ok, `src/${from} is not in the layering table of test/layering.test.ts`);
    for (const target of imports(f)) {
      const to = layer(target);
      if (to !== from && !ok.includes('*') && !ok.includes(to))
        bad.push(`${relative(src, f)} → ${relative(src, target)}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('no import cycles', () => {
  const graph = new Map(files(src).map((f) => [f, imports(f)]));
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(src, p)).join(' → '));
      return;
    }
    state.set(f, 'visiting');
    for (const g of graph.get(f) ?? []) visit(g, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  assert.deepEqual(cycles, []);
});

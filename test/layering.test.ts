/**
 * The dependency rule of docs/architecture.md: imports go downward only, and no module imports
 * itself back through a cycle (an ESM cycle can crash at start-up); inside src/proxy/ the backend
 * (server connections, pools) never imports the frontend (client connections); bench/ uses only
 * the public modules of src/ (see `isPublic`). Pure code scan, no processes.
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
  backup: ['errors.ts', 'config', 'obs', 'cluster', 'protocol'],
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
const bench = join(repoRoot, 'bench');

/**
 * The public modules of src/, the ones bench/ may use: those directly in a layer's folder
 * (src/proxy/proxy-server.ts, src/config/load.ts …) and src/errors.ts. A subfolder of a layer
 * (src/proxy/backend/, src/proxy/frontend/, src/cli/commands/, src/demo/scenarios/ …) is that
 * layer's inside, and test files and test utilities are nobody's API. bench/ may also use the
 * integration-test harness (test/harness.ts, test/raw-client.ts) to start servers and clients.
 */
function isPublic(file: string): boolean {
  const parts = relative(src, file).split('/');
  if (parts[0] === '..' || parts.length > 2) return false;
  return !/\.test(-util)?\.ts$|\.test-util\.ts$/.test(file);
}
// Test utilities a benchmark may build on: the harness, a raw client, and the hosts as network
// namespaces with their etcd (bench:failover --hosts).
const benchMayUse = new Set([
  'test/harness.ts',
  'test/raw-client.ts',
  'test/netns-hosts.ts',
  'test/netns-etcd-cluster.ts',
  'test/etcd-harness.ts',
]);
/** Benchmarks that time a layer's inside on purpose (white-box), and what they reach. */
const benchWhiteBox: Record<string, string> = {
  // The proxy's hot path without sockets: Session, Pool and ServerConn from dist/, driven directly.
  'bench/hot-path.ts': 'src/proxy/',
  // The hidden-code prefilter against the full parse it saves.
  'bench/hidden-code.ts': 'src/proxy/backend/hidden-code.ts',
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

/** Relative imports of a file; `withTypes`: `import type` too (they vanish at run time). */
function imports(file: string, withTypes = false): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)) {
    const typeOnly = /^\s*import\s+type\s/m.test(m[0]) || /^\s*export\s+type\s/m.test(m[0]);
    if (typeOnly && !withTypes) continue;
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

test('inside the proxy, the backend never imports the frontend', () => {
  const backend = join(src, 'proxy', 'backend');
  const frontend = join(src, 'proxy', 'frontend');
  const bad: string[] = [];
  for (const f of files(backend)) {
    for (const target of imports(f, true)) {
      if (target.startsWith(frontend + '/')) bad.push(`${relative(src, f)} → ${relative(src, target)}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('bench/ uses only the public modules of src/', () => {
  const bad: string[] = [];
  for (const f of files(bench)) {
    const from = relative(repoRoot, f);
    const whiteBox = benchWhiteBox[from];
    for (const target of imports(f, true)) {
      const to = relative(repoRoot, target);
      if (to.startsWith('bench/') || benchMayUse.has(to)) continue;
      if (to.startsWith('src/') && isPublic(target)) continue;
      if (whiteBox !== undefined && to.startsWith(whiteBox)) continue;
      bad.push(`${from} → ${to}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the rules catch what they are for', () => {
  // The scan itself: a public module, an inside one, a test utility.
  assert.equal(isPublic(join(src, 'proxy', 'proxy-server.ts')), true);
  assert.equal(isPublic(join(src, 'errors.ts')), true);
  assert.equal(isPublic(join(src, 'proxy', 'backend', 'pool.ts')), false);
  assert.equal(isPublic(join(src, 'sql', 'arbitraries.test-util.ts')), false);
  assert.equal(isPublic(join(repoRoot, 'test', 'harness.ts')), false);
});

test('no import cycles', () => {
  const graph = new Map([...files(src), ...files(bench)].map((f) => [f, imports(f)]));
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(repoRoot, p)).join(' → '));
      return;
    }
    state.set(f, 'visiting');
    for (const g of graph.get(f) ?? []) visit(g, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  assert.deepEqual(cycles, []);
});

/**
 * The demo's comparisons with other tools (issue #20), without the rest of the demo: on a demo
 * cluster (a primary and two replicas, started as `pgscale demo` starts it), the failover
 * scenario's Patroni + etcd run (its defaults, the same kill -9 under the same load) and the read
 * scenario's HAProxy stage; then `pgscale demo --quick` with the tools left out
 * (PGSCALE_DEMO_WITHOUT) says in one line, on the console and in the report, that each is not
 * installed. Where the tools are missing here the first two are skipped (in CI, a failure: .ci/run
 * installs them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanup } from '../src/demo/cleanup.js';
import { DemoCluster } from '../src/demo/cluster.js';
import { createTables } from '../src/demo/load.js';
import type { Progress } from '../src/demo/progress.js';
import type { ScenarioContext } from '../src/demo/scenario.js';
import { patroniFailover } from '../src/demo/scenarios/failover-patroni.js';
import { patroniRow } from '../src/demo/scenarios/failover.js';
import { measureHaproxy } from '../src/demo/scenarios/reads.js';
import { findTool } from '../src/demo/tools.js';
import { cli, processesMentioning, tempDir } from './harness.js';

const KEYS = 2000;

function missing(t: { skip(msg: string): void }, names: string[]): boolean {
  const absent = names.filter((n) => !findTool(n).path);
  if (absent.length === 0) return false;
  if (process.env.CI) assert.fail(`${absent.join(', ')} not installed (.ci/run installs them)`);
  t.skip(`${absent.join(', ')} not installed`);
  return true;
}

test('the demo compares with Patroni + etcd and with HAProxy where they are installed', async (t) => {
  const tmp = tempDir('pgscale-test-demo-compare-');
  const cleanup = new Cleanup((l) => t.diagnostic(l));
  t.after(async () => {
    await cleanup.run();
    rmSync(tmp, { recursive: true, force: true });
  });
  const cluster = await DemoCluster.create({ dir: tmp, maxConnections: 200, synchronous: 'off' }, cleanup);
  await cluster.start();
  await createTables(cluster.endpoint(), KEYS);
  const notes: string[] = [];
  const progress: Progress = {
    begin: () => undefined,
    update: () => undefined,
    note: (l) => notes.push(l),
    end: () => undefined,
  };
  const capped: string[] = [];
  let writeId = 1;
  const ctx: ScenarioContext = {
    cluster,
    settings: { quick: false, keys: KEYS, nodeCores: null, loadAtStart: 0 },
    progress,
    nextWriteId: (n = 1) => (writeId += n) - n,
    sharded: () => Promise.reject(new Error('not in this test')),
    phase: (_name, fn) => fn(),
    capProcess: (group) => capped.push(group),
  };

  await t.test('Patroni + etcd: the same kill -9 under the same load, Patroni defaults', async (t) => {
    if (missing(t, ['patroni', 'etcd'])) return;
    const tools = { patroni: findTool('patroni').path!, etcd: findTool('etcd').path! };
    const { figures: f, run } = await patroniFailover(ctx, tools, { base: 0, span: 1 });
    t.diagnostic(JSON.stringify({ ...f, errorsByKind: undefined }));
    assert.deepEqual(f.timings, { ttl: 30, loopWait: 10, retryTimeout: 10 });
    assert.match(f.killed, /^patroni\d$/);
    assert.ok(f.primaryAfter, 'a primary afterwards');
    assert.ok(f.writePauseSeconds !== null && f.writePauseSeconds > 0, `pause ${f.writePauseSeconds}`);
    assert.ok(f.acknowledged > 0);
    assert.ok(Number.isInteger(f.lost) && f.lost >= 0 && f.lost <= f.acknowledged);
    assert.equal(f.lost, run.lost.length);
    assert.ok(f.startSeconds > 0);
    // Every member's postmaster went under the nodes' CPU cap.
    assert.deepEqual([...new Set(capped)].sort(), [
      'patroni-patroni0',
      'patroni-patroni1',
      'patroni-patroni2',
    ]);
    // The row beside pgscale's, and nothing left running.
    const row = patroniRow(f);
    assert.equal(row.length, 10);
    assert.match(String(row[0]), /^Patroni \+ etcd \(ttl 30, loop_wait 10, retry_timeout 10\)$/);
    assert.deepEqual(processesMentioning(join(cluster.dir, 'patroni')), []);
  });

  await t.test('HAProxy: the same readers over the primary and both replicas', async (t) => {
    if (missing(t, ['haproxy'])) return;
    const primary = await cluster.primary();
    const nodes = [primary, ...cluster.nodes().filter((n) => n.name !== primary.name)];
    const scans = async () => {
      const out: number[] = [];
      for (const n of nodes) {
        const c = await cluster.superClient(n);
        try {
          const r = await c.query<{ n: string }>(
            "SELECT coalesce(idx_scan, 0)::text AS n FROM pg_stat_user_tables WHERE relname = 'demo_accounts'",
          );
          out.push(Number(r.rows[0]?.n ?? 0));
        } finally {
          await c.end();
        }
      }
      return out;
    };
    const before = await scans();
    const f = await measureHaproxy(ctx, findTool('haproxy').path!, nodes, {
      seconds: 2,
      warmup: 0.5,
      done: 0,
      total: 2.5,
    });
    t.diagnostic(JSON.stringify(f));
    assert.equal(f.label, 'HAProxy + 2 replicas');
    assert.equal(f.nodes, 3);
    assert.ok(f.readsPerSecond > 0);
    assert.ok(f.p50Ms > 0 && f.p99Ms >= f.p50Ms, JSON.stringify(f));
    assert.equal(f.errors, 0);
    // Round-robin: every node served some of the reads (statistics reach the view within a second).
    await new Promise((r) => setTimeout(r, 1500));
    const after = await scans();
    assert.ok(
      after.every((a, i) => a > before[i]!),
      `index scans per node before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`,
    );
  });
});

test('pgscale demo --quick without Patroni, etcd and HAProxy says so in one line each', async (t) => {
  const tmp = tempDir('pgscale-test-demo-without-');
  const work = tempDir('pgscale-test-demo-without-cwd-');
  t.after(() => {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  const r = await cli(
    ['demo', '--quick', '--only', 'read-scaling,failover', '--tmp-dir', tmp],
    { PGSCALE_DEMO_WITHOUT: 'patroni,etcd,haproxy' },
    work,
  );
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  const haproxyLine = /HAProxy is not installed on this machine .*not measured here\./;
  const patroniLine = /patroni and etcd are not installed on this machine .*not measured here\./;
  assert.match(r.stdout, haproxyLine);
  assert.match(r.stdout, patroniLine);
  const results = JSON.parse(readFileSync(join(work, 'pgscale-report', 'results.json'), 'utf8')) as {
    scenarios: { id: string; status: string; notes?: string[]; figures?: Record<string, unknown> }[];
  };
  const byId = new Map(results.scenarios.map((s) => [s.id, s]));
  const reads = byId.get('read-scaling')!;
  assert.equal(reads.status, 'ok');
  assert.equal(reads.figures!.haproxy, null);
  assert.equal(reads.notes!.filter((n) => haproxyLine.test(n)).length, 1);
  const failover = byId.get('failover')!;
  if (failover.status === 'skipped') return; // a build without HA
  assert.equal(failover.status, 'ok');
  assert.equal(failover.figures!.patroni, null);
  assert.equal(failover.notes!.filter((n) => patroniLine.test(n)).length, 1);
  const html = readFileSync(join(work, 'pgscale-report', 'index.html'), 'utf8');
  assert.match(html, /HAProxy is not installed on this machine/);
  assert.match(html, /patroni and etcd are not installed on this machine/);
});

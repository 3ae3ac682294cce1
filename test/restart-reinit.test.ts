/**
 * Settings that need a restart, and broken standbys, as an operator meets them: a restart-only
 * parameter reloaded is shown as pending restart (status, its JSON, GET /status), and
 * `pgscale restart --pending` applies it as a rolling restart — standbys first, then a
 * switchover — while a client writes through the proxy: no acknowledged commit is lost and no
 * write fails. `pgscale reinit` brings a standby whose data directory was damaged back
 * streaming; the primary is refused. The history keeps every step.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, cli, makeCluster, scalarOn, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';
import type { Secrets } from '../src/cluster/secrets.js';
import { runningPid } from '../src/cluster/instance.js';
import type { NodeRef } from '../src/config/load.js';
import type { StatusReport } from '../src/web/status-report.js';

const bins = binarySets()[0]!;

/** A client inserting numbered rows through the proxy until stopped; what it was told, kept. */
class Writer {
  readonly acked: number[] = [];
  readonly errors: string[] = [];
  private longestGapMs = 0;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();

  constructor(private readonly connect: () => pg.Client) {}

  start(): void {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    let c: pg.Client | null = null;
    let last = Date.now();
    for (let id = 1; !this.stopped; id++) {
      try {
        if (!c) {
          c = this.connect();
          c.on('error', () => undefined);
          await c.connect();
        }
        await c.query('INSERT INTO t (id) VALUES ($1)', [id]);
        this.acked.push(id);
        this.longestGapMs = Math.max(this.longestGapMs, Date.now() - last);
        last = Date.now();
      } catch (e) {
        this.errors.push(`${id}: ${(e as Error).message}`);
        await c?.end().catch(() => undefined);
        c = null;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await c?.end().catch(() => undefined);
  }

  async stop(): Promise<number> {
    this.stopped = true;
    await this.done;
    return this.longestGapMs;
  }
}

describe('pending restart, rolling restart and reinit', () => {
  let tc: TestCluster;
  let secrets: Secrets;
  let nodes: NodeRef[];

  const onNode = (n: NodeRef, sql: string) => scalarOn(tc, n, sql, 'app');
  const app = () =>
    new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'app',
      password: secrets.app,
      database: 'app',
    });
  const status = async (): Promise<StatusReport> => {
    const r = await cli(['status', '-c', tc.file, '--json'], tc.env);
    return JSON.parse(r.stdout) as StatusReport;
  };

  before(async () => {
    tc = await makeCluster(bins, { replicas: 1 });
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    secrets = readSecrets(tc.cluster.dataDir)!;
    nodes = tc.cluster.nodes();
    const c = app();
    await c.connect();
    await c.query('CREATE TABLE t (id int PRIMARY KEY)');
    await c.end();
  });
  after(async () => {
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  test('a restart-only parameter is pending restart in status, its JSON and GET /status', async () => {
    const text = readFileSync(tc.file, 'utf8');
    writeFileSync(tc.file, text.replace('  parameters: {}', '  parameters: { max_connections: 150 }'));
    const r = await cli(['reload', '-c', tc.file], tc.env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /pending restart \(`pgscale restart --pending` applies them, one node at a time\):\n {2}s0n0: max_connections\n {2}s0n1: max_connections/,
    );
    const s = await status();
    assert.deepEqual(
      s.nodes.map((n) => [n.name, n.pendingRestart]),
      [
        ['s0n0', ['max_connections']],
        ['s0n1', ['max_connections']],
      ],
    );
    const table = await cli(['status', '-c', tc.file], tc.env);
    assert.match(table.stdout, /PENDING RESTART/);
    assert.match(table.stdout, /s0n1 .*\* max_connections/);
    const http = tc.cluster.config.http;
    const api = (await (await fetch(`http://${http.listen}:${http.port}/status`)).json()) as StatusReport;
    assert.deepEqual(api.nodes.find((n) => n.name === 's0n0')?.pendingRestart, ['max_connections']);
    assert.deepEqual(await Promise.all(nodes.map((n) => onNode(n, 'SHOW max_connections'))), ['100', '100']);
  });

  test('restart --pending: standby, switchover, former primary; writes go on, no commit lost', async () => {
    const w = new Writer(app);
    w.start();
    await until('a few writes', () => Promise.resolve(w.acked.length > 20), 30_000);
    const r = await cli(['restart', '-c', tc.file, '--pending'], tc.env);
    const before = w.acked.length;
    await until('writes after the restart', () => Promise.resolve(w.acked.length > before + 20), 30_000);
    const gap = await w.stop();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /restarted standby s0n1 \(pending: max_connections\); it streams again\nswitched over group 0 from s0n0 to s0n1\ns0n0 restarted as a standby of s0n1; it streams again/,
    );
    assert.deepEqual(w.errors, [], 'a write failed during the rolling restart');
    const c = app();
    await c.connect();
    const rows = new Set((await c.query<{ id: number }>('SELECT id FROM t')).rows.map((x) => x.id));
    await c.end();
    assert.deepEqual(
      w.acked.filter((id) => !rows.has(id)),
      [],
      'acknowledged commits lost',
    );
    const s = await status();
    assert.deepEqual(
      s.nodes.map((n) => [n.name, n.role, n.pendingRestart]),
      [
        ['s0n0', 'replica', []],
        ['s0n1', 'primary', []],
      ],
    );
    assert.deepEqual(await Promise.all(nodes.map((n) => onNode(n, 'SHOW max_connections'))), ['150', '150']);
    // For people: how long writes waited at most (a switchover pause); bench/ measures it.
    process.stdout.write(`# longest wait between two acknowledged writes: ${gap} ms\n`);
  });

  test('restart --pending with nothing pending restarts nothing', async () => {
    const r = await cli(['restart', '-c', tc.file, '--pending'], tc.env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /no node has a setting pending restart/);
  });

  test('reinit brings a standby whose data directory was damaged back streaming', async () => {
    // Paused: high availability must not repair it first (reinit is what is tested).
    assert.equal((await cli(['pause-ha', '-c', tc.file], tc.env)).code, 0);
    try {
      const s0n0 = nodes[0]!;
      const pgdata = tc.cluster.paths(s0n0.name).pgdata;
      process.kill(runningPid(pgdata)!, 'SIGKILL');
      rmSync(join(pgdata, 'global', 'pg_control'));
      rmSync(join(pgdata, 'base'), { recursive: true, force: true });
      await until('s0n0 down', async () => (await status()).nodes[0]!.state !== 'running', 30_000);
      const r = await cli(['reinit', '-c', tc.file, 's0n0'], tc.env);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /rebuilt s0n0: cloned from s0n1 in [\d.]+ s; it streams again/);
      const s = (await status()).nodes.find((n) => n.name === 's0n0')!;
      assert.deepEqual([s.state, s.role, s.streaming], ['running', 'replica', true]);
      const primaryCount = await onNode(nodes[1]!, 'SELECT count(*) FROM t');
      await until(
        's0n0 has every row',
        async () => (await onNode(s0n0, 'SELECT count(*) FROM t')) === primaryCount,
        30_000,
      );
    } finally {
      await cli(['resume-ha', '-c', tc.file], tc.env);
    }
  });

  test('bad input: reinit of the primary, unknown nodes, NODE with --pending', async () => {
    const primary = await cli(['reinit', '-c', tc.file, 's0n1'], tc.env);
    assert.equal(primary.code, 1, primary.stdout + primary.stderr);
    assert.match(primary.stdout, /reinit not done: s0n1 is the primary of group 0: .*switch over first/);
    for (const cmd of ['reinit', 'restart']) {
      const r = await cli([cmd, '-c', tc.file, 'nosuch'], tc.env);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /no node named "nosuch" in .*pgscale\.yaml/);
    }
    const both = await cli(['restart', '-c', tc.file, 's0n0', '--pending'], tc.env);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /name a node or --pending, not both/);
    const missing = await cli(['reinit', '-c', tc.file], tc.env);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /name the standby to rebuild/);
  });

  test('history shows the pending restart, the restarts and the reinit', async () => {
    const r = await cli(['history', '-c', tc.file, '--json'], tc.env);
    assert.equal(r.code, 0, r.stderr);
    const events = (JSON.parse(r.stdout) as { event: string; node?: string }[]).map(
      (e) => `${e.event}:${e.node ?? ''}`,
    );
    for (const e of [
      'config_reloaded:',
      'pending_restart:s0n0',
      'restarted:s0n1',
      'switchover_done:s0n1',
      'restarted:s0n0',
      'reinit:s0n0',
    ])
      assert.ok(events.includes(e), `${e} not in ${events.join(' ')}`);
  });
});

describe('restart of a group without a standby', () => {
  let tc: TestCluster;
  before(async () => {
    tc = await makeCluster(bins, { replicas: 0 });
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
  });
  after(async () => {
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  test('the primary restarts in place, with a warning that writes stop meanwhile', async () => {
    const pgdata = tc.cluster.paths('s0n0').pgdata;
    const pid = runningPid(pgdata);
    const r = await cli(['restart', '-c', tc.file], tc.env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /restarted primary s0n0 in place \(requested\)/);
    assert.match(
      r.stdout,
      /warning: group 0 has no streaming standby to switch over to: its primary s0n0 restarts in place and writes stop until it is back/,
    );
    assert.notEqual(runningPid(pgdata), pid);
    const s = JSON.parse((await cli(['status', '-c', tc.file, '--json'], tc.env)).stdout) as StatusReport;
    assert.deepEqual([s.nodes[0]!.state, s.nodes[0]!.role], ['running', 'primary']);
  });
});

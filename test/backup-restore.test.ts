/**
 * Scheduled backups and point-in-time recovery with pgBackRest: the controller takes the first
 * full backup on its own (backup.schedule; it is in `pgscale history`), then an incremental
 * backup is taken on the standby; rows are written in batches around a recorded time (with a gap
 * of a second on each side) and a recorded WAL position; `pgscale restore --into` a new directory
 * at that time gives a data directory that starts with the printed command and holds every row
 * committed before the time and none after; `restore --in-place` at the position replaces the
 * group's data (its standby cloned again), and `pgscale up` runs the cluster on it with every row
 * before the position and none after, the standby streaming and new WAL archived again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { run as runAsService } from '../src/cluster/run-as.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { cli, until } from './harness.js';
import type { TestCluster } from './harness.js';
import {
  primaryNode,
  skipReason,
  sleep,
  superClient,
  switchAndArchive,
  upBackupCluster,
} from './backup-support.js';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function ids(c: pg.Client): Promise<number[]> {
  return (await c.query<{ id: number }>('SELECT id FROM t ORDER BY id')).rows.map((r) => r.id);
}

describe('point-in-time recovery with pgBackRest', { skip: skipReason }, () => {
  let tc: TestCluster;
  let primary: pg.Client;
  let time: string;
  let lsn: string;
  const run = (...args: string[]) => cli([...args, '-c', tc.file], tc.env);
  const insert = (from: number, to: number) =>
    primary.query('INSERT INTO t SELECT generate_series($1::int, $2::int)', [from, to]);

  before(async () => {
    // The controller's schedule takes the first full backup at once (there is none yet).
    tc = await upBackupCluster('  schedule:\n    full: every 7d\n');
    primary = await superClient(tc, primaryNode(tc));
    await primary.query('CREATE TABLE t (id int PRIMARY KEY)');
    await until(
      'the scheduled full backup',
      async () => {
        const l = await run('backups', '--json');
        const g = (JSON.parse(l.stdout) as { groups: { backups: { type: string }[] }[] }).groups[0]!;
        return g.backups.length === 1 && g.backups[0]!.type === 'full';
      },
      120_000,
    );
    const history = await run('history', '--json');
    const events = JSON.parse(history.stdout) as { event: string; detail?: string }[];
    assert.ok(
      events.some(
        (e) => e.event === 'backup' && /^full backup \S+F from .* \(scheduled\)$/.test(e.detail ?? ''),
      ),
      history.stdout,
    );
    await insert(1, 100);
    const b = await run('backup', '--type', 'incr', '--json');
    assert.equal(b.code, 0, b.stderr + b.stdout);
    assert.equal((JSON.parse(b.stdout) as { backups: { from: string }[] }).backups[0]!.from, 's0n1');
    // Replayed from the archive after the backup: before the time, then after it.
    await insert(101, 200);
    await sleep(1100);
    time = new Date().toISOString();
    await sleep(1100);
    await insert(201, 300);
    await insert(301, 400);
    lsn = (await primary.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
    await insert(401, 500);
    await switchAndArchive(primary);
  });
  after(async () => {
    await primary?.end().catch(() => undefined);
    await tc?.cleanup();
  });

  test('restore --into a new directory at a time: every row before it, none after, started as printed', async () => {
    const dir = join(tc.dir, 'copy');
    const r = await run('restore', '--to', time, '--into', dir);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const port = Number(/\(port (\d+), archiving off\)/.exec(r.stdout)?.[1]);
    const start = /start it with:\n\s+(.+)\n/.exec(r.stdout)?.[1];
    assert.ok(port > 0 && start, r.stdout);
    try {
      const started = spawnSync('/bin/sh', ['-c', start], { encoding: 'utf8', cwd: '/' });
      assert.equal(started.status, 0, started.stderr + started.stdout);
      const c = new pg.Client({
        host: '127.0.0.1',
        port,
        user: 'postgres',
        password: readSecrets(tc.cluster.dataDir)!.superuser,
        database: 'app',
      });
      c.on('error', () => undefined);
      await until('the copy accepting connections', async () => (await c.connect(), true), 60_000);
      try {
        await until(
          'the copy promoted',
          async () => !(await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r,
          60_000,
        );
        assert.deepEqual(await ids(c), range(1, 200));
        const archiving = await c.query<{ setting: string }>(
          "SELECT setting FROM pg_settings WHERE name = 'archive_mode'",
        );
        assert.equal(archiving.rows[0]!.setting, 'off');
      } finally {
        await c.end().catch(() => undefined);
      }
    } finally {
      await runAsService(tc.bins.pgCtl, ['stop', '-D', dir, '-m', 'immediate'], { allowFail: true });
      rmSync(dir, { recursive: true, force: true });
    }
    // The cluster itself is untouched.
    assert.deepEqual(await ids(primary), range(1, 500));
  });

  test('restore --in-place at a WAL position, then up: rows up to it, the standby rebuilt and streaming', async () => {
    await primary.end();
    const r = await run('restore', '--to', lsn, '--in-place', '--yes');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /stopping the controller/);
    assert.match(
      r.stdout,
      /restored group 0 in place from backup \S+: s0n0 is its primary, s0n1 cloned again from it/,
    );
    const up = await run('up', '--detach');
    assert.equal(up.code, 0, up.stderr + up.stdout);
    primary = await superClient(tc, primaryNode(tc));
    assert.deepEqual(await ids(primary), range(1, 400));
    const standby = await superClient(
      tc,
      tc.cluster.nodes().find((n) => n.name === 's0n1')!,
    );
    try {
      await insert(1001, 1001);
      await until(
        'the standby replaying new writes',
        async () => (await ids(standby)).includes(1001),
        30_000,
      );
    } finally {
      await standby.end();
    }
    // The new timeline is archived into the same repository, and status is all good.
    await switchAndArchive(primary);
    const st = await run('status');
    assert.equal(st.code, 0, st.stdout + st.stderr);
    assert.doesNotMatch(st.stdout, /FAILING/);
  });
});

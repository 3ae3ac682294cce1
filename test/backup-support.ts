/**
 * What the backup tests share: a cluster with backup.enabled under `pgscale up --detach`, the
 * PostgreSQL build pgBackRest supports here (or why the tests are skipped), a superuser client on
 * a node, and waiting until the current WAL segment is archived.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { findPgbackrest, supportsMajor } from '../src/cluster/pgbackrest.js';
import { readSecrets } from '../src/cluster/secrets.js';
import type { NodeRef } from '../src/config/load.js';
import { binarySets, cli, makeCluster, until } from './harness.js';
import type { TestCluster } from './harness.js';

const pgbackrest = findPgbackrest();
/** The first PostgreSQL build pgBackRest can back up (pgBackRest 2.45 stops at PostgreSQL 15). */
export const backupBins = pgbackrest
  ? binarySets().find((b) => supportsMajor(pgbackrest, b.major))
  : undefined;
export const skipReason = !pgbackrest
  ? 'pgbackrest is not installed (.ci/run installs it)'
  : !backupBins
    ? `pgBackRest ${pgbackrest.version} supports none of the PostgreSQL builds here`
    : false;

export async function upBackupCluster(extra = ''): Promise<TestCluster> {
  const tc = await makeCluster(backupBins!, {
    replicas: 1,
    extra: (y) => `${y}\nbackup:\n  enabled: true\n${extra}`,
  });
  const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
  assert.equal(up.code, 0, up.stderr + up.stdout);
  return tc;
}

export async function superClient(
  tc: TestCluster,
  n: { port: number },
  database = 'app',
): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: n.port,
    user: 'postgres',
    password: readSecrets(tc.cluster.dataDir)!.superuser,
    database,
  });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Switches to a new WAL segment and waits until the finished one is in the archive. */
export async function switchAndArchive(c: pg.Client): Promise<void> {
  const wal = (await c.query<{ w: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS w')).rows[0]!.w;
  await until(
    `${wal} archived`,
    async () =>
      ((await c.query<{ l: string | null }>('SELECT last_archived_wal AS l FROM pg_stat_archiver')).rows[0]
        ?.l ?? '') >= wal,
    60_000,
  );
}

export function primaryNode(tc: TestCluster): NodeRef {
  return tc.cluster.nodes().find((n) => n.name === 's0n0')!;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

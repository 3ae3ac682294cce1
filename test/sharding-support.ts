/**
 * Shared set-up of the sharding integration tests: a `pgscale up` cluster with several groups,
 * node-postgres clients through the proxy (as the app role) and directly to each group's primary
 * (as the superuser), and where PostgreSQL placed each row of a distributed table (its partition
 * `<table>_<shard>` by `tableoid`, group by group).
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { cli, makeCluster, until } from './harness.js';
import type { TestCluster } from './harness.js';
import type { InitOptions } from '../src/config/template.js';
import { readSecrets } from '../src/cluster/secrets.js';
import type { PgBinaries } from '../src/cluster/binaries.js';

export interface ShardedCluster {
  tc: TestCluster;
  /** The app role's connection settings through the proxy. */
  app: { host: string; port: number; user: string; password: string; database: string };
  superPassword: string;
  /** A new connected client through the proxy, as the app role. */
  connectApp(extra?: Partial<pg.ClientConfig>): Promise<pg.Client>;
  /** A new connected client to the current primary of `group`, as the superuser, database app. */
  connectGroup(group: number, port?: number): Promise<pg.Client>;
  /** The port of a node of `group` (its first node: the primary when nothing failed over). */
  portOf(group: number): number;
  down(): Promise<void>;
}

export async function upSharded(
  bins: PgBinaries,
  opts: Partial<InitOptions> & { extra?: (yaml: string) => string },
): Promise<ShardedCluster> {
  const tc = await makeCluster(bins, opts);
  const down = async () => {
    await cli(['down', '-c', tc.file], tc.env).catch(() => undefined);
    await tc.cleanup();
  };
  try {
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
  } catch (e) {
    await down();
    throw e;
  }
  const secrets = readSecrets(tc.cluster.dataDir)!;
  const app = {
    host: '127.0.0.1',
    port: tc.cluster.config.proxy.port,
    user: 'app',
    password: secrets.app,
    database: 'app',
  };
  const connectApp = (extra: Partial<pg.ClientConfig> = {}) =>
    until(
      'the proxy to accept app',
      async () => {
        const c = new pg.Client({ ...app, ...extra });
        c.on('error', () => undefined);
        try {
          await c.connect();
          return c;
        } catch {
          await c.end().catch(() => undefined);
          return null;
        }
      },
      60_000,
    );
  const portOf = (g: number) => tc.cluster.nodes().find((n) => n.group === g)!.port;
  const connectGroup = async (g: number, port = portOf(g)) => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: tc.cluster.config.postgres.superuser,
      password: secrets.superuser,
      database: 'app',
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  return { tc, app, superPassword: secrets.superuser, connectApp, connectGroup, portOf, down };
}

/** Key → the group and shard (partition `<table>_<shard>`) PostgreSQL stored it in. */
export async function placement(
  direct: pg.Client[],
  table: string,
  column: string,
): Promise<Map<string, { group: number; shard: number }>> {
  const out = new Map<string, { group: number; shard: number }>();
  for (let g = 0; g < direct.length; g++) {
    const r = await direct[g]!.query<{ k: string; part: string }>(
      `SELECT ${column}::text AS k, tableoid::regclass::text AS part FROM ${table}`,
    );
    for (const row of r.rows) {
      const m = /_(\d+)$/.exec(row.part);
      assert.ok(m, `row ${row.k} of ${table} is in ${row.part}, not in a shard partition`);
      assert.ok(!out.has(row.k), `key ${row.k} on two groups`);
      out.set(row.k, { group: g, shard: Number(m[1]) });
    }
  }
  return out;
}

/** Shard id → group, from the partitions `<table>_<shard>` each group's primary holds. */
export async function shardGroups(direct: pg.Client[], table: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (let g = 0; g < direct.length; g++) {
    const r = await direct[g]!.query<{ name: string }>(
      'SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass',
      [table],
    );
    for (const { name } of r.rows) {
      const shard = Number(/_(\d+)$/.exec(name)![1]);
      assert.ok(!out.has(shard), `shard ${shard} of ${table} on two groups`);
      out.set(shard, g);
    }
  }
  return out;
}

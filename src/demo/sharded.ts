/**
 * What the sharding scenarios do to their cluster (groups of one primary each), through
 * pgscale's public surface only: `pgscale add-group` until the cluster has the groups a stage
 * needs; tables distributed with Citus's `create_distributed_table` through the proxy, each in a
 * colocation of its own so that its shards are placed round robin over the groups there are when
 * it is created (8 shards: an even share on 1, 2 or 4 groups); and, directly on each group's
 * primary, which rows it holds — each group's share of the writes, and every id present (to
 * check that no acknowledged write was lost while shards moved).
 */
import pg from 'pg';
import { hashRemainder } from '../sharding/hash.js';
import { pgscaleCli } from './cluster.js';
import type { DemoCluster } from './cluster.js';

export const SHARDS = 8;

/** Runs SQL through the proxy as the application user. */
export async function appQuery<R extends pg.QueryResultRow>(
  cluster: DemoCluster,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  const c = new pg.Client(cluster.endpoint());
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<R>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** Adds groups of one primary (`pgscale add-group --standbys 0`) until there are `n`. */
export async function ensureGroups(cluster: DemoCluster, n: number): Promise<void> {
  while (cluster.groupCount() < n) {
    const r = await pgscaleCli(['add-group', '-c', cluster.file, '--standbys', '0']);
    cluster.reload();
    if (r.code !== 0) throw new Error(`pgscale add-group exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  }
}

/**
 * Creates `table` (id bigint primary key, client, v) — filled with `rows` rows first when asked,
 * which create_distributed_table then moves onto their groups — and distributes it by id.
 */
export async function distribute(
  cluster: DemoCluster,
  table: string,
  rows = 0,
  shards = SHARDS,
): Promise<void> {
  await appQuery(cluster, `DROP TABLE IF EXISTS ${table}`);
  await appQuery(
    cluster,
    `CREATE TABLE ${table} (id bigint PRIMARY KEY, client int NOT NULL, v int NOT NULL DEFAULT 0, at timestamptz NOT NULL DEFAULT now())`,
  );
  if (rows > 0)
    await appQuery(
      cluster,
      `INSERT INTO ${table} (id, client, v) SELECT g, g % 64, g % 1000 FROM generate_series(1, $1::int) g`,
      [rows],
    );
  await appQuery(
    cluster,
    `SELECT create_distributed_table('${table}', 'id', colocate_with => 'none', shard_count => ${shards})`,
  );
}

/** The primary of each group, in group order (the groups have one node each). */
function primaries(cluster: DemoCluster): { group: number; host: string; port: number }[] {
  const out: { group: number; host: string; port: number }[] = [];
  for (const n of cluster.nodes()) if (n.index === 0) out[n.group] = n;
  return out;
}

/** Rows of `table` each group's primary holds, in group order. */
export async function rowsPerGroup(cluster: DemoCluster, table: string): Promise<number[]> {
  const out: number[] = [];
  for (const p of primaries(cluster)) {
    const c = await cluster.superClient(p);
    try {
      out.push((await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n);
    } finally {
      await c.end();
    }
  }
  return out;
}

/** Every id of `table` over all groups, and how many ids were found on more than one. */
export async function idsOnGroups(
  cluster: DemoCluster,
  table: string,
): Promise<{ ids: Set<number>; duplicates: number }> {
  const ids = new Set<number>();
  let duplicates = 0;
  for (const p of primaries(cluster)) {
    const c = await cluster.superClient(p);
    try {
      const r = await c.query<{ id: string }>(`SELECT id::text AS id FROM ${table}`);
      for (const { id } of r.rows) {
        const n = Number(id);
        if (ids.has(n)) duplicates++;
        ids.add(n);
      }
    } finally {
      await c.end();
    }
  }
  return { ids, duplicates };
}

/** The shard (0 … shards-1) of a bigint key, computed as PostgreSQL's hash partitioning does. */
export function shardOf(id: number, shards = SHARDS): number {
  return hashRemainder('int8', { format: 'text', text: String(id) }, shards);
}

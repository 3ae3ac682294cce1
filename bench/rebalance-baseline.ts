/**
 * The copy-rate baseline of `npm run bench:rebalance`: `pg_dump -t <shard> … | psql` of shard
 * tables from one group's primary into a scratch database on another's, on the same machine,
 * with the pg_dump and psql of the PostgreSQL build the cluster runs. The scratch database holds
 * the distributed table's parent (same columns, partitioned the same way, no key), so the dump's
 * `ATTACH PARTITION` runs as it would on a real group; only its attachment of each shard's
 * primary key index to the parent's fails (the parent has none), which is expected and checked.
 * It is dropped at the end. The password goes in the children's environment, never on a command line.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { onCleanup } from './cleanup.js';
import type { GroupPrimary, WritesCluster } from './writes-cluster.js';

const SCRATCH_DB = 'bench_rebalance_dump';

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs `pg_dump -t t1 -t t2 … | psql` from `from` into SCRATCH_DB on `to`; resolves with the seconds it took. */
async function dumpRestore(
  c: WritesCluster,
  from: GroupPrimary,
  to: GroupPrimary,
  tables: string[],
): Promise<number> {
  const psql = join(c.bins.dir, 'psql');
  const pgDump = join(c.bins.dir, 'pg_dump');
  const cmd = [
    `${sh(pgDump)} -h 127.0.0.1 -p ${from.port} -U ${sh(c.superuser.user)} -d ${sh(c.app.database)}`,
    '--no-owner --no-privileges',
    ...tables.map((t) => `-t ${sh(t)}`),
    `| ${sh(psql)} -X -q -h 127.0.0.1 -p ${to.port} -U ${sh(c.superuser.user)} -d ${SCRATCH_DB}`,
  ].join(' ');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.PGPASSWORD = c.superuser.password;
  const t0 = performance.now();
  const child = spawn('bash', ['-o', 'pipefail', '-c', cmd], {
    env,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const kill = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  const forget = onCleanup('pg_dump | psql', () => Promise.resolve(kill()), kill);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? -1));
  }).finally(forget);
  const seconds = (performance.now() - t0) / 1000;
  // The one expected error: the dump attaches each shard's primary key index to the parent's,
  // which the scratch parent has not (with it, ATTACH PARTITION would make a second key).
  const unexpected = stderr
    .split('\n')
    .filter((l) => /ERROR|FATAL/.test(l) && !/relation "public\.users_pkey" does not exist/.test(l));
  if (code !== 0 || unexpected.length > 0)
    throw new Error(`pg_dump | psql failed (exit ${code}): ${stderr.trim()}`);
  return seconds;
}

/**
 * Copies `tables[g]` (schema-qualified shard names) from group g's primary, g = 0 and 1, into a
 * scratch database on group 2's; resolves with the seconds the two pipelines took, or null when
 * the build has no pg_dump and psql of its own (the embedded one: an older pg_dump refuses a
 * newer server).
 */
export async function baseline(c: WritesCluster, tables: string[][]): Promise<number | null> {
  if (!existsSync(join(c.bins.dir, 'pg_dump')) || !existsSync(join(c.bins.dir, 'psql'))) return null;
  const onGroup2 = async (database: string, sql: string) => {
    const s = new pg.Client({
      host: '127.0.0.1',
      port: c.primaries[2]!.port,
      user: c.superuser.user,
      password: c.superuser.password,
      database,
    });
    s.on('error', () => undefined);
    try {
      await s.connect();
      return await s.query<{ n: string }>(sql);
    } finally {
      await s.end().catch(() => undefined);
    }
  };
  await onGroup2(c.app.database, `CREATE DATABASE ${SCRATCH_DB}`);
  try {
    await onGroup2(
      SCRATCH_DB,
      'CREATE TABLE users (user_id bigint NOT NULL, v bigint NOT NULL DEFAULT 0, payload text NOT NULL) PARTITION BY HASH (user_id)',
    );
    let seconds = 0;
    for (const g of [0, 1]) seconds += await dumpRestore(c, c.primaries[g]!, c.primaries[2]!, tables[g]!);
    const n = await onGroup2(SCRATCH_DB, 'SELECT count(*)::text AS n FROM users');
    if (Number(n.rows[0]!.n) === 0) throw new Error('pg_dump | psql copied no row');
    return seconds;
  } finally {
    await onGroup2(c.app.database, `DROP DATABASE IF EXISTS ${SCRATCH_DB}`);
    await onGroup2(c.app.database, 'CHECKPOINT');
  }
}

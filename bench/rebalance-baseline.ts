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
import { dirname, join } from 'node:path';
import { onCleanup } from './cleanup.js';
import type { GroupPrimary, WritesCluster } from './writes-cluster.js';

export const SCRATCH_DB = 'bench_rebalance_dump';

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs `pg_dump -t t1 -t t2 … | psql` from `from` into SCRATCH_DB on `to`; resolves with the seconds it took. */
export async function dumpRestore(
  c: WritesCluster,
  from: GroupPrimary,
  to: GroupPrimary,
  tables: string[],
): Promise<number> {
  const psql = c.bins.psql ?? join(c.bins.dir, 'psql');
  const pgDump = join(dirname(psql), 'pg_dump');
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

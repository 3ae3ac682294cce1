/**
 * bench:shard-cpu's floor (issue #15): what sharding costs at least in Node.js, measured beside
 * pgscale in the same cluster and the same way. Two bench/min-pooler.mjs processes, the minimal
 * Node.js transaction pooler of bench:proxy: one unsharded (one pool to group 0's `plain`
 * database), one sharded (one pool per group to `app`, each transaction sent to the group of its
 * key by bench/min-shard-route.mjs: the key found in the text or the Bind's parameter, hashed
 * with src/sharding/hash.ts, the shard's group from the map read here from the groups' own
 * partitions). The difference of their CPU per statement is the floor of pgscale's.
 */
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { repoRoot } from '../test/harness.js';
import { cleanEnv } from '../src/cluster/run-as.js';
import { freePort, startDaemon, waitAccepting } from './process.js';
import type { Daemon, Login } from './process.js';
import type { WritesCluster } from './writes-cluster.js';

export interface FloorSide {
  login: Login;
  pid: number;
}

export interface Floor {
  sharded: FloorSide;
  unsharded: FloorSide;
  /** The group index (position in the cluster's primaries) of each shard remainder. */
  placement: number[];
  stop(): Promise<void>;
}

/**
 * The group of each remainder of `table`'s hash partitions, from the partitions each group's
 * primary holds (`FOR VALUES WITH (modulus M, remainder R)`).
 */
export async function partitionPlacement(c: WritesCluster, table: string): Promise<number[]> {
  const placement: number[] = [];
  for (const [g, p] of c.primaries.entries()) {
    const s = await c.superClient(p);
    try {
      const r = await s.query<{ bound: string }>(
        `SELECT pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
        [table],
      );
      for (const { bound } of r.rows) {
        const m = /modulus (\d+), remainder (\d+)/.exec(bound);
        if (m === null) throw new Error(`${table}: not a hash partition bound: ${bound}`);
        placement.length = Number(m[1]);
        placement[Number(m[2])] = g;
      }
    } finally {
      await s.end();
    }
  }
  for (let r = 0; r < placement.length; r++)
    if (placement[r] === undefined) throw new Error(`${table}: no group holds remainder ${r}`);
  if (placement.length === 0) throw new Error(`${table}: no hash partitions on any group`);
  return placement;
}

async function startOne(
  name: string,
  dir: string,
  target: Login,
  poolSize: number,
  shards: object | null,
): Promise<{ daemon: Daemon; side: FloorSide }> {
  const port = await freePort();
  const daemon = startDaemon({
    name,
    file: process.execPath,
    args: [
      join(repoRoot, 'bench', 'min-pooler.mjs'),
      String(port),
      target.host,
      String(target.port),
      String(poolSize),
      target.user,
      target.database,
    ],
    cwd: dir,
    // The password through the environment, never the command line (ps).
    env: {
      ...cleanEnv(),
      PGPASSWORD: target.password,
      ...(shards ? { MIN_POOLER_SHARDS: JSON.stringify(shards) } : {}),
    },
    logFile: join(dir, `${name}.log`),
  });
  const login = { ...target, host: '127.0.0.1', port };
  try {
    await waitAccepting(login, daemon);
  } catch (e) {
    await daemon.stop();
    throw new Error(`${name}: ${e instanceof Error ? e.message : String(e)}\n${daemon.logTail()}`);
  }
  return { daemon, side: { login, pid: daemon.pid } };
}

/**
 * The two min-poolers: `plain` (the unsharded database on group 0) through one pool, and the
 * cluster's application database through one pool per group, routed by `key` (a bigint column).
 */
export async function startFloor(
  c: WritesCluster,
  plain: Login,
  o: { poolSize: number; table: string; key: string },
): Promise<Floor> {
  const placement = await partitionPlacement(c, o.table);
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-bench-floor-'));
  const direct = (p: { port: number }, database: string): Login => ({
    host: '127.0.0.1',
    port: p.port,
    user: c.app.user,
    password: c.app.password,
    database,
  });
  const started: Daemon[] = [];
  const stop = async () => {
    for (const d of started) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const g0 = c.primaries[0]!;
    const u = await startOne('min-pooler', dir, direct(g0, plain.database), o.poolSize, null);
    started.push(u.daemon);
    const s = await startOne('min-pooler-sharded', dir, direct(g0, c.app.database), o.poolSize, {
      ports: c.primaries.map((p) => p.port),
      key: o.key,
      shardCount: placement.length,
      placement,
    });
    started.push(s.daemon);
    return { sharded: s.side, unsharded: u.side, placement, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

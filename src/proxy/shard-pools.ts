/**
 * What a session of a sharded database gets from the proxy besides its own pool: its
 * SessionSharding (where a statement's shards are, the Citus API and the host, each group's
 * primary pool for this user) and, in transaction pooling, read scaling on the other groups
 * (their read routers and commit horizons). Every group pool is made on first use and follows its
 * group's primary through the topology, as the database's own pool does.
 */
import type { Pool } from './backend/pool.js';
import type { SessionSearchPath } from '../sharding/search-path.js';
import type { DatabaseTarget } from './database-target.js';
import type { LoginRequest } from './frontend/client-conn.js';
import type { ReplicaSets } from './replica-sets.js';
import type { GroupReads } from './session/context.js';
import type { SessionSharding } from './session/shard-target.js';
import type { ShardingHost } from './sharding.js';

/** What it needs of the proxy server. */
export interface ShardPoolsHost {
  readonly replicaSets: ReplicaSets;
  readonly holdOnUnreachableMs: number;
  /** Read/write splitting is on and the statement analysis is loaded. */
  readonly readScaling: boolean;
  poolFor(database: string, t: DatabaseTarget, user: string, creds: LoginRequest['serverCreds']): Pool;
}

export interface ShardedSession {
  readonly sharding: SessionSharding;
  readonly groupReads: ((group: string) => GroupReads | null) | null;
}

/** The sharding of a session of `database` for `user`, or null when the database is not sharded. */
export function shardedSession(
  proxy: ShardPoolsHost,
  host: ShardingHost | null,
  database: string,
  home: DatabaseTarget,
  user: string,
  creds: LoginRequest['serverCreds'],
  transactionPooling: boolean,
): ShardedSession | null {
  const db = host?.forDatabase(database) ?? null;
  if (host === null || db === null) return null;
  /** Group `group`'s primary pool (following it) and its target; `home` when it is not known. */
  const groupPool = (group: string, t: DatabaseTarget): Pool => {
    const p = proxy.poolFor(database, t, user, creds);
    if (t.followsTopology) {
      proxy.replicaSets.follow(
        p,
        { database, group: t.group ?? 0, t, user, creds },
        proxy.holdOnUnreachableMs,
      );
    }
    return p;
  };
  // Each group's primary pool and its target, kept for the session instead of looked up at every
  // attachment (groupTarget, poolFor and follow: 1.5–2.6 profiled µs per statement): a following
  // pool stays the one poolFor gives for its group through failovers (ReplicaSets.retarget points
  // it at the new primary and re-keys it), until it is closed (a reload that drops it).
  const groupPools = new Map<string, { readonly pool: Pool; readonly t: DatabaseTarget }>();
  /** Group `group`'s primary pool and target; null when its primary is not known. */
  const groupEntry = (group: string): { readonly pool: Pool; readonly t: DatabaseTarget } | null => {
    const kept = groupPools.get(group);
    if (kept !== undefined && !kept.pool.isClosed) return kept;
    const t = host.groupTarget(database, group);
    if (t === null) return null;
    const entry = { pool: groupPool(group, t), t };
    if (t.followsTopology) groupPools.set(group, entry);
    return entry;
  };
  // The session's search_path for the planner: one object while it stays the same.
  const defaultPath: SessionSearchPath = { value: undefined, user };
  let path = defaultPath;
  const sharding: SessionSharding = {
    get active() {
      return db.active;
    },
    target: (sql, params, searchPath) => {
      if (searchPath !== path.value)
        path = searchPath === undefined ? defaultPath : { value: searchPath, user };
      return db.target(sql, params, path);
    },
    isApi: (sql) => db.isApi(sql),
    api: (sql, searchPath) => db.api(sql, user, searchPath),
    host: (work) => db.host(work, user),
    copyIn: (work) => db.copyIn(work, user),
    explain: (sql, params) => db.explain?.(sql, params) ?? null,
    decider: db.decider ?? null,
    poolOf: (group) => groupEntry(group)?.pool ?? groupPool(group, home),
  };
  const groupReads = (group: string): GroupReads | null => {
    if (!proxy.readScaling) return null;
    const g = groupEntry(group);
    if (g === null) return null;
    const pool = g.pool;
    const latest = proxy.replicaSets.latest(pool, g.t);
    if ((latest.replicas?.length ?? 0) === 0) return null;
    return {
      router: proxy.replicaSets.routerFor(database, latest, user, creds, pool),
      horizon: proxy.replicaSets.horizonFor(latest, pool),
    };
  };
  return { sharding, groupReads: transactionPooling ? groupReads : null };
}

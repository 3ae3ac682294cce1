/**
 * The replicas behind the proxy's primary pools, and how they follow the cluster: a read router
 * per primary pool (a pool and a health monitor per replica), a commit horizon per primary server
 * (causal and linearizable reads), and the pools that follow a group's primary through failovers
 * (held while a group has no primary, pointed at the new one, their routers given the new replica
 * set). The proxy server owns the pools; this keeps what hangs off them for read scaling.
 */
import type { ProxyConfig } from '../config/schema.js';
import type { Endpoint, Topology } from '../topology/topology.js';
import type { Pool } from './backend/pool.js';
import { CommitHorizon, PrimaryPositionAsker } from './commit-horizon.js';
import type { DatabaseTarget } from './database-target.js';
import { poolKey } from './database-target.js';
import type { LoginRequest } from './frontend/client-conn.js';
import { NodeMonitor, ReadRouter } from './read-router.js';
import type { ReplicaTarget, RouterSettings } from './read-router.js';

type ServerCreds = LoginRequest['serverCreds'];

/** A primary pool that follows its group's primary, with what a router needs to add replicas. */
interface Following {
  database: string;
  group: number;
  t: DatabaseTarget;
  user: string;
  creds: ServerCreds;
}

/** What the replica sets need of the proxy server. */
export interface ReplicaSetsHost {
  readonly pools: Map<string, Pool>;
  readonly settings: ProxyConfig;
  /** The pool of (database, server user, server): made on first use. */
  poolFor(database: string, t: DatabaseTarget, user: string, creds: ServerCreds): Pool;
}

function routerMonitors(r: ReadRouter): NodeMonitor[] {
  return [...(r.primary.monitor ? [r.primary.monitor] : []), ...r.replicas.map((x) => x.monitor)];
}

export class ReplicaSets {
  /** Read routers by primary pool; their monitors poll the replicas. */
  readonly routers = new Map<Pool, ReadRouter>();
  /**
   * Commit horizons (causal, linearizable reads) by primary server ("host:port", or "topology"
   * for the databases that follow the cluster's primary), shared by every pool writing there.
   */
  readonly horizons = new Map<string, { horizon: CommitHorizon; asker: PrimaryPositionAsker }>();
  /** Groups without a primary now: how long their new pools hold clients, and what they say. */
  private readonly holds = new Map<number, { ms: number; reason: (db: string) => string }>();
  private readonly following = new Map<Pool, Following>();
  /** Per group, the position its replicas must have replayed to serve reads (ReadRouter.floor). */
  private readonly floors = new Map<number, bigint>();

  constructor(
    private readonly host: ReplicaSetsHost,
    private readonly log: (line: string) => void,
  ) {}

  /** A primary pool made for a topology-following target: it follows its group from now on. */
  follow(pool: Pool, f: Following, holdOnUnreachableMs: number): void {
    if (this.following.has(pool)) return;
    this.following.set(pool, f);
    pool.holdOnUnreachableMs = holdOnUnreachableMs;
    const hold = this.holds.get(f.group);
    if (hold) pool.hold(hold.ms, hold.reason(pool.database));
  }

  /**
   * A pool's target as the topology last gave it: a login that waited (first server connection,
   * a hold, a PAUSE) may have missed a change that found no router to update.
   */
  latest(pool: Pool, t: DatabaseTarget): DatabaseTarget {
    return this.following.get(pool)?.t ?? t;
  }

  /** A replica of some router uses this pool (it must not be freed as unused). */
  servesAsReplica(p: Pool): boolean {
    for (const r of this.routers.values()) if (r.replicas.some((x) => x.pool === p)) return true;
    return false;
  }

  /** A primary pool goes: its router's monitors stop; returns its replicas' pools, to close. */
  forget(p: Pool): Pool[] {
    this.following.delete(p);
    const router = this.routers.get(p);
    if (!router) return [];
    for (const m of routerMonitors(router)) m.stop();
    this.routers.delete(p);
    return router.replicas.map((r) => r.pool);
  }

  stop(): void {
    for (const r of this.routers.values()) for (const m of routerMonitors(r)) m.stop();
    for (const h of this.horizons.values()) h.asker.close();
    this.horizons.clear();
  }

  /** The commit horizon of a database's primary server; its questions go through `pool`. */
  horizonFor(t: DatabaseTarget, pool: Pool): CommitHorizon {
    // One horizon per primary: per group when following the topology (each group's WAL is its own).
    const key = t.followsTopology ? `topology:${t.group ?? 0}` : `${t.host}:${t.port}`;
    const open = () => pool.openDedicated('pgscale position');
    const h = this.horizons.get(key);
    if (h) {
      h.asker.open = open; // the latest pool: an older one may have been dropped
      return h.horizon;
    }
    const asker = new PrimaryPositionAsker(open, Math.max(1000, this.host.settings.ryw_wait_ms * 20));
    const horizon = new CommitHorizon(asker.ask);
    this.horizons.set(key, { horizon, asker });
    return horizon;
  }

  /**
   * Group `group`'s replicas serve reads only once they have replayed `lsn` (a shard moved there
   * at that position). Positions only grow, across failovers too, so a floor never traps a group.
   */
  setReadFloor(group: number, lsn: bigint): void {
    const now = this.floors.get(group);
    if (now !== undefined && now >= lsn) return;
    this.floors.set(group, lsn);
    for (const [pool, router] of this.routers)
      if ((this.following.get(pool)?.group ?? 0) === group) router.floor = lsn;
  }

  /** The read router of a primary pool: a pool and a monitor per replica, polled continuously. */
  routerFor(
    database: string,
    t: DatabaseTarget,
    user: string,
    creds: ServerCreds,
    primary: Pool,
  ): ReadRouter {
    const existing = this.routers.get(primary);
    if (existing) {
      existing.settings = this.routerSettings();
      return existing;
    }
    const m = new NodeMonitor(
      'primary',
      () => primary.openDedicated('pgscale monitor'),
      this.host.settings.check_interval_ms,
      2,
    );
    m.start();
    const replicas = (t.replicas ?? []).map((r) => this.replicaTarget(database, t, user, creds, r));
    const router = new ReadRouter({ pool: primary, monitor: m }, replicas, this.routerSettings());
    router.floor = this.floors.get(t.group ?? 0) ?? null;
    this.routers.set(primary, router);
    return router;
  }

  private replicaTarget(
    database: string,
    t: DatabaseTarget,
    user: string,
    creds: ServerCreds,
    r: { name?: string; host: string; port: number },
  ): ReplicaTarget {
    const pool = this.host.poolFor(database, { ...t, host: r.host, port: r.port }, user, creds);
    const name = r.name ?? `${r.host}:${r.port}`;
    const m = new NodeMonitor(
      name,
      () => pool.openDedicated('pgscale monitor'),
      this.host.settings.check_interval_ms,
      2,
    );
    m.start();
    return { name, monitor: m, pool, outstanding: 0, readsServed: 0 };
  }

  private routerSettings(): RouterSettings {
    const c = this.host.settings;
    return {
      consistency: c.consistency,
      rywWaitMs: c.ryw_wait_ms,
      maxLagBytes: c.max_lag_bytes,
      checkIntervalMs: c.check_interval_ms,
      balance: c.balance,
      failuresToBan: 2,
      primaryWeight: c.primary_read_weight,
    };
  }

  /** The whole topology: every group's pools follow that group's primary and replicas. */
  followTopology(t: Topology, holdMs: number): void {
    t.groups.forEach((g, group) => this.followGroup(group, g.primary, g.replicas, holdMs));
  }

  /**
   * A group's primary changed (HA). `primary` null: there is none for now (failover or
   * switchover under way): the pools that follow the group hold new transactions, bounded by
   * `holdMs`, while reads keep going to replicas. A new primary: those pools are pointed at it
   * (their queued clients proceed there; connections to the old one are dropped as they come
   * back) and the read routers take the new set of replicas. Pools of other groups are left alone.
   */
  followGroup(group: number, primary: Endpoint | null, replicas: readonly Endpoint[], holdMs: number): void {
    const reason = (db: string) =>
      `no primary is available for database "${db}" (failover in progress for more than ${holdMs / 1000} s)`;
    if (primary === null) this.holds.set(group, { ms: holdMs, reason });
    else this.holds.delete(group);
    for (const [pool, ctx] of this.following) {
      if (ctx.group !== group) continue;
      if (primary === null) {
        pool.hold(holdMs, reason(pool.database));
        continue;
      }
      this.retarget(pool, primary);
      // Kept for the router a login still under way makes once it has its connection (latest()).
      ctx.t = { ...ctx.t, host: primary.host, port: primary.port, replicas };
      const router = this.routers.get(pool);
      if (router) this.replaceReplicas(router, pool, ctx, replicas);
    }
  }

  /** Points a following pool at the group's primary (or lets it go on, unheld, where it is). */
  private retarget(pool: Pool, primary: Endpoint): void {
    const pools = this.host.pools;
    const tg = pool.target;
    if (tg.host === primary.host && tg.port === primary.port) {
      pool.unhold();
      return;
    }
    const oldKey = poolKey(pool.database, tg.user, tg.host, tg.port, tg.database);
    const newKey = poolKey(pool.database, tg.user, primary.host, primary.port, tg.database);
    // The new primary's pool as a replica gives way to the primary pool; another pool that
    // follows the primary (sessions hold it) is never closed, only pointed there too.
    const there = pools.get(newKey);
    if (there && there !== pool && !this.following.has(there)) {
      pools.delete(newKey);
      there.close('the node became the primary');
    }
    if (pools.get(oldKey) === pool) pools.delete(oldKey);
    pool.retarget({ ...tg, host: primary.host, port: primary.port });
    if (!pools.has(newKey)) pools.set(newKey, pool);
    this.log(`database ${pool.database}: primary is now ${primary.name} (${primary.host}:${primary.port})`);
  }

  /** The router's replicas become `replicas`: monitors of the others stop, their pools close. */
  private replaceReplicas(
    router: ReadRouter,
    pool: Pool,
    ctx: Following,
    replicas: readonly Endpoint[],
  ): void {
    const pools = this.host.pools;
    const wanted = new Map(replicas.map((r) => [`${r.host}:${r.port}`, r]));
    for (let i = router.replicas.length - 1; i >= 0; i--) {
      const r = router.replicas[i]!;
      const key = `${r.pool.target.host}:${r.pool.target.port}`;
      if (wanted.has(key) && r.pool !== pool) {
        wanted.delete(key);
        continue;
      }
      r.monitor.stop();
      router.replicas.splice(i, 1);
      if (r.pool !== pool) {
        for (const [k, v] of pools) if (v === r.pool) pools.delete(k);
        r.pool.close('the node left the read set');
      }
    }
    for (const r of wanted.values()) {
      router.replicas.push(this.replicaTarget(ctx.database, ctx.t, ctx.user, ctx.creds, r));
    }
  }
}

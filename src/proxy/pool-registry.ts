/**
 * The proxy's pools, one per (database, server user, server), and what hangs off each: the
 * database's connection limit (max_db_connections), the user's (max_user_connections), the LISTEN fan-out of transaction pooling,
 * the database's hidden-code registry, and the on-demand pools of `*` entries that are freed
 * once unused (PgBouncer's autodb_idle_timeout). Settings come from the proxy's current config.
 */
import type { ProxyConfig } from '../config/schema.js';
import { BothLimits, DatabaseLimit } from './backend/db-limit.js';
import { HiddenCodeRegistry } from './backend/hidden-code.js';
import { Pool } from './backend/pool.js';
import type { PoolSettings } from './backend/pool.js';
import type { DatabaseResolver, DatabaseTarget } from './database-target.js';
import { poolKey } from './database-target.js';
import type { LoginRequest } from './frontend/client-conn.js';
import { ListenerHub } from './listener-hub.js';
import type { PoolMode } from './types.js';
import type { UserSettingsTable } from './user-settings.js';
import { effectivePool } from './user-settings.js';

export class PoolRegistry {
  readonly pools = new Map<string, Pool>();
  /** Per database: its relations with hidden code (transaction pooling's state check). */
  readonly hiddenCode = new Map<string, HiddenCodeRegistry>();
  /** max_db_connections, one shared by the pools of each database. */
  private readonly dbLimits = new Map<string, DatabaseLimit>();
  /** max_user_connections, one shared by the pools of each user that has one. */
  private readonly userLimits = new Map<string, DatabaseLimit>();
  private readonly hubs = new Map<Pool, ListenerHub>();
  /** Pools made on demand, with when a session last used them (performance.now()). */
  private readonly onDemand = new Map<Pool, number>();
  /** PAUSE on the admin console: new pools start paused too. */
  paused = false;

  constructor(
    private readonly settings: () => ProxyConfig,
    private readonly log: (line: string) => void,
    /** Per-user pool settings (user-settings.ts). */
    private readonly users: () => UserSettingsTable = () => new Map(),
  ) {}

  /** The pool of (database, server user, server): made on first use. */
  poolFor(database: string, t: DatabaseTarget, user: string, creds: LoginRequest['serverCreds']): Pool {
    const key = poolKey(database, user, t.host, t.port, t.dbname);
    let p = this.pools.get(key);
    if (!p) {
      const c = this.settings();
      const u = this.users().get(user);
      const eff = effectivePool(u, t, c);
      p = new Pool(
        database,
        { host: t.host, port: t.port, database: t.dbname, user },
        creds,
        this.poolSettings(eff.mode, eff.size),
      );
      if (this.paused) p.pause();
      let limit = this.dbLimits.get(database);
      if (!limit) {
        limit = new DatabaseLimit(c.max_db_connections);
        this.dbLimits.set(database, limit);
      }
      limit.add(p);
      p.limit = limit;
      if (u?.maxUserConnections) {
        let ul = this.userLimits.get(user);
        if (!ul) {
          ul = new DatabaseLimit(u.maxUserConnections);
          this.userLimits.set(user, ul);
        }
        ul.add(p);
        p.limit = new BothLimits(limit, ul);
      }
      this.pools.set(key, p);
      if (t.onDemand) this.onDemand.set(p, performance.now());
    } else if (creds.kind !== 'none') {
      p.updateCredentials(creds);
    }
    return p;
  }

  private poolSettings(mode: PoolMode, size: number): PoolSettings {
    const c = this.settings();
    return {
      size,
      minSize: c.min_pool_size,
      mode,
      queryWaitTimeoutMs: c.query_wait_timeout * 1000,
      serverIdleTimeoutMs: c.server_idle_timeout * 1000,
      serverLifetimeMs: c.server_lifetime * 1000,
      serverCheckDelayMs: c.server_check_delay * 1000,
      connectTimeoutMs: c.server_connect_timeout * 1000,
      tls: { mode: c.server_tls.mode, caFile: c.server_tls.ca_file },
      maxPreparedStatements: c.max_prepared_statements,
      nodeConcurrency: c.node_concurrency,
    };
  }

  /**
   * The config changed: each pool's settings resolved again as for a new one (the database's own
   * pool_size, else default_pool_size). Its mode stays: sessions of that mode hold it; new pools
   * take the new one.
   */
  reload(next: ProxyConfig, resolver: DatabaseResolver): void {
    for (const l of this.dbLimits.values()) l.max = next.max_db_connections;
    const users = this.users();
    for (const [name, l] of this.userLimits) l.max = users.get(name)?.maxUserConnections ?? 0;
    for (const p of new Set(this.pools.values())) {
      const t = resolver(p.database);
      const size = t === null ? p.settings.size : effectivePool(users.get(p.target.user), t, next).size;
      p.applySettings(this.poolSettings(p.settings.mode, size));
    }
    for (const l of this.dbLimits.values()) l.wakeAll();
    for (const l of this.userLimits.values()) l.wakeAll();
  }

  /** Closes a pool and forgets it, with the replica pools of its router (`replicas`) and its hub. */
  drop(p: Pool, reason: string, replicas: readonly Pool[]): void {
    for (const [k, v] of this.pools) if (v === p) this.pools.delete(k);
    for (const replica of replicas) {
      for (const [k, v] of this.pools) if (v === replica) this.pools.delete(k);
      this.onDemand.delete(replica);
      replica.close(reason);
    }
    this.hubs.get(p)?.close();
    this.hubs.delete(p);
    this.onDemand.delete(p);
    p.close(reason);
    if (this.dbLimits.get(p.database)?.size === 0) this.dbLimits.delete(p.database);
    if (this.userLimits.get(p.target.user)?.size === 0) this.userLimits.delete(p.target.user);
  }

  /**
   * PgBouncer's autodb_idle_timeout: on-demand pools `unused` that long are freed (`free` drops
   * them, with what hangs off them elsewhere).
   */
  freeIdleOnDemand(unused: (p: Pool) => boolean, free: (p: Pool) => void): void {
    if (this.onDemand.size === 0) return;
    const limit = this.settings().autodb_idle_timeout * 1000;
    const t = performance.now();
    for (const [p, since] of [...this.onDemand]) {
      if (!unused(p)) this.onDemand.set(p, t);
      else if (t - since >= limit) {
        this.log(`database ${p.database}: pool of user ${p.target.user} freed (unused, made through "*")`);
        free(p);
      }
    }
  }

  /** The LISTEN fan-out connection of a pool (transaction pooling). */
  hubFor(pool: Pool): ListenerHub {
    let h = this.hubs.get(pool);
    if (!h) {
      h = new ListenerHub(pool);
      this.hubs.set(pool, h);
    }
    return h;
  }

  /**
   * The registry of relations with hidden code of a pool's database, made (and loaded) on the
   * database's first login; it opens its connections through the latest pool of the database.
   */
  hiddenCodeFor(pool: Pool): HiddenCodeRegistry {
    // jit off: the catalog query's cost estimate makes the server JIT-compile it, ~300 ms each load.
    const open = () =>
      pool.openDedicated('pgscale hidden-code', { options: '-c search_path=pg_catalog -c jit=off' });
    let r = this.hiddenCode.get(pool.database);
    if (r) {
      r.open = open;
      return r;
    }
    const db = pool.database;
    r = new HiddenCodeRegistry(open, (error) =>
      this.log(
        error === null
          ? `hidden code of database ${db}: loaded again`
          : `hidden code of database ${db} not loaded (${error}): until it is, ` +
              'every transaction but bare ones (SELECT 1, BEGIN) is checked for session state',
      ),
    );
    this.hiddenCode.set(pool.database, r);
    void r.refresh();
    return r;
  }

  /** Once a second: pools keep their minimum and drop idle connections; hidden code reloads. */
  maintain(): void {
    for (const p of this.pools.values()) p.maintain();
    if (this.hiddenCode.size === 0) return;
    // Periodic reload (DDL made elsewhere); registries of databases without a pool are dropped.
    const live = new Set<string>();
    for (const p of this.pools.values()) live.add(p.database);
    const t = performance.now();
    const every = this.settings().hidden_code_refresh_interval * 1000;
    for (const [db, r] of this.hiddenCode) {
      if (!live.has(db)) {
        r.close();
        this.hiddenCode.delete(db);
      } else r.maybeRefresh(t, every);
    }
  }

  pauseAll(): void {
    this.paused = true;
    for (const p of this.pools.values()) p.pause();
  }

  resumeAll(): void {
    this.paused = false;
    for (const p of this.pools.values()) p.resume();
  }

  stop(): void {
    for (const h of this.hubs.values()) h.close();
    for (const p of this.pools.values()) p.close();
    for (const r of this.hiddenCode.values()) r.close();
    this.hiddenCode.clear();
  }
}

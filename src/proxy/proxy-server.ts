/**
 * The proxy: listens on the PostgreSQL port, accepts clients up to max_client_conn, authenticates
 * them, and gives each a session on the pool of its (database, user, server). It owns the pools,
 * the LISTEN fan-out connections, the cancel-key registry and the admin console's view of all of
 * it. Where a database's connections go comes from a resolver, so the same proxy serves a
 * standalone config (proxy.databases) and `pgscale up` (the group's primary from the topology).
 */
import { createServer, connect as netConnect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ProxyConfig } from '../config/schema.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import { encodeCancelRequest } from '../protocol/startup-messages.js';
import { SqlState } from '../protocol/sqlstate.js';
import { ConfigError, ErrorCodes, PgscaleError } from '../errors.js';
import { Pool } from './backend/pool.js';
import type { PoolSettings } from './backend/pool.js';
import { DatabaseLimit } from './backend/db-limit.js';
import { ServerLoginError } from './backend/server-conn.js';
import { ClientConn } from './frontend/client-conn.js';
import type { FrontendHost, LoginFailure, LoginRequest, LoginResult } from './frontend/client-conn.js';
import { LoginBackoff } from './frontend/login-backoff.js';
import type { BackoffSettings } from './frontend/login-backoff.js';
import { Credentials } from './frontend/credentials.js';
import { MessageBudget } from './frontend/message-budget.js';
import { REPORTED_NAMES } from './frontend/startup-params.js';
import { ListenerHub } from './listener-hub.js';
import { verifyStartupSettings } from './startup-verify.js';
import { Session } from './session.js';
import type { ServerConn } from './backend/server-conn.js';
import { AdminSession, ADMIN_DATABASES } from './admin.js';
import type { AdminHooks, AdminView } from './admin-view.js';
import type { PoolMode } from './types.js';
import type { Endpoint, Topology } from '../topology/topology.js';
import { NodeMonitor, ReadRouter } from './read-router.js';
import { CommitHorizon, PrimaryPositionAsker } from './commit-horizon.js';
import type { ReplicaTarget, RouterSettings } from './read-router.js';
import { Analyzer } from '../sql/analyze.js';
import { HiddenCodeRegistry } from './backend/hidden-code.js';

function routerMonitors(r: ReadRouter): NodeMonitor[] {
  return [...(r.primary.monitor ? [r.primary.monitor] : []), ...r.replicas.map((x) => x.monitor)];
}

export interface DatabaseTarget {
  host: string;
  port: number;
  /** Database name on the server. */
  dbname: string;
  /** Force this server user (and its password) for every client of this database. */
  user?: string;
  password?: string;
  poolSize?: number;
  poolMode?: PoolMode;
  /** Read replicas of this server (read/write splitting). */
  replicas?: readonly { name?: string; host: string; port: number }[];
  /** The target comes from the cluster's topology and follows its primary (HA). */
  followsTopology?: boolean;
  /** The replication group whose primary a topology-following target follows (default 0). */
  group?: number;
  /**
   * Served through a `*` entry rather than by name: its pools are made on demand and freed once
   * no client has used them for autodb_idle_timeout (PgBouncer's autodb), so client-chosen names
   * cannot grow the proxy without bound.
   */
  onDemand?: boolean;
}

export type DatabaseResolver = (database: string) => DatabaseTarget | null;

export interface ProxyServerOptions {
  config: ProxyConfig;
  resolve: DatabaseResolver;
  /** Users whose passwords the embedding program knows (pgscale up: the app role, the superuser). */
  inlineUsers?: ReadonlyMap<string, string>;
  log?: (line: string) => void;
  /** Structured events (failed logins) go here as pino lines; else to `log` as text. */
  logger?: { warn(fields: Record<string, unknown>, msg: string): void };
  /** The failed-login back-off (defaults in login-backoff.ts); false: none. */
  loginBackoff?: Partial<BackoffSettings> | false;
  /**
   * The listener closed: `stopped` after stop() (asked by anyone, e.g. SHUTDOWN), `closed` when
   * it closed on its own. The program that owns the proxy decides whether that was expected.
   */
  onListenerClosed?: (why: 'stopped' | 'closed') => void;
  /** What RELOAD and SHUTDOWN on the admin console do (default: nothing; the proxy alone stops). */
  adminHooks?: AdminHooks;
}

const MAX_CONCURRENT_CANCELS = 64;

export class ProxyServer implements FrontendHost, AdminView {
  private config: ProxyConfig;
  private server: Server | null = null;
  readonly clients = new Set<ClientConn>();
  private readonly byPid = new Map<number, ClientConn>();
  readonly pools = new Map<string, Pool>();
  /** max_db_connections, one shared by the pools of each database. */
  private readonly dbLimits = new Map<string, DatabaseLimit>();
  /** Per database: its relations with hidden code (transaction pooling's state check). */
  readonly hiddenCode = new Map<string, HiddenCodeRegistry>();
  private readonly hubs = new Map<Pool, ListenerHub>();
  /** Read routers by primary pool; their monitors poll the replicas. */
  readonly routers = new Map<Pool, ReadRouter>();
  /**
   * Commit horizons (causal, linearizable reads) by primary server ("host:port", or "topology"
   * for the databases that follow the cluster's primary), shared by every pool writing there.
   */
  readonly horizons = new Map<string, { horizon: CommitHorizon; asker: PrimaryPositionAsker }>();
  /** Primary pools whose server follows the topology, with what routerFor needs to add replicas. */
  private readonly topologyHolds = new Map<number, { ms: number; reason: (db: string) => string }>();
  /** HA runs: an unreachable primary makes its clients wait this long for a failover (ms). */
  holdOnUnreachableMs = 0;
  /** Pools made on demand, with when a session last used them (performance.now()). */
  private readonly onDemand = new Map<Pool, number>();
  private readonly following = new Map<
    Pool,
    {
      database: string;
      group: number;
      t: DatabaseTarget;
      user: string;
      creds: LoginRequest['serverCreds'];
    }
  >();
  /** Statement analysis for read/write splitting (one cache shared by every session). */
  analyzer: Analyzer | null = null;
  readonly credentials: Credentials;
  readonly mockKey = randomBytes(32);
  /** Bounds the memory held for large client messages across all clients (max_buffered_bytes). */
  readonly messageBudget: MessageBudget;
  tlsContext: SecureContext | null = null;
  private cancels = 0;
  private maintenance: NodeJS.Timeout | null = null;
  readonly startedAt = Date.now();
  paused = false;
  /** What RELOAD and SHUTDOWN on the admin console do (given by the program running the proxy). */
  private readonly adminHooks: AdminHooks;
  private resolver: DatabaseResolver;
  private readonly log: (line: string) => void;
  private readonly logger: ProxyServerOptions['logger'];
  readonly loginBackoff: LoginBackoff | null;
  /** Failed logins since start, by kind (pgscale_proxy_login_failures_total). */
  readonly loginFailures: Record<LoginFailure['kind'], number> = {
    authentication: 0,
    refused: 0,
    throttled: 0,
  };
  private readonly onListenerClosed: ((why: 'stopped' | 'closed') => void) | undefined;
  private stopped = false;

  constructor(opts: ProxyServerOptions) {
    this.config = opts.config;
    this.resolver = opts.resolve;
    this.log = opts.log ?? (() => undefined);
    this.logger = opts.logger;
    this.loginBackoff = opts.loginBackoff === false ? null : new LoginBackoff(opts.loginBackoff ?? {});
    this.onListenerClosed = opts.onListenerClosed;
    this.adminHooks = opts.adminHooks ?? {};
    this.credentials = new Credentials(
      opts.inlineUsers ?? new Map(),
      opts.config.auth_file,
      opts.config.auth_query ? (db, user) => this.runAuthQuery(db, user) : null,
    );
    this.tlsContext = loadTls(opts.config);
    this.messageBudget = new MessageBudget(opts.config.max_buffered_bytes);
  }

  get settings(): ProxyConfig {
    return this.config;
  }
  get authType() {
    return this.config.auth_type;
  }
  get tlsMode() {
    return this.config.tls.mode;
  }
  get loginTimeoutMs() {
    return this.config.client_login_timeout * 1000;
  }
  get maxPacketSize() {
    return this.config.max_packet_size;
  }
  get ignoreStartupParameters() {
    return this.config.ignore_startup_parameters;
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.config.read_write_split) {
      this.analyzer = await Analyzer.create({
        readOnlyFunctions: this.config.read_only_functions,
        writeFunctions: this.config.write_functions,
      });
    }
    const a = await this.listen();
    this.maintenance = setInterval(() => {
      for (const p of this.pools.values()) p.maintain();
      this.refreshHiddenCode();
      this.enforceClientTimeouts();
      this.freeIdleOnDemandPools();
    }, 1000);
    this.maintenance.unref();
    return a;
  }

  /** Whether the listener accepts connections. */
  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Opens the listener (start() does; the owner calls it again to listen anew after the listener
   * closed without stop()). Clients already connected and the pools are unaffected.
   */
  async listen(): Promise<{ host: string; port: number }> {
    if (this.server?.listening) throw new PgscaleError(ErrorCodes.INTERNAL, 'the proxy is already listening');
    const srv = createServer((s) => this.onConnection(s));
    this.server = srv;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new PgscaleError(
            ErrorCodes.PORT_IN_USE,
            e.code === 'EADDRINUSE'
              ? `proxy.port ${this.config.port} on ${this.config.listen} is already in use`
              : `proxy cannot listen on ${this.config.listen}:${this.config.port}: ${e.message}`,
          ),
        ),
      );
      srv.listen({ host: this.config.listen, port: this.config.port, backlog: 4096 }, () => resolve());
    }).catch((e: unknown) => {
      if (this.server === srv) this.server = null;
      throw e;
    });
    // After listening, an error (accept failing with EMFILE, say) must not become an uncaught
    // exception in the process that also runs HA: log it; the listener stays open.
    srv.on('error', (e) => this.log(`proxy listener error: ${e.message}`));
    srv.on('close', () => {
      if (this.server === srv) this.server = null;
      this.onListenerClosed?.(this.stopped ? 'stopped' : 'closed');
    });
    const a = srv.address();
    const port = typeof a === 'object' && a ? a.port : this.config.port;
    this.log(`proxy listening on ${this.config.listen}:${port}`);
    return { host: this.config.listen, port };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.maintenance) clearInterval(this.maintenance);
    const srv = this.server;
    this.server = null;
    const closed = srv ? new Promise<void>((r) => srv.close(() => r())) : Promise.resolve();
    const bye = buildErrorResponse('FATAL', SqlState.ADMIN_SHUTDOWN, 'the pgscale proxy is shutting down');
    for (const c of [...this.clients]) c.fail(bye);
    for (const h of this.hubs.values()) h.close();
    for (const r of this.routers.values()) for (const m of routerMonitors(r)) m.stop();
    for (const p of this.pools.values()) p.close();
    for (const r of this.hiddenCode.values()) r.close();
    this.hiddenCode.clear();
    for (const h of this.horizons.values()) h.asker.close();
    this.horizons.clear();
    await closed;
  }

  /** Applies a new config; returns the settings that need a restart to take effect. */
  reload(next: ProxyConfig, resolve?: DatabaseResolver): string[] {
    const restart: string[] = [];
    if (next.listen !== this.config.listen) restart.push('proxy.listen');
    if (next.port !== this.config.port) restart.push('proxy.port');
    this.credentials.reloadFile(next.auth_file);
    this.tlsContext = loadTls(next);
    this.config = next;
    this.messageBudget.setLimit(next.max_buffered_bytes);
    if (resolve) this.resolver = resolve;
    for (const l of this.dbLimits.values()) l.max = next.max_db_connections;
    // Each pool's settings resolved again as for a new one (the database's own pool_size, else
    // default_pool_size). Its mode stays: sessions of that mode hold it; new pools take the new one.
    for (const p of new Set(this.pools.values())) {
      const t = this.resolver(p.database);
      p.applySettings(this.poolSettings(p.settings.mode, t === null ? p.settings.size : t.poolSize));
    }
    for (const l of this.dbLimits.values()) l.wakeAll();
    return restart;
  }

  private onConnection(socket: Socket): void {
    if (this.clients.size >= this.config.max_client_conn) {
      socket.on('error', () => undefined);
      socket.end(
        buildErrorResponse('FATAL', SqlState.TOO_MANY_CONNECTIONS, 'sorry, too many clients already'),
      );
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const c = new ClientConn(socket, this, `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`);
    this.clients.add(c);
    this.byPid.set(c.id, c);
  }

  /**
   * One log line per failed login: user, database, client address and reason, never a password
   * or a proof. Back-off refusals are not logged one by one (a flood would flood the log): the
   * next failure's line says how many there were.
   */
  loginFailed(f: LoginFailure): void {
    this.loginFailures[f.kind]++;
    if (f.kind === 'throttled') return;
    const counted =
      f.kind === 'authentication' && this.loginBackoff
        ? this.loginBackoff.failure(f.address, Date.now())
        : null;
    const fields: Record<string, unknown> = {
      event: 'login_failed',
      user: f.user.slice(0, 128),
      database: f.database.slice(0, 128),
      client: f.address,
      reason: f.reason.slice(0, 256),
    };
    if (counted) {
      fields.failures = counted.failures;
      const delay = this.loginBackoff!.delayFor(counted.failures);
      if (delay > 0) fields.next_delay_ms = delay;
      if (counted.refused > 0) fields.throttled = counted.refused;
    }
    if (this.logger) this.logger.warn(fields, 'login failed');
    else
      this.log(
        `login failed: ${Object.entries(fields)
          .filter(([k]) => k !== 'event')
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(' ')}`,
      );
  }

  closed(c: ClientConn): void {
    this.clients.delete(c);
    this.byPid.delete(c.id);
  }

  /** The pools some client's session holds. */
  private poolsInUse(): Set<Pool> {
    const used = new Set<Pool>();
    for (const c of this.clients) if (c.session instanceof Session) used.add(c.session.pool);
    return used;
  }

  /** Whether a pool may go: no session, no server connection lent or being made, nobody queued. */
  private unused(p: Pool, inUse = this.poolsInUse()): boolean {
    return (
      !inUse.has(p) &&
      p.total === p.idle.length &&
      p.waiting === 0 &&
      ![...this.routers.values()].some((r) => r.replicas.some((x) => x.pool === p))
    );
  }

  /** Closes a pool and forgets it with its router, listener hub and topology bookkeeping. */
  private dropPool(p: Pool, reason: string): void {
    for (const [k, v] of this.pools) if (v === p) this.pools.delete(k);
    const router = this.routers.get(p);
    if (router) {
      for (const m of routerMonitors(router)) m.stop();
      this.routers.delete(p);
      for (const r of router.replicas) {
        for (const [k, v] of this.pools) if (v === r.pool) this.pools.delete(k);
        this.onDemand.delete(r.pool);
        r.pool.close(reason);
      }
    }
    this.hubs.get(p)?.close();
    this.hubs.delete(p);
    this.following.delete(p);
    this.onDemand.delete(p);
    p.close(reason);
    if (this.dbLimits.get(p.database)?.size === 0) this.dbLimits.delete(p.database);
  }

  /** PgBouncer's autodb_idle_timeout: on-demand pools without a client that long are freed. */
  private freeIdleOnDemandPools(): void {
    if (this.onDemand.size === 0) return;
    const limit = this.config.autodb_idle_timeout * 1000;
    const t = performance.now();
    const inUse = this.poolsInUse();
    for (const [p, since] of [...this.onDemand]) {
      if (!this.unused(p, inUse)) this.onDemand.set(p, t);
      else if (t - since >= limit) {
        this.log(`database ${p.database}: pool of user ${p.target.user} freed (unused, made through "*")`);
        this.dropPool(p, 'the pool was unused');
      }
    }
  }

  private poolSettings(mode: PoolMode, size?: number): PoolSettings {
    const c = this.config;
    return {
      size: size ?? c.default_pool_size,
      minSize: c.min_pool_size,
      mode,
      queryWaitTimeoutMs: c.query_wait_timeout * 1000,
      serverIdleTimeoutMs: c.server_idle_timeout * 1000,
      serverLifetimeMs: c.server_lifetime * 1000,
      serverCheckDelayMs: c.server_check_delay * 1000,
      connectTimeoutMs: c.server_connect_timeout * 1000,
      tls: { mode: c.server_tls.mode, caFile: c.server_tls.ca_file },
      maxPreparedStatements: c.max_prepared_statements,
    };
  }

  private poolFor(
    database: string,
    t: DatabaseTarget,
    user: string,
    creds: LoginRequest['serverCreds'],
  ): Pool {
    const key = poolKey(database, user, t.host, t.port, t.dbname);
    let p = this.pools.get(key);
    if (!p) {
      p = new Pool(
        database,
        { host: t.host, port: t.port, database: t.dbname, user },
        creds,
        this.poolSettings(t.poolMode ?? this.config.pool_mode, t.poolSize),
      );
      if (this.paused) p.pause();
      let limit = this.dbLimits.get(database);
      if (!limit) {
        limit = new DatabaseLimit(this.config.max_db_connections);
        this.dbLimits.set(database, limit);
      }
      p.limit = limit;
      limit.add(p);
      this.pools.set(key, p);
      if (t.onDemand) this.onDemand.set(p, performance.now());
    } else if (creds.kind !== 'none') {
      p.updateCredentials(creds);
    }
    return p;
  }

  async login(req: LoginRequest): Promise<LoginResult> {
    if (ADMIN_DATABASES.has(req.database)) {
      const admin = this.config.admin_users.includes(req.user);
      const stats = this.config.stats_users.includes(req.user);
      if (!admin && !stats) {
        return {
          ok: false,
          fatal: buildErrorResponse(
            'FATAL',
            SqlState.INSUFFICIENT_PRIVILEGE,
            `user "${req.user}" is not allowed on the admin console`,
          ),
        };
      }
      return {
        ok: true,
        session: new AdminSession(this, this.adminHooks, req.client, admin),
        params: adminParams(),
      };
    }
    const t = this.resolver(req.database);
    if (!t) {
      return {
        ok: false,
        fatal: buildErrorResponse(
          'FATAL',
          SqlState.INVALID_CATALOG_NAME,
          `database "${req.database}" does not exist`,
        ),
      };
    }
    const serverUser = t.user ?? req.user;
    const creds =
      t.password !== undefined ? ({ kind: 'password', password: t.password } as const) : req.serverCreds;
    const pool = this.poolFor(req.database, t, serverUser, creds);
    if (t.followsTopology && !this.following.has(pool)) {
      const group = t.group ?? 0;
      this.following.set(pool, { database: req.database, group, t, user: serverUser, creds });
      pool.holdOnUnreachableMs = this.holdOnUnreachableMs;
      const hold = this.topologyHolds.get(group);
      if (hold) pool.hold(hold.ms, hold.reason(pool.database));
    }
    if (pool.serverParams.size === 0) {
      try {
        const s = await pool.acquire();
        pool.release(s);
      } catch (e) {
        const fatal =
          e instanceof ServerLoginError
            ? e.errorResponse
            : buildErrorResponse('FATAL', SqlState.CONNECTION_FAILURE, 'cannot reach the server');
        // A pool that never logged in (a database the server does not have, say) and serves
        // nobody is not kept: otherwise every name a client tries would leave one behind.
        if (pool.total === 0 && pool.serverParams.size === 0 && this.unused(pool)) {
          this.dropPool(pool, 'its first login failed');
        }
        return { ok: false, fatal };
      }
    }
    if (!this.config.allow_superuser && pool.serverParams.get('is_superuser') === 'on') {
      // No superuser connection stays pooled for nobody to use.
      if (this.unused(pool)) this.dropPool(pool, 'superuser logins through the proxy are refused');
      return {
        ok: false,
        fatal: buildErrorResponse(
          'FATAL',
          SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
          `superuser "${serverUser}" may not log in through the proxy (proxy.allow_superuser is off); ` +
            'connect to the node directly',
        ),
      };
    }
    const refused = await verifyStartupSettings(pool, req.settings);
    if (refused) return { ok: false, fatal: refused };
    const params = new Map(pool.serverParams);
    for (const [k, v] of req.settings.raw) {
      const reported = REPORTED_NAMES[k];
      if (reported) params.set(reported, v);
    }
    if (!params.has('application_name')) params.set('application_name', '');
    params.set('session_authorization', serverUser);
    const mode = t.poolMode ?? this.config.pool_mode;
    // A pool that follows the topology: its replicas as followGroup last set them, not as `t`
    // had them before this login waited (first server connection, a hold, a PAUSE). A topology
    // change meanwhile found no router to update; one made from the stale list would lack a
    // replica added then (or keep one removed) until the next change of that group.
    const latest = this.following.get(pool)?.t ?? t;
    const router =
      mode === 'transaction' &&
      this.config.read_write_split &&
      this.analyzer &&
      (latest.replicas?.length ?? 0) > 0
        ? this.routerFor(req.database, latest, serverUser, creds, pool)
        : null;
    const session = new Session(
      // The client connection is the session's host: no object or closure per client for it.
      req.client,
      {
        pool,
        mode,
        maxPreparedStatements: this.config.max_prepared_statements,
        listeners: mode === 'transaction' ? this.hubFor(pool) : null,
        startupSettings: req.settings.settings,
        startupProxySettings: req.settings.proxy,
        router,
        analyzer: this.analyzer,
        consistency: this.config.consistency,
        horizon: (latest.replicas?.length ?? 0) > 0 ? this.horizonFor(latest, pool) : null,
        hiddenCode: mode === 'transaction' ? this.hiddenCodeFor(pool) : null,
      },
    );
    return { ok: true, session, params };
  }

  /**
   * The registry of relations with hidden code of a pool's database, made (and loaded) on the
   * database's first login; it opens its connections through the latest pool of the database.
   */
  private hiddenCodeFor(pool: Pool): HiddenCodeRegistry {
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

  /** Periodic reload (DDL made elsewhere); registries of databases without a pool are dropped. */
  private refreshHiddenCode(): void {
    if (this.hiddenCode.size === 0) return;
    const live = new Set<string>();
    for (const p of this.pools.values()) live.add(p.database);
    const t = performance.now();
    for (const [db, r] of this.hiddenCode) {
      if (!live.has(db)) {
        r.close();
        this.hiddenCode.delete(db);
      } else r.maybeRefresh(t, this.config.hidden_code_refresh_interval * 1000);
    }
  }

  /** The commit horizon of a database's primary server; its questions go through `pool`. */
  private horizonFor(t: DatabaseTarget, pool: Pool): CommitHorizon {
    const key = t.followsTopology ? 'topology' : `${t.host}:${t.port}`;
    const open = () => pool.openDedicated('pgscale position');
    const h = this.horizons.get(key);
    if (h) {
      h.asker.open = open; // the latest pool: an older one may have been dropped
      return h.horizon;
    }
    const asker = new PrimaryPositionAsker(open, Math.max(1000, this.config.ryw_wait_ms * 20));
    const horizon = new CommitHorizon(asker.ask);
    this.horizons.set(key, { horizon, asker });
    return horizon;
  }

  /** The read router of a primary pool: a pool and a monitor per replica, polled continuously. */
  private routerFor(
    database: string,
    t: DatabaseTarget,
    user: string,
    creds: LoginRequest['serverCreds'],
    primary: Pool,
  ): ReadRouter {
    const existing = this.routers.get(primary);
    if (existing) {
      existing.settings = this.routerSettings();
      return existing;
    }
    const interval = this.config.check_interval_ms;
    const monitor = (name: string, p: Pool) => {
      const m = new NodeMonitor(name, () => p.openDedicated('pgscale monitor'), interval, 2);
      m.start();
      return m;
    };
    const replicas: ReplicaTarget[] = (t.replicas ?? []).map((r) =>
      this.replicaTarget(database, t, user, creds, r),
    );
    const router = new ReadRouter(
      { pool: primary, monitor: monitor('primary', primary) },
      replicas,
      this.routerSettings(),
    );
    this.routers.set(primary, router);
    return router;
  }

  private replicaTarget(
    database: string,
    t: DatabaseTarget,
    user: string,
    creds: LoginRequest['serverCreds'],
    r: { name?: string; host: string; port: number },
  ): ReplicaTarget {
    const pool = this.poolFor(database, { ...t, host: r.host, port: r.port }, user, creds);
    const name = r.name ?? `${r.host}:${r.port}`;
    const m = new NodeMonitor(
      name,
      () => pool.openDedicated('pgscale monitor'),
      this.config.check_interval_ms,
      2,
    );
    m.start();
    return { name, monitor: m, pool, outstanding: 0, readsServed: 0 };
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
    if (primary === null) this.topologyHolds.set(group, { ms: holdMs, reason });
    else this.topologyHolds.delete(group);
    for (const [pool, ctx] of this.following) {
      if (ctx.group !== group) continue;
      if (primary === null) {
        pool.hold(holdMs, reason(pool.database));
        continue;
      }
      const oldKey = poolKey(
        pool.database,
        pool.target.user,
        pool.target.host,
        pool.target.port,
        pool.target.database,
      );
      if (pool.target.host !== primary.host || pool.target.port !== primary.port) {
        const newKey = poolKey(
          pool.database,
          pool.target.user,
          primary.host,
          primary.port,
          pool.target.database,
        );
        // The new primary's pool as a replica (if any) gives way to the primary pool.
        const there = this.pools.get(newKey);
        // The new primary's pool as a replica gives way to the primary pool; another pool that
        // follows the primary (sessions hold it) is never closed, only pointed there too.
        if (there && there !== pool && !this.following.has(there)) {
          this.pools.delete(newKey);
          there.close('the node became the primary');
        }
        if (this.pools.get(oldKey) === pool) this.pools.delete(oldKey);
        pool.retarget({ ...pool.target, host: primary.host, port: primary.port });
        if (!this.pools.has(newKey)) this.pools.set(newKey, pool);
        this.log(
          `database ${pool.database}: primary is now ${primary.name} (${primary.host}:${primary.port})`,
        );
      } else {
        pool.unhold();
      }
      // Kept for the router a login still under way makes once it has its connection (login()).
      ctx.t = { ...ctx.t, host: primary.host, port: primary.port, replicas };
      const router = this.routers.get(pool);
      if (!router) continue;
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
          for (const [k, v] of this.pools) if (v === r.pool) this.pools.delete(k);
          r.pool.close('the node left the read set');
        }
      }
      for (const r of wanted.values()) {
        router.replicas.push(this.replicaTarget(ctx.database, ctx.t, ctx.user, ctx.creds, r));
      }
    }
  }

  private routerSettings(): RouterSettings {
    const c = this.config;
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

  private hubFor(pool: Pool): ListenerHub {
    let h = this.hubs.get(pool);
    if (!h) {
      h = new ListenerHub(pool);
      this.hubs.set(pool, h);
    }
    return h;
  }

  /** Forwards a CancelRequest to the server running the client's current query, if any. */
  cancel(processId: number, key: Buffer): void {
    const c = this.byPid.get(processId);
    if (!c || !(c.session instanceof Session)) return;
    const expected = c.visibleCancelKey;
    if (key.length !== expected.length || !timingSafeEqual(key, expected)) return;
    // Every leg of the running query: a statement spread over several servers stops on all.
    for (const server of c.session.cancelTargets()) this.sendCancel(server);
  }

  private sendCancel(server: ServerConn): void {
    if (this.cancels >= MAX_CONCURRENT_CANCELS) return;
    this.cancels++;
    server.cancelsInFlight++;
    const done = () => {
      this.cancels--;
      server.cancelsInFlight--;
    };
    const s = netConnect({ host: server.target.host, port: server.target.port });
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      done();
      s.destroy();
    };
    s.setTimeout(5000, finish);
    s.on('error', finish);
    s.on('close', finish);
    s.on('connect', () =>
      s.write(encodeCancelRequest({ processId: server.backendPid, secretKey: server.backendKey })),
    );
  }

  private enforceClientTimeouts(): void {
    const idle = this.config.client_idle_timeout * 1000;
    const idleTx = this.config.idle_transaction_timeout * 1000;
    if (!idle && !idleTx) return;
    const t = performance.now();
    for (const c of this.clients) {
      const s = c.session;
      if (!(s instanceof Session)) continue;
      const quiet = t - s.lastActivity;
      if (idleTx && s.txStatus !== 'I' && quiet > idleTx) {
        c.fail(buildErrorResponse('FATAL', '25P03', 'idle transaction timeout'));
      } else if (idle && s.txStatus === 'I' && quiet > idle) {
        c.fail(buildErrorResponse('FATAL', SqlState.ADMIN_SHUTDOWN, 'client idle timeout'));
      }
    }
  }

  /** auth_query: the user's secret, read on the server as auth_user. */
  private async runAuthQuery(database: string, user: string): Promise<string | null> {
    const q = this.config.auth_query;
    const authUser = this.config.auth_user;
    if (!q || !authUser) return null;
    const t = this.resolver(database);
    if (!t) return null;
    const secret = await this.credentials.lookup(authUser, database);
    const creds =
      secret?.kind === 'plain'
        ? ({ kind: 'password', password: secret.password } as const)
        : secret?.kind === 'md5'
          ? ({ kind: 'md5-hash', hash: secret.hash } as const)
          : null;
    if (!creds) return null;
    // A connection of its own, never one a client used: a client's session state (search_path
    // above all) must not decide which table answers. search_path is fixed at login to
    // pg_catalog, so even an unqualified pg_shadow in an operator's auth_query is the real one.
    const pool = this.poolFor(database, t, authUser, creds);
    const s = await pool.openDedicated('pgscale auth_query', { options: '-c search_path=pg_catalog' });
    try {
      const literal = `'${user.replace(/'/g, "''")}'`;
      const r = await s.query(q.replace(/\$1\b/g, literal));
      return r.error ? null : (r.rows[0]?.[1] ?? null);
    } finally {
      s.close();
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

  /** Closes every client and server connection of a database (admin KILL). */
  kill(database: string): number {
    let n = 0;
    for (const c of [...this.clients]) {
      if (c.database === database) {
        c.fail(buildErrorResponse('FATAL', SqlState.ADMIN_SHUTDOWN, 'closed by an administrator (KILL)'));
        n++;
      }
    }
    for (const p of this.pools.values()) if (p.database === database) p.closeIdle();
    return n;
  }
}

function poolKey(database: string, user: string, host: string, port: number, dbname: string): string {
  return `${database}\0${user}\0${host}:${port}/${dbname}`;
}

function loadTls(c: ProxyConfig): SecureContext | null {
  if (c.tls.mode === 'disable') return null;
  if (!c.tls.cert_file || !c.tls.key_file) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `proxy.tls.mode ${c.tls.mode} needs proxy.tls.cert_file and proxy.tls.key_file`,
    );
  }
  try {
    return createSecureContext({
      cert: readFileSync(c.tls.cert_file),
      key: readFileSync(c.tls.key_file),
      minVersion: 'TLSv1.2',
    });
  } catch (e) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `proxy.tls: cannot load the certificate or key: ${(e as Error).message}`,
    );
  }
}

function adminParams(): Map<string, string> {
  return new Map([
    ['server_version', '16.0 (pgscale)'],
    ['server_encoding', 'UTF8'],
    ['client_encoding', 'UTF8'],
    ['DateStyle', 'ISO, MDY'],
    ['integer_datetimes', 'on'],
    ['standard_conforming_strings', 'on'],
    ['TimeZone', 'UTC'],
    ['application_name', ''],
  ]);
}

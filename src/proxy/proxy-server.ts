/**
 * The proxy: listens on the PostgreSQL port, accepts clients up to max_client_conn, authenticates
 * them, and gives each a session on the pool of its (database, user, server). It owns the pools,
 * the LISTEN fan-out connections, the cancel-key registry and the admin console's view of all of
 * it. Where a database's connections go comes from a resolver, so the same proxy serves a
 * standalone config (proxy.databases) and `pgscale up` (the group's primary from the topology).
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { ProxyConfig } from '../config/schema.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import { SqlState } from '../protocol/sqlstate.js';
import { ErrorCodes, PgscaleError } from '../errors.js';
import type { Pool } from './backend/pool.js';
import { ServerLoginError } from './backend/server-conn.js';
import { ClientConn, skipTakenClientIds } from './frontend/client-conn.js';
import type { FrontendHost, LoginFailure, LoginRequest, LoginResult } from './frontend/client-conn.js';
import { LoginBackoff, failedLoginFields } from './frontend/login-backoff.js';
import type { BackoffSettings } from './frontend/login-backoff.js';
import { Credentials } from './frontend/credentials.js';
import { MessageBudget } from './frontend/message-budget.js';
import { REPORTED_NAMES } from './frontend/startup-params.js';
import { verifyStartupSettings } from './startup-verify.js';
import { Session } from './session.js';
import type { HeldLeg } from './shard-hold.js';
import { AdminSession, ADMIN_DATABASES, adminParams } from './admin.js';
import type { AdminHooks, AdminView } from './admin-view.js';
import type { Endpoint, Topology } from '../topology/topology.js';
import type { ReadRouter } from './read-router.js';
import type { CommitHorizon } from './commit-horizon.js';
import { ReplicaSets } from './replica-sets.js';
import { CancelForwarder } from './cancel-forwarder.js';
import type { CancelCounts } from './cancel-forwarder.js';
import { runAuthQuery } from './auth-query.js';
import { loadTls } from './frontend/tls-context.js';
import { PoolRegistry } from './pool-registry.js';
import type { DatabaseResolver, DatabaseTarget } from './database-target.js';
import type { ShardingHost } from './sharding.js';
import { shardedSession } from './shard-pools.js';
import { Analyzer } from '../sql/analyze.js';
import type { HiddenCodeRegistry } from './backend/hidden-code.js';
import { idleMemory } from './idle-memory.js';
import { SharedOptions } from './shared-options.js';
import type { UserSettingsTable } from './user-settings.js';
import { effectivePool } from './user-settings.js';

export type { DatabaseResolver, DatabaseTarget } from './database-target.js';
export type { ShardingHost, DatabaseSharding } from './sharding.js';
export type { CancelCounts } from './cancel-forwarder.js';

export interface ProxyServerOptions {
  config: ProxyConfig;
  resolve: DatabaseResolver;
  /** Users whose passwords the embedding program knows (pgscale up: the app role, the superuser). */
  inlineUsers?: ReadonlyMap<string, string>;
  /** Per-user pool settings (pgscale up: the config's users:), user-settings.ts. */
  users?: UserSettingsTable;
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
  /** Sharded databases (pgscale up with groups): their catalogs and their groups' primaries. */
  sharding?: ShardingHost;
  /**
   * A CancelRequest whose process id names another instance (another worker of `pgscale proxy
   * --workers`, cancel-key.ts) is handed here to be sent there; without it, it is dropped.
   */
  forwardCancel?: (processId: number, key: Buffer) => void;
}

export class ProxyServer implements FrontendHost, AdminView {
  private config: ProxyConfig;
  private server: Server | null = null;
  readonly clients = new Set<ClientConn>();
  /** The pools and what hangs off each (pool-registry.ts). */
  private readonly registry: PoolRegistry;
  /** Read routers, commit horizons and the pools that follow the topology (replica-sets.ts). */
  readonly replicaSets: ReplicaSets;
  /** HA runs: an unreachable primary makes its clients wait this long for a failover (ms). */
  holdOnUnreachableMs = 0;
  /** Statement analysis for read/write splitting (one cache shared by every session). */
  analyzer: Analyzer | null = null;
  readonly credentials: Credentials;
  readonly mockKey = randomBytes(32);
  /** Bounds the memory held for large client messages across all clients (max_buffered_bytes). */
  readonly messageBudget: MessageBudget;
  tlsContext: SecureContext | null = null;
  private readonly cancels: CancelForwarder;
  private maintenance: NodeJS.Timeout | null = null;
  /** Holds the process's idle-memory check (idle-memory.ts) between start() and stop(). */
  private idleMemoryHeld = false;
  private readonly sharedOptions = new SharedOptions();
  readonly startedAt = Date.now();
  /** What RELOAD and SHUTDOWN on the admin console do (given by the program running the proxy). */
  private readonly adminHooks: AdminHooks;
  private resolver: DatabaseResolver;
  private userSettings: UserSettingsTable;
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
  private readonly sharding: ShardingHost | null;
  private stopped = false;

  constructor(opts: ProxyServerOptions) {
    this.cancels = new CancelForwarder(opts.forwardCancel);
    this.config = opts.config;
    this.resolver = opts.resolve;
    this.userSettings = opts.users ?? new Map();
    this.log = opts.log ?? (() => undefined);
    this.logger = opts.logger;
    this.loginBackoff = opts.loginBackoff === false ? null : new LoginBackoff(opts.loginBackoff ?? {});
    this.onListenerClosed = opts.onListenerClosed;
    this.sharding = opts.sharding ?? null;
    this.sharding?.attachProxy?.({
      inFlight: (groups) => this.inFlight(groups),
      readFloor: (group, lsn) => this.replicaSets.setReadFloor(group, lsn),
    });
    this.adminHooks = opts.adminHooks ?? {};
    this.credentials = new Credentials(
      opts.inlineUsers ?? new Map(),
      opts.config.auth_file,
      opts.config.auth_query ? (db, user) => runAuthQuery(this, db, user) : null,
    );
    this.tlsContext = loadTls(opts.config);
    this.messageBudget = new MessageBudget(opts.config.max_buffered_bytes);
    this.registry = new PoolRegistry(
      () => this.config,
      this.log,
      () => this.userSettings,
    );
    this.replicaSets = new ReplicaSets(this, this.log);
  }
  /** The server legs of sessions busy on these groups (a statement sent, its answer not all in). */
  private inFlight(groups: readonly string[]): HeldLeg[] {
    const out: HeldLeg[] = [];
    for (const c of this.clients) {
      const l = c.session instanceof Session ? c.session.leg : null;
      if (l !== null && !l.idle && groups.includes(l.group)) out.push(l);
    }
    return out;
  }

  get pools(): ReadonlyMap<string, Pool> & Map<string, Pool> {
    return this.registry.pools;
  }
  /** Per database: its relations with hidden code (transaction pooling's state check). */
  get hiddenCode(): ReadonlyMap<string, HiddenCodeRegistry> {
    return this.registry.hiddenCode;
  }
  /** Per-user pool settings (user-settings.ts). */
  get users(): UserSettingsTable {
    return this.userSettings;
  }
  /** PAUSE on the admin console. */
  get paused(): boolean {
    return this.registry.paused;
  }

  /** Read routers by primary pool (SHOW NODES, metrics). */
  get routers(): ReadonlyMap<Pool, ReadRouter> {
    return this.replicaSets.routers;
  }
  /** Commit horizons by primary server. */
  get horizons(): ReadonlyMap<string, { horizon: CommitHorizon }> {
    return this.replicaSets.horizons;
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
      this.registry.maintain();
      this.enforceClientTimeouts();
      const inUse = this.poolsInUse();
      this.registry.freeIdleOnDemand(
        (p) => this.unused(p, inUse),
        (p) => this.dropPool(p, 'the pool was unused'),
      );
    }, 1000);
    this.maintenance.unref();
    idleMemory.acquire();
    this.idleMemoryHeld = true;
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
    if (this.idleMemoryHeld) idleMemory.release();
    this.idleMemoryHeld = false;
    const srv = this.server;
    this.server = null;
    const closed = srv ? new Promise<void>((r) => srv.close(() => r())) : Promise.resolve();
    const bye = buildErrorResponse('FATAL', SqlState.ADMIN_SHUTDOWN, 'the pgscale proxy is shutting down');
    for (const c of [...this.clients]) c.fail(bye);
    this.replicaSets.stop();
    this.registry.stop();
    await closed;
  }

  /**
   * Applies a new config (and, from `pgscale up`, its users' pool settings and passwords);
   * returns the settings that need a restart to take effect.
   */
  reload(
    next: ProxyConfig,
    resolve?: DatabaseResolver,
    users?: { settings: UserSettingsTable; inline: ReadonlyMap<string, string> },
  ): string[] {
    const restart: string[] = [];
    if (next.listen !== this.config.listen) restart.push('proxy.listen');
    if (next.port !== this.config.port) restart.push('proxy.port');
    this.credentials.reloadFile(next.auth_file);
    if (users) {
      this.userSettings = users.settings;
      this.credentials.setInline(users.inline);
    }
    this.tlsContext = loadTls(next);
    this.config = next;
    this.messageBudget.setLimit(next.max_buffered_bytes);
    if (resolve) this.resolver = resolve;
    this.registry.reload(next, this.resolver);
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
    skipTakenClientIds((pid) => this.cancels.has(pid));
    const c = new ClientConn(socket, this, `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`);
    this.clients.add(c);
    this.cancels.add(c);
  }

  /**
   * One log line per failed login: user, database, client address and reason, never a password
   * or a proof. Back-off refusals are not logged one by one (a flood would flood the log): the
   * next failure's line says how many there were.
   */
  loginFailed(f: LoginFailure): void {
    this.loginFailures[f.kind]++;
    if (f.kind === 'throttled') return;
    const fields = failedLoginFields(f, this.loginBackoff);
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
    this.cancels.remove(c);
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
      !inUse.has(p) && p.total === p.idle.length && p.waiting === 0 && !this.replicaSets.servesAsReplica(p)
    );
  }

  /** Closes a pool and forgets it with its router, listener hub and topology bookkeeping. */
  private dropPool(p: Pool, reason: string): void {
    this.registry.drop(p, reason, this.replicaSets.forget(p));
  }

  /** Where a database's connections go now (the resolver's answer). */
  resolve(database: string): DatabaseTarget | null {
    return this.resolver(database);
  }

  /** The pool of (database, server user, server): made on first use. */
  poolFor(database: string, t: DatabaseTarget, user: string, creds: LoginRequest['serverCreds']): Pool {
    return this.registry.poolFor(database, t, user, creds);
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
    if (t.followsTopology) {
      const f = { database: req.database, group: t.group ?? 0, t, user: serverUser, creds };
      this.replicaSets.follow(pool, f, this.holdOnUnreachableMs);
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
    // The user's mode, else the database's, else the default (user-settings.ts).
    const { mode } = effectivePool(this.userSettings.get(serverUser), t, this.config);
    // A pool that follows the topology: its replicas as followGroup last set them, not as `t`
    // had them before this login waited (first server connection, a hold, a PAUSE). A topology
    // change meanwhile found no router to update; one made from the stale list would lack a
    // replica added then (or keep one removed) until the next change of that group.
    const latest = this.replicaSets.latest(pool, t);
    const router =
      mode === 'transaction' &&
      this.config.read_write_split &&
      this.analyzer &&
      (latest.replicas?.length ?? 0) > 0
        ? this.replicaSets.routerFor(req.database, latest, serverUser, creds, pool)
        : null;
    const sharded = shardedSession(
      this,
      this.sharding,
      req.database,
      t,
      serverUser,
      creds,
      mode === 'transaction',
    );
    const session = new Session(
      // The client connection is the session's host: no object or closure per client for it.
      req.client,
      // Equal options are one object for the pool's clients (shared-options.ts).
      this.sharedOptions.of({
        pool,
        mode,
        maxPreparedStatements: this.config.max_prepared_statements,
        listeners: mode === 'transaction' ? this.registry.hubFor(pool) : null,
        startupSettings: req.settings.settings,
        // None given (the usual case): no empty map kept per client.
        startupProxySettings: req.settings.proxy.size > 0 ? req.settings.proxy : undefined,
        router,
        analyzer: this.analyzer,
        consistency: this.config.consistency,
        horizon: (latest.replicas?.length ?? 0) > 0 ? this.replicaSets.horizonFor(latest, pool) : null,
        hiddenCode: mode === 'transaction' ? this.registry.hiddenCodeFor(pool) : null,
        group: String(t.group ?? 0),
        sharding: sharded?.sharding ?? null,
        groupReads: sharded?.groupReads ?? null,
      }),
    );
    return { ok: true, session, params };
  }

  /** Read/write splitting is on and the statement analysis is loaded (shard-pools.ts). */
  get readScaling(): boolean {
    return this.config.read_write_split && this.analyzer !== null;
  }

  /** The whole topology: every group's pools follow that group's primary and replicas. */
  followTopology(t: Topology, holdMs: number): void {
    this.replicaSets.followTopology(t, holdMs);
  }

  /** A group's primary changed (HA): see ReplicaSets.followGroup. */
  followGroup(group: number, primary: Endpoint | null, replicas: readonly Endpoint[], holdMs: number): void {
    this.replicaSets.followGroup(group, primary, replicas, holdMs);
  }

  /** A CancelRequest (cancel-forwarder.ts: where it goes, and why nothing may be said back). */
  cancel(processId: number, key: Buffer, fromOtherInstance = false): void {
    this.cancels.cancel(processId, key, fromOtherInstance);
  }

  /** CancelRequests by what became of them. */
  get cancelCounts(): CancelCounts {
    return this.cancels.counts;
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

  pauseAll(): void {
    this.registry.pauseAll();
  }

  resumeAll(): void {
    this.registry.resumeAll();
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

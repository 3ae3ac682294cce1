/**
 * Sharding inside `pgscale up`: the catalog of distributed and reference tables of the
 * application database, kept in the cluster's state store (the one high availability uses, or
 * the embedded one when HA is off), loaded before the proxy accepts a client and followed as it
 * changes; the proxy's routing over it (ShardRouter); and the Citus API calls, run one at a time
 * as the cluster's superuser on every group's primary; and the statements that run on several
 * groups (DDL on catalog tables, reference-table writes, split INSERTs: sharding/every-group.ts).
 * At start, transactions a crash left prepared are finished: the API calls' and DROP TABLE's as
 * the catalog decides (committed if the catalog has the change), the others by which groups still
 * hold them (every-group-2pc.ts); while running, the same for those prepared long ago, and the
 * client transactions on several groups by their decision records (sharding-decisions.ts).
 */
import pg from 'pg';
import type { Cluster } from '../cluster/cluster.js';
import type { LoadedConfig } from '../config/load.js';
import type { Service } from '../controller/service.js';
import { openStore } from '../ha/open-store.js';
import type { StateStore } from '../ha/store.js';
import type { Logger } from '../obs/logger.js';
import type { DatabaseTarget } from '../proxy/database-target.js';
import { ShardRouter } from '../proxy/shard-router.js';
import { apiError, apiResult } from '../proxy/sharding.js';
import type { DatabaseSharding, ShardingHost } from '../proxy/sharding.js';
import type { HeldLeg } from '../proxy/shard-hold.js';
import { runApi } from '../sharding/api-run.js';
import { apiCallOf, MOVE_CALLS } from '../sharding/api-call.js';
import { runViewRead } from '../sharding/citus-views.js';
import { CatalogStore } from '../sharding/catalog-store.js';
import { decideFromCatalog, pgGroupSession, recoverPrepared } from '../sharding/distribute.js';
import type { GroupSession } from '../sharding/distribute.js';
import { runEveryGroup } from '../sharding/every-group.js';
import { runScatter } from '../sharding/scatter-run.js';
import { startCopyIn } from '../sharding/copy-in.js';
import { GlobalTablesKeeper } from './sharding-global.js';
import type { CopyInStart, CopyInWork } from '../sharding/copy-in.js';
import type { EveryGroupWork, PgGroupSession } from '../sharding/every-group.js';
import { writeDecisions } from '../sharding/every-group-2pc.js';
import { ShardingDecisions } from './sharding-decisions.js';
import { relKey } from '../sharding/types.js';
import type { TopologyView } from '../topology/topology.js';
import { openClaimedStore } from './store-keys.js';
import { ShardHolds } from '../proxy/shard-hold.js';
import { decideMove } from '../sharding/shard-move.js';
import { passfilePath } from '../cluster/secrets.js';
import { MoveRunner } from './sharding-moves.js';
import type { JobRecord } from './sharding-moves.js';
import { HostWork } from './host-work.js';
import { parseLsn } from '../protocol/lsn.js';
import { syncCatalogGroups } from './sharding-groups.js';
import { shardMap } from './sharding-map.js';
import { scanFunctions } from './function-scan.js';
import { mayMove, moveCall, moveHttp, rebalanceStatusRows } from './sharding-move-api.js';
import { subscriptionConninfo } from '../cluster/conf.js';
import { pgSsl } from '../cluster/sql.js';
import type { ShardingProxies } from './sharding-proxies.js';
import type { ShardHoldSync } from './sharding-holds.js';

/** How often group 0's functions are scanned for ones that read distributed tables. */
const FUNCTION_SCAN_MS = 3000;

/** A statement on several groups prepared this long ago and not finished is taken as orphaned. */
const WRITE_ORPHAN_MS = 30_000;

export class ShardingService implements Service, ShardingHost {
  readonly name = 'sharding';
  private catalogs: CatalogStore | null = null;
  /** The store this service opened itself (HA off); HA's is HA's to close. */
  private ownStore: StateStore | null = null;
  private readonly router: ShardRouter;
  /** API calls run one after another (each takes locks on every group). */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly app: string;
  /** Each distributed table's columns in order, read from group 0 whenever the catalog changes. */
  private columns = new Map<string, readonly string[]>();
  /** The same without generated columns: what COPY without a column list takes. */
  private copyColumns = new Map<string, readonly string[]>();
  /**
   * Calls of user functions whose body names a distributed table (null: none): the proxy does
   * not look into functions, so such a call would read one group's rows only; it is refused.
   */
  private functionCalls: RegExp | null = null;
  private functionTimer: NodeJS.Timeout | null = null;
  /** The global tables on group 0 (reads across groups) and their rebuilds. */
  private readonly global: GlobalTablesKeeper;
  private unsubscribeTopology: (() => void) | null = null;
  /** The catalog version `columns` was read for. */
  private columnsVersion = -1;
  /** Transactions on several groups: their decisions and the in-doubt recovery loop. */
  private readonly txs: ShardingDecisions;
  /** Shards held by a move's cutover (the proxy's side). */
  private readonly holds = new ShardHolds();
  /** Several proxies: the cutover's holds at every proxy, and the running job, through etcd. */
  private readonly sync: ShardHoldSync | null;
  /** Shard moves, rebalances and drains (one job at a time). */
  private readonly moves: MoveRunner;
  private store: StateStore | null = null;
  /** Statements on several groups and COPYs running (a move's hold waits for those started before it). */
  private readonly hostWork = new HostWork();
  /** The proxy's read floor per group (set when the proxy attaches). */
  private readFloor: (group: number, lsn: bigint) => void = () => undefined;

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly cluster: Cluster,
    private readonly logger: Logger,
    private readonly view: TopologyView,
    /** High availability's store while it runs (null without HA). */
    private readonly haStore: () => StateStore | null,
    /** Several stateless proxies (cluster-proxy.ts): the cluster-wide duties run where this says. */
    private readonly several: ShardingProxies | null = null,
  ) {
    this.app = loaded.config.app.database;
    this.global = new GlobalTablesKeeper({
      logger,
      database: loaded.config.app.database,
      superuserPassword: () => cluster.secrets().superuser,
      rootCert: () => cluster.rootCert(),
      serverCa: several !== null,
      primary: (g) => this.view.lastPrimary(Number(g)) ?? null,
      current: () => this.catalogs?.current ?? null,
      open: () => this.openPgSessions(null),
      ...(several ? { shared: several.keeperShare() } : {}),
    });
    this.txs = new ShardingDecisions({
      logger,
      primary0: () => this.view.lastPrimary(0) ?? null,
      login: () => ({
        user: loaded.config.postgres.superuser,
        password: cluster.secrets().superuser,
        database: this.app,
        ...pgSsl(cluster.rootCert()),
      }),
      openSessions: () => this.openPgSessions(null),
      sharded: () => this.duty && (this.catalogs?.current.tables.size ?? 0) > 0,
      afterPass: () => {
        // The host's own statements on several groups left prepared, in its queue (never beside
        // one of this process still being committed).
        const run = this.queue.then(() => this.recover(WRITE_ORPHAN_MS));
        this.queue = run.catch(() => undefined);
        return run;
      },
    });
    this.router = new ShardRouter(
      () => this.catalogs?.current ?? null,
      (sql, user, searchPath) => this.api(sql, user, searchPath),
      (t) => this.columns.get(relKey(t.rel)) ?? null,
      (work, user) => this.hostWork.counted(() => this.host(work, user)),
      (work, user) => this.hostWork.countedCopy(() => this.copyIn(work, user)),
      (t) => this.copyColumns.get(relKey(t.rel)) ?? null,
      () => this.global.tables,
      () => this.functionCalls,
      this.txs.decider,
      this.holds,
      () => this.global.pending,
    );
    this.sync =
      several?.holdSync({
        holds: this.holds,
        reloadCatalog: async () => {
          await this.catalogs?.load();
        },
        readFloor: (g, lsn) => {
          const at = parseLsn(lsn);
          if (at !== null) this.readFloor(Number(g), at);
        },
        idle: () => this.queue.then(() => undefined),
      }) ?? null;
    const sync = this.sync;
    this.moves = new MoveRunner({
      catalogs: () => this.catalogs,
      connect: async (g) => {
        const primary = this.view.lastPrimary(Number(g));
        if (!primary) throw new Error(`group ${g} has no primary right now`);
        const c = this.superuserClient(primary);
        try {
          await c.connect();
        } catch (e) {
          await c.end().catch(() => undefined);
          throw e;
        }
        return c;
      },
      conninfo: (g) => {
        const p = this.view.lastPrimary(Number(g));
        if (!p) throw new Error(`group ${g} has no primary right now`);
        return subscriptionConninfo(
          p,
          this.app,
          this.loaded.config.postgres.superuser,
          // Several hosts: the target's server reads the passfile its agent gave it (PGPASSFILE in
          // its environment); a path on this proxy's host would mean nothing there.
          several ? null : passfilePath(this.cluster.dataDir),
          this.cluster.rootCert(),
        );
      },
      holds: sync ?? this.holds,
      logger,
      store: () => this.store,
      afterMove: () => this.syncGlobal(),
      arrived: (g, lsn) => {
        const at = parseLsn(lsn);
        if (at !== null) this.readFloor(Number(g), at);
        sync?.noteArrival(g, lsn);
      },
      ...(sync
        ? {
            beforeJob: (job: JobRecord) => sync.jobStarted(job.id, job.kind),
            afterJob: () => sync.jobEnded(),
          }
        : {}),
    });
  }

  /** This process runs the duties that run once in the cluster (always, but with several proxies). */
  private get duty(): boolean {
    return this.several?.duty ?? true;
  }

  /** The configuration's groups, as the cluster has them now (add-group, remove-group). */
  private get groups(): string[] {
    return this.cluster.config.groups.map((_, i) => String(i));
  }

  async start(): Promise<void> {
    const store =
      this.haStore() ??
      (this.ownStore = await openClaimedStore(this.cluster, () => openStore(this.loaded, this.logger)));
    this.store = store;
    const catalogs = new CatalogStore(store, { groups: this.groups });
    catalogs.onError((e) => this.logger.error({ err: e }, `sharding catalog: ${e.message}`));
    await catalogs.load();
    this.catalogs = catalogs;
    // First: a crash's prepared transactions hold locks that what follows would wait on (a shard
    // move's TRUNCATE prepared on its source, say). With several proxies, another may be committing
    // its own right now: the duty holder's recovery passes take only those left long ago.
    if (!this.several)
      await this.recover().catch((e: unknown) =>
        this.logger.warn({ err: e }, 'sharding: prepared transactions left by a crash could not be checked'),
      );
    await this.sync?.start();
    await this.several?.start({
      gained: () => {
        void this.reload().then(() => this.syncGlobal(true));
        // Jobs run in the duty holder: the history is read, an interrupted job resumed.
        void this.moves
          .start()
          .catch((e: unknown) =>
            this.logger.warn(
              { err: e },
              'sharding: the shard moves a crash interrupted could not be checked',
            ),
          );
      },
      rebuild: () => void this.syncGlobal(true),
      // Its holds could not be written any more anyway (they are bound to its lease).
      lost: () => void this.moves.cancel(),
      published: (rec) => this.global.adopt(rec),
    });
    await this.syncGroups();
    await this.loadColumns();
    this.several?.seen(catalogs.current.version);
    // Another proxy's change (several hosts): its tables' columns are read here too.
    catalogs.onChange((c) => {
      // From now until the rebuild, reads over the global tables wait rather than fail.
      this.global.changed();
      this.loadColumns()
        .catch((e: unknown) =>
          this.logger.warn({ err: e }, 'sharding: could not read the columns of distributed tables'),
        )
        .then(() => this.several?.seen(c.version))
        .then(() => this.syncGlobal())
        .catch(() => undefined);
    });
    await this.syncGlobal();
    await this.loadFunctions();
    // Functions are created like any local DDL, through the proxy or not: looked for again often.
    this.functionTimer = setInterval(() => void this.loadFunctions(), FUNCTION_SCAN_MS);
    this.functionTimer.unref();
    this.txs.start();
    if (!this.several)
      await this.moves
        .start()
        .catch((e: unknown) =>
          this.logger.warn({ err: e }, 'sharding: the shard moves a crash interrupted could not be checked'),
        );
    // A group's primary moved: the foreign servers of the global tables follow it.
    this.unsubscribeTopology = this.view.subscribe(() => {
      if (this.global.stale(this.catalogs?.current ?? null)) void this.syncGlobal();
    });
  }

  async stop(): Promise<void> {
    await this.several?.stop();
    await this.moves.stop();
    this.sync?.stop();
    if (this.functionTimer) clearInterval(this.functionTimer);
    this.functionTimer = null;
    await this.txs.stop();
    this.unsubscribeTopology?.();
    this.unsubscribeTopology = null;
    this.catalogs?.close();
    this.catalogs = null;
    await this.ownStore?.close().catch(() => undefined);
    this.ownStore = null;
  }

  status(): unknown {
    const c = this.catalogs?.current;
    if (!c) return { catalog: 'not loaded' };
    const shards = shardMap(c).shards_per_group;
    const job = this.moves.status().current;
    return {
      catalog_version: c.version,
      tables: c.tables.size,
      groups: c.groups,
      shards_per_group: shards,
      moving: job === null ? null : { job: job.id, kind: job.kind },
    };
  }

  /** Why catalog changes wait now (a job moves shards), or null. */
  private movingRefusal(): string | null {
    const job = this.moves.status().current ?? this.sync?.remoteJob ?? null;
    return job === null
      ? null
      : `shards are being moved (${job.kind} job ${job.id}: see pgscale rebalance --status; pgscale rebalance --cancel stops it)`;
  }

  /** The configuration changed (add-group, remove-group): the catalog's groups follow it. */
  async reload(): Promise<string[]> {
    const run = this.queue.then(() => this.syncGroups());
    this.queue = run.catch(() => undefined);
    await run;
    return [];
  }

  /** syncCatalogGroups() (sharding-groups.ts) for the configuration's groups; never throws. */
  private async syncGroups(): Promise<void> {
    const catalogs = this.catalogs;
    if (!catalogs || !this.duty) return;
    await syncCatalogGroups(catalogs, this.groups, {
      logger: this.logger,
      open: (groups) => this.openPgSessions(groups, groups),
      rebuild: () => this.buildGlobal(),
    });
  }

  /** POST/GET /sharding/…: shard moves, rebalance, drain (docs/http-api.md). */
  handle(method: string, path: string, body: unknown): Promise<{ status: number; body: unknown } | null> {
    if (method === 'GET' && path === '/sharding/map') {
      const c = this.catalogs?.current;
      return Promise.resolve(
        c
          ? { status: 200, body: shardMap(c) }
          : { status: 503, body: { error: 'the sharding catalog is not loaded yet' } },
      );
    }
    const elsewhere = this.several?.movesElsewhere() ?? null;
    if (elsewhere !== null && method === 'POST')
      return Promise.resolve({ status: 409, body: { error: elsewhere } });
    return Promise.resolve(moveHttp(this.moves, method, path, body));
  }

  // ------------------------------------------------------------------ ShardingHost

  attachProxy(p: {
    inFlight(groups: readonly string[]): HeldLeg[];
    readFloor(group: number, lsn: bigint): void;
  }): void {
    this.holds.inFlight = (groups) => [...p.inFlight(groups), ...this.hostWork.running()];
    this.readFloor = (g, lsn) => p.readFloor(g, lsn);
  }

  forDatabase(database: string): DatabaseSharding | null {
    return database === this.app ? this.router : null;
  }

  groupTarget(database: string, group: string): DatabaseTarget | null {
    const g = Number(group);
    const primary = this.view.lastPrimary(g);
    if (!primary) return null;
    return {
      host: primary.host,
      port: primary.port,
      dbname: database,
      followsTopology: true,
      group: g,
      replicas: this.view.current().groups[g]?.replicas ?? [],
    };
  }

  // ------------------------------------------------------------------ API calls

  private api(sql: string, user: string, searchPath: string | undefined): Promise<Buffer[]> {
    const parsed = apiCallOf(sql);
    const elsewhere = this.several?.movesElsewhere() ?? null;
    if (parsed?.ok === true && MOVE_CALLS.has(parsed.call.fn) && elsewhere !== null)
      return Promise.resolve(apiError('0A000', `${parsed.call.fn}: ${elsewhere}`));
    if (parsed?.ok === true && MOVE_CALLS.has(parsed.call.fn))
      return moveCall(parsed.call, user, {
        moves: this.moves,
        catalog: () => this.catalogs?.current ?? null,
        primaryOf: (g) => this.view.lastPrimary(Number(g)) ?? null,
        mayMove: (u) => {
          const primary = this.view.lastPrimary(0);
          return primary
            ? mayMove(u, this.catalogs?.current ?? null, () => this.superuserClient(primary))
            : Promise.resolve(false);
        },
      });
    const run = this.queue.then(async () => {
      const catalogs = this.catalogs;
      if (!catalogs) return apiError('57P03', 'the sharding catalog is not loaded');
      const moving = this.movingRefusal();
      if (moving && !/get_shard_id_for_distribution_column/i.test(sql))
        return apiError('55006', `${moving}; tables are distributed or undistributed after it ends`);
      const reply = await runApi(sql, user, {
        catalogs,
        ...(searchPath === undefined ? {} : { searchPath }),
        openSessions: () => this.openSessions(),
        onProgress: (p) =>
          this.logger.info(
            { table: `${p.table.schema}.${p.table.name}`, group: p.group, rows: p.rows, done: p.done },
            `sharding: ${p.table.name}: ${p.rows} rows on group ${p.group}${p.done ? ' (done)' : ''}`,
          ),
      });
      if (!reply.ok) return apiError(reply.sqlstate, reply.message, reply.detail);
      // The caller's next INSERT may name no columns: their order is known before it is answered;
      // and its next read across groups finds the table's global table.
      await this.loadColumns().catch((e: unknown) =>
        this.logger.warn({ err: e }, 'sharding: could not read the columns of distributed tables'),
      );
      await this.buildGlobal();
      // Several proxies: the caller's next statement may go through another one.
      await this.several?.othersHave(catalogs.current.version);
      this.logger.info({ user, call: reply.column }, `sharding: ${reply.column} done`);
      return apiResult(reply.column, reply.type, reply.value);
    });
    this.queue = run.catch(() => undefined);
    return run.catch((e: unknown) =>
      apiError('XX000', `sharding: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  /**
   * A statement on several groups (ShardRouter's 'host' targets): run with two-phase commit, one
   * at a time with the API calls (DDL and catalog changes must not interleave). After DDL the
   * tables' columns are read again before the reply, so the next INSERT naming no columns routes.
   */
  private host(work: EveryGroupWork, user: string): Promise<Buffer[]> {
    if (work.kind === 'views') return this.views(work.sql, work.params ?? [], user);
    if (work.kind === 'scatter')
      return runScatter(work, user, {
        openSessions: (groups) => this.openPgSessions(groups),
        key: (g) => {
          const p = this.view.lastPrimary(Number(g));
          return p ? `${p.host}:${p.port}` : null;
        },
        onRun: (path, why) => {
          if (path === 'fallback')
            this.logger.debug({ why }, 'sharding: a read across groups took the general path');
        },
      });
    const run = this.queue.then(async () => {
      const catalogs = this.catalogs;
      if (!catalogs) return apiError('57P03', 'the sharding catalog is not loaded');
      // DDL on catalog tables while shards move: a moving shard's copy on the target is not a
      // partition yet, so DDL would not reach it and its replication would break.
      const moving = this.movingRefusal();
      if (moving && work.kind === 'all' && work.distributed !== true && work.compare.length === 0)
        return apiError('55006', `${moving}; DDL on distributed and reference tables waits until it ends`);
      const r = await runEveryGroup(work, user, {
        catalogs,
        openSessions: () =>
          this.openPgSessions(work.kind === 'split' ? work.parts.map((p) => p.group) : null),
        onPending: (groups) =>
          this.logger.warn(
            { groups },
            `sharding: a statement on several groups committed; groups ${groups.join(', ')} finish at recovery`,
          ),
      });
      if (r.ddl) {
        await this.loadColumns(true).catch((e: unknown) =>
          this.logger.warn({ err: e }, 'sharding: could not read the columns of distributed tables'),
        );
        await this.buildGlobal(true);
      }
      return r.replies;
    });
    this.queue = run.catch(() => undefined);
    return run.catch((e: unknown) =>
      apiError('XX000', `sharding: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  /**
   * A COPY … FROM STDIN split by row (sharding/copy-in.ts). Not queued behind the API calls: it
   * changes no catalog, and PostgreSQL's locks on each group order it with DDL there.
   */
  private copyIn(work: CopyInWork, user: string): Promise<CopyInStart> {
    return startCopyIn(work, user, {
      catalog: () => this.catalogs?.current ?? null,
      openSessions: (groups) => this.openPgSessions(groups),
      onPending: (groups) =>
        this.logger.warn(
          { groups },
          `sharding: a COPY on several groups committed; groups ${groups.join(', ')} finish at recovery`,
        ),
    });
  }

  /** A read of citus_tables / citus_shards (citus-views.ts): not queued behind changes. */
  private async views(sql: string, params: readonly (string | null)[], user: string): Promise<Buffer[]> {
    const catalogs = this.catalogs;
    if (!catalogs) return apiError('57P03', 'the sharding catalog is not loaded');
    if (params.length > 0)
      return apiError('0A000', 'citus_tables and citus_shards are read through pgscale without parameters');
    try {
      const opened = await this.openPgSessions(null);
      try {
        return await runViewRead(sql, user, {
          catalog: catalogs.current,
          sessions: opened.sessions,
          node: (g) => {
            const p = this.view.lastPrimary(Number(g));
            return { name: p?.host ?? '', port: p?.port ?? 0 };
          },
          rebalance: rebalanceStatusRows(this.moves.status()),
        });
      } finally {
        await opened.close();
      }
    } catch (e) {
      return apiError('XX000', `sharding: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /**
   * Reads the column order of every table of the catalog from group 0: once per catalog version,
   * or again when `force` (DDL changed columns without changing the catalog).
   */
  private async loadColumns(force = false): Promise<void> {
    const catalog = this.catalogs?.current;
    if (!catalog || (!force && catalog.version === this.columnsVersion)) return;
    const tables = [...catalog.tables.values()];
    const next = new Map<string, readonly string[]>();
    const nextCopy = new Map<string, readonly string[]>();
    if (tables.length > 0) {
      const primary = this.view.lastPrimary(0);
      if (!primary) throw new Error('group 0 has no primary right now');
      const c = this.superuserClient(primary);
      try {
        await c.connect();
        const r = await c.query<{ schema: string; name: string; columns: string[]; copy: string[] }>(
          `SELECT n.nspname AS schema, c.relname AS name, array_agg(a.attname::text ORDER BY a.attnum) AS columns,
                  coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attgenerated = ''), '{}') AS copy
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            GROUP BY 1, 2`,
          [tables.map((t) => t.rel.schema), tables.map((t) => t.rel.name)],
        );
        for (const row of r.rows) {
          next.set(relKey({ schema: row.schema, name: row.name }), row.columns);
          nextCopy.set(relKey({ schema: row.schema, name: row.name }), row.copy);
        }
      } finally {
        await c.end().catch(() => undefined);
      }
    }
    this.columns = next;
    this.copyColumns = nextCopy;
    this.columnsVersion = catalog.version;
    this.router.columnsChanged();
  }

  /** The calls of functions that read distributed tables (function-scan.ts); never throws. */
  private async loadFunctions(): Promise<void> {
    const catalog = this.catalogs?.current;
    const primary = this.view.lastPrimary(0);
    if (!catalog || !primary) return;
    try {
      this.functionCalls = await scanFunctions(catalog, () => this.superuserClient(primary));
    } catch (e) {
      this.logger.warn(
        { err: e instanceof Error ? e.message : String(e) },
        'sharding: could not scan functions',
      );
    }
  }

  /** buildGlobal() in the queue (after the API calls and statements already waiting). */
  private syncGlobal(force = false): Promise<void> {
    const run = this.queue.then(() => this.buildGlobal(force));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The global tables rebuilt for the current catalog if needed (sharding-global.ts); never throws. */
  private buildGlobal(force = false): Promise<void> {
    const catalog = this.catalogs?.current;
    return catalog ? this.global.build(catalog, force) : Promise.resolve();
  }

  /** A client (not connected yet) to `primary`'s application database as the cluster's superuser. */
  private superuserClient(primary: { host: string; port: number }): pg.Client {
    const c = new pg.Client({
      host: primary.host,
      port: primary.port,
      user: this.loaded.config.postgres.superuser,
      password: this.cluster.secrets().superuser,
      database: this.app,
      application_name: 'pgscale sharding',
      ...pgSsl(this.cluster.rootCert()),
    });
    c.on('error', () => undefined);
    return c;
  }

  /** A superuser session on each group's primary, in the catalog's group order. */
  private async openSessions(): Promise<{ sessions: GroupSession[]; close(): Promise<void> }> {
    const opened = await this.openPgSessions(null);
    return {
      sessions: opened.sessions.map((s) => pgGroupSession(s.group, s.client)),
      close: () => opened.close(),
    };
  }

  /** openSessions() with the node-postgres clients, on `only` these groups if given (in catalog order). */
  private async openPgSessions(
    only: readonly string[] | null,
    /** The groups to pick from (default: the catalog's). */
    among?: readonly string[],
  ): Promise<{ sessions: PgGroupSession[]; close(): Promise<void> }> {
    const clients: pg.Client[] = [];
    const close = async () => {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    };
    try {
      const sessions: PgGroupSession[] = [];
      const all = among ?? this.catalogs?.current.groups ?? this.groups;
      for (const group of only === null ? all : all.filter((g) => only.includes(g))) {
        const primary = this.view.lastPrimary(Number(group));
        if (!primary) throw new Error(`group ${group} has no primary right now`);
        const c = this.superuserClient(primary);
        clients.push(c);
        await c.connect();
        sessions.push({ group, client: c });
      }
      return { sessions, close };
    } catch (e) {
      await close();
      throw e;
    }
  }

  /** Finishes two-phase transactions a crash left prepared: committed if the catalog has the change. */
  private async recover(olderThanMs = 0): Promise<void> {
    const catalogs = this.catalogs;
    if (!catalogs || catalogs.current.groups.length === 0) return;
    const opened = await this.openSessions();
    try {
      // A statement on several groups that kept the catalog: decided by which groups still hold it.
      const writes = await writeDecisions(opened.sessions);
      const found = await recoverPrepared(
        opened.sessions,
        (gid) =>
          writes.get(gid) ??
          decideMove(gid, catalogs.current) ??
          decideFromCatalog(gid, (key) => catalogs.current.tables.has(key)),
        { olderThanMs },
      );
      for (const t of found)
        this.logger.warn(
          { gid: t.gid, group: t.group, action: t.action },
          `sharding: ${t.gid} on group ${t.group}: ${t.action}`,
        );
    } finally {
      await opened.close();
    }
  }
}

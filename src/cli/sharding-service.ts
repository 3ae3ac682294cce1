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
import type { ApiCall } from '../sharding/api-call.js';
import { runViewRead } from '../sharding/citus-views.js';
import { isCatalogError, withGroups } from '../sharding/catalog.js';
import { CatalogStore } from '../sharding/catalog-store.js';
import { decideFromCatalog, pgGroupSession, recoverPrepared } from '../sharding/distribute.js';
import type { GroupSession } from '../sharding/distribute.js';
import { runEveryGroup } from '../sharding/every-group.js';
import { runScatter } from '../sharding/scatter-run.js';
import { startCopyIn } from '../sharding/copy-in.js';
import { syncGlobalTables } from '../sharding/global-tables.js';
import type { GlobalTables } from '../proxy/shard-router.js';
import type { CopyInStart, CopyInWork } from '../sharding/copy-in.js';
import type { EveryGroupWork, PgGroupSession } from '../sharding/every-group.js';
import { writeDecisions } from '../sharding/every-group-2pc.js';
import { ShardingDecisions } from './sharding-decisions.js';
import { relKey } from '../sharding/types.js';
import type { TopologyView } from '../topology/topology.js';
import { openClaimedStore } from './store-keys.js';
import { ShardHolds } from '../proxy/shard-hold.js';
import { decideMove } from '../sharding/shard-move.js';
import { prepareJoin } from '../sharding/group-join.js';
import { passfilePath } from '../cluster/secrets.js';
import { JobError, MoveRunner, shardById } from './sharding-moves.js';
import type { JobRecord } from './sharding-moves.js';

/** How often group 0's functions are scanned for ones that read distributed tables. */
const FUNCTION_SCAN_MS = 3000;

/** A statement on several groups prepared this long ago and not finished is taken as orphaned. */
const WRITE_ORPHAN_MS = 30_000;

/** A JSON field as text ('' when it is neither a string nor a number). */
function text(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
}

function regexQuote(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

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
  /** The global tables on group 0 (reads across groups), as last built; null before the first build. */
  private globalTables: GlobalTables | null = null;
  /** Where each group's primary was when they were built (a move rebuilds them). */
  private globalEndpoints = '';
  private unsubscribeTopology: (() => void) | null = null;
  /** The catalog version `columns` was read for. */
  private columnsVersion = -1;
  /** Transactions on several groups: their decisions and the in-doubt recovery loop. */
  private readonly txs: ShardingDecisions;
  /** Shards held by a move's cutover (the proxy's side). */
  private readonly holds = new ShardHolds();
  /** Shard moves, rebalances and drains (one job at a time). */
  private readonly moves: MoveRunner;
  private store: StateStore | null = null;
  /** Statements on several groups and COPYs running (a move's hold waits for those started before it). */
  private readonly hostWork = new Set<{ readonly group: string; idle: boolean }>();

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly cluster: Cluster,
    private readonly logger: Logger,
    private readonly view: TopologyView,
    /** High availability's store while it runs (null without HA). */
    private readonly haStore: () => StateStore | null,
  ) {
    this.app = loaded.config.app.database;
    this.txs = new ShardingDecisions({
      logger,
      primary0: () => this.view.lastPrimary(0) ?? null,
      login: () => ({
        user: loaded.config.postgres.superuser,
        password: cluster.secrets().superuser,
        database: this.app,
      }),
      openSessions: () => this.openPgSessions(null),
      sharded: () => (this.catalogs?.current.tables.size ?? 0) > 0,
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
      (work, user) => this.counted(() => this.host(work, user)),
      (work, user) => this.countedCopy(work, user),
      (t) => this.copyColumns.get(relKey(t.rel)) ?? null,
      () => this.globalTables,
      () => this.functionCalls,
      this.txs.decider,
      this.holds,
    );
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
      conninfo: (g) => this.conninfo(g),
      holds: this.holds,
      logger,
      store: () => this.store,
      afterMove: () => this.syncGlobal(),
    });
  }

  /** How a subscription on another group reaches `group`'s primary: the passfile, no password. */
  private conninfo(group: string): string {
    const p = this.view.lastPrimary(Number(group));
    if (!p) throw new Error(`group ${group} has no primary right now`);
    const kv = (k: string, v: string | number) =>
      `${k}='${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    return [
      kv('host', p.host),
      kv('port', p.port),
      kv('dbname', this.app),
      kv('user', this.loaded.config.postgres.superuser),
      kv('passfile', passfilePath(this.cluster.dataDir)),
      kv('application_name', 'pgscale_move'),
    ].join(' ');
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
    // move's TRUNCATE prepared on its source, say).
    await this.recover().catch((e: unknown) =>
      this.logger.warn({ err: e }, 'sharding: prepared transactions left by a crash could not be checked'),
    );
    await this.syncGroups();
    await this.loadColumns();
    // Another proxy's change (several hosts): its tables' columns are read here too.
    catalogs.onChange(() => {
      this.loadColumns()
        .catch((e: unknown) =>
          this.logger.warn({ err: e }, 'sharding: could not read the columns of distributed tables'),
        )
        .then(() => this.syncGlobal())
        .catch(() => undefined);
    });
    await this.syncGlobal();
    await this.loadFunctions();
    // Functions are created like any local DDL, through the proxy or not: looked for again often.
    this.functionTimer = setInterval(() => void this.loadFunctions(), FUNCTION_SCAN_MS);
    this.functionTimer.unref();
    this.txs.start();
    await this.moves
      .start()
      .catch((e: unknown) =>
        this.logger.warn({ err: e }, 'sharding: the shard moves a crash interrupted could not be checked'),
      );
    // A group's primary moved: the foreign servers of the global tables follow it.
    this.unsubscribeTopology = this.view.subscribe(() => {
      if (this.endpointsKey() !== this.globalEndpoints) void this.syncGlobal();
    });
  }

  async stop(): Promise<void> {
    await this.moves.stop();
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
    const shards: Record<string, number> = Object.fromEntries(c.groups.map((g) => [g, 0]));
    for (const col of c.colocations.values())
      if (col.type !== null) for (const g of col.placement) shards[g] = (shards[g] ?? 0) + 1;
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
    const job = this.moves.status().current;
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

  /**
   * Brings the catalog's groups in line with the configuration's: a new group first gets every
   * table of the catalog (sharding/group-join.ts), then joins; a group gone from the
   * configuration leaves the catalog when it holds no shard. Never throws (logged).
   */
  private async syncGroups(): Promise<void> {
    const catalogs = this.catalogs;
    if (!catalogs) return;
    const want = this.groups;
    const have = catalogs.current.groups;
    try {
      for (const g of want) {
        if (have.includes(g)) continue;
        const join = async () => {
          const r = await catalogs.update((c) => withGroups(c, [...c.groups, g]));
          if (isCatalogError(r)) throw new Error(r.message);
        };
        if (catalogs.current.tables.size === 0) await join();
        else {
          const opened = await this.openPgSessions(['0', g], ['0', g]);
          try {
            const [g0, target] = opened.sessions.map((s) => pgGroupSession(s.group, s.client));
            await prepareJoin(catalogs.current, g0!, target!, want.indexOf(g), join, (p) =>
              this.logger.info(p, `sharding: group ${g}: reference table ${p.table} copied (${p.rows} rows)`),
            );
          } finally {
            await opened.close();
          }
        }
        this.logger.info(`sharding: group ${g} joined the catalog (it holds no shard until a rebalance)`);
      }
      const gone = catalogs.current.groups.filter((g) => !want.includes(g));
      const joined = want.some((g) => !have.includes(g));
      if (gone.length > 0) {
        const r = await catalogs.update((c) =>
          withGroups(
            c,
            c.groups.filter((g) => want.includes(g)),
          ),
        );
        if (isCatalogError(r)) this.logger.warn(`sharding catalog: groups not updated: ${r.message}`);
        else this.logger.info(`sharding: group(s) ${gone.join(', ')} left the catalog`);
      }
      if (joined || gone.length > 0) await this.buildGlobal();
    } catch (e) {
      this.logger.error(
        { err: e instanceof Error ? e.message : String(e) },
        'sharding: the catalog could not take in the groups of the configuration',
      );
    }
  }

  /** POST/GET /sharding/…: shard moves, rebalance, drain (docs/http-api.md). */
  handle(method: string, path: string, body: unknown): Promise<{ status: number; body: unknown } | null> {
    return Promise.resolve(this.handleNow(method, path, body));
  }

  private handleNow(method: string, path: string, body: unknown): { status: number; body: unknown } | null {
    if (!path.startsWith('/sharding/')) return null;
    if (body !== null && (typeof body !== 'object' || Array.isArray(body)))
      return { status: 400, body: { error: 'the request body must be a JSON object' } };
    const b = (body ?? {}) as Record<string, unknown>;
    const allowed: Record<string, readonly string[]> = {
      '/sharding/move': ['shard_id', 'to'],
      '/sharding/rebalance': ['by'],
      '/sharding/drain': ['group', 'by'],
      '/sharding/cancel': [],
    };
    const keys = allowed[path];
    const unknown = keys === undefined ? undefined : Object.keys(b).find((k) => !keys.includes(k));
    if (method === 'POST' && unknown !== undefined)
      return {
        status: 400,
        body: {
          error: `unknown key "${unknown}" in the request body; it accepts ${keys!.join(', ') || 'none'}`,
        },
      };
    try {
      if (method === 'GET' && path === '/sharding/moves') return { status: 200, body: this.moves.status() };
      if (method !== 'POST') return null;
      switch (path) {
        case '/sharding/move': {
          const shardId = b.shard_id;
          if (typeof shardId !== 'number' || !Number.isInteger(shardId))
            throw new JobError('shard_id: must be a shard id (a JSON integer, see citus_shards)');
          return {
            status: 202,
            body: { job: this.moves.submit({ kind: 'move', shardId, to: text(b.to) }) },
          };
        }
        case '/sharding/rebalance': {
          const by = b.by === undefined ? 'count' : b.by;
          if (by !== 'count' && by !== 'size') throw new JobError('by must be "count" or "size"');
          return { status: 202, body: { job: this.moves.submit({ kind: 'rebalance', by }) } };
        }
        case '/sharding/drain':
          if (!/^\d+$/.test(text(b.group))) throw new JobError('group: must name a group (0, 1, …)');
          return {
            status: 202,
            body: {
              job: this.moves.submit({
                kind: 'drain',
                group: text(b.group),
                ...(b.by === 'size' || b.by === 'count' ? { by: b.by } : {}),
              }),
            },
          };
        case '/sharding/cancel':
          return { status: this.moves.cancel() ? 202 : 409, body: { cancelled: this.moves.busy } };
        default:
          return null;
      }
    } catch (e) {
      if (e instanceof JobError) return { status: e.status, body: { error: e.message } };
      throw e;
    }
  }

  // ------------------------------------------------------------------ ShardingHost

  attachProxy(p: { inFlight(groups: readonly string[]): HeldLeg[] }): void {
    this.holds.inFlight = (groups) => [...p.inFlight(groups), ...this.hostWork];
  }

  /** `work` counted in hostWork while it runs. */
  private counted<T>(work: () => Promise<T>): Promise<T> {
    const mark = { group: '*', idle: false };
    this.hostWork.add(mark);
    const done = () => {
      mark.idle = true;
      this.hostWork.delete(mark);
    };
    const p = work();
    p.then(done, done);
    return p;
  }

  /** A COPY split by row, counted in hostWork until its data has all gone (finish or abort). */
  private async countedCopy(work: CopyInWork, user: string): Promise<CopyInStart> {
    const mark = { group: '*', idle: false };
    this.hostWork.add(mark);
    const done = () => {
      mark.idle = true;
      this.hostWork.delete(mark);
    };
    try {
      const start = await this.copyIn(work, user);
      if (!start.ok) {
        done();
        return start;
      }
      const { stream } = start;
      const finish = stream.finish.bind(stream);
      const abort = stream.abort.bind(stream);
      stream.finish = () => finish().finally(done);
      stream.abort = (m, e) => abort(m, e).finally(done);
      return start;
    } catch (e) {
      done();
      throw e;
    }
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

  /**
   * Citus's shard-move calls through the proxy: citus_move_shard_placement (nodes named by their
   * group's primary, as citus_shards shows them) and citus_drain_node wait for their job;
   * citus_rebalance_start returns its job id; citus_rebalance_wait and _stop. The caller must be a
   * superuser or own every distributed table (what a move may touch).
   */
  private async moveCall(call: ApiCall, user: string): Promise<Buffer[]> {
    const catalogs = this.catalogs;
    if (!catalogs) return apiError('57P03', 'the sharding catalog is not loaded');
    if (!(await this.mayMove(user)))
      return apiError('42501', `${call.fn} needs a superuser or the owner of every distributed table`);
    const groupAt = (name: unknown, port: unknown): string | null => {
      for (const g of catalogs.current.groups) {
        const p = this.view.lastPrimary(Number(g));
        if (p && p.host === name && p.port === Number(port)) return g;
      }
      return null;
    };
    const done = (job: JobRecord): Buffer[] =>
      job.state === 'done'
        ? apiResult(call.column, 'void', '')
        : apiError('55000', `${job.kind} job ${job.id} ${job.state}${job.error ? `: ${job.error}` : ''}`);
    try {
      switch (call.fn) {
        case 'citus_move_shard_placement': {
          const from = groupAt(call.args.source_node_name, call.args.source_node_port);
          const to = groupAt(call.args.target_node_name, call.args.target_node_port);
          if (from === null || to === null)
            return apiError('22023', 'a node named here is not the primary of a group (see citus_shards)');
          const shardId = Number(call.args.shard_id);
          const found = shardById(catalogs.current, shardId);
          if (found !== null && found.group !== from)
            return apiError(
              '22023',
              `shard ${shardId} is not on ${String(call.args.source_node_name)}:${String(call.args.source_node_port)}`,
            );
          this.moves.submit({ kind: 'move', shardId, to });
          return done(await this.moves.wait()!);
        }
        case 'citus_drain_node': {
          const g = groupAt(call.args.nodename, call.args.nodeport);
          if (g === null) return apiError('22023', 'the node named is not the primary of a group');
          this.moves.submit({ kind: 'drain', group: g });
          return done(await this.moves.wait()!);
        }
        case 'citus_rebalance_start': {
          const strategy = call.args.rebalance_strategy;
          if (strategy !== null && strategy !== 'by_shard_count' && strategy !== 'by_disk_size')
            return apiError(
              '22023',
              `no rebalance strategy named ${String(strategy)} (by_shard_count, by_disk_size)`,
            );
          if (call.args.drain_only === true) return apiError('0A000', 'drain_only: use citus_drain_node');
          const job = this.moves.submit({
            kind: 'rebalance',
            by: strategy === 'by_disk_size' ? 'size' : 'count',
          });
          return apiResult(call.column, 'bigint', job.id);
        }
        case 'citus_rebalance_wait': {
          const w = this.moves.wait();
          if (w !== null) await w;
          return apiResult(call.column, 'void', '');
        }
        case 'citus_rebalance_stop': {
          const w = this.moves.wait();
          this.moves.cancel();
          if (w !== null) await w;
          return apiResult(call.column, 'void', '');
        }
        default:
          return apiError('0A000', `${call.fn} is not a shard move call`);
      }
    } catch (e) {
      if (e instanceof JobError) return apiError(e.status === 409 ? '55006' : '22023', e.message);
      return apiError('XX000', `sharding: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** `user` is a superuser or a member of the owner of every distributed table. */
  private async mayMove(user: string): Promise<boolean> {
    const primary = this.view.lastPrimary(0);
    if (!primary) return false;
    const tables = [...(this.catalogs?.current.tables.values() ?? [])].filter(
      (t) => t.kind === 'distributed',
    );
    const c = this.superuserClient(primary);
    try {
      await c.connect();
      const r = await c.query<{ ok: boolean }>(
        `SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = $1), false)
             OR coalesce(bool_and(pg_has_role($1, c.relowner, 'USAGE')), true) AS ok
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
        [user, tables.map((t) => t.rel.schema), tables.map((t) => t.rel.name)],
      );
      return r.rows[0]?.ok === true;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  private api(sql: string, user: string, searchPath: string | undefined): Promise<Buffer[]> {
    const parsed = apiCallOf(sql);
    if (parsed?.ok === true && MOVE_CALLS.has(parsed.call.fn)) return this.moveCall(parsed.call, user);
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

  /**
   * The user functions (SQL, PL/pgSQL) of group 0 whose body names a distributed table, as one
   * pattern matching a call of any of them (lexical, conservative). Never throws.
   */
  private async loadFunctions(): Promise<void> {
    const catalog = this.catalogs?.current;
    const names = catalog
      ? [...catalog.tables.values()].filter((t) => t.kind === 'distributed').map((t) => t.rel.name)
      : [];
    if (names.length === 0) {
      this.functionCalls = null;
      return;
    }
    const primary = this.view.lastPrimary(0);
    if (!primary) return;
    const c = this.superuserClient(primary);
    try {
      await c.connect();
      const r = await c.query<{ name: string }>(
        `SELECT DISTINCT p.proname AS name FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND l.lanname IN ('sql', 'plpgsql')
            AND p.prosrc ~* $1`,
        [`\\m(${names.map(regexQuote).join('|')})\\M`],
      );
      this.functionCalls =
        r.rows.length === 0
          ? null
          : new RegExp(`(?<![\\w$])(${r.rows.map((x) => regexQuote(x.name)).join('|')})\\s*\\(`, 'i');
    } catch (e) {
      this.logger.warn(
        { err: e instanceof Error ? e.message : String(e) },
        'sharding: could not scan functions',
      );
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /** The groups' primaries as the global tables' foreign servers name them. */
  private endpointsKey(): string {
    return (this.catalogs?.current.groups ?? this.groups)
      .map((g) => {
        const p = this.view.lastPrimary(Number(g));
        return `${g}=${p?.host ?? ''}:${p?.port ?? 0}`;
      })
      .join(',');
  }

  /** buildGlobal() in the queue (after the API calls and statements already waiting). */
  private syncGlobal(): Promise<void> {
    const run = this.queue.then(() => this.buildGlobal());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Rebuilds the global tables on group 0 for the current catalog (sharding/global-tables.ts).
   * Never throws: on failure reads across groups stay refused, and the next change tries again.
   */
  private async buildGlobal(force = false): Promise<void> {
    const catalog = this.catalogs?.current;
    if (!catalog) return;
    const endpoints = this.endpointsKey();
    // Built already for this catalog and these primaries (DDL that keeps the catalog forces it).
    if (!force && this.globalTables?.version === catalog.version && this.globalEndpoints === endpoints)
      return;
    const distributed = [...catalog.tables.values()].some((t) => t.kind === 'distributed');
    if (!distributed && this.globalEndpoints === '') {
      // Nothing distributed and nothing built before: no extension, servers or role to make.
      this.globalTables = { version: catalog.version, tables: new Set() };
      return;
    }
    try {
      const opened = await this.openPgSessions(null);
      try {
        const r = await syncGlobalTables({
          catalog,
          sessions: opened.sessions,
          endpoints: catalog.groups.map((g) => {
            const p = this.view.lastPrimary(Number(g));
            return { group: g, host: p?.host ?? '', port: p?.port ?? 0 };
          }),
          database: this.app,
          superuserPassword: this.cluster.secrets().superuser,
        });
        this.globalTables = { version: catalog.version, tables: r.tables };
        this.globalEndpoints = endpoints;
      } finally {
        await opened.close();
      }
    } catch (e) {
      this.globalTables = null;
      this.logger.warn(
        { err: e instanceof Error ? e.message : String(e) },
        'sharding: the global tables (reads across groups) could not be built',
      );
    }
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

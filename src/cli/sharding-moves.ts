/**
 * Shard moves inside the controller (issue #17): one job at a time — a single move
 * (`pgscale move-shard`), a rebalance (`pgscale rebalance`) or a drain (`pgscale drain-group`) —
 * each a list of moves run one after another by sharding/shard-move.ts, with the proxy's holds
 * (proxy/shard-hold.ts) for their cutovers. A job can be cancelled (the move running stops and is
 * undone; the ones before stay done). Jobs and their moves are recorded in the state store
 * (`sharding-moves`): `pgscale rebalance --status` shows the running one with its progress
 * (bytes copied, rate, lag, ETA) and the history. A job a controller crash interrupted is marked
 * so at the next start, and what its running move left is cleaned up by what the catalog says.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from '../obs/logger.js';
import type { CatalogStore } from '../sharding/catalog-store.js';
import { shardNameOf } from '../sharding/catalog-lookup.js';
import { planDrain, planRebalance } from '../sharding/rebalance-plan.js';
import type { PlannedMove } from '../sharding/rebalance-plan.js';
import {
  checkMove,
  cleanupMove,
  colocatedTables,
  moveShard,
  MoveError,
  sweepMoves,
} from '../sharding/shard-move.js';
import type { MoveHold, MoveHolds, MoveProgress, MoveSpec, MoveTiming } from '../sharding/shard-move.js';
import type { Catalog } from '../sharding/types.js';

/** The store key of the jobs (relative to the cluster's prefix). */
export const MOVES_KEY = 'sharding-moves';
const HISTORY_KEPT = 50;

export interface MoveRecord {
  readonly id: string;
  readonly colocation: number;
  readonly shard: number;
  /** The first colocated table's shard id and name (as citus_shards shows them). */
  readonly shard_id: number;
  readonly table: string;
  readonly from: string;
  readonly to: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  step?: string;
  started_at?: string;
  finished_at?: string;
  pause_ms?: number;
  error?: string;
  source_bytes?: number;
  copied_bytes?: number;
  rate_bytes_per_s?: number;
  eta_s?: number;
  lag_ms?: number;
  attempt?: number;
}

export interface JobRecord {
  readonly id: string;
  readonly kind: 'move' | 'rebalance' | 'drain';
  readonly by?: 'count' | 'size';
  readonly group?: string;
  /** The interrupted job this one resumes (the controller restarted during it). */
  readonly resumes?: string;
  state: 'running' | 'done' | 'failed' | 'cancelled';
  readonly started_at: string;
  finished_at?: string;
  error?: string;
  moves: MoveRecord[];
}

export interface MovesBackend {
  get(key: string): Promise<{ readonly value: string } | null>;
  put(key: string, value: string): Promise<number>;
}

export interface MoveRunnerDeps {
  readonly catalogs: () => CatalogStore | null;
  connect(group: string): Promise<pg.Client>;
  conninfo(group: string): string;
  /** The cutover's holds: this proxy's (proxy/shard-hold.ts), or every proxy's (sharding-holds.ts). */
  readonly holds: MoveHolds & { status(): unknown };
  readonly logger: Logger;
  readonly store: () => MovesBackend | null;
  readonly timing?: Partial<MoveTiming>;
  /** A shard is on `group` from `lsn` there (the proxy's read floor). */
  readonly arrived?: (group: string, lsn: string) => void;
  /** Called after every move that changed the catalog. */
  readonly afterMove?: () => Promise<void>;
  /** Before a job's first move, and after its end (several proxies: DDL waits at every proxy meanwhile). */
  readonly beforeJob?: (job: JobRecord) => Promise<void>;
  readonly afterJob?: (job: JobRecord) => Promise<void>;
}

export class JobError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const newId = () => randomBytes(5).toString('hex');

export class MoveRunner {
  private job: JobRecord | null = null;
  private abort: AbortController | null = null;
  private history: JobRecord[] = [];
  private running: Promise<void> | null = null;

  constructor(private readonly deps: MoveRunnerDeps) {}

  /** Loads the history; a job left running by a crash is marked interrupted and its move undone or finished. */
  async start(): Promise<void> {
    const kv = await this.deps
      .store()
      ?.get(MOVES_KEY)
      .catch(() => null);
    if (kv) {
      try {
        const parsed = JSON.parse(kv.value) as { history?: JobRecord[] };
        this.history = Array.isArray(parsed.history) ? parsed.history : [];
      } catch {
        this.history = [];
      }
    }
    const catalogs = this.deps.catalogs();
    let resume: JobRecord | null = null;
    for (const job of this.history) {
      if (job.state !== 'running') continue;
      resume ??= job;
      job.state = 'failed';
      job.error = 'interrupted: the controller stopped during the job';
      job.finished_at = new Date().toISOString();
      for (const m of job.moves) {
        if (m.state === 'queued') m.state = 'cancelled';
        if (m.state !== 'running') continue;
        const placed = catalogs?.current.colocations.get(m.colocation)?.placement[m.shard];
        const succeeded = placed === m.to;
        m.state = succeeded ? 'done' : 'failed';
        m.error = succeeded ? undefined : 'interrupted: the controller stopped during the move';
        if (catalogs) {
          const problems = await cleanupMove(
            this.spec(m),
            { connect: (g) => this.deps.connect(g), catalogs },
            { succeeded },
          );
          for (const p of problems) this.deps.logger.warn(`shard move ${m.id}: cleanup: ${p}`);
        }
      }
    }
    await this.sweep();
    await this.save();
    if (resume && catalogs) this.resume(resume, catalogs.current);
  }

  /**
   * Starts again what an interrupted job had left to do: a rebalance or a drain plans anew (the
   * moves done stay done); a single move runs again unless recovery finished it.
   */
  private resume(job: JobRecord, catalog: Catalog): void {
    const log = this.deps.logger;
    try {
      let next: JobRecord;
      if (job.kind === 'move') {
        const m = job.moves[0];
        if (!m || catalog.colocations.get(m.colocation)?.placement[m.shard] === m.to) return;
        next = this.submit({ kind: 'move', shardId: m.shard_id, to: m.to }, job.id);
      } else if (job.kind === 'drain') {
        next = this.submit(
          { kind: 'drain', group: job.group ?? '', ...(job.by ? { by: job.by } : {}) },
          job.id,
        );
      } else next = this.submit({ kind: 'rebalance', by: job.by ?? 'count' }, job.id);
      log.info(
        { job: next.id, resumes: job.id },
        `sharding: ${job.kind} job ${job.id} resumed as job ${next.id}`,
      );
    } catch (e) {
      log.warn({ job: job.id, err: (e as Error).message }, `sharding: job ${job.id} could not be resumed`);
    }
  }

  /** sweepMoves() with no move running; problems logged. */
  private async sweep(): Promise<void> {
    const catalogs = this.deps.catalogs();
    if (!catalogs) return;
    for (const p of await sweepMoves({ connect: (g) => this.deps.connect(g), catalogs }, []))
      this.deps.logger.warn(`sharding: leftovers of earlier moves: ${p}`);
  }

  /** Cancels the running job and waits for it to stop. */
  async stop(): Promise<void> {
    this.abort?.abort();
    await this.running?.catch(() => undefined);
  }

  get busy(): boolean {
    return this.job !== null;
  }

  /** What GET /sharding/moves shows. */
  status(): { current: JobRecord | null; holds: unknown; history: JobRecord[] } {
    return { current: this.job, holds: this.deps.holds.status(), history: this.history.slice(0, 20) };
  }

  /** Starts a job; throws JobError when one runs or the request is not possible. */
  submit(
    req:
      | { kind: 'move'; shardId: number; to: string }
      | { kind: 'rebalance'; by: 'count' | 'size' }
      | { kind: 'drain'; group: string; by?: 'count' | 'size' },
    /** The interrupted job this one resumes. */
    resumes?: string,
  ): JobRecord {
    if (this.job)
      throw new JobError(
        `a ${this.job.kind} job (${this.job.id}) is running; see pgscale rebalance --status`,
        409,
      );
    const catalogs = this.deps.catalogs();
    if (!catalogs) throw new JobError('the sharding catalog is not loaded', 503);
    const catalog = catalogs.current;
    const job: JobRecord = {
      // A number, as Citus's job ids (citus_rebalance_start() returns it).
      id: String(1 + Math.max(0, ...this.history.map((j) => Number(j.id)).filter(Number.isInteger))),
      kind: req.kind,
      ...(req.kind === 'rebalance' ? { by: req.by } : {}),
      ...(req.kind === 'drain' ? { group: req.group, ...(req.by ? { by: req.by } : {}) } : {}),
      ...(resumes === undefined ? {} : { resumes }),
      state: 'running',
      started_at: new Date().toISOString(),
      moves: [],
    };
    if (req.kind === 'move') {
      const found = shardById(catalog, req.shardId);
      if (!found) throw new JobError(`there is no shard ${req.shardId}`);
      const m = { colocation: found.colocation, shard: found.shard, from: found.group, to: req.to };
      const bad = checkMove(catalog, { id: 'x', ...m });
      if (bad) throw new JobError(bad.message);
      job.moves.push(this.record(catalog, m));
    } else if (req.kind === 'drain' && !catalog.groups.includes(req.group)) {
      throw new JobError(`there is no group ${req.group} in the sharding catalog`);
    } else if (req.kind === 'drain' && catalog.groups.length < 2) {
      throw new JobError('a drain needs another group to take the shards');
    }
    this.job = job;
    this.abort = new AbortController();
    this.running = this.run(job, req, this.abort.signal).finally(() => {
      this.job = null;
      this.abort = null;
      this.running = null;
    });
    return job;
  }

  /** The running job's end (null when none runs): its record. */
  wait(): Promise<JobRecord> | null {
    const job = this.job;
    const running = this.running;
    if (!job || !running) return null;
    return running.then(() => job);
  }

  /** Cancels the running job (false when none runs). */
  cancel(): boolean {
    if (!this.abort) return false;
    this.abort.abort();
    return true;
  }

  private async run(
    job: JobRecord,
    req:
      | { kind: 'move' }
      | { kind: 'rebalance'; by: 'count' | 'size' }
      | { kind: 'drain'; group: string; by?: 'count' | 'size' },
    signal: AbortSignal,
  ): Promise<void> {
    const log = this.deps.logger;
    try {
      await this.deps.beforeJob?.(job);
      if (req.kind !== 'move') {
        const catalog = this.deps.catalogs()!.current;
        const by = req.by ?? 'count';
        const sizes = by === 'size' ? await this.sizes(catalog) : undefined;
        const plan: PlannedMove[] =
          req.kind === 'drain'
            ? planDrain(catalog, req.group, { by, ...(sizes ? { sizes } : {}) })
            : planRebalance(catalog, { by, ...(sizes ? { sizes } : {}) });
        job.moves = plan.map((m) => this.record(catalog, m));
      }
      log.info(
        { job: job.id, moves: job.moves.length },
        `sharding: ${job.kind} job ${job.id}: ${job.moves.length} moves`,
      );
      await this.save();
      // What earlier moves could not clean up (a group was down then) goes first.
      await this.sweep();
      for (const rec of job.moves) {
        if (signal.aborted) {
          rec.state = 'cancelled';
          continue;
        }
        await this.runMove(rec, signal);
        if (rec.state === 'failed') {
          job.state = 'failed';
          job.error = `move ${rec.id} failed: ${rec.error ?? ''}`;
          for (const r of job.moves) if (r.state === 'queued') r.state = 'cancelled';
          break;
        }
      }
      if (job.state === 'running') job.state = signal.aborted ? 'cancelled' : 'done';
    } catch (e) {
      job.state = 'failed';
      job.error = (e as Error).message;
    }
    // What its own moves' cleanup could not drop goes before the job is reported finished.
    await this.sweep();
    await this.deps
      .afterJob?.(job)
      .catch((e: unknown) =>
        log.warn({ err: e }, `sharding: ${job.kind} job ${job.id}: the proxies were not told of its end`),
      );
    job.finished_at = new Date().toISOString();
    log.info({ job: job.id, state: job.state }, `sharding: ${job.kind} job ${job.id} ${job.state}`);
    this.history = [job, ...this.history.filter((j) => j.id !== job.id)].slice(0, HISTORY_KEPT);
    await this.save();
  }

  private async runMove(rec: MoveRecord, signal: AbortSignal): Promise<void> {
    const catalogs = this.deps.catalogs();
    if (!catalogs) throw new MoveError('the sharding catalog is not loaded');
    rec.state = 'running';
    rec.started_at = new Date().toISOString();
    const t0 = Date.now();
    let lastSave = 0;
    const log = this.deps.logger;
    try {
      const { pauseMs } = await moveShard<MoveHold>(this.spec(rec), {
        catalogs,
        connect: (g) => this.deps.connect(g),
        conninfo: (g) => this.deps.conninfo(g),
        holds: this.deps.holds,
        ...(this.deps.arrived ? { arrived: this.deps.arrived } : {}),
        signal,
        ...(this.deps.timing ? { timing: this.deps.timing } : {}),
        progress: (p: MoveProgress) => {
          rec.step = p.step;
          if (p.sourceBytes !== undefined) rec.source_bytes = p.sourceBytes;
          if (p.copiedBytes !== undefined) {
            rec.copied_bytes = p.copiedBytes;
            const s = (Date.now() - t0) / 1000;
            rec.rate_bytes_per_s = s > 0 ? Math.round(p.copiedBytes / s) : 0;
            const left = (rec.source_bytes ?? 0) - p.copiedBytes;
            rec.eta_s =
              rec.rate_bytes_per_s > 0 ? Math.max(0, Math.round(left / rec.rate_bytes_per_s)) : undefined;
          }
          if (p.lagMs !== undefined) rec.lag_ms = p.lagMs;
          if (p.attempt !== undefined) rec.attempt = p.attempt;
          if (p.note) log.warn({ move: rec.id, step: p.step }, `shard move ${rec.id}: ${p.step}: ${p.note}`);
          if (Date.now() - lastSave > 2000) {
            lastSave = Date.now();
            void this.save();
          }
        },
      });
      rec.state = 'done';
      rec.pause_ms = pauseMs;
      log.info(
        { move: rec.id, shard: rec.shard_id, from: rec.from, to: rec.to, pause_ms: pauseMs },
        `sharding: shard ${rec.shard_id} (${rec.table}) moved from group ${rec.from} to ${rec.to}; writes to it paused ${pauseMs} ms`,
      );
      await this.deps.afterMove?.().catch(() => undefined);
    } catch (e) {
      rec.state = signal.aborted ? 'cancelled' : 'failed';
      rec.error = (e as Error).message;
      log.warn(
        { move: rec.id, err: rec.error },
        `sharding: shard ${rec.shard_id} move ${rec.state}: ${rec.error}`,
      );
    }
    rec.finished_at = new Date().toISOString();
  }

  private spec(m: Pick<MoveRecord, 'id' | 'colocation' | 'shard' | 'from' | 'to'>): MoveSpec {
    return { id: m.id, colocation: m.colocation, shard: m.shard, from: m.from, to: m.to };
  }

  private record(catalog: Catalog, m: PlannedMove): MoveRecord {
    const t = colocatedTables(catalog, m.colocation)[0];
    return {
      id: newId(),
      ...m,
      shard_id: t ? t.firstShardId + m.shard : -1,
      table: t ? `${t.rel.schema}.${t.rel.name}` : '',
      state: 'queued',
    };
  }

  /** Bytes of every shard group, by `${colocation}:${shard}`, from the groups that hold them. */
  private async sizes(catalog: Catalog): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const g of catalog.groups) {
      const names: string[] = [];
      const keys: string[] = [];
      for (const c of catalog.colocations.values()) {
        if (c.type === null) continue;
        for (const t of colocatedTables(catalog, c.id))
          c.placement.forEach((pg, r) => {
            if (pg !== g) return;
            names.push(
              `"${t.rel.schema.replace(/"/g, '""')}"."${shardNameOf(t.rel.name, t.firstShardId + r).replace(/"/g, '""')}"`,
            );
            keys.push(`${c.id}:${r}`);
          });
      }
      if (names.length === 0) continue;
      const client = await this.deps.connect(g);
      try {
        const r = await client.query<{ n: string }>(
          `SELECT coalesce(pg_total_relation_size(to_regclass(x)), 0)::text AS n FROM unnest($1::text[]) x`,
          [names],
        );
        r.rows.forEach((row, i) => out.set(keys[i]!, (out.get(keys[i]!) ?? 0) + Number(row.n)));
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    return out;
  }

  private async save(): Promise<void> {
    const store = this.deps.store();
    if (!store) return;
    const history = this.job
      ? [this.job, ...this.history.filter((j) => j.id !== this.job!.id)]
      : this.history;
    await store
      .put(MOVES_KEY, JSON.stringify({ history: history.slice(0, HISTORY_KEPT) }))
      .catch((e: unknown) => this.deps.logger.warn({ err: e }, 'sharding: could not record the moves'));
  }
}

/** The colocation, shard and group of shard id `id` (any table's), or null. */
export function shardById(
  catalog: Catalog,
  id: number,
): { colocation: number; shard: number; group: string } | null {
  for (const t of catalog.tables.values()) {
    if (t.kind !== 'distributed') continue;
    const c = catalog.colocations.get(t.colocationId);
    if (!c) continue;
    const r = id - t.firstShardId;
    if (r >= 0 && r < c.shardCount) return { colocation: c.id, shard: r, group: c.placement[r]! };
  }
  return null;
}

/**
 * Transactions on several groups, the controller's side (for ShardingService): the decider the
 * proxy's sessions commit with (src/proxy/session/multi-group.ts) — decisions written to group
 * 0's table (sharding/tx-decision-table.ts) through a small pool of superuser connections that
 * follows group 0's primary — and the recovery loop that settles in-doubt transactions every
 * RECOVERY_MS (sharding/tx-decisions.ts recoverTransactions), then lets the host recover its own
 * statements on several groups left prepared (`afterPass`).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { pgSsl } from '../cluster/sql.js';
import type { Logger } from '../obs/logger.js';
import type { TxDecider } from '../proxy/session/multi-group.js';
import type { PgGroupSession } from '../sharding/every-group.js';
import {
  DECISION_TABLE_DDL,
  TableDecisions,
  decisionSecret,
  recordCommitSql,
} from '../sharding/tx-decision-table.js';
import { TxDecisions, recoverTransactions } from '../sharding/tx-decisions.js';

/** How often the groups are searched for transactions left prepared (in-doubt recovery). */
const RECOVERY_MS = 2000;

export interface DecisionsEnv {
  readonly logger: Logger;
  /** Group 0's primary now, or null. */
  primary0(): { host: string; port: number } | null;
  /** The superuser's login to the application database. */
  /** With cluster.tls on, `ssl` verifies the node by the cluster CA (pgSsl). */
  login(): { user: string; password: string; database: string } & ReturnType<typeof pgSsl>;
  /** Superuser sessions on every group's primary; `close` ends them. */
  openSessions(): Promise<{ sessions: readonly PgGroupSession[]; close(): Promise<void> }>;
  /** Whether the catalog has tables (nothing to recover before). */
  sharded(): boolean;
  /** Run after each pass (the host's own recovery). */
  afterPass(): Promise<void>;
}

export class ShardingDecisions {
  private readonly decisions: TxDecisions;
  /** Transactions a session of this process is ending (recovery leaves them alone). */
  private readonly ending = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** Superuser connections to group 0's primary for the records, and where it was. */
  private pool: { pool: Promise<pg.Pool>; at: string } | null = null;
  /** The secret of record_commit's proofs (tx-decision-table.ts), once read from group 0. */
  private secret: Buffer | null = null;
  readonly decider: TxDecider;

  constructor(private readonly env: DecisionsEnv) {
    this.decisions = new TxDecisions(new TableDecisions(() => this.poolOn()));
    this.decider = {
      decideCommit: (id, groups) => this.decisions.decide(id, 'commit', groups),
      recordInTransaction: async (id, groups) => {
        // The secret is read with the table made, once (then kept: it never changes).
        if (this.secret === null) await this.poolOn().catch(() => undefined);
        return this.secret === null ? null : recordCommitSql(this.secret, id, groups);
      },
      begin: (id) => this.ending.add(id),
      done: (id) => this.ending.delete(id),
      pending: (id, groups) =>
        env.logger.warn(
          { tx: id, groups },
          `sharding: transaction ${id} is decided; groups ${groups.join(', ')} finish at recovery`,
        ),
    };
  }

  start(): void {
    // In-doubt transactions (a crash, a failover between PREPARE and COMMIT PREPARED) are settled
    // within seconds, never left holding their locks.
    this.timer = setInterval(() => void this.pass(), RECOVERY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const p = this.pool;
    this.pool = null;
    await p?.pool.then((x) => x.end()).catch(() => undefined);
  }

  /** One recovery pass; never throws (a group without a primary: the next pass tries again). */
  private async pass(): Promise<void> {
    if (this.running || !this.env.sharded()) return;
    this.running = true;
    try {
      const opened = await this.env.openSessions();
      try {
        const found = await recoverTransactions(
          opened.sessions.map((s) => ({
            group: s.group,
            query: async (sql: string) => (await s.client.query(sql)).rows as Record<string, unknown>[],
          })),
          this.decisions,
          { inFlight: (id) => this.ending.has(id) },
        );
        for (const t of found)
          this.env.logger.warn(
            { tx: t.id, group: t.group, action: t.action },
            `sharding: in-doubt transaction ${t.id} on group ${t.group}: ${t.action}`,
          );
      } finally {
        await opened.close();
      }
      await this.env.afterPass();
    } catch (e) {
      this.env.logger.debug?.(
        { err: e instanceof Error ? e.message : String(e) },
        'sharding: in-doubt recovery could not run (a group without a primary?); trying again',
      );
    } finally {
      this.running = false;
    }
  }

  /** The pool to group 0's current primary (made again when it moves; the table made on first use). */
  private poolOn(): Promise<pg.Pool> {
    const primary = this.env.primary0();
    if (!primary) return Promise.reject(new Error('group 0 has no primary right now'));
    const at = `${primary.host}:${primary.port}`;
    const cur = this.pool;
    if (cur !== null && cur.at === at) return cur.pool;
    const make = async (): Promise<pg.Pool> => {
      const pool = new pg.Pool({
        host: primary.host,
        port: primary.port,
        ...this.env.login(),
        application_name: 'pgscale decisions',
        max: 8,
        idleTimeoutMillis: 30_000,
      });
      pool.on('error', () => undefined);
      try {
        for (const sql of DECISION_TABLE_DDL) await pool.query(sql);
        this.secret ??= await decisionSecret(pool, randomBytes(32));
      } catch (e) {
        await pool.end().catch(() => undefined);
        throw e;
      }
      return pool;
    };
    const next = { at, pool: make() };
    this.pool = next;
    next.pool.catch(() => {
      if (this.pool === next) this.pool = null;
    });
    if (cur !== null) void cur.pool.then((p) => p.end()).catch(() => undefined);
    return next.pool;
  }
}

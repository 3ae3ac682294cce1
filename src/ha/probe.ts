/**
 * The decide loop's view of one PostgreSQL node: a persistent superuser connection that answers
 * one small query per cycle (role, WAL positions, WAL receiver state). Every probe is bounded: a
 * frozen server (SIGSTOP) or a black-holed network makes it fail within the timeout, and the
 * connection is then thrown away and reopened on the next probe. Never throws.
 */
import pg from 'pg';
import { parseLsn } from '../protocol/lsn.js';
import type { ConnTarget } from '../cluster/sql.js';
import { pgSsl } from '../cluster/sql.js';

export interface ProbeResult {
  ok: boolean;
  inRecovery: boolean | null;
  /** Primary: pg_current_wal_lsn(); null on a standby. */
  currentLsn: bigint | null;
  receiveLsn: bigint | null;
  replayLsn: bigint | null;
  /** The WAL receiver is streaming (standbys). */
  streaming: boolean;
  error: string | null;
}

const PROBE = `SELECT pg_is_in_recovery() AS rec,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS cur,
  pg_last_wal_receive_lsn()::text AS recv,
  pg_last_wal_replay_lsn()::text AS replay,
  (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS wr`;

interface Row {
  rec: boolean;
  cur: string | null;
  recv: string | null;
  replay: string | null;
  wr: string | null;
}

const FAILED = (error: string): ProbeResult => ({
  ok: false,
  inRecovery: null,
  currentLsn: null,
  receiveLsn: null,
  replayLsn: null,
  streaming: false,
  error,
});

export class NodeProber {
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;

  constructor(
    private readonly target: () => ConnTarget,
    private readonly timeoutMs: number,
  ) {}

  async probe(): Promise<ProbeResult> {
    try {
      const row = await this.withTimeout(async (c) => (await c.query<Row>(PROBE)).rows[0]!);
      return {
        ok: true,
        inRecovery: row.rec,
        currentLsn: row.cur ? parseLsn(row.cur) : null,
        receiveLsn: row.recv ? parseLsn(row.recv) : null,
        replayLsn: row.replay ? parseLsn(row.replay) : null,
        streaming: row.wr === 'streaming',
        error: null,
      };
    } catch (e) {
      return FAILED((e as Error).message);
    }
  }

  /** Runs one statement on the probe connection, bounded by the probe timeout. */
  async query<R extends Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    return this.withTimeout(async (c) => (await c.query<R>(sql, params)).rows);
  }

  private async withTimeout<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([this.connection().then(fn), timeout]);
    } catch (e) {
      this.drop();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private connection(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const t = this.target();
      const c = new pg.Client({
        host: t.host,
        port: t.port,
        user: t.user,
        password: t.password,
        database: t.database ?? 'postgres',
        application_name: 'pgscale ha',
        // Cluster TLS: verify-full against the cluster's CA (across hosts pg_hba wants hostssl).
        ...pgSsl(t.sslRootCert ?? null),
        connectionTimeoutMillis: this.timeoutMs,
        keepAlive: true,
      });
      c.on('error', () => {
        if (this.client === c) this.client = null;
      });
      c.on('end', () => {
        if (this.client === c) this.client = null;
      });
      try {
        await c.connect();
      } catch (e) {
        destroy(c);
        throw e;
      }
      this.client = c;
      return c;
    })().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** Throws the connection away without waiting for a server that may be frozen. */
  drop(): void {
    const c = this.client;
    this.client = null;
    if (c) destroy(c);
  }

  close(): void {
    this.drop();
  }
}

function destroy(c: pg.Client): void {
  // end() waits for the server's goodbye; a frozen server never sends it.
  const stream = (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  stream?.destroy();
  c.end().catch(() => undefined);
}

/**
 * The demo's load generator: many PostgreSQL connections (node-postgres clients, one loop each)
 * running a read or a write workload for a while, measuring what a user would see. Latencies go
 * into HDR-style histograms, errors are counted by kind (SQLSTATE, or the socket error), and a
 * timeline (./timeline.ts, 100 ms buckets) keeps successes and errors of each kind of operation. Every write inserts
 * a row with an id unique to that attempt; the ids whose INSERT was acknowledged (the reply to
 * the autocommit INSERT, i.e. COMMIT succeeded) are recorded, and those whose outcome is unknown
 * (the connection broke before the reply) are kept apart, so that after a failover the table
 * can be compared with what clients were told. A connection that breaks is reopened, so the
 * load keeps running through a failover. Not pgbench: that is what makes the last two possible.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Histogram } from './histogram.js';
import { Timeline } from './timeline.js';
import type { TimelinePoint } from './timeline.js';

export type { TimelinePoint } from './timeline.js';

export interface Endpoint {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export type OpKind = 'read' | 'write';

export interface ClientGroup {
  kind: OpKind;
  clients: number;
  /** Pause after each operation (ms), for clients that are not busy all the time. */
  thinkMs?: number;
}

export interface LoadOptions {
  endpoint: Endpoint;
  groups: readonly ClientGroup[];
  /** Reads pick a random row id in 1..keys. */
  keys: number;
  /** Statement comment prepended to every query (e.g. a routing hint); same text for all targets. */
  comment?: string;
  /**
   * Unnamed statements (Parse at each execution) instead of named prepared ones: what a pool that
   * cannot keep prepared statements across transactions (PgBouncer before 1.21) can serve.
   */
  unnamed?: boolean;
  /** How many connections are opened at once at the start (logins are costly). */
  connectConcurrency?: number;
  /** A query without a reply for this long counts as an error and its connection is dropped. */
  queryTimeoutMs?: number;
  /** First write id (ids of one run are consecutive from here). */
  firstWriteId?: number;
  /** Width of the timeline's buckets in ms (default 100). */
  bucketMs?: number;
  /** Write SQL with $1 the id and $2 the client number (default: INSERT INTO demo_writes). */
  writeSql?: string;
  /** A class of write ids (their shard), to keep each class's writes and slowest write apart. */
  classOf?: (id: number) => string;
  /**
   * Servers to try in turn, keeping the first that accepts writes, as libpq does with a host list
   * and `target_session_attrs=read-write` (a cluster without a proxy in front: Patroni's). The
   * endpoint's host and port are then not used.
   */
  readWriteHosts?: readonly { host: string; port: number }[];
}

export interface KindStats {
  ok: number;
  errors: number;
  latency: Histogram;
}

export interface LoadResult {
  /** Measured seconds (after the connections were open). */
  seconds: number;
  /** Seconds it took to open every connection. */
  connectSeconds: number;
  /** Connections open once the start-up logins were done. */
  connected: number;
  /** Connections that could not be opened at the start, by kind of error. */
  connectErrors: Record<string, number>;
  read: KindStats;
  write: KindStats;
  /** Errors by kind (SQLSTATE and condition name, or the socket error). */
  errorsByKind: Record<string, number>;
  timeline: TimelinePoint[];
  /** Width of the timeline's buckets in seconds. */
  bucketSeconds: number;
  /** Per class of write ids (classOf): acknowledged writes and the slowest one's latency in ms. */
  writesByClass: Record<string, { writes: number; maxMs: number }>;
  /** Ids of writes the server acknowledged. */
  acknowledged: number[];
  /** Ids of writes whose outcome is unknown (connection lost before the reply). */
  inDoubt: number[];
  /** Longest time without a successful write, with where it started (s since start); null without writes. */
  writeGap: { seconds: number; from: number } | null;
}

/** Names of the SQLSTATEs a client sees around restarts and failovers. */
const CONDITIONS: Record<string, string> = {
  '08000': 'connection_exception',
  '08001': 'sqlclient_unable_to_establish_sqlconnection',
  '08003': 'connection_does_not_exist',
  '08004': 'sqlserver_rejected_establishment_of_sqlconnection',
  '08006': 'connection_failure',
  '08P01': 'protocol_violation',
  '25006': 'read_only_sql_transaction',
  '23505': 'unique_violation',
  '28P01': 'invalid_password',
  '40001': 'serialization_failure',
  '53300': 'too_many_connections',
  '57014': 'query_canceled',
  '57P01': 'admin_shutdown',
  '57P02': 'crash_shutdown',
  '57P03': 'cannot_connect_now',
};

/** A short, stable name for an error, for counting. */
export function errorKind(e: unknown): string {
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : null;
  if (code && /^[0-9A-Z]{5}$/.test(code)) return `${code} ${CONDITIONS[code] ?? 'error'}`;
  if (code) return code; // ECONNREFUSED, ECONNRESET …
  const msg = typeof err.message === 'string' ? err.message : String(e);
  if (/timeout/i.test(msg)) return 'timeout';
  if (/terminated|ended|closed/i.test(msg)) return 'connection closed';
  return 'other';
}

/** Whether the error came from the server as an answer (the connection is still usable). */
function isServerAnswer(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return (
    typeof code === 'string' &&
    /^[0-9A-Z]{5}$/.test(code) &&
    !code.startsWith('08') &&
    !code.startsWith('57P')
  );
}

const READ_SQL = 'SELECT abalance FROM demo_accounts WHERE aid = $1';
const WRITE_SQL = 'INSERT INTO demo_writes (id, client) VALUES ($1, $2)';

/** Creates the demo's tables and fills demo_accounts with `keys` rows (as the app user). */
export async function createTables(endpoint: Endpoint, keys: number): Promise<void> {
  const c = new pg.Client(endpoint);
  c.on('error', () => undefined);
  await c.connect();
  try {
    await c.query('DROP TABLE IF EXISTS demo_accounts, demo_writes');
    await c.query(
      'CREATE TABLE demo_accounts (aid int PRIMARY KEY, abalance int NOT NULL, filler char(84) NOT NULL)',
    );
    await c.query("INSERT INTO demo_accounts SELECT g, 0, '' FROM generate_series(1, $1::int) g", [keys]);
    await c.query(
      'CREATE TABLE demo_writes (id bigint PRIMARY KEY, client int NOT NULL, at timestamptz NOT NULL DEFAULT now())',
    );
    await c.query('VACUUM ANALYZE demo_accounts');
  } finally {
    await c.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A connection to the first of `hosts` that accepts writes (`transaction_read_only` off), tried
 * in order, as libpq's `target_session_attrs=read-write`; throws one that says so when some server
 * answered but read-only, else the last error.
 */
export async function connectReadWrite(
  endpoint: Endpoint,
  hosts: readonly { host: string; port: number }[],
  options: { connectionTimeoutMillis?: number; query_timeout?: number } = {},
): Promise<pg.Client> {
  let last: unknown = null;
  let readOnly = false;
  for (const h of hosts) {
    const c = new pg.Client({ ...endpoint, ...h, ...options });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const r = await c.query<{ ro: string }>('SELECT current_setting($1) AS ro', ['transaction_read_only']);
      if (r.rows[0]?.ro === 'off') return c;
      readOnly = true;
    } catch (e) {
      last = e;
    }
    await c.end().catch(() => undefined);
  }
  if (!readOnly && last instanceof Error) throw last;
  throw Object.assign(new Error('no server accepting writes among the hosts'), {
    code: 'no read-write host',
  });
}

/**
 * One run: open the connections, then `start()` begins the measured period and `stop()` ends it
 * and returns the figures. `live()` gives running totals for progress displays.
 */
export class Load {
  private readonly read: KindStats = { ok: 0, errors: 0, latency: new Histogram() };
  private readonly write: KindStats = { ok: 0, errors: 0, latency: new Histogram() };
  private readonly errorsByKind: Record<string, number> = {};
  private readonly timeline: Timeline;
  private readonly writesByClass: Record<string, { writes: number; maxMs: number }> = {};
  private readonly acknowledged: number[] = [];
  private readonly inDoubt: number[] = [];
  private readonly clients: (pg.Client | null)[] = [];
  private readonly loops: Promise<void>[] = [];
  private nextId: number;
  private t0 = 0;
  private measuring = false;
  private stopped = false;
  private lastWriteOk: number | null = null;
  private maxGap: { seconds: number; from: number } | null = null;
  private connectSeconds = 0;
  private opened = 0;
  private readonly connectErrors: Record<string, number> = {};

  constructor(private readonly o: LoadOptions) {
    this.nextId = o.firstWriteId ?? 1;
    this.timeline = new Timeline(o.bucketMs);
  }

  /** Opens every connection (a few at a time) and starts the loops, unmeasured until start(). */
  async open(): Promise<void> {
    const t = performance.now();
    const specs = this.o.groups.flatMap((g) => Array.from({ length: g.clients }, () => g));
    const limit = this.o.connectConcurrency ?? 32;
    let next = 0;
    const openers = Array.from({ length: Math.min(limit, specs.length) }, async () => {
      for (let i = next++; i < specs.length; i = next++) {
        this.clients[i] = await this.connect().catch((e: unknown) => {
          const k = errorKind(e);
          this.connectErrors[k] = (this.connectErrors[k] ?? 0) + 1;
          return null;
        });
      }
    });
    await Promise.all(openers);
    this.connectSeconds = (performance.now() - t) / 1000;
    this.opened = this.connected;
    specs.forEach((g, i) => this.loops.push(this.loop(i, g)));
  }

  /** Connections currently open. */
  get connected(): number {
    return this.clients.filter((c) => c !== null).length;
  }

  start(): void {
    this.t0 = performance.now();
    this.measuring = true;
    this.lastWriteOk = this.o.groups.some((g) => g.kind === 'write') ? this.t0 : null;
  }

  /** Seconds since start(). */
  elapsed(): number {
    return this.measuring ? (performance.now() - this.t0) / 1000 : 0;
  }

  /** Running totals, for progress lines. */
  live(): { readOk: number; writeOk: number; errors: number; seconds: number } {
    return {
      readOk: this.read.ok,
      writeOk: this.write.ok,
      errors: this.read.errors + this.write.errors,
      seconds: this.elapsed(),
    };
  }

  async stop(): Promise<LoadResult> {
    const end = performance.now();
    const seconds = (end - this.t0) / 1000;
    this.measuring = false;
    this.stopped = true;
    if (this.lastWriteOk !== null) this.noteGap(end);
    await Promise.all(this.loops);
    await Promise.all(
      this.clients.filter((c): c is pg.Client => c !== null).map((c) => c.end().catch(() => undefined)),
    );
    return {
      seconds,
      connectSeconds: this.connectSeconds,
      connected: this.opened,
      connectErrors: { ...this.connectErrors },
      read: this.read,
      write: this.write,
      errorsByKind: { ...this.errorsByKind },
      timeline: this.timeline.points(end - this.t0),
      bucketSeconds: this.timeline.bucketMs / 1000,
      writesByClass: { ...this.writesByClass },
      acknowledged: [...this.acknowledged],
      inDoubt: [...this.inDoubt],
      writeGap: this.maxGap,
    };
  }

  private async connect(): Promise<pg.Client> {
    const options = { connectionTimeoutMillis: 30_000, query_timeout: this.o.queryTimeoutMs ?? 60_000 };
    if (this.o.readWriteHosts) return connectReadWrite(this.o.endpoint, this.o.readWriteHosts, options);
    const c = new pg.Client({ ...this.o.endpoint, ...options });
    c.on('error', () => undefined); // a broken connection is noticed by the next query
    await c.connect();
    return c;
  }

  private async loop(i: number, g: ClientGroup): Promise<void> {
    const comment = this.o.comment ? `${this.o.comment} ` : '';
    const named = (name: string) => (this.o.unnamed ? {} : { name });
    const read = { ...named('demo_read'), text: comment + READ_SQL };
    const write = { ...named('demo_write'), text: comment + (this.o.writeSql ?? WRITE_SQL) };
    let backoff = 50;
    while (!this.stopped) {
      let c = this.clients[i] ?? null;
      if (!c) {
        try {
          c = await this.connect();
          if (this.stopped) {
            await c.end().catch(() => undefined);
            return;
          }
          this.clients[i] = c;
          backoff = 50;
        } catch (e) {
          this.countError(e, g.kind);
          await sleep(backoff);
          backoff = Math.min(1000, backoff * 2);
          continue;
        }
      }
      const id = g.kind === 'write' ? this.nextId++ : 0;
      const t = performance.now();
      try {
        if (g.kind === 'read') {
          await c.query({ ...read, values: [1 + Math.floor(Math.random() * this.o.keys)] });
        } else {
          await c.query({ ...write, values: [id, i] });
        }
        this.countOk(g.kind, t, id);
      } catch (e) {
        this.countError(e, g.kind);
        if (g.kind === 'write' && !isServerAnswer(e)) this.inDoubt.push(id);
        if (!isServerAnswer(e)) {
          this.clients[i] = null;
          void c.end().catch(() => undefined);
          await sleep(backoff);
          backoff = Math.min(1000, backoff * 2);
        }
      }
      if (g.thinkMs) await sleep(g.thinkMs);
    }
  }

  private countOk(kind: OpKind, started: number, id: number): void {
    const now = performance.now();
    if (kind === 'write') this.acknowledged.push(id); // before any early return: always recorded
    if (!this.measuring || started < this.t0) return;
    const s = kind === 'read' ? this.read : this.write;
    s.ok++;
    s.latency.record((now - started) * 1000);
    this.timeline.add(kind === 'read' ? 'readOk' : 'writeOk', now - this.t0);
    if (kind === 'write') {
      if (this.o.classOf) {
        const c = (this.writesByClass[this.o.classOf(id)] ??= { writes: 0, maxMs: 0 });
        c.writes++;
        c.maxMs = Math.max(c.maxMs, now - started);
      }
      this.noteGap(now);
      this.lastWriteOk = now;
    }
  }

  private noteGap(now: number): void {
    if (this.lastWriteOk === null) return;
    const gap = (now - this.lastWriteOk) / 1000;
    if (!this.maxGap || gap > this.maxGap.seconds)
      this.maxGap = { seconds: gap, from: (this.lastWriteOk - this.t0) / 1000 };
  }

  private countError(e: unknown, kind?: OpKind): void {
    if (!this.measuring) return;
    const k = errorKind(e);
    this.errorsByKind[k] = (this.errorsByKind[k] ?? 0) + 1;
    if (kind) (kind === 'read' ? this.read : this.write).errors++;
    this.timeline.add('errors', performance.now() - this.t0);
  }
}

export interface RunPlan {
  seconds: number;
  /** Unmeasured seconds first (pools fill, caches warm). */
  warmupSeconds: number;
  /** Called when the measured period starts. */
  onStart?: () => void;
  /** Called every 250 ms during the measured period. */
  tick?: (l: Load) => void;
}

/** Opens the connections, runs unmeasured for the warm-up, then measures for `seconds`. */
export async function runLoad(o: LoadOptions, plan: RunPlan): Promise<LoadResult> {
  const load = new Load(o);
  await load.open();
  await sleep(plan.warmupSeconds * 1000);
  load.start();
  plan.onStart?.();
  const tick = plan.tick;
  const timer = tick ? setInterval(() => tick(load), 250) : null;
  try {
    await sleep(plan.seconds * 1000);
  } finally {
    if (timer) clearInterval(timer);
  }
  return load.stop();
}

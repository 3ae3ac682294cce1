/**
 * Tools of the HA fault tests: a write load through the proxy that records every acknowledged
 * commit by id (and every error by kind), and a sampler that counts, every 100 ms, how many nodes
 * accept writes. Both reconnect by themselves, as an application would. Every one started is
 * known to stopAllLoads(), which the suites' after() hooks call: a test that fails half-way must
 * not leave clients behind that keep the test process from exiting.
 */
import pg from 'pg';
import type { ConnTarget } from '../src/cluster/sql.js';

export interface LoadResult {
  acked: Set<number>;
  /** Errors by SQLSTATE or network code. */
  errors: Map<string, number>;
  /** Longest time between two acknowledged writes while the fault window was open (ms). */
  longestGapMs: number;
  attempts: number;
}

/** Loads and samplers started and not stopped yet. */
const live = new Set<{ stop(): Promise<unknown> }>();

/** Stops every load and sampler still running (after a failed test). */
export async function stopAllLoads(): Promise<void> {
  await Promise.all([...live].map((x) => x.stop().catch(() => undefined)));
}

/** How long stop() lets a statement in flight finish before closing its connection. */
const STOP_GRACE_MS = 15_000;

export class WriteLoad {
  private stopped = false;
  private readonly conns = new Set<pg.Client>();
  private readonly acked = new Set<number>();
  private readonly errors = new Map<string, number>();
  private readonly okTimes: number[] = [];
  private attempts = 0;
  /** Ids are unique across loads of one test process (they share the table). */
  private static nextId = 1;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly url: string,
    private readonly clients = 4,
    /** Writes inside an explicit transaction of two statements (else single autocommit inserts). */
    private readonly explicitTx = false,
  ) {}

  static async prepare(url: string): Promise<void> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query('CREATE TABLE IF NOT EXISTS acks (id int PRIMARY KEY, at timestamptz DEFAULT now())');
    await c.end();
  }

  start(): void {
    live.add(this);
    for (let i = 0; i < this.clients; i++) this.loops.push(this.loop());
  }

  /** Acknowledged writes so far. */
  get count(): number {
    return this.acked.size;
  }

  async stop(): Promise<LoadResult> {
    this.stopped = true;
    // A statement the proxy holds (no primary) may never finish: close its connection.
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all(this.loops);
    const late = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), STOP_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    if (late) for (const c of this.conns) destroyClient(c);
    await all;
    live.delete(this);
    const t = [...this.okTimes].sort((a, b) => a - b);
    let gap = 0;
    for (let i = 1; i < t.length; i++) gap = Math.max(gap, t[i]! - t[i - 1]!);
    return { acked: this.acked, errors: this.errors, longestGapMs: gap, attempts: this.attempts };
  }

  private async loop(): Promise<void> {
    let c: pg.Client | null = null;
    while (!this.stopped) {
      try {
        if (!c) {
          c = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 60_000 });
          c.on('error', () => undefined);
          this.conns.add(c);
          await c.connect();
        }
        const id = WriteLoad.nextId++;
        this.attempts++;
        if (this.explicitTx) {
          await c.query('BEGIN');
          await c.query('INSERT INTO acks (id) VALUES ($1)', [id]);
          await c.query('COMMIT');
        } else {
          await c.query('INSERT INTO acks (id) VALUES ($1)', [id]);
        }
        this.acked.add(id);
        this.okTimes.push(performance.now());
      } catch (e) {
        const code = (e as { code?: string }).code ?? (e as Error).message.slice(0, 40);
        this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
        const dead = c;
        c = null;
        if (dead) this.conns.delete(dead);
        await dead?.end().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    if (c) this.conns.delete(c);
    await c?.end().catch(() => undefined);
  }
}

/** Closes a client's socket at once (end() would wait for its statement). */
function destroyClient(c: pg.Client): void {
  const s = (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  s?.destroy();
}

/** Counts writable nodes every 100 ms, straight to each node (not through the proxy). */
export class WritableSampler {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private ticking: Promise<void> | null = null;
  private readonly clients = new Map<string, pg.Client | null>();
  maxWritable = 0;
  samples = 0;

  constructor(private readonly nodes: { name: string; target: ConnTarget }[]) {}

  start(): void {
    live.add(this);
    const tick = async () => {
      const flags = await Promise.all(this.nodes.map((n) => this.writable(n)));
      this.maxWritable = Math.max(this.maxWritable, flags.filter(Boolean).length);
      this.samples++;
    };
    const run = () => {
      this.ticking = tick().finally(() => {
        this.ticking = null;
        if (!this.stopped) this.timer = setTimeout(run, 100);
      });
    };
    this.timer = setTimeout(run, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.ticking;
    const open = [...this.clients.values()].filter((c): c is pg.Client => c !== null);
    this.clients.clear();
    await Promise.all(open.map((c) => c.end().catch(() => undefined)));
    live.delete(this);
  }

  private async writable(n: { name: string; target: ConnTarget }): Promise<boolean> {
    try {
      let c = this.clients.get(n.name) ?? null;
      if (!c) {
        c = new pg.Client({ ...n.target, database: 'postgres', connectionTimeoutMillis: 300 });
        c.on('error', () => this.clients.set(n.name, null));
        await c.connect();
        this.clients.set(n.name, c);
      }
      const r = await Promise.race([
        c.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec'),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout')), 300)),
      ]);
      return r.rows[0]!.rec === false;
    } catch {
      const c = this.clients.get(n.name);
      this.clients.set(n.name, null);
      const s = (c as unknown as { connection?: { stream?: { destroy(): void } } } | null)?.connection
        ?.stream;
      s?.destroy();
      return false;
    }
  }
}

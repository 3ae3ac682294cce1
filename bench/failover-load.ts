/**
 * The write load of the failover benchmark (the idea of test/ha-load.ts, with a record of every
 * attempt): K connections doing autocommit INSERTs of unique ids, reconnecting after an error
 * (20 ms pause), as an application would. Every attempt is kept with its start and end time and
 * its outcome, so that the analysis can tell when writes stopped and when they came back.
 */
import pg from 'pg';

export interface Attempt {
  /** performance.now() when the statement (or the connection it needed) was started, ms. */
  start: number;
  end: number;
  ok: boolean;
  id: number;
  /** SQLSTATE, network code or the start of the message (failed attempts only). */
  kind?: string;
  message?: string;
}

/** Ids are unique within a benchmark process: every load of a target shares its table. */
let nextId = 1;

export const LOAD_TABLE = 'failover_acks';

export async function prepareTable(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  try {
    await c.query(
      `CREATE TABLE IF NOT EXISTS ${LOAD_TABLE} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())`,
    );
  } finally {
    await c.end();
  }
}

function errorKind(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && code) return code;
  const msg = e instanceof Error ? e.message : String(e);
  return msg.slice(0, 64);
}

function errorMessage(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).slice(0, 200);
}

export class FailoverLoad {
  readonly attempts: Attempt[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly url: string,
    private readonly clients: number,
  ) {}

  start(): void {
    for (let i = 0; i < this.clients; i++) this.loops.push(this.loop());
  }

  async stop(): Promise<Attempt[]> {
    this.stopped = true;
    await Promise.all(this.loops);
    return this.attempts;
  }

  private async loop(): Promise<void> {
    let c: pg.Client | null = null;
    while (!this.stopped) {
      const id = nextId++;
      const start = performance.now();
      try {
        if (!c) {
          // No client-side timeouts beyond these: a write held by a proxy must be seen as held.
          c = new pg.Client({
            connectionString: this.url,
            connectionTimeoutMillis: 60_000,
            query_timeout: 120_000,
          });
          c.on('error', () => undefined);
          await c.connect();
        }
        await c.query(`INSERT INTO ${LOAD_TABLE} (id) VALUES ($1)`, [id]);
        this.attempts.push({ start, end: performance.now(), ok: true, id });
      } catch (e) {
        this.attempts.push({
          start,
          end: performance.now(),
          ok: false,
          id,
          kind: errorKind(e),
          message: errorMessage(e),
        });
        const dead = c;
        c = null;
        await dead?.end().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await c?.end().catch(() => undefined);
  }
}

export interface Disruption {
  /**
   * From the start of the disruption to the first successful write started after the last failed
   * one (writes are back for good). The disruption starts at the kill (kill -9), or for a
   * switchover at the first failed write after the command or at the last success before the
   * longest pause, whichever is earlier. Null when writes did not come back.
   */
  rtoMs: number | null;
  /** Longest time between two successful writes, from the last one before the fault to the end. */
  longestGapMs: number;
  /** Failed attempts that ended after the fault. */
  errors: number;
  errorKinds: Record<string, number>;
  /** The first message seen of each kind. */
  errorSamples: Record<string, string>;
  acked: number;
  attempts: number;
}

interface Gap {
  from: number;
  to: number;
}

/** Longest interval between consecutive successful completions at or after `from`. */
export function longestGap(attempts: readonly Attempt[], from: number): Gap | null {
  const t = attempts
    .filter((a) => a.ok && a.end >= from)
    .map((a) => a.end)
    .sort((a, b) => a - b);
  let best: Gap | null = null;
  for (let i = 1; i < t.length; i++)
    if (!best || t[i]! - t[i - 1]! > best.to - best.from) best = { from: t[i - 1]!, to: t[i]! };
  return best;
}

/** First successful write that started at or after `t` (its completion time), or null. */
export function firstSuccessAfter(attempts: readonly Attempt[], t: number): number | null {
  let best: number | null = null;
  for (const a of attempts) if (a.ok && a.start >= t && (best === null || a.end < best)) best = a.end;
  return best;
}

export function analyse(
  attempts: readonly Attempt[],
  scenario: 'kill9' | 'switchover',
  faultAt: number,
): Disruption {
  const before = attempts.filter((a) => a.ok && a.end < faultAt).map((a) => a.end);
  const lastBefore = before.length > 0 ? Math.max(...before) : faultAt;
  const gap = longestGap(attempts, lastBefore);
  const failures = attempts.filter((a) => !a.ok && a.end >= faultAt);
  let start = faultAt;
  if (scenario === 'switchover') {
    start = gap?.from ?? faultAt;
    for (const f of failures) start = Math.min(start, Math.max(f.start, faultAt));
  }
  // Writes are back with the first success started after the last failure (or after the start).
  const lastFailure = failures.length > 0 ? Math.max(...failures.map((f) => f.end)) : start;
  let back = firstSuccessAfter(attempts, Math.max(lastFailure, start));
  // A pause without any failure (writes held by the proxy) ends with the longest gap.
  if (failures.length === 0 && scenario === 'switchover' && gap) back = gap.to;
  const errorKinds: Record<string, number> = {};
  const errorSamples: Record<string, string> = {};
  for (const a of failures) {
    const k = a.kind ?? '?';
    errorKinds[k] = (errorKinds[k] ?? 0) + 1;
    errorSamples[k] ??= a.message ?? '';
  }
  return {
    rtoMs: back === null ? null : back - start,
    longestGapMs: gap ? gap.to - gap.from : 0,
    errors: failures.length,
    errorKinds,
    errorSamples,
    acked: attempts.filter((a) => a.ok).length,
    attempts: attempts.length,
  };
}

/**
 * The sharding host's sessions for reads on the fast path (scatter-run.ts), kept between reads:
 * opening a superuser session (a connection and its SCRAM exchange) on every group for each read
 * cost more than a small read itself. A session is kept, idle, under its group's current primary
 * (`key`: host and port), so a session is never reused once the group's primary moved; at most
 * IDLE_PER_KEY per primary, each closed after IDLE_MS unused; a session that failed or lost its
 * connection is closed, never kept. The sessions hold nothing between reads: each read is one
 * transaction (`SET LOCAL ROLE` and `SET LOCAL` settings end with it).
 */
import type pg from 'pg';
import type { PgGroupSession } from './every-group.js';

const IDLE_PER_KEY = 4;
const IDLE_MS = 30_000;

export interface SessionSource {
  /** Fresh superuser sessions on these groups' primaries; `close` ends them. */
  openSessions(
    groups: readonly string[],
  ): Promise<{ readonly sessions: readonly PgGroupSession[]; close(): Promise<void> }>;
  /** The identity of a group's primary now (null: do not keep its sessions). */
  readonly key?: (group: string) => string | null;
}

export interface CheckedOut {
  /** In the order of the groups asked for. */
  readonly sessions: readonly PgGroupSession[];
  /** Some of them were kept from an earlier read (a lost connection may show only now). */
  readonly reused: boolean;
  /** Gives them back: kept when `ok`, else closed. */
  release(ok: boolean): Promise<void>;
}

interface Idle {
  readonly client: pg.Client;
  readonly timer: NodeJS.Timeout;
}

const idle = new Map<string, Idle[]>();
const lost = new WeakSet<pg.Client>();
const watched = new WeakSet<pg.Client>();

function watch(c: pg.Client): void {
  if (watched.has(c)) return;
  watched.add(c);
  c.on('error', () => lost.add(c));
  c.on('end', () => lost.add(c));
}

export async function checkOut(
  groups: readonly string[],
  src: SessionSource,
  fresh = false,
): Promise<CheckedOut> {
  const keys = new Map<string, string | null>(groups.map((g) => [g, src.key?.(g) ?? null]));
  const got = new Map<string, pg.Client>();
  if (!fresh) {
    for (const g of groups) {
      const key = keys.get(g);
      const list = key === null || key === undefined ? undefined : idle.get(key);
      while (list !== undefined && list.length > 0) {
        const i = list.pop()!;
        clearTimeout(i.timer);
        if (!lost.has(i.client)) {
          got.set(g, i.client);
          break;
        }
        void i.client.end().catch(() => undefined);
      }
    }
  }
  const reused = got.size > 0;
  const missing = groups.filter((g) => !got.has(g));
  if (missing.length > 0) {
    try {
      const opened = await src.openSessions(missing);
      for (const s of opened.sessions) got.set(s.group, s.client);
    } catch (e) {
      await Promise.all([...got.values()].map((c) => c.end().catch(() => undefined)));
      throw e;
    }
  }
  const sessions = groups.map((group) => {
    const client = got.get(group);
    if (client === undefined) throw new Error(`group ${group} has no session`);
    watch(client);
    return { group, client };
  });
  return {
    sessions,
    reused,
    async release(ok) {
      await Promise.all(
        sessions.map(async ({ group, client }) => {
          const key = keys.get(group);
          const list = key === null || key === undefined ? undefined : (idle.get(key) ?? []);
          if (
            !ok ||
            lost.has(client) ||
            key === null ||
            key === undefined ||
            list === undefined ||
            list.length >= IDLE_PER_KEY
          ) {
            await client.end().catch(() => undefined);
            return;
          }
          const timer = setTimeout(() => {
            const l = idle.get(key);
            const at = l?.findIndex((x) => x.client === client) ?? -1;
            if (at >= 0) l!.splice(at, 1);
            void client.end().catch(() => undefined);
          }, IDLE_MS);
          timer.unref();
          list.push({ client, timer });
          idle.set(key, list);
        }),
      );
    },
  };
}

/**
 * Memory per idle client of a proxy: the proxy process's resident set (VmRSS in
 * /proc/<pid>/status) before and after opening many idle, fully authenticated client
 * connections (node-postgres clients, opened in batches; each has completed the StartupMessage,
 * SCRAM and ReadyForQuery). If the machine refuses more connections (file descriptors, ports,
 * the proxy's own limits), the measurement stops there and reports how many were reached.
 *
 * The RSS is also read half-way: the growth over the second half divided by the clients it added
 * is the marginal cost of one more idle client, without what the process grows once whatever the
 * count (a Node.js proxy's young generation grows to its maximum, ~32 MB, during any burst of
 * logins: at 10,000 clients that alone adds ~3 kB to the first column).
 *
 * Then the clients stay idle for IDLE_WAIT_MS and the RSS is read once more: a proxy that gives
 * back what the burst of logins grew once it idles (pgscale's does, src/proxy/idle-memory.ts)
 * shows it there; `idle` is that reading's growth over `before` per client.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { Login } from './process.js';

export interface MemoryResult {
  target: string;
  wanted: number;
  reached: number;
  rssBeforeKb: number;
  rssAfterKb: number;
  /** (after - before) / reached, in kB; null when nothing was reached. */
  perClientKb: number | null;
  /** Clients open and RSS (kB) at the half-way reading. */
  halfReached: number;
  rssHalfKb: number;
  /** (after - half) / (reached - halfReached), in kB: one more idle client; null without a second half. */
  marginalKb: number | null;
  /** RSS (kB) after the clients idled IDLE_WAIT_MS more. */
  rssIdleKb: number;
  /** (idle - before) / reached, in kB; null when nothing was reached. */
  perClientIdleKb: number | null;
  /** Why fewer than `wanted` were reached. */
  stoppedBy: string | null;
}

/** VmRSS of a process in kB (Linux). */
export function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

function nofile(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const n = (s: string | undefined) => (s === 'unlimited' || s === undefined ? Infinity : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/**
 * Raises our open-file limit (inherited by proxies started afterwards) to at least `want`, with
 * prlimit on our own pid (root may raise the hard limit too). Returns the soft limit in force.
 */
export function ensureNofile(want: number): number {
  const cur = nofile();
  if (cur.soft >= want) return cur.soft;
  const hard = Math.max(cur.hard === Infinity ? want : cur.hard, want);
  spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${want}:${hard}`], { stdio: 'ignore' });
  const after = nofile();
  if (after.soft < want && after.hard > after.soft) {
    spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${after.hard}:${after.hard}`], {
      stdio: 'ignore',
    });
  }
  return nofile().soft;
}

/**
 * How long the clients idle before the last reading: two of pgscale's idle-memory checks (10 s
 * each; the first may still see the logins' work) and time for V8 to unmap what it freed.
 */
export const IDLE_WAIT_MS = 25_000;

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 500));
}

export async function measureIdleClients(
  target: string,
  pid: number,
  login: Login,
  wanted: number,
  batch = 100,
  progress: (n: number) => void = () => undefined,
): Promise<MemoryResult> {
  await settle();
  const before = rssKb(pid);
  const clients: pg.Client[] = [];
  let stoppedBy: string | null = null;
  let half: { n: number; rss: number } | null = null;
  try {
    while (clients.length < wanted && stoppedBy === null) {
      const n = Math.min(batch, wanted - clients.length);
      const opened = await Promise.allSettled(
        Array.from({ length: n }, async () => {
          const c = new pg.Client({ ...login, connectionTimeoutMillis: 60_000 });
          c.on('error', () => undefined);
          try {
            await c.connect();
          } catch (e) {
            await c.end().catch(() => undefined);
            throw e;
          }
          return c;
        }),
      );
      for (const o of opened) {
        if (o.status === 'fulfilled') clients.push(o.value);
        else stoppedBy ??= o.reason instanceof Error ? o.reason.message : String(o.reason);
      }
      progress(clients.length);
      if (half === null && clients.length >= wanted / 2) {
        await settle();
        half = { n: clients.length, rss: rssKb(pid) };
      }
    }
    await settle();
    const after = rssKb(pid);
    await new Promise((r) => setTimeout(r, IDLE_WAIT_MS));
    const idle = rssKb(pid);
    return {
      target,
      wanted,
      reached: clients.length,
      rssBeforeKb: before,
      rssAfterKb: after,
      perClientKb: clients.length > 0 ? (after - before) / clients.length : null,
      halfReached: half?.n ?? 0,
      rssHalfKb: half?.rss ?? before,
      marginalKb:
        half !== null && clients.length > half.n ? (after - half.rss) / (clients.length - half.n) : null,
      rssIdleKb: idle,
      perClientIdleKb: clients.length > 0 ? (idle - before) / clients.length : null,
      stoppedBy,
    };
  } finally {
    for (let i = 0; i < clients.length; i += 500) {
      await Promise.allSettled(clients.slice(i, i + 500).map((c) => c.end()));
    }
  }
}

/**
 * SHOW LISTS and SHOW MEM of the admin console, adapted from PgBouncer to a garbage-collected
 * process. PgBouncer keeps its objects in slab caches with free lists; Node has none, so the
 * `free_*` lists are always 0 and SHOW MEM's object rows give counts with no per-item size. The
 * memory rows come from process.memoryUsage() in bytes (size 1, used/free/memtotal in bytes), so
 * `memtotal` is comparable with PgBouncer's: what the process holds for that purpose.
 */
import type { AdminView } from './admin-view.js';

export type Cell = string | number | boolean | null;

/** PgBouncer's SHOW LISTS rows (list, items) that mean something here. */
export function listRows(proxy: AdminView): Cell[][] {
  const databases = new Set(Object.keys(proxy.settings.databases).filter((d) => d !== '*'));
  for (const p of proxy.pools.values()) databases.add(p.database);
  let login = 0;
  for (const c of proxy.clients) if (c.phase === 'startup' || c.phase === 'auth') login++;
  const users = new Set(proxy.credentials.users());
  for (const p of proxy.pools.values()) users.add(p.target.user);
  return [
    ['databases', databases.size],
    ['users', users.size],
    ['pools', proxy.pools.size],
    ['free_clients', 0],
    ['used_clients', proxy.clients.size],
    ['login_clients', login],
    ['free_servers', 0],
    ['used_servers', serverCount(proxy)],
  ];
}

/** PgBouncer's SHOW MEM columns (name, size, used, free, memtotal). */
export function memRows(proxy: AdminView): Cell[][] {
  const m = process.memoryUsage();
  let prepared = 0;
  for (const p of proxy.pools.values()) {
    for (const s of p.idle) prepared += s.prepared.size;
    for (const s of p.active) prepared += s.prepared.size;
  }
  const bytes = (name: string, used: number, total: number): Cell[] => [
    name,
    1,
    used,
    Math.max(0, total - used),
    total,
  ];
  const objects = (name: string, used: number): Cell[] => [name, 0, used, 0, 0];
  return [
    bytes('heap', m.heapUsed, m.heapTotal),
    bytes('rss', m.rss, m.rss),
    bytes('external', m.external, m.external),
    bytes('array_buffers', m.arrayBuffers, m.arrayBuffers),
    objects('client_conn', proxy.clients.size),
    objects('server_conn', serverCount(proxy)),
    objects('pool', proxy.pools.size),
    objects('prepared_statement', prepared),
  ];
}

export function serverCount(proxy: AdminView): number {
  let n = 0;
  for (const p of proxy.pools.values()) n += p.total;
  return n;
}

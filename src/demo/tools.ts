/**
 * The other tools a reader may compare pgscale with, found on this machine or not: PgBouncer
 * (connection pooling), Patroni with etcd (failover) and HAProxy (read spreading). Looked for at
 * their Debian paths, then on PATH; PGSCALE_DEMO_WITHOUT (names, comma-separated) leaves some out
 * as if they were not installed. The report says in one line per scenario what was compared and
 * what was not, and why.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Tool {
  name: string;
  /** Where it is, or null when it is not installed. */
  path: string | null;
}

const DEBIAN: Record<string, string> = {
  pgbouncer: '/usr/sbin/pgbouncer',
  patroni: '/usr/bin/patroni',
  etcd: '/usr/bin/etcd',
  haproxy: '/usr/sbin/haproxy',
};

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The tools PGSCALE_DEMO_WITHOUT names (`patroni,haproxy`): treated as not installed. */
function leftOut(name: string): boolean {
  return (process.env.PGSCALE_DEMO_WITHOUT ?? '')
    .split(',')
    .map((x) => x.trim())
    .includes(name);
}

export function findTool(name: string): Tool {
  if (leftOut(name)) return { name, path: null };
  const candidates = [
    DEBIAN[name],
    ...(process.env.PATH ?? '').split(delimiter).map((d) => d && join(d, name)),
  ];
  return { name, path: candidates.find((p): p is string => !!p && executable(p)) ?? null };
}

/** The one-line note of the connection-cost scenario about PgBouncer. */
export function pgbouncerNote(
  t: Tool = findTool('pgbouncer'),
  version: string | null = null,
  poolSize = 20,
): string {
  return t.path
    ? `PgBouncer is installed (${t.path}${version ? `, ${version}` : ''}): the same clients ran through it, with transaction pooling and the proxy's pool size (${poolSize}) in front of the same primary; every target ran one-shot statements (PgBouncer before 1.21 cannot keep named prepared statements in transaction pooling).`
    : 'PgBouncer is not installed on this machine (apt-get install pgbouncer), so the connection cost through PgBouncer is not measured here.';
}

/** The one-line note of the failover scenario when Patroni + etcd did not run: why not. */
export function patroniNote(p: Tool, etcd: Tool, quick: boolean): string {
  const missing = [p, etcd].filter((t) => !t.path).map((t) => t.name);
  if (missing.length)
    return `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not installed on this machine (apt-get install patroni etcd-server), so the same failover with Patroni + etcd is not measured here.`;
  return quick
    ? `Patroni + etcd are installed (${p.path}, ${etcd.path}): the same failover with Patroni runs in the full run only (it costs about a minute), not with --quick.`
    : 'Patroni + etcd are installed, but the same failover with Patroni did not run.';
}

/** The one-line note of the read scenario when HAProxy did not run: why not. */
export function haproxyNote(h: Tool, quick: boolean): string {
  if (!h.path)
    return 'HAProxy is not installed on this machine (apt-get install haproxy), so read spreading through HAProxy is not measured here.';
  return quick
    ? `HAProxy is installed (${h.path}): reads spread by HAProxy are measured in the full run only, not with --quick.`
    : 'HAProxy is installed, but reads through it were not measured.';
}

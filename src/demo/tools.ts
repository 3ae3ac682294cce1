/**
 * The other tools a reader may compare pgscale with, found on this machine or not: PgBouncer
 * (connection pooling), Patroni and HAProxy (failover). Looked for at their Debian paths, then
 * on PATH. The report says in one line per scenario what was compared and what was not, and why.
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

export function findTool(name: string): Tool {
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

/** The one-line note of the failover scenario about Patroni and HAProxy. */
export function patroniNote(p: Tool = findTool('patroni'), h: Tool = findTool('haproxy')): string {
  const have = [p, h].filter((t) => t.path).map((t) => `${t.name} (${t.path})`);
  const missing = [p, h].filter((t) => !t.path).map((t) => t.name);
  return (
    (have.length ? `Installed here: ${have.join(', ')}. ` : '') +
    (missing.length ? `Not installed: ${missing.join(', ')}. ` : '') +
    'The same failover with Patroni + etcd behind HAProxy is not run by this demo yet, so there is no comparison with it.'
  );
}

/**
 * The decisions behind a node agent's health endpoints, as pure functions from a node's status to
 * an HTTP status code, so that a load balancer's view of the cluster can be tested without
 * sockets. The semantics are Patroni's (https://patroni.readthedocs.io/en/latest/rest_api.html),
 * so that HAProxy configurations written for Patroni (`option httpchk OPTIONS /primary`,
 * `GET /replica?lag=10MB`, a bare `option httpchk`, i.e. `OPTIONS /`) keep working:
 *
 *   /, /primary, /master, /leader, /read-write  200 when PostgreSQL runs as the writable primary
 *   /replica[?lag=N]      200 when it runs as a streaming replica (lagging at most N bytes)
 *   /read-only[?lag=N]    200 when /primary or /replica would be
 *   /sync, /synchronous   200 on a healthy replica that is a synchronous (or quorum) standby
 *   /async, /asynchronous 200 on a healthy replica that is not one
 *   /health               200 when PostgreSQL runs, whatever its role
 *   /liveness             200 while the agent answers at all
 *   /patroni              200 always: the status document, for monitoring
 *
 * Differences from Patroni: without HA there is no leader lock yet, so /primary and /leader mean
 * "runs and is not in recovery"; /replica also requires the WAL receiver to be streaming (Patroni
 * only asks for that with ?replication_state=streaming); a lag we cannot measure (no running
 * primary in the group) does not count as lagging, as Patroni does when it knows no leader
 * position; an unreadable ?lag= is a 400 rather than being ignored.
 */
import type { NodeStatus } from '../cluster/status.js';
import { parseLsn } from '../protocol/lsn.js';

export type Endpoint =
  'primary' | 'replica' | 'read-only' | 'sync' | 'async' | 'health' | 'liveness' | 'patroni';

const PATHS: Record<string, Endpoint> = {
  '/': 'primary',
  '/primary': 'primary',
  '/master': 'primary',
  '/leader': 'primary',
  '/read-write': 'primary',
  '/replica': 'replica',
  '/read-only': 'read-only',
  '/sync': 'sync',
  '/synchronous': 'sync',
  '/async': 'async',
  '/asynchronous': 'async',
  '/health': 'health',
  '/liveness': 'liveness',
  '/patroni': 'patroni',
};

/** The endpoint a request path names (a trailing slash is ignored), or null for an unknown path. */
export function endpointOf(path: string): Endpoint | null {
  const p = path.length > 1 ? path.replace(/\/+$/, '') : path;
  return PATHS[p] ?? null;
}

export const ENDPOINT_PATHS = Object.keys(PATHS);

const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

/**
 * A lag limit as Patroni accepts it: bytes (`1048576`) or a size with PostgreSQL's memory units,
 * 1024-based (`1024kB`, `10MB`, `1GB`, `1TB`; case-insensitive, `B` optional after the number).
 * Returns null when the text is none of these.
 */
export function parseLag(text: string): number | null {
  const m = /^\s*(\d+)\s*(b|kb|mb|gb|tb)?\s*$/i.exec(text);
  if (!m) return null;
  const n = Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]!;
  return Number.isSafeInteger(n) ? n : null;
}

export interface CheckOptions {
  /** ?lag=: the most replay lag, in bytes, a replica may have (null: no limit). */
  maxLagBytes: number | null;
}

const running = (s: NodeStatus | null): s is NodeStatus => s?.state === 'running';

export function isWritablePrimary(s: NodeStatus | null): boolean {
  return running(s) && s.role === 'primary';
}

/** A running replica whose WAL receiver streams and whose known lag is within the limit. */
export function isHealthyReplica(s: NodeStatus | null, maxLagBytes: number | null = null): boolean {
  if (!running(s) || s.role !== 'replica' || !s.streaming) return false;
  return maxLagBytes === null || s.lagBytes === null || s.lagBytes <= maxLagBytes;
}

/** The HTTP status an endpoint answers for a node in status `s` (null: status unknown). */
export function checkCode(endpoint: Endpoint, s: NodeStatus | null, opts: CheckOptions): 200 | 503 {
  const ok = (b: boolean) => (b ? 200 : 503);
  switch (endpoint) {
    case 'primary':
      return ok(isWritablePrimary(s));
    case 'replica':
      return ok(isHealthyReplica(s, opts.maxLagBytes));
    case 'read-only':
      return ok(isWritablePrimary(s) || isHealthyReplica(s, opts.maxLagBytes));
    case 'sync':
      return ok(
        isHealthyReplica(s, opts.maxLagBytes) && (s?.syncState === 'sync' || s?.syncState === 'quorum'),
      );
    case 'async':
      return ok(
        isHealthyReplica(s, opts.maxLagBytes) && s?.syncState !== 'sync' && s?.syncState !== 'quorum',
      );
    case 'health':
      return ok(running(s));
    case 'liveness':
    case 'patroni':
      return 200;
  }
}

/** `15.8` → 150008, PostgreSQL's server_version_num (what Patroni reports as server_version). */
export function serverVersionNum(version: string): number | null {
  const m = /^(\d+)(?:\.(\d+))?/.exec(version);
  if (!m) return null;
  const major = Number(m[1]);
  const minor = Number(m[2] ?? 0);
  return major >= 10 ? major * 10000 + minor : null;
}

export interface StatusDocumentContext {
  /** The cluster's name (Patroni's `scope`). */
  cluster: string;
  /** The node the agent speaks for (when its status is unknown). */
  node: string;
  serverVersion: number | null;
  /** When the status was read (ISO time), or null when it never was. */
  readAt: string | null;
}

const lsnBytes = (lsn: string | null): number | null => {
  const v = parseLsn(lsn);
  return v === null ? null : Number(v);
};

/**
 * The JSON body of every health endpoint: Patroni's status document (`state`, `role`,
 * `server_version`, `xlog`, `timeline`, WAL positions as byte offsets) plus pgscale's own fields.
 */
export function statusDocument(s: NodeStatus | null, ctx: StatusDocumentContext): Record<string, unknown> {
  const up = running(s);
  const doc: Record<string, unknown> = {
    state: s === null ? 'unknown' : s.state,
  };
  if (up && s.role) doc.role = s.role;
  if (up && ctx.serverVersion !== null) doc.server_version = ctx.serverVersion;
  if (up && s.role === 'primary') doc.xlog = { location: lsnBytes(s.lsn) };
  if (up && s.role === 'replica') {
    doc.xlog = {
      received_location: lsnBytes(s.receiveLsn),
      replayed_location: lsnBytes(s.lsn),
    };
  }
  if (up && s.timeline !== null) doc.timeline = s.timeline;
  doc.patroni = { scope: ctx.cluster, name: s?.name ?? ctx.node };
  doc.pgscale = {
    node: s?.name ?? ctx.node,
    group: s?.group ?? null,
    streaming: s?.streaming ?? false,
    lag_bytes: s?.lagBytes ?? null,
    upstream: s?.upstream ?? null,
    sync_state: s?.syncState ?? null,
    status_read_at: ctx.readAt,
    ...(s?.error ? { error: s.error } : {}),
  };
  return doc;
}

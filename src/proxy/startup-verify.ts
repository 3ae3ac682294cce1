/**
 * Start-up settings (`PGDATESTYLE`, `options=-c work_mem=64MB`, a `work_mem` key in the start-up
 * packet) are accepted the way PostgreSQL accepts them: if the server takes the values. Before the
 * login succeeds, one pooled server connection applies them all with `set_config(name, value,
 * true)` in one implicit transaction (so nothing stays on that connection); once accepted, the
 * same settings are not checked again for that pool (most applications send a handful of distinct
 * start-up packets, so logins almost never pay the round trip). Unchecked, a bad value would make
 * every replay of the client's settings fail (all the SETs of a replay share one implicit
 * transaction). A refusal becomes the client's FATAL with the server's own SQLSTATE and message
 * (42704 unrecognized configuration parameter, 22023 invalid value, 42501 permission denied, 55P02
 * for a setting that only a new backend can take). Checked with set_config, so a setting that
 * PostgreSQL accepts only at backend start (PGC_BACKEND) is refused here: the proxy can only
 * apply settings with SET on connections that already run.
 */
import { encodeErrorResponse } from '../protocol/error-response.js';
import type { ErrorResponse } from '../protocol/error-response.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { Pool } from './backend/pool.js';
import { ServerLoginError } from './backend/server-conn.js';
import type { StartupSettings } from './frontend/startup-params.js';
import { sqlLiteral } from './frontend/startup-params.js';

/** Fields of the server's error that describe our check query, not the client's setting. */
const QUERY_FIELDS = new Set(['P', 'p', 'q', 'W']);

/** The server's error as a FATAL for the login (severity changed, positions in our query dropped). */
export function asLoginFatal(e: ErrorResponse): Buffer {
  const fields = e.fields
    .filter((f) => !QUERY_FIELDS.has(f.code))
    .map((f) => (f.code === 'S' || f.code === 'V' ? { code: f.code, value: 'FATAL' } : f));
  return encodeErrorResponse({ name: 'ErrorResponse', fields });
}

/** The check's text: one set_config per unverified setting, with its raw start-up value. */
export function verifyQuery(s: StartupSettings): string {
  const calls = s.unverified.map(
    (n) => `pg_catalog.set_config(${sqlLiteral(n)}, ${sqlLiteral(s.raw.get(n) ?? '')}, true)`,
  );
  return `SELECT ${calls.join(', ')}`;
}

/** Settings a pool's server has accepted, by verifyKey; at most VERIFIED_MAX per pool. */
const verified = new WeakMap<Pool, Set<string>>();
const VERIFIED_MAX = 1000;

function verifyKey(s: StartupSettings): string {
  return s.unverified
    .map((n) => `${n}=${s.raw.get(n) ?? ''}`)
    .sort()
    .join('\0');
}

/** Null when the server accepts every unverified setting, else the FATAL to end the login with. */
export async function verifyStartupSettings(pool: Pool, s: StartupSettings): Promise<Buffer | null> {
  if (s.unverified.length === 0) return null;
  const key = verifyKey(s);
  let seen = verified.get(pool);
  if (seen?.has(key)) return null;
  let conn;
  try {
    conn = await pool.acquire();
  } catch (e) {
    return e instanceof ServerLoginError
      ? e.errorResponse
      : buildErrorResponse('FATAL', SqlState.CONNECTION_FAILURE, 'could not get a server connection');
  }
  try {
    const r = await conn.query(verifyQuery(s));
    if (r.error) return asLoginFatal(r.error);
    if (!seen) verified.set(pool, (seen = new Set()));
    if (seen.size >= VERIFIED_MAX) seen.delete(seen.values().next().value as string);
    seen.add(key);
    return null;
  } catch {
    return buildErrorResponse(
      'FATAL',
      SqlState.CONNECTION_FAILURE,
      'server connection lost while checking start-up settings',
    );
  } finally {
    pool.release(conn);
  }
}

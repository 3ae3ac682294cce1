/**
 * Start-up settings the proxy does not know by name (`options=-c work_mem=64MB`, a `work_mem` key
 * in the start-up packet) are accepted the way PostgreSQL accepts them: if the server takes the
 * value. Before the login succeeds, one pooled server connection applies them all with
 * `set_config(name, value, true)` in one implicit transaction (so nothing stays on that
 * connection); a refusal becomes the client's FATAL with the server's own SQLSTATE and message
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

/** Null when the server accepts every unverified setting, else the FATAL to end the login with. */
export async function verifyStartupSettings(pool: Pool, s: StartupSettings): Promise<Buffer | null> {
  if (s.unverified.length === 0) return null;
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
    return r.error ? asLoginFatal(r.error) : null;
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

/**
 * auth_query (PgBouncer's): a user's secret read on the server as auth_user, over a connection
 * of its own with search_path fixed to pg_catalog, never one a client used (a client's session
 * state, search_path above all, must not decide which table answers). Every login asks again
 * (nothing is cached): a dropped role or a changed password counts from the next login.
 */
import type { ProxyConfig } from '../config/schema.js';
import type { Pool } from './backend/pool.js';
import type { DatabaseTarget } from './database-target.js';
import type { Credentials } from './frontend/credentials.js';
import type { LoginRequest } from './frontend/client-conn.js';

export interface AuthQueryHost {
  readonly settings: ProxyConfig;
  readonly credentials: Credentials;
  resolve(database: string): DatabaseTarget | null;
  poolFor(database: string, t: DatabaseTarget, user: string, creds: LoginRequest['serverCreds']): Pool;
}

export async function runAuthQuery(
  host: AuthQueryHost,
  database: string,
  user: string,
): Promise<string | null> {
  const q = host.settings.auth_query;
  const authUser = host.settings.auth_user;
  if (!q || !authUser) return null;
  const served = host.resolve(database);
  if (!served) return null;
  // auth_dbname (PgBouncer's): the lookup runs in that database on the client's database's
  // server, so one function serves every database there, those created later included.
  const dbname = host.settings.auth_dbname;
  const t = dbname ? { ...served, dbname, poolSize: 1 } : served;
  const secret = await host.credentials.lookup(authUser, database);
  const creds =
    secret?.kind === 'plain'
      ? ({ kind: 'password', password: secret.password } as const)
      : secret?.kind === 'md5'
        ? ({ kind: 'md5-hash', hash: secret.hash } as const)
        : null;
  if (!creds) return null;
  // search_path is fixed at login to pg_catalog, so even an unqualified pg_shadow in an
  // operator's auth_query is the real one.
  const pool = host.poolFor(database, t, authUser, creds);
  const s = await pool.openDedicated('pgscale auth_query', { options: '-c search_path=pg_catalog' });
  try {
    const literal = `'${user.replace(/'/g, "''")}'`;
    const r = await s.query(q.replace(/\$1\b/g, literal));
    return r.error ? null : (r.rows[0]?.[1] ?? null);
  } finally {
    s.close();
  }
}

/**
 * Short-lived control connections to a node (node-postgres), as the cluster superuser over TCP
 * with SCRAM. Used for provisioning, status and cloning; never for application traffic.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';

export interface ConnTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database?: string;
  /** The cluster CA's certificate (cluster.tls on): TLS, the server verified against it and the host. */
  sslRootCert?: string;
}

/**
 * node-postgres' TLS options toward a node verified by the cluster CA `rootCert` (cluster.tls on):
 * the chain and the host (Node's checkServerIdentity), as libpq's verify-full; none without.
 */
export function pgSsl(rootCert: string | null): { ssl?: { ca: Buffer; rejectUnauthorized: true } } {
  return rootCert ? { ssl: { ca: readFileSync(rootCert), rejectUnauthorized: true } } : {};
}

export async function withClient<T>(
  t: ConnTarget,
  fn: (c: pg.Client) => Promise<T>,
  timeoutMs = 5000,
): Promise<T> {
  const client = new pg.Client({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database: t.database ?? 'postgres',
    application_name: 'pgscale',
    connectionTimeoutMillis: timeoutMs,
    keepAlive: true,
    ...pgSsl(t.sslRootCert ?? null),
  });
  // An error event after connect (server shutting down) must not crash the process.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function queryRows<R extends Record<string, unknown>>(
  t: ConnTarget,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  return withClient(t, async (c) => (await c.query<R>(sql, params)).rows);
}

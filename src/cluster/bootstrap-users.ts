/**
 * The application users and databases of `users:` and `databases:` on one group's primary, made
 * idempotently at every `up` (bootstrap-roles.ts calls this after the replication role):
 * every user on every group (a sharded application database spans them all), each declared
 * database on its home group with its owner, CONNECT on a declared database only for its owner
 * and the users listing it, and a password changed in a password_file set again. Roles get SCRAM
 * verifiers, never passwords.
 *
 * The auth lookup: PgBouncer's recommended auth_query set-up, so roles created later with
 * CREATE ROLE … LOGIN PASSWORD can log in through the proxy. A role `pgscale_auth` that may only
 * execute `pgscale_auth.user_lookup(name)` in database postgres: a SECURITY DEFINER function
 * owned by the superuser, search_path pinned, returning a login role's verifier from pg_authid —
 * never a superuser's, a replication role's, its own, nor an expired one's.
 */
import type { Config } from '../config/schema.js';
import { AUTH_ROLE, appDatabases, appUsers } from '../config/users.js';
import { buildScramSecret, parseScramSecret } from '../protocol/scram-secret.js';
import type { Reporter } from './cluster.js';
import { REPLICATION_USER, scramVerifier, sqlIdent, sqlLiteral } from './secrets.js';
import type pg from 'pg';

type Client = pg.Client;

/** The database the auth lookup lives in (proxy.auth_dbname inside `up`). */
export const AUTH_DBNAME = 'postgres';
/** The auth query the proxy inside `up` runs as AUTH_ROLE (proxy.auth_query unset). */
export const AUTH_QUERY = `SELECT usename, passwd FROM ${AUTH_ROLE}.user_lookup($1)`;

/** Whether a stored SCRAM verifier was made from `password` (so it need not be set again). */
export async function verifierMatches(stored: string | null, password: string): Promise<boolean> {
  if (stored === null) return false;
  const p = parseScramSecret(stored);
  if (!p.ok) return false;
  const again = await buildScramSecret(password, { salt: p.value.salt, iterations: p.value.iterations });
  return again.storedKey.equals(p.value.storedKey) && again.serverKey.equals(p.value.serverKey);
}

/** Creates a login role, or sets its password again when it no longer matches. */
async function ensureLoginRole(
  c: Client,
  name: string,
  password: string,
): Promise<'created' | 'changed' | null> {
  const r = await c.query<{ pw: string | null }>(
    'SELECT rolpassword AS pw FROM pg_authid WHERE rolname = $1',
    [name],
  );
  const verifier = sqlLiteral(await scramVerifier(password));
  if (r.rowCount === 0) {
    await c.query(`CREATE ROLE ${sqlIdent(name)} WITH LOGIN NOSUPERUSER PASSWORD ${verifier}`);
    return 'created';
  }
  if (await verifierMatches(r.rows[0]!.pw, password)) return null;
  await c.query(`ALTER ROLE ${sqlIdent(name)} WITH LOGIN PASSWORD ${verifier}`);
  return 'changed';
}

/**
 * Users, databases and grants on the primary of `group`, over a superuser connection `c` to
 * database postgres (its statement logging already off). `passwordOf`: a user's password, null
 * when it has none (then the role is left as it is).
 */
export async function bootstrapUsers(
  config: Config,
  group: number,
  c: Client,
  passwordOf: (user: string) => string | null,
  authPassword: string,
  reporter: Reporter,
): Promise<void> {
  for (const u of appUsers(config)) {
    if (u.name === config.app.user || u.name === config.postgres.superuser) continue;
    const pw = passwordOf(u.name);
    if (pw === null) continue;
    const done = await ensureLoginRole(c, u.name, pw);
    if (done) reporter.step(`${done} role ${u.name}${group > 0 ? ` on group ${group}` : ''}`);
  }
  for (const d of appDatabases(config)) {
    if (d.name === config.app.database || d.group !== group) continue;
    const r = await c.query<{ owner: string }>(
      'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
      [d.name],
    );
    if (r.rowCount === 0) {
      await c.query(`CREATE DATABASE ${sqlIdent(d.name)} OWNER ${sqlIdent(d.owner)}`);
      reporter.step(`created database ${d.name} (owner ${d.owner})`);
    } else if (r.rows[0]!.owner !== d.owner) {
      await c.query(`ALTER DATABASE ${sqlIdent(d.name)} OWNER TO ${sqlIdent(d.owner)}`);
      reporter.step(`database ${d.name}: owner is now ${d.owner}`);
    }
  }
  await grantConnect(config, group, c);
  await ensureAuthLookup(config, c, authPassword);
}

/**
 * A declared database: CONNECT for its owner and the users listing it only (PUBLIC's revoked),
 * and revoked from the declared users that no longer list it. app.database, unless declared,
 * keeps PostgreSQL's default (everyone may connect).
 */
async function grantConnect(config: Config, group: number, c: Client): Promise<void> {
  const users = appUsers(config);
  for (const d of appDatabases(config)) {
    if (!d.declared || d.group !== group) continue;
    const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [d.name]);
    if (exists.rowCount === 0) continue;
    const db = sqlIdent(d.name);
    await c.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${db} FROM PUBLIC`);
    for (const u of users) {
      if (u.name === config.postgres.superuser) continue;
      const known = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [u.name]);
      if (known.rowCount === 0) continue;
      const may = u.databases.includes(d.name);
      await c.query(
        may
          ? `GRANT CONNECT, TEMPORARY ON DATABASE ${db} TO ${sqlIdent(u.name)}`
          : `REVOKE CONNECT, TEMPORARY ON DATABASE ${db} FROM ${sqlIdent(u.name)}`,
      );
    }
  }
}

/** The auth role, its schema and its lookup function in database postgres (see the top). */
async function ensureAuthLookup(config: Config, c: Client, password: string): Promise<void> {
  await ensureLoginRole(c, AUTH_ROLE, password);
  const role = sqlIdent(AUTH_ROLE);
  const su = sqlIdent(config.postgres.superuser);
  await c.query(`CREATE SCHEMA IF NOT EXISTS ${role} AUTHORIZATION ${su}`);
  await c.query(`REVOKE ALL ON SCHEMA ${role} FROM PUBLIC`);
  await c.query(`GRANT USAGE ON SCHEMA ${role} TO ${role}`);
  await c.query(
    `CREATE OR REPLACE FUNCTION ${role}.user_lookup(i_username text)
       RETURNS TABLE (usename text, passwd text)
       LANGUAGE sql STABLE SECURITY DEFINER
       SET search_path = pg_catalog, pg_temp
     AS $fn$
       SELECT rolname::text, rolpassword
         FROM pg_catalog.pg_authid
        WHERE rolname = i_username
          AND rolcanlogin AND NOT rolsuper AND NOT rolreplication
          AND rolname NOT IN (${sqlLiteral(AUTH_ROLE)}, ${sqlLiteral(REPLICATION_USER)})
          AND (rolvaliduntil IS NULL OR rolvaliduntil > pg_catalog.now())
     $fn$`,
  );
  await c.query(`ALTER FUNCTION ${role}.user_lookup(text) OWNER TO ${su}`);
  await c.query(`REVOKE ALL ON FUNCTION ${role}.user_lookup(text) FROM PUBLIC`);
  await c.query(`GRANT EXECUTE ON FUNCTION ${role}.user_lookup(text) TO ${role}`);
}

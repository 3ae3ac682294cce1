/**
 * The roles and the database a cluster needs on its primary, made idempotently at every `up`:
 * the replication role, the application role and its database (SCRAM verifiers, never the
 * passwords, and never in the server log), and the default privileges that give the application
 * role the tables and sequences the superuser creates in its database. The users and databases of
 * `users:` and `databases:`, and the proxy's auth lookup, follow (bootstrap-users.ts).
 */
import type { Config } from '../config/schema.js';
import type { Reporter } from './cluster.js';
import type { Secrets } from './secrets.js';
import { REPLICATION_USER, scramVerifier, sqlIdent, sqlLiteral } from './secrets.js';
import type { ConnTarget } from './sql.js';
import { bootstrapUsers } from './bootstrap-users.js';
import { withClient } from './sql.js';

export interface UsersContext {
  /** The group whose primary `target` reaches (declared databases are made on their home group). */
  readonly group: number;
  /** A declared user's password (user-secrets.ts), null when it has none yet. */
  readonly passwordOf: (user: string) => string | null;
}

export async function bootstrapRoles(
  config: Config,
  secrets: Secrets,
  target: (database: string) => ConnTarget,
  reporter: Reporter,
  users?: UsersContext,
): Promise<void> {
  const { superuser } = config.postgres;
  const { database, user } = config.app;
  await withClient(target('postgres'), async (c) => {
    // Keep even the SCRAM verifiers out of the server log, whatever log_statement says.
    await c.query(
      "SET log_statement = 'none'; SET log_min_duration_statement = -1; SET log_min_error_statement = 'panic'; SET synchronous_commit = local",
    );
    const has = async (sql: string, v: string) => ((await c.query(sql, [v])).rowCount ?? 0) > 0;
    if (!(await has('SELECT 1 FROM pg_roles WHERE rolname = $1', REPLICATION_USER))) {
      await c.query(
        `CREATE ROLE ${sqlIdent(REPLICATION_USER)} WITH REPLICATION LOGIN PASSWORD ${sqlLiteral(await scramVerifier(secrets.replicator))}`,
      );
    }
    if (user !== superuser && !(await has('SELECT 1 FROM pg_roles WHERE rolname = $1', user))) {
      await c.query(
        `CREATE ROLE ${sqlIdent(user)} WITH LOGIN PASSWORD ${sqlLiteral(await scramVerifier(secrets.app))}`,
      );
      reporter.step(`created application role ${user}`);
    }
    if (!(await has('SELECT 1 FROM pg_database WHERE datname = $1', database))) {
      await c.query(`CREATE DATABASE ${sqlIdent(database)} OWNER ${sqlIdent(user)}`);
      reporter.step(`created database ${database}`);
    }
    if (users && secrets.auth !== undefined) {
      await bootstrapUsers(config, users.group, c, users.passwordOf, secrets.auth, reporter);
    }
  });
  if (user === superuser) return;
  // The application role owns its database (and so, from PostgreSQL 15, its public schema).
  // Tables and sequences the superuser creates there (`pgscale psql -- -c 'create table …'`,
  // as the README shows) are granted to it too; otherwise the application gets "permission
  // denied" on the very table it was shown. Idempotent, so every `up` ensures it.
  await withClient(target(database), async (c) => {
    // Its standbys start after it: with synchronous replication on, a commit waiting for one
    // would wait forever (a restart of a synchronous cluster hung here).
    await c.query('SET synchronous_commit = local');
    for (const what of ['TABLES', 'SEQUENCES']) {
      await c.query(
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${sqlIdent(superuser)} IN SCHEMA public GRANT ALL ON ${what} TO ${sqlIdent(user)}`,
      );
    }
  });
}

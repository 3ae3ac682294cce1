/**
 * The global tables: on group 0, for every distributed table, one table that holds all of its
 * rows — the general path for reads that need several groups (docs/sharding.md, "Reads across
 * groups"). `pgscale_all.t<first shard id>` is partitioned by hash on the distribution column
 * exactly as the table is on every group, and each of its partitions is a postgres_fdw foreign
 * table over the shard `<table>_<shard id>` on the group that holds it (group 0's own shards
 * through a loopback server). A query the proxy cannot answer on one group runs on group 0 with
 * its distributed tables renamed to their global tables (global-rewrite.ts): PostgreSQL's own
 * planner then does the work — joins, windows, CTEs, DISTINCT, set operations — fetching from
 * every group. postgres_fdw's asynchronous append is off: on PostgreSQL 15.18 a correlated
 * subquery over it failed with "epoll_ctl() failed: File exists" (the corpus found it), so the
 * groups' scans run one after another for now.
 *
 * They are derived from the catalog and rebuilt whenever it, a table's columns or a group's
 * primary change (syncGlobalTables, run by the sharding service): a metadata-only transaction on
 * group 0. The foreign servers reach each group's primary as the role `pgscale_fdw`, whose
 * password is derived from the superuser's (never stored apart, never logged: the statements that
 * carry it run with statement logging off); it may only SELECT the shards. The global tables are
 * owned by each table's owner and granted SELECT as the table is, so PostgreSQL checks the
 * client's privileges on them as on the table itself. A table with row-level security gets none
 * (the shards would be read as `pgscale_fdw`, past the policies): reads of it across groups are
 * refused.
 */
import { createHmac } from 'node:crypto';
import type pg from 'pg';
import { buildScramSecret, formatScramSecret } from '../protocol/scram-secret.js';
import { shardNameOf } from './catalog-lookup.js';
import type { PgGroupSession } from './every-group.js';
import { quoteIdent, quoteLiteral } from './table-ddl.js';
import type { Catalog, DistributedTable } from './types.js';

export const GLOBAL_SCHEMA = 'pgscale_all';
export const FDW_ROLE = 'pgscale_fdw';
const SERVER_PREFIX = 'pgscale_group_';

/** The global table of `t` (unquoted name in GLOBAL_SCHEMA). */
export function globalTableName(t: DistributedTable): string {
  return `t${t.firstShardId}`;
}

/** `pgscale_fdw`'s password: derived from the superuser's, so it needs no storage of its own. */
export function fdwPassword(superuserPassword: string): string {
  return createHmac('sha256', superuserPassword).update('pgscale_fdw').digest('base64url');
}

export interface GroupEndpoint {
  readonly group: string;
  readonly host: string;
  readonly port: number;
}

export interface GlobalSyncEnv {
  readonly catalog: Catalog;
  /** Superuser sessions on every group's primary, in catalog order (group 0 first). */
  readonly sessions: readonly PgGroupSession[];
  /** Where each group's primary is (the foreign servers' host and port). */
  readonly endpoints: readonly GroupEndpoint[];
  readonly database: string;
  readonly superuserPassword: string;
  /** The cluster CA's certificate (cluster.tls on): the foreign servers connect with verify-full. */
  readonly rootCert?: string | null;
  /**
   * Several hosts: the foreign servers verify against the CA the server's environment names
   * (PGSSLROOTCERT, set by pgscale when it starts a node), not `rootCert`'s path on this host.
   */
  readonly serverCa?: boolean;
}

/** What a sync built: the distributed tables that have a global table (by catalog key). */
export interface GlobalSyncResult {
  readonly tables: ReadonlySet<string>;
}

/** Rebuilds the global tables on group 0 for `catalog` (idempotent; metadata only). */
export async function syncGlobalTables(env: GlobalSyncEnv): Promise<GlobalSyncResult> {
  const distributed = [...env.catalog.tables.entries()].filter(([, t]) => t.kind === 'distributed');
  const password = fdwPassword(env.superuserPassword);
  const verifier = formatScramSecret(await buildScramSecret(password));
  // The role and its grants, on every group (each is its own PostgreSQL instance).
  await Promise.all(
    env.sessions.map((s) =>
      grantShards(
        s.client,
        distributed.map(([, t]) => t),
        verifier,
      ),
    ),
  );
  const g0 = env.sessions[0];
  if (g0 === undefined) return { tables: new Set() };
  const c = g0.client;
  const built = new Set<string>();
  await c.query('BEGIN');
  try {
    // Nothing of what follows may reach the server log: the user mappings carry the password.
    await c.query("SET LOCAL log_statement = 'none'");
    await c.query("SET LOCAL log_min_error_statement = 'panic'");
    await c.query('CREATE EXTENSION IF NOT EXISTS postgres_fdw');
    await c.query(`DROP SCHEMA IF EXISTS ${GLOBAL_SCHEMA} CASCADE`);
    const old = await c.query<{ name: string }>(
      `SELECT srvname AS name FROM pg_foreign_server WHERE srvname LIKE '${SERVER_PREFIX}%'`,
    );
    for (const { name } of old.rows) await c.query(`DROP SERVER ${quoteIdent(name)} CASCADE`);
    const ssl = !env.rootCert
      ? ''
      : env.serverCa === true
        ? `, sslmode 'verify-full'`
        : `, sslmode 'verify-full', sslrootcert ${quoteLiteral(env.rootCert)}`;
    for (const e of env.endpoints) {
      const server = quoteIdent(SERVER_PREFIX + e.group);
      await c.query(
        `CREATE SERVER ${server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host ${quoteLiteral(e.host)}, port ${quoteLiteral(
          String(e.port),
        )}, dbname ${quoteLiteral(env.database)}, async_capable 'false', fetch_size '10000', application_name 'pgscale global'${ssl})`,
      );
      await c.query(
        `CREATE USER MAPPING FOR PUBLIC SERVER ${server} OPTIONS (user '${FDW_ROLE}', password ${quoteLiteral(password)})`,
      );
    }
    await c.query(`CREATE SCHEMA ${GLOBAL_SCHEMA}`);
    await c.query(`GRANT USAGE ON SCHEMA ${GLOBAL_SCHEMA} TO PUBLIC`);
    for (const [key, t] of distributed) {
      if (await buildOne(c, env.catalog, t)) built.add(key);
    }
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
  return { tables: built };
}

/** `pgscale_fdw` exists with this password and may read every shard of these tables on this group. */
async function grantShards(
  c: pg.Client,
  tables: readonly DistributedTable[],
  verifier: string,
): Promise<void> {
  await c.query(
    `DO $pgscale$ BEGIN
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${FDW_ROLE}') THEN CREATE ROLE ${FDW_ROLE} LOGIN; END IF;
     END $pgscale$`,
  );
  await c.query(`ALTER ROLE ${FDW_ROLE} LOGIN PASSWORD ${quoteLiteral(verifier)}`);
  for (const t of tables) {
    const parent = `${quoteIdent(t.rel.schema)}.${quoteIdent(t.rel.name)}`;
    const r = await c.query<{ part: string }>(
      `SELECT i.inhrelid::regclass::text AS part FROM pg_inherits i WHERE i.inhparent = to_regclass($1)`,
      [parent],
    );
    if (r.rows.length === 0) continue;
    await c.query(`GRANT USAGE ON SCHEMA ${quoteIdent(t.rel.schema)} TO ${FDW_ROLE}`);
    await c.query(`GRANT SELECT ON ${r.rows.map((x) => x.part).join(', ')} TO ${FDW_ROLE}`);
  }
}

/** One table's global table and its foreign partitions; false when it gets none (row-level security, gone). */
async function buildOne(c: pg.Client, catalog: Catalog, t: DistributedTable): Promise<boolean> {
  const source = `${quoteIdent(t.rel.schema)}.${quoteIdent(t.rel.name)}`;
  const info = await c.query<{ rls: boolean; owner: string; grantees: string[] }>(
    `SELECT c.relrowsecurity AS rls, pg_get_userbyid(c.relowner) AS owner,
            coalesce((SELECT array_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
                        FROM aclexplode(c.relacl) a WHERE a.privilege_type = 'SELECT'), '{}') AS grantees
       FROM pg_class c WHERE c.oid = to_regclass($1)`,
    [source],
  );
  const row = info.rows[0];
  if (row === undefined || row.rls) return false;
  const coloc = catalog.colocations.get(t.colocationId);
  if (coloc === undefined || t.column === null) return false;
  const name = globalTableName(t);
  const global = `${GLOBAL_SCHEMA}.${quoteIdent(name)}`;
  await c.query(
    `CREATE TABLE ${global} (LIKE ${source} INCLUDING COMMENTS) PARTITION BY HASH (${quoteIdent(t.column)})`,
  );
  for (let r = 0; r < coloc.shardCount; r++) {
    const group = coloc.placement[r]!;
    await c.query(
      `CREATE FOREIGN TABLE ${GLOBAL_SCHEMA}.${quoteIdent(`${name}_${r}`)} PARTITION OF ${global}
         FOR VALUES WITH (MODULUS ${coloc.shardCount}, REMAINDER ${r})
         SERVER ${quoteIdent(SERVER_PREFIX + group)}
         OPTIONS (schema_name ${quoteLiteral(t.rel.schema)}, table_name ${quoteLiteral(shardNameOf(t.rel.name, t.firstShardId + r))})`,
    );
  }
  await c.query(`ALTER TABLE ${global} OWNER TO ${quoteIdent(row.owner)}`);
  for (const g of row.grantees) await c.query(`GRANT SELECT ON ${global} TO ${g}`);
  // The planner's statistics: the partitions' row counts come from the groups (ANALYZE is cheap: samples).
  return true;
}

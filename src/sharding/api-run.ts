/**
 * Running a Citus API call (api-call.ts reads it): the table is looked up on group 0 as
 * PostgreSQL resolves the name, the caller must own it, the catalog change is computed
 * (catalog.ts) and the executor (distribute.ts) carries it out on every group with two-phase
 * commit; the catalog is committed between PREPARE and COMMIT PREPARED, only if nobody changed it
 * meanwhile. One call at a time per proxy (the caller serialises them); several proxies are kept
 * apart by the catalog's compare-and-set.
 */
import { apiCallOf, MOVE_CALLS } from './api-call.js';
import type { ApiCall } from './api-call.js';
import { catalogErrors, distribute, isCatalogError, reference, undistribute } from './catalog.js';
import type { CatalogError } from './catalog.js';
import type { CatalogStore } from './catalog-store.js';
import { createDistributedTable, createReferenceTable, undistributeTable } from './distribute.js';
import type { DistributeProgress, GroupSession } from './distribute.js';
import { DistributeError } from './table-ddl.js';
import { hashRemainder } from './hash.js';
import { HashInputError } from './hash-input.js';
import type { Catalog, DistType, RelName } from './types.js';
import { relKey } from './types.js';
import { parseSearchPathSql } from './search-path.js';

export type ApiReply =
  | {
      readonly ok: true;
      readonly column: string;
      readonly type: 'void' | 'bigint';
      readonly value: string | null;
    }
  | { readonly ok: false; readonly sqlstate: string; readonly message: string; readonly detail?: string };

export interface ApiEnv {
  readonly catalogs: CatalogStore;
  /** Superuser sessions on every group's primary in the catalog's group order; `close` ends them. */
  openSessions(): Promise<{ readonly sessions: readonly GroupSession[]; close(): Promise<void> }>;
  readonly onProgress?: (p: DistributeProgress) => void;
  /**
   * The calling session's search_path (SQL text as the session holds it; undefined: the
   * default): an unqualified table name is resolved with it, `$user` being the caller.
   */
  readonly searchPath?: string;
}

interface TableFound {
  readonly rel: RelName;
  /** The user may act on it (a member of its owner role). */
  readonly owned: boolean;
  readonly column: { readonly type: string; readonly typmod: number } | null;
}

/** Runs the API call in `sql` for `user`. Never rejects: failures are error replies. */
export async function runApi(sql: string, user: string, env: ApiEnv): Promise<ApiReply> {
  const parsed = apiCallOf(sql);
  if (parsed === null) return fail('XX000', 'not a sharding API call');
  if (!parsed.ok) return fail(parsed.sqlstate, parsed.message);
  const call = parsed.call;
  if (MOVE_CALLS.has(call.fn)) return fail('0A000', `${call.fn} is run by the controller's shard moves`);
  if (call.fn === 'get_shard_id_for_distribution_column') return shardIdFor(call, user, env);
  let opened: Awaited<ReturnType<ApiEnv['openSessions']>> | null = null;
  try {
    opened = await env.openSessions();
    return await change(call, user, env, opened.sessions);
  } catch (e) {
    if (e instanceof DistributeError) return fail(e.sqlstate, e.message, e.detail);
    const err = e as { code?: unknown; message?: unknown };
    if (typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code))
      return fail(err.code, String(err.message));
    return fail('XX000', `${call.fn} failed: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    await opened?.close().catch(() => undefined);
  }
}

async function change(
  call: ApiCall,
  user: string,
  env: ApiEnv,
  sessions: readonly GroupSession[],
): Promise<ApiReply> {
  const g0 = sessions[0]!;
  const name = call.args.table_name;
  if (typeof name !== 'string') return fail('22004', 'the table name must not be null');
  const arg = call.fn === 'create_distributed_table' ? call.args.distribution_column : null;
  if (call.fn === 'create_distributed_table' && typeof arg !== 'string')
    return fail('22004', 'the distribution column must not be null');
  const column = typeof arg === 'string' ? arg : null;
  const found = await findTable(g0, name, column, user, env.searchPath);
  if (found === null) return fail('42P01', `relation "${name}" does not exist`);
  if (!found.owned) return fail('42501', `must be owner of table ${found.rel.name}`);
  const qualified = `${quoteIdent(found.rel.schema)}.${quoteIdent(found.rel.name)}`;
  const base = await env.catalogs.load();
  const common = { sessions, onProgress: env.onProgress };
  switch (call.fn) {
    case 'create_distributed_table': {
      if (call.args.distribution_type !== 'hash')
        return fail(
          '0A000',
          `distribution type ${String(call.args.distribution_type)} is not supported: pgscale distributes by hash`,
        );
      if (found.column === null)
        return fail('42703', `column "${String(column)}" of relation "${found.rel.name}" does not exist`);
      const shardCount = call.args.shard_count;
      const colocate = call.args.colocate_with;
      const next = distribute(base, {
        rel: found.rel,
        column: column!,
        type: found.column.type,
        typmod: found.column.typmod,
        ...(typeof shardCount === 'number' ? { shardCount } : {}),
        ...(typeof colocate === 'string' ? { colocateWith: colocate } : {}),
      });
      if (isCatalogError(next)) return catalogFail(next);
      const coloc = next.catalog.colocations.get(next.table.colocationId)!;
      await createDistributedTable(
        qualified,
        column!,
        { shardCount: coloc.shardCount, placement: coloc.placement, firstShardId: next.table.firstShardId },
        { ...common, commitCatalog: () => commit(env.catalogs, base, next.catalog) },
      );
      return done(call);
    }
    case 'create_reference_table': {
      const next = reference(base, found.rel);
      if (isCatalogError(next)) return catalogFail(next);
      await createReferenceTable(qualified, {
        ...common,
        commitCatalog: () => commit(env.catalogs, base, next.catalog),
      });
      return done(call);
    }
    case 'undistribute_table': {
      const t = base.tables.get(relKey(found.rel));
      const next = undistribute(base, found.rel);
      if (isCatalogError(next)) return catalogFail(next);
      await undistributeTable(qualified, t!.kind, {
        ...common,
        commitCatalog: () => commit(env.catalogs, base, next.catalog),
      });
      return done(call);
    }
    default:
      return fail('XX000', `${call.fn} is not a catalog change`);
  }
}

/** Stores `next` if the catalog is still `base` (nobody changed it meanwhile): else nothing changes. */
async function commit(catalogs: CatalogStore, base: Catalog, next: Catalog): Promise<boolean> {
  const r = await catalogs.update((c) =>
    c.version === base.version ? next : catalogErrors.invalidParameter('the catalog changed meanwhile'),
  );
  return !isCatalogError(r);
}

/** The table `name` as PostgreSQL resolves it on group 0, with column `column`'s type if asked. */
async function findTable(
  g0: GroupSession,
  name: string,
  column: string | null,
  user: string,
  searchPath: string | undefined,
): Promise<TableFound | null> {
  // to_regclass resolves quoting and the search path as a cast to regclass would, without
  // failing; the search path the caller's session has, for the time of this lookup.
  await g0.client.query("SELECT pg_catalog.set_config('search_path', $1, false)", [
    clientPath(searchPath, user).map(quoteIdent).join(', '),
  ]);
  const r = await g0.client.query(
    `SELECT n.nspname AS schema, c.relname AS name, pg_has_role($3::name, c.relowner, 'USAGE') AS owned,
            t.typname AS type, a.atttypmod AS typmod
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
       LEFT JOIN pg_type t ON t.oid = a.atttypid
      WHERE c.oid = to_regclass($1)`,
    [name, column ?? '', user],
  );
  await g0.client.query('RESET search_path');
  const row = r.rows[0] as
    { schema: string; name: string; owned: boolean; type: string | null; typmod: number | null } | undefined;
  if (row === undefined) return null;
  return {
    rel: { schema: row.schema, name: row.name },
    owned: row.owned,
    column: row.type === null ? null : { type: row.type, typmod: row.typmod ?? -1 },
  };
}

/** The caller's search_path as schema names, `$user` replaced by the caller's name. */
function clientPath(value: string | undefined, user: string): string[] {
  const names = (value === undefined ? null : parseSearchPathSql(value)) ?? ['$user', 'public'];
  return names.map((n) => (n === '$user' ? user : n));
}

function shardIdFor(call: ApiCall, user: string, env: ApiEnv): ApiReply {
  const name = call.args.table_name;
  if (typeof name !== 'string') return fail('22004', 'the table name must not be null');
  const catalog = env.catalogs.current;
  const rel = relOf(name);
  // An unqualified name: the first schema of the caller's search_path with a catalog table so named.
  const t =
    rel === null
      ? undefined
      : rel.schema !== null
        ? catalog.tables.get(relKey({ schema: rel.schema, name: rel.name }))
        : clientPath(env.searchPath, user)
            .map((schema) => catalog.tables.get(relKey({ schema, name: rel.name })))
            .find((x) => x !== undefined);
  if (t === undefined) return fail('42P01', `relation "${name}" is not a distributed or reference table`);
  if (t.kind === 'reference') return ok(call, String(t.firstShardId));
  const value = call.args.distribution_value;
  if (value === null) return fail('22004', 'distribution value cannot be NULL for distributed tables');
  const coloc = catalog.colocations.get(t.colocationId)!;
  try {
    const r = hashRemainder(t.type as DistType, { format: 'text', text: String(value) }, coloc.shardCount);
    return ok(call, String(t.firstShardId + r));
  } catch (e) {
    if (e instanceof HashInputError) return fail(e.sqlstate, e.message);
    throw e;
  }
}

/** A table name as text, unquoted parts folded (`Users` → users, `"Users"` kept); schema null when unqualified. */
function relOf(text: string): { schema: string | null; name: string } | null {
  const parts = text.match(/"(?:[^"]|"")*"|[^."]+/g);
  if (parts === null || parts.length > 2) return null;
  const norm = parts.map((p) => (p.startsWith('"') ? p.slice(1, -1).replace(/""/g, '"') : p.toLowerCase()));
  return norm.length === 2 ? { schema: norm[0]!, name: norm[1]! } : { schema: null, name: norm[0]! };
}

function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

function done(call: ApiCall): ApiReply {
  return { ok: true, column: call.column, type: call.returns, value: '' };
}

function ok(call: ApiCall, value: string): ApiReply {
  return { ok: true, column: call.column, type: call.returns, value };
}

function fail(sqlstate: string, message: string, detail?: string): ApiReply {
  return detail === undefined ? { ok: false, sqlstate, message } : { ok: false, sqlstate, message, detail };
}

function catalogFail(e: CatalogError): ApiReply {
  return fail(e.sqlstate, e.message);
}

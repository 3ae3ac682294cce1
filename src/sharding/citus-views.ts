/**
 * Citus's views `citus_tables` and `citus_shards`, answered through the proxy: a read naming
 * them runs on group 0 with the two views put in front of it as common table expressions whose
 * rows come from the catalog (catalog-views.ts) and from each group (sizes, owners), so any SQL
 * over them works — WHERE, ORDER BY, joins — as PostgreSQL itself evaluates it. As the client's
 * user, in a read-only transaction; no row of the views exists anywhere on disk.
 */
import type pg from 'pg';
import { encodeBackendMessage } from '../protocol/backend-messages.js';
import type { FieldDescription } from '../protocol/backend-messages.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import {
  CITUS_SHARDS_COLUMNS,
  CITUS_TABLES_COLUMNS,
  citusShardsRows,
  citusTablesRows,
  lookup,
} from './catalog.js';
import type { ViewColumn, ViewRow } from './catalog.js';
import { col } from './catalog-views.js';
import { quoteIdent } from './table-ddl.js';
import type { Catalog, DistributedTable } from './types.js';
import { relKey } from './types.js';

/** A read naming one of the views (the proxy hands it to the host). */
export const VIEW_NAMES = /\bcitus_(?:tables|shards|rebalance_status)\b/i;

/**
 * `citus_rebalance_status()`'s columns, as Citus's: the latest shard-move job (a move, a rebalance
 * or a drain), read `FROM citus_rebalance_status()` like the views.
 */
export const CITUS_REBALANCE_STATUS_COLUMNS: readonly ViewColumn[] = Object.freeze([
  col('job_id', 'bigint'),
  col('state', 'text'),
  col('job_type', 'name'),
  col('description', 'text'),
  col('started_at', 'timestamptz'),
  col('finished_at', 'timestamptz'),
  col('details', 'jsonb'),
]);
const REBALANCE_CALL = /\bcitus_rebalance_status\s*\(\s*\)/gi;

/** Whether `sql` is a read the views can be put in front of (SELECT, WITH … SELECT, TABLE). */
export function isViewRead(sql: string): boolean {
  return VIEW_NAMES.test(sql) && /^\s*(?:select|with|table|values)\b/i.test(sql) && !/;\s*\S/.test(sql);
}

export interface ViewsEnv {
  readonly catalog: Catalog;
  /** A superuser session on each group's primary, in the catalog's group order. */
  readonly sessions: readonly { readonly group: string; readonly client: pg.Client }[];
  /** Where a group's primary is reached. */
  node(group: string): { readonly name: string; readonly port: number };
  /** citus_rebalance_status()'s rows (the latest job; none before any). */
  readonly rebalance?: readonly ViewRow[];
}

const RAW = { getTypeParser: () => (v: string) => v };
const READY = encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' });

/** Runs `sql` (a read naming the views) for `user`: its replies, ending with ReadyForQuery. */
export async function runViewRead(sql: string, user: string, env: ViewsEnv): Promise<Buffer[]> {
  const { catalog, sessions } = env;
  const l = lookup(catalog);
  // Sizes of every placement, from each group; owners and access methods from group 0.
  const sizes = new Map<string, number>(); // `${group}/${shardName}`
  for (const s of sessions) {
    const names: string[] = [];
    for (const t of catalog.tables.values()) {
      const count = l.shardCount(t);
      for (let r = 0; r < count; r++)
        if (t.kind === 'reference' || l.groupOfShard(t, r) === s.group) names.push(l.shardName(t, r));
    }
    if (names.length === 0) continue;
    // A shard locked by a move's cutover has no size now: reading it would wait for the lock,
    // and the mover takes a statement waiting on the shard for one past its hold (and retries).
    const r = await s.client.query<{ name: string; size: string | null }>(
      `SELECT c.relname AS name,
              CASE WHEN EXISTS (SELECT 1 FROM pg_locks l WHERE l.relation = c.oid AND l.mode = 'AccessExclusiveLock')
                   THEN NULL ELSE pg_total_relation_size(c.oid)::text END AS size
         FROM pg_class c WHERE c.relname = ANY($1::text[])`,
      [names],
    );
    for (const row of r.rows) if (row.size !== null) sizes.set(`${s.group}/${row.name}`, Number(row.size));
  }
  const g0 = sessions[0]!.client;
  const facts = await g0.query<{ key: string; owner: string; am: string | null }>(
    `SELECT n.nspname || '.' || c.relname AS key, pg_get_userbyid(c.relowner) AS owner, a.amname AS am
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_am a ON a.oid = c.relam
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [
      [...catalog.tables.values()].map((t) => t.rel.schema),
      [...catalog.tables.values()].map((t) => t.rel.name),
    ],
  );
  const byKey = new Map(facts.rows.map((f) => [f.key, f]));
  const shardSize = (t: DistributedTable, r: number, group: string) =>
    sizes.get(`${group}/${l.shardName(t, r)}`) ?? null;
  const tableSize = (t: DistributedTable) => {
    let sum = 0;
    for (let r = 0; r < l.shardCount(t); r++)
      for (const g of t.kind === 'reference' ? catalog.groups : [l.groupOfShard(t, r)])
        sum += shardSize(t, r, g) ?? 0;
    return sum;
  };
  const tables = citusTablesRows(catalog, {
    tableSize,
    owner: (t) => byKey.get(relKey(t.rel))?.owner ?? '',
    accessMethod: (t) => byKey.get(relKey(t.rel))?.am ?? null,
  });
  const shards = citusShardsRows(catalog, {
    node: (g) => env.node(g),
    shardSize: (id, g) => {
      for (const t of catalog.tables.values()) {
        const r = id - t.firstShardId;
        if (r >= 0 && r < l.shardCount(t)) return shardSize(t, r, g);
      }
      return null;
    },
  });
  // The function is a view here: its call becomes the common table expression's name.
  const named = sql.replace(REBALANCE_CALL, 'citus_rebalance_status');
  const text = withViews(named, [
    ['citus_tables', CITUS_TABLES_COLUMNS, tables],
    ['citus_shards', CITUS_SHARDS_COLUMNS, shards],
    ...(named === sql
      ? []
      : [
          ['citus_rebalance_status', CITUS_REBALANCE_STATUS_COLUMNS, env.rebalance ?? []] as [
            string,
            readonly ViewColumn[],
            readonly ViewRow[],
          ],
        ]),
  ]);
  try {
    await g0.query(`BEGIN READ ONLY; SET LOCAL ROLE ${quoteIdent(user)}`);
    const res = await g0.query({ text, rowMode: 'array', types: RAW });
    await g0.query('ROLLBACK');
    const out: Buffer[] = [];
    const fields: FieldDescription[] = res.fields.map((f) => ({
      name: f.name,
      tableOid: f.tableID,
      columnAttr: f.columnID,
      typeOid: f.dataTypeID,
      typeSize: f.dataTypeSize,
      typeModifier: f.dataTypeModifier,
      format: 0,
    }));
    out.push(encodeBackendMessage({ name: 'RowDescription', fields }));
    for (const row of res.rows as unknown as (string | null)[][])
      out.push(
        encodeBackendMessage({
          name: 'DataRow',
          values: row.map((v) => (v === null ? null : Buffer.from(v))),
        }),
      );
    out.push(
      encodeBackendMessage({ name: 'CommandComplete', tag: `SELECT ${res.rowCount ?? res.rows.length}` }),
    );
    out.push(READY);
    return out;
  } catch (e) {
    await g0.query('ROLLBACK').catch(() => undefined);
    const err = e as { code?: unknown; message?: unknown };
    const code = typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) ? err.code : 'XX000';
    return [buildErrorResponse('ERROR', code, String(err.message)), READY];
  }
}

/** `sql` with the views as common table expressions in front (merged into its own WITH). */
export function withViews(
  sql: string,
  views: readonly [string, readonly ViewColumn[], readonly ViewRow[]][],
): string {
  const ctes = views
    .map(([name, cols, rows]) => {
      const names = cols.map((c) => c.name).join(', ');
      const body =
        rows.length === 0
          ? `SELECT ${cols.map((c) => `NULL::${c.type}`).join(', ')} WHERE false`
          : `VALUES ${rows.map((r) => `(${r.map((v, i) => literal(v, cols[i]!)).join(', ')})`).join(', ')}`;
      return `${name} (${names}) AS (${body})`;
    })
    .join(', ');
  const m = /^\s*with(\s+recursive)?\b/i.exec(sql);
  if (m) return `WITH${m[1] ?? ''} ${ctes}, ${sql.slice(m[0].length)}`;
  return `WITH ${ctes} ${sql}`;
}

function literal(v: string | null, c: ViewColumn): string {
  if (v === null) return `NULL::${c.type}`;
  return `'${v.replace(/'/g, "''")}'::${c.type}`;
}

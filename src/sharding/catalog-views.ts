/**
 * The rows of Citus's views `citus_tables` and `citus_shards`, which the proxy answers itself
 * (there is no Citus on the groups). Columns, types and order are Citus's (its
 * sql/udfs/citus_tables and citus_shards definitions); values are in text format, ready for a
 * DataRow, null for SQL NULL. What only the servers know — sizes, the owner, the access method,
 * the host and port of a group's primary — comes from the caller; the catalog gives the rest.
 *
 * Names print as PostgreSQL prints a regclass: the schema only when the table is not visible
 * on the search path (`visible`, by default: its schema is public), each part quoted only when
 * it must be. Rows are ordered as Citus orders them: by that text (byte order here; Citus sorts
 * with the database's collation), then by shard id.
 */
import { quoteIdentifier } from '../sql/quote-ident.js';
import { lookup } from './catalog-lookup.js';
import type { Catalog, DistributedTable, RelName } from './types.js';

export interface ViewColumn {
  readonly name: string;
  readonly type: 'regclass' | 'text' | 'integer' | 'bigint' | 'name' | 'timestamptz' | 'jsonb';
  /** pg_type oid of the column, for a RowDescription. */
  readonly typeOid: number;
}

export const col = (name: string, type: ViewColumn['type']): ViewColumn => ({
  name,
  type,
  typeOid: { regclass: 2205, text: 25, integer: 23, bigint: 20, name: 19, timestamptz: 1184, jsonb: 3802 }[
    type
  ],
});

export const CITUS_TABLES_COLUMNS: readonly ViewColumn[] = Object.freeze([
  col('table_name', 'regclass'),
  col('citus_table_type', 'text'),
  col('distribution_column', 'text'),
  col('colocation_id', 'integer'),
  col('table_size', 'text'),
  col('shard_count', 'bigint'),
  col('table_owner', 'name'),
  col('access_method', 'name'),
]);

export const CITUS_SHARDS_COLUMNS: readonly ViewColumn[] = Object.freeze([
  col('table_name', 'regclass'),
  col('shardid', 'bigint'),
  col('shard_name', 'text'),
  col('citus_table_type', 'text'),
  col('colocation_id', 'integer'),
  col('nodename', 'text'),
  col('nodeport', 'integer'),
  col('shard_size', 'bigint'),
]);

export type ViewRow = (string | null)[];

export interface NameOptions {
  /** Whether the table is found on the search path by its bare name; default: schema public. */
  readonly visible?: (rel: RelName) => boolean;
}

export interface TableFacts extends NameOptions {
  /** The table's size in bytes, all shards and copies together (Citus sums every placement). */
  tableSize(table: DistributedTable): bigint | number | null;
  owner(table: DistributedTable): string;
  /** pg_am.amname of the table (heap; null for a partitioned parent, as Citus's LEFT JOIN). */
  accessMethod(table: DistributedTable): string | null;
}

export interface ShardFacts extends NameOptions {
  /** Where a group is reached: its primary's host and port. */
  node(group: string): { readonly name: string; readonly port: number };
  /** The size in bytes of one placement of a shard (on `group`), or null when unknown. */
  shardSize(shardId: number, group: string): bigint | number | null;
}

/** citus_tables: one row per distributed or reference table. */
export function citusTablesRows(catalog: Catalog, facts: TableFacts): ViewRow[] {
  const l = lookup(catalog);
  return sortedTables(catalog, facts).map(({ table, text }) => {
    const size = facts.tableSize(table);
    return [
      text,
      table.kind,
      table.column ?? '<none>',
      String(table.colocationId),
      size === null ? null : pgSizePretty(BigInt(size)),
      String(l.shardCount(table)),
      facts.owner(table),
      facts.accessMethod(table),
    ];
  });
}

/** citus_shards: one row per shard placement (a reference table's shard once per group). */
export function citusShardsRows(catalog: Catalog, facts: ShardFacts): ViewRow[] {
  const l = lookup(catalog);
  const rows: ViewRow[] = [];
  for (const { table, text } of sortedTables(catalog, facts)) {
    const count = l.shardCount(table);
    const qualify = table.rel.schema !== 'public';
    for (let r = 0; r < count; r++) {
      const shardId = table.firstShardId + r;
      const name = quoteIdentifier(l.shardName(table, r));
      // Citus's shard_name(rel, id) leaves out the schema only when it is public.
      const shardName = qualify ? `${quoteIdentifier(table.rel.schema)}.${name}` : name;
      const groups = table.kind === 'reference' ? catalog.groups : [l.groupOfShard(table, r)];
      for (const g of groups) {
        const node = facts.node(g);
        const size = facts.shardSize(shardId, g);
        rows.push([
          text,
          String(shardId),
          shardName,
          table.kind,
          String(table.colocationId),
          node.name,
          String(node.port),
          size === null ? null : String(size),
        ]);
      }
    }
  }
  return rows;
}

/** The relation as `regclass` output prints it. */
export function regclassText(rel: RelName, opts: NameOptions = {}): string {
  const visible = opts.visible ? opts.visible(rel) : rel.schema === 'public';
  const name = quoteIdentifier(rel.name);
  return visible ? name : `${quoteIdentifier(rel.schema)}.${name}`;
}

/** PostgreSQL's pg_size_pretty(bigint) (src/backend/utils/adt/dbsize.c, 15+: up to PB). */
export function pgSizePretty(size: bigint): string {
  const units: [string, bigint, boolean, bigint][] = [
    ['bytes', 10n * 1024n, false, 0n],
    ['kB', 20n * 1024n - 1n, true, 10n],
    ['MB', 20n * 1024n - 1n, true, 20n],
    ['GB', 20n * 1024n - 1n, true, 30n],
    ['TB', 20n * 1024n - 1n, true, 40n],
    ['PB', 20n * 1024n - 1n, true, 50n],
  ];
  for (let i = 0; i < units.length; i++) {
    const [name, limit, round, unitBits] = units[i]!;
    const next = units[i + 1];
    const abs = size < 0n ? -size : size;
    if (!next || abs < limit) {
      // half_rounded(): away from zero; bigint division truncates toward zero as C's does.
      if (round) size = (size + (size < 0n ? -1n : 1n)) / 2n;
      return `${size} ${name}`;
    }
    const bits = next[3] - unitBits - (next[2] ? 1n : 0n) + (round ? 1n : 0n);
    size /= 1n << bits;
  }
  return `${size} bytes`;
}

function sortedTables(catalog: Catalog, opts: NameOptions): { table: DistributedTable; text: string }[] {
  return [...catalog.tables.values()]
    .map((table) => ({ table, text: regclassText(table.rel, opts) }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.text), Buffer.from(b.text)));
}

/**
 * The words of sharding, shared by the hash (hash.ts), the catalog (catalog.ts), the planner
 * that pins a statement to shards, and the executor that creates and moves distributed tables.
 *
 * A distributed table has `shardCount` virtual shards. On every group the table is
 * `PARTITION BY HASH (column)` with modulus `shardCount`; shard `r` is the partition for
 * remainder `r` and lives on exactly one group. Colocated tables (same column type and shard
 * count, `colocate_with`) share one placement, so a join or a foreign key on the distribution
 * column stays inside one group. A reference table has a full copy on every group. Tables in
 * neither list are local to group 0 (Citus's coordinator-local tables).
 *
 * Names: a group is a primary with its standbys (named as in the config: "0", "1", …); a shard is
 * a piece of a distributed table. Pure types, no I/O.
 */

/**
 * PostgreSQL types a distribution column may have: those whose partition hash the proxy computes
 * itself, bit for bit as PostgreSQL does (hash.ts). text-like columns need a deterministic collation.
 */
export const DIST_TYPES = ['int2', 'int4', 'int8', 'text', 'varchar', 'bpchar', 'uuid', 'numeric'] as const;
export type DistType = (typeof DIST_TYPES)[number];

/** A relation as PostgreSQL names it: schema and name, unquoted (`public`, `users`). */
export interface RelName {
  readonly schema: string;
  readonly name: string;
}

/** `schema.name` with each part quoted only when it must be (as `regclass` prints it). */
export type QualifiedName = string;

/** Colocated tables: one shard count, one column type, one placement of shards on groups. */
export interface Colocation {
  readonly id: number;
  readonly shardCount: number;
  /** The distribution column type of its tables; null for the reference tables' colocation. */
  readonly type: DistType | null;
  /** The group of each shard, by remainder: `placement[r]` holds shard `r` (length shardCount). */
  readonly placement: readonly string[];
}

export interface DistributedTable {
  readonly rel: RelName;
  readonly kind: 'distributed' | 'reference';
  /** The distribution column (null for a reference table). */
  readonly column: string | null;
  readonly type: DistType | null;
  /**
   * The distribution column's type modifier (pg_attribute.atttypmod): numeric(p, s), varchar(n)
   * and char(n) have one; absent (catalogs written before it was kept, and columns without one)
   * means none (-1). A value being stored is coerced with it before PostgreSQL hashes it
   * (numeric rounds to the scale, varchar/char cut trailing spaces beyond n), so the proxy
   * applies it too (hash.ts hashRemainder's `typmod`).
   */
  readonly typmod?: number;
  readonly colocationId: number;
  /**
   * Shard ids of this table are `firstShardId + remainder` (Citus numbers shards globally from
   * 102008; a reference table has one shard id).
   */
  readonly firstShardId: number;
}

/** The whole catalog at one version; a proxy routes with one version at a time. */
export interface Catalog {
  /** Increases with every change (the state store's compare-and-set keeps it linear). */
  readonly version: number;
  /** Keyed by `schema.name` (unquoted parts joined by a dot: relKey()). */
  readonly tables: ReadonlyMap<string, DistributedTable>;
  readonly colocations: ReadonlyMap<number, Colocation>;
  /** The groups in placement order, group 0 first (where local tables live). */
  readonly groups: readonly string[];
  /** The next shard id to hand out. */
  readonly nextShardId: number;
}

/** The catalog key of a relation. */
export function relKey(r: RelName): string {
  return `${r.schema}.${r.name}`;
}

/** The first shard id, as in Citus. */
export const FIRST_SHARD_ID = 102008;

/** Citus's default shard count. */
export const DEFAULT_SHARD_COUNT = 32;

/**
 * A value of the distribution column as the proxy meets it: the text form (a literal of the
 * statement, or a Bind parameter in text format), or a Bind parameter in binary format.
 */
export type ColumnValue =
  { readonly format: 'text'; readonly text: string } | { readonly format: 'binary'; readonly bytes: Buffer };

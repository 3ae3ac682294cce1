/**
 * DDL text built from a table's definition (table-ddl.ts): the same table as a plain table or
 * `PARTITION BY HASH (column)`, its partitions named as Citus names shards (`users_102008`,
 * `FOR VALUES WITH (MODULUS m, REMAINDER r)`), its indexes, owner and grants, and the sequences
 * that feed serial and identity columns.
 *
 * Sequences across groups: group number g (its position in the list, group 0 first) hands out
 * values from its own range [g·2^48 + 1, (g+1)·2^48 − 1] (group 0 from 1), as Citus does for
 * sequences on its workers (the group id shifted left by 48 bits), so bigserial and bigint
 * identity values are unique across groups without any coordination at insert time. A range is
 * MINVALUE/MAXVALUE of the sequence: running out is an error, never a duplicate.
 */
import { DistributeError, qualified, quoteIdent } from './table-ddl.js';
import type { ColumnDef, SequenceDef, TableDef } from './table-ddl.js';

/** The width of each group's sequence range: 2^48 values. */
export const GROUP_SEQUENCE_BITS = 48n;

/** PostgreSQL's NAMEDATALEN − 1: longer identifiers are truncated (silently, with a NOTICE). */
const MAX_IDENT_BYTES = 63;

/** The name of shard `shardId` of `table`, as Citus names it: `users_102008`. */
export function shardName(table: string, shardId: number): string {
  const name = `${table}_${shardId}`;
  if (Buffer.byteLength(name) > MAX_IDENT_BYTES) {
    throw new DistributeError('42622', `shard name "${name}" is longer than ${MAX_IDENT_BYTES} bytes`, {
      hint: 'Rename the table to a shorter name before distributing it.',
    });
  }
  return name;
}

/** The range of sequence values group number `g` hands out. */
export function groupSequenceRange(g: number): { min: bigint; max: bigint } {
  const base = BigInt(g) << GROUP_SEQUENCE_BITS;
  return { min: base === 0n ? 1n : base + 1n, max: base + (1n << GROUP_SEQUENCE_BITS) - 1n };
}

export interface SequenceBounds {
  readonly start: bigint;
  readonly min?: bigint;
  readonly max?: bigint;
}

function seqOptions(seq: SequenceDef, b: SequenceBounds): string {
  const parts = [`START WITH ${b.start}`, `INCREMENT BY ${seq.increment}`, `CACHE ${seq.cache}`];
  parts.push(b.min === undefined ? 'NO MINVALUE' : `MINVALUE ${b.min}`);
  parts.push(b.max === undefined ? 'NO MAXVALUE' : `MAXVALUE ${b.max}`);
  if (seq.cycle) parts.push('CYCLE');
  return parts.join(' ');
}

const seqType = (t: string): string => ({ int2: 'smallint', int4: 'integer', int8: 'bigint' })[t] ?? t;

/** The options of an identity column whose sequence keeps its original name. */
export function identityOptions(seq: SequenceDef, b: SequenceBounds): string {
  return `(SEQUENCE NAME ${qualified(seq.rel)} ${seqOptions(seq, b)})`;
}

/** The value after the last one `seq` handed out (its start when it handed none out). */
export function nextValue(seq: SequenceDef, floor: bigint): bigint {
  const next = seq.lastValue === null ? floor : seq.lastValue + seq.increment;
  return next < floor ? floor : next;
}

/** A serial's sequence created anew under its own name (before its table), with owner and grants. */
export function createSequenceSql(seq: SequenceDef, b: SequenceBounds): string[] {
  return [
    `CREATE SEQUENCE ${qualified(seq.rel)} AS ${seqType(seq.type)} ${seqOptions(seq, b)}`,
    `ALTER SEQUENCE ${qualified(seq.rel)} OWNER TO ${quoteIdent(seq.owner)}`,
    ...seq.grants.map(
      (g) =>
        `GRANT ${g.privilege} ON SEQUENCE ${qualified(seq.rel)} TO ${g.grantee}${g.grantable ? ' WITH GRANT OPTION' : ''}`,
    ),
  ];
}

function columnSql(c: ColumnDef, identity: ReadonlyMap<string, string>): string {
  let s = `${quoteIdent(c.name)} ${c.type}`;
  if (c.collation) s += ` COLLATE ${c.collation}`;
  if (c.generated && c.generatedExpr !== null) {
    s += ` GENERATED ALWAYS AS (${c.generatedExpr}) ${c.generated === 's' ? 'STORED' : 'VIRTUAL'}`;
  } else if (c.identity) {
    s += ` GENERATED ${c.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY`;
    const opts = identity.get(c.name);
    if (opts) s += ` ${opts}`;
  } else if (c.default !== null) {
    s += ` DEFAULT ${c.default}`;
  }
  if (c.notNull) s += ' NOT NULL';
  return s;
}

export interface CreateTableOptions {
  /** `PARTITION BY HASH (column)` when given; a plain table when null. */
  readonly partitionBy: string | null;
  /** Options of identity columns by column name (identityOptions()). */
  readonly identity?: ReadonlyMap<string, string>;
}

/**
 * `CREATE TABLE` with the columns and the constraints of the table itself (primary key, unique,
 * check, exclusion). Foreign keys come after the rows (foreignKeySql()): while group 0 holds
 * every shard for a moment, rows whose referenced rows live on other groups would fail them.
 */
export function createTableSql(def: TableDef, o: CreateTableOptions): string {
  const identity = o.identity ?? new Map<string, string>();
  const items = def.columns.map((c) => columnSql(c, identity));
  for (const con of def.constraints) {
    if (con.type === 't' || con.type === 'f') continue;
    items.push(`CONSTRAINT ${quoteIdent(con.name)} ${con.def}`);
  }
  const by = o.partitionBy === null ? '' : ` PARTITION BY HASH (${quoteIdent(o.partitionBy)})`;
  return `CREATE TABLE ${qualified(def.rel)} (\n  ${items.join(',\n  ')}\n)${by}`;
}

/** The foreign keys of the table, added once its rows are in place (and checked then). */
export function foreignKeySql(def: TableDef): string[] {
  return def.constraints
    .filter((c) => c.type === 'f')
    .map((c) => `ALTER TABLE ${qualified(def.rel)} ADD CONSTRAINT ${quoteIdent(c.name)} ${c.def}`);
}

/** One shard of the distributed table: a partition of it named `<table>_<shardId>`. */
export function partitionSql(def: TableDef, shardId: number, modulus: number, remainder: number): string {
  const name = shardName(def.rel.name, shardId);
  return (
    `CREATE TABLE ${quoteIdent(def.rel.schema)}.${quoteIdent(name)} PARTITION OF ${qualified(def.rel)}` +
    ` FOR VALUES WITH (MODULUS ${modulus}, REMAINDER ${remainder})`
  );
}

/**
 * The owner of a shard's partition: the table's (ALTER TABLE … OWNER TO on the parent does not
 * reach its partitions, and DDL on the parent needs its user to own every partition).
 */
export function partitionOwnerSql(def: TableDef, shardId: number): string {
  const name = shardName(def.rel.name, shardId);
  return `ALTER TABLE ${quoteIdent(def.rel.schema)}.${quoteIdent(name)} OWNER TO ${quoteIdent(def.owner)}`;
}

/**
 * The indexes not made by a constraint, as pg_get_indexdef printed them (the table keeps its
 * name, so the text applies as it is); `ON ONLY` (a partitioned parent's index) becomes `ON`.
 */
export function indexSql(def: TableDef): string[] {
  return def.indexes.filter((i) => !i.forConstraint).map((i) => i.def.replace(/ ON ONLY /, ' ON '));
}

/** The owner and the grants of the table. */
export function ownerAndGrantsSql(def: TableDef): string[] {
  return [
    `ALTER TABLE ${qualified(def.rel)} OWNER TO ${quoteIdent(def.owner)}`,
    ...def.grants.map(
      (g) =>
        `GRANT ${g.privilege} ON ${qualified(def.rel)} TO ${g.grantee}${g.grantable ? ' WITH GRANT OPTION' : ''}`,
    ),
  ];
}

/**
 * Renames every index of the table (so the rebuilt table can take their names): returns the
 * statements. A PRIMARY KEY or UNIQUE constraint is renamed with its index.
 */
export function renameIndexesSql(def: TableDef, suffix: string): string[] {
  return def.indexes.map(
    (i, n) =>
      `ALTER INDEX ${quoteIdent(def.rel.schema)}.${quoteIdent(i.name)} RENAME TO ${quoteIdent(tmpName(`idx${n}`, suffix))}`,
  );
}

/** A temporary name of at most 63 bytes, unique by `suffix` (the operation id). */
export function tmpName(what: string, suffix: string): string {
  return `pgscale_${what}_${suffix}`.slice(0, MAX_IDENT_BYTES);
}

/** The columns COPY and INSERT … SELECT move (generated columns are computed again). */
export function copyColumns(def: TableDef): string {
  return def.columns
    .filter((c) => !c.generated)
    .map((c) => quoteIdent(c.name))
    .join(', ');
}

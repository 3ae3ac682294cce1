/**
 * Reads a table's definition from its server through a small query interface (a pg.Client
 * satisfies it): columns (format_type, collation, defaults, NOT NULL, identity and serial
 * sequences, generated expressions), constraints (pg_get_constraintdef), indexes
 * (pg_get_indexdef), owner and grants, foreign keys pointing at it, triggers, inheritance. The
 * definition is what create_distributed_table / create_reference_table rebuild on every group
 * (table-ddl-build.ts turns it into DDL; table-ddl-validate.ts refuses what cannot be distributed,
 * with Citus's messages and SQLSTATEs). Works on PostgreSQL 13–18: NOT NULL constraints (18's
 * pg_constraint rows of type 'n') are read from attnotnull, as before.
 */
import type { RelName } from './types.js';

/** What the reader needs from a session: one query with parameters (pg.Client has it). */
export interface SqlClient {
  query(
    sql: string,
    params?: unknown[],
  ): Promise<{ rows: Record<string, unknown>[]; rowCount?: number | null }>;
}

/** An error to give the client as PostgreSQL would: SQLSTATE, message, detail, hint. */
export class DistributeError extends Error {
  readonly sqlstate: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(
    sqlstate: string,
    message: string,
    extra: { detail?: string; hint?: string; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'DistributeError';
    this.sqlstate = sqlstate;
    this.detail = extra.detail;
    this.hint = extra.hint;
  }
}

/** A sequence that gives a column its values (a serial's owned sequence or an identity's). */
export interface SequenceDef {
  /** Qualified and quoted as pg_get_serial_sequence returns it: `public.users_id_seq`. */
  readonly qualified: string;
  readonly rel: RelName;
  /** int2 | int4 | int8 */
  readonly type: string;
  readonly increment: bigint;
  readonly cache: bigint;
  readonly cycle: boolean;
  /** The last value handed out; null when none was. */
  readonly lastValue: bigint | null;
  readonly owner: string;
  readonly grants: readonly Grant[];
}

export interface ColumnDef {
  readonly name: string;
  readonly attnum: number;
  /** format_type(atttypid, atttypmod): `bigint`, `character varying(20)`, `numeric(10,2)`. */
  readonly type: string;
  /** pg_type.typname: `int8`, `varchar` … (the base type for DIST_TYPES checks). */
  readonly typname: string;
  /** pg_type.typtype: 'b' base, 'd' domain, 'e' enum … */
  readonly typtype: string;
  readonly notNull: boolean;
  /** The default expression (not for identity or generated columns); null when none. */
  readonly default: string | null;
  /** '' none, 'a' GENERATED ALWAYS, 'd' BY DEFAULT. */
  readonly identity: '' | 'a' | 'd';
  /** '' none, 's' stored, 'v' virtual (PostgreSQL 18); the expression is `generatedExpr`. */
  readonly generated: '' | 's' | 'v';
  readonly generatedExpr: string | null;
  /** `COLLATE` to write, qualified and quoted, when it differs from the type's default. */
  readonly collation: string | null;
  readonly collationName: string | null;
  readonly collationDeterministic: boolean;
  /** The serial or identity sequence feeding this column. */
  readonly sequence: SequenceDef | null;
}

export interface ConstraintDef {
  readonly name: string;
  /** p primary key, u unique, c check, f foreign key, x exclusion, t trigger. */
  readonly type: string;
  /** pg_get_constraintdef: `PRIMARY KEY (user_id)`, `CHECK ((age > 0))`, `FOREIGN KEY …`. */
  readonly def: string;
  readonly columns: readonly string[];
  /** The referenced table of a foreign key. */
  readonly references: RelName | null;
}

export interface IndexDef {
  readonly name: string;
  /** pg_get_indexdef: `CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email)`. */
  readonly def: string;
  readonly unique: boolean;
  /** Key columns (0 for expressions is left out; see `hasExpressions`). */
  readonly columns: readonly string[];
  readonly hasExpressions: boolean;
  /** Backs a PRIMARY KEY, UNIQUE or EXCLUDE constraint (created with the constraint). */
  readonly forConstraint: boolean;
}

export interface Grant {
  /** `PUBLIC` or a quoted role name. */
  readonly grantee: string;
  readonly privilege: string;
  readonly grantable: boolean;
}

export interface TableDef {
  readonly oid: string;
  readonly rel: RelName;
  /** r ordinary, p partitioned, f foreign, v view … */
  readonly relkind: string;
  /** p permanent, u unlogged, t temporary. */
  readonly persistence: string;
  readonly isPartition: boolean;
  /** Inherits from a table or is inherited (partitions aside). */
  readonly inherits: boolean;
  readonly hasTriggers: boolean;
  readonly rowSecurity: boolean;
  readonly owner: string;
  readonly grants: readonly Grant[];
  readonly columns: readonly ColumnDef[];
  readonly constraints: readonly ConstraintDef[];
  readonly indexes: readonly IndexDef[];
  /** Foreign keys of other tables that reference this one. */
  readonly referencedBy: readonly { readonly rel: RelName; readonly name: string }[];
}

/** An identifier quoted always (safe for keywords and mixed case; PostgreSQL accepts it). */
export function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

export function qualified(r: RelName): string {
  return `${quoteIdent(r.schema)}.${quoteIdent(r.name)}`;
}

export function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** A column value as text (pg gives text, numbers and booleans for what these queries select). */
export function str(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return typeof v === 'string' ? v : (v as number | boolean | bigint).toString();
}
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : str(v));

/**
 * Reads the definition of `table` (a name as a user writes it: `users`, `public.users`,
 * `"Odd Name"`, resolved with the session's search_path). Throws 42P01 when there is no such
 * relation.
 */
export async function readTableDef(c: SqlClient, table: string): Promise<TableDef> {
  const rel = (
    await c.query(
      `SELECT c.oid::text AS oid, n.nspname, c.relname, c.relkind, c.relpersistence, c.relispartition,
              pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity,
              EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid) AS inherits,
              EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) AS has_triggers
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass($1)`,
      [table],
    )
  ).rows[0];
  if (!rel) throw new DistributeError('42P01', `relation "${table}" does not exist`);
  const oid = str(rel.oid);
  const relName: RelName = { schema: str(rel.nspname), name: str(rel.relname) };
  const columns = await readColumns(c, oid, relName);
  const constraints = (
    await c.query(
      // conparentid: a foreign key to a partitioned table has a row per referenced partition too
      // (PostgreSQL 12+); only the one the user wrote counts.
      `SELECT con.conname, con.contype, pg_get_constraintdef(con.oid) AS def,
              ARRAY(SELECT a.attname::text FROM unnest(con.conkey) k
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k) AS columns,
              rn.nspname AS ref_schema, rc.relname AS ref_name
         FROM pg_constraint con
         LEFT JOIN pg_class rc ON rc.oid = con.confrelid
         LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
        WHERE con.conrelid = $1::oid AND con.contype <> 'n' AND con.conparentid = 0
        ORDER BY con.contype = 'f', con.conname`,
      [oid],
    )
  ).rows.map((r): ConstraintDef => ({
    name: str(r.conname),
    type: str(r.contype),
    def: str(r.def),
    columns: (r.columns as string[] | null) ?? [],
    references: r.ref_name == null ? null : { schema: str(r.ref_schema), name: str(r.ref_name) },
  }));
  const indexes = (
    await c.query(
      `SELECT ic.relname, pg_get_indexdef(i.indexrelid) AS def, i.indisunique,
              ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) k
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k) AS columns,
              i.indexprs IS NOT NULL AS has_expressions,
              EXISTS (SELECT 1 FROM pg_constraint con
                       WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                         AND con.contype IN ('p', 'u', 'x')) AS for_constraint
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = $1::oid
        ORDER BY ic.relname`,
      [oid],
    )
  ).rows.map((r): IndexDef => ({
    name: str(r.relname),
    def: str(r.def),
    unique: r.indisunique === true,
    columns: (r.columns as string[] | null) ?? [],
    hasExpressions: r.has_expressions === true,
    forConstraint: r.for_constraint === true,
  }));
  const referencedBy = (
    await c.query(
      `SELECT con.conname, n.nspname, c.relname
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE con.confrelid = $1::oid AND con.contype = 'f' AND con.conrelid <> $1::oid
          AND con.conparentid = 0`,
      [oid],
    )
  ).rows.map((r) => ({ rel: { schema: str(r.nspname), name: str(r.relname) }, name: str(r.conname) }));
  return {
    oid,
    rel: relName,
    relkind: str(rel.relkind),
    persistence: str(rel.relpersistence),
    isPartition: rel.relispartition === true,
    inherits: rel.inherits === true,
    hasTriggers: rel.has_triggers === true,
    rowSecurity: rel.relrowsecurity === true,
    owner: str(rel.owner),
    grants: await readGrants(c, oid),
    columns,
    constraints,
    indexes,
    referencedBy,
  };
}

async function readGrants(c: SqlClient, oid: string): Promise<Grant[]> {
  return (
    await c.query(
      `SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee,
              a.privilege_type, a.is_grantable
         FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = $1::oid AND a.grantee <> c.relowner
        ORDER BY 1, 2`,
      [oid],
    )
  ).rows.map((r) => ({
    grantee: str(r.grantee),
    privilege: str(r.privilege_type),
    grantable: r.is_grantable === true,
  }));
}

async function readColumns(c: SqlClient, oid: string, rel: RelName): Promise<ColumnDef[]> {
  // attgenerated exists from PostgreSQL 12 on; collisdeterministic too.
  const rows = (
    await c.query(
      `SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type, t.typname, t.typtype,
              a.attnotnull, a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid) AS expr,
              CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                   THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END AS collation,
              co.collname, COALESCE(co.collisdeterministic, true) AS deterministic,
              pg_get_serial_sequence($2, a.attname) AS seq
         FROM pg_attribute a
         JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         LEFT JOIN pg_collation co ON co.oid = a.attcollation
         LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [oid, qualified(rel)],
    )
  ).rows;
  const out: ColumnDef[] = [];
  for (const r of rows) {
    const generated = str(r.attgenerated) as ColumnDef['generated'];
    const identity = str(r.attidentity) as ColumnDef['identity'];
    const seq = strOrNull(r.seq);
    out.push({
      name: str(r.attname),
      attnum: Number(r.attnum),
      type: str(r.type),
      typname: str(r.typname),
      typtype: str(r.typtype),
      notNull: r.attnotnull === true,
      default: generated || identity ? null : strOrNull(r.expr),
      identity,
      generated,
      generatedExpr: generated ? strOrNull(r.expr) : null,
      collation: strOrNull(r.collation),
      collationName: strOrNull(r.collname),
      collationDeterministic: r.deterministic !== false,
      sequence: seq === null ? null : await readSequence(c, seq),
    });
  }
  return out;
}

async function readSequence(c: SqlClient, seq: string): Promise<SequenceDef> {
  const r = (
    await c.query(
      `SELECT n.nspname, cl.relname, s.seqtypid::regtype::text AS type, s.seqincrement::text AS inc,
              s.seqcache::text AS cache, s.seqcycle, pg_sequence_last_value(cl.oid)::text AS last,
              pg_get_userbyid(cl.relowner) AS owner, cl.oid::text AS oid
         FROM pg_sequence s JOIN pg_class cl ON cl.oid = s.seqrelid
         JOIN pg_namespace n ON n.oid = cl.relnamespace
        WHERE s.seqrelid = $1::regclass`,
      [seq],
    )
  ).rows[0];
  if (!r) throw new DistributeError('XX000', `sequence ${seq} vanished while reading it`);
  const type = { smallint: 'int2', integer: 'int4', bigint: 'int8' }[str(r.type)] ?? str(r.type);
  return {
    qualified: seq,
    rel: { schema: str(r.nspname), name: str(r.relname) },
    type,
    increment: BigInt(str(r.inc)),
    cache: BigInt(str(r.cache)),
    cycle: r.seqcycle === true,
    lastValue: r.last == null ? null : BigInt(str(r.last)),
    owner: str(r.owner),
    grants: await readGrants(c, str(r.oid)),
  };
}

/** Whether `column` of `def` holds a NULL (a distribution column must not). */
export async function hasNulls(c: SqlClient, def: TableDef, column: string): Promise<boolean> {
  const r = await c.query(
    `SELECT EXISTS (SELECT 1 FROM ONLY ${qualified(def.rel)} WHERE ${quoteIdent(column)} IS NULL) AS x`,
  );
  return r.rows[0]?.x === true;
}

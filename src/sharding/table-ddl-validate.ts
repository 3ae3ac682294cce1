/**
 * What create_distributed_table and create_reference_table refuse, checked on the definition read
 * by table-ddl.ts before anything changes, with Citus's messages and SQLSTATEs where Citus has
 * one (src/backend/distributed/commands/create_distributed_table.c, utils/distribution_column.c,
 * commands/table.c, commands/foreign_constraint.c, commands/multi_copy.c of citusdata/citus) and
 * a clear 0A000 for what pgscale does not do (partitioned or inherited tables, int/smallint
 * sequences on a distributed table, foreign keys to or from tables that are not colocated).
 * Pure: the NULL check, which needs the data, is table-ddl.ts's hasNulls().
 */
import { DIST_TYPES } from './types.js';
import type { DistType, RelName } from './types.js';
import { DistributeError } from './table-ddl.js';
import type { ColumnDef, ConstraintDef, TableDef } from './table-ddl.js';

export interface ValidateOptions {
  /**
   * Whether a foreign key of the table may stay: its target is a reference table, or a
   * distributed table colocated with this one with the distribution column at the same place
   * (the catalog knows). By default every foreign key is refused.
   */
  readonly foreignKeyOk?: (fk: ConstraintDef) => boolean;
}

const FK_DETAIL =
  'Foreign keys are supported in two cases, either in between two colocated tables including partition column in the same ordinal in the both tables or from distributed to reference tables';

function commonChecks(def: TableDef, verb: string, opts: ValidateOptions): void {
  const name = def.rel.name;
  if (def.persistence === 't') {
    throw new DistributeError('0A000', `cannot ${verb} a temporary table`);
  }
  if (def.isPartition) {
    throw new DistributeError('0A000', `cannot ${verb} relation "${name}" which is a partition`, {
      detail: 'pgscale does not distribute partitions or partitioned tables.',
    });
  }
  if (def.relkind === 'p') {
    throw new DistributeError('0A000', `cannot ${verb} relation "${name}": it is a partitioned table`, {
      detail:
        'pgscale partitions a distributed table itself (by hash on the distribution column); it cannot distribute a table that is already partitioned.',
    });
  }
  if (def.relkind !== 'r') {
    throw new DistributeError('42809', `"${name}" is not a table`);
  }
  if (def.inherits) {
    throw new DistributeError('0A000', `cannot ${verb} relation "${name}": it inherits or is inherited`, {
      detail: 'Tables that inherit from other tables or are inherited cannot be distributed.',
    });
  }
  if (def.persistence === 'u') {
    throw new DistributeError('0A000', `cannot ${verb} relation "${name}": it is unlogged`);
  }
  if (def.hasTriggers) {
    throw new DistributeError('0A000', `cannot ${verb} relation "${name}" because it has triggers`, {
      hint: `Consider dropping all the triggers on "${name}" and retry.`,
    });
  }
  if (def.rowSecurity) {
    throw new DistributeError(
      '0A000',
      `cannot ${verb} relation "${name}": it has row level security enabled`,
    );
  }
  const incoming = def.referencedBy[0];
  if (incoming) {
    throw new DistributeError('0A000', 'cannot create foreign key constraint', {
      detail: `"${incoming.rel.name}" references "${name}" with foreign key "${incoming.name}" and is not colocated with it. ${FK_DETAIL}`,
    });
  }
  for (const fk of def.constraints.filter((c) => c.type === 'f')) {
    const self = fk.references && sameRel(fk.references, def.rel);
    if (self || !(opts.foreignKeyOk?.(fk) ?? false)) {
      throw new DistributeError('0A000', 'cannot create foreign key constraint', { detail: FK_DETAIL });
    }
  }
}

function sameRel(a: RelName, b: RelName): boolean {
  return a.schema === b.schema && a.name === b.name;
}

/**
 * Checks `def` can become a hash-distributed table on `column`; returns the column and its type.
 * The caller still checks for NULLs (hasNulls) once it holds the table's lock.
 */
export function validateDistributed(
  def: TableDef,
  column: string,
  opts: ValidateOptions = {},
): { column: ColumnDef; type: DistType } {
  commonChecks(def, 'distribute', opts);
  const name = def.rel.name;
  const col = def.columns.find((c) => c.name === column);
  if (!col) {
    throw new DistributeError('42703', `column "${column}" of relation "${name}" does not exist`);
  }
  const type =
    (DIST_TYPES as readonly string[]).includes(col.typname) && col.typtype === 'b'
      ? (col.typname as DistType)
      : null;
  if (type === null) {
    throw new DistributeError('42883', `could not identify a hash function for type ${col.type}`, {
      detail: 'Partition column types must have a hash function defined to use hash partitioning.',
      hint: 'pgscale distributes by columns of type smallint, integer, bigint, text, varchar, char, uuid or numeric.',
    });
  }
  if (!col.collationDeterministic) {
    throw new DistributeError(
      '0A000',
      'Hash distributed partition columns may not use a non deterministic collation',
    );
  }
  if (col.generated) {
    throw new DistributeError('0A000', `cannot distribute relation: ${name}`, {
      detail: 'Distribution column must not use GENERATED ALWAYS AS (...) STORED.',
    });
  }
  if (type === 'numeric' && /\(\s*\d+\s*,\s*-\d+\s*\)/.test(col.type)) {
    throw new DistributeError('0A000', `cannot distribute relation: ${name}`, {
      detail: 'Distribution column must not use numeric type with negative scale',
    });
  }
  const uniqueWithout =
    def.constraints.some((c) => 'pux'.includes(c.type) && !c.columns.includes(column)) ||
    def.indexes.some((i) => i.unique && !i.forConstraint && !i.columns.includes(column));
  if (uniqueWithout) {
    throw new DistributeError('0A000', `cannot create constraint on "${name}"`, {
      detail:
        'Distributed relations cannot have UNIQUE, EXCLUDE, or PRIMARY KEY constraints that do not include the partition column (with an equality operator if EXCLUDE).',
    });
  }
  for (const c of def.columns) {
    const seq = c.sequence;
    if (!seq) continue;
    if (seq.type !== 'int8') {
      throw new DistributeError(
        '0A000',
        `cannot distribute relation "${name}": column "${c.name}" takes its values from a ${seq.type === 'int4' ? 'integer' : 'smallint'} sequence`,
        {
          detail:
            'Each group hands out sequence values from its own range of 2^48 values, which needs a bigint sequence.',
          hint: `Use bigserial or bigint GENERATED … AS IDENTITY for "${c.name}".`,
        },
      );
    }
    if (seq.increment <= 0n || seq.cycle) {
      throw new DistributeError(
        '0A000',
        `cannot distribute relation "${name}": sequence ${seq.qualified} counts down or cycles`,
        {
          detail: 'Each group hands out sequence values from its own ascending range.',
        },
      );
    }
  }
  return { column: col, type };
}

/** Checks `def` can become a reference table (a full copy on every group). */
export function validateReference(def: TableDef, opts: ValidateOptions = {}): void {
  commonChecks(def, 'create reference table for', opts);
}

/** Citus's error for a NULL in the distribution column (multi_copy.c). */
export function nullInColumnError(def: TableDef): DistributeError {
  return new DistributeError(
    '23502',
    `the partition column of table ${def.rel.schema}.${def.rel.name} cannot be NULL`,
  );
}

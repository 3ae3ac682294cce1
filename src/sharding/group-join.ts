/**
 * A new group joins the catalog (issue #17, `pgscale add-group`): before the catalog names it, it
 * gets every table of the catalog as group 0 has it — each distributed table as its partitioned
 * parent with no partition (shard moves bring them), with its sequences in the group's own range
 * (table-ddl-build.ts groupSequenceRange: values stay unique across groups), and each reference
 * table with its rows. It runs in the sharding host's queue, so no statement on several groups
 * (reference-table writes, DDL) runs meanwhile; the reference tables are also locked against
 * writes on group 0 (SHARE) while they are copied, for writers that do not go through the proxy.
 * The new group's part is one transaction: a failure leaves it without any of the tables; group
 * 0's lock is held until `join` has put the group into the catalog.
 */
import { quoteIdent } from './table-ddl.js';
import { readTableDef } from './table-ddl.js';
import type { TableDef } from './table-ddl.js';
import {
  copyColumns,
  createSequenceSql,
  createTableSql,
  foreignKeySql,
  groupSequenceRange,
  identityOptions,
  indexSql,
  nextValue,
  ownerAndGrantsSql,
} from './table-ddl-build.js';
import type { GroupSession } from './distribute-copy.js';
import type { Catalog, DistributedTable } from './types.js';

export interface JoinProgress {
  readonly table: string;
  readonly rows: number;
}

const qualifiedOf = (t: DistributedTable) => `${quoteIdent(t.rel.schema)}.${quoteIdent(t.rel.name)}`;

/**
 * Makes group number `index` (`target`) ready to join `catalog`: resolves once its transaction has
 * committed. Tables of the catalog it already has (an earlier attempt) are dropped first: a group
 * outside the catalog holds no shard.
 */
export async function prepareJoin(
  catalog: Catalog,
  g0: GroupSession,
  target: GroupSession,
  index: number,
  /** Adds the group to the catalog: called once the group has the tables, before group 0's lock ends. */
  join: () => Promise<void>,
  onProgress: (p: JoinProgress) => void = () => undefined,
): Promise<void> {
  const tables = [...catalog.tables.values()].sort((a, b) =>
    a.kind === b.kind ? 0 : a.kind === 'reference' ? -1 : 1,
  );
  if (tables.length === 0) return join();
  await g0.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await target.client.query('BEGIN');
  try {
    const refs = tables.filter((t) => t.kind === 'reference');
    if (refs.length > 0)
      await g0.client.query(`LOCK TABLE ${refs.map(qualifiedOf).join(', ')} IN SHARE MODE`);
    for (const t of tables) await target.client.query(`DROP TABLE IF EXISTS ${qualifiedOf(t)} CASCADE`);
    const defs: TableDef[] = [];
    for (const t of tables) {
      const def = await readTableDef(g0.client, qualifiedOf(t));
      defs.push(def);
      await target.client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(t.rel.schema)}`);
      const identity = new Map<string, string>();
      const range = groupSequenceRange(index);
      for (const c of def.columns) {
        if (!c.sequence) continue;
        // Distributed: the group's own range. Reference: where group 0's sequence is (every copy
        // hands out the same values in the same order).
        const bounds =
          t.kind === 'distributed' ? { start: range.min, ...range } : { start: nextValue(c.sequence, 1n) };
        if (c.identity) identity.set(c.name, identityOptions(c.sequence, bounds));
        else {
          await target.client.query(`DROP SEQUENCE IF EXISTS ${c.sequence.qualified}`);
          for (const sql of createSequenceSql(c.sequence, bounds)) await target.client.query(sql);
        }
      }
      await target.client.query(
        createTableSql(def, { partitionBy: t.kind === 'distributed' ? t.column : null, identity }),
      );
      for (const sql of [...indexSql(def), ...ownerAndGrantsSql(def)]) await target.client.query(sql);
      for (const c of def.columns)
        if (c.sequence && !c.identity)
          await target.client.query(
            `ALTER SEQUENCE ${c.sequence.qualified} OWNED BY ${qualifiedOf(t)}.${quoteIdent(c.name)}`,
          );
      if (t.kind === 'reference') {
        const cols = copyColumns(def);
        const out = g0.copyOut(`COPY (SELECT ${cols} FROM ONLY ${qualifiedOf(t)}) TO STDOUT (FORMAT binary)`);
        try {
          const rows = await target.copyIn(
            `COPY ${qualifiedOf(t)} (${cols}) FROM STDIN (FORMAT binary)`,
            out,
          );
          onProgress({ table: `${t.rel.schema}.${t.rel.name}`, rows });
        } finally {
          out.destroy();
        }
      }
    }
    for (const def of defs) for (const sql of foreignKeySql(def)) await target.client.query(sql);
    await target.client.query('COMMIT');
  } catch (e) {
    await target.client.query('ROLLBACK').catch(() => undefined);
    await g0.client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
  try {
    // Writers of the reference tables wait until the catalog names the group.
    await join();
  } finally {
    await g0.client.query('ROLLBACK').catch(() => undefined);
  }
}

/**
 * Routing of statements other than queries (shard-plan.ts handles SELECT, INSERT, UPDATE,
 * DELETE, MERGE, EXPLAIN and DECLARE): DDL on a distributed or reference table reaches every
 * group (the executor runs it atomically, with two-phase commit); DDL that would change a
 * distribution column is refused as Citus refuses it; COPY … FROM STDIN into a catalog table is
 * split by row (copy-in.ts); the statements this part does not handle on catalog tables are
 * refused with the reason. A statement naming no catalog table stays
 * local (group 0). Index names are not in the catalog: `DROP INDEX i` goes to the host, which
 * finds its table (every group for a catalog table's index, group 0 otherwise); `DROP INDEX
 * CONCURRENTLY` stays local (docs/sharding.md). Pure, no I/O.
 */
import { isObj, unwrap, type Obj } from '../sql/tree-nodes.js';
import { mayNameCatalogTable } from './catalog-names.js';
import type { Analysis } from './plan-analysis.js';
import type { KeyPlan, ShardRoute } from './shard-plan.js';
import { copyOptionsOf } from './copy-options.js';

/** DDL that the executor runs on every group when it names a catalog table. */
const EVERY_GROUP = new Set([
  'AlterTableStmt',
  'IndexStmt',
  'TruncateStmt',
  'DropStmt',
  'RenameStmt',
  'CommentStmt',
  'GrantStmt',
  'CreateTrigStmt',
  'CreatePolicyStmt',
  'AlterPolicyStmt',
  'CreateStatsStmt',
]);

/** How the refusals name the statements PostgreSQL's grammar calls otherwise. */
const COMMAND: Record<string, string> = {
  CreateStmt: 'CREATE TABLE',
  CreateTableAsStmt: 'CREATE TABLE AS',
  ViewStmt: 'CREATE VIEW',
  LockStmt: 'LOCK',
  VacuumStmt: 'VACUUM or ANALYZE',
  ClusterStmt: 'CLUSTER',
  ReindexStmt: 'REINDEX',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  CreateFunctionStmt: 'CREATE FUNCTION',
  RuleStmt: 'CREATE RULE',
  AlterOwnerStmt: 'ALTER … OWNER',
  AlterObjectSchemaStmt: 'ALTER … SET SCHEMA',
};

const PARTITION_COLUMN = 'cannot execute ALTER TABLE command involving partition column';

function plan(route: ShardRoute, writes: boolean): KeyPlan {
  return { kind: 'fixed', route, writes, cacheable: true };
}

export function planUtility(kind: string, body: Obj, a: Analysis, decide: (a: Analysis) => KeyPlan): KeyPlan {
  switch (kind) {
    case 'CopyStmt':
      return copy(body, a, decide);
    case 'CreateTableAsStmt':
    case 'ViewStmt': {
      // A table or view made from a query lives on group 0 only: with a distributed table in the
      // query it would hold (or show) group 0's part only.
      const into = kind === 'ViewStmt' ? body.view : isObj(body.into) ? body.into.rel : undefined;
      if (isObj(into)) a.occurrence(into, true);
      a.expressions(body.query, null, []);
      return decide(a);
    }
    case 'PrepareStmt': {
      a.expressions(body.query, null, []);
      const p = decide(a);
      if (p.kind === 'fixed' && (p.route.kind === 'local' || p.route.kind === 'error')) return p;
      return plan(
        {
          kind: 'error',
          sqlstate: '0A000',
          message:
            'PREPARE of a statement on distributed or reference tables is not supported yet (use the extended protocol)',
        },
        p.writes,
      );
    }
    case 'DoStmt': {
      // The block's code is not parsed: naming a catalog table in it, it would run on group 0 only.
      const code = JSON.stringify(body.args ?? null);
      if (!mayNameCatalogTable(code, a.catalog)) return plan({ kind: 'local' }, true);
      return plan(
        {
          kind: 'error',
          sqlstate: '0A000',
          message:
            'a DO block naming a distributed or reference table is not supported: it would run on group 0 only',
        },
        true,
      );
    }
    case 'DropStmt':
      if (body.removeType === 'OBJECT_INDEX' && body.concurrent !== true && a.catalog.tables.size > 0) {
        // Which table the index is on is known only to PostgreSQL: the host drops it on group 0
        // and, when it was a distributed or reference table's, on every group.
        return plan({ kind: 'all', reason: 'DROP INDEX', dropIndex: true }, true);
      }
      namedObjects(body, a);
      break;
    case 'CommentStmt':
      if (body.objtype === 'OBJECT_TABLE' || body.objtype === 'OBJECT_COLUMN')
        namedObject(body.object, a, body.objtype === 'OBJECT_COLUMN');
      break;
    default:
      a.expressions(body, null, []);
  }
  const touched = a.occs.filter((o) => o.kind === 'distributed' || o.kind === 'reference');
  if (touched.length === 0) return plan({ kind: 'local' }, true);
  const first = touched[0]!;
  if (!EVERY_GROUP.has(kind) || (kind === 'IndexStmt' && body.concurrent === true)) {
    const what =
      kind === 'IndexStmt' ? 'CREATE INDEX CONCURRENTLY' : (COMMAND[kind] ?? kind.replace(/Stmt$/, ''));
    return plan(
      {
        kind: 'error',
        sqlstate: '0A000',
        message: `${what} on ${first.kind} table "${first.name}" is not supported yet`,
      },
      true,
    );
  }
  const local = a.occs.find((o) => o.kind === 'local');
  if (local !== undefined) {
    return plan(
      {
        kind: 'error',
        sqlstate: '0A000',
        message: `DDL naming ${first.kind} table "${first.name}" and local table "${local.name}" together is not supported`,
      },
      true,
    );
  }
  if (kind === 'RenameStmt' && body.renameType === 'OBJECT_TABLE') {
    return plan(
      {
        kind: 'error',
        sqlstate: '0A000',
        message: `renaming ${first.kind} table "${first.name}" is not supported: the sharding catalog knows tables by name`,
      },
      true,
    );
  }
  if (changesPartitionColumn(kind, body, a))
    return plan({ kind: 'error', sqlstate: '0A000', message: PARTITION_COLUMN }, true);
  return plan({ kind: 'all', reason: `DDL on ${first.kind} table "${first.name}"` }, true);
}

function copy(body: Obj, a: Analysis, decide: (a: Analysis) => KeyPlan): KeyPlan {
  if (body.query !== undefined) {
    const q = unwrap(body.query);
    if (q !== null) a.query(q[0], q[1], null, []);
    return decide(a);
  }
  if (!isObj(body.relation)) return plan({ kind: 'local' }, false);
  const o = a.occurrence(body.relation, body.is_from === true);
  if (o.kind !== 'distributed' && o.kind !== 'reference')
    return plan({ kind: 'local' }, body.is_from === true);
  if (body.is_from !== true) {
    return o.kind === 'reference'
      ? plan({ kind: 'reference-read' }, false)
      : plan(
          {
            kind: 'multi',
            groups: a.catalog.groups,
            reason: `COPY of the whole distributed table "${o.name}" needs every group`,
          },
          false,
        );
  }
  const table = a.tableOf(body.relation);
  const refuse = (why: string) =>
    plan(
      { kind: 'error', sqlstate: '0A000', message: `COPY into ${o.kind} table "${o.name}": ${why}` },
      true,
    );
  if (table === null) return refuse('the table is not in the catalog');
  if (typeof body.filename === 'string' || body.is_program === true)
    return refuse(
      'the proxy splits rows sent with COPY … FROM STDIN only (psql: \\copy), not a file or program on the server',
    );
  const options = copyOptionsOf(body);
  if ('refused' in options) return refuse(`${options.refused} is not supported`);
  const columns = Array.isArray(body.attlist)
    ? (body.attlist as unknown[]).map((c) => {
        const s = unwrap(c);
        return s !== null && typeof s[1].sval === 'string' ? s[1].sval : '';
      })
    : null;
  return plan({ kind: 'copy-in', table, columns, options }, true);
}

/** DROP TABLE/VIEW/… lists names, not RangeVars: look each one up. */
function namedObjects(body: Obj, a: Analysis): void {
  const type = body.removeType;
  if (
    type !== 'OBJECT_TABLE' &&
    type !== 'OBJECT_FOREIGN_TABLE' &&
    type !== 'OBJECT_VIEW' &&
    type !== 'OBJECT_MATVIEW'
  )
    return;
  if (!Array.isArray(body.objects)) return;
  for (const obj of body.objects as unknown[]) namedObject(obj, a, false);
}

function namedObject(obj: unknown, a: Analysis, column: boolean): void {
  const list = unwrap(obj);
  if (list === null || list[0] !== 'List' || !Array.isArray(list[1].items)) return;
  const parts: string[] = [];
  for (const item of list[1].items as unknown[]) {
    const s = unwrap(item);
    if (s === null || typeof s[1].sval !== 'string') return;
    parts.push(s[1].sval);
  }
  if (column) parts.pop();
  if (parts.length === 1) a.occurrence({ relname: parts[0] }, true);
  else if (parts.length === 2) a.occurrence({ schemaname: parts[0], relname: parts[1] }, true);
}

/** ALTER TABLE … DROP COLUMN / ALTER COLUMN TYPE / RENAME COLUMN naming a distribution column. */
function changesPartitionColumn(kind: string, body: Obj, a: Analysis): boolean {
  const t = isObj(body.relation) ? a.tableOf(body.relation) : null;
  if (t === null || t.kind !== 'distributed') return false;
  if (kind === 'RenameStmt') return body.renameType === 'OBJECT_COLUMN' && body.subname === t.column;
  if (kind !== 'AlterTableStmt' || !Array.isArray(body.cmds)) return false;
  for (const c of body.cmds as unknown[]) {
    const cmd = unwrap(c);
    if (cmd === null) continue;
    const sub = cmd[1].subtype;
    if ((sub === 'AT_DropColumn' || sub === 'AT_AlterColumnType') && cmd[1].name === t.column) return true;
  }
  return false;
}

/**
 * Classification from libpg-query's parse tree (its JSON form: every node is `{ TypeName: {…} }`).
 * The statement's top node decides its kind; a statement that would be a read (SELECT, VALUES,
 * TABLE, COPY … TO STDOUT, EXPLAIN ANALYZE of a read, DECLARE) is then searched, iteratively
 * because trees can be thousands of levels deep, for what makes it a write anywhere inside:
 * a locking clause, a data-modifying statement in a WITH, SELECT INTO, or a call to a function
 * not known to be read-only. Node names are those of PostgreSQL's parsenodes.h
 * (https://github.com/postgres/postgres/blob/REL_18_STABLE/src/include/nodes/parsenodes.h).
 */
import type { StatementClass } from './classification.js';
import type { FunctionName, FunctionPolicy } from './read-only-functions.js';
import { isObj, unwrap, walkTree } from './tree-nodes.js';
import type { Obj } from './tree-nodes.js';

export interface Verdict {
  readonly cls: StatementClass;
  readonly reason: string;
}

const read = (reason: string): Verdict => ({ cls: 'read', reason });
const write = (reason: string): Verdict => ({ cls: 'write', reason });
const session = (reason: string): Verdict => ({ cls: 'session', reason });

/** Labels for statements whose reason is not just their node name spelled out. */
const LABELS: Readonly<Record<string, string>> = {
  InsertStmt: 'INSERT',
  UpdateStmt: 'UPDATE',
  DeleteStmt: 'DELETE',
  MergeStmt: 'MERGE',
  CreateStmt: 'CREATE TABLE',
  CreateTableAsStmt: 'CREATE TABLE AS',
  ViewStmt: 'CREATE VIEW',
  CreateSeqStmt: 'CREATE SEQUENCE',
  IndexStmt: 'CREATE INDEX',
  CreateFunctionStmt: 'CREATE FUNCTION',
  CreateSchemaStmt: 'CREATE SCHEMA',
  CreateExtensionStmt: 'CREATE EXTENSION',
  CreateRoleStmt: 'CREATE ROLE',
  CreatedbStmt: 'CREATE DATABASE',
  DropdbStmt: 'DROP DATABASE',
  DropStmt: 'DROP',
  TruncateStmt: 'TRUNCATE',
  AlterTableStmt: 'ALTER TABLE',
  RenameStmt: 'ALTER … RENAME',
  CommentStmt: 'COMMENT',
  GrantRoleStmt: 'GRANT ROLE',
  ClusterStmt: 'CLUSTER',
  ReindexStmt: 'REINDEX',
  LockStmt: 'LOCK',
  ListenStmt: 'LISTEN',
  UnlistenStmt: 'UNLISTEN',
  NotifyStmt: 'NOTIFY',
  CallStmt: 'CALL',
  DoStmt: 'DO',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  CheckPointStmt: 'CHECKPOINT',
  LoadStmt: 'LOAD',
  ExecuteStmt: 'EXECUTE',
  CreateTrigStmt: 'CREATE TRIGGER',
  RuleStmt: 'CREATE RULE',
  AlterSystemStmt: 'ALTER SYSTEM',
  ReassignOwnedStmt: 'REASSIGN OWNED',
  DropOwnedStmt: 'DROP OWNED',
  SecLabelStmt: 'SECURITY LABEL',
  ImportForeignSchemaStmt: 'IMPORT FOREIGN SCHEMA',
  CopyStmt: 'COPY',
};

/** 'AlterRoleStmt' → 'ALTER ROLE', for the statements LABELS does not name. */
function label(nodeName: string): string {
  return (
    LABELS[nodeName] ??
    nodeName
      .replace(/Stmt$/, '')
      .replace(/([a-z])([A-Z])/g, '$1 $2')
      .toUpperCase()
  );
}

const LOCK_STRENGTH: Readonly<Record<string, string>> = {
  LCS_FORUPDATE: 'FOR UPDATE',
  LCS_FORNOKEYUPDATE: 'FOR NO KEY UPDATE',
  LCS_FORSHARE: 'FOR SHARE',
  LCS_FORKEYSHARE: 'FOR KEY SHARE',
};

const DATA_MODIFYING = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** The verdict for one statement node (`RawStmt.stmt`). */
export function classifyStatement(stmt: unknown, policy: FunctionPolicy): Verdict {
  const node = unwrap(stmt);
  if (node === null) return write('unparsable');
  const [name, body] = node;
  switch (name) {
    case 'SelectStmt':
      return readUnlessWrites(body, policy, Array.isArray(body.valuesLists) ? 'VALUES' : 'SELECT');
    case 'VariableShowStmt':
      return read('SHOW');
    case 'ExplainStmt':
      return explain(body, policy);
    case 'CopyStmt':
      return copy(body, policy);
    case 'DeclareCursorStmt': {
      const inner = classifyStatement(body.query, policy);
      return inner.cls === 'read' ? read('DECLARE') : inner;
    }
    case 'TransactionStmt':
      return transaction(body);
    case 'VariableSetStmt':
      return session(String(body.kind).startsWith('VAR_RESET') ? 'RESET' : 'SET');
    case 'DiscardStmt':
      return session('DISCARD');
    case 'PrepareStmt':
      return session('PREPARE');
    case 'DeallocateStmt':
      return session('DEALLOCATE');
    case 'FetchStmt':
      return session(body.ismove === true ? 'MOVE' : 'FETCH');
    case 'ClosePortalStmt':
      return session('CLOSE');
    case 'ConstraintsSetStmt':
      return session('SET CONSTRAINTS');
    case 'CreateStmt':
    case 'CreateSeqStmt':
      return write(withTemp(label(name), isObj(body.relation) ? body.relation : body.sequence));
    case 'ViewStmt':
      return write(withTemp(label(name), body.view));
    case 'CreateTableAsStmt': {
      const into = isObj(body.into) ? body.into.rel : undefined;
      const what = body.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE AS';
      return write(withTemp(what, into));
    }
    case 'GrantStmt':
      return write(body.is_grant === true ? 'GRANT' : 'REVOKE');
    case 'VacuumStmt':
      return write(body.is_vacuumcmd === true ? 'VACUUM' : 'ANALYZE');
    default:
      return write(label(name));
  }
}

/** 'CREATE TABLE' → 'CREATE TEMP TABLE' when the RangeVar is temporary (relpersistence 't'). */
function withTemp(what: string, rangeVar: unknown): string {
  return isObj(rangeVar) && rangeVar.relpersistence === 't' ? what.replace('CREATE ', 'CREATE TEMP ') : what;
}

function explain(body: Obj, policy: FunctionPolicy): Verdict {
  const options = Array.isArray(body.options) ? body.options : [];
  const analyze = options.some((o) => {
    const d = unwrap(o);
    return d !== null && d[0] === 'DefElem' && d[1].defname === 'analyze' && defElemTrue(d[1].arg);
  });
  if (!analyze) return read('EXPLAIN');
  const inner = classifyStatement(body.query, policy);
  return inner.cls === 'read' ? read('EXPLAIN ANALYZE') : write(`EXPLAIN ANALYZE ${inner.reason}`);
}

/** A DefElem's boolean argument: absent means true; false/off/no/0 mean false. */
function defElemTrue(arg: unknown): boolean {
  const a = unwrap(arg);
  if (a === null) return true;
  const [kind, v] = a;
  if (kind === 'String') return !['false', 'off', 'no', '0'].includes(String(v.sval).toLowerCase());
  if (kind === 'Integer') return v.ival !== undefined && v.ival !== 0;
  if (kind === 'Boolean') return v.boolval === true;
  return true;
}

function copy(body: Obj, policy: FunctionPolicy): Verdict {
  if (body.is_from === true) return write('COPY FROM');
  // COPY TO a server file or program writes on the database host: keep it where the data is owned.
  if (body.is_program === true) return write('COPY TO PROGRAM');
  if (typeof body.filename === 'string') return write('COPY TO file');
  if (body.query === undefined) return read('COPY TO');
  const inner = classifyStatement(body.query, policy);
  return inner.cls === 'read' ? read('COPY TO') : inner;
}

function transaction(body: Obj): Verdict {
  switch (body.kind) {
    case 'TRANS_STMT_BEGIN':
    case 'TRANS_STMT_START': {
      const label = body.kind === 'TRANS_STMT_BEGIN' ? 'BEGIN' : 'START TRANSACTION';
      return readOnlyModes(body.options)
        ? { cls: 'transaction-begin-read-only', reason: `${label} READ ONLY` }
        : { cls: 'transaction-begin', reason: label };
    }
    case 'TRANS_STMT_COMMIT':
      return { cls: 'transaction-end', reason: 'COMMIT' };
    case 'TRANS_STMT_ROLLBACK':
      return { cls: 'transaction-end', reason: 'ROLLBACK' };
    case 'TRANS_STMT_PREPARE':
      return { cls: 'transaction-end', reason: 'PREPARE TRANSACTION' };
    // Not the end of the session's transaction (both refuse to run inside one): they finish a
    // transaction already prepared on the primary, so they are writes.
    case 'TRANS_STMT_COMMIT_PREPARED':
      return write('COMMIT PREPARED');
    case 'TRANS_STMT_ROLLBACK_PREPARED':
      return write('ROLLBACK PREPARED');
    case 'TRANS_STMT_SAVEPOINT':
      return session('SAVEPOINT');
    case 'TRANS_STMT_RELEASE':
      return session('RELEASE');
    case 'TRANS_STMT_ROLLBACK_TO':
      return session('ROLLBACK TO');
    default:
      return write(`transaction ${String(body.kind)}`);
  }
}

/** Whether the transaction modes end up READ ONLY; PostgreSQL applies them in order, last wins. */
function readOnlyModes(options: unknown): boolean {
  let readOnly = false;
  if (!Array.isArray(options)) return false;
  for (const o of options) {
    const d = unwrap(o);
    if (d === null || d[1].defname !== 'transaction_read_only') continue;
    const c = unwrap(d[1].arg);
    readOnly = c !== null && isObj(c[1].ival) && c[1].ival.ival === 1;
  }
  return readOnly;
}

/**
 * `reason` unless something inside the tree writes. Depth-first with an explicit stack; the
 * first offending node found decides the reason.
 */
function readUnlessWrites(root: Obj, policy: FunctionPolicy, reason: string): Verdict {
  if (root.intoClause !== undefined) return write('SELECT INTO');
  let found: Verdict | null = null;
  walkTree([root], (key, child) => {
    if (key === 'FuncCall' && isObj(child)) {
      const fn = functionName(child.funcname);
      if (fn === null || !policy.isReadOnly(fn)) found = write(`function ${spell(fn)}`);
    } else if (key === 'LockingClause' && isObj(child)) {
      found = write(LOCK_STRENGTH[String(child.strength)] ?? 'FOR UPDATE');
    } else if (DATA_MODIFYING.has(key)) {
      found = write(`${label(key)} in WITH`);
    }
    return found === null ? 'into' : 'stop';
  });
  return found ?? read(reason);
}

function functionName(parts: unknown): FunctionName | null {
  if (!Array.isArray(parts) || parts.length === 0) return null;
  const names: string[] = [];
  for (const p of parts) {
    const s = unwrap(p);
    if (s === null || s[0] !== 'String' || typeof s[1].sval !== 'string') return null;
    names.push(s[1].sval);
  }
  const name = names[names.length - 1] ?? '';
  return { schema: names.length > 1 ? (names[names.length - 2] ?? null) : null, name };
}

function spell(fn: FunctionName | null): string {
  if (fn === null) return '(unknown)';
  return fn.schema === null ? fn.name : `${fn.schema}.${fn.name}`;
}

/**
 * The class of a Query holding several statements. Session statements (SET, PREPARE, SAVEPOINT
 * …) are neutral: the proxy tracks them and they can run wherever the rest goes. Then:
 * any write → write; all reads → read; a text that opens a transaction → that begin's class,
 * kept read-only only if nothing after the READ ONLY begin opens a read-write one
 * (`BEGIN READ ONLY; SELECT …; COMMIT`); any other mixture of transaction control and reads
 * (`COMMIT; SELECT 1`, `SELECT 1; BEGIN`) → write, which the primary can always run.
 */
export function combine(verdicts: readonly Verdict[]): Verdict {
  const routed = verdicts.filter((v) => v.cls !== 'session');
  const first = routed[0] ?? verdicts[0];
  if (first === undefined) return read('empty');
  if (routed.length === 0) return first;
  const firstWrite = routed.find((v) => v.cls === 'write');
  if (firstWrite !== undefined) return firstWrite;
  if (routed.length === 1) return first;
  if (routed.every((v) => v.cls === 'read')) return first;
  if (first.cls === 'transaction-begin-read-only') {
    const rest = routed.slice(1);
    if (rest.every((v) => v.cls !== 'transaction-begin')) return first;
    const begin = rest.find((v) => v.cls === 'transaction-begin');
    if (begin !== undefined) return begin;
  }
  if (first.cls === 'transaction-begin') return first;
  return write(`${first.reason} with other statements`);
}

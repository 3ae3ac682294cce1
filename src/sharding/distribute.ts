/**
 * The executor of create_distributed_table, create_reference_table and undistribute_table on
 * plain PostgreSQL, over one session per group's primary (group 0 first: local tables live
 * there). All or nothing: every group works inside one transaction, the groups' transactions
 * are prepared (two-phase commit), the catalog's commit is the decision, and only then are they
 * committed everywhere (distribute-2pc.ts; a crash between is settled by recoverPrepared()).
 *
 * create_distributed_table, on group 0 under an ACCESS EXCLUSIVE lock: the table is read and
 * validated (table-ddl*.ts), renamed away with its indexes; the same table is created
 * `PARTITION BY HASH (column)` with every shard as a partition, and the rows are inserted into
 * it, so PostgreSQL's own tuple routing puts each row in its shard. On each other group the table
 * is created with only the shards it owns, and each of those shards is streamed over with
 * `COPY … TO STDOUT` on group 0 and `COPY … FROM STDIN` there; then group 0 drops the shards it
 * does not own and the old table. Progress (rows per group) goes to a callback as it streams.
 */
import type { DistType, RelName } from './types.js';
import { relKey } from './types.js';
import type { GroupSession } from './distribute-copy.js';
import { abortAll, operationGid, prepareAndDecide, run } from './distribute-2pc.js';
import type { Operation } from './distribute-2pc.js';
import { DistributeError, hasNulls, qualified, quoteIdent, readTableDef, str } from './table-ddl.js';
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
  partitionOwnerSql,
  partitionSql,
  renameIndexesSql,
  shardName,
  tmpName,
} from './table-ddl-build.js';
import { nullInColumnError, validateDistributed, validateReference } from './table-ddl-validate.js';
import type { ValidateOptions } from './table-ddl-validate.js';

export type { GroupSession } from './distribute-copy.js';
export { pgGroupSession } from './distribute-copy.js';
export { decideFromCatalog, operationGid, parseGid, recoverPrepared } from './distribute-2pc.js';
export type { Decision, RecoveredTransaction } from './distribute-2pc.js';

/** Rows that reached a group so far (sent with COPY, or kept on group 0). */
export interface DistributeProgress {
  readonly table: RelName;
  readonly group: string;
  readonly rows: number;
  readonly done: boolean;
}

/** What the catalog's commit is told: the operation, prepared on every group. */
export interface PreparedOperation {
  readonly op: Operation;
  readonly gid: string;
  readonly table: RelName;
  /** The distribution column and its type (create_distributed_table only). */
  readonly column: string | null;
  readonly type: DistType | null;
}

export interface ExecutorOptions {
  /** One session per group's primary, group 0 first, each idle (outside a transaction). */
  readonly sessions: readonly GroupSession[];
  /**
   * Commits the catalog change (compare-and-set): true when it took effect, false when the
   * catalog refused it (nothing changes on the groups then). A throw is an unknown outcome:
   * the groups' transactions stay prepared for recoverPrepared().
   */
  readonly commitCatalog: (op: PreparedOperation) => Promise<boolean>;
  readonly onProgress?: (p: DistributeProgress) => void;
  readonly validate?: ValidateOptions;
  /** The id in the transactions' names (default: random). */
  readonly operationId?: string;
}

/** Where the shards of a distributed table go: `placement[r]` is the group of shard r. */
export interface ShardPlacement {
  readonly shardCount: number;
  readonly placement: readonly string[];
  readonly firstShardId: number;
}

export interface OperationResult {
  readonly gid: string;
  readonly table: RelName;
  readonly type: DistType | null;
  /** Rows each group holds for the table afterwards. */
  readonly rowsByGroup: Readonly<Record<string, number>>;
  /** Groups whose COMMIT PREPARED did not complete (recoverPrepared() finishes them). */
  readonly pendingGroups: readonly string[];
}

function newOperationId(): string {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
}

/** Counts the rows of text-format COPY data as it passes (one newline ends each row). */
async function* counting(src: AsyncIterable<Buffer>, onRows: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of src) {
    let n = 0;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++;
    yield chunk;
    if (n) onRows(n);
  }
}

/** An operation's frame: transactions open on `sessions`, rolled back on any failure. */
class Run {
  readonly open: GroupSession[] = [];
  readonly rows: Record<string, number> = {};

  constructor(
    readonly o: ExecutorOptions,
    readonly id: string,
  ) {
    if (o.sessions.length === 0) throw new DistributeError('22023', 'no groups to work on');
  }

  get g0(): GroupSession {
    return this.o.sessions[0]!;
  }

  async begin(s: GroupSession): Promise<void> {
    await run(s, 'BEGIN');
    this.open.push(s);
  }

  /** Reads and locks the table on group 0, inside its transaction. */
  async lockedDef(table: string): Promise<TableDef> {
    await this.begin(this.g0);
    const first = await readTableDef(this.g0.client, table);
    await run(this.g0, `LOCK TABLE ${qualified(first.rel)} IN ACCESS EXCLUSIVE MODE`);
    return readTableDef(this.g0.client, table);
  }

  progress(table: RelName, group: string, add: number, done = false): void {
    this.rows[group] = (this.rows[group] ?? 0) + add;
    this.o.onProgress?.({ table, group, rows: this.rows[group], done });
  }

  /** Streams `SELECT cols FROM from` on group 0 into `into` on `target`. */
  async stream(def: TableDef, fromSql: string, source: GroupSession, target: GroupSession): Promise<number> {
    const cols = copyColumns(def);
    const out = source.copyOut(`COPY (SELECT ${cols} FROM ${fromSql}) TO STDOUT`);
    try {
      return await target.copyIn(
        `COPY ${qualified(def.rel)} (${cols}) FROM STDIN`,
        counting(out, (n) => this.progress(def.rel, target.group, n)),
      );
    } finally {
      // Abandons what the source still has when the target failed (harmless after its end).
      out.destroy();
    }
  }

  async finish(
    op: Operation,
    def: TableDef,
    column: string | null,
    type: DistType | null,
  ): Promise<OperationResult> {
    const gid = operationGid(op, this.id, def.rel);
    const { pendingGroups } = await prepareAndDecide(this.open, gid, () =>
      this.o.commitCatalog({ op, gid, table: def.rel, column, type }),
    );
    this.open.length = 0;
    return { gid, table: def.rel, type, rowsByGroup: { ...this.rows }, pendingGroups };
  }

  async abort(): Promise<void> {
    await abortAll(this.open, [], '');
    this.open.length = 0;
  }
}

/** Runs `fn` as one operation: on a failure before the prepare, every group is rolled back. */
async function operation<T>(o: ExecutorOptions, fn: (r: Run) => Promise<T>): Promise<T> {
  const r = new Run(o, o.operationId ?? newOperationId());
  try {
    return await fn(r);
  } catch (e) {
    await r.abort();
    throw e;
  }
}

const overriding = (def: TableDef): string =>
  def.columns.some((c) => c.identity === 'a') ? ' OVERRIDING SYSTEM VALUE' : '';

/**
 * Group 0's old table moves out of the way of the new one: renamed, its indexes renamed, its
 * serial sequences disowned (so dropping it keeps them), its identity sequences renamed (they go
 * with it). Returns the old table's new name.
 */
async function moveAside(r: Run, def: TableDef): Promise<string> {
  const tmp = tmpName('old', r.id);
  const s = r.g0;
  await run(s, `ALTER TABLE ${qualified(def.rel)} RENAME TO ${quoteIdent(tmp)}`);
  for (const sql of renameIndexesSql(def, r.id)) await run(s, sql);
  let n = 0;
  for (const c of def.columns) {
    if (!c.sequence) continue;
    if (c.identity) {
      await run(
        s,
        `ALTER SEQUENCE ${c.sequence.qualified} RENAME TO ${quoteIdent(tmpName(`seq${n++}`, r.id))}`,
      );
    } else {
      await run(s, `ALTER SEQUENCE ${c.sequence.qualified} OWNED BY NONE`);
    }
  }
  return `${quoteIdent(def.rel.schema)}.${quoteIdent(tmp)}`;
}

/** Serial sequences go back to their columns once the new table exists. */
async function reownSequences(s: GroupSession, def: TableDef): Promise<void> {
  for (const c of def.columns) {
    if (c.sequence && !c.identity) {
      await run(
        s,
        `ALTER SEQUENCE ${c.sequence.qualified} OWNED BY ${qualified(def.rel)}.${quoteIdent(c.name)}`,
      );
    }
  }
}

/**
 * Turns the local table `table` (on group 0) into a distributed table on `column`, its shards
 * placed on the groups as `placement` says. Validation errors come with Citus's messages and
 * SQLSTATEs (DistributeError); nothing changes anywhere unless the whole operation commits.
 */
export async function createDistributedTable(
  table: string,
  column: string,
  placement: ShardPlacement,
  o: ExecutorOptions,
): Promise<OperationResult> {
  const { shardCount, firstShardId } = placement;
  if (!Number.isInteger(shardCount) || shardCount < 1 || placement.placement.length !== shardCount) {
    throw new DistributeError(
      '22023',
      `the placement names ${placement.placement.length} groups for ${shardCount} shards`,
    );
  }
  const index = new Map(o.sessions.map((s, i) => [s.group, i]));
  const unknown = placement.placement.find((g) => !index.has(g));
  if (unknown !== undefined)
    throw new DistributeError('22023', `the placement names group ${unknown}, which has no session`);
  return operation(o, async (r) => {
    const def = await r.lockedDef(table);
    const { type } = validateDistributed(def, column, o.validate ?? {});
    for (let rem = 0; rem < shardCount; rem++) shardName(def.rel.name, firstShardId + rem);
    if (await hasNulls(r.g0.client, def, column)) throw nullInColumnError(def);
    for (const s of o.sessions.slice(1)) await r.begin(s);

    const old = await moveAside(r, def);
    for (const [gi, s] of o.sessions.entries()) {
      const range = groupSequenceRange(gi);
      const identity = new Map<string, string>();
      for (const c of def.columns) {
        if (!c.sequence) continue;
        const bounds =
          gi === 0
            ? { start: nextValue(c.sequence, 1n), min: 1n, max: range.max }
            : { start: range.min, ...range };
        if (c.identity) identity.set(c.name, identityOptions(c.sequence, bounds));
        else if (gi > 0) for (const sql of createSequenceSql(c.sequence, bounds)) await run(s, sql);
        else if ((c.sequence.lastValue ?? 0n) < range.max) {
          await run(s, `ALTER SEQUENCE ${c.sequence.qualified} MINVALUE 1 MAXVALUE ${range.max}`);
        }
      }
      await run(s, createTableSql(def, { partitionBy: column, identity }));
      // Group 0 gets every shard for now: PostgreSQL's tuple routing sorts its rows into them.
      for (let rem = 0; rem < shardCount; rem++) {
        if (gi === 0 || placement.placement[rem] === s.group) {
          await run(s, partitionSql(def, firstShardId + rem, shardCount, rem));
          await run(s, partitionOwnerSql(def, firstShardId + rem));
        }
      }
      for (const sql of [...indexSql(def), ...ownerAndGrantsSql(def)]) await run(s, sql);
      await reownSequences(s, def);
    }

    const cols = copyColumns(def);
    await run(
      r.g0,
      `INSERT INTO ${qualified(def.rel)} (${cols})${overriding(def)} SELECT ${cols} FROM ${old}`,
    );
    await run(r.g0, `DROP TABLE ${old}`);
    for (const s of o.sessions) r.rows[s.group] = 0;
    for (const s of o.sessions.slice(1)) {
      for (let rem = 0; rem < shardCount; rem++) {
        if (placement.placement[rem] !== s.group) continue;
        const shard = `${quoteIdent(def.rel.schema)}.${quoteIdent(shardName(def.rel.name, firstShardId + rem))}`;
        await r.stream(def, `ONLY ${shard}`, r.g0, s);
        await run(r.g0, `DROP TABLE ${shard}`);
      }
      r.progress(def.rel, s.group, 0, true);
    }
    for (const s of o.sessions) for (const sql of foreignKeySql(def)) await run(s, sql);
    const kept = await run(r.g0, `SELECT count(*)::int8::text AS n FROM ${qualified(def.rel)}`);
    r.progress(def.rel, r.g0.group, Number(kept[0]?.n ?? 0), true);
    return r.finish('distribute', def, column, type);
  });
}

/** Turns the local table `table` (on group 0) into a reference table: a full copy on every group. */
export async function createReferenceTable(table: string, o: ExecutorOptions): Promise<OperationResult> {
  return operation(o, async (r) => {
    const def = await r.lockedDef(table);
    validateReference(def, o.validate ?? {});
    for (const s of o.sessions.slice(1)) await r.begin(s);
    const total = await run(r.g0, `SELECT count(*)::int8::text AS n FROM ONLY ${qualified(def.rel)}`);
    r.progress(def.rel, r.g0.group, Number(total[0]?.n ?? 0), true);
    for (const s of o.sessions.slice(1)) {
      // Every copy's sequences continue where group 0's are: the same values in the same order.
      const identity = new Map<string, string>();
      for (const c of def.columns) {
        if (!c.sequence) continue;
        const bounds = { start: nextValue(c.sequence, 1n) };
        if (c.identity) identity.set(c.name, identityOptions(c.sequence, bounds));
        else for (const sql of createSequenceSql(c.sequence, bounds)) await run(s, sql);
      }
      await run(s, createTableSql(def, { partitionBy: null, identity }));
      for (const sql of [...indexSql(def), ...ownerAndGrantsSql(def)]) await run(s, sql);
      await reownSequences(s, def);
      r.rows[s.group] = 0;
      await r.stream(def, `ONLY ${qualified(def.rel)}`, r.g0, s);
      for (const sql of foreignKeySql(def)) await run(s, sql);
      r.progress(def.rel, s.group, 0, true);
    }
    return r.finish('reference', def, null, null);
  });
}

/**
 * Turns a distributed or reference table back into a local table on group 0: every group's rows
 * come back to group 0 and the table is dropped on the other groups, in one operation.
 * Sequences continue above the largest value any group handed out.
 */
export async function undistributeTable(
  table: string,
  kind: 'distributed' | 'reference',
  o: ExecutorOptions,
): Promise<OperationResult> {
  return operation(o, async (r) => {
    const def = await r.lockedDef(table);
    if ((kind === 'distributed') !== (def.relkind === 'p')) {
      throw new DistributeError(
        '55000',
        `table "${def.rel.name}" is not a ${kind} table on group ${r.g0.group}`,
      );
    }
    for (const s of o.sessions.slice(1)) {
      await r.begin(s);
      await run(s, `LOCK TABLE ${qualified(def.rel)} IN ACCESS EXCLUSIVE MODE`);
    }
    if (kind === 'distributed') {
      const old = await moveAside(r, def);
      const identity = new Map<string, string>();
      for (const c of def.columns) {
        if (c.sequence && c.identity)
          identity.set(c.name, identityOptions(c.sequence, { start: nextValue(c.sequence, 1n) }));
      }
      await run(r.g0, createTableSql(def, { partitionBy: null, identity }));
      for (const sql of [...indexSql(def), ...ownerAndGrantsSql(def)]) await run(r.g0, sql);
      const cols = copyColumns(def);
      await run(
        r.g0,
        `INSERT INTO ${qualified(def.rel)} (${cols})${overriding(def)} SELECT ${cols} FROM ${old}`,
      );
      await run(r.g0, `DROP TABLE ${old}`);
      for (const s of o.sessions.slice(1)) {
        r.rows[r.g0.group] ??= 0;
        await r.stream(def, qualified(def.rel), s, r.g0);
      }
      await reownSequences(r.g0, def);
      for (const sql of foreignKeySql(def)) await run(r.g0, sql);
      for (const c of def.columns) {
        if (!c.sequence) continue;
        const max = await run(
          r.g0,
          `SELECT max(${quoteIdent(c.name)})::text AS m FROM ${qualified(def.rel)}`,
        );
        const top = [max[0]?.m == null ? null : BigInt(str(max[0].m)), c.sequence.lastValue].reduce<
          bigint | null
        >((a, b) => (a === null ? b : b === null ? a : a > b ? a : b), null);
        if (c.identity) {
          await run(
            r.g0,
            `ALTER TABLE ${qualified(def.rel)} ALTER COLUMN ${quoteIdent(c.name)} RESTART WITH ${top === null ? 1n : top + c.sequence.increment}`,
          );
        } else {
          await run(r.g0, `ALTER SEQUENCE ${c.sequence.qualified} NO MINVALUE NO MAXVALUE`);
          if (top !== null)
            await run(r.g0, `SELECT setval('${c.sequence.qualified.replace(/'/g, "''")}', ${top})`);
        }
      }
    }
    for (const s of o.sessions.slice(1)) await run(s, `DROP TABLE ${qualified(def.rel)}`);
    const n = await run(r.g0, `SELECT count(*)::int8::text AS n FROM ${qualified(def.rel)}`);
    r.rows[r.g0.group] = 0;
    r.progress(def.rel, r.g0.group, Number(n[0]?.n ?? 0), true);
    return r.finish('undistribute', def, null, null);
  });
}

/** The catalog key of the table an operation changed (for commitCatalog implementations). */
export function operationKey(op: PreparedOperation): string {
  return relKey(op.table);
}

/**
 * Statements that run on several groups at once, outside a transaction block, run by the program
 * that owns the proxy (the sharding host) over superuser sessions on the groups' primaries: DDL
 * on distributed and reference tables and writes to reference tables (every group), and
 * multi-row INSERTs whose rows belong to several groups (each group its own rows). Each group
 * runs its statement in a transaction as the client's user (`SET ROLE`, so PostgreSQL checks the
 * privileges it would check for that user), then every group prepares and commits (two-phase
 * commit): either every group has the change or none has. The reply is what one PostgreSQL would
 * send for the statement: its rows (RETURNING: every part's, in the order of the parts; a
 * reference table's: group 0's), the command tag (row counts summed over the parts of a split
 * INSERT), or the first failing group's error.
 *
 * DDL that drops a catalog table (DROP TABLE) changes the catalog too: the change is committed
 * between PREPARE and COMMIT PREPARED, as the API calls do (distribute-2pc.ts), so that recovery
 * decides by the catalog. Otherwise the order of the phases is the decision (every-group-2pc.ts).
 * A write to a reference table is checked before PREPARE: its copies must still be equal (a
 * sequence default or a volatile default gives each group its own value: refused, rolled back).
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { encodeBackendMessage } from '../protocol/backend-messages.js';
import type { FieldDescription } from '../protocol/backend-messages.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import { catalogErrors, isCatalogError, undistribute } from './catalog.js';
import type { CatalogStore } from './catalog-store.js';
import { abortAll, operationGid, prepareAndDecide } from './distribute-2pc.js';
import { prepareAndCommitInOrder } from './every-group-2pc.js';
import { sumTags } from './every-group-tags.js';
import type { InsertPart } from './shard-plan.js';
import type { ScatterWork } from './scatter-run.js';
import { DistributeError, quoteIdent } from './table-ddl.js';
import type { Catalog, RelName } from './types.js';

/**
 * What the host runs; `params`: the Bind's values as text (extended protocol), absent for a
 * Query (then the text runs with the simple protocol, several statements allowed).
 */
export type EveryGroupWork =
  /** `sql` on every group; `compare`: reference tables whose copies must stay equal (written). */
  | {
      readonly kind: 'all';
      readonly sql: string;
      readonly reason: string;
      readonly compare: readonly RelName[];
      readonly params?: readonly (string | null)[];
      /** DROP INDEX: every group when it dropped a catalog table's index, else group 0 only. */
      readonly dropIndex?: boolean;
      /**
       * A write of a distributed table without its key (UPDATE/DELETE run by each group on its
       * own shards): RETURNING rows of every group, row counts summed.
       */
      readonly distributed?: boolean;
    }
  /** A multi-row INSERT split by group: each part on its group, `$n` renumbered (paramIndexes). */
  | {
      readonly kind: 'split';
      readonly sql: string;
      readonly parts: readonly InsertPart[];
      readonly params?: readonly (string | null)[];
    }
  /** A read of Citus's views (citus-views.ts): group 0, the views in front (not run by runEveryGroup). */
  | { readonly kind: 'views'; readonly sql: string; readonly params?: readonly (string | null)[] }
  /** A read across groups on the fast path (scatter-run.ts; not run by runEveryGroup). */
  | ScatterWork;

/** A superuser session on a group's primary (node-postgres: its rows are read raw). */
export interface PgGroupSession {
  readonly group: string;
  readonly client: pg.Client;
}

export interface EveryGroupEnv {
  readonly catalogs: CatalogStore;
  /** Superuser sessions on every group's primary in the catalog's group order; `close` ends them. */
  openSessions(): Promise<{ readonly sessions: readonly PgGroupSession[]; close(): Promise<void> }>;
  /** Told when some groups' COMMIT PREPARED did not complete (recovery finishes them). */
  readonly onPending?: (groups: readonly string[]) => void;
}

export interface EveryGroupResult {
  /** The replies, ending with ReadyForQuery 'I'. */
  readonly replies: Buffer[];
  /** It committed DDL (the tables' columns may have changed). */
  readonly ddl: boolean;
}

/** One statement's result on one group, as the server sent it. */
export interface StatementResult {
  fields: FieldDescription[];
  rows: (Buffer | null)[][];
  tag: string;
}

/** The type parser that keeps every value as the server's text. */
const RAW_TYPES = { getTypeParser: () => (v: string) => v };

/** Runs `work` for `user`. Never rejects: failures are ErrorResponse replies. */
export async function runEveryGroup(
  work: EveryGroupWork,
  user: string,
  env: EveryGroupEnv,
): Promise<EveryGroupResult> {
  let opened: Awaited<ReturnType<EveryGroupEnv['openSessions']>> | null = null;
  try {
    opened = await env.openSessions();
    const base = await env.catalogs.load();
    let tasks = tasksOf(work, opened.sessions);
    let results: StatementResult[][];
    if (work.kind === 'all' && work.dropIndex === true) {
      const g0 = tasks[0]!;
      const before = await catalogIndexes(g0.session, base);
      results = await execute([g0], user);
      const after = new Set(await catalogIndexes(g0.session, base));
      if (before.every((oid) => after.has(oid))) {
        tasks = [g0]; // a local table's index: group 0 only
      } else {
        try {
          results = [...results, ...(await execute(tasks.slice(1), user))];
        } catch (e) {
          await g0.session.client.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
      }
    } else {
      results = await execute(tasks, user);
    }
    const sessions = tasks.map((t) => t.session);
    if (work.kind === 'all' && work.compare.length > 0) await compareCopies(sessions, work.compare);
    const dropped = work.kind === 'all' ? await droppedTables(sessions[0]!, base) : [];
    const id = randomBytes(6).toString('hex');
    let pending: readonly string[];
    if (dropped.length > 0) {
      const next = dropped.reduce<Catalog>((c, rel) => {
        const r = undistribute(c, rel);
        return isCatalogError(r) ? c : r.catalog;
      }, base);
      const out = await prepareAndDecide(
        sessions,
        operationGid('undistribute', id, dropped[0]!),
        async () => {
          const r = await env.catalogs.update((c) =>
            c.version === base.version
              ? next
              : catalogErrors.invalidParameter('the catalog changed meanwhile'),
          );
          return !isCatalogError(r);
        },
      );
      pending = out.pendingGroups;
    } else {
      pending = (await prepareAndCommitInOrder(sessions, id)).pendingGroups;
    }
    if (pending.length > 0) env.onPending?.(pending);
    return {
      replies: reply(work, results),
      ddl: work.kind === 'all' && work.compare.length === 0 && work.distributed !== true,
    };
  } catch (e) {
    return { replies: [errorOf(e), READY], ddl: false };
  } finally {
    await opened?.close().catch(() => undefined);
  }
}

interface Task {
  readonly session: PgGroupSession;
  readonly sql: string;
  /** Bind values (extended protocol), or null: the simple protocol. */
  readonly values: (string | null)[] | null;
}

function tasksOf(work: EveryGroupWork, sessions: readonly PgGroupSession[]): Task[] {
  const params = work.params ?? null;
  if (work.kind === 'all')
    return sessions.map((session) => ({
      session,
      sql: work.sql,
      values: params === null ? null : [...params],
    }));
  if (work.kind === 'views' || work.kind === 'scatter')
    throw new DistributeError('XX000', `a ${work.kind} read is not a write`);
  return work.parts.map((p) => {
    const session = sessions.find((s) => s.group === p.group);
    if (session === undefined) throw new DistributeError('XX000', `group ${p.group} is not in the catalog`);
    if (params === null && p.paramIndexes.length > 0)
      throw new DistributeError('08P01', 'the INSERT has parameters but no values were bound');
    return {
      session,
      sql: p.sql,
      values: params === null ? null : p.paramIndexes.map((i) => params[i] ?? null),
    };
  });
}

/**
 * Each task's statement in a transaction of its group, as `user`; on any failure every group
 * rolls back and the first failing group (in group order) gives the error.
 */
async function execute(tasks: readonly Task[], user: string): Promise<StatementResult[][]> {
  const begun: Task[] = [];
  const settled = await Promise.allSettled(
    tasks.map(async (t) => {
      const c = t.session.client;
      await c.query('BEGIN');
      begun.push(t);
      await c.query(`SET ROLE ${quoteIdent(user)}`);
      const out = await statementResults(c, t.sql, t.values);
      await c.query('RESET ROLE');
      return out;
    }),
  );
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    await abortAll(
      begun.map((t) => t.session),
      [],
      '',
    );
    throw failed.reason;
  }
  return settled.map((s) => (s as PromiseFulfilledResult<StatementResult[]>).value);
}

/** Runs `sql` (simple protocol, or extended with `values`) and keeps each statement's description, rows and tag as sent. */
export async function statementResults(
  c: pg.Client,
  sql: string,
  values: (string | null)[] | null,
): Promise<StatementResult[]> {
  const tags: string[] = [];
  const conn = (c as unknown as { connection: NodeJS.EventEmitter }).connection;
  const onTag = (m: { text: string }) => tags.push(m.text);
  conn.on('commandComplete', onTag);
  let res: pg.QueryResult | pg.QueryResult[];
  try {
    res =
      values === null
        ? await c.query({ text: sql, rowMode: 'array', types: RAW_TYPES })
        : await c.query({ text: sql, values, rowMode: 'array', types: RAW_TYPES });
  } finally {
    conn.off('commandComplete', onTag);
  }
  const list: pg.QueryResult[] = Array.isArray(res) ? (res as pg.QueryResult[]) : [res];
  return list.map((r, i) => ({
    fields: r.fields.map((f: pg.FieldDef) => ({
      name: f.name,
      tableOid: f.tableID,
      columnAttr: f.columnID,
      typeOid: f.dataTypeID,
      typeSize: f.dataTypeSize,
      typeModifier: f.dataTypeModifier,
      format: 0,
    })),
    rows: (r.rows as unknown as (string | null)[][]).map((row) =>
      row.map((v) => (v === null ? null : Buffer.from(v, 'utf8'))),
    ),
    tag: tags[i] ?? r.command ?? '',
  }));
}

/**
 * The copies of each written reference table are still equal on every group (the statement
 * computed the same values everywhere), checked inside the transactions before PREPARE.
 */
export async function compareCopies(
  sessions: readonly PgGroupSession[],
  tables: readonly RelName[],
): Promise<void> {
  for (const rel of tables) {
    const q = `${quoteIdent(rel.schema)}.${quoteIdent(rel.name)}`;
    const sums = await Promise.all(
      sessions.map(
        async (s) =>
          (
            await s.client.query<{ sum: string }>(
              `SELECT coalesce(md5(string_agg(h, '' ORDER BY h)), '') AS sum FROM (SELECT md5(t::text) AS h FROM ${q} t) x`,
            )
          ).rows[0]!.sum,
      ),
    );
    if (sums.some((x) => x !== sums[0])) {
      throw new DistributeError(
        '0A000',
        `this write to reference table "${rel.name}" gives its copies different values on different groups (a sequence or volatile default, a trigger): nothing was changed`,
        { hint: 'Give the values explicitly, or make the column the same on every group.' },
      );
    }
  }
}

/** The indexes of the catalog's tables on a group (their oids). */
async function catalogIndexes(s: PgGroupSession, catalog: Catalog): Promise<string[]> {
  const tables = [...catalog.tables.values()].map((t) => t.rel);
  const r = await s.client.query<{ oid: string }>(
    `SELECT x.indexrelid::text AS oid FROM pg_index x
      WHERE x.indrelid IN (SELECT to_regclass(quote_ident(s) || '.' || quote_ident(n))
                             FROM unnest($1::text[], $2::text[]) AS t(s, n))`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return r.rows.map((row) => row.oid);
}

/** The catalog tables the statement dropped (seen on group 0 inside its transaction). */
async function droppedTables(s: PgGroupSession, catalog: Catalog): Promise<RelName[]> {
  const tables = [...catalog.tables.values()].map((t) => t.rel);
  if (tables.length === 0) return [];
  const r = await s.client.query<{ schema: string; name: string }>(
    `SELECT s AS schema, n AS name FROM unnest($1::text[], $2::text[]) AS t(s, n)
      WHERE to_regclass(quote_ident(s) || '.' || quote_ident(n)) IS NULL`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return r.rows.map((row) => ({ schema: row.schema, name: row.name }));
}

const READY = encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' });

/** The client's replies: per statement, its description, rows and tag, then ReadyForQuery. */
function reply(work: EveryGroupWork, results: readonly StatementResult[][]): Buffer[] {
  const out: Buffer[] = [];
  const first = results[0] ?? [];
  for (let i = 0; i < first.length; i++) {
    const lead = first[i]!;
    // A reference table's copies are equal: group 0's rows and count are the statement's.
    const parts =
      work.kind === 'split' || (work.kind === 'all' && work.distributed === true)
        ? results.map((r) => r[i]!)
        : [lead];
    if (lead.fields.length > 0)
      out.push(encodeBackendMessage({ name: 'RowDescription', fields: lead.fields }));
    for (const p of parts)
      for (const row of p.rows) out.push(encodeBackendMessage({ name: 'DataRow', values: row }));
    out.push(encodeBackendMessage({ name: 'CommandComplete', tag: sumTags(parts.map((p) => p.tag)) }));
  }
  out.push(READY);
  return out;
}

/** An error reply: PostgreSQL's own (SQLSTATE, message, detail) or the executor's. */
export function errorOf(e: unknown): Buffer {
  if (e instanceof DistributeError) return buildErrorResponse('ERROR', e.sqlstate, e.message, e.detail);
  const err = e as { code?: unknown; message?: unknown; detail?: unknown };
  if (typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code)) {
    return buildErrorResponse(
      'ERROR',
      err.code,
      String(err.message),
      typeof err.detail === 'string' ? err.detail : undefined,
    );
  }
  return buildErrorResponse('ERROR', 'XX000', `sharding: ${e instanceof Error ? e.message : String(e)}`);
}

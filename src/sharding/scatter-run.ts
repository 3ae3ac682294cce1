/**
 * Runs a read across groups on the fast path (a ScatterPlan, scatter-plan.ts) for the sharding
 * host: every group runs the plan's query in parallel, over a superuser session on its primary
 * in a read-only transaction as the client's user (`SET ROLE`, so PostgreSQL checks that user's
 * privileges) with the client's session settings that change how values read and print; then
 * group 0 combines their rows with the final query, its partial columns passed as text arrays
 * (Bind parameters) and cast back to the types the groups gave, with the collations the groups
 * reported. PostgreSQL itself does every comparison, grouping and re-aggregation, so collations,
 * numeric equality and scales, NULL groups and result types are its own.
 *
 * When the plan cannot finish — a group returns more rows than SCATTER_ROW_CAP, a partial column
 * is of a type not known to round-trip through its text exactly, a float4 sum or avg, or a group
 * or the final query reports an error (a statement the plan does not fit after all, like a
 * user-defined aggregate; or the data's own error, which the general path then reports as one
 * PostgreSQL would) — the host runs the general path's text (the global tables on group 0)
 * instead. Never rejects: failures are ErrorResponse replies.
 */
import { encodeBackendMessage } from '../protocol/backend-messages.js';
import type { FieldDescription } from '../protocol/backend-messages.js';
import { errorOf, statementResults, type PgGroupSession, type StatementResult } from './every-group.js';
import { SCATTER_ROW_CAP, type Count, type FinalPiece, type ScatterPlan } from './scatter-plan.js';
import { quoteIdent } from './table-ddl.js';
import { checkOut, type CheckedOut, type SessionSource } from './scatter-sessions.js';

/** A read across groups on the fast path, as the host is given it. */
export interface ScatterWork {
  readonly kind: 'scatter';
  /** The client's statement. */
  readonly sql: string;
  readonly plan: ScatterPlan;
  /** The groups holding a needed shard (catalog order); the final query runs on `home`. */
  readonly groups: readonly string[];
  readonly home: string;
  /** The statement for the general path (group 0 over the global tables). */
  readonly global: string;
  readonly params?: readonly (string | null)[];
  /** The client's session settings that change how values read and print (applied locally). */
  readonly settings?: readonly (readonly [string, string])[];
}

/** Settings a client may have changed that change the values and their text (never search_path). */
export const VALUE_SETTINGS = [
  'TimeZone',
  'DateStyle',
  'IntervalStyle',
  'extra_float_digits',
  'bytea_output',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'statement_timeout',
];

/** Where the sessions come from (scatter-sessions.ts keeps them between reads). */
export interface ScatterEnv extends SessionSource {
  /** Told each time the fast path finished, or fell back (and why), for tests and metrics. */
  readonly onRun?: (path: 'scatter' | 'fallback', why?: string) => void;
}

/** Types whose text round-trips exactly between two sessions with the same settings, by OID. */
const TYPE_NAMES = new Map<number, string>([
  [16, 'bool'],
  [20, 'int8'],
  [21, 'int2'],
  [23, 'int4'],
  [25, 'text'],
  [26, 'oid'],
  [700, 'float4'],
  [701, 'float8'],
  [1042, 'bpchar'],
  [1043, 'varchar'],
  [1082, 'date'],
  [1083, 'time'],
  [1114, 'timestamp'],
  [1184, 'timestamptz'],
  [1700, 'numeric'],
  [2950, 'uuid'],
  [3802, 'jsonb'],
]);

/** The SQL name of a partial column's type with its modifier, or null (not transported). */
export function typeName(oid: number, typmod: number): string | null {
  const name = TYPE_NAMES.get(oid);
  if (name === undefined) return null;
  if (typmod < 0) return `pg_catalog.${name}`;
  switch (name) {
    case 'varchar':
    case 'bpchar':
      return typmod >= 4 ? `pg_catalog.${name}(${typmod - 4})` : null;
    case 'numeric': {
      const m = typmod - 4;
      const precision = (m >> 16) & 0xffff;
      const scale = (((m & 0x7ff) ^ 1024) - 1024) | 0;
      return `pg_catalog.numeric(${precision},${scale})`;
    }
    case 'time':
    case 'timestamp':
    case 'timestamptz':
      return `pg_catalog.${name}(${typmod})`;
    default:
      return null;
  }
}

class Fallback extends Error {}

const READY = encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' });

/**
 * Fast reads at once, at most (each holds a session on every group it reads): the others wait
 * their turn, so that the host's sessions stay few on every group whatever the clients do.
 */
const MAX_RUNNING = 16;
let running = 0;
const waiting: (() => void)[] = [];

export async function runScatter(work: ScatterWork, user: string, env: ScatterEnv): Promise<Buffer[]> {
  // A slot freed is handed to the next one waiting (running stays at the bound).
  if (running >= MAX_RUNNING) await new Promise<void>((resolve) => waiting.push(resolve));
  else running++;
  try {
    return await runOne(work, user, env);
  } finally {
    const next = waiting.shift();
    if (next !== undefined) next();
    else running--;
  }
}

async function runOne(work: ScatterWork, user: string, env: ScatterEnv): Promise<Buffer[]> {
  const wanted = work.groups.includes(work.home) ? work.groups : [work.home, ...work.groups];
  for (let attempt = 0; ; attempt++) {
    let out: CheckedOut | null = null;
    let healthy = true;
    try {
      out = await checkOut(wanted, env, attempt > 0);
      const home = out.sessions.find((s) => s.group === work.home)!;
      const parts = out.sessions.filter((s) => work.groups.includes(s.group));
      try {
        const replies = await scatter(work, user, parts, home);
        env.onRun?.('scatter');
        return replies;
      } catch (e) {
        if (!(e instanceof Fallback)) throw e;
        env.onRun?.('fallback', e.message);
        const [r] = await inReadOnly(home, user, work.settings, work.global, work.params ?? null);
        return [...replyOf(r!.fields, r!.rows, r!.tag), READY];
      }
    } catch (e) {
      healthy = !connectionLost(e);
      // A kept session whose connection was lost meanwhile: once more with new ones.
      if (!healthy && out?.reused === true && attempt === 0) continue;
      return [errorOf(e), READY];
    } finally {
      await out?.release(healthy);
    }
  }
}

/** The error is not PostgreSQL's answer to a statement: the session is not usable any more. */
function connectionLost(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true;
  return code.startsWith('08') || code.startsWith('57P');
}

/**
 * `sql` in a read-only transaction of `s` as `user` with the client's value settings (SQL text,
 * as the client's SET gave them: the session replays them so too). A text the host wrote itself
 * (`oneTrip`: one statement that ends with the host's own words, no parameters) goes in one
 * simple Query with the transaction's start and end: one round trip to a server that may be
 * waiting for its CPU quota.
 */
async function inReadOnly(
  s: PgGroupSession,
  user: string,
  settings: ScatterWork['settings'],
  sql: string,
  values: readonly (string | null)[] | null,
  oneTrip = false,
): Promise<StatementResult[]> {
  const c = s.client;
  const head = [
    'BEGIN READ ONLY',
    'SET LOCAL standard_conforming_strings = on',
    `SET LOCAL ROLE ${quoteIdent(user)}`,
    ...(settings ?? []).map(([name, value]) => `SET LOCAL ${name} TO ${value}`),
  ];
  try {
    if (oneTrip && values === null) {
      const all = await statementResults(c, [...head, sql, 'COMMIT'].join('; '), null);
      return [all[head.length]!];
    }
    await c.query(head.join('; '));
    const r = await statementResults(c, sql, values === null ? null : [...values]);
    await c.query('COMMIT');
    return r;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/**
 * An error on a group or in the host's own queries: the general path answers instead — with
 * PostgreSQL's own answer, or its own error, whatever in the fast path's texts caused this one.
 * A lost connection and a cancel (the client's statement_timeout) are the client's answer as they are.
 */
function fallbackOn(e: unknown): never {
  const code = (e as { code?: unknown }).code;
  if (connectionLost(e) || code === '57014') throw e;
  throw new Fallback(`${String(code)}: ${String((e as Error).message)}`);
}

async function scatter(
  work: ScatterWork,
  user: string,
  parts: readonly PgGroupSession[],
  home: PgGroupSession,
): Promise<Buffer[]> {
  const counts = work.plan.shape === 'rows' ? countsOf(work.plan.limit, work.plan.offset, work.params) : null;
  const settled = await Promise.allSettled(
    parts.map((s) => inReadOnly(s, user, work.settings, work.plan.groupSql, work.params ?? null, true)),
  );
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed !== undefined) fallbackOn(failed.reason);
  const results = settled.map((r) => (r as PromiseFulfilledResult<StatementResult[]>).value[0]!);
  const lead = results[0]!;
  for (const r of results) {
    if (r.rows.length > SCATTER_ROW_CAP) throw new Fallback('a group returned too many rows');
    if (
      r.fields.length !== lead.fields.length ||
      r.fields.some((f, i) => f.typeOid !== lead.fields[i]!.typeOid)
    )
      throw new Fallback('the groups described their rows differently');
  }
  const plan = work.plan;
  const rows = results.flatMap((r) => r.rows);
  if (plan.shape === 'rows') {
    const own = lead.fields.length - plan.sorts.length - 1;
    let picked: (Buffer | null)[][];
    const { limit, offset } = counts!;
    if (plan.sorts.length === 0) picked = rows.slice(offset, offset + limit);
    else {
      const cols = plan.sorts.map((_, i) => own + i);
      const coll = await collationsOf(
        home,
        user,
        work,
        lead.fields,
        plan.collations.map((c) => ({ col: own + c.at, expr: c.expr })),
      );
      const order = await combine(home, user, work, lead.fields, rows, [-1, ...cols], coll, (src) =>
        [
          `SELECT p.v0 FROM ${src} ORDER BY `,
          plan.sorts.map((dir, i) => `p.v${i + 1}${dir}`).join(', '),
          `, p.v0 LIMIT ${limit} OFFSET ${offset}`,
        ].join(''),
      );
      picked = order.rows.map((r) => rows[Number(r[0]!.toString('utf8'))]!);
    }
    const fields = (results[parts.indexOf(home)] ?? lead).fields.slice(0, own);
    return [
      ...replyOf(
        fields,
        picked.map((r) => r.slice(0, own)),
        `SELECT ${picked.length}`,
      ),
      READY,
    ];
  }
  const values = Array.from({ length: plan.values }, (_, i) => i);
  const coll = await collationsOf(
    home,
    user,
    work,
    lead.fields,
    plan.collations.map((c) => ({ col: c.at, expr: c.expr })),
  );
  const final = await combine(home, user, work, lead.fields, rows, values, coll, (src, types) =>
    plan.final.map((p) => piece(p, src, types)).join(''),
  );
  return [...replyOf(final.fields, final.rows, final.tag), READY];
}

/** Text types: their columns carry a collation. */
const COLLATABLE = new Set([25, 1042, 1043]);

/**
 * The collations of the text columns among `candidates` (column → `COLLATE` name), asked on
 * group 0 over no rows: pg_collation_for of each expression.
 */
async function collationsOf(
  home: PgGroupSession,
  user: string,
  work: ScatterWork,
  fields: readonly FieldDescription[],
  candidates: readonly { readonly col: number; readonly expr: string }[],
): Promise<Map<number, string>> {
  const asked = candidates.filter((c) => COLLATABLE.has(fields[c.col]?.typeOid ?? 0));
  const out = new Map<number, string>();
  if (asked.length === 0) return out;
  const cols = asked.map((c, i) => `pg_catalog.pg_collation_for(pg_catalog.min((${c.expr}))) AS c${i}`);
  try {
    const [r] = await inReadOnly(
      home,
      user,
      work.settings,
      `SELECT ${cols.join(', ')} ${work.plan.from} WHERE false`,
      null,
      true,
    );
    const row = r!.rows[0] ?? [];
    asked.forEach((c, i) => {
      const v = row[i];
      if (v !== null && v !== undefined) out.set(c.col, v.toString('utf8'));
    });
  } catch (e) {
    fallbackOn(e);
  }
  return out;
}

/**
 * LIMIT and OFFSET with their Bind values: non-negative integers whose sum is within the bound,
 * or the general path (NULL, a value PostgreSQL would refuse, too many rows).
 */
function countsOf(
  limit: Count,
  offset: Count,
  params: readonly (string | null)[] | undefined,
): { limit: number; offset: number } {
  const value = (c: Count): number => {
    if (typeof c === 'number') return c;
    const v = params?.[c.param];
    if (v === null || v === undefined || !/^\s*\d{1,9}\s*$/.test(v))
      throw new Fallback('LIMIT or OFFSET not a small count');
    return Number(v);
  };
  const out = { limit: value(limit), offset: value(offset) };
  if (out.limit + out.offset > SCATTER_ROW_CAP) throw new Fallback('LIMIT and OFFSET beyond the bound');
  return out;
}

/** The final query's text for one piece. */
function piece(p: FinalPiece, source: string, types: readonly string[]): string {
  if (typeof p === 'string') return p;
  if ('source' in p) return source;
  if ('type' in p) return types[p.type]!;
  if ('sum' in p) {
    // sum of float4 adds in float4 on one node: its rounding depends on the order too much.
    if (types[p.sum] === 'pg_catalog.float4') throw new Fallback('sum of a float4 is not combined here');
    return types[p.sum]!;
  }
  const [s, c] = p.avg;
  const sum = `pg_catalog.sum(p.v${s})`;
  const count = `pg_catalog.sum(p.v${c})`;
  switch (types[s]) {
    case 'pg_catalog.int8':
    case 'pg_catalog.numeric':
      // numeric's avg is sum / count in numeric (int8_avg, numeric_avg): same value and scale.
      return `(CASE WHEN ${count} = 0 THEN NULL ELSE ${sum}::pg_catalog.numeric / ${count} END)`;
    case 'pg_catalog.float8':
      return `(CASE WHEN ${count} = 0 THEN NULL ELSE ${sum} / ${count}::pg_catalog.float8 END)`;
    default:
      throw new Fallback(`avg of a ${types[s] ?? 'value'} is not combined here`);
  }
}

/**
 * Runs a final query on group 0 over `rows`' columns `cols` (-1: the row's index) passed as
 * text arrays, each cast back to its type and collation: `p.v0`, `p.v1`, … in the text `make`
 * builds around the source.
 */
async function combine(
  home: PgGroupSession,
  user: string,
  work: ScatterWork,
  fields: readonly FieldDescription[],
  rows: readonly (readonly (Buffer | null)[])[],
  cols: readonly number[],
  collations: ReadonlyMap<number, string>,
  make: (source: string, types: readonly string[]) => string,
): Promise<StatementResult> {
  const types: string[] = [];
  const selects: string[] = [];
  const arrays: (string | null)[][] = [];
  cols.forEach((col, i) => {
    arrays.push(rows.map((r, k) => (col < 0 ? String(k) : (r[col]?.toString('utf8') ?? null))));
    if (col < 0) {
      types.push('pg_catalog.int4');
      selects.push(`p0.c${i}::pg_catalog.int4 AS v${i}`);
      return;
    }
    const f = fields[col]!;
    const t = typeName(f.typeOid, f.typeModifier);
    if (t === null) throw new Fallback(`a partial column of type ${f.typeOid} is not passed between groups`);
    types.push(t);
    const coll = collations.get(col);
    selects.push(`(p0.c${i}::${t})${coll === undefined ? '' : ` COLLATE ${coll}`} AS v${i}`);
  });
  const unnest = arrays.map((a) => `${arrayLiteral(a)}::pg_catalog.text[]`).join(', ');
  const names = cols.map((_, i) => `c${i}`).join(', ');
  const source = `(SELECT ${selects.join(', ')} FROM unnest(${unnest}) AS p0(${names})) AS p`;
  const text = make(source, types);
  try {
    const [r] = await inReadOnly(home, user, work.settings, text, null, true);
    return r!;
  } catch (e) {
    return fallbackOn(e);
  }
}

/**
 * A text array as an SQL literal: every element double-quoted with `\` and `"` escaped, NULL for
 * null, the whole in single quotes (standard_conforming_strings is on in the host's sessions).
 */
export function arrayLiteral(values: readonly (string | null)[]): string {
  const items = values.map((v) => (v === null ? 'NULL' : `"${v.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`));
  return `'{${items.join(',').replace(/'/g, "''")}}'`;
}

function replyOf(
  fields: readonly FieldDescription[],
  rows: readonly (readonly (Buffer | null)[])[],
  tag: string,
): Buffer[] {
  const out: Buffer[] = [];
  if (fields.length > 0) out.push(encodeBackendMessage({ name: 'RowDescription', fields: [...fields] }));
  for (const row of rows) out.push(encodeBackendMessage({ name: 'DataRow', values: [...row] }));
  out.push(encodeBackendMessage({ name: 'CommandComplete', tag }));
  return out;
}

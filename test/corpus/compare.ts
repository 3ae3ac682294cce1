/**
 * How the differential corpus compares one statement's answer from the sharded cluster (through
 * the proxy) with the answer of one plain PostgreSQL holding the same data, and how it classifies
 * the outcome:
 *
 * - `match`: same columns (names and type OIDs) and the same rows. Rows are compared as a
 *   multiset unless the statement's top level has ORDER BY; then in order, except that rows with
 *   equal sort keys (ties) may come in any order, and with LIMIT (OFFSET) the last (first) run of
 *   ties may hold other rows of the same key. Sort keys are the output columns the ORDER BY items
 *   name (by position, name or the same expression); an item that names no output column makes the
 *   whole row the key (exact order). Both servers failing with the same SQLSTATE is a match too.
 * - `refused`: the proxy answered SQLSTATE 0A000 (not supported yet): allowed.
 * - `wrong`: anything else — other rows, other columns, or an error the plain server did not give.
 *
 * Values are compared as PostgreSQL's text output (numeric exactly), except float4/float8
 * columns, which match within a relative tolerance of FLOAT_TOLERANCE: a sum of floats gathered
 * from several groups adds in another order and may differ in the last bits.
 */
import { parseStatements } from '../../src/sql/pg-parser.js';

/** Relative tolerance for float4/float8 values. */
export const FLOAT_TOLERANCE = 1e-9;

const FLOAT_OIDS = new Set([700, 701]);

export interface Answer {
  ok: true;
  fields: { name: string; typeOid: number }[];
  rows: (string | null)[][];
}
export interface Failure {
  ok: false;
  code: string | undefined;
  message: string;
}
export type Outcome = Answer | Failure;

export type Verdict =
  | { kind: 'match' }
  | { kind: 'refused'; message: string }
  /** Cancelled by the proxy side's statement_timeout (CORPUS_TIMEOUT): too slow, not wrong. */
  | { kind: 'slow'; message: string }
  | { kind: 'wrong'; reason: string };

/** The proxy side's statement_timeout: a statement slower than this is `slow`, not judged. */
export const CORPUS_TIMEOUT = '8s';

/** What the ORDER BY of a statement's top level says about its rows' order. */
export interface Ordering {
  ordered: boolean;
  /** Output column positions of the sort keys; null: the whole row (no item maps to a column). */
  keys: number[] | null;
  /** Top-level ORDER BY item expressions that were not output column references, by position. */
  limit: boolean;
  offset: boolean;
}

type Json = Record<string, unknown>;

function stripLocations(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripLocations);
  if (v && typeof v === 'object') {
    const o: Json = {};
    for (const [k, x] of Object.entries(v as Json)) if (k !== 'location') o[k] = stripLocations(x);
    return o;
  }
  return v;
}

/** The ordering of `sql`'s top level; `fieldNames` are the answer's column names. */
export function orderingOf(sql: string, fieldNames: readonly string[]): Ordering {
  const none: Ordering = { ordered: false, keys: null, limit: false, offset: false };
  const parsed = parseStatements(sql);
  if (parsed.kind !== 'parsed' || parsed.stmts.length !== 1) return none;
  const stmt = (parsed.stmts[0] as Json).stmt as Json | undefined;
  const sel = stmt?.SelectStmt as Json | undefined;
  if (!sel) return none; // e.g. EXPLAIN, VALUES wrapped otherwise: compared as a multiset
  const sort = (sel.sortClause as Json[] | undefined) ?? [];
  const limit = sel.limitCount !== undefined;
  const offset = sel.limitOffset !== undefined;
  if (sort.length === 0) return { ...none, limit, offset };
  const targets = ((sel.targetList as Json[] | undefined) ?? []).map((t) =>
    JSON.stringify(stripLocations((t.ResTarget as Json).val)),
  );
  const keys: number[] = [];
  for (const item of sort) {
    const node = (item.SortBy as Json).node as Json;
    let idx = -1;
    const c = node.A_Const as Json | undefined;
    const ival = (c?.ival as Json | undefined)?.ival;
    if (typeof ival === 'number') idx = ival - 1;
    const ref = node.ColumnRef as Json | undefined;
    if (idx < 0 && ref) {
      const fields = ref.fields as Json[];
      const last = (fields[fields.length - 1]!.String as Json | undefined)?.sval;
      const hits = fieldNames.flatMap((n, i) => (n === last ? [i] : []));
      if (hits.length === 1) idx = hits[0]!;
    }
    if (idx < 0) idx = targets.indexOf(JSON.stringify(stripLocations(node)));
    if (idx < 0 || idx >= fieldNames.length) break;
    keys.push(idx);
  }
  return { ordered: true, keys: keys.length ? keys : null, limit, offset };
}

function sameCell(a: string | null, b: string | null, float: boolean): boolean {
  if (a === b) return true;
  if (a === null || b === null || !float) return false;
  const x = Number(a);
  const y = Number(b);
  if (Number.isNaN(x) || Number.isNaN(y)) return false;
  return Math.abs(x - y) <= FLOAT_TOLERANCE * Math.max(Math.abs(x), Math.abs(y));
}

function sameRow(a: (string | null)[], b: (string | null)[], floats: boolean[], cols?: number[]): boolean {
  const idx = cols ?? a.map((_, i) => i);
  return a.length === b.length && idx.every((i) => sameCell(a[i]!, b[i]!, floats[i]!));
}

/** A sort key for multiset comparison: floats rounded so near-equal values sort together. */
function canon(row: (string | null)[], floats: boolean[]): string {
  return JSON.stringify(
    row.map((v, i) => {
      if (v === null || !floats[i]) return v;
      const n = Number(v);
      return Number.isFinite(n) ? n.toPrecision(8) : v;
    }),
  );
}

function sameMultiset(a: (string | null)[][], b: (string | null)[][], floats: boolean[]): string | null {
  if (a.length !== b.length) return `${b.length} rows, expected ${a.length}`;
  const sa = a
    .map((r) => [canon(r, floats), r] as const)
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const sb = b
    .map((r) => [canon(r, floats), r] as const)
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  for (let i = 0; i < sa.length; i++) {
    if (!sameRow(sa[i]![1], sb[i]![1], floats)) {
      return `row ${JSON.stringify(sb[i]![1])} where ${JSON.stringify(sa[i]![1])} was expected`;
    }
  }
  return null;
}

/** Runs of consecutive rows with equal sort keys. */
function runs(rows: (string | null)[][], keys: number[], floats: boolean[]): (string | null)[][][] {
  const out: (string | null)[][][] = [];
  for (const row of rows) {
    const cur = out[out.length - 1];
    if (cur && sameRow(cur[0]!, row, floats, keys)) cur.push(row);
    else out.push([row]);
  }
  return out;
}

function sameOrdered(
  expected: (string | null)[][],
  got: (string | null)[][],
  floats: boolean[],
  o: Ordering,
): string | null {
  if (expected.length !== got.length) return `${got.length} rows, expected ${expected.length}`;
  const keys = o.keys ?? floats.map((_, i) => i);
  const re = runs(expected, keys, floats);
  const rg = runs(got, keys, floats);
  if (re.length !== rg.length) return `${rg.length} runs of equal sort keys, expected ${re.length}`;
  for (let i = 0; i < re.length; i++) {
    const e = re[i]!;
    const g = rg[i]!;
    if (e.length !== g.length || !sameRow(e[0]!, g[0]!, floats, keys)) {
      return `at run ${i}: ${JSON.stringify(g[0])} (${g.length} rows) where ${JSON.stringify(e[0])} (${e.length} rows) was expected`;
    }
    // A run cut by LIMIT or OFFSET may legitimately hold other rows of the same key.
    const cut = (o.limit && i === re.length - 1) || (o.offset && i === 0);
    if (!cut) {
      const d = sameMultiset(e, g, floats);
      if (d) return `at run ${i}: ${d}`;
    }
  }
  return null;
}

/** The verdict on the proxy's outcome `got` for `sql`, given the plain server's `expected`. */
export function judge(sql: string, expected: Outcome, got: Outcome): Verdict {
  if (!got.ok && got.code === '0A000') return { kind: 'refused', message: got.message };
  if (!got.ok && got.code === '57014' && expected.ok) return { kind: 'slow', message: got.message };
  if (!expected.ok) {
    if (!got.ok && got.code === expected.code) return { kind: 'match' };
    return {
      kind: 'wrong',
      reason: got.ok
        ? `rows where PostgreSQL fails with ${expected.code}: ${expected.message}`
        : `${got.code ?? 'no SQLSTATE'} ${got.message} where PostgreSQL fails with ${expected.code}: ${expected.message}`,
    };
  }
  if (!got.ok) return { kind: 'wrong', reason: `error ${got.code ?? '(no SQLSTATE)'}: ${got.message}` };
  const fe = expected.fields.map((f) => `${f.name}:${f.typeOid}`).join(',');
  const fg = got.fields.map((f) => `${f.name}:${f.typeOid}`).join(',');
  if (fe !== fg) return { kind: 'wrong', reason: `columns ${fg}, expected ${fe}` };
  const floats = expected.fields.map((f) => FLOAT_OIDS.has(f.typeOid));
  const o = orderingOf(
    sql,
    expected.fields.map((f) => f.name),
  );
  const diff = o.ordered
    ? sameOrdered(expected.rows, got.rows, floats, o)
    : sameMultiset(expected.rows, got.rows, floats);
  return diff ? { kind: 'wrong', reason: diff } : { kind: 'match' };
}

/**
 * A read that needs several groups, rewritten to run on group 0 over the global tables
 * (global-tables.ts): each distributed table the statement reads is renamed, where it is written,
 * to its global table, and keeps its name as an alias so that `users.name` still means what it
 * did (`FROM users` → `FROM pgscale_all.t102008 AS users`; an alias the text gives is kept).
 * Nothing else of the text changes. The places are the ones the planner's analysis found (its
 * occurrences, with CTE scoping); a second, blind walk over the whole parse tree checks that no
 * other mention of a distributed table is left (one in a node the analysis does not follow would
 * read group 0's shards only): then the statement is not rewritten at all, and the caller refuses
 * it. Pure, no I/O.
 */
import { lex } from '../sql/lexer.js';
import { parseStatements } from '../sql/pg-parser.js';
import { quoteIdentifier } from '../sql/quote-ident.js';
import { GLOBAL_SCHEMA, globalTableName } from './global-tables.js';
import { relKey, type Catalog, type DistributedTable } from './types.js';

/** A distributed table where the statement reads it (from the planner's analysis). */
export interface GlobalOccurrence {
  /** The RangeVar's location: a byte offset into the UTF-8 text, as the parser gives it. */
  readonly location: number;
  readonly table: DistributedTable;
  /** The text names it with a schema (`public.users`): three tokens to replace, not one. */
  readonly qualified: boolean;
  /** The text gives it an alias already. */
  readonly aliased: boolean;
}

/** `sql` with its distributed tables renamed to their global tables, or null when it cannot be done safely. */
export function rewriteForGlobal(
  sql: string,
  occurrences: readonly GlobalOccurrence[],
  catalog: Catalog,
): string | null {
  if (occurrences.length === 0) return null;
  if (!onlyThese(sql, occurrences, catalog)) return null;
  const toChar = byteToChar(sql);
  const tokens = lex(sql);
  const byStart = new Map<number, number>();
  for (let i = 0; i < tokens.count; i++) byStart.set(tokens.start(i), i);
  const edits: { start: number; end: number; text: string }[] = [];
  for (const o of occurrences) {
    const at = byStart.get(toChar(o.location));
    if (at === undefined) return null;
    const last = o.qualified ? at + 2 : at;
    if (o.qualified && !tokens.isSymbol(at + 1, '.')) return null;
    if (last >= tokens.count) return null;
    // `TABLE users` takes no alias (and needs none: it has no column references).
    const noAlias = o.aliased || (at > 0 && tokens.isWord(at - 1, 'table'));
    const name = `${GLOBAL_SCHEMA}.${quoteIdentifier(globalTableName(o.table))}`;
    edits.push({
      start: tokens.start(at),
      end: tokens.end(last),
      text: noAlias ? name : `${name} AS ${quoteIdentifier(o.table.rel.name)}`,
    });
  }
  edits.sort((a, b) => b.start - a.start);
  let out = sql;
  for (const e of edits) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

/**
 * Every RangeVar of the text that names a distributed table is one of `occurrences`, or an
 * unqualified name some WITH of the text defines (a CTE the analysis scoped).
 */
function onlyThese(sql: string, occurrences: readonly GlobalOccurrence[], catalog: Catalog): boolean {
  const parsed = parseStatements(sql);
  if (parsed.kind !== 'parsed') return false;
  const known = new Set(occurrences.map((o) => o.location));
  const rangeVars: Record<string, unknown>[] = [];
  const cteNames = new Set<string>();
  let bpcharCast = false;
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) {
      for (const x of n) walk(x);
      return;
    }
    if (n === null || typeof n !== 'object') return;
    for (const [k, v] of Object.entries(n as Record<string, unknown>)) {
      if (k === 'RangeVar' && v !== null && typeof v === 'object')
        rangeVars.push(v as Record<string, unknown>);
      if (k === 'TypeCast' && v !== null && typeof v === 'object') {
        if (BPCHAR.test(JSON.stringify((v as { typeName?: unknown }).typeName ?? ''))) bpcharCast = true;
      }
      if (k === 'CommonTableExpr' && v !== null && typeof v === 'object') {
        const name = (v as { ctename?: unknown }).ctename;
        if (typeof name === 'string') cteNames.add(name);
      }
      walk(v);
    }
  };
  walk(parsed.stmts);
  // postgres_fdw (PostgreSQL 15) ships `varchar_col = 'ab'::char(3)` as a text comparison,
  // dropping the cast that makes PostgreSQL compare blank-padded: a remote group would answer
  // another set of rows. Such a statement is not run over the global tables.
  if (bpcharCast) return false;
  for (const rv of rangeVars) {
    const relname = typeof rv.relname === 'string' ? rv.relname : '';
    const schema = typeof rv.schemaname === 'string' ? rv.schemaname : null;
    const t = catalog.tables.get(relKey({ schema: schema ?? 'public', name: relname }));
    if (t === undefined || t.kind !== 'distributed') continue;
    if (typeof rv.location === 'number' && known.has(rv.location)) continue;
    if (schema === null && cteNames.has(relname)) continue;
    return false;
  }
  return true;
}

/** A type name of the blank-padded character type, as the parser spells `char(n)` / `character`. */
const BPCHAR = /"sval":"(bpchar|char|character)"/;

/** Maps a UTF-8 byte offset of `s` to its UTF-16 index. */
function byteToChar(s: string): (byte: number) => number {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(s)) return (b) => b;
  const map = new Map<number, number>();
  let byte = 0;
  for (let i = 0; i < s.length; i++) {
    map.set(byte, i);
    const c = s.codePointAt(i)!;
    byte += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (c >= 0x10000) i++;
  }
  map.set(byte, s.length);
  return (b) => map.get(b) ?? -1;
}

/**
 * The options of a `COPY … FROM STDIN` into a catalog table, as the row splitter (copy-rows.ts)
 * needs them: the format, the delimiter, quote and escape bytes, the NULL marker, the header line
 * and which of them make the distribution column NULL. They are read from the statement's parse
 * tree (CopyStmt.options, DefElem nodes: the old `WITH CSV HEADER` syntax gives the same nodes).
 * Every group checks the options itself when its COPY starts (PostgreSQL's own errors reach the
 * client); what is refused here is only what the proxy cannot split rows by. Pure, no I/O.
 * https://www.postgresql.org/docs/current/sql-copy.html
 */
import { isObj, unwrap, type Obj } from '../sql/tree-nodes.js';

export type CopyFormat = 'text' | 'csv' | 'binary';

export interface CopyOptions {
  readonly format: CopyFormat;
  /** One byte (text: tab, csv: comma by default). */
  readonly delimiter: number;
  /** The NULL marker as written (text: `\N`, csv: the empty string by default). */
  readonly nullMarker: Buffer;
  /** CSV quote and escape bytes (the escape is the quote by default). */
  readonly quote: number;
  readonly escape: number;
  /** The first line is a header (HEADER true or MATCH): each group's COPY is given it too. */
  readonly header: boolean;
  /** Columns named by FORCE_NOT_NULL / FORCE_NULL; '*' means every column. */
  readonly forceNotNull: readonly string[] | '*';
  readonly forceNull: readonly string[] | '*';
  /** PostgreSQL 16's DEFAULT marker, or null. */
  readonly defaultMarker: Buffer | null;
}

/** Options the proxy cannot split by: the reason (answered with 0A000). */
export interface CopyOptionsRefusal {
  readonly refused: string;
}

const DEFAULTS = { text: { delimiter: '\t', null: '\\N' }, csv: { delimiter: ',', null: '' } } as const;

function str(v: unknown): string | null {
  const n = unwrap(v);
  if (n === null) return null;
  const [kind, body] = n;
  if (kind === 'String' && typeof body.sval === 'string') return body.sval;
  if (kind === 'Boolean') return body.boolval === true ? 'true' : 'false';
  if (kind === 'Integer') return String(typeof body.ival === 'number' ? body.ival : 0);
  if (kind === 'Float' && typeof body.fval === 'string') return body.fval;
  return null;
}

function columns(v: unknown): readonly string[] | '*' {
  const n = unwrap(v);
  if (n === null) return [];
  if (n[0] === 'A_Star') return '*';
  if (n[0] !== 'List' || !Array.isArray(n[1].items)) return [];
  return (n[1].items as unknown[]).map(str).filter((s): s is string => s !== null);
}

function truthy(v: string | null): boolean {
  if (v === null) return true; // `HEADER` alone
  return /^(true|on|1|match|yes|t|y)$/i.test(v);
}

/** The options of CopyStmt `body`, or the reason the proxy cannot split its rows. */
export function copyOptionsOf(body: Obj): CopyOptions | CopyOptionsRefusal {
  const given = new Map<string, unknown>();
  for (const o of Array.isArray(body.options) ? (body.options as unknown[]) : []) {
    const d = unwrap(o);
    if (d === null || d[0] !== 'DefElem' || typeof d[1].defname !== 'string') continue;
    given.set(d[1].defname, isObj(d[1]) ? d[1].arg : undefined);
  }
  const fmt = given.has('format') ? (str(given.get('format')) ?? '').toLowerCase() : 'text';
  if (fmt !== 'text' && fmt !== 'csv' && fmt !== 'binary') return { refused: `COPY format "${fmt}"` };
  const encoding = given.has('encoding') ? (str(given.get('encoding')) ?? '') : null;
  if (encoding !== null && !/^utf-?8$|^unicode$/i.test(encoding))
    return { refused: `COPY … ENCODING '${encoding}' (the proxy reads the distribution column as UTF-8)` };
  const defaults = fmt === 'csv' ? DEFAULTS.csv : DEFAULTS.text;
  const byte = (name: string, fallback: string): number | CopyOptionsRefusal => {
    const v = given.has(name) ? (str(given.get(name)) ?? fallback) : fallback;
    const b = Buffer.from(v, 'utf8');
    // PostgreSQL refuses these itself ("must be a single one-byte character"); the groups say so.
    return b.length === 1 ? b[0]! : { refused: `COPY ${name.toUpperCase()} '${v}'` };
  };
  const delimiter = byte('delimiter', defaults.delimiter);
  if (typeof delimiter !== 'number') return delimiter;
  const quote = byte('quote', '"');
  if (typeof quote !== 'number') return quote;
  const escape = given.has('escape') ? byte('escape', '"') : quote;
  if (typeof escape !== 'number') return escape;
  const nullText = given.has('null') ? (str(given.get('null')) ?? defaults.null) : defaults.null;
  const def = given.has('default') ? str(given.get('default')) : null;
  return {
    format: fmt,
    delimiter,
    nullMarker: Buffer.from(nullText, 'utf8'),
    quote,
    escape,
    header: given.has('header') && truthy(str(given.get('header'))),
    forceNotNull: given.has('force_not_null') ? columns(given.get('force_not_null')) : [],
    forceNull: given.has('force_null') ? columns(given.get('force_null')) : [],
    defaultMarker: def === null ? null : Buffer.from(def, 'utf8'),
  };
}

/** Whether `column` is named by a FORCE_NOT_NULL / FORCE_NULL list. */
export function forced(list: readonly string[] | '*', column: string): boolean {
  return list === '*' || list.includes(column);
}

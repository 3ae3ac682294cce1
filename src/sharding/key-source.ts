/**
 * Where a statement takes the value of a distribution column from, as the planner records it
 * once per statement text (shard-plan.ts) and the router reads it for each execution
 * (resolve-shards.ts): a literal of the text, a Bind parameter, or a literal NULL; and the sets a
 * WHERE clause pins a column to (`= v`, `IN (…)`, `= ANY(ARRAY[…])`, `= ANY('{…}')`,
 * `= ANY($n)`). Only values whose meaning for the column's hash is certain are accepted: a cast
 * to a type of another family (`k = 5::numeric` on an integer column, `'a '::bpchar` on a text
 * column) or a decimal literal compared with an integer column is not a pin, since PostgreSQL
 * then compares in another type than the column's. Pure, no I/O.
 */
import { isObj, unwrap, type Obj } from '../sql/tree-nodes.js';
import type { ColumnValue, DistType } from './types.js';

export type KeySource =
  /** A literal (its text as the grammar keeps it), ready to hash. */
  | { readonly kind: 'const'; readonly value: ColumnValue }
  /** Bind parameter `$n`: `index` is n - 1 (the position in the Bind message). */
  | { readonly kind: 'param'; readonly index: number; readonly type: DistType }
  /** A literal NULL (an INSERT's key; NULL compared with `=` pins nothing). */
  | { readonly kind: 'null' };

/** The values a table's distribution column is limited to in a statement. */
export type KeySet =
  | { readonly kind: 'one'; readonly source: KeySource }
  /** `IN (…)`, `= ANY(ARRAY[…])`, `= ANY('{…}')`, or the rows of a multi-row INSERT. */
  | { readonly kind: 'list'; readonly sources: readonly KeySource[] }
  /** `= ANY($n)`: an array parameter, read at Bind (text or binary array format). */
  | { readonly kind: 'array-param'; readonly index: number; readonly type: DistType };

/** What literalOf answers for the NULL literal. */
const NULL_TEXT: unique symbol = Symbol('NULL');

const FAMILY: Record<string, string> = {
  int2: 'int',
  int4: 'int',
  int8: 'int',
  smallint: 'int',
  integer: 'int',
  int: 'int',
  bigint: 'int',
  text: 'text',
  varchar: 'text',
  bpchar: 'bpchar',
  uuid: 'uuid',
  numeric: 'numeric',
  decimal: 'numeric',
};

const DIST_OF_NAME: Record<string, DistType> = {
  int2: 'int2',
  smallint: 'int2',
  int4: 'int4',
  integer: 'int4',
  int: 'int4',
  int8: 'int8',
  bigint: 'int8',
  text: 'text',
  varchar: 'varchar',
  bpchar: 'bpchar',
  uuid: 'uuid',
  numeric: 'numeric',
  decimal: 'numeric',
};

function familyOf(t: DistType): string {
  return FAMILY[t] ?? t;
}

export function isIntType(t: DistType): boolean {
  return t === 'int2' || t === 'int4' || t === 'int8';
}

/**
 * Whether a value cast to `cast` compares with a `column` column in the column's own terms.
 * Integer casts keep integer semantics (PostgreSQL's integer hash functions agree across int2,
 * int4 and int8 for the same value); text and varchar are one type for comparison; a bpchar
 * value compared with text strips trailing blanks, so it is no pin for a text column.
 */
function castFits(cast: string, column: DistType, literal: boolean): boolean {
  const fam = FAMILY[cast];
  if (fam === undefined) return false;
  const col = familyOf(column);
  if (fam === col) return true;
  if (col === 'bpchar' && fam === 'text') return true;
  // A literal cast to an integer type is an exact numeric value for a numeric column.
  return literal && col === 'numeric' && fam === 'int';
}

/** The type's last name part (`pg_catalog.int4` → `int4`) and whether it is an array type. */
export function typeNameOf(typeName: unknown): { name: string; array: boolean } | null {
  if (!isObj(typeName) || !Array.isArray(typeName.names)) return null;
  const last = unwrap(typeName.names[typeName.names.length - 1]);
  if (last === null || typeof last[1].sval !== 'string') return null;
  return { name: last[1].sval, array: Array.isArray(typeName.arrayBounds) };
}

/** A literal's text, or NULL_TEXT for NULL, or null when it is no literal the column can take. */
function literalOf(n: [string, Obj], type: DistType): string | typeof NULL_TEXT | null {
  if (n[0] !== 'A_Const') return null;
  const c = n[1];
  if (c.isnull === true) return NULL_TEXT;
  if (isObj(c.sval)) return typeof c.sval.sval === 'string' ? c.sval.sval : '';
  if (isObj(c.ival)) {
    if (familyOf(type) === 'int' || familyOf(type) === 'numeric')
      return typeof c.ival.ival === 'number' ? String(c.ival.ival) : '0';
    return null;
  }
  if (isObj(c.fval)) {
    // A decimal literal (or an integer too big for int4) is numeric: `int_col = 1.5` compares as numeric.
    const text = typeof c.fval.fval === 'string' ? c.fval.fval : '';
    if (familyOf(type) === 'numeric') return text;
    if (familyOf(type) === 'int' && /^[+-]?\d+$/.test(text)) return text;
    return null;
  }
  return null;
}

/**
 * The key source of an expression for a column of type `type`: a literal (cast at most once, to
 * a fitting type), a parameter (cast or not), a literal NULL; null for anything else.
 */
export function keySourceOf(node: unknown, type: DistType): KeySource | null {
  const n = unwrap(node);
  if (n === null) return null;
  if (n[0] === 'ParamRef') return paramOf(n[1], type);
  if (n[0] === 'TypeCast') {
    const t = typeNameOf(n[1].typeName);
    const inner = unwrap(n[1].arg);
    if (t === null || t.array || inner === null) return null;
    if (inner[0] === 'ParamRef') {
      if (!castFits(t.name, type, false)) return null;
      return paramOf(inner[1], DIST_OF_NAME[t.name] ?? type);
    }
    if (!castFits(t.name, type, true)) return null;
    // The literal is read as the cast's type: an integer literal fits an integer or numeric cast.
    const text = literalOf(inner, DIST_OF_NAME[t.name] ?? type);
    return text === null ? null : text === NULL_TEXT ? NULL_SOURCE : constSource(text);
  }
  const text = literalOf(n, type);
  return text === null ? null : text === NULL_TEXT ? NULL_SOURCE : constSource(text);
}

function paramOf(p: Obj, type: DistType): KeySource | null {
  return typeof p.number === 'number' && p.number >= 1 ? { kind: 'param', index: p.number - 1, type } : null;
}

export const NULL_SOURCE: KeySource = { kind: 'null' };

export function constSource(text: string): KeySource {
  return { kind: 'const', value: { format: 'text', text } };
}

/**
 * The right side of `col = ANY(…)` as a key set: `ARRAY[…]` of key sources, a literal array
 * (`'{1,2}'`, cast to a fitting array type or not), or a parameter (cast to a fitting array type
 * or not); null for anything else (a subquery, a function).
 */
export function anyArrayOf(node: unknown, type: DistType): KeySet | null {
  const n = unwrap(node);
  if (n === null) return null;
  if (n[0] === 'A_ArrayExpr') return listOf(n[1].elements, type);
  let inner = n;
  let castName: string | null = null;
  if (n[0] === 'TypeCast') {
    const t = typeNameOf(n[1].typeName);
    const arg = unwrap(n[1].arg);
    if (t === null || !t.array || arg === null) return null;
    castName = t.name;
    inner = arg;
    if (inner[0] === 'A_ArrayExpr')
      return castFits(castName, type, true) ? listOf(inner[1].elements, type) : null;
  }
  if (inner[0] === 'ParamRef') {
    if (castName !== null && !castFits(castName, type, false)) return null;
    const p = paramOf(inner[1], castName === null ? type : (DIST_OF_NAME[castName] ?? type));
    return p !== null && p.kind === 'param' ? { kind: 'array-param', index: p.index, type: p.type } : null;
  }
  if (inner[0] === 'A_Const' && isObj(inner[1].sval)) {
    if (castName !== null && !castFits(castName, type, true)) return null;
    const items = parseArrayText(typeof inner[1].sval.sval === 'string' ? inner[1].sval.sval : '');
    if (items === null) return null;
    const sources: KeySource[] = [];
    for (const item of items) if (item !== null) sources.push(constSource(item));
    return { kind: 'list', sources };
  }
  return null;
}

/** `IN (…)` items or `ARRAY[…]` elements, every one a key source; null if any is not. */
export function listOf(items: unknown, type: DistType): KeySet | null {
  if (!Array.isArray(items)) return null;
  const sources: KeySource[] = [];
  for (const item of items) {
    const s = keySourceOf(item, type);
    if (s === null) return null;
    if (s.kind !== 'null') sources.push(s); // `k IN (1, NULL)` never matches the NULL
  }
  return sources.length === 1 ? { kind: 'one', source: sources[0]! } : { kind: 'list', sources };
}

/**
 * The elements of a one-dimensional array in PostgreSQL's text form (`{1,2}`, `{"a b",NULL}`,
 * `[0:1]={1,2}`); NULL elements as null. Null when the text is not such an array (nested
 * arrays included): the caller then refuses the statement rather than guessing.
 * https://www.postgresql.org/docs/current/arrays.html#ARRAYS-IO
 */
export function parseArrayText(text: string): (string | null)[] | null {
  let i = 0;
  const n = text.length;
  const skip = (): void => {
    while (i < n && /\s/.test(text[i]!)) i++;
  };
  skip();
  if (text[i] === '[') {
    const eq = text.indexOf('=', i);
    if (eq < 0 || !/^(\[[+-]?\d+:[+-]?\d+\])\s*$/.test(text.slice(i, eq))) return null;
    i = eq + 1;
    skip();
  }
  if (text[i] !== '{') return null;
  i++;
  const out: (string | null)[] = [];
  skip();
  if (text[i] === '}') {
    i++;
    skip();
    return i === n ? out : null;
  }
  for (;;) {
    skip();
    if (i >= n) return null;
    if (text[i] === '{') return null; // a multi-dimensional array
    let value = '';
    let quoted = false;
    if (text[i] === '"') {
      quoted = true;
      i++;
      for (;;) {
        if (i >= n) return null;
        const c = text[i]!;
        if (c === '"') break;
        if (c === '\\') {
          i++;
          if (i >= n) return null;
        }
        value += text[i];
        i++;
      }
      i++;
      skip();
    } else {
      let trailing = '';
      while (i < n && text[i] !== ',' && text[i] !== '}') {
        const c = text[i]!;
        if (c === '"' || c === '{') return null;
        if (c === '\\') {
          i++;
          if (i >= n) return null;
          value += trailing + text[i]!;
          trailing = '';
        } else if (/\s/.test(c)) {
          trailing += c;
        } else {
          value += trailing + c;
          trailing = '';
        }
        i++;
      }
      if (value === '') return null;
    }
    out.push(!quoted && value.toUpperCase() === 'NULL' ? null : value);
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] === '}') {
      i++;
      skip();
      return i === n ? out : null;
    }
    return null;
  }
}

/**
 * The elements of a one-dimensional array in PostgreSQL's binary send format (array_send):
 * ndim, has-null flag, element type, then per dimension its length and lower bound, then each
 * element as a length (-1 for NULL) and bytes. Null when malformed or not one-dimensional.
 */
export function parseArrayBinary(bytes: Buffer): (Buffer | null)[] | null {
  if (bytes.length < 12) return null;
  const ndim = bytes.readInt32BE(0);
  if (ndim === 0) return bytes.length === 12 ? [] : null;
  if (ndim !== 1 || bytes.length < 20) return null;
  const count = bytes.readInt32BE(12);
  if (count < 0 || count > (bytes.length - 20) / 4) return null;
  const out: (Buffer | null)[] = [];
  let at = 20;
  for (let k = 0; k < count; k++) {
    if (at + 4 > bytes.length) return null;
    const len = bytes.readInt32BE(at);
    at += 4;
    if (len === -1) {
      out.push(null);
      continue;
    }
    if (len < 0 || at + len > bytes.length) return null;
    out.push(bytes.subarray(at, at + len));
    at += len;
  }
  return at === bytes.length ? out : null;
}

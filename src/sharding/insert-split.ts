/**
 * The text of a multi-row `INSERT … VALUES (…), (…) …` cut into its head (up to VALUES), each
 * row and its tail (ON CONFLICT, RETURNING), so that the router can send each group an INSERT of
 * its own rows only, with the `$n` parameters renumbered from 1 in the order they appear.
 *
 * The cut uses the project's lexer (strings, quoted identifiers, dollar quotes and comments are
 * skipped whole), not the parser's locations: libpg-query reports byte offsets in UTF-8 and the
 * text is a JavaScript string, so they differ as soon as the text holds a non-ASCII character.
 * The parser has already counted the rows; a cut that does not find exactly that many rows is
 * no cut (the caller then refuses the INSERT rather than guess). Pure, no I/O.
 */
import { lex } from '../sql/lexer.js';
import { K } from '../sql/token.js';

/** Text, or a parameter by its 0-based index in the original Bind. */
export type Piece = string | number;

export interface InsertText {
  readonly head: readonly Piece[];
  readonly rows: readonly (readonly Piece[])[];
  readonly tail: readonly Piece[];
}

const OPEN = 0x28;
const CLOSE = 0x29;
const COMMA = 0x2c;
const SEMICOLON = 0x3b;

/** The cut of `sql` (one INSERT statement with `rowCount` VALUES rows), or null. */
export function cutInsert(sql: string, rowCount: number): InsertText | null {
  const t = lex(sql);
  let depth = 0;
  let values = -1;
  for (let i = 0; i < t.count; i++) {
    if (t.isChar(i, OPEN)) depth++;
    else if (t.isChar(i, CLOSE)) depth--;
    else if (depth === 0 && t.code(i) === K.ident && t.isWord(i, 'values')) {
      values = i;
      break;
    }
  }
  if (values < 0) return null;
  const rows: [number, number][] = []; // token index of each row's `(` and `)`
  let i = values + 1;
  for (;;) {
    if (i >= t.count || !t.isChar(i, OPEN)) return null;
    const open = i;
    let d = 0;
    for (; i < t.count; i++) {
      if (t.isChar(i, OPEN)) d++;
      else if (t.isChar(i, CLOSE) && --d === 0) break;
    }
    if (i >= t.count) return null;
    rows.push([open, i]);
    i++;
    if (i < t.count && t.isChar(i, COMMA)) {
      i++;
      continue;
    }
    break;
  }
  if (rows.length !== rowCount) return null;
  // Only one statement: a `;` may end it, nothing may follow.
  let end = sql.length;
  for (let j = i; j < t.count; j++) {
    if (t.isChar(j, SEMICOLON)) {
      for (let k = j + 1; k < t.count; k++) if (!t.isChar(k, SEMICOLON)) return null;
      end = t.start(j);
      break;
    }
  }
  // The parameters, in order; `pieces` is called for increasing ranges, so one cursor walks them.
  const params: [number, number, number][] = [];
  for (let k = 0; k < t.count; k++) {
    if (t.code(k) !== K.param) continue;
    const n = Number(t.raw(k).slice(1));
    if (Number.isSafeInteger(n) && n >= 1) params.push([t.start(k), t.end(k), n - 1]);
  }
  let cursor = 0;
  const pieces = (from: number, to: number): Piece[] => {
    const out: Piece[] = [];
    let at = from;
    while (cursor < params.length && params[cursor]![0] < from) cursor++;
    for (; cursor < params.length && params[cursor]![1] <= to; cursor++) {
      const [s, e, index] = params[cursor]!;
      if (s > at) out.push(sql.slice(at, s));
      out.push(index);
      at = e;
    }
    if (to > at) out.push(sql.slice(at, to));
    return out;
  };
  const firstRow = t.start(rows[0]![0]);
  const lastRow = t.end(rows[rows.length - 1]![1]);
  return {
    head: pieces(0, firstRow),
    rows: rows.map(([o, c]) => pieces(t.start(o), t.end(c))),
    tail: pieces(lastRow, end),
  };
}

/**
 * The INSERT of the given rows only: text and, for each `$n` of the new text, the 0-based index
 * of its value in the original Bind (parameters numbered from 1 in order of first appearance).
 */
export function assembleInsert(
  cut: InsertText,
  rows: readonly number[],
): { sql: string; paramIndexes: number[] } {
  const renumber = new Map<number, number>();
  const paramIndexes: number[] = [];
  let sql = '';
  const add = (pieces: readonly Piece[]): void => {
    for (const p of pieces) {
      if (typeof p === 'string') {
        sql += p;
        continue;
      }
      let n = renumber.get(p);
      if (n === undefined) {
        paramIndexes.push(p);
        n = paramIndexes.length;
        renumber.set(p, n);
      }
      sql += `$${n}`;
    }
  };
  add(cut.head);
  rows.forEach((r, i) => {
    if (i > 0) sql += ', ';
    add(cut.rows[r]!);
  });
  add(cut.tail);
  return { sql, paramIndexes };
}

/**
 * A statement text's shape: the text with its simple literals (plain integers in int4's range
 * and plain '…' strings) cut out, so that texts differing only in those literals share a key —
 * as pgbench's simple protocol and drivers that inline values send them (`… WHERE aid = 123`)
 * — and the literals' values, read as PostgreSQL's parser reads them. The shard router plans a
 * shape once (shard-router.ts, plan-template.ts) instead of parsing every such text. One pass of
 * the lexer (sql/lexer.ts), no parse.
 *
 * Only literals whose value the parser takes verbatim are cut: an integer `0` or without leading
 * zeros, at most 2147483647 (larger ones, decimals and exponents are numeric constants of
 * another kind, kept in the key); a '…' string with no prefix (E'', U&'', B'', X'', N'' and
 * dollar quotes are kept), its '' undone. A text with a Bind parameter ($n), a NUL character, or
 * an unterminated quote or comment has no shape (null), nor a text without such a literal.
 */
import { lex } from '../sql/lexer.js';
import { K } from '../sql/token.js';

/** What a literal was: an integer or a string. */
export type LiteralKind = 'int' | 'string';

export interface LiteralShape {
  /**
   * The text with each cut literal replaced by NUL and a letter of its kind (`i`, `s`): equal
   * for texts that differ only in the values of those literals.
   */
  readonly key: string;
  /** The text around the literals: `parts.length === raws.length + 1`. */
  readonly parts: readonly string[];
  /** Each literal as written. */
  readonly raws: readonly string[];
  readonly kinds: readonly LiteralKind[];
  /** Each literal's value as the parser reads it (the digits; the string's content). */
  readonly values: readonly string[];
}

const INT4_MAX = 2147483647;
const QUOTE = 0x27;
const NUL = '\0';
const INT_MARK = `${NUL}i`;
const STRING_MARK = `${NUL}s`;

/** Whether `raw` is an integer the parser keeps as an int4 constant spelled as written. */
function plainInt(raw: string): boolean {
  const n = raw.length;
  if (n === 0 || n > 10) return false;
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  if (n > 1 && raw.charCodeAt(0) === 0x30) return false;
  return n < 10 || Number(raw) <= INT4_MAX;
}

/**
 * A shape as literalShape() makes it: the key and the values at once (what a cache hit needs),
 * the text around the literals and the literals as written only when asked (a new shape's probe).
 */
class Shape implements LiteralShape {
  constructor(
    readonly key: string,
    readonly kinds: readonly LiteralKind[],
    readonly values: readonly string[],
    private readonly sql: string,
    /** Each literal's start and end in `sql`, in pairs. */
    private readonly bounds: readonly number[],
  ) {}

  get parts(): readonly string[] {
    const b = this.bounds;
    const parts: string[] = [];
    let from = 0;
    for (let i = 0; i < b.length; i += 2) {
      parts.push(this.sql.slice(from, b[i]));
      from = b[i + 1]!;
    }
    parts.push(this.sql.slice(from));
    return parts;
  }

  get raws(): readonly string[] {
    const b = this.bounds;
    const raws: string[] = [];
    for (let i = 0; i < b.length; i += 2) raws.push(this.sql.slice(b[i], b[i + 1]));
    return raws;
  }
}

/** The shape of `sql`, or null when it has none (see the module comment). */
export function literalShape(sql: string, standardConformingStrings = true): LiteralShape | null {
  if (sql.includes(NUL)) return null;
  const t = lex(sql, { standardConformingStrings });
  if (t.unterminated) return null;
  const bounds: number[] = [];
  const kinds: LiteralKind[] = [];
  const values: string[] = [];
  let key = '';
  let from = 0;
  for (let i = 0; i < t.count; i++) {
    const code = t.code(i);
    if (code === K.param) return null;
    let kind: LiteralKind | null = null;
    let value = '';
    const start = t.start(i);
    const end = t.end(i);
    if (code === K.number) {
      const raw = sql.slice(start, end);
      if (plainInt(raw)) {
        kind = 'int';
        value = raw;
      }
    } else if (code === K.string && standardConformingStrings && sql.charCodeAt(start) === QUOTE) {
      kind = 'string';
      const body = sql.slice(start + 1, end - 1);
      value = body.includes("'") ? body.replaceAll("''", "'") : body;
    }
    if (kind === null) continue;
    bounds.push(start, end);
    kinds.push(kind);
    values.push(value);
    key += sql.slice(from, start) + (kind === 'int' ? INT_MARK : STRING_MARK);
    from = end;
  }
  if (bounds.length === 0) return null;
  key += sql.slice(from);
  return new Shape(key, kinds, values, sql, bounds);
}

/** The text of `shape` with `raws` in place of its literals (the shape's own give back its text). */
export function withLiterals(shape: Pick<LiteralShape, 'parts'>, raws: readonly string[]): string {
  let s = shape.parts[0] ?? '';
  for (let i = 0; i < raws.length; i++) s += raws[i]! + (shape.parts[i + 1] ?? '');
  return s;
}

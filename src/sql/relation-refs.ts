/**
 * The names a statement text may use to reach a relation, for the hidden-code registry
 * (src/proxy/backend/hidden-code.ts): a view's body, triggers, rules, row-level security
 * policies and column defaults run user code that the text never calls. Matching is lexical and
 * conservative: every identifier of the text counts (a column named like a view makes the text
 * "may reach it"), under any schema. Besides, whether the text names a relation outside the
 * system catalogs at all, which is what counts while the registry is not loaded (fail safe),
 * whether it is DDL that may change the registry, and whether it may fire event triggers. For the
 * user code reached without a call or a relation in the text: the operators it uses (a user
 * operator's function), the names written after a `.` (attribute notation `t.f` calls `f(t)`),
 * and whether it is bare (nothing that could reach user code: no identifier but statements' first
 * words, no operator, no `::`). A lexer pass: linear, never throws.
 */
import { K } from './token.js';
import { lex } from './lexer.js';
import type { TokenList } from './token-list.js';

export interface RelationRefs {
  /** Every identifier of the text, once each (folded when unquoted, exact when quoted). */
  readonly names: readonly string[];
  /**
   * The text names a relation that may not be a system catalog: an identifier after FROM, JOIN,
   * INTO, UPDATE, TABLE, ONLY, COPY, TRUNCATE, VIEW or a comma, unless it is (or is qualified
   * by) pg_catalog, information_schema or a pg_… name.
   */
  readonly userRelation: boolean;
  /** A CREATE, ALTER or DROP statement: it may add or remove hidden code. */
  readonly ddl: boolean;
  /**
   * A statement that may fire event triggers: one starting with a word other than those of DML,
   * queries, transaction control and the session commands, or a SELECT … INTO (a new table).
   */
  readonly utility: boolean;
  /** Every operator token once (`=`, `===`, `@>`), as PostgreSQL's scanner splits them. */
  readonly operators: readonly string[];
  /** Every identifier written right after a `.` (`t.f`, `(t).f`, `s.t`), once each. */
  readonly dotted: readonly string[];
  /**
   * Only statements' first words, literals, parameters and punctuation other than `::`: nothing
   * names a relation, type or function, nothing uses an operator or a cast (`SELECT 1`, `BEGIN`).
   */
  readonly bare: boolean;
}

/** First words of statements that never fire an event trigger (SELECT … INTO aside). */
const NO_EVENT = new Set(
  (
    'select insert update delete merge with values table begin start commit end rollback abort ' +
    'savepoint release set show reset explain copy lock fetch move close declare listen notify ' +
    'unlisten prepare execute deallocate discard checkpoint vacuum analyze call do load'
  ).split(' '),
);

const RELATION_AFTER = new Set([
  'from',
  'join',
  'into',
  'update',
  'table',
  'only',
  'copy',
  'truncate',
  'view',
]);
const DDL = new Set(['create', 'alter', 'drop']);
const SEMICOLON = 0x3b;
const COMMA = 0x2c;
const DOT = 0x2e;

const NONE: readonly string[] = [];

function systemName(n: string): boolean {
  return n.startsWith('pg_') || n === 'information_schema';
}

/** The relation references of `sql` (see RelationRefs). */
export function relationRefs(sql: string): RelationRefs {
  return relationRefsOf(lex(sql));
}

/** The same, for text already lexed. */
export function relationRefsOf(t: TokenList): RelationRefs {
  const names = new Set<string>();
  let userRelation = false;
  let ddl = false;
  let utility = false;
  let first = '';
  let operators: Set<string> | null = null;
  let dotted: Set<string> | null = null;
  let bare = true;
  for (let i = 0; i < t.count; i++) {
    const code = t.code(i);
    if (code !== K.ident && code !== K.quotedIdent) {
      if (code === K.op) {
        (operators ??= new Set()).add(t.raw(i));
        bare = false;
      } else if (t.isChar(i, SEMICOLON)) first = '';
      else if (code === K.punct && t.isSymbol(i, '::')) bare = false;
      continue;
    }
    const name = t.name(i) ?? '';
    names.add(name);
    if (i > 0 && t.isChar(i - 1, DOT)) (dotted ??= new Set()).add(name);
    if (i === 0 || t.isChar(i - 1, SEMICOLON)) {
      first = code === K.ident ? name : '';
      if (DDL.has(first)) ddl = true;
      if (!NO_EVENT.has(first)) utility = true;
      continue;
    }
    bare = false;
    if (code === K.ident && name === 'into' && (first === 'select' || first === 'with')) utility = true;
    if (userRelation || systemName(name)) continue;
    if (code === K.ident && (name === 'select' || name === 'lateral' || name === 'only' || name === 'values'))
      continue;
    const prev = t.word(i - 1);
    if ((prev !== undefined && RELATION_AFTER.has(prev)) || t.isChar(i - 1, COMMA)) userRelation = true;
  }
  return {
    names: [...names],
    userRelation,
    ddl,
    utility,
    operators: operators ? [...operators] : NONE,
    dotted: dotted ? [...dotted] : NONE,
    bare,
  };
}

const DDL_TEXT = /\b(?:create|alter|drop)\b/i;

/**
 * True when `sql` is a CREATE, ALTER or DROP statement (or holds one): a regex test first, then
 * the lexer's verdict (`refs`, called only when the regex matches, so callers can pass a cache).
 */
export function isDdlText(sql: string, refs: (sql: string) => RelationRefs): boolean {
  return DDL_TEXT.test(sql) && refs(sql).ddl;
}

/**
 * The names a statement text may use to reach a relation, for the hidden-code registry
 * (src/proxy/backend/hidden-code.ts): a view's body, triggers, rules, row-level security
 * policies and column defaults run user code that the text never calls. Matching is lexical and
 * conservative: every identifier of the text counts (a column named like a view makes the text
 * "may reach it"), under any schema. Besides, whether the text names a relation outside the
 * system catalogs at all, which is what counts while the registry is not loaded (fail safe), and
 * whether it is DDL that may change the registry. A lexer pass: linear, never throws.
 */
import { K } from './token.js';
import { lex } from './lexer.js';

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
}

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

function systemName(n: string): boolean {
  return n.startsWith('pg_') || n === 'information_schema';
}

/** The relation references of `sql` (see RelationRefs). */
export function relationRefs(sql: string): RelationRefs {
  const t = lex(sql);
  const names = new Set<string>();
  let userRelation = false;
  let ddl = false;
  for (let i = 0; i < t.count; i++) {
    const code = t.code(i);
    if (code !== K.ident && code !== K.quotedIdent) continue;
    const name = t.name(i) ?? '';
    names.add(name);
    if (i === 0 || t.isChar(i - 1, SEMICOLON)) {
      if (code === K.ident && DDL.has(name)) ddl = true;
      continue;
    }
    if (userRelation || systemName(name)) continue;
    if (code === K.ident && (name === 'select' || name === 'lateral' || name === 'only' || name === 'values'))
      continue;
    const prev = t.word(i - 1);
    if ((prev !== undefined && RELATION_AFTER.has(prev)) || t.isChar(i - 1, COMMA)) userRelation = true;
  }
  return { names: [...names], userRelation, ddl };
}

/**
 * Splits a simple-protocol Query text into its statements at the semicolons the server would
 * treat as separators: outside strings, quoted identifiers, dollar quotes and comments (the lexer
 * settles those), outside parentheses (CREATE RULE ... DO (a; b) keeps its actions together),
 * and outside the BEGIN ... END body of a SQL-standard CREATE FUNCTION/PROCEDURE. The last two
 * follow psql's own splitter, which makes the same choices for the same reasons
 * (src/fe_utils/psqlscan.l, PostgreSQL 14+).
 */
import type { LexOptions } from './token.js';
import { K } from './token.js';
import type { TokenList } from './token-list.js';
import { lex } from './lexer.js';

export interface Statement {
  /** The statement from its first token to its last, comments inside it included. */
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

const SEMICOLON = 0x3b;
const OPEN = 0x28;
const CLOSE = 0x29;

/** Statement texts of `sql`, empty statements dropped, trimmed to their first and last tokens. */
export function splitStatements(sql: string, options: LexOptions = {}): Statement[] {
  const tokens = lex(sql, options);
  const out: Statement[] = [];
  eachStatement(tokens, (first, last) => {
    const start = tokens.start(first);
    const end = tokens.end(last - 1);
    out.push({ text: sql.slice(start, end), start, end });
  });
  return out;
}

/**
 * Calls `visit` with the token range `[first, last)` of each non-empty statement in `tokens`, in
 * order. A callback rather than an array of ranges: a bulk load can hold a million statements.
 */
export function eachStatement(tokens: TokenList, visit: (first: number, last: number) => void): void {
  const body = new AtomicBodyTracker(tokens);
  let first = 0;
  let depth = 0;
  for (let i = 0; i < tokens.count; i++) {
    if (tokens.code(i) === K.ident) {
      body.see(i, depth);
      continue;
    }
    const ch = tokens.charOf(i);
    if (ch === OPEN) depth++;
    else if (ch === CLOSE) depth = Math.max(0, depth - 1);
    else if (ch === SEMICOLON && depth === 0 && body.depth === 0) {
      if (i > first) visit(first, i);
      first = i + 1;
      body.reset();
    }
  }
  if (tokens.count > first) visit(first, tokens.count);
}

/**
 * Tracks BEGIN ... END nesting inside a statement that starts CREATE [OR REPLACE]
 * FUNCTION|PROCEDURE, where a SQL-standard body (BEGIN ATOMIC ... END) holds semicolons. CASE
 * also ends with END, so it counts once inside such a body. Like psql, only the first four
 * unquoted words decide whether the statement is one of these.
 */
class AtomicBodyTracker {
  depth = 0;
  /** Unquoted words seen so far in this statement, counted up to 4. */
  private words = 0;
  /** 0: undecided, 1: CREATE seen, 2: CREATE OR, 3: CREATE OR REPLACE, 4: a routine, -1: not. */
  private state = 0;

  constructor(private readonly tokens: TokenList) {}

  reset(): void {
    this.depth = 0;
    this.words = 0;
    this.state = 0;
  }

  see(i: number, parenDepth: number): void {
    if (this.words < 4) {
      this.words++;
      this.state = this.advance(i);
    }
    if (this.state !== 4 || parenDepth > 0) return;
    const t = this.tokens;
    if (t.isWord(i, 'begin')) this.depth++;
    else if (this.depth > 0 && t.isWord(i, 'case')) this.depth++;
    else if (this.depth > 0 && t.isWord(i, 'end')) this.depth--;
  }

  private advance(i: number): number {
    const t = this.tokens;
    const routine = t.isWord(i, 'function') || t.isWord(i, 'procedure');
    switch (this.state) {
      case 0:
        return t.isWord(i, 'create') ? 1 : -1;
      case 1:
        return routine ? 4 : t.isWord(i, 'or') ? 2 : -1;
      case 2:
        return t.isWord(i, 'replace') ? 3 : -1;
      case 3:
        return routine ? 4 : -1;
      default:
        return this.state;
    }
  }
}

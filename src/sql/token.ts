/**
 * The vocabulary of the SQL lexer: token kinds, the object shape handed to callers that want an
 * array of tokens, and comments (kept apart from tokens because PostgreSQL treats them as
 * whitespace, yet routing hints live in them). Keywords are not a kind of their own: as in
 * PostgreSQL's scanner, a keyword is an unquoted identifier that the grammar happens to know.
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html
 */

export type TokenKind =
  | 'ident' // unquoted identifier or keyword; value is ASCII-lowercased, as PostgreSQL folds it
  | 'quoted_ident' // "..." or U&"..."; value is the name with escapes undone, case kept
  | 'string' // '...', E'...', U&'...', B'...', X'...', N'...'; value is the decoded content
  | 'dollar_string' // $$...$$ or $tag$...$tag$; value is the body
  | 'number'
  | 'param' // $1, $2 ...
  | 'op' // a run of operator characters such as = < >= || @>
  | 'punct' // , ( ) [ ] ; : . :: := ..
  | 'other'; // a character PostgreSQL's scanner would reject (\ { } control characters)

/** Kinds in the order of their numeric codes inside a `TokenList`. */
export const TOKEN_KINDS: readonly TokenKind[] = [
  'ident',
  'quoted_ident',
  'string',
  'dollar_string',
  'number',
  'param',
  'op',
  'punct',
  'other',
];

export const K = {
  ident: 0,
  quotedIdent: 1,
  string: 2,
  dollarString: 3,
  number: 4,
  param: 5,
  op: 6,
  punct: 7,
  other: 8,
} as const;

export type KindCode = (typeof K)[keyof typeof K];

export interface Token {
  readonly kind: TokenKind;
  /** Offset of the first UTF-16 code unit in the original text. */
  readonly start: number;
  /** Offset just past the token; `text.slice(start, end)` is its raw spelling. */
  readonly end: number;
  readonly value: string;
}

export interface SqlComment {
  readonly start: number;
  readonly end: number;
  /** The body without `--`, `/*` or `*\/`; nested comment markers stay in it. */
  readonly text: string;
}

export interface LexOptions {
  /**
   * PostgreSQL's `standard_conforming_strings` (on by default since 9.1). When off, backslashes
   * escape in plain '...' strings too, which changes where such a string ends.
   */
  readonly standardConformingStrings?: boolean;
}

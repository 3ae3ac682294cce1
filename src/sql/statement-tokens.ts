/**
 * A window on the tokens of one statement, `[first, last)` of a TokenList, with lookups that
 * answer "nothing" outside the window. The statement analyses look ahead freely (`i + 1`,
 * `i + 2`) and would otherwise each need bounds checks to avoid reading the next statement.
 */
import type { TokenList } from './token-list.js';

export class StatementTokens {
  constructor(
    readonly tokens: TokenList,
    readonly first: number,
    readonly last: number,
  ) {}

  has(i: number): boolean {
    return i >= this.first && i < this.last;
  }

  code(i: number): number {
    return this.has(i) ? this.tokens.code(i) : -1;
  }

  /** The unquoted keyword at `i`, lowercased; undefined for anything else. */
  word(i: number): string | undefined {
    return this.has(i) ? this.tokens.word(i) : undefined;
  }

  isWord(i: number, word: string): boolean {
    return this.has(i) && this.tokens.isWord(i, word);
  }

  /** True when `i` is one of `words` (unquoted, case-insensitive). */
  isAnyWord(i: number, words: readonly string[]): boolean {
    return words.some((w) => this.isWord(i, w));
  }

  /** The name an identifier at `i` stands for: unquoted folded, quoted exact. */
  name(i: number): string | undefined {
    return this.has(i) ? this.tokens.name(i) : undefined;
  }

  /** Character code of a one-character punctuation/operator token at `i`, else -1. */
  charOf(i: number): number {
    return this.has(i) ? this.tokens.charOf(i) : -1;
  }

  value(i: number): string {
    return this.has(i) ? this.tokens.value(i) : '';
  }

  /** Source text from token `i` to the end of the statement's last token. */
  textFrom(i: number): string {
    if (!this.has(i)) return '';
    return this.tokens.text.slice(this.tokens.start(i), this.tokens.end(this.last - 1));
  }

  text(): string {
    return this.textFrom(this.first);
  }

  /** Index just past the `)` matching the `(` at `open`, or `last` if it never closes. */
  skipParens(open: number): number {
    let depth = 0;
    for (let i = open; i < this.last; i++) {
      const c = this.charOf(i);
      if (c === OPEN) depth++;
      else if (c === CLOSE && --depth === 0) return i + 1;
    }
    return this.last;
  }
}

export const OPEN = 0x28;
export const CLOSE = 0x29;
export const COMMA = 0x2c;
export const DOT = 0x2e;
export const EQUALS = 0x3d;
export const STAR = 0x2a;
export const SEMICOLON = 0x3b;

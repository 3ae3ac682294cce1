/**
 * Compact storage for the tokens of one SQL text: kinds and offsets in typed arrays, values
 * decoded only when asked for. A many-megabyte Query (a bulk INSERT) has millions of tokens, and
 * the analyses look at the values of only a handful, so one object per token would cost far
 * more than the scan itself. Comments are kept the same way.
 */
import type { KindCode, SqlComment, Token, TokenKind } from './token.js';
import { K, TOKEN_KINDS } from './token.js';
import { dollarStringValue, foldIdentifier, quotedIdentifierValue, stringValue } from './token-value.js';

export class TokenList {
  /** Number of tokens. */
  count = 0;
  /** Number of comments. */
  commentCount = 0;
  /** Set when input ended inside a string, quoted identifier, dollar quote or block comment. */
  unterminated = false;

  private kinds: Uint8Array;
  private starts: Int32Array;
  private ends: Int32Array;
  private commentStarts = new Int32Array(4);
  private commentEnds = new Int32Array(4);
  private commentOpen = new Uint8Array(4);

  constructor(
    readonly text: string,
    readonly standardConformingStrings: boolean,
  ) {
    // Typical SQL has a token every four to eight characters; start near that to avoid regrowth.
    const capacity = Math.max(16, text.length >> 3);
    this.kinds = new Uint8Array(capacity);
    this.starts = new Int32Array(capacity);
    this.ends = new Int32Array(capacity);
  }

  push(kind: KindCode, start: number, end: number): void {
    if (this.count === this.kinds.length) {
      this.kinds = grow(this.kinds, new Uint8Array(this.count * 2));
      this.starts = grow(this.starts, new Int32Array(this.count * 2));
      this.ends = grow(this.ends, new Int32Array(this.count * 2));
    }
    this.kinds[this.count] = kind;
    this.starts[this.count] = start;
    this.ends[this.count] = end;
    this.count++;
  }

  /** `closed` is false for a block comment cut off by the end of input. */
  pushComment(start: number, end: number, closed = true): void {
    if (this.commentCount === this.commentStarts.length) {
      this.commentStarts = grow(this.commentStarts, new Int32Array(this.commentCount * 2));
      this.commentEnds = grow(this.commentEnds, new Int32Array(this.commentCount * 2));
      this.commentOpen = grow(this.commentOpen, new Uint8Array(this.commentCount * 2));
    }
    this.commentStarts[this.commentCount] = start;
    this.commentEnds[this.commentCount] = end;
    this.commentOpen[this.commentCount] = closed ? 0 : 1;
    this.commentCount++;
  }

  /** Kind code of token `i`, or -1 past the end (so lookahead needs no bounds checks). */
  code(i: number): number {
    return i >= 0 && i < this.count ? (this.kinds[i] ?? -1) : -1;
  }

  kind(i: number): TokenKind | undefined {
    return TOKEN_KINDS[this.code(i)];
  }

  start(i: number): number {
    return this.starts[i] ?? this.text.length;
  }

  end(i: number): number {
    return this.ends[i] ?? this.text.length;
  }

  raw(i: number): string {
    return i >= 0 && i < this.count ? this.text.slice(this.start(i), this.end(i)) : '';
  }

  /** The token's value as described on `TokenKind`; '' past the end. */
  value(i: number): string {
    const raw = this.raw(i);
    switch (this.code(i)) {
      case K.ident:
        return foldIdentifier(raw);
      case K.quotedIdent:
        return quotedIdentifierValue(raw);
      case K.string:
        return stringValue(raw, this.standardConformingStrings);
      case K.dollarString:
        return dollarStringValue(raw);
      default:
        return raw;
    }
  }

  /** True when token `i` is the unquoted keyword `word` (given in lower case). */
  isWord(i: number, word: string): boolean {
    const start = this.start(i);
    if (this.code(i) !== K.ident || this.end(i) - start !== word.length) return false;
    // Compared in place: this runs for most identifiers of a statement, so no slicing.
    for (let k = 0; k < word.length; k++) {
      let c = this.text.charCodeAt(start + k);
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      if (c !== word.charCodeAt(k)) return false;
    }
    return true;
  }

  /** The keyword at `i` in lower case, or undefined when it is not an unquoted identifier. */
  word(i: number): string | undefined {
    return this.code(i) === K.ident ? this.value(i) : undefined;
  }

  /** The name an identifier token stands for (folded or exact), or undefined for other kinds. */
  name(i: number): string | undefined {
    const c = this.code(i);
    return c === K.ident || c === K.quotedIdent ? this.value(i) : undefined;
  }

  /** True when token `i` is the punctuation or operator spelled exactly `p`. */
  isSymbol(i: number, p: string): boolean {
    const c = this.code(i);
    return (c === K.punct || c === K.op) && this.end(i) - this.start(i) === p.length && this.raw(i) === p;
  }

  /** The character code of a one-character punctuation or operator token, else -1. */
  charOf(i: number): number {
    const c = this.code(i);
    return (c === K.punct || c === K.op) && this.end(i) - this.start(i) === 1
      ? this.text.charCodeAt(this.start(i))
      : -1;
  }

  /** Fast test for a one-character punctuation or operator token, by character code. */
  isChar(i: number, charCode: number): boolean {
    const c = this.code(i);
    return (
      (c === K.punct || c === K.op) &&
      this.end(i) - this.start(i) === 1 &&
      this.text.charCodeAt(this.start(i)) === charCode
    );
  }

  token(i: number): Token {
    return { kind: this.kind(i) ?? 'other', start: this.start(i), end: this.end(i), value: this.value(i) };
  }

  comment(i: number): SqlComment {
    const start = this.commentStarts[i] ?? 0;
    const end = this.commentEnds[i] ?? 0;
    const raw = this.text.slice(start, end);
    const closed = this.commentOpen[i] === 0;
    const text = raw.startsWith('--') ? raw.slice(2) : raw.slice(2, closed ? -2 : undefined);
    return { start, end, text };
  }
}

function grow<T extends Uint8Array | Int32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

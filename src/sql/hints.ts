/**
 * Routing hints written in SQL comments, `/* pgscale:replica *\/` or `-- pgscale:primary`, which
 * let an application steer a query without changing its SQL. Only real comments count (the
 * lexer decides, so the same text inside a string is data), and the first hint in the text wins.
 */
import type { LexOptions } from './token.js';
import type { TokenList } from './token-list.js';
import { lex } from './lexer.js';

export type RoutingHint = 'primary' | 'replica' | 'any';

const HINT = /(?:^|\s)pgscale:(primary|replica|any)(?=\s|$)/i;

export function routingHint(sql: string, options: LexOptions = {}): RoutingHint | null {
  return routingHintOf(lex(sql, options));
}

/** The same, for text already lexed (the proxy lexes each Query once). */
export function routingHintOf(tokens: TokenList): RoutingHint | null {
  for (let i = 0; i < tokens.commentCount; i++) {
    const m = HINT.exec(tokens.comment(i).text);
    if (m?.[1] !== undefined) return m[1].toLowerCase() as RoutingHint;
  }
  return null;
}

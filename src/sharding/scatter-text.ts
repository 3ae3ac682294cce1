/**
 * Where the parts of one SELECT's text are (for the scatter planner, scatter-plan.ts): the
 * parser's node locations (UTF-8 byte offsets) turned into character offsets, the tokens at
 * paren depth 0 that start its clauses, the extents of function calls and column references,
 * lists split at their top-level commas; and the column name PostgreSQL gives a target without
 * an alias (FigureColname in parse_target.c), for the node kinds the planner lets through. Pure.
 */
import { tokenize } from '../sql/lexer.js';
import type { Token } from '../sql/token.js';
import { isObj, unwrap } from '../sql/tree-nodes.js';

/** A piece of the text: [start, end) in characters. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

export class StatementText {
  readonly tokens: Token[];
  /** Paren depth before each token. */
  private readonly depth: number[];
  private readonly byStart = new Map<number, number>();
  /** Character offset of each UTF-8 byte offset (null: the text is ASCII, they are equal). */
  private readonly charOf: Int32Array | null;

  constructor(readonly sql: string) {
    const lexed = tokenize(sql);
    this.tokens = lexed.tokens;
    this.depth = [];
    let d = 0;
    for (let i = 0; i < this.tokens.length; i++) {
      const t = this.tokens[i]!;
      if (t.kind === 'punct' && (t.value === ')' || t.value === ']')) d--;
      this.depth.push(d);
      if (t.kind === 'punct' && (t.value === '(' || t.value === '[')) d++;
      this.byStart.set(t.start, i);
    }
    const bytes = Buffer.byteLength(sql, 'utf8');
    if (bytes === sql.length) this.charOf = null;
    else {
      this.charOf = new Int32Array(bytes + 1);
      let b = 0;
      for (let c = 0; c < sql.length; c++) {
        const code = sql.codePointAt(c)!;
        const n = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
        for (let k = 0; k < n; k++) this.charOf[b + k] = c;
        b += n;
        if (code >= 0x10000) c++;
      }
      this.charOf[bytes] = sql.length;
    }
  }

  /** The character offset of a parser location. */
  at(location: number): number {
    return this.charOf === null ? location : (this.charOf[location] ?? -1);
  }

  /** The index of the token starting at character `pos`, or -1. */
  tokenAt(pos: number): number {
    return this.byStart.get(pos) ?? -1;
  }

  depthOf(i: number): number {
    return this.depth[i]!;
  }

  /** The token is the keyword `word` (an unquoted identifier). */
  isWord(i: number, word: string): boolean {
    const t = this.tokens[i];
    return t !== undefined && t.kind === 'ident' && t.value === word;
  }

  isPunct(i: number, p: string): boolean {
    const t = this.tokens[i];
    return t !== undefined && t.kind === 'punct' && t.value === p;
  }

  /** The index of the `)` closing the `(` at `open`, or -1. */
  closing(open: number): number {
    const d = this.depth[open]!;
    for (let i = open + 1; i < this.tokens.length; i++)
      if (this.depth[i] === d && this.isPunct(i, ')')) return i;
    return -1;
  }

  /** The text of a span. */
  text(s: Span): string {
    return this.sql.slice(s.start, s.end);
  }

  /** The span of tokens [from, to) (token indexes). */
  spanOf(from: number, to: number): Span {
    return { start: this.tokens[from]!.start, end: this.tokens[to - 1]!.end };
  }

  /**
   * A function call's extent from its location: the (qualified) name, its parenthesized
   * arguments and a FILTER (…) clause. Null for what is not that simple (OVER, WITHIN GROUP).
   */
  callExtent(location: number): Span | null {
    let i = this.tokenAt(this.at(location));
    if (i < 0) return null;
    const first = i;
    while (i < this.tokens.length && !this.isPunct(i, '(')) {
      const t = this.tokens[i]!;
      if (t.kind !== 'ident' && t.kind !== 'quoted_ident' && !this.isPunct(i, '.')) return null;
      i++;
    }
    let close = this.closing(i);
    if (close < 0) return null;
    if (this.isWord(close + 1, 'filter') && this.isPunct(close + 2, '(')) close = this.closing(close + 2);
    if (close < 0 || this.isWord(close + 1, 'over') || this.isWord(close + 1, 'within')) return null;
    return this.spanOf(first, close + 1);
  }

  /** A column reference's extent from its location (`a`, `t.a`, `"S".t.a`). */
  columnExtent(location: number): Span | null {
    let i = this.tokenAt(this.at(location));
    if (i < 0) return null;
    const first = i;
    const name = (k: number) => {
      const t = this.tokens[k];
      return t !== undefined && (t.kind === 'ident' || t.kind === 'quoted_ident');
    };
    if (!name(i)) return null;
    while (this.isPunct(i + 1, '.') && name(i + 2)) i += 2;
    if (this.isPunct(i + 1, '.') || this.isPunct(i + 1, '(')) return null;
    return this.spanOf(first, i + 1);
  }

  /** The first token index ≥ `from` at depth 0 that starts one of `words` (a clause), else the end. */
  clauseEnd(from: number, words: readonly string[]): number {
    for (let i = from; i < this.tokens.length; i++) {
      if (this.depth[i] !== 0) continue;
      if (this.isPunct(i, ';')) return i;
      const t = this.tokens[i]!;
      if (t.kind !== 'ident' || !words.includes(t.value)) continue;
      // GROUP and ORDER start a clause only before BY (WITHIN GROUP is refused elsewhere).
      if ((t.value === 'group' || t.value === 'order') && !this.isWord(i + 1, 'by')) continue;
      return i;
    }
    return this.tokens.length;
  }

  /** Tokens [from, to) split at their depth-0 commas: the spans of the items. */
  items(from: number, to: number): Span[] | null {
    const out: Span[] = [];
    let s = from;
    for (let i = from; i <= to; i++) {
      if (i === to || (this.depth[i] === 0 && this.isPunct(i, ','))) {
        if (i === s) return null;
        out.push(this.spanOf(s, i));
        s = i + 1;
      }
    }
    return out;
  }

  /** Token indexes [from, to) of a span. */
  tokenRange(s: Span): [number, number] {
    const from = this.tokenAt(s.start);
    let to = from;
    while (to < this.tokens.length && this.tokens[to]!.start < s.end) to++;
    return [from, to];
  }
}

/** The smallest parser location in a subtree (-1: none). */
export function firstLocation(node: unknown): number {
  let min = -1;
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) {
      for (const x of n) visit(x);
      return;
    }
    if (!isObj(n)) return;
    for (const [k, v] of Object.entries(n)) {
      if (k === 'location' && typeof v === 'number' && v >= 0 && (min < 0 || v < min)) min = v;
      else if (typeof v === 'object') visit(v);
    }
  };
  visit(node);
  return min;
}

/** Two parse subtrees are the same expression (locations aside). */
export function sameNode(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, dropLocations) === JSON.stringify(b, dropLocations);
}

function dropLocations(key: string, value: unknown): unknown {
  return key === 'location' || key.endsWith('_start') || key.endsWith('_end') ? undefined : value;
}

/**
 * The name PostgreSQL gives a target without an alias, or null for a node kind not handled
 * (the planner then leaves the statement to the general path). `?column?` when it has none.
 */
export function figureColname(node: unknown): string | null {
  const r = figure(node);
  return r === null ? null : r.strength === 0 ? '?column?' : r.name;
}

function figure(node: unknown): { name: string; strength: number } | null {
  const n = unwrap(node);
  if (n === null) return null;
  const [kind, b] = n;
  const lastString = (list: unknown): string | null => {
    if (!Array.isArray(list) || list.length === 0) return null;
    const s = unwrap(list[list.length - 1]);
    return s !== null && s[0] === 'String' && typeof s[1].sval === 'string' ? s[1].sval : null;
  };
  switch (kind) {
    case 'ColumnRef': {
      const s = lastString(b.fields);
      return s === null ? { name: '', strength: 0 } : { name: s, strength: 2 };
    }
    case 'A_Indirection': {
      // The last field name, subscripts and `*` passed over.
      const names = (Array.isArray(b.indirection) ? b.indirection : []).map((x) => lastString([x]));
      const s = names.filter((x) => x !== null).pop();
      return s === undefined ? figure(b.arg) : { name: s, strength: 2 };
    }
    case 'FuncCall': {
      const s = lastString(b.funcname);
      return s === null ? null : { name: s, strength: 2 };
    }
    case 'A_Expr':
      return b.kind === 'AEXPR_NULLIF' ? { name: 'nullif', strength: 2 } : { name: '', strength: 0 };
    case 'TypeCast': {
      const inner = figure(b.arg);
      if (inner === null) return null;
      if (inner.strength > 1) return inner;
      const tn = isObj(b.typeName) ? b.typeName : null;
      const s = tn === null ? null : lastString(tn.names);
      return s === null ? inner : { name: s, strength: 1 };
    }
    case 'CollateClause':
      return figure(b.arg);
    case 'CaseExpr': {
      const inner = b.defresult === undefined ? { name: '', strength: 0 } : figure(b.defresult);
      if (inner === null) return null;
      return inner.strength > 1 ? inner : { name: 'case', strength: 1 };
    }
    case 'A_ArrayExpr':
      return { name: 'array', strength: 2 };
    case 'RowExpr':
      return { name: 'row', strength: 2 };
    case 'CoalesceExpr':
      return { name: 'coalesce', strength: 2 };
    case 'MinMaxExpr':
      return { name: b.op === 'IS_GREATEST' ? 'greatest' : 'least', strength: 2 };
    case 'A_Const':
    case 'BoolExpr':
    case 'NullTest':
    case 'BooleanTest':
    case 'ParamRef':
      return { name: '', strength: 0 };
    default:
      return null;
  }
}

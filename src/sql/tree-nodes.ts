/**
 * Helpers for libpg-query's parse tree in its JSON form, where every node is an object with one
 * key naming its type (`{ SelectStmt: {…} }`) and some fields hold bare bodies (RangeVar under
 * `relation`). Used by the structural readers (statement-shape.ts, where-equalities.ts).
 */
export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The single key of a node object and its body, e.g. ['SelectStmt', {...}]. */
export function unwrap(node: unknown): [string, Obj] | null {
  if (!isObj(node)) return null;
  for (const key in node) {
    const body = node[key];
    return isObj(body) ? [key, body] : null;
  }
  return null;
}

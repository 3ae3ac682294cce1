/**
 * Helpers for libpg-query's parse tree in its JSON form, where every node is an object with one
 * key naming its type (`{ SelectStmt: {…} }`) and some fields hold bare bodies (RangeVar under
 * `relation`). Used by the structural readers (statement-shape.ts, where-equalities.ts) and the classifier's
 * tree walk (classify-tree.ts).
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

/** A RangeVar's name as written: `schema.relation`, or `relation` alone. */
export function rangeVarName(rv: Obj): string {
  const rel = typeof rv.relname === 'string' ? rv.relname : '';
  return typeof rv.schemaname === 'string' ? `${rv.schemaname}.${rel}` : rel;
}

/** What a walk does with a property holding an object or array: go into it, pass it by, or end. */
export type Step = 'into' | 'skip' | 'stop';

/**
 * Walks the nodes under `roots` depth first, last child first (no recursion: a parse tree can be
 * deep). `node(n)` sees every object node; `child(key, value, n)` decides for each property of `n`
 * holding an object or an array whether the walk goes into it. Returns false when stopped.
 */
export function walkTree(
  roots: readonly unknown[],
  child: (key: string, value: object, n: Obj) => Step,
  node?: (n: Obj) => void,
): boolean {
  const stack: unknown[] = [...roots];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (const item of v) if (typeof item === 'object' && item !== null) stack.push(item);
      continue;
    }
    if (!isObj(v)) continue;
    node?.(v);
    for (const key in v) {
      const value = v[key];
      if (typeof value !== 'object' || value === null) continue;
      const step = child(key, value, v);
      if (step === 'stop') return false;
      if (step === 'into') stack.push(value);
    }
  }
  return true;
}

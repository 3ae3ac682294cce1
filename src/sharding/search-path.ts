/**
 * The session's search_path as the shard planner uses it to find the catalog table an
 * unqualified name means (plan-analysis.ts). PostgreSQL looks an unqualified relation name up in
 * pg_temp (the session's temporary tables), then pg_catalog (unless the path lists them
 * elsewhere), then each schema of search_path in order, `$user` meaning the schema named like the
 * current user, skipping schemas that do not exist. The planner knows only the catalog's tables,
 * so it takes the first schema of the path that holds a catalog table of that name; it cannot see
 * a local table of the same name in an earlier schema, nor a temporary table (docs/sharding.md).
 *
 * The value comes as the session holds it: the SQL text after `SET search_path TO` as written
 * (`app, public`, `"$user", public`, `'app', 'public'`), which is also how the proxy keeps a
 * start-up `options=-c search_path=…` value; absent, the default `"$user", public` (a default a
 * role or the database sets with ALTER … SET is not known to the proxy). Pure.
 */
import type { Catalog } from './types.js';

/** PostgreSQL's default search_path. */
const DEFAULT_PATH: readonly string[] = ['$user', 'public'];

/**
 * The schema names of a search_path value as SQL text (as after `SET search_path TO`): quoted
 * identifiers and string literals keep their text, bare words are folded to lower case. Null
 * when the text is not such a list (the server then refuses the SET, so it never holds).
 */
export function parseSearchPathSql(text: string): readonly string[] | null {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  const space = (): void => {
    while (i < n && /\s/.test(text[i]!)) i++;
  };
  space();
  if (/^default\s*$/i.test(text.slice(i))) return DEFAULT_PATH;
  for (;;) {
    space();
    const c = text[i];
    let name = '';
    if (c === '"' || c === "'") {
      i++;
      for (;;) {
        if (i >= n) return null;
        if (text[i] === c) {
          if (text[i + 1] !== c) break;
          i++;
        }
        name += text[i];
        i++;
      }
      i++;
    } else if (c !== undefined && /[\p{L}_]/u.test(c)) {
      while (i < n && /[\p{L}\p{N}_$]/u.test(text[i]!)) name += text[i++]!;
      name = name.toLowerCase();
    } else return null;
    out.push(name);
    space();
    if (i === n) return out;
    if (text[i] !== ',') return null;
    i++;
  }
}

/** The schemas holding catalog tables, per catalog. */
const schemasOf = new WeakMap<Catalog, ReadonlySet<string>>();

export function catalogSchemas(catalog: Catalog): ReadonlySet<string> {
  let s = schemasOf.get(catalog);
  if (s === undefined) {
    s = new Set([...catalog.tables.values()].map((t) => t.rel.schema));
    schemasOf.set(catalog, s);
  }
  return s;
}

/** The names (without schema) of the catalog's tables, per catalog. */
const namesOf = new WeakMap<Catalog, ReadonlySet<string>>();

export function catalogTableNames(catalog: Catalog): ReadonlySet<string> {
  let s = namesOf.get(catalog);
  if (s === undefined) {
    s = new Set([...catalog.tables.values()].map((t) => t.rel.name));
    namesOf.set(catalog, s);
  }
  return s;
}

/**
 * The schemas of the path, in order, that hold catalog tables: where the planner looks an
 * unqualified name up. `value` is the session's search_path SQL text (undefined: the default),
 * `user` the session's user (for `$user`). An unreadable value counts as the default.
 */
export function plannerPath(value: string | undefined, user: string, catalog: Catalog): readonly string[] {
  const names = (value === undefined ? null : parseSearchPathSql(value)) ?? DEFAULT_PATH;
  const held = catalogSchemas(catalog);
  const out: string[] = [];
  for (const raw of names) {
    const s = raw === '$user' ? user : raw;
    if (held.has(s) && !out.includes(s)) out.push(s);
  }
  return out;
}

/** What a session tells the router about its search_path. */
export interface SessionSearchPath {
  /** The search_path value as SQL text, as the session holds it; undefined: the default. */
  readonly value: string | undefined;
  /** The session's user, for `$user`. */
  readonly user: string;
  /** The router's memo on this object: the planner path it gave for catalog `version`. */
  memo?: { readonly version: number; readonly schemas: readonly string[] | null };
}

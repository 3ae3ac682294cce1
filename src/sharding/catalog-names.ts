/**
 * The planner's pre-check (shard-plan.ts): whether a text may name a table of the catalog at
 * all, decided on the lower-cased text without parsing, so that statements on local tables cost
 * one scan when sharding is in use and nothing when the catalog is empty. Pure.
 */
import type { Catalog } from './types.js';

/** The lower-cased names of a catalog's tables, for the text pre-check (one per catalog object). */
const namesOf = new WeakMap<Catalog, readonly string[]>();

function catalogNames(catalog: Catalog): readonly string[] {
  let names = namesOf.get(catalog);
  if (names === undefined) {
    names = [...new Set([...catalog.tables.values()].map((t) => t.rel.name.toLowerCase()))];
    namesOf.set(catalog, names);
  }
  return names;
}

/**
 * Whether `sql` may name a table of the catalog: every table name is searched in the lower-cased
 * text. False means certainly not (a name cannot be written without its letters, Unicode escapes
 * aside, which always count as a maybe), so the statement is local without being parsed.
 */
export function mayNameCatalogTable(sql: string, catalog: Catalog): boolean {
  if (catalog.tables.size === 0) return false;
  const lower = sql.toLowerCase();
  if (lower.includes('u&')) return true; // U&"\0075sers" names users without its letters
  for (const n of catalogNames(catalog)) if (lower.includes(n)) return true;
  return false;
}

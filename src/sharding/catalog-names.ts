/**
 * The planner's pre-check (shard-plan.ts): whether a text may name a table of the catalog at
 * all, decided on the lower-cased text without parsing, so that statements on local tables cost
 * one scan when sharding is in use and nothing when the catalog is empty.
 *
 * A text that names table `t` holds `t` itself (quoted) or a spelling that differs from it only
 * in ASCII case (unquoted), so its lower-cased form holds `t` lower-cased. Unicode escapes
 * (`U&"\0075sers"`) are the exception: such a text always counts as a maybe, and so does every
 * text while the catalog has a name with a double quote in it (written doubled). With few
 * names, each is searched as a substring; with many, the text's words are looked up in a set
 * (one pass), and only names that are not plain words are searched. Pure.
 */
import type { Catalog } from './types.js';

interface Names {
  /** Some name holds a `"`: every text may name it. */
  readonly always: boolean;
  /** Lower-cased names that are plain words (letters, digits, `_`, `$`). */
  readonly words: ReadonlySet<string>;
  /** Lower-cased names that are not (spaces, punctuation): searched as substrings. */
  readonly others: readonly string[];
}

/** Below this many names, substring searches beat splitting the text into words. */
const FEW = 16;
const WORD = /^[\p{L}_][\p{L}\p{N}_$]*$/u;
const WORDS = /[\p{L}_][\p{L}\p{N}_$]*/gu;

const DROP_INDEX = /^\s*drop\s+index\s/i;

const namesOf = new WeakMap<Catalog, Names>();

function catalogNames(catalog: Catalog): Names {
  let names = namesOf.get(catalog);
  if (names === undefined) {
    const all = new Set([...catalog.tables.values()].map((t) => t.rel.name.toLowerCase()));
    const words = new Set<string>();
    const others: string[] = [];
    let always = false;
    for (const n of all) {
      if (n.includes('"')) always = true;
      else if (WORD.test(n)) words.add(n);
      else others.push(n);
    }
    names = { always, words, others };
    namesOf.set(catalog, names);
  }
  return names;
}

/** Whether `sql` may name a table of the catalog (false: certainly not). */
export function mayNameCatalogTable(sql: string, catalog: Catalog): boolean {
  if (catalog.tables.size === 0) return false;
  // Index names are not in the catalog: DROP INDEX may drop one of a catalog table's.
  if (DROP_INDEX.test(sql)) return true;
  const names = catalogNames(catalog);
  if (names.always) return true;
  const lower = sql.toLowerCase();
  if (lower.includes('u&')) return true; // U&"\0075sers" names users without its letters
  for (const n of names.others) if (lower.includes(n)) return true;
  if (names.words.size <= FEW) {
    for (const n of names.words) if (lower.includes(n)) return true;
    return false;
  }
  for (const m of lower.matchAll(WORDS)) if (names.words.has(m[0])) return true;
  return false;
}

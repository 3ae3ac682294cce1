/**
 * The sharding catalog as values: which tables are distributed or reference tables, how they are
 * colocated, and on which group each shard lives (types.ts). Every function here is pure and
 * returns a new frozen Catalog (or a CatalogError value saying why not); the store
 * (catalog-store.ts) turns these values into compare-and-set changes of one state-store key.
 *
 * The rules are Citus's (create_distributed_table.c, colocation_utils.c):
 * - colocate_with 'default' joins the colocation with the smallest id whose column type and
 *   shard count match (Citus's ColocationId(): any such colocation, also one a 'none' started),
 *   and makes one when there is none; 'none' always makes a new colocation; a table name joins
 *   that table's colocation, which must be a distributed (not reference) table of the same column
 *   type, and then takes its shard count (naming shard_count as well is Citus's error).
 * - All reference tables share one colocation of one shard, with a copy on every group.
 * - Shard ids are handed out from nextShardId (Citus starts at 102008), one per shard of every
 *   table, colocated or not; an undistributed table's ids are not reused.
 * - A colocation left without tables is removed (Citus's DeleteColocationGroupIfNoTablesBelong).
 *
 * Placement of a new colocation: round robin continued across colocations. Shard r goes to
 * groups[(placed + r) % groups.length] where `placed` is the number of shards the existing
 * distributed colocations hold, so that shard counts that are not a multiple of the number of
 * groups do not always leave the extra shards on group 0 (which also holds the local tables);
 * every group then holds as many distributed shards as any other, give or take one, as long as
 * no group was added since (withGroups: a new group gets shards only from a rebalance).
 */
import { catalogErrors } from './catalog-errors.js';
import type { CatalogError } from './catalog-errors.js';
import { DEFAULT_SHARD_COUNT, DIST_TYPES, FIRST_SHARD_ID, relKey } from './types.js';
import type { Catalog, Colocation, DistType, DistributedTable, QualifiedName, RelName } from './types.js';
import { MAX_SHARD_COUNT } from './catalog-errors.js';
import { makeCatalog } from './catalog-value.js';
import { shardNameOf } from './catalog-lookup.js';

export { makeCatalog };
export { MAX_SHARD_COUNT, catalogErrors, CatalogFormatError, isCatalogError } from './catalog-errors.js';
export type { CatalogError } from './catalog-errors.js';
export { decode, encode, CATALOG_FORMAT } from './catalog-codec.js';
export { CatalogLookup, lookup, shardNameOf, MAX_IDENTIFIER_BYTES } from './catalog-lookup.js';
export {
  CITUS_SHARDS_COLUMNS,
  CITUS_TABLES_COLUMNS,
  citusShardsRows,
  citusTablesRows,
  pgSizePretty,
  regclassText,
} from './catalog-views.js';
export type { NameOptions, ShardFacts, TableFacts, ViewColumn, ViewRow } from './catalog-views.js';

export interface DistributeOptions {
  readonly rel: RelName;
  readonly column: string;
  /** The column's type as PostgreSQL names it (pg_type.typname); must be one of DIST_TYPES. */
  readonly type: string;
  /** The column's pg_attribute.atttypmod (numeric(p, s), varchar(n), char(n)); absent or -1: none. */
  readonly typmod?: number;
  /** Citus's shard_count; absent: the default (32), or the colocated table's count. */
  readonly shardCount?: number;
  /**
   * Citus's colocate_with: 'default' (also when absent), 'none' (both in any case), or a table:
   * a RelName (resolved by the caller, e.g. with ::regclass) or text (`name`, `schema.name`,
   * quoted parts allowed; an unqualified name is looked up in `defaultSchema`).
   */
  readonly colocateWith?: QualifiedName | RelName;
  /** The schema of an unqualified colocate_with name; 'public' when absent. */
  readonly defaultSchema?: string;
}

export interface TableChange {
  readonly catalog: Catalog;
  readonly table: DistributedTable;
}

/** A catalog with no tables over `groups` (group 0 first), at version 0. */
export function emptyCatalog(groups: readonly string[]): Catalog {
  const bad = checkGroups(groups);
  if (bad) throw new TypeError(bad.message);
  return makeCatalog(0, new Map(), new Map(), [...groups], FIRST_SHARD_ID);
}

/**
 * The catalog over a new list of groups. Existing placements stay as they are (new groups hold
 * no shards of distributed tables until a rebalance moves some). Refused: a duplicate or empty
 * name, a different group 0 (local tables live there), and leaving out a group that holds
 * shards. Reference tables have a copy on every group of the catalog, so the caller adds a
 * group only once the reference tables have been copied onto it.
 */
export function withGroups(catalog: Catalog, groups: readonly string[]): Catalog | CatalogError {
  const bad = checkGroups(groups);
  if (bad) return bad;
  const first = catalog.groups[0];
  if (first !== undefined && groups[0] !== first)
    return catalogErrors.groupInUse(
      `group "${first}" must stay the first group: the local tables live there`,
    );
  const keep = new Set(groups);
  // A reference table's copy on a group leaving goes with it (every other group has one).
  for (const c of catalog.colocations.values()) {
    if (c.type === null) continue;
    const gone = c.placement.find((g) => !keep.has(g));
    if (gone !== undefined)
      return catalogErrors.groupInUse(
        `cannot remove group "${gone}": it holds shards of colocation ${c.id}; move them first`,
      );
  }
  if (sameList(groups, catalog.groups)) return catalog;
  return makeCatalog(catalog.version, catalog.tables, catalog.colocations, [...groups], catalog.nextShardId);
}

/** create_distributed_table's catalog change: the new table with its colocation and shard ids. */
export function distribute(catalog: Catalog, o: DistributeOptions): TableChange | CatalogError {
  const name = o.rel.name;
  // Citus's order: the arguments first (create_distributed_table's own checks), then the table.
  const target = resolveColocateWith(o.colocateWith ?? 'default', o.defaultSchema ?? 'public');
  if ('kind' in target) return target;
  if (target.table !== null && o.shardCount !== undefined) return catalogErrors.shardCountWithTable();
  const shardCount = o.shardCount ?? DEFAULT_SHARD_COUNT;
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > MAX_SHARD_COUNT)
    return catalogErrors.shardCountOutOfRange(shardCount);
  if (catalog.tables.has(relKey(o.rel))) return catalogErrors.alreadyDistributed(name);
  if (isShard(catalog, o.rel)) return catalogErrors.isShard(name);
  if (o.column === '') return catalogErrors.invalidParameter('the distribution column name cannot be empty');
  if (!(DIST_TYPES as readonly string[]).includes(o.type))
    return catalogErrors.unsupportedType(name, o.column, o.type, DIST_TYPES);
  const type = o.type as DistType;
  if (catalog.groups.length === 0) return catalogErrors.noGroups();

  let colocation: Colocation | undefined;
  if (target.table !== null) {
    const source = catalog.tables.get(relKey(target.table));
    if (!source) return catalogErrors.notDistributed(target.table.name);
    if (source.kind === 'reference') return catalogErrors.replicationModelsDiffer(source.rel.name, name);
    if (source.type !== type) return catalogErrors.typesDiffer(source.rel.name, name);
    colocation = catalog.colocations.get(source.colocationId);
  } else if (target.mode === 'default') {
    for (const c of catalog.colocations.values())
      if (c.type === type && c.shardCount === shardCount && (!colocation || c.id < colocation.id))
        colocation = c;
  }
  const colocations = new Map(catalog.colocations);
  if (!colocation) {
    colocation = newColocation(catalog, shardCount, type);
    colocations.set(colocation.id, colocation);
  }
  const table: DistributedTable = Object.freeze({
    rel: Object.freeze({ schema: o.rel.schema, name }),
    kind: 'distributed',
    column: o.column,
    type,
    ...(o.typmod !== undefined && o.typmod >= 0 ? { typmod: o.typmod } : {}),
    colocationId: colocation.id,
    firstShardId: catalog.nextShardId,
  });
  const tables = new Map(catalog.tables).set(relKey(table.rel), table);
  return {
    catalog: makeCatalog(
      catalog.version,
      tables,
      colocations,
      catalog.groups,
      catalog.nextShardId + colocation.shardCount,
    ),
    table,
  };
}

/** create_reference_table's catalog change: one shard, a copy on every group. */
export function reference(catalog: Catalog, rel: RelName): TableChange | CatalogError {
  if (catalog.tables.has(relKey(rel))) return catalogErrors.alreadyDistributed(rel.name);
  if (isShard(catalog, rel)) return catalogErrors.isShard(rel.name);
  if (catalog.groups.length === 0) return catalogErrors.noGroups();
  const colocations = new Map(catalog.colocations);
  let colocation = [...catalog.colocations.values()].find((c) => c.type === null);
  if (!colocation) {
    colocation = newColocation(catalog, 1, null);
    colocations.set(colocation.id, colocation);
  }
  const table: DistributedTable = Object.freeze({
    rel: Object.freeze({ schema: rel.schema, name: rel.name }),
    kind: 'reference',
    column: null,
    type: null,
    colocationId: colocation.id,
    firstShardId: catalog.nextShardId,
  });
  const tables = new Map(catalog.tables).set(relKey(table.rel), table);
  return {
    catalog: makeCatalog(catalog.version, tables, colocations, catalog.groups, catalog.nextShardId + 1),
    table,
  };
}

/** undistribute_table's catalog change: the table becomes local again (its data on group 0). */
export function undistribute(catalog: Catalog, rel: RelName): TableChange | CatalogError {
  const key = relKey(rel);
  const table = catalog.tables.get(key);
  if (!table) return catalogErrors.undistributeNotDistributed();
  const tables = new Map(catalog.tables);
  tables.delete(key);
  let colocations = catalog.colocations;
  if (![...tables.values()].some((t) => t.colocationId === table.colocationId)) {
    const left = new Map(colocations);
    left.delete(table.colocationId);
    colocations = left;
  }
  return {
    catalog: makeCatalog(catalog.version, tables, colocations, catalog.groups, catalog.nextShardId),
    table,
  };
}

/** The same catalog at the next version (the store calls this once per committed change). */
export function nextVersion(catalog: Catalog): Catalog {
  return makeCatalog(
    catalog.version + 1,
    catalog.tables,
    catalog.colocations,
    catalog.groups,
    catalog.nextShardId,
  );
}

/**
 * A relation name as text → RelName: `name`, `schema.name`, each part either a plain identifier
 * (folded to lower case, as PostgreSQL folds ASCII letters) or double-quoted (`""` for a quote).
 */
export function parseRelName(text: string, defaultSchema = 'public'): RelName | CatalogError {
  const parts: string[] = [];
  let i = 0;
  for (;;) {
    while (text[i] === ' ') i++;
    let part = '';
    if (text[i] === '"') {
      for (i++; ; i++) {
        if (i >= text.length) return catalogErrors.invalidName(text);
        if (text[i] === '"') {
          if (text[i + 1] !== '"') break;
          i++;
        }
        part += text[i];
      }
      i++;
      if (part === '') return catalogErrors.invalidName(text);
    } else {
      const m = /^[^\s."]+/.exec(text.slice(i));
      if (!m) return catalogErrors.invalidName(text);
      part = m[0].replace(/[A-Z]/g, (c) => c.toLowerCase());
      i += m[0].length;
    }
    parts.push(part);
    while (text[i] === ' ') i++;
    if (i >= text.length) break;
    if (text[i] !== '.') return catalogErrors.invalidName(text);
    i++;
  }
  if (parts.length > 2) return catalogErrors.tooManyDots(text);
  return parts.length === 2
    ? { schema: parts[0]!, name: parts[1]! }
    : { schema: defaultSchema, name: parts[0]! };
}

/** How many tables use colocation `id`. */
export function tablesOf(catalog: Catalog, id: number): number {
  let n = 0;
  for (const t of catalog.tables.values()) if (t.colocationId === id) n++;
  return n;
}

type ColocateTarget =
  | { readonly mode: 'default' | 'none'; readonly table: null }
  | { readonly mode: 'table'; readonly table: RelName };

function resolveColocateWith(
  c: NonNullable<DistributeOptions['colocateWith']>,
  defaultSchema: string,
): ColocateTarget | CatalogError {
  if (typeof c !== 'string') return { mode: 'table', table: c };
  // Citus compares these two words case-insensitively (pg_strncasecmp).
  const word = c.toLowerCase();
  if (word === 'default' || word === 'none') return { mode: word, table: null };
  const rel = parseRelName(c, defaultSchema);
  return 'kind' in rel ? rel : { mode: 'table', table: rel };
}

/** Whether `rel` is the name of a shard of a table in the catalog (`users_102008`). */
export function isShard(catalog: Catalog, rel: RelName): boolean {
  const m = /_(\d+)$/.exec(rel.name);
  if (!m) return false;
  const id = Number(m[1]);
  for (const t of catalog.tables.values()) {
    const count = catalog.colocations.get(t.colocationId)?.shardCount ?? 0;
    if (t.rel.schema === rel.schema && id >= t.firstShardId && id < t.firstShardId + count)
      return shardNameOf(t.rel.name, id) === rel.name;
  }
  return false;
}

function newColocation(catalog: Catalog, shardCount: number, type: DistType | null): Colocation {
  let id = 1;
  let placed = 0;
  for (const c of catalog.colocations.values()) {
    if (c.id >= id) id = c.id + 1;
    if (c.type !== null) placed += c.shardCount;
  }
  const n = catalog.groups.length;
  const first = type === null ? 0 : placed % n;
  const placement = Array.from({ length: shardCount }, (_, r) => catalog.groups[(first + r) % n]!);
  return Object.freeze({ id, shardCount, type, placement: Object.freeze(placement) });
}

function checkGroups(groups: readonly string[]): CatalogError | null {
  const seen = new Set<string>();
  for (const g of groups) {
    if (typeof g !== 'string' || g === '')
      return catalogErrors.invalidParameter('a group name cannot be empty');
    if (seen.has(g)) return catalogErrors.invalidParameter(`group "${g}" is listed twice`);
    seen.add(g);
  }
  return null;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Commits a change planned earlier (distribute() or reference() on an older catalog) to the
 * catalog as it is now, keeping exactly the planned shard ids and placement: the executor has
 * already created the shards under those names on those groups (prepared, two-phase commit), so
 * the catalog must say the same or nothing. Other tables added in between are kept. Refused with
 * 40001 when the table appeared meanwhile, when another table took one of the planned shard ids,
 * or when the planned colocation id now means a different colocation.
 */
export function applyPlanned(catalog: Catalog, planned: TableChange): Catalog | CatalogError {
  let { table } = planned;
  const name = table.rel.name;
  if (table.kind === 'reference') {
    // All reference tables share one colocation; where its id changed, the data did not.
    const refs = [...catalog.colocations.values()].find((c) => c.type === null);
    if (refs && refs.id !== table.colocationId) {
      const plannedRefs = planned.catalog.colocations.get(table.colocationId);
      table = Object.freeze({ ...table, colocationId: refs.id });
      planned = {
        catalog: plannedRefs
          ? withColocation(planned.catalog, { ...plannedRefs, id: refs.id })
          : planned.catalog,
        table,
      };
    }
  }
  if (catalog.tables.has(relKey(table.rel))) return catalogErrors.alreadyDistributed(name);
  const colocation = planned.catalog.colocations.get(table.colocationId);
  if (!colocation) throw new Error(`applyPlanned: the plan of ${name} lacks its colocation`);
  const end = table.firstShardId + colocation.shardCount;
  for (const t of catalog.tables.values()) {
    const count = catalog.colocations.get(t.colocationId)?.shardCount ?? 0;
    if (t.firstShardId < end && table.firstShardId < t.firstShardId + count)
      return catalogErrors.concurrentChange(
        name,
        `shard ids ${table.firstShardId}..${end - 1} were taken by ${t.rel.name}`,
      );
  }
  const existing = catalog.colocations.get(colocation.id);
  if (existing && !sameColocation(existing, colocation))
    return catalogErrors.concurrentChange(name, `colocation ${colocation.id} was made for another placement`);
  const missing = colocation.placement.find((g) => !catalog.groups.includes(g));
  if (missing !== undefined)
    return catalogErrors.concurrentChange(name, `group "${missing}" left the catalog`);
  const colocations = existing
    ? catalog.colocations
    : new Map(catalog.colocations).set(colocation.id, colocation);
  const tables = new Map(catalog.tables).set(relKey(table.rel), table);
  return makeCatalog(
    catalog.version,
    tables,
    colocations,
    catalog.groups,
    Math.max(catalog.nextShardId, end),
  );
}

function withColocation(c: Catalog, colocation: Colocation): Catalog {
  const colocations = new Map(c.colocations).set(colocation.id, colocation);
  return makeCatalog(c.version, c.tables, colocations, c.groups, c.nextShardId);
}

function sameColocation(a: Colocation, b: Colocation): boolean {
  return a.shardCount === b.shardCount && a.type === b.type && sameList(a.placement, b.placement);
}

/**
 * A shard move's catalog change (sharding/shard-move.ts): shard `remainder` of colocation
 * `colocationId` (every colocated table's shard of that remainder) now lives on `to`. It is the
 * move's commit point, so it is a compare-and-set on the placement: refused (55000) when the shard
 * is no longer on `from` (another move took it) or `to` is not a group of the catalog.
 */
export function placeShard(
  catalog: Catalog,
  colocationId: number,
  remainder: number,
  from: string,
  to: string,
): Catalog | CatalogError {
  const c = catalog.colocations.get(colocationId);
  if (c === undefined || c.type === null)
    return catalogErrors.groupInUse(`colocation ${colocationId} is not one of distributed tables`);
  if (!Number.isInteger(remainder) || remainder < 0 || remainder >= c.shardCount)
    return catalogErrors.groupInUse(`colocation ${colocationId} has no shard ${remainder}`);
  if (c.placement[remainder] !== from)
    return catalogErrors.groupInUse(
      `shard ${remainder} of colocation ${colocationId} is on group ${c.placement[remainder]}, not ${from}`,
    );
  if (!catalog.groups.includes(to)) return catalogErrors.groupInUse(`group "${to}" is not in the catalog`);
  if (from === to) return catalog;
  const placement = [...c.placement];
  placement[remainder] = to;
  const colocations = new Map(catalog.colocations);
  colocations.set(colocationId, { ...c, placement });
  return makeCatalog(catalog.version, catalog.tables, colocations, catalog.groups, catalog.nextShardId);
}

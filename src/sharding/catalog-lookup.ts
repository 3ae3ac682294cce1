/**
 * The catalog's lookups for the router and the executor, built once per catalog value and then
 * free of allocation per call: the table of a relation (by RelName, without building its key, or
 * by key), its colocation, the group of a shard, a shard's id and name. `lookup(catalog)` keeps
 * one CatalogLookup per catalog object (a WeakMap), so callers just call it with the catalog they
 * route with.
 *
 * Shard names are Citus's, `<table>_<shardid>`, the name of the hash partition that holds the
 * shard on its group. PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1), which could
 * make two shards' names equal; when `<table>_<shardid>` would be longer, we do as Citus's
 * AppendShardIdToName: the table name is clipped (at a character boundary) and a hash of the
 * whole name goes between, `<clipped>_<8 hex digits>_<shardid>`, 63 bytes at most. Citus hashes
 * with PostgreSQL's hash_any; we use 32-bit FNV-1a, so long names differ from Citus's (they only
 * need to be unique and stable within pgscale).
 */
import type { Catalog, Colocation, DistributedTable, RelName } from './types.js';

/** PostgreSQL's longest identifier, in bytes. */
export const MAX_IDENTIFIER_BYTES = 63;

export class CatalogLookup {
  private readonly bySchema = new Map<string, Map<string, DistributedTable>>();
  private readonly names = new Map<DistributedTable, readonly string[]>();
  private readonly groupSets = new Map<DistributedTable, readonly string[]>();

  constructor(readonly catalog: Catalog) {
    for (const t of catalog.tables.values()) {
      let names = this.bySchema.get(t.rel.schema);
      if (!names) this.bySchema.set(t.rel.schema, (names = new Map<string, DistributedTable>()));
      names.set(t.rel.name, t);
    }
  }

  /** The distributed or reference table `rel`, or undefined for a local table. */
  table(rel: RelName): DistributedTable | undefined {
    return this.bySchema.get(rel.schema)?.get(rel.name);
  }

  /** The same by `schema.name` key (relKey()). */
  tableByKey(key: string): DistributedTable | undefined {
    return this.catalog.tables.get(key);
  }

  colocation(table: DistributedTable): Colocation {
    const c = this.catalog.colocations.get(table.colocationId);
    if (!c) throw new Error(`catalog: colocation ${table.colocationId} of ${table.rel.name} is missing`);
    return c;
  }

  /** The shard count of a table (1 for a reference table). */
  shardCount(table: DistributedTable): number {
    return this.colocation(table).shardCount;
  }

  /**
   * The group holding shard `remainder` of a distributed table. A reference table has a copy on
   * every group (groupsOf()); for it this is the first of them.
   */
  groupOfShard(table: DistributedTable, remainder: number): string {
    const g = this.colocation(table).placement[remainder];
    if (g === undefined) throw new RangeError(`catalog: ${table.rel.name} has no shard ${remainder}`);
    return g;
  }

  /** Shard id of shard `remainder` (Citus's shardid). */
  shardId(table: DistributedTable, remainder: number): number {
    this.groupOfShard(table, remainder);
    return table.firstShardId + remainder;
  }

  /** The name of shard `remainder` (unquoted, in the table's schema): the partition's name. */
  shardName(table: DistributedTable, remainder: number): string {
    let names = this.names.get(table);
    if (!names) {
      const count = this.shardCount(table);
      names = Object.freeze(
        Array.from({ length: count }, (_, r) => shardNameOf(table.rel.name, table.firstShardId + r)),
      );
      this.names.set(table, names);
    }
    const name = names[remainder];
    if (name === undefined) throw new RangeError(`catalog: ${table.rel.name} has no shard ${remainder}`);
    return name;
  }

  /** The groups that hold a shard of the table, in catalog order (every group for a reference table). */
  groupsOf(table: DistributedTable): readonly string[] {
    if (table.kind === 'reference') return this.catalog.groups;
    let groups = this.groupSets.get(table);
    if (!groups) {
      const used = new Set(this.colocation(table).placement);
      groups = Object.freeze(this.catalog.groups.filter((g) => used.has(g)));
      this.groupSets.set(table, groups);
    }
    return groups;
  }

  /** The remainders (shards) of a distributed table that live on `group`, ascending. */
  shardsOn(table: DistributedTable, group: string): number[] {
    const out: number[] = [];
    const placement = this.colocation(table).placement;
    for (let r = 0; r < placement.length; r++) if (placement[r] === group) out.push(r);
    return out;
  }
}

const cache = new WeakMap<Catalog, CatalogLookup>();

/** The lookups of `catalog`, built on first use and kept as long as the catalog is. */
export function lookup(catalog: Catalog): CatalogLookup {
  let l = cache.get(catalog);
  if (!l) cache.set(catalog, (l = new CatalogLookup(catalog)));
  return l;
}

/** `<table>_<shardid>`, made to fit PostgreSQL's 63 bytes as the module comment says. */
export function shardNameOf(table: string, shardId: number): string {
  const suffix = `_${shardId}`;
  const bytes = Buffer.from(table, 'utf8');
  if (bytes.length + suffix.length <= MAX_IDENTIFIER_BYTES) return table + suffix;
  const hash = fnv1a(bytes).toString(16).padStart(8, '0');
  const room = MAX_IDENTIFIER_BYTES - suffix.length - 9;
  return `${clipUtf8(bytes, room)}_${hash}${suffix}`;
}

/** The longest prefix of `bytes` of at most `max` bytes that ends on a character boundary. */
function clipUtf8(bytes: Buffer, max: number): string {
  let end = Math.min(max, bytes.length);
  // A continuation byte (10xxxxxx) at `end` means a character straddles the cut.
  while (end > 0 && end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

function fnv1a(bytes: Buffer): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

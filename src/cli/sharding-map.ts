/**
 * The shard map as GET /sharding/map serves it (the dashboard draws it): for each colocation of
 * the catalog its tables, shard count and the group holding each shard, and how many shards each
 * group holds. Only names and numbers from the catalog: nothing secret is in it.
 */
import type { Catalog } from '../sharding/types.js';

export interface ShardMap {
  catalog_version: number;
  groups: string[];
  /** Shards per group, summed over the distributed colocations (reference tables are everywhere). */
  shards_per_group: Record<string, number>;
  colocations: {
    id: number;
    kind: 'distributed' | 'reference';
    shard_count: number;
    /** Tables as `schema.name`, with the shard id of remainder 0. */
    tables: { name: string; first_shard_id: number }[];
    /** The group of each shard, by remainder. */
    placement: string[];
  }[];
}

export function shardMap(c: Catalog): ShardMap {
  const perGroup: Record<string, number> = Object.fromEntries(c.groups.map((g) => [g, 0]));
  const colocations = [...c.colocations.values()]
    .sort((a, b) => a.id - b.id)
    .map((col) => {
      if (col.type !== null) for (const g of col.placement) perGroup[g] = (perGroup[g] ?? 0) + 1;
      const tables = [...c.tables.entries()]
        .filter(([, t]) => t.colocationId === col.id)
        .map(([name, t]) => ({ name, first_shard_id: t.firstShardId }))
        .sort((a, b) => a.name.localeCompare(b.name));
      return {
        id: col.id,
        kind: col.type === null ? ('reference' as const) : ('distributed' as const),
        shard_count: col.shardCount,
        tables,
        placement: [...col.placement],
      };
    });
  return { catalog_version: c.version, groups: [...c.groups], shards_per_group: perGroup, colocations };
}

/**
 * The one constructor of catalog values, shared by the rules (catalog.ts) and the stored format
 * (catalog-codec.ts): a frozen object over the maps it is given (callers pass fresh ones and
 * never change them afterwards).
 */
import type { Catalog, Colocation, DistributedTable } from './types.js';

export function makeCatalog(
  version: number,
  tables: ReadonlyMap<string, DistributedTable>,
  colocations: ReadonlyMap<number, Colocation>,
  groups: readonly string[],
  nextShardId: number,
): Catalog {
  return Object.freeze({ version, tables, colocations, groups: Object.freeze([...groups]), nextShardId });
}

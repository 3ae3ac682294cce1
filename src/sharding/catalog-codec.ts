/**
 * The catalog as it is stored: one JSON document, `{"format":1, "version", "groups",
 * "next_shard_id", "colocations": [...], "tables": [...]}`, with colocations by id and tables by
 * key so equal catalogs encode to equal text. A table's `typmod` (its distribution column's
 * type modifier) is written only when it has one and read as none when absent, so catalogs
 * written before it was kept read as they did. decode() trusts nothing: the value comes from a
 * store another process (or a person with etcdctl) writes, so every field is checked, and so is
 * every rule the router relies on (a placement names only known groups and has one group per
 * shard, a table's colocation exists and has its type, shard id ranges do not overlap and stay
 * below next_shard_id). Anything else is a CatalogFormatError saying what is wrong; a catalog
 * half-believed would route rows to the wrong group.
 */
import { CatalogFormatError, MAX_SHARD_COUNT } from './catalog-errors.js';
import { makeCatalog } from './catalog-value.js';
import { DIST_TYPES, relKey } from './types.js';
import type { Catalog, Colocation, DistType, DistributedTable } from './types.js';

/** The stored format's number; decode() refuses others (a newer pgscale wrote it). */
export const CATALOG_FORMAT = 1;

/** The catalog as stored text. */
export function encode(c: Catalog): string {
  return JSON.stringify({
    format: CATALOG_FORMAT,
    version: c.version,
    groups: c.groups,
    next_shard_id: c.nextShardId,
    colocations: [...c.colocations.values()]
      .sort((a, b) => a.id - b.id)
      .map((x) => ({ id: x.id, shard_count: x.shardCount, type: x.type, placement: x.placement })),
    tables: [...c.tables.values()]
      .sort((a, b) => (relKey(a.rel) < relKey(b.rel) ? -1 : 1))
      .map((t) => ({
        schema: t.rel.schema,
        name: t.rel.name,
        kind: t.kind,
        column: t.column,
        type: t.type,
        // Only when there is one: a catalog without type modifiers encodes as before.
        ...(t.typmod !== undefined && t.typmod >= 0 ? { typmod: t.typmod } : {}),
        colocation_id: t.colocationId,
        first_shard_id: t.firstShardId,
      })),
  });
}

/** Stored text → catalog; throws a CatalogFormatError naming the first problem. */
export function decode(text: string): Catalog {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CatalogFormatError(`the stored sharding catalog is not JSON: ${(e as Error).message}`);
  }
  const root = obj(doc, 'the catalog');
  if (root.format !== CATALOG_FORMAT)
    fail(
      `format ${JSON.stringify(root.format)} is not ${CATALOG_FORMAT} (written by another pgscale version?)`,
    );
  const version = int(root.version, 'version', 0);
  const groups = arr(root.groups, 'groups').map((g, i) => str(g, `groups[${i}]`));
  if (new Set(groups).size !== groups.length) fail('groups lists a group twice');
  const nextShardId = int(root.next_shard_id, 'next_shard_id', 1);
  const known = new Set(groups);

  const colocations = new Map<number, Colocation>();
  arr(root.colocations, 'colocations').forEach((raw, i) => {
    const where = `colocations[${i}]`;
    const o = obj(raw, where);
    const id = int(o.id, `${where}.id`, 1);
    const shardCount = int(o.shard_count, `${where}.shard_count`, 1);
    if (shardCount > MAX_SHARD_COUNT) fail(`${where}.shard_count ${shardCount} is above ${MAX_SHARD_COUNT}`);
    const type = o.type === null ? null : distType(o.type, `${where}.type`);
    if (type === null && shardCount !== 1) fail(`${where}: the reference tables' colocation has one shard`);
    const placement = arr(o.placement, `${where}.placement`).map((g, r) => {
      const group = str(g, `${where}.placement[${r}]`);
      if (!known.has(group)) fail(`${where}.placement[${r}] names group "${group}", which is not in groups`);
      return group;
    });
    if (placement.length !== shardCount)
      fail(`${where}.placement has ${placement.length} groups for ${shardCount} shards`);
    if (colocations.has(id)) fail(`colocation ${id} is listed twice`);
    colocations.set(id, Object.freeze({ id, shardCount, type, placement: Object.freeze(placement) }));
  });
  if ([...colocations.values()].filter((c) => c.type === null).length > 1)
    fail('more than one reference colocation');

  const tables = new Map<string, DistributedTable>();
  const ranges: [number, number, string][] = [];
  const used = new Set<number>();
  arr(root.tables, 'tables').forEach((raw, i) => {
    const where = `tables[${i}]`;
    const o = obj(raw, where);
    const rel = Object.freeze({
      schema: str(o.schema, `${where}.schema`),
      name: str(o.name, `${where}.name`),
    });
    const kind = o.kind;
    if (kind !== 'distributed' && kind !== 'reference')
      fail(`${where}.kind must be "distributed" or "reference"`);
    const colocationId = int(o.colocation_id, `${where}.colocation_id`, 1);
    const colocation = colocations.get(colocationId);
    if (!colocation) fail(`${where}: colocation ${colocationId} does not exist`);
    const column = kind === 'reference' ? nul(o.column, `${where}.column`) : str(o.column, `${where}.column`);
    const type = kind === 'reference' ? nul(o.type, `${where}.type`) : distType(o.type, `${where}.type`);
    if (type !== colocation.type)
      fail(`${where}: type ${type} differs from colocation ${colocationId}'s ${colocation.type}`);
    // Absent in catalogs written before pgscale kept it: no type modifier.
    const typmod = o.typmod === undefined ? -1 : int(o.typmod, `${where}.typmod`, 0);
    if (typmod >= 0 && kind === 'reference') fail(`${where}: a reference table has no distribution column typmod`);
    const firstShardId = int(o.first_shard_id, `${where}.first_shard_id`, 1);
    if (firstShardId + colocation.shardCount > nextShardId)
      fail(
        `${where}: shard ids up to ${firstShardId + colocation.shardCount - 1} reach next_shard_id ${nextShardId}`,
      );
    const key = relKey(rel);
    if (tables.has(key)) fail(`table ${key} is listed twice`);
    ranges.push([firstShardId, firstShardId + colocation.shardCount, key]);
    used.add(colocationId);
    tables.set(
      key,
      Object.freeze({ rel, kind, column, type, ...(typmod >= 0 ? { typmod } : {}), colocationId, firstShardId }),
    );
  });
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++)
    if (ranges[i]![0] < ranges[i - 1]![1])
      fail(`tables ${ranges[i - 1]![2]} and ${ranges[i]![2]} share shard ids`);
  for (const id of colocations.keys()) if (!used.has(id)) fail(`colocation ${id} has no tables`);
  return makeCatalog(version, tables, colocations, groups, nextShardId);
}

function fail(what: string): never {
  throw new CatalogFormatError(`the stored sharding catalog is invalid: ${what}`);
}

function obj(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) fail(`${what} is not an object`);
  return x as Record<string, unknown>;
}

function arr(x: unknown, what: string): unknown[] {
  if (!Array.isArray(x)) fail(`${what} is not a list`);
  return x;
}

function str(x: unknown, what: string): string {
  if (typeof x !== 'string' || x === '') fail(`${what} is not a non-empty string`);
  return x;
}

function nul(x: unknown, what: string): null {
  if (x !== null) fail(`${what} must be null`);
  return null;
}

function int(x: unknown, what: string, min: number): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min)
    fail(`${what} is not an integer ≥ ${min}`);
  return x;
}

function distType(x: unknown, what: string): DistType {
  if (!(DIST_TYPES as readonly unknown[]).includes(x)) fail(`${what} is not one of ${DIST_TYPES.join(', ')}`);
  return x as DistType;
}

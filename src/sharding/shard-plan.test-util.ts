/**
 * A small catalog, a stand-in partition hash and helpers for the planner's tests and its
 * measurement (the real hash is hash.ts's): integers hash to `value mod modulus`, text to the
 * sum of its character codes mod modulus, so a test can say which group a key lands on.
 *
 * Groups "0" and "1"; 4 shards per distributed table.
 * - colocation 1 (bigint): users(id), orders(user_id); shard r on group r % 2.
 * - colocation 2 (text): events(tenant); shards 0, 1 on group 0, shards 2, 3 on group 1.
 * - colocation 3 (integer): "Sales"."Big Table"("Id"); shards 0, 1 on group 1, 2, 3 on group 0.
 * - colocation 4: the reference tables countries and public.codes.
 */
import type { Remainder } from './resolve-shards.js';
import { resolveShards, shardKeyPlan, type PlanOptions, type ShardRoute } from './shard-plan.js';
import {
  FIRST_SHARD_ID,
  relKey,
  type Catalog,
  type Colocation,
  type ColumnValue,
  type DistributedTable,
  type DistType,
} from './types.js';

function table(
  schema: string,
  name: string,
  column: string | null,
  type: DistType | null,
  colocationId: number,
  firstShardId: number,
): DistributedTable {
  return {
    rel: { schema, name },
    kind: column === null ? 'reference' : 'distributed',
    column,
    type,
    colocationId,
    firstShardId,
  };
}

export const USERS_FIRST = FIRST_SHARD_ID;
export const ORDERS_FIRST = FIRST_SHARD_ID + 4;
export const EVENTS_FIRST = FIRST_SHARD_ID + 8;
export const BIG_FIRST = FIRST_SHARD_ID + 12;

const tables: DistributedTable[] = [
  table('public', 'users', 'id', 'int8', 1, USERS_FIRST),
  table('public', 'orders', 'user_id', 'int8', 1, ORDERS_FIRST),
  table('public', 'events', 'tenant', 'text', 2, EVENTS_FIRST),
  table('Sales', 'Big Table', 'Id', 'int4', 3, BIG_FIRST),
  table('public', 'countries', null, null, 4, FIRST_SHARD_ID + 16),
  table('public', 'codes', null, null, 4, FIRST_SHARD_ID + 17),
];

const colocations: Colocation[] = [
  { id: 1, shardCount: 4, type: 'int8', placement: ['0', '1', '0', '1'] },
  { id: 2, shardCount: 4, type: 'text', placement: ['0', '0', '1', '1'] },
  { id: 3, shardCount: 4, type: 'int4', placement: ['1', '1', '0', '0'] },
  { id: 4, shardCount: 1, type: null, placement: ['0'] },
];

export const catalog: Catalog = {
  version: 7,
  tables: new Map(tables.map((t) => [relKey(t.rel), t])),
  colocations: new Map(colocations.map((c) => [c.id, c])),
  groups: ['0', '1'],
  nextShardId: FIRST_SHARD_ID + 18,
};

export const emptyCatalog: Catalog = {
  version: 1,
  tables: new Map(),
  colocations: new Map(),
  groups: ['0', '1'],
  nextShardId: FIRST_SHARD_ID,
};

/** The stand-in hash: integers mod the modulus, text by the sum of its codes; bad input throws. */
export const fakeRemainder: Remainder = (type, value, modulus) => {
  if (type === 'int2' || type === 'int4' || type === 'int8') {
    let n: bigint;
    if (value.format === 'binary') {
      const b = value.bytes;
      n =
        b.length === 8
          ? b.readBigInt64BE(0)
          : b.length === 4
            ? BigInt(b.readInt32BE(0))
            : b.length === 2
              ? BigInt(b.readInt16BE(0))
              : NaNBig();
    } else {
      if (!/^\s*[+-]?\d+\s*$/.test(value.text)) throw new Error(`invalid integer ${value.text}`);
      n = BigInt(value.text.trim());
    }
    const m = BigInt(modulus);
    return Number(((n % m) + m) % m);
  }
  const text = value.format === 'text' ? value.text : value.bytes.toString('utf8');
  if (type === 'uuid' && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(text))
    throw new Error('bad uuid');
  let sum = 0;
  for (let i = 0; i < text.length; i++) sum += text.charCodeAt(i);
  return sum % modulus;
};

function NaNBig(): bigint {
  throw new Error('bad integer width');
}

/** The group that the stand-in hash puts an integer key of users on. */
export function usersGroup(key: bigint): string {
  const r = Number(((key % 4n) + 4n) % 4n);
  return ['0', '1', '0', '1'][r]!;
}

export const t = (text: string): ColumnValue => ({ format: 'text', text });

/** users' columns in order, for INSERT without a column list; other tables' are not known. */
export const columns: PlanOptions = {
  columnsOf: (table) => (table.rel.name === 'users' ? ['id', 'name', 'created'] : null),
};

/** The route of `sql` with shard ids and groups sorted (their order carries no meaning). */
export function route(
  sql: string,
  params: (ColumnValue | null)[] = [],
  options: PlanOptions = columns,
): ShardRoute {
  const r = resolveShards(shardKeyPlan(sql, catalog, options), params, fakeRemainder);
  if (r.kind === 'one') return { ...r, shards: [...r.shards].sort((a, b) => a - b) };
  if (r.kind === 'multi') return { ...r, groups: [...r.groups].sort() };
  return r;
}

export function one(group: string, ...shards: number[]): ShardRoute {
  return { kind: 'one', group, shards };
}

/** The route's kind, with the SQLSTATE of an error. */
export function kind(r: ShardRoute): string {
  return r.kind === 'error' ? `error ${r.sqlstate}` : r.kind;
}

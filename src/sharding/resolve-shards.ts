/**
 * The second step of routing (shard-plan.ts has the first): a KeyPlan and one execution's Bind
 * values give the groups and shards the statement runs on. Each key value is hashed with the
 * partition hash passed in (`remainder`, hash.ts's), for each colocation of its class; the
 * group of shard `r` is `placement[r]`. A one-key plan costs one remainder, one array lookup
 * and the route object. NULL keys: no row matches `k = NULL`, so a NULL pin limits nothing to a
 * group; an INSERT of a NULL key is refused as Citus refuses it (23502). A value the hash cannot
 * read is invalid for the column's type (22P02). Pure: no I/O.
 */
import { isIntType, parseArrayBinary, parseArrayText, type KeySet, type KeySource } from './key-source.js';
import { assembleInsert } from './insert-split.js';
import { NULL_KEY } from './plan-insert.js';
import { PARTITION_VALUE } from './plan-modify.js';
import type { InsertPart, KeyClass, KeyPlan, ShardRoute } from './shard-plan.js';
import type { ColumnValue, DistType } from './types.js';

/**
 * PostgreSQL's hash-partition remainder of `value` as a `type` value, for `modulus` partitions,
 * after the column's type modifier `typmod` (-1: none) is applied to it.
 */
export type Remainder = (type: DistType, value: ColumnValue, modulus: number, typmod: number) => number;

type Params = readonly (ColumnValue | null)[];

export function resolveShards(plan: KeyPlan, params: Params, remainder: Remainder): ShardRoute {
  if (plan.kind === 'fixed') return plan.route;
  if (plan.kind === 'statements')
    return combine(
      plan.plans.map((p) => resolveShards(p, params, remainder)),
      plan.groups,
    );
  // The common case: one key for one table, or for colocated tables joined on it.
  if (plan.classes.length === 1 && plan.assigns.length === 0) {
    const c = plan.classes[0]!;
    if (c.key.kind === 'one' && c.colocs.length === 1) {
      const part = c.colocs[0]!;
      const s = c.key.source;
      const value = s.kind === 'const' ? s.value : s.kind === 'param' ? params[s.index] : null;
      if (value !== undefined && value !== null) {
        const r = hash(remainder, part.type, value, part.colocation.shardCount, c.typmod);
        if (typeof r !== 'number') return r;
        const group = part.colocation.placement[r];
        const firsts = part.firstShardIds;
        if (group !== undefined) {
          return {
            kind: 'one',
            group,
            shards: firsts.length === 1 ? [firsts[0]! + r] : firsts.map((f) => f + r),
          };
        }
      }
    }
  }
  return resolveClasses(plan, params, remainder);
}

function resolveClasses(
  plan: Extract<KeyPlan, { kind: 'keys' }>,
  params: Params,
  remainder: Remainder,
): ShardRoute {
  // Small arrays rather than sets: a statement names few shards and groups.
  const groups: string[] = [];
  const shards: number[] = [];
  /** Per class: the remainder of each value, per colocation part. */
  const remainders: number[][][] = [];
  for (let ci = 0; ci < plan.classes.length; ci++) {
    const c = plan.classes[ci]!;
    if (c.colocs.length === 0)
      return {
        kind: 'error',
        sqlstate: 'XX000',
        message: 'the sharding catalog names a colocation it does not hold',
      };
    const values = valuesOf(c.key, params, plan.insertClasses.includes(ci));
    if (!Array.isArray(values)) return values;
    const per: number[][] = [];
    for (const part of c.colocs) {
      const rs: number[] = [];
      for (const v of values) {
        const r = hash(remainder, part.type, v, part.colocation.shardCount, c.typmod);
        if (typeof r !== 'number') return r;
        const g = part.colocation.placement[r];
        if (g === undefined)
          return {
            kind: 'error',
            sqlstate: 'XX000',
            message: `shard ${r} of colocation ${part.colocation.id} has no group`,
          };
        rs.push(r);
        if (!groups.includes(g)) groups.push(g);
        for (const first of part.firstShardIds) if (!shards.includes(first + r)) shards.push(first + r);
      }
      per.push(rs);
    }
    remainders.push(per);
  }
  for (const a of plan.assigns) {
    const c = plan.classes[a.cls];
    if (c === undefined) return { kind: 'error', sqlstate: '0A000', message: PARTITION_VALUE };
    const v = valueOf(a.source, params);
    if (v === null || 'sqlstate' in v)
      return v ?? { kind: 'error', sqlstate: '0A000', message: PARTITION_VALUE };
    for (let p = 0; p < c.colocs.length; p++) {
      const part = c.colocs[p]!;
      const r = hash(remainder, part.type, v, part.colocation.shardCount, a.typmod);
      if (typeof r !== 'number') return r;
      if (remainders[a.cls]![p]!.some((x) => x !== r))
        return { kind: 'error', sqlstate: '0A000', message: PARTITION_VALUE };
    }
  }
  if (groups.length <= 1) return { kind: 'one', group: groups[0] ?? plan.groups[0] ?? '0', shards };
  const split = plan.insert === null ? null : splitInsert(plan, remainders);
  return (
    split ?? {
      kind: 'multi',
      groups,
      reason: "the statement's distribution column values belong to shards on several groups",
    }
  );
}

/** A multi-row INSERT split by group, when the rows' table is the statement's only distributed one. */
function splitInsert(plan: Extract<KeyPlan, { kind: 'keys' }>, remainders: number[][][]): ShardRoute | null {
  const ins = plan.insert!;
  const text = ins.text;
  const c: KeyClass | undefined = plan.classes[ins.cls];
  if (
    plan.classes.length !== 1 ||
    c === undefined ||
    c.colocs.length !== 1 ||
    c.colocs[0]!.firstShardIds.length !== 1
  )
    return null;
  const part = c.colocs[0]!;
  const rs = remainders[ins.cls]![0]!;
  if (rs.length !== text.rows.length) return null;
  const byGroup = new Map<string, { rows: number[]; shards: Set<number> }>();
  rs.forEach((r, row) => {
    const g = part.colocation.placement[r]!;
    let e = byGroup.get(g);
    if (e === undefined) byGroup.set(g, (e = { rows: [], shards: new Set() }));
    e.rows.push(row);
    e.shards.add(part.firstShardIds[0]! + r);
  });
  const parts: InsertPart[] = [];
  for (const [group, e] of byGroup) {
    const { sql, paramIndexes } = assembleInsert(text, e.rows);
    parts.push({ group, sql, paramIndexes, shards: [...e.shards] });
  }
  return { kind: 'split-insert', parts };
}

type Failure = Extract<ShardRoute, { kind: 'error' }>;

function valueOf(s: KeySource, params: Params): ColumnValue | null | Failure {
  if (s.kind === 'const') return s.value;
  if (s.kind === 'null') return null;
  if (s.index >= params.length) {
    return { kind: 'error', sqlstate: '08P01', message: `there is no parameter $${s.index + 1}` };
  }
  return params[s.index] ?? null;
}

/** The non-NULL values of a key set (an INSERT's rows may not be NULL: `insertRows`). */
function valuesOf(key: KeySet, params: Params, insertRows: boolean): ColumnValue[] | Failure {
  const out: ColumnValue[] = [];
  const add = (s: KeySource): Failure | null => {
    const v = valueOf(s, params);
    if (v === null) return insertRows ? { kind: 'error', sqlstate: '23502', message: NULL_KEY } : null;
    if ('sqlstate' in v) return v;
    out.push(v);
    return null;
  };
  if (key.kind === 'one') {
    const f = add(key.source);
    if (f !== null) return f;
  } else if (key.kind === 'list') {
    for (const s of key.sources) {
      const f = add(s);
      if (f !== null) return f;
    }
  } else {
    if (key.index >= params.length)
      return { kind: 'error', sqlstate: '08P01', message: `there is no parameter $${key.index + 1}` };
    const p = params[key.index];
    if (p === null || p === undefined) return out; // `k = ANY(NULL)` matches nothing
    if (p.format === 'text') {
      const items = parseArrayText(p.text);
      if (items === null)
        return { kind: 'error', sqlstate: '22P02', message: `malformed array literal: "${p.text}"` };
      for (const text of items) if (text !== null) out.push({ format: 'text', text });
    } else {
      const items = parseArrayBinary(p.bytes);
      if (items === null)
        return { kind: 'error', sqlstate: '22P02', message: 'malformed binary array parameter' };
      for (const bytes of items) if (bytes !== null) out.push({ format: 'binary', bytes });
    }
  }
  return out;
}

const TYPE_NAMES: Record<DistType, string> = {
  int2: 'smallint',
  int4: 'integer',
  int8: 'bigint',
  text: 'text',
  varchar: 'character varying',
  bpchar: 'character',
  uuid: 'uuid',
  numeric: 'numeric',
};

/**
 * The remainder of one value, or the error for a value the hash cannot read. A binary integer is
 * hashed by its width (PostgreSQL's integer hashes agree across int2, int4 and int8), so a
 * parameter the client declared bigint still routes an integer column.
 */
function hash(
  remainder: Remainder,
  type: DistType,
  v: ColumnValue,
  modulus: number,
  typmod: number,
): number | Failure {
  let t = type;
  if (v.format === 'binary' && isIntType(type)) {
    t = v.bytes.length === 2 ? 'int2' : v.bytes.length === 8 ? 'int8' : v.bytes.length === 4 ? 'int4' : type;
  }
  let r: number;
  try {
    r = remainder(t, v, modulus, typmod);
  } catch (err) {
    // The hash's HashInputError carries PostgreSQL's SQLSTATE and message (22P02, 22003, 22P03…).
    const code = (err as { sqlstate?: unknown }).sqlstate;
    if (code === '22003' && v.format === 'text' && isIntType(type)) return outOfRange(remainder, v, modulus);
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && err instanceof Error) {
      return { kind: 'error', sqlstate: code, message: err.message };
    }
    const shown = v.format === 'text' ? v.text : `<${v.bytes.length} bytes>`;
    return {
      kind: 'error',
      sqlstate: '22P02',
      message: `invalid input syntax for type ${TYPE_NAMES[type]}: "${shown}"`,
    };
  }
  if (!Number.isInteger(r) || r < 0 || r >= modulus) {
    return {
      kind: 'error',
      sqlstate: 'XX000',
      message: `partition hash gave remainder ${r} for modulus ${modulus}`,
    };
  }
  return r;
}

/**
 * An integer written wider than the column (`int4_col = 99999999999`, `smallint_col = 40000`):
 * PostgreSQL compares it at its own width, so it equals no value of the column — it is not an
 * error there. Hashed as bigint when it fits (the integer hashes agree across widths), else on
 * shard 0: the group that gets the statement answers as PostgreSQL would (no row, or its own
 * 22003 when the value is to be stored or was quoted).
 */
function outOfRange(remainder: Remainder, v: ColumnValue, modulus: number): number {
  try {
    return remainder('int8', v, modulus, -1);
  } catch {
    return 0;
  }
}

/** Several statements of one Query: one route when they agree on one group, else `multi`. */
export function combine(routes: readonly ShardRoute[], groups: readonly string[]): ShardRoute {
  let out: ShardRoute | null = null;
  const group0 = groups[0] ?? '0';
  const groupOf = (r: ShardRoute): string | null =>
    r.kind === 'local' ? group0 : r.kind === 'one' ? r.group : null;
  for (const r of routes) {
    if (r.kind === 'error') return r;
    if (r.kind === 'multi') return r;
    if (r.kind === 'copy-in') {
      return { kind: 'multi', groups, reason: 'a COPY among other statements of one query' };
    }
    if (r.kind === 'split-insert') {
      return {
        kind: 'multi',
        groups: r.parts.map((p) => p.group),
        reason: 'a multi-row INSERT split by group among other statements',
      };
    }
    if (out === null || out.kind === 'reference-read') {
      out = r;
      continue;
    }
    if (r.kind === 'reference-read') continue;
    if (out.kind === 'all' || r.kind === 'all') {
      if (out.kind === 'all' && r.kind === 'all') continue;
      return { kind: 'multi', groups, reason: 'statements of one query need every group and one group' };
    }
    const a = groupOf(out);
    const b = groupOf(r);
    if (a === null || b === null || a !== b) {
      return {
        kind: 'multi',
        groups: [...new Set([a ?? group0, b ?? group0])],
        reason: 'the statements of one query run on different groups',
      };
    }
    if (out.kind === 'one' || r.kind === 'one') {
      const before: readonly number[] = out.kind === 'one' ? out.shards : [];
      const added: readonly number[] = r.kind === 'one' ? r.shards : [];
      out = { kind: 'one', group: a, shards: [...new Set<number>([...before, ...added])] };
    }
  }
  return out ?? { kind: 'local' };
}

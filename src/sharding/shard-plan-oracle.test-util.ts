/**
 * The planner checked against real PostgreSQL (not a unit test: it needs a server, so it is run
 * by hand): whenever the planner answers `one` group g for a generated query or UPDATE/DELETE,
 * the result computed on group g's partitions alone must equal the result on all the data.
 * Schema `f` holds all the rows of users/orders (hash-partitioned, 4 partitions) and the reference
 * table countries; schemas `g0` and `g1` hold only the rows of the partitions each group owns.
 * Remainders come from PostgreSQL's own satisfies_hash_partition(). DML runs in a rolled-back
 * transaction. The schemas are dropped at the end.
 *
 *   PGSCALE_ORACLE_URL=postgres://user@host:port/db node --import tsx src/sharding/shard-plan-oracle.test-util.ts [runs]
 */
import pg from 'pg';
import fc from 'fast-check';
import { loadParser } from '../sql/pg-parser.js';
import { resolveShards, shardKeyPlan } from './shard-plan.js';
import type { Catalog, ColumnValue } from './types.js';

await loadParser();
const url = process.env.PGSCALE_ORACLE_URL;
if (url === undefined)
  throw new Error('set PGSCALE_ORACLE_URL to a PostgreSQL the check may create schemas f, g0, g1 in');
const c = new pg.Client({ connectionString: url });
await c.connect();
const placement = ['0', '1', '0', '1'];
const ddl: string[] = [];
for (const s of ['f', 'g0', 'g1']) {
  ddl.push(`DROP SCHEMA IF EXISTS ${s} CASCADE`, `CREATE SCHEMA ${s}`);
  ddl.push(`CREATE TABLE ${s}.users (id int8, name text, country int) PARTITION BY HASH (id)`);
  ddl.push(`CREATE TABLE ${s}.orders (user_id int8, total int) PARTITION BY HASH (user_id)`);
  ddl.push(`CREATE TABLE ${s}.countries (code int, label text)`);
  for (let r = 0; r < 4; r++) {
    ddl.push(
      `CREATE TABLE ${s}.users_${r} PARTITION OF ${s}.users FOR VALUES WITH (MODULUS 4, REMAINDER ${r})`,
    );
    ddl.push(
      `CREATE TABLE ${s}.orders_${r} PARTITION OF ${s}.orders FOR VALUES WITH (MODULUS 4, REMAINDER ${r})`,
    );
  }
}
for (const q of ddl) await c.query(q);
await c.query(`INSERT INTO f.users SELECT k, 'n' || (k % 5), k % 3 FROM generate_series(-12, 12) k`);
await c.query(`INSERT INTO f.orders SELECT k % 13, k FROM generate_series(-40, 40) k`);
await c.query(`INSERT INTO f.countries SELECT k, 'c' || k FROM generate_series(0, 2) k`);
for (let r = 0; r < 4; r++) {
  const g = `g${placement[r]}`;
  await c.query(`INSERT INTO ${g}.users SELECT * FROM f.users_${r}`);
  await c.query(`INSERT INTO ${g}.orders SELECT * FROM f.orders_${r}`);
}
for (const g of ['g0', 'g1']) await c.query(`INSERT INTO ${g}.countries SELECT * FROM f.countries`);
// Remainders from PostgreSQL itself.
const rem = new Map<string, number>();
const { rows } = await c.query<{ k: number; r: number }>(
  `SELECT k, r FROM generate_series(-60, 60) k, generate_series(0, 3) r WHERE satisfies_hash_partition('f.users'::regclass, 4, r, k::int8)`,
);
for (const row of rows) rem.set(String(row.k), row.r);
const remainder = (_t: unknown, v: ColumnValue, m: number): number => {
  const text = v.format === 'text' ? v.text : '';
  const r = rem.get(String(Number(text)));
  if (r === undefined || m !== 4)
    throw Object.assign(new Error(`no remainder for ${text}`), { sqlstate: '22P02' });
  return r;
};
const catalog: Catalog = {
  version: 1,
  tables: new Map([
    [
      'public.users',
      {
        rel: { schema: 'public', name: 'users' },
        kind: 'distributed',
        column: 'id',
        type: 'int8',
        colocationId: 1,
        firstShardId: 100,
      },
    ],
    [
      'public.orders',
      {
        rel: { schema: 'public', name: 'orders' },
        kind: 'distributed',
        column: 'user_id',
        type: 'int8',
        colocationId: 1,
        firstShardId: 200,
      },
    ],
    [
      'public.countries',
      {
        rel: { schema: 'public', name: 'countries' },
        kind: 'reference',
        column: null,
        type: null,
        colocationId: 2,
        firstShardId: 300,
      },
    ],
  ]),
  colocations: new Map([
    [1, { id: 1, shardCount: 4, type: 'int8', placement }],
    [2, { id: 2, shardCount: 1, type: null, placement: ['0'] }],
  ]),
  groups: ['0', '1'],
  nextShardId: 400,
};

const K = fc.integer({ min: -12, max: 12 }).map(String);
const atom = (t: string): fc.Arbitrary<string> =>
  fc.oneof(
    K.map((k) => `${t}.id = ${k}`),
    K.map((k) => `${t}.id = '${k}'`),
    fc.tuple(K, K).map(([a, b]) => `${t}.id IN (${a}, ${b})`),
    fc.tuple(K, K).map(([a, b]) => `${t}.id = ANY('{${a},${b}}')`),
    K.map((k) => `${t}.id > ${k}`),
    K.map((k) => `${t}.name = 'n${Math.abs(Number(k)) % 5}'`),
    K.map((k) => `EXISTS (SELECT 1 FROM orders o2 WHERE o2.user_id = ${t}.id AND o2.total > ${k})`),
    K.map((k) => `NOT EXISTS (SELECT 1 FROM orders o2 WHERE o2.user_id = ${t}.id AND o2.user_id = ${k})`),
    K.map((k) => `${t}.id IN (SELECT user_id FROM orders WHERE total > ${k})`),
    K.map((k) => `${t}.id NOT IN (SELECT user_id FROM orders WHERE total > ${k})`),
    K.map((k) => `(SELECT count(*) FROM orders o3 WHERE o3.user_id = ${k}) > 1`),
    K.map((k) => `(SELECT count(*) FROM orders o3 WHERE o3.user_id = ${t}.id) > ${Math.abs(Number(k)) % 4}`),
    K.map((k) => `${t}.id = (SELECT max(user_id) FROM orders WHERE user_id = ${k})`),
    fc.constant(`${t}.country IN (SELECT code FROM countries)`),
  );
const cond = (t: string): fc.Arbitrary<string> =>
  fc.letrec<{ c: string }>((tie) => ({
    c: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      atom(t),
      fc.tuple(tie('c'), tie('c')).map(([a, b]) => `(${a} AND ${b})`),
      fc.tuple(tie('c'), tie('c')).map(([a, b]) => `(${a} OR ${b})`),
      tie('c').map((a) => `NOT (${a})`),
    ),
  })).c;
const from = fc.constantFrom(
  'users u',
  'users u JOIN orders o ON u.id = o.user_id',
  'users u LEFT JOIN orders o ON u.id = o.user_id',
  'orders o RIGHT JOIN users u ON u.id = o.user_id',
  'users u FULL JOIN orders o ON u.id = o.user_id',
  'users u LEFT JOIN orders o ON u.id = o.user_id AND o.user_id = 3',
  'users u JOIN countries c ON c.code = u.country',
  'users u, LATERAL (SELECT count(*) AS n FROM orders o WHERE o.user_id = u.id) o',
  '(SELECT * FROM users WHERE id = 5) u',
  'users u JOIN users v ON v.id = u.id',
);
const pin = (t: string): fc.Arbitrary<string> =>
  fc.oneof(
    K.map((k) => `${t}.id = ${k}`),
    fc.tuple(K, K).map(([a, b]) => `${t}.id IN (${a}, ${b})`),
    K.map((k) => `o.user_id = ${k}`),
  );
const dml = fc.oneof(
  fc
    .tuple(pin('u'), cond('u'))
    .map(([p, w]) => `DELETE FROM users u WHERE ${p.replace('o.user_id', 'u.id')} AND ${w} RETURNING *`),
  fc
    .tuple(pin('u'), cond('u'))
    .map(
      ([p, w]) =>
        `UPDATE users u SET name = 'z' WHERE ${w} AND ${p.replace('o.user_id', 'u.id')} RETURNING *`,
    ),
  fc
    .tuple(pin('u'), cond('u'))
    .map(
      ([p, w]) => `DELETE FROM orders o USING users u WHERE o.user_id = u.id AND ${p} AND ${w} RETURNING o.*`,
    ),
  fc
    .tuple(pin('u'), cond('u'))
    .map(
      ([p, w]) =>
        `UPDATE orders o SET total = 0 FROM users u WHERE u.id = o.user_id AND ${p} AND ${w} RETURNING o.*`,
    ),
);
const more = fc.oneof(
  fc
    .tuple(K, cond('u'))
    .map(
      ([k, w]) =>
        `SELECT * FROM orders o WHERE o.user_id = ${k} AND o.user_id IN (SELECT u.id FROM users u WHERE ${w})`,
    ),
  fc
    .tuple(pin('u'), cond('u'))
    .map(
      ([p, w]) =>
        `SELECT u.*, (SELECT sum(total) FROM orders o2 WHERE o2.user_id = u.id) AS s FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE ${p} AND ${w}`,
    ),
  fc
    .tuple(pin('u'), cond('u'))
    .map(
      ([p, w]) =>
        `SELECT u.id, count(*) AS n, row_number() OVER (ORDER BY u.id) AS rn FROM users u JOIN orders o ON o.user_id = u.id WHERE ${p} AND ${w} GROUP BY u.id HAVING count(*) > 1`,
    ),
  fc
    .tuple(pin('u'), cond('u'))
    .map(
      ([p, w]) =>
        `SELECT DISTINCT ON (u.country) u.* FROM users u JOIN orders o USING (total) WHERE ${p} AND ${w} ORDER BY u.country, u.id LIMIT 2`,
    ),
  fc
    .tuple(pin('u'), cond('u'))
    .map(
      ([p, w]) =>
        `INSERT INTO orders (user_id, total) SELECT u.id, 1 FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE ${p} AND ${w} RETURNING *`,
    ),
  fc
    .tuple(K, K)
    .map(([a, b]) => `INSERT INTO orders (user_id, total) VALUES (${a}, 1), (${b}, 2) RETURNING *`),
);
const query = fc.oneof(
  dml,
  dml,
  more,
  more,
  fc.tuple(from, pin('u'), cond('u')).map(([f, p, w]) => `SELECT * FROM ${f} WHERE ${p} AND ${w}`),
  fc.tuple(from, pin('u'), cond('u')).map(([f, p, w]) => `SELECT count(*) FROM ${f} WHERE ${w} AND ${p}`),
  fc
    .tuple(from, pin('u'), cond('u'), cond('u'))
    .map(([f, p, w, v]) => `SELECT * FROM ${f} WHERE (${w} AND ${p}) AND ${v}`),
  fc.tuple(from, cond('u')).map(([f, w]) => `SELECT * FROM ${f} WHERE ${w}`),
  fc.tuple(from, cond('u')).map(([f, w]) => `SELECT count(*) FROM ${f} WHERE ${w}`),
  fc
    .tuple(cond('u'), cond('u'))
    .map(([a, b]) => `SELECT u.id FROM users u WHERE ${a} UNION SELECT u.id FROM users u WHERE ${b}`),
  fc
    .tuple(cond('u'), K)
    .map(
      ([w, k]) =>
        `WITH x AS (SELECT * FROM users u WHERE ${w}) SELECT * FROM x JOIN orders o ON o.user_id = x.id WHERE o.user_id = ${k}`,
    ),
);

const stats = new Map<string, number>();
let checked = 0;
let failures = 0;
await fc
  .assert(
    fc.asyncProperty(query, async (sql) => {
      const r = resolveShards(shardKeyPlan(sql, catalog), [], remainder);
      const k = r.kind === 'error' ? `error ${r.sqlstate}` : r.kind;
      stats.set(k, (stats.get(k) ?? 0) + 1);
      if (r.kind === 'split-insert') {
        // Each part inserts only rows whose partition its group owns, and the parts add up.
        let rowsIn = 0;
        await c.query('SET search_path = f');
        for (const part of r.parts) {
          await c.query('BEGIN');
          const got = await c.query<{ user_id: string }>(`WITH i AS (${part.sql}) SELECT user_id FROM i`);
          await c.query('ROLLBACK');
          for (const row of got.rows) {
            rowsIn++;
            if (placement[rem.get(String(Number(row.user_id)))!] !== part.group) {
              failures++;
              console.log('SPLIT MISMATCH', sql, part);
              return false;
            }
          }
        }
        checked++;
        return rowsIn === 2;
      }
      if (r.kind !== 'one') return;
      const isDml = /^(DELETE|UPDATE|INSERT)/.test(sql);
      const wrapped = isDml
        ? `WITH q AS (${sql}) SELECT coalesce(jsonb_agg(q ORDER BY q::text), '[]') AS a FROM q`
        : `SELECT coalesce(jsonb_agg(q ORDER BY q::text), '[]') AS a FROM (${sql}) q`;
      if (isDml) await c.query('BEGIN');
      await c.query('SET search_path = f');
      let all: unknown;
      try {
        all = (await c.query<{ a: unknown }>(wrapped)).rows[0]!.a;
      } catch {
        if (isDml) await c.query('ROLLBACK');
        stats.set('pg-error', (stats.get('pg-error') ?? 0) + 1);
        return true;
      }
      if (isDml) await c.query('ROLLBACK');
      await c.query(`SET search_path = g${r.group}`);
      if (isDml) await c.query('BEGIN');
      const part = (await c.query<{ a: unknown }>(wrapped)).rows[0]!.a;
      if (isDml) await c.query('ROLLBACK');
      checked++;
      if (JSON.stringify(all) !== JSON.stringify(part)) {
        failures++;
        console.log(
          'MISMATCH',
          r.group,
          sql,
          '\n  all:',
          JSON.stringify(all).slice(0, 200),
          '\n  grp:',
          JSON.stringify(part).slice(0, 200),
        );
        return false;
      }
      return true;
    }),
    { numRuns: Number(process.argv[2] ?? 2000), endOnFailure: true },
  )
  .catch((e: unknown) => {
    console.log(String(e).slice(0, 2000));
    process.exitCode = 1;
  });
console.log(
  'routes:',
  Object.fromEntries(stats),
  'checked one-group answers and split INSERTs:',
  checked,
  'mismatches:',
  failures,
);
for (const s of ['f', 'g0', 'g1']) await c.query(`DROP SCHEMA ${s} CASCADE`);
await c.end();
if (failures > 0) process.exitCode = 1;

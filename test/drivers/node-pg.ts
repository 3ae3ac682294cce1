/**
 * node-postgres (`pg`): a round trip of the common types as Bind parameters and results, named
 * prepared statements reused across many transactions on many connections at once, a 200k-row
 * result, savepoints, an error inside a transaction, a session-level statement_timeout that must
 * not reach another session, and a CancelRequest sent on a second socket. COPY from Node is in
 * the postgres.js scenario (pg has no COPY support without pg-copy-streams).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type pg from 'pg';
import type { ScenarioFactory } from './scenario.js';
import type { DriverTarget } from './target.js';
import { adminScalar, appClient, dropTables, uniqueName, withApp } from './util.js';

interface PgError {
  code?: string;
}

/** `client.processID` / `client.secretKey` are set from BackendKeyData but not in @types/pg. */
interface BackendKey {
  processID: number | null;
  secretKey: number | null;
}

export const nodePgScenario: ScenarioFactory = () => ({
  name: 'node pg: types, named statements across transactions, 200k rows, savepoints, timeouts, cancel',
  async run(t: DriverTarget) {
    const table = uniqueName('nodepg');
    try {
      await withApp(t, (c) => typesRoundTrip(c));
      await namedStatements(t, table);
      await withApp(t, (c) => largeResult(c));
      await withApp(t, (c) => savepoints(c, `${table}_sp`));
      await withApp(t, (c) => errorInTransaction(c, `${table}_err`));
      await statementTimeout(t);
      await cancel(t);
    } finally {
      await dropTables(t, table, `${table}_sp`, `${table}_err`);
    }
  },
});

async function typesRoundTrip(c: pg.Client): Promise<void> {
  const ts = new Date('2024-02-29T23:59:58.123Z');
  const bytes = Buffer.from([0, 1, 2, 127, 128, 254, 255, 0x5c, 0x27]);
  const text = 'ünï©ødé ☃ 𝄞 \u00a0 tab\there \'quote\' "dq" back\\slash \r\n end';
  const json = { a: [1, 2.5, null, true], s: 'ü☃', nested: { x: { y: 'z' } } };
  const uuid = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';
  const big = '-123456789012345678901234567890.123456789012345678901234567890';
  const r = await c.query<Record<string, unknown>>(
    `SELECT $1::int2 AS i2, $2::int4 AS i4, $3::int8 AS i8, $4::numeric AS num,
            $5::float8 AS nan, $6::float8 AS inf, $7::float8 AS ninf, $8::bool AS b,
            $9::text AS t, $10::bytea AS by, $11::json AS j, $12::jsonb AS jb, $13::uuid AS u,
            $14::timestamptz AS ts, $15::date::text AS d, $16::interval AS iv,
            $17::int4[] AS ia, $18::text[] AS ta, $19::text AS nul, $20::int8 AS nul8,
            $4::numeric = '${big}'::numeric AS num_exact,
            $10::bytea = '\\x0001027f80feff5c27'::bytea AS by_exact,
            $14::timestamptz = '2024-02-29 23:59:58.123+00' AS ts_exact,
            $16::interval = '1 year 2 mons 3 days 04:05:06.789' AS iv_exact`,
    [
      -32768,
      2147483647,
      '-9223372036854775808',
      big,
      'NaN',
      'Infinity',
      '-Infinity',
      true,
      text,
      bytes,
      JSON.stringify(json),
      JSON.stringify(json),
      uuid,
      ts,
      '2024-02-29',
      '1 year 2 months 3 days 04:05:06.789',
      [1, null, -3],
      ['a', 'b,c', '"q"', null, '', 'NULL'],
      null,
      null,
    ],
  );
  const row = r.rows[0]!;
  assert.equal(row.i2, -32768);
  assert.equal(row.i4, 2147483647);
  assert.equal(row.i8, '-9223372036854775808');
  assert.equal(row.num, big);
  assert.ok(Number.isNaN(row.nan));
  assert.equal(row.inf, Infinity);
  assert.equal(row.ninf, -Infinity);
  assert.equal(row.b, true);
  assert.equal(row.t, text);
  assert.deepEqual(row.by, bytes);
  assert.deepEqual(row.j, json);
  assert.deepEqual(row.jb, json);
  assert.equal(row.u, uuid);
  assert.equal((row.ts as Date).toISOString(), ts.toISOString());
  assert.equal(row.d, '2024-02-29');
  const iv = row.iv as { toISOString(): string };
  assert.equal(iv.toISOString(), 'P1Y2M3DT4H5M6.789S');
  assert.deepEqual(row.ia, [1, null, -3]);
  assert.deepEqual(row.ta, ['a', 'b,c', '"q"', null, '', 'NULL']);
  assert.equal(row.nul, null);
  assert.equal(row.nul8, null);
  assert.equal(row.num_exact, true);
  assert.equal(row.by_exact, true);
  assert.equal(row.ts_exact, true);
  assert.equal(row.iv_exact, true);
}

const CLIENTS = 20;
const TXNS_PER_CLIENT = 50;

async function namedStatements(t: DriverTarget, table: string): Promise<void> {
  await withApp(t, (c) =>
    c.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, client int, n int, v text)`),
  );
  const clients = Array.from({ length: CLIENTS }, () => appClient(t));
  try {
    await Promise.all(clients.map((c) => c.connect()));
    const insert = `INSERT INTO ${table} (client, n, v) VALUES ($1, $2, $3) RETURNING id`;
    const check = `SELECT count(*)::int AS n FROM ${table} WHERE client = $1`;
    await Promise.all(
      clients.map(async (c, ci) => {
        for (let n = 0; n < TXNS_PER_CLIENT; n++) {
          await c.query('BEGIN');
          const ins = await c.query<{ id: string }>({
            name: 'q1',
            text: insert,
            values: [ci, n, `c${ci}n${n}`],
          });
          assert.equal(ins.rowCount, 1);
          const seen = await c.query<{ n: number }>({ name: 'q2', text: check, values: [ci] });
          assert.equal(seen.rows[0]!.n, n + 1, 'own uncommitted row visible in its transaction');
          await c.query('COMMIT');
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  assert.equal(await adminScalar(t, `SELECT count(*) FROM ${table}`), String(CLIENTS * TXNS_PER_CLIENT));
  assert.equal(
    await adminScalar(
      t,
      `SELECT count(DISTINCT (client, n)) FROM ${table} WHERE v = 'c' || client || 'n' || n`,
    ),
    String(CLIENTS * TXNS_PER_CLIENT),
  );
}

async function largeResult(c: pg.Client): Promise<void> {
  const N = 200_000;
  const r = await c.query<{ g: number; s: string }>(
    `SELECT g, md5(g::text) AS s FROM generate_series(1, ${N}) g`,
  );
  assert.equal(r.rows.length, N);
  let sum = 0;
  let prev = 0;
  for (const row of r.rows) {
    sum += row.g;
    assert.ok(row.g === prev + 1 && row.s.length === 32);
    prev = row.g;
  }
  assert.equal(sum, (N * (N + 1)) / 2);
  const server = await c.query<{ h: string }>(
    `SELECT md5(string_agg(md5(g::text), '' ORDER BY g)) AS h FROM generate_series(1, ${N}) g`,
  );
  const { createHash } = await import('node:crypto');
  assert.equal(
    createHash('md5')
      .update(r.rows.map((x) => x.s).join(''))
      .digest('hex'),
    server.rows[0]!.h,
  );
}

async function savepoints(c: pg.Client, table: string): Promise<void> {
  await c.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
  await c.query('BEGIN');
  await c.query(`INSERT INTO ${table} VALUES ($1)`, [1]);
  await c.query('SAVEPOINT a');
  await c.query(`INSERT INTO ${table} VALUES ($1)`, [2]);
  await c.query('ROLLBACK TO SAVEPOINT a');
  await c.query(`INSERT INTO ${table} VALUES ($1)`, [3]);
  await c.query('SAVEPOINT b');
  // An error rolled back to a savepoint leaves the transaction usable.
  await assert.rejects(c.query(`INSERT INTO ${table} VALUES ($1)`, [1]), (e: PgError) => e.code === '23505');
  await c.query('ROLLBACK TO SAVEPOINT b');
  await c.query(`INSERT INTO ${table} VALUES ($1)`, [4]);
  await c.query('RELEASE SAVEPOINT b');
  await c.query('COMMIT');
  const r = await c.query<{ ids: number[] }>(`SELECT array_agg(id ORDER BY id) AS ids FROM ${table}`);
  assert.deepEqual(r.rows[0]!.ids, [1, 3, 4]);
}

async function errorInTransaction(c: pg.Client, table: string): Promise<void> {
  await c.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
  await c.query('BEGIN');
  await c.query(`INSERT INTO ${table} VALUES (1)`);
  await assert.rejects(c.query('SELECT 1/0'), (e: PgError) => e.code === '22012');
  await assert.rejects(c.query('SELECT 1'), (e: PgError) => e.code === '25P02');
  await assert.rejects(
    c.query({ name: 'in_failed', text: 'SELECT $1::int', values: [1] }),
    (e: PgError) => e.code === '25P02',
  );
  await c.query('ROLLBACK');
  const r = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  assert.equal(r.rows[0]!.n, 0);
  // An error outside a transaction, in the extended protocol, then the same connection goes on.
  await assert.rejects(c.query('SELECT $1::int', ['not a number']), (e: PgError) => e.code === '22P02');
  assert.equal((await c.query<{ x: number }>('SELECT $1::int AS x', [5])).rows[0]!.x, 5);
}

const timeoutOf = async (c: pg.Client) =>
  (await c.query<{ s: string }>("SELECT current_setting('statement_timeout') AS s")).rows[0]!.s;

async function statementTimeout(t: DriverTarget): Promise<void> {
  const limited = appClient(t);
  const others = Array.from({ length: 4 }, () => appClient(t));
  await Promise.all([limited, ...others].map((c) => c.connect()));
  try {
    await limited.query("SET statement_timeout = '300ms'");
    const started = Date.now();
    const sleeping = limited.query('SELECT pg_sleep(3)').then(
      () => assert.fail('statement_timeout did not fire'),
      (e: PgError) => {
        assert.equal(e.code, '57014');
        return Date.now() - started;
      },
    );
    // Meanwhile other sessions have no timeout and sleep longer than it without being cancelled.
    const free = Promise.all(
      others.map(async (c) => {
        assert.equal(await timeoutOf(c), '0');
        await c.query('SELECT pg_sleep(0.6)');
        assert.equal(await timeoutOf(c), '0');
      }),
    );
    const [elapsed] = await Promise.all([sleeping, free]);
    assert.ok(elapsed < 2500, `the timeout fired, not the sleep ending (${elapsed} ms)`);
    // The limited session keeps its setting after the error, and stays usable.
    assert.equal(await timeoutOf(limited), '300ms');
    await assert.rejects(limited.query('SELECT pg_sleep(1)'), (e: PgError) => e.code === '57014');
    await limited.query('RESET statement_timeout');
    await limited.query('SELECT pg_sleep(0.4)');
    assert.equal(await timeoutOf(limited), '0');
  } finally {
    await Promise.all([limited, ...others].map((c) => c.end().catch(() => undefined)));
  }
}

/** The 16-byte CancelRequest: length 16, code 80877102, process id, secret key. */
function sendCancel(host: string, port: number, key: BackendKey): Promise<void> {
  const msg = Buffer.alloc(16);
  msg.writeInt32BE(16, 0);
  msg.writeInt32BE(80877102, 4);
  msg.writeInt32BE(key.processID ?? 0, 8);
  msg.writeInt32BE(key.secretKey ?? 0, 12);
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => s.end(msg));
    s.on('error', reject);
    // The server answers nothing and closes the socket once it has read the request.
    s.on('close', () => resolve());
    s.resume();
  });
}

async function cancel(t: DriverTarget): Promise<void> {
  await withApp(t, async (c) => {
    const key = c as unknown as BackendKey;
    assert.ok(key.processID !== null && key.secretKey !== null, 'BackendKeyData received');
    const started = Date.now();
    let settled = false;
    const q = c.query('SELECT pg_sleep(30)').finally(() => (settled = true));
    // A cancel that arrives before the query starts is ignored by the server, so repeat it.
    const canceller = (async () => {
      while (!settled && Date.now() - started < 10_000) {
        await new Promise((r) => setTimeout(r, 200));
        if (!settled) await sendCancel(t.host, t.port, key);
      }
    })();
    await assert.rejects(q, (e: PgError) => e.code === '57014');
    await canceller;
    assert.ok(Date.now() - started < 5000, `cancelled within 5 s (took ${Date.now() - started} ms)`);
    assert.equal((await c.query<{ x: number }>('SELECT 42 AS x')).rows[0]!.x, 42);
    // A wrong secret key cancels nothing.
    const q2 = c.query<{ x: number }>('SELECT pg_sleep(0.5), 1 AS x');
    await new Promise((r) => setTimeout(r, 100));
    await sendCancel(t.host, t.port, {
      processID: key.processID,
      secretKey: (key.secretKey ^ 0x5a5a5a5a) | 0,
    });
    assert.equal((await q2).rows[0]!.x, 1);
  });
}

/**
 * postgres.js: many queries pipelined on one connection, sql.begin transactions (committed and
 * rolled back), prepared statements (its default) reused across transactions, COPY FROM STDIN
 * and COPY TO STDOUT of 100k rows through streams, LISTEN/NOTIFY, and an error then recovery.
 */
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import postgres from 'postgres';
import type { ScenarioFactory } from './scenario.js';
import type { DriverTarget } from './target.js';
import { adminScalar, dropTables, uniqueName } from './util.js';

const COPY_ROWS = 100_000;

function connectTo(t: DriverTarget, max: number) {
  return postgres({
    host: t.host,
    port: t.port,
    user: t.user,
    pass: t.password,
    database: t.database,
    max,
    connect_timeout: 10,
    onnotice: () => undefined,
    connection: { application_name: 'pgscale-drivers' },
  });
}

export const postgresJsScenario: ScenarioFactory = () => ({
  name: 'postgres.js: pipelining, sql.begin, prepared statements, COPY in/out 100k rows, LISTEN/NOTIFY',
  async run(t: DriverTarget) {
    const table = uniqueName('pgjs');
    const sql = connectTo(t, 1);
    try {
      // 1000 queries in flight on one connection: postgres.js pipelines them.
      const all = await Promise.all(Array.from({ length: 1000 }, (_, i) => sql`SELECT ${i}::int AS i`));
      assert.deepEqual(
        all.map((r) => r[0]!.i as number),
        Array.from({ length: 1000 }, (_, i) => i),
      );

      await sql`CREATE TABLE ${sql(table)} (id int PRIMARY KEY, v text)`;
      // The same prepared statements, in and out of many transactions.
      for (let i = 0; i < 20; i++) {
        const got = await sql.begin(async (tx) => {
          await tx`INSERT INTO ${sql(table)} (id, v) VALUES (${i}, ${'tx ' + i})`;
          const [row] = await tx`SELECT count(*)::int AS n FROM ${sql(table)} WHERE id <= ${i}`;
          return row!.n as number;
        });
        assert.equal(got, i + 1);
        const [again] = await sql`SELECT v FROM ${sql(table)} WHERE id = ${i}`;
        assert.equal(again!.v, 'tx ' + i);
      }
      // A throwing callback rolls back; savepoints inside sql.begin.
      await assert.rejects(
        sql.begin(async (tx) => {
          await tx`INSERT INTO ${sql(table)} (id, v) VALUES (1000, 'rolled back')`;
          throw new Error('abort on purpose');
        }),
        /abort on purpose/,
      );
      await sql.begin(async (tx) => {
        await tx`INSERT INTO ${sql(table)} (id, v) VALUES (1001, 'kept')`;
        await assert.rejects(
          tx.savepoint((sp) => sp`INSERT INTO ${sql(table)} (id, v) VALUES (1001, 'duplicate')`),
          (e: { code?: string }) => e.code === '23505',
        );
        await tx`INSERT INTO ${sql(table)} (id, v) VALUES (1002, 'after savepoint')`;
      });
      const [extra] = await sql`SELECT array_agg(id ORDER BY id) AS ids FROM ${sql(table)} WHERE id >= 1000`;
      assert.deepEqual(extra!.ids, [1001, 1002]);

      // An error, then the same (only) connection goes on.
      await assert.rejects(sql`SELECT 1/0`, (e: { code?: string }) => e.code === '22012');
      await assert.rejects(sql`SELECT ${'x'}::int`, (e: { code?: string }) => e.code === '22P02');
      const [ok] = await sql`SELECT ${41}::int + 1 AS x`;
      assert.equal(ok!.x, 42);

      await copyInOut(sql, `${table}_copy`, t);
      await listenNotify(t);
    } finally {
      await sql.end({ timeout: 5 });
      await dropTables(t, table, `${table}_copy`);
    }
  },
});

async function copyInOut(sql: postgres.Sql, table: string, t: DriverTarget): Promise<void> {
  await sql`CREATE TABLE ${sql(table)} (id int, v text)`;
  function* rows() {
    // Chunks of 1000 lines, so the stream sees both large writes and many of them.
    for (let i = 1; i <= COPY_ROWS; i += 1000) {
      let chunk = '';
      for (let j = i; j < i + 1000 && j <= COPY_ROWS; j++) chunk += `${j}\trow ${j} ☃\n`;
      yield chunk;
    }
  }
  const writable = await sql`COPY ${sql(table)} (id, v) FROM STDIN`.writable();
  await pipeline(Readable.from(rows()), writable);
  assert.equal(await adminScalar(t, `SELECT count(*) FROM ${table}`), String(COPY_ROWS));
  assert.equal(
    await adminScalar(t, `SELECT sum(id) FROM ${table}`),
    String((COPY_ROWS * (COPY_ROWS + 1)) / 2),
  );
  assert.equal(await adminScalar(t, `SELECT v FROM ${table} WHERE id = 77777`), 'row 77777 ☃');

  const readable = await sql`COPY (SELECT * FROM ${sql(table)} ORDER BY id) TO STDOUT`.readable();
  let lines = 0;
  let sum = 0;
  let tail = '';
  await pipeline(
    readable,
    new Writable({
      write(chunk: Buffer, _enc, done) {
        const parts = (tail + chunk.toString('utf8')).split('\n');
        tail = parts.pop()!;
        for (const p of parts) {
          lines++;
          sum += Number(p.slice(0, p.indexOf('\t')));
        }
        done();
      },
    }),
  );
  assert.equal(tail, '');
  assert.equal(lines, COPY_ROWS);
  assert.equal(sum, (COPY_ROWS * (COPY_ROWS + 1)) / 2);
  // The connection is back to normal after both COPY directions.
  const [n] = await sql`SELECT count(*)::int AS n FROM ${sql(table)}`;
  assert.equal(n!.n, COPY_ROWS);
}

async function listenNotify(t: DriverTarget): Promise<void> {
  const channel = uniqueName('chan');
  const listener = connectTo(t, 1);
  const notifier = connectTo(t, 1);
  try {
    const received: string[] = [];
    let wake: () => void = () => undefined;
    const all = new Promise<void>((r) => (wake = r));
    const sub = await listener.listen(channel, (payload) => {
      received.push(payload);
      if (received.length === 3) wake();
    });
    await notifier.notify(channel, 'first');
    await notifier`SELECT pg_notify(${channel}, ${'second ☃'})`;
    // A notification sent inside a transaction is delivered only at commit.
    await notifier.begin(async (tx) => {
      await tx`SELECT pg_notify(${channel}, 'third')`;
    });
    await notifier
      .begin(async (tx) => {
        await tx`SELECT pg_notify(${channel}, 'never: rolled back')`;
        throw new Error('rollback');
      })
      .catch(() => undefined);
    await Promise.race([
      all,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`notifications: ${received.join(', ')}`)), 5000),
      ),
    ]);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(received, ['first', 'second ☃', 'third']);
    await sub.unlisten();
  } finally {
    await Promise.all([listener.end({ timeout: 5 }), notifier.end({ timeout: 5 })]);
  }
}

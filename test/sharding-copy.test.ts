/**
 * COPY … FROM STDIN into a distributed table and a reference table through `pgscale up` with two
 * groups: the proxy cuts the client's data into rows and sends each to the group of its shard
 * (every group for a reference table), in text, CSV (header, quoted delimiters and newlines, the
 * key not first) and binary format, with rows spanning CopyData messages; the count is the sum;
 * every row sits where PostgreSQL's hash partitioning puts it. With node-postgres, psql's \copy,
 * postgres.js, psycopg2 and pgjdbc's CopyManager. A bad row (refused by its group, a NULL or
 * unreadable key), a CopyFail from the client, or a COPY inside a transaction block fails the
 * whole COPY and leaves every group unchanged; the session goes on; other clients are served
 * while a COPY streams.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets, until } from './harness.js';
import { placement, upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { expectSuccess, findClientTools, required, run, runJavaDriver } from './drivers/util.js';
import { pgGroupSession } from '../src/sharding/distribute-copy.js';
import { RawClient, fe } from './raw-client.js';

const bins = binarySets()[0]!;
const tools = findClientTools();
const javaSource = fileURLToPath(new URL('./drivers/ShardCopy.java', import.meta.url));

/** COPY … FROM STDIN with node-postgres (its Submittable COPY interface, as pg-copy-streams uses). */
function copyIn(c: pg.Client, sql: string, data: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<number> {
  const source: AsyncIterable<Buffer> = Symbol.asyncIterator in data ? data : Readable.from(data);
  return pgGroupSession('proxy', c).copyIn(sql, source);
}

/** `text` cut into pieces of `size` bytes (rows span CopyData messages). */
function pieces(text: string | Buffer, size: number): Buffer[] {
  const b = typeof text === 'string' ? Buffer.from(text) : text;
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

function textRows(from: number, to: number, name = (k: number) => `user ${k}`): string {
  let s = '';
  for (let k = from; k <= to; k++) s += `${k}\t${name(k)}\tu${k}@example.com\n`;
  return s;
}

describe('COPY FROM STDIN into distributed and reference tables through pgscale up (two groups)', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 0 });
    app = await sc.connectApp();
    for (let g = 0; g < 2; g++) direct.push(await sc.connectGroup(g));
    await app.query(
      'CREATE TABLE users (user_id bigint PRIMARY KEY, name text, email text, created_at timestamptz DEFAULT now())',
    );
    await app.query("SELECT create_distributed_table('users', 'user_id')");
    await app.query('CREATE TABLE countries (code text PRIMARY KEY, name text)');
    await app.query("SELECT create_reference_table('countries')");
    await app.query('CREATE TABLE notes (id int, body text)');
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  /** Rows of users with keys in [from, to], per group. */
  async function perGroup(from: number, to: number): Promise<number[]> {
    return Promise.all(
      direct.map(
        async (d) =>
          (
            await d.query<{ n: number }>(
              'SELECT count(*)::int AS n FROM users WHERE user_id BETWEEN $1 AND $2',
              [from, to],
            )
          ).rows[0]!.n,
      ),
    );
  }
  const total = async (from: number, to: number) => (await perGroup(from, to)).reduce((a, b) => a + b, 0);

  /** Every key in [from, to] sits on the group and shard the proxy names for it. */
  async function checkPlacement(from: number, to: number): Promise<void> {
    const where = await placement(direct, 'users', 'user_id');
    for (let k = from; k <= to; k += Math.max(1, Math.floor((to - from) / 40))) {
      const p = where.get(String(k));
      assert.ok(p, `key ${k} stored`);
      const r = await app.query<{ s: string }>(
        `SELECT get_shard_id_for_distribution_column('users', ${k}) AS s`,
      );
      assert.equal(Number(r.rows[0]!.s), p.shard, `key ${k}: the proxy's shard is PostgreSQL's`);
    }
  }

  test('node-postgres, text format: rows split by group across CopyData messages, the count summed', async () => {
    const n = await copyIn(
      app,
      'COPY users (user_id, name, email) FROM STDIN',
      pieces(textRows(1, 3000), 777),
    );
    assert.equal(n, 3000);
    const per = await perGroup(1, 3000);
    assert.equal(per[0]! + per[1]!, 3000);
    assert.ok(
      per.every((x) => x > 0),
      `rows on both groups: ${per.join(', ')}`,
    );
    await checkPlacement(1, 3000);
    const r = await app.query<{ name: string }>('SELECT name FROM users WHERE user_id = 2999');
    assert.equal(r.rows[0]!.name, 'user 2999');
  });

  test('psql \\copy, CSV with a header, quoted delimiters and newlines, the key not first', async () => {
    const psql = required(tools.psql, 'psql', 'install postgresql-client');
    let csv = 'name,user_id,email\n';
    for (let k = 10_001; k <= 10_500; k++)
      csv += `"user ${k}, ""quoted""\nsecond line",${k},u${k}@example.com\n`;
    const r = await run(
      psql,
      [
        '-h',
        sc.app.host,
        '-p',
        String(sc.app.port),
        '-U',
        sc.app.user,
        '-d',
        sc.app.database,
        '-X',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        '\\copy users (name, user_id, email) FROM STDIN WITH (FORMAT csv, HEADER true)',
      ],
      { env: { ...process.env, PGPASSWORD: sc.app.password }, input: csv },
    );
    expectSuccess(r, 'psql \\copy');
    assert.match(r.stdout, /COPY 500/);
    assert.equal(await total(10_001, 10_500), 500);
    const one = await app.query<{ name: string }>('SELECT name FROM users WHERE user_id = 10250');
    assert.equal(one.rows[0]!.name, 'user 10250, "quoted"\nsecond line');
    await checkPlacement(10_001, 10_500);
  });

  test('binary format, NULLs in other columns', async () => {
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
    const rows: Buffer[] = [];
    for (let k = 20_001; k <= 20_400; k++) {
      const key = Buffer.alloc(8);
      key.writeBigInt64BE(BigInt(k));
      const name = Buffer.from(`user ${k}`);
      const f = (b: Buffer | null) => {
        const len = Buffer.alloc(4);
        len.writeInt32BE(b === null ? -1 : b.length);
        return b === null ? len : Buffer.concat([len, b]);
      };
      rows.push(Buffer.concat([Buffer.from([0, 3]), f(key), f(name), f(k % 2 ? null : Buffer.from('x@y'))]));
    }
    const data = Buffer.concat([header, ...rows, Buffer.from([0xff, 0xff])]);
    const n = await copyIn(
      app,
      'COPY users (user_id, name, email) FROM STDIN (FORMAT binary)',
      pieces(data, 1000),
    );
    assert.equal(n, 400);
    assert.equal(await total(20_001, 20_400), 400);
    const r = await app.query<{ email: string | null }>('SELECT email FROM users WHERE user_id = 20001');
    assert.equal(r.rows[0]!.email, null);
    await checkPlacement(20_001, 20_400);
  });

  test('postgres.js, a writable COPY stream', async () => {
    const sql = postgres({ ...sc.app, username: sc.app.user, max: 1, onnotice: () => undefined });
    try {
      const w = await sql`COPY users (user_id, name, email) FROM STDIN`.writable();
      await pipeline(Readable.from(pieces(textRows(30_001, 31_000), 4096)), w);
      assert.equal(await total(30_001, 31_000), 1000);
      const [row] = await sql`SELECT name FROM users WHERE user_id = ${30_500}`;
      assert.equal(row!.name, 'user 30500');
    } finally {
      await sql.end();
    }
  });

  test('psycopg2 copy_expert', async () => {
    const script = `
import io, os, psycopg2
c = psycopg2.connect(host=os.environ['PGHOST'], port=os.environ['PGPORT'], user=os.environ['PGUSER'],
                     password=os.environ['PGPASSWORD'], dbname=os.environ['PGDATABASE'])
buf = io.StringIO(''.join('%d\\tuser %d\\tu%d@example.com\\n' % (k, k, k) for k in range(40001, 41001)))
cur = c.cursor()
cur.copy_expert('COPY users (user_id, name, email) FROM STDIN', buf)
assert cur.rowcount == 1000, cur.rowcount
c.commit()
print('ok')
`;
    const r = await run(tools.python, ['-c', script], {
      env: {
        ...process.env,
        PGHOST: sc.app.host,
        PGPORT: String(sc.app.port),
        PGUSER: sc.app.user,
        PGPASSWORD: sc.app.password,
        PGDATABASE: sc.app.database,
        PYTHONDONTWRITEBYTECODE: '1',
      },
      timeoutMs: 120_000,
    });
    if (r.code !== 0 && /No module named 'psycopg2'/.test(r.stderr))
      throw new Error(`${tools.python} has no psycopg2: install python3-psycopg2\n${r.stderr}`);
    expectSuccess(r, 'psycopg2 copy_expert');
    assert.equal(await total(40_001, 41_000), 1000);
  });

  test('pgjdbc CopyManager (CSV)', async () => {
    await runJavaDriver(tools, javaSource, 'ShardCopy', sc.app, { DRV_FROM: '50001', DRV_TO: '51000' });
    assert.equal(await total(50_001, 51_000), 1000);
    const one = await app.query<{ name: string }>('SELECT name FROM users WHERE user_id = 50007');
    assert.equal(one.rows[0]!.name, 'user 50007, jdbc');
  });

  test('a reference table: every row on every group; the count is the rows once', async () => {
    const n = await copyIn(app, 'COPY countries FROM STDIN (FORMAT csv)', [
      Buffer.from('fr,France\nde,Germany\n"it","Ita'),
      Buffer.from('ly"\n'),
    ]);
    assert.equal(n, 3);
    for (const d of direct) {
      const r = await d.query<{ code: string; name: string }>(
        'SELECT code, name FROM countries ORDER BY code',
      );
      assert.deepEqual(
        r.rows.map((x) => `${x.code}:${x.name}`),
        ['de:Germany', 'fr:France', 'it:Italy'],
      );
    }
  });

  test('a row refused by its group fails the whole COPY: nothing on any group; the session goes on', async () => {
    let data = '';
    for (let k = 60_001; k <= 60_300; k++)
      data += `${k}\tuser ${k}\t${k === 60_250 ? 'not a time' : '2026-01-01'}\n`;
    await assert.rejects(
      copyIn(app, 'COPY users (user_id, name, created_at) FROM STDIN', pieces(data, 500)),
      (e: { code?: string }) => e.code === '22007',
    );
    assert.deepEqual(await perGroup(60_001, 60_300), [0, 0]);
    // A duplicate key (the primary key of its group's partition) fails it the same way.
    await assert.rejects(
      copyIn(app, 'COPY users (user_id, name) FROM STDIN', [Buffer.from('60400\ta\n1\tdup\n')]),
      (e: { code?: string }) => e.code === '23505',
    );
    assert.deepEqual(await perGroup(60_400, 60_400), [0, 0]);
    const r = await app.query<{ n: number }>('SELECT count(*)::int AS n FROM users WHERE user_id = 1');
    assert.equal(r.rows[0]!.n, 1);
  });

  test('a NULL or unreadable key, or no key column, fails the COPY before any group has a row', async () => {
    await assert.rejects(
      copyIn(app, 'COPY users (user_id, name) FROM STDIN', [Buffer.from('70001\ta\n\\N\tb\n')]),
      (e: { code?: string }) => e.code === '23502',
    );
    await assert.rejects(
      copyIn(app, 'COPY users (user_id, name) FROM STDIN', [Buffer.from('70002\ta\nx7\tb\n')]),
      (e: { code?: string }) => e.code === '22P02',
    );
    await assert.rejects(
      copyIn(app, 'COPY users (name) FROM STDIN', [Buffer.from('a\n')]),
      (e: { code?: string }) => e.code === '0A000',
    );
    // PostgreSQL's own refusal of the statement (no such column) comes from the groups.
    await assert.rejects(
      copyIn(app, 'COPY users (user_id, nope) FROM STDIN', [Buffer.from('1\ta\n')]),
      (e: { code?: string }) => e.code === '42703',
    );
    assert.deepEqual(await perGroup(70_001, 70_002), [0, 0]);
    assert.equal((await app.query('SELECT 1 AS one')).rows[0].one, 1);
  });

  test('CopyFail from the client rolls every group back', async () => {
    const failing = (async function* () {
      yield Buffer.from(textRows(80_001, 80_200));
      await new Promise((r) => setImmediate(r));
      throw new Error('the client gave up');
    })();
    await assert.rejects(copyIn(app, 'COPY users (user_id, name, email) FROM STDIN', failing), /gave up/);
    assert.deepEqual(await perGroup(80_001, 80_200), [0, 0]);
    assert.equal((await app.query('SELECT 2 AS two')).rows[0].two, 2);
  });

  test('as the first statement of a transaction block: kept until COMMIT or ROLLBACK', async () => {
    await app.query('BEGIN');
    assert.equal(
      await copyIn(app, 'COPY users (user_id, name, email) FROM STDIN', [
        Buffer.from(textRows(90_001, 90_100)),
      ]),
      100,
    );
    assert.deepEqual(await perGroup(90_001, 90_100), [0, 0], 'not visible before COMMIT');
    await app.query('COMMIT');
    assert.equal(await total(90_001, 90_100), 100);

    await app.query('BEGIN');
    await copyIn(app, 'COPY users (user_id, name, email) FROM STDIN', [
      Buffer.from(textRows(90_201, 90_300)),
    ]);
    await app.query('ROLLBACK');
    assert.deepEqual(await perGroup(90_201, 90_300), [0, 0]);

    // Anything else in that block would need a transaction on several groups: refused, the block fails.
    await app.query('BEGIN');
    await copyIn(app, 'COPY users (user_id, name, email) FROM STDIN', [
      Buffer.from(textRows(90_401, 90_500)),
    ]);
    await assert.rejects(app.query('SELECT 1'), (e: { code?: string }) => e.code === '0A000');
    await assert.rejects(app.query('SELECT 2'), (e: { code?: string }) => e.code === '25P02');
    const end = await app.query('COMMIT');
    assert.equal(end.command, 'ROLLBACK');
    assert.deepEqual(await perGroup(90_401, 90_500), [0, 0]);

    // A bad row fails the block; COMMIT then rolls back.
    await app.query('BEGIN');
    await assert.rejects(
      copyIn(app, 'COPY users (user_id, name) FROM STDIN', [Buffer.from('90601\ta\n\\N\tb\n')]),
      (e: { code?: string }) => e.code === '23502',
    );
    assert.equal((await app.query('COMMIT')).command, 'ROLLBACK');
    assert.deepEqual(await perGroup(90_601, 90_601), [0, 0]);
  });

  test('inside a transaction block after another statement: 0A000, and the transaction rolls back', async () => {
    await app.query('BEGIN');
    await app.query('SELECT name FROM users WHERE user_id = 1');
    await assert.rejects(
      copyIn(app, 'COPY users (user_id, name) FROM STDIN', [Buffer.from('90701\ta\n')]),
      (e: { code?: string }) => e.code === '0A000',
    );
    await app.query('ROLLBACK');
    assert.deepEqual(await perGroup(90_701, 90_701), [0, 0]);
    assert.equal((await app.query('SELECT 3 AS three')).rows[0].three, 3);
  });

  test('a client that leaves in the middle of a COPY leaves no row and no open transaction behind', async () => {
    const c = await sc.connectApp();
    const copying = `SELECT count(*)::int AS n FROM pg_stat_activity
                      WHERE application_name = 'pgscale sharding' AND query LIKE 'COPY users%' AND state <> 'idle'`;
    const running = async () => {
      let n = 0;
      for (const d of direct) n += (await d.query<{ n: number }>(copying)).rows[0]!.n;
      return n;
    };
    const source = (async function* () {
      yield Buffer.from(textRows(95_001, 95_100));
      await new Promise(() => undefined); // the client never finishes
    })();
    void copyIn(c, 'COPY users (user_id, name, email) FROM STDIN', source).catch(() => undefined);
    await until('the COPY to run on the groups', async () => ((await running()) > 0 ? true : null), 30_000);
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await until('the groups to end the COPY', async () => ((await running()) === 0 ? true : null), 30_000);
    assert.deepEqual(await perGroup(95_001, 95_100), [0, 0]);
    // Nothing holds a lock on the table: DDL on every group goes through at once.
    await app.query("SET statement_timeout = '20s'");
    await app.query('CREATE INDEX users_name ON users (name)');
    await app.query('DROP INDEX users_name');
    await app.query('RESET statement_timeout');
  });

  test('protocol edges: stray COPY messages dropped; Flush and Sync ignored in a COPY; another message fails it (08P01) and is then answered', async () => {
    const c = await RawClient.connect(sc.app.port, sc.app.host);
    try {
      await c.loginScram({ user: sc.app.user, database: sc.app.database }, sc.app.password);
      // CopyData and CopyDone with no COPY (and no server attached) are dropped, as PostgreSQL drops them.
      c.send(
        Buffer.concat([
          fe({ name: 'CopyData', data: Buffer.from('1\n') }, { name: 'CopyDone' }),
          fe({ name: 'Query', query: 'SELECT 11' }),
        ]),
      );
      assert.deepEqual(RawClient.rows(await c.until('Z', 30_000)), [['11']]);
      c.send(fe({ name: 'Query', query: 'COPY users (user_id, name) FROM STDIN' }));
      await c.until('G', 30_000);
      c.send(
        fe(
          { name: 'CopyData', data: Buffer.from('96001\ta\n') },
          { name: 'Flush' },
          { name: 'Sync' },
          { name: 'CopyData', data: Buffer.from('96002\tb\n') },
          { name: 'Query', query: 'SELECT 12' },
        ),
      );
      await c.expectError('08P01', { timeoutMs: 30_000 });
      await c.until('Z', 30_000);
      assert.deepEqual(RawClient.rows(await c.until('Z', 30_000)), [['12']]);
      assert.deepEqual(await perGroup(96_001, 96_002), [0, 0]);
      // Flush and Sync inside a COPY that completes change nothing.
      c.send(fe({ name: 'Query', query: 'COPY users (user_id, name) FROM STDIN' }));
      await c.until('G', 30_000);
      c.send(
        fe(
          { name: 'CopyData', data: Buffer.from('96003\ta\n') },
          { name: 'Sync' },
          { name: 'CopyData', data: Buffer.from('96004\tb\n') },
          { name: 'CopyDone' },
        ),
      );
      const done = await c.until('Z', 30_000);
      assert.ok(
        done.some((m) => m.type === 'C'),
        'COPY completed',
      );
      assert.equal(await total(96_003, 96_004), 2);
    } finally {
      c.destroy();
    }
  });

  test('a local table is copied on group 0 as before', async () => {
    const n = await copyIn(app, 'COPY notes FROM STDIN', [Buffer.from('1\tone\n2\ttwo\n')]);
    assert.equal(n, 2);
    const r = await direct[0]!.query<{ n: number }>('SELECT count(*)::int AS n FROM notes');
    assert.equal(r.rows[0]!.n, 2);
  });

  test('a large COPY streams through; other clients are served meanwhile', async () => {
    const other = await sc.connectApp();
    try {
      let served = 0;
      let copying = true;
      const reads = (async () => {
        while (copying) {
          const r = await other.query<{ name: string }>('SELECT name FROM users WHERE user_id = 2');
          assert.equal(r.rows[0]!.name, 'user 2');
          served++;
        }
      })();
      const rows = 200_000;
      const source = (async function* () {
        const step = 5000;
        for (let k = 1_000_001; k <= 1_000_000 + rows; k += step) {
          yield Buffer.from(textRows(k, k + step - 1, () => 'x'.repeat(40)));
          await new Promise((r) => setImmediate(r));
        }
      })();
      const n = await copyIn(app, 'COPY users (user_id, name, email) FROM STDIN', source).finally(() => {
        copying = false;
      });
      await reads;
      assert.equal(n, rows);
      assert.equal(await total(1_000_001, 1_000_000 + rows), rows);
      assert.ok(served > 0, 'another client was served while the COPY ran');
    } finally {
      await other.end().catch(() => undefined);
    }
  });
});

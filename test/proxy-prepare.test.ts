/**
 * SQL PREPARE / EXECUTE / DEALLOCATE, psql's \gdesc and currval()/lastval() through the proxy
 * (issue #12, items 3 and 4), in both pool modes, with a replica in the read set, with pg,
 * postgres.js and psql. Session mode must behave as a direct connection; transaction mode hides
 * the renaming where it can (42P05, 26000 with the client's name, error positions) and pins the
 * client where it cannot (dynamic SQL, CREATE TEMP TABLE … AS EXECUTE). currval() must never
 * read another client's sequence state.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import pg from 'pg';
import postgres from 'postgres';
import { appLibpqEnv, startAppProxy, startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import type { ProxyServer } from '../src/proxy/proxy-server.js';
import { findClientTools } from './drivers/util.js';

const tools = findClientTools();

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdin.end(input);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      // The two pipes interleave at random: compared one after the other.
      resolve(`${out}\n--- stderr ---\n${err}`);
    });
  });
}

interface PgError {
  code?: string;
  message?: string;
  position?: string;
}

async function errorOf(p: Promise<unknown>): Promise<PgError> {
  try {
    await p;
  } catch (e) {
    const x = e as PgError;
    return { code: x.code, message: x.message, position: x.position };
  }
  assert.fail('expected an error');
}

describe('SQL PREPARE, \\gdesc and currval through the proxy (both pool modes, a replica)', () => {
  let fx: ProxyFixture;
  const extra: ProxyServer[] = [];
  const ports: Record<'transaction' | 'session', number> = { transaction: 0, session: 0 };
  let onePort = 0;

  const startProxy = async (overrides: Record<string, unknown>): Promise<number> => {
    const { proxy, port } = await startAppProxy(fx, overrides, true);
    extra.push(proxy);
    return port;
  };
  const connect = async (port: number): Promise<pg.Client> => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: fx.appPassword,
      database: 'app',
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  /** The same client straight to the server (as app), for the expected answer. */
  const direct = () => connect(fx.serverPort);

  before(async () => {
    fx = await startProxyFixture({}, {}, 1);
    const d = await fx.direct();
    await d.query(`
      CREATE TABLE seqt (id serial PRIMARY KEY, v int, neg int DEFAULT -1 * currval('seqt_id_seq'));
      CREATE SEQUENCE seqs;
      GRANT ALL ON seqt, seqt_id_seq, seqs TO app;
      GRANT CREATE ON SCHEMA public TO app;`);
    await d.end();
    // Replicas have replayed the schema before the first read goes there.
    ports.transaction = await startProxy({ pool_mode: 'transaction' });
    ports.session = await startProxy({ pool_mode: 'session' });
    onePort = await startProxy({ pool_mode: 'transaction', default_pool_size: 1 });
  });
  after(async () => {
    for (const p of extra) await p.stop();
    await fx?.close();
  });

  for (const mode of ['session', 'transaction'] as const) {
    test(`${mode}: duplicate PREPARE is 42P05, unknown names 26000 under their own name, positions as direct (pg)`, async () => {
      const c = await connect(ports[mode]);
      const d = await direct();
      try {
        await c.query('PREPARE q1 AS SELECT 1 AS a');
        assert.deepEqual(await errorOf(c.query('PREPARE q1 AS SELECT 2 AS a')), {
          code: '42P05',
          message: 'prepared statement "q1" already exists',
          position: undefined,
        });
        assert.deepEqual((await c.query('EXECUTE q1')).rows, [{ a: 1 }]);
        assert.equal(
          (await errorOf(c.query('EXECUTE nope'))).message,
          'prepared statement "nope" does not exist',
        );
        assert.equal((await errorOf(c.query('EXECUTE nope'))).code, '26000');
        assert.equal((await errorOf(c.query('DEALLOCATE nope'))).code, '26000');
        // A failed PREPARE leaves no statement; the name can be prepared afterwards.
        await errorOf(c.query('PREPARE bad AS SELECT no_such_column'));
        assert.equal(
          (await errorOf(c.query('EXECUTE bad'))).message,
          'prepared statement "bad" does not exist',
        );
        await c.query('PREPARE bad AS SELECT 7 AS b');
        assert.deepEqual((await c.query('EXECUTE bad')).rows, [{ b: 7 }]);
        await c.query('DEALLOCATE q1');
        assert.equal((await errorOf(c.query('EXECUTE q1'))).code, '26000');
        await c.query('PREPARE q1 AS SELECT 3 AS a');
        assert.deepEqual((await c.query('EXECUTE q1')).rows, [{ a: 3 }]);

        // Errors carry the position of the client's own text.
        await c.query('PREPARE foo(int) AS SELECT $1 AS x');
        await d.query('PREPARE foo(int) AS SELECT $1 AS x');
        for (const sql of [
          'PREPARE p1 AS SELECT $1a',
          "EXECUTE foo ('bad')",
          'EXECUTE foo(1); SELECT no_such_column',
          'PREPARE p2 AS SELECT 1; SELECT 1 FROM no_such_table',
        ]) {
          const got = await errorOf(c.query(sql));
          const want = await errorOf(d.query(sql));
          assert.deepEqual(got, want, sql);
          await c.query('DEALLOCATE ALL').catch(() => undefined);
          await d.query('DEALLOCATE ALL');
          await c.query('PREPARE foo(int) AS SELECT $1 AS x');
          await d.query('PREPARE foo(int) AS SELECT $1 AS x');
        }
        {
          // The client's own names, as PostgreSQL lists them, and gone after DEALLOCATE
          // (transaction mode: reading the view pins the client, whose names become the server's).
          await c.query('PREPARE listed AS SELECT 1');
          const { rows } = await c.query<{ name: string; statement: string }>(
            'SELECT name, statement FROM pg_prepared_statements ORDER BY name',
          );
          assert.deepEqual(rows, [
            { name: 'foo', statement: 'PREPARE foo(int) AS SELECT $1 AS x' },
            { name: 'listed', statement: 'PREPARE listed AS SELECT 1' },
          ]);
          await c.query('DEALLOCATE listed');
          const n = await c.query(
            "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'listed'",
          );
          assert.equal(n.rows[0].n, 0);
        }
      } finally {
        await c.end();
        await d.end();
      }
    });

    test(`${mode}: CREATE TABLE AS EXECUTE, EXPLAIN EXECUTE and EXECUTE in PL/pgSQL dynamic SQL (pg)`, async () => {
      const c = await connect(ports[mode]);
      try {
        await c.query('PREPARE q5(int) AS SELECT $1 * 2 AS v');
        await c.query(`CREATE TABLE ctas_${mode} AS EXECUTE q5(4)`);
        assert.deepEqual((await c.query(`SELECT v FROM ctas_${mode}`)).rows, [{ v: 8 }]);
        await c.query(`DROP TABLE ctas_${mode}`);
        assert.ok((await c.query('EXPLAIN EXECUTE q5(1)')).rows.length > 0);
        await c.query(
          "DO $$ DECLARE r int; BEGIN EXECUTE 'EXECUTE q5(5)' INTO r; IF r <> 10 THEN RAISE 'got %', r; END IF; END $$",
        );
        assert.deepEqual((await c.query('EXECUTE q5(6)')).rows, [{ v: 12 }]);
        // Pinned in transaction mode: listed once, under the client's own name.
        const listed = await c.query(
          "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%$1 * 2 AS v'",
        );
        assert.deepEqual(listed.rows, [{ statement: 'PREPARE q5(int) AS SELECT $1 * 2 AS v' }]);
      } finally {
        await c.end();
      }
      const t = await connect(ports[mode]);
      try {
        await t.query('PREPARE q6(int) AS SELECT $1 * 3 AS v');
        await t.query('CREATE TEMP TABLE q6r AS EXECUTE q6(7)');
        assert.deepEqual((await t.query('SELECT v FROM q6r')).rows, [{ v: 21 }]);
        assert.deepEqual((await t.query('EXECUTE q6(1)')).rows, [{ v: 3 }]);
        assert.equal((await errorOf(t.query('PREPARE q6 AS SELECT 1'))).code, '42P05');
      } finally {
        await t.end();
      }
    });

    test(`${mode}: postgres.js sees PostgreSQL's errors for SQL PREPARE`, async () => {
      const sql = postgres({
        host: '127.0.0.1',
        port: ports[mode],
        user: 'app',
        password: fx.appPassword,
        database: 'app',
        max: 1,
        onnotice: () => undefined,
      });
      try {
        await sql.unsafe('PREPARE pj AS SELECT 1 AS a').simple();
        const dup = await errorOf(sql.unsafe('PREPARE pj AS SELECT 2 AS a').simple());
        assert.equal(dup.code, '42P05');
        assert.equal(dup.message, 'prepared statement "pj" already exists');
        assert.deepEqual([...(await sql.unsafe('EXECUTE pj').simple())], [{ a: 1 }]);
        const unknown = await errorOf(sql.unsafe('EXECUTE pj_nope').simple());
        assert.equal(unknown.code, '26000');
        assert.equal(unknown.message, 'prepared statement "pj_nope" does not exist');
        // Through the extended protocol too (postgres.js's default).
        assert.deepEqual([...(await sql.unsafe('EXECUTE pj'))], [{ a: 1 }]);
      } finally {
        await sql.end();
      }
    });

    test(
      `${mode}: psql's \\gdesc and SQL PREPARE errors read as on a direct connection`,
      { skip: tools.psql ? false : 'no psql' },
      async () => {
        const script = [
          'SELECT 1 AS first, 2 AS second \\gdesc',
          'PREPARE test AS SELECT 1 AS first, 2 AS second;',
          'EXECUTE test \\gdesc',
          'EXECUTE test;',
          'PREPARE test AS SELECT 3;',
          'PREPARE p1 AS SELECT $1a;',
          "PREPARE foo(int) AS SELECT $1; EXECUTE foo ('bad');",
          'SELECT 2 AS third \\gdesc',
          '',
        ].join('\n');
        const env = (port: number) => appLibpqEnv(port, fx.appPassword);
        const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=default'];
        const want = await run(tools.psql!, args, env(fx.serverPort), script);
        const got = await run(tools.psql!, args, env(ports[mode]), script);
        assert.match(want, /first\s+\|\s+integer/);
        assert.equal(got, want);
      },
    );
  }

  test("transaction: currval() and lastval() read the client's own sequence state, also through a column default (pg)", async () => {
    const a = await connect(ports.transaction);
    const b = await connect(ports.transaction);
    try {
      const { rows } = await a.query<{ id: number; neg: number }>(
        'INSERT INTO seqt(v) VALUES (1) RETURNING id, neg',
      );
      const id = rows[0]!.id;
      assert.equal(rows[0]!.neg, -id);
      const theirs: number[] = [];
      for (let i = 0; i < 3; i++)
        theirs.push(Number((await b.query("SELECT nextval('seqt_id_seq') AS n")).rows[0].n));
      const own = await a.query("SELECT currval('seqt_id_seq')::int AS c, lastval()::int AS l");
      assert.deepEqual(own.rows, [{ c: id, l: id }]);
      // A default currval() the text does not show.
      const r = await a.query<{ neg: number }>('INSERT INTO seqt(id, v) VALUES (-5, 2) RETURNING neg');
      assert.equal(r.rows[0]!.neg, -id);
      const bc = await b.query("SELECT currval('seqt_id_seq')::int AS c");
      assert.equal(bc.rows[0].c, theirs[2]);
      // An explicit setval and nextval of another sequence.
      await a.query("SELECT setval('seqs', 500)");
      assert.equal((await b.query("SELECT nextval('seqs')::int AS n")).rows[0].n, 501);
      assert.equal((await a.query("SELECT currval('seqs')::int AS c")).rows[0].c, 500);
      // A client that never called nextval gets 55000, as from PostgreSQL.
      const c = await connect(ports.transaction);
      try {
        assert.equal((await errorOf(c.query("SELECT currval('seqs')"))).code, '55000');
        assert.equal((await errorOf(c.query('SELECT lastval()'))).code, '55000');
      } finally {
        await c.end();
      }
    } finally {
      await a.end();
      await b.end();
    }
  });

  test("transaction, one server connection: currval() is the client's own value or 55000, never another client's (pg, postgres.js)", async () => {
    const a = await connect(onePort);
    const b = postgres({
      host: '127.0.0.1',
      port: onePort,
      user: 'app',
      password: fx.appPassword,
      database: 'app',
      max: 1,
    });
    try {
      for (let round = 0; round < 5; round++) {
        const id = (await a.query<{ id: number }>('INSERT INTO seqt(v) VALUES (3) RETURNING id')).rows[0]!.id;
        const n = (await b`SELECT nextval('seqt_id_seq')::int AS n`)[0]!.n as number;
        assert.equal((await b`SELECT currval('seqt_id_seq')::int AS c`)[0]!.c, n);
        try {
          const c = (await a.query("SELECT currval('seqt_id_seq')::int AS c")).rows[0].c;
          assert.equal(c, id);
        } catch (e) {
          assert.equal((e as PgError).code, '55000', String(e));
        }
      }
    } finally {
      await a.end();
      await b.end();
    }
    // A client that leaves right after its nextval leaves no sequence state behind.
    const gone = await connect(onePort);
    await gone.query('INSERT INTO seqt(v) VALUES (4)');
    await gone.end();
    const next = await connect(onePort);
    try {
      assert.equal((await errorOf(next.query("SELECT currval('seqt_id_seq')"))).code, '55000');
      assert.equal((await errorOf(next.query('SELECT lastval()'))).code, '55000');
    } finally {
      await next.end();
    }
  });
});

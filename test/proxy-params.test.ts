/**
 * Session parameters through the proxy behave as on a direct connection (issue #12): RESET,
 * RESET ALL, SET … TO DEFAULT and DISCARD ALL restore the client's start-up values; a SET is
 * replayed on another server connection as the value it left (`SET datestyle TO iso` then `ymd`
 * gives `ISO, YMD`); start-up options the proxy does not know are applied when the server accepts
 * them and refused with the server's own error otherwise; custom settings keep their placeholder
 * after RESET. Each scenario runs the same statements directly and through the proxy and compares
 * the answers, in both pool modes, with node-postgres (simple protocol), postgres.js (extended
 * protocol) and psql (PGTZ / PGDATESTYLE), with a replica in the read set. In transaction mode a
 * second client with other start-up values runs a read and a write between any two statements, so
 * the server connections keep changing hands (pool of 2 per server).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import pg from 'pg';
import postgres from 'postgres';
import { startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { until } from './harness.js';

/** One driver's connection: runs a statement, answers its rows, tag or error code as text. */
interface Conn {
  run(sql: string): Promise<string>;
  end(): Promise<void>;
}

type Startup = Record<string, string>;

/** Start-up settings of the client under test, as libpq's environment would give them. */
const CLIENT: Startup = {
  TimeZone: 'Asia/Tokyo',
  DateStyle: 'Postgres, MDY',
  IntervalStyle: 'postgres_verbose',
  extra_float_digits: '1',
  search_path: 'pg_catalog, public',
  application_name: 'params-test',
};
/** The other client's, all different. */
const OTHER: Startup = {
  TimeZone: 'America/New_York',
  DateStyle: 'SQL, DMY',
  IntervalStyle: 'iso_8601',
  extra_float_digits: '3',
  search_path: 'public',
  application_name: 'disturber',
};

/** `-c name=value` for libpq's options, with spaces escaped. */
function options(s: Startup, extra = ''): string {
  const parts = Object.entries(s).map(([k, v]) => `-c ${k}=${v.replace(/ /g, '\\ ')}`);
  return [...parts, extra].join(' ').trim();
}

function errText(e: unknown): string {
  const x = e as { code?: string; severity?: string };
  return `ERROR ${x.code ?? '?'}`;
}

async function pgConn(port: number, password: string, s: Startup, extraOptions = ''): Promise<Conn> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'app',
    password,
    database: 'app',
    options: options(s, extraOptions),
  });
  c.on('error', () => undefined);
  await c.connect();
  return {
    async run(sql) {
      try {
        const r = (await c.query({ text: sql, rowMode: 'array' })) as unknown as
          pg.QueryResult | pg.QueryResult[];
        const list = Array.isArray(r) ? r : [r];
        return JSON.stringify(list.map((x) => [x.command, x.rows]));
      } catch (e) {
        return errText(e);
      }
    },
    end: () => c.end(),
  };
}

async function postgresJsConn(port: number, password: string, s: Startup): Promise<Conn> {
  // postgres.js sends `connection` as start-up packet keys; unsafe() uses the extended protocol.
  const sql = postgres({
    host: '127.0.0.1',
    port,
    user: 'app',
    password,
    database: 'app',
    max: 1,
    prepare: false,
    onnotice: () => undefined,
    connection: { ...s },
  });
  await sql`SELECT 1`;
  return {
    async run(text) {
      try {
        const r = await sql.unsafe(text).values();
        return JSON.stringify([r.command, r]);
      } catch (e) {
        return errText(e);
      }
    },
    end: () => sql.end({ timeout: 5 }),
  };
}

/** Runs `steps` and collects the answers; `between` runs after each step outside a transaction. */
async function play(c: Conn, steps: readonly string[], between?: () => Promise<void>): Promise<string[]> {
  const out: string[] = [];
  let inTx = false;
  for (const s of steps) {
    out.push(`${s} => ${await c.run(s)}`);
    if (/^\s*(begin|start)/i.test(s)) inTx = true;
    if (/^\s*(commit|end|abort|rollback(?!\s+to))/i.test(s)) inTx = false;
    if (between && !inTx) await between();
  }
  return out;
}

/** What every scenario looks at after each change. */
const OBSERVE = [
  "SELECT current_setting('TimeZone'), current_setting('DateStyle'), current_setting('IntervalStyle')",
  "SELECT current_setting('extra_float_digits'), current_setting('search_path'), current_setting('application_name')",
  "SELECT '2001-02-03 04:05:06+00'::timestamptz::text, '2001-02-03'::date::text, '1 day 2 hours'::interval::text, 0.1::float8::text",
];

const SCENARIOS: Record<string, readonly string[]> = {
  'RESET of each start-up setting restores the client start-up value': [
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'German'",
    "SET IntervalStyle = 'sql_standard'",
    'SET extra_float_digits = 3',
    'SET search_path = public',
    "SET application_name = 'changed'",
    ...OBSERVE,
    'RESET TimeZone',
    'RESET DateStyle',
    'RESET IntervalStyle',
    'RESET extra_float_digits',
    'RESET search_path',
    'RESET application_name',
    ...OBSERVE,
    "SET TimeZone TO 'UTC'",
    'SET TIME ZONE DEFAULT',
    'SET datestyle TO DEFAULT',
    ...OBSERVE,
  ],
  'RESET ALL and DISCARD ALL restore every start-up value': [
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'German'",
    "SET IntervalStyle = 'sql_standard'",
    "SET application_name = 'changed'",
    'SET work_mem = 1234',
    'RESET ALL',
    ...OBSERVE,
    'SHOW work_mem',
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'German'",
    'DISCARD ALL',
    ...OBSERVE,
    // Several statements in one Query (pg: simple protocol; postgres.js: refused by the server).
    "SET TimeZone = 'UTC'; RESET TimeZone; SHOW TimeZone",
    "SET DateStyle = 'German'; RESET ALL; SHOW DateStyle; SET IntervalStyle = 'iso_8601'",
    ...OBSERVE,
    "SET TimeZone = 'UTC'; RESET ALL; SELECT 1/0",
    ...OBSERVE,
    'BEGIN',
    "SET TimeZone = 'UTC'",
    'COMMIT',
    'BEGIN',
    'RESET ALL',
    'DISCARD ALL',
    'ROLLBACK',
    ...OBSERVE,
  ],
  'successive SETs of DateStyle are replayed as the value they left': [
    'SET datestyle TO iso',
    'SET datestyle TO ymd',
    ...OBSERVE,
    'SET datestyle TO sql',
    'SET datestyle TO dmy',
    "SELECT '2001-02-03'::date::text",
    'BEGIN',
    'SET datestyle TO german',
    'SET LOCAL datestyle TO ymd',
    'COMMIT',
    ...OBSERVE,
    'BEGIN',
    'SET datestyle TO postgres',
    'ROLLBACK',
    ...OBSERVE,
  ],
  'SET LOCAL, set_config and SET FROM CURRENT keep their PostgreSQL meaning': [
    'BEGIN',
    "SET LOCAL TimeZone = 'UTC'",
    ...OBSERVE,
    'COMMIT',
    ...OBSERVE,
    "SELECT pg_catalog.set_config('TimeZone', 'Europe/Paris', true)",
    ...OBSERVE,
    'BEGIN',
    "SET LOCAL work_mem = '1MB'",
    'SET work_mem FROM CURRENT',
    'COMMIT',
    'SHOW work_mem',
    "SELECT pg_catalog.set_config('DateStyle', 'SQL', false)",
    ...OBSERVE,
    'RESET ALL',
    ...OBSERVE,
    'SHOW work_mem',
  ],
  'ROLLBACK TO SAVEPOINT keeps the SETs made before the savepoint': [
    'BEGIN',
    "SET work_mem = '2MB'",
    "SET TimeZone = 'UTC'",
    'SAVEPOINT s',
    "SET work_mem = '3MB'",
    "SET TimeZone = 'Europe/Paris'",
    'ROLLBACK TO SAVEPOINT s',
    'COMMIT',
    'SHOW work_mem',
    ...OBSERVE,
    'SHOW work_mem',
  ],
};

/** Custom settings: the placeholder stays after RESET (names unique per run: placeholders persist). */
function customScenario(tag: string): string[] {
  return [
    `SET custom_${tag}.my_guc = 42`,
    `SHOW custom_${tag}.my_guc`,
    `RESET custom_${tag}.my_guc`,
    `SHOW custom_${tag}.my_guc`,
    `SET custom_${tag}.other = 'x'`,
    'RESET ALL',
    `SHOW custom_${tag}.other`,
  ];
}

function psql(port: number, password: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      'psql',
      ['-X', '-q', '-At', '-h', '127.0.0.1', '-p', String(port), '-U', 'app', '-d', 'app', ...args],
      {
        env: {
          ...process.env,
          PGPASSWORD: password,
          PGTZ: 'Asia/Tokyo',
          PGDATESTYLE: 'Postgres, MDY',
          PGOPTIONS: '-c work_mem=5MB',
        },
        timeout: 60_000,
      },
      (_e, stdout, stderr) => resolve(`${stdout}${stderr.replace(/^psql: /gm, '')}`),
    );
  });
}

describe('session parameters through the proxy, as on a direct connection', () => {
  let fx: ProxyFixture;
  let n = 0;
  before(async () => {
    fx = await startProxyFixture({ default_pool_size: 2 }, {}, 1);
    const d = await fx.direct();
    await d.query('CREATE TABLE touched (n int); GRANT ALL ON touched TO app');
    await d.end();
  });
  after(async () => {
    await fx?.close();
  });

  for (const mode of ['session', 'transaction'] as const) {
    describe(`${mode} pool mode`, () => {
      let other: Conn | null = null;
      before(async () => {
        await fx.restartProxy({ default_pool_size: 2, pool_mode: mode });
        if (mode === 'transaction') {
          await replicaInReadSet();
          other = await pgConn(fx.port, fx.appPassword, OTHER);
        }
      });
      after(async () => {
        await other?.end();
      });
      /** Waits until the (new) proxy's router has the replica in its read set. */
      const replicaInReadSet = () =>
        until(
          'the replica in the read set',
          async () => {
            const c = await fx.client();
            await c.query('SELECT 1'); // creates the router
            await c.end();
            const a = await fx.admin();
            const r = await a.query<{ role: string; in_read_set: string }>('SHOW NODES');
            await a.end();
            return r.rows.some((x) => x.role === 'replica' && x.in_read_set === 't');
          },
          30_000,
        );
      /** The other client reads (a replica) and writes (the primary) with its own settings. */
      const disturb = async () => {
        if (!other) return;
        await other.run("SELECT now()::text, current_setting('DateStyle')");
        await other.run('INSERT INTO touched VALUES (1)');
      };
      const direct = (s: Startup, extra = '') => pgConn(fx.serverPort, fx.appPassword, s, extra);
      const viaProxy = (s: Startup, extra = '') => pgConn(fx.port, fx.appPassword, s, extra);

      for (const [name, steps] of Object.entries(SCENARIOS)) {
        for (const driver of ['pg', 'postgres.js'] as const) {
          test(`${name} (${driver})`, async () => {
            const open = (port: number) =>
              driver === 'pg'
                ? pgConn(port, fx.appPassword, CLIENT)
                : postgresJsConn(port, fx.appPassword, CLIENT);
            const d = await open(fx.serverPort);
            const want = await play(d, steps);
            await d.end();
            const p = await open(fx.port);
            const got = await play(p, steps, disturb);
            await p.end();
            assert.deepEqual(got, want);
          });
        }
      }

      test('SET LOCAL … TO DEFAULT takes the start-up value for the transaction (pg)', async () => {
        const steps = [
          "SET TimeZone = 'UTC'",
          'BEGIN',
          'SET LOCAL TimeZone TO DEFAULT',
          OBSERVE[0]!,
          'SET LOCAL TIME ZONE LOCAL',
          OBSERVE[2]!,
          'COMMIT',
          OBSERVE[0]!,
        ];
        const d = await direct(CLIENT);
        const want = await play(d, steps);
        await d.end();
        const p = await viaProxy(CLIENT);
        const got = await play(p, steps, disturb);
        await p.end();
        assert.deepEqual(got, want);
      });

      test('custom settings keep their placeholder after RESET (pg)', async () => {
        const steps = customScenario(`${mode}_${n++}`);
        const d = await direct(CLIENT);
        const want = await play(d, steps);
        await d.end();
        const steps2 = customScenario(`${mode}_${n++}`);
        const p = await viaProxy(CLIENT);
        const got = await play(p, steps2, disturb);
        await p.end();
        assert.deepEqual(
          got.map((x) => x.replace(/custom_\w+?_\d+\./g, 'custom.')),
          want.map((x) => x.replace(/custom_\w+?_\d+\./g, 'custom.')),
        );
      });

      test('start-up options the proxy does not know are applied and tracked like SET', async () => {
        const extra = '-c work_mem=64MB --maintenance-work-mem=99MB -c custom.opt=7';
        const steps = [
          "SELECT current_setting('work_mem'), current_setting('maintenance_work_mem'), current_setting('custom.opt')",
          'SET work_mem = 1234',
          'RESET work_mem',
          'SHOW work_mem',
          'SET maintenance_work_mem = 12345',
          'RESET ALL',
          "SELECT current_setting('work_mem'), current_setting('maintenance_work_mem'), current_setting('custom.opt')",
        ];
        const d = await direct(CLIENT, extra);
        const want = await play(d, steps);
        await d.end();
        const p = await viaProxy(CLIENT, `${extra} -c pgscale.consistency=primary`);
        const got = await play(p, steps, disturb);
        // -c pgscale.consistency=primary: the proxy's own setting, so reads stay on the primary.
        assert.equal(await p.run('SELECT pg_is_in_recovery()'), JSON.stringify([['SELECT', [[false]]]]));
        await p.run('RESET pgscale.consistency');
        await p.run('RESET ALL');
        assert.equal(await p.run('SELECT pg_is_in_recovery()'), JSON.stringify([['SELECT', [[false]]]]));
        await p.end();
        assert.deepEqual(got, want);
        // Top-level start-up packet keys (postgres.js `connection`) too.
        const js = await postgresJsConn(fx.port, fx.appPassword, { ...CLIENT, work_mem: '3MB' });
        assert.equal(await js.run('SHOW work_mem'), JSON.stringify(['SHOW', [['3MB']]]));
        await js.end();
      });

      test('invalid start-up options fail the login with the server own error', async () => {
        for (const bad of [
          '-c DateStyle=nonsense',
          '-c statement_timeout=abc',
          '-c work_mem=lots',
          '-c no_such_setting=1',
          '-c pgscale.consistency=never',
          '-c pgscale.nope=1',
        ]) {
          const viaDirect = await direct(CLIENT, bad.replace(/pgscale\./, 'pgscaleX.')).then(
            (c) => c.end().then(() => 'accepted'),
            (e: { code?: string; severity?: string; message?: string }) => `${e.severity} ${e.code}`,
          );
          const through = await viaProxy(CLIENT, bad).then(
            (c) => c.end().then(() => 'accepted'),
            (e: { code?: string; severity?: string }) => `${e.severity} ${e.code}`,
          );
          if (bad.includes('pgscale.')) {
            // The proxy's own settings: checked by the proxy, with PostgreSQL's codes.
            assert.equal(through, bad.includes('never') ? 'FATAL 22023' : 'FATAL 42704', bad);
          } else {
            assert.equal(through, viaDirect, bad);
            assert.match(through, /^FATAL (22023|42704)$/);
          }
        }
        // The proxy still serves.
        const c = await viaProxy(CLIENT);
        assert.match(await c.run('SELECT 1'), /\[\[1\]\]/);
        await c.end();
      });

      test('psql with PGTZ, PGDATESTYLE and PGOPTIONS: RESET, RESET ALL, successive SETs', async () => {
        const args = [
          '-c',
          "SET TimeZone = 'UTC'",
          '-c',
          'RESET TimeZone',
          '-c',
          'SHOW TimeZone',
          '-c',
          'SET datestyle TO iso',
          '-c',
          'SET datestyle TO ymd',
          '-c',
          "SELECT '2001-02-03'::date, '2001-02-03 04:05:06+00'::timestamptz",
          '-c',
          'SET work_mem = 1234',
          '-c',
          'RESET ALL',
          '-c',
          "SELECT '2001-02-03'::date, '2001-02-03 04:05:06+00'::timestamptz, current_setting('work_mem')",
        ];
        const want = await psql(fx.serverPort, fx.appPassword, args);
        await disturb();
        const got = await psql(fx.port, fx.appPassword, args);
        assert.equal(got, want);
        assert.match(got, /Asia\/Tokyo/);
      });

      test('after a client RESET ALL, the next client with the same start-up values gets them', async () => {
        // One connection per server, so that the next client gets the very connection.
        await other?.end();
        other = null;
        await fx.restartProxy({ default_pool_size: 1, pool_mode: mode });
        const a = await viaProxy(CLIENT);
        await a.run("SET TimeZone = 'UTC'");
        await a.run("SET DateStyle = 'ISO'");
        await a.run('RESET ALL');
        if (mode === 'transaction') {
          // Reads go to the replica (when in the read set) and see the start-up values too.
          await replicaInReadSet();
          await until(
            'a read served by the replica',
            async () => {
              const r = await a.run(
                "SELECT current_setting('TimeZone'), current_setting('DateStyle'), pg_is_in_recovery()",
              );
              assert.match(r, /"Asia\/Tokyo","Postgres, MDY",(true|false)/);
              return r.includes('true');
            },
            30_000,
          );
        }
        await a.end();
        const write =
          "INSERT INTO touched VALUES (2) RETURNING current_setting('TimeZone'), current_setting('DateStyle'), right(now()::text, 4)";
        const b = await viaProxy(CLIENT);
        const got = await play(b, [write, ...OBSERVE]);
        await b.end();
        const d = await direct(CLIENT);
        const want = await play(d, [write, ...OBSERVE]);
        await d.end();
        assert.deepEqual(got, want);
        assert.match(got[0]!, /"Asia\/Tokyo","Postgres, MDY"," JST"/);
      });
    });
  }
});

/**
 * Users and databases through the proxy of `pgscale up` (docs/users.md): the users and
 * databases of the config are created with their owners, grants and passwords (generated into
 * secrets.json, or from a password_file), each user reaches its databases and no other, a user's
 * pool_size caps its server connections, and roles created later in PostgreSQL log in through
 * the proxy's auth lookup (SCRAM pass-through) in both pool modes with pg and postgres.js — until
 * their password changes or they are dropped. `psql --user --db` and `url --user --db` use them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { binarySets, cli, makeCluster, until, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';
import { readSecrets, secretsFile } from '../src/cluster/secrets.js';
import { withClient } from '../src/cluster/sql.js';

const bins = binarySets()[0]!;
const ETL_PASSWORD = 'etl-Pa55:word\\x';

const USERS = `
users:
  etl:
    password_file: etl.pw
    max_user_connections: 1
  reporting:
    databases: [analytics]
    pool_size: 2
databases:
  analytics:
    owner: etl
    pool_mode: session
  shop:
    owner: reporting
`;

describe('users and databases through the proxy of pgscale up', () => {
  let tc: TestCluster;
  let port: number;
  const connect = async (user: string, password: string, database: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port, user, password, database });
    await c.connect();
    return c;
  };
  /** The SQLSTATE a pg login fails with (null: it logged in). */
  const loginError = async (user: string, password: string, database: string) => {
    try {
      await (await connect(user, password, database)).end();
      return null;
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    }
  };
  const asSuperuser = <T>(fn: (c: pg.Client) => Promise<T>, database = 'postgres') =>
    withClient(tc.cluster.target(tc.cluster.nodes()[0]!, database), fn);
  const secrets = () => readSecrets(tc.cluster.dataDir)!;

  before(async () => {
    tc = await makeCluster(bins, { replicas: 0, extra: (y) => withoutHa(y) + USERS });
    port = tc.cluster.config.proxy.port;
    writeFileSync(join(tc.dir, 'etl.pw'), `${ETL_PASSWORD}\n`, { mode: 0o600 });
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
  });
  after(async () => {
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  test('up creates the users and databases with their owners; generated passwords are in secrets.json (0600)', async () => {
    const s = secrets();
    assert.equal(typeof s.users?.reporting, 'string');
    assert.equal(s.users?.etl, undefined, 'a user with a password_file gets no generated password');
    assert.equal(statSync(secretsFile(tc.cluster.dataDir)).mode & 0o777, 0o600);
    const owners = await asSuperuser((c) =>
      c.query<{ datname: string; owner: string }>(
        "SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname IN ('analytics','shop') ORDER BY 1",
      ),
    );
    assert.deepEqual(
      owners.rows.map((r) => [r.datname, r.owner]),
      [
        ['analytics', 'etl'],
        ['shop', 'reporting'],
      ],
    );
  });

  test('each user logs in with its password and reaches its databases, and no other (42501)', async () => {
    const rep = secrets().users!.reporting!;
    for (const [user, pw, db] of [
      ['reporting', rep, 'shop'],
      ['reporting', rep, 'analytics'],
      ['etl', ETL_PASSWORD, 'analytics'],
      ['app', secrets().app, 'app'],
    ] as const) {
      const c = await connect(user, pw, db);
      const r = await c.query<{ u: string; d: string }>('SELECT current_user AS u, current_database() AS d');
      assert.deepEqual([r.rows[0]!.u, r.rows[0]!.d], [user, db]);
      await c.end();
    }
    assert.equal(await loginError('etl', ETL_PASSWORD, 'shop'), '42501');
    assert.equal(await loginError('app', secrets().app, 'analytics'), '42501');
  });

  test("a user's pool_size caps its server connections (SHOW POOLS and pg_stat_activity agree)", async () => {
    const rep = secrets().users!.reporting!;
    const clients = await Promise.all([1, 2, 3, 4, 5].map(() => connect('reporting', rep, 'shop')));
    await Promise.all(clients.map((c) => c.query('SELECT pg_sleep(0.2)')));
    const onServer = await asSuperuser((c) =>
      c.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'reporting' AND datname = 'shop' AND application_name NOT LIKE 'pgscale %'",
      ),
    );
    assert.equal(Number(onServer.rows[0]!.n), 2);
    const admin = await connect('postgres', secrets().superuser, 'pgscale');
    const pools = await admin.query<{ database: string; user: string; sv_idle: string; pool_mode: string }>(
      'SHOW POOLS',
    );
    const shop = pools.rows.find((p) => p.database === 'shop' && p.user === 'reporting');
    assert.equal(Number(shop?.sv_idle), 2);
    assert.equal(shop?.pool_mode, 'transaction');
    const users = await admin.query<{ name: string; pool_size: string | null; current_connections: string }>(
      'SHOW USERS',
    );
    const row = users.rows.find((u) => u.name === 'reporting');
    assert.equal(Number(row?.pool_size), 2);
    assert.ok(Number(row?.current_connections) >= 2);
    await admin.end();
    await Promise.all(clients.map((c) => c.end()));
  });

  test("max_user_connections: a user's second session waits until its first one ends", async () => {
    const a = await connect('etl', ETL_PASSWORD, 'analytics');
    await a.query('SELECT 1');
    const b = (async () => {
      const c = await connect('etl', ETL_PASSWORD, 'analytics');
      const r = await c.query<{ u: string }>('SELECT current_user AS u');
      await c.end();
      return r.rows[0]!.u;
    })();
    const admin = await connect('postgres', secrets().superuser, 'pgscale');
    await until(
      'the second session waiting',
      async () =>
        (await admin.query<{ database: string; user: string; cl_waiting: string }>('SHOW POOLS')).rows.some(
          (p) => p.database === 'analytics' && p.user === 'etl' && Number(p.cl_waiting) > 0,
        ),
      10_000,
    );
    await admin.end();
    const onServer = await asSuperuser((c) =>
      c.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'etl' AND application_name NOT LIKE 'pgscale %'",
      ),
    );
    assert.equal(Number(onServer.rows[0]!.n), 1);
    await a.end();
    assert.equal(await b, 'etl');
  });

  test('a role created later logs in through the proxy in both pool modes, with pg and postgres.js', async () => {
    await asSuperuser(async (c) => {
      await c.query("CREATE ROLE late LOGIN PASSWORD 'late-pw-1'");
      await c.query('GRANT CONNECT ON DATABASE analytics TO late');
    });
    // app: transaction pooling (the default); analytics: session pooling (databases.analytics).
    for (const db of ['app', 'analytics']) {
      const c = await connect('late', 'late-pw-1', db);
      assert.equal((await c.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u, 'late');
      await c.end();
      const sql = postgres({
        host: '127.0.0.1',
        port,
        user: 'late',
        password: 'late-pw-1',
        database: db,
        max: 1,
      });
      try {
        const [r] = await sql<{ u: string; d: string }[]>`SELECT current_user AS u, current_database() AS d`;
        assert.deepEqual([r!.u, r!.d], ['late', db]);
      } finally {
        await sql.end();
      }
    }
    const admin = await connect('postgres', secrets().superuser, 'pgscale');
    const modes = await admin.query<{ database: string; user: string; pool_mode: string }>('SHOW POOLS');
    const late = modes.rows.filter((p) => p.user === 'late').map((p) => [p.database, p.pool_mode]);
    assert.deepEqual(late.sort(), [
      ['analytics', 'session'],
      ['app', 'transaction'],
    ]);
    await admin.end();
  });

  test('a wrong password is 28P01; a changed password counts at once; a dropped role is refused', async () => {
    assert.equal(await loginError('late', 'not-the-password', 'app'), '28P01');
    await asSuperuser((c) => c.query("ALTER ROLE late PASSWORD 'late-pw-2'"));
    assert.equal(await loginError('late', 'late-pw-1', 'app'), '28P01');
    assert.equal(await loginError('late', 'late-pw-2', 'app'), null);
    await asSuperuser(async (c) => {
      await c.query('REVOKE CONNECT ON DATABASE analytics FROM late');
      await c.query('DROP ROLE late');
    });
    assert.equal(await loginError('late', 'late-pw-2', 'app'), '28P01');
  });

  test('a superuser created later is refused by the proxy', async () => {
    await asSuperuser((c) => c.query("CREATE ROLE boss SUPERUSER LOGIN PASSWORD 'boss-pw'"));
    assert.equal(await loginError('boss', 'boss-pw', 'app'), '28P01');
  });

  test(
    'pgscale psql --user --db runs through the proxy as that user; url --user --db connects',
    { skip: bins.psql ? false : 'no psql' },
    async () => {
      const r = await cli(
        [
          'psql',
          '-c',
          tc.file,
          '--user',
          'etl',
          '--db',
          'analytics',
          '--',
          '-At',
          '-c',
          "SELECT current_user || ' ' || current_database() || ' ' || current_setting('application_name')",
        ],
        tc.env,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'etl analytics pgscale psql');
      const u = await cli(['url', '-c', tc.file, '--user', 'reporting', '--db', 'shop'], tc.env);
      assert.equal(u.code, 0, u.stderr);
      assert.equal(Number(new URL(u.stdout.trim()).port), port);
      const c = new pg.Client({ connectionString: u.stdout.trim() });
      await c.connect();
      assert.equal((await c.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u, 'reporting');
      await c.end();
      const unknown = await cli(['psql', '-c', tc.file, '--user', 'nobody'], tc.env);
      assert.notEqual(unknown.code, 0);
      assert.match(unknown.stderr, /user "nobody" is not app\.user nor declared under users:/);
    },
  );

  test('a contradicting config is refused by up with a message naming the keys', async () => {
    const bad = join(tc.dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(tc.file, 'utf8') + '\n  orphan:\n    owner: ghost\n');
    const r = await cli(['up', '-c', bad, '--detach'], tc.env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /databases\.orphan\.owner: "ghost" is not declared under users:/);
  });

  test('up again is idempotent, and sets the password of a changed password_file', async () => {
    assert.equal((await cli(['down', '-c', tc.file], tc.env)).code, 0);
    writeFileSync(join(tc.dir, 'etl.pw'), 'etl-new-password\n', { mode: 0o600 });
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    const dir = join(tc.cluster.dataDir, 'logs');
    const said =
      up.stdout +
      readdirSync(dir)
        .map((f) => readFileSync(join(dir, f), 'utf8'))
        .join();
    assert.match(said, /changed role etl/);
    assert.doesNotMatch(said, /created role reporting.*created role reporting/s);
    assert.equal(await loginError('etl', ETL_PASSWORD, 'analytics'), '28P01');
    assert.equal(await loginError('etl', 'etl-new-password', 'analytics'), null);
    assert.equal(await loginError('reporting', secrets().users!.reporting!, 'shop'), null);
  });

  test('no password appears in the logs, SHOW output or status', async () => {
    const s = secrets();
    const values = [s.users!.reporting!, s.auth!, ETL_PASSWORD, 'etl-new-password', s.app];
    const dir = join(tc.cluster.dataDir, 'logs');
    const logs = readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8'));
    const admin = await connect('postgres', s.superuser, 'pgscale');
    const shows: string[] = [];
    for (const what of ['CONFIG', 'USERS', 'POOLS', 'DATABASES', 'CLIENTS', 'SERVERS']) {
      shows.push(JSON.stringify((await admin.query(`SHOW ${what}`)).rows));
    }
    await admin.end();
    const status = (await cli(['status', '-c', tc.file, '--json'], tc.env)).stdout;
    for (const v of values) {
      for (const [where, text] of [
        ['logs', logs.join()],
        ['SHOW', shows.join()],
        ['status', status],
      ] as const) {
        assert.ok(!text.includes(v), `a password appears in ${where}`);
      }
    }
  });
});

/**
 * No session state crosses clients in transaction pooling (issue #11 items 1, 2, 5; catalogue
 * case 44). With one server connection per pool, client A changes session state in every way
 * listed (inside functions, a view, a trigger, a rule, a row-level security policy, a column
 * default, an event trigger, a user operator, a `+` overload, user casts, a domain check,
 * attribute notation, a database's default search_path, DO, SQL EXECUTE, COMMIT AND CHAIN, and
 * directly), then leaves;
 * client B, on the same backend, must find a clean session: its own role, the default
 * search_path, no temp table, no LISTEN (and no NOTIFY delivered), no advisory lock. Each case runs
 * on the primary and on a replica (read-routed), with the same user and with two proxy users
 * sharing a forced server user. A itself keeps its state (its connection is pinned to it).
 * Also: auth_query cannot be fooled by a client's search_path, and a failed DISCARD ALL does not
 * confuse the prepared-statement bookkeeping.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { until } from './harness.js';
import { parseConfig } from '../src/config/load.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { databasesResolver } from '../src/proxy/resolver.js';
import { findFreePortBlock } from '../src/cluster/ports.js';

const SETUP = `
  CREATE ROLE other NOLOGIN; GRANT other TO app;
  CREATE SCHEMA evil; GRANT USAGE ON SCHEMA evil TO PUBLIC;
  CREATE FUNCTION public.f_path() RETURNS text LANGUAGE sql AS $$ SELECT set_config('search_path', 'evil', false) $$;
  CREATE FUNCTION public.f_role() RETURNS text LANGUAGE sql AS $$ SELECT set_config('role', 'other', false) $$;
  CREATE FUNCTION public.f_temp() RETURNS int LANGUAGE plpgsql AS $$
    BEGIN CREATE TEMP TABLE leaked (x int); INSERT INTO leaked VALUES (42); RETURN 1; END $$;
  CREATE FUNCTION public.f_listen() RETURNS int LANGUAGE plpgsql AS $$ BEGIN LISTEN leakchan; RETURN 1; END $$;
  CREATE FUNCTION public.f_lock() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(4242); RETURN 1; END $$;
  CREATE FUNCTION public.f_clean() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
  CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT set_config('role', 'other', false) $$;
  CREATE VIEW public.v_path AS SELECT public.f_path() AS x;
  GRANT SELECT ON public.v_path TO PUBLIC;
  CREATE TABLE public.marker (x int); GRANT ALL ON public.marker TO PUBLIC;
  CREATE FUNCTION public.trg_temp() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN CREATE TEMP TABLE leaked (x int); INSERT INTO leaked VALUES (42); RETURN NEW; END $$;
  CREATE TABLE public.t_trigger (x int); GRANT ALL ON public.t_trigger TO PUBLIC;
  CREATE TRIGGER t_temp BEFORE INSERT ON public.t_trigger FOR EACH ROW EXECUTE FUNCTION public.trg_temp();
  CREATE TABLE public.t_rule (x int); GRANT ALL ON public.t_rule TO PUBLIC;
  CREATE RULE r_path AS ON INSERT TO public.t_rule DO ALSO SELECT public.f_path();
  CREATE TABLE public.t_policy (x int); INSERT INTO public.t_policy VALUES (1); GRANT ALL ON public.t_policy TO PUBLIC;
  ALTER TABLE public.t_policy ENABLE ROW LEVEL SECURITY;
  CREATE POLICY p_path ON public.t_policy USING (public.f_path() IS NOT NULL);
  CREATE TABLE public.t_default (x int, y text DEFAULT public.f_role()); GRANT ALL ON public.t_default TO PUBLIC;
  CREATE FUNCTION public.evt_path() RETURNS event_trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM set_config('search_path', 'evil', false); END $$;
  CREATE EVENT TRIGGER e_path ON ddl_command_end WHEN TAG IN ('CREATE SEQUENCE') EXECUTE FUNCTION public.evt_path();
`;

/**
 * Database "blind": user code reached through operators, casts, domains, attribute notation and
 * foreign tables. A database of its own, so that its `+` overload does not make every `x + 1` of
 * database app suspect (the plain-statements test there counts checks).
 */
const BLIND_SETUP = `
  CREATE FUNCTION public.op_path(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN PERFORM set_config('search_path', 'evil', false); RETURN true; END $$;
  CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = public.op_path);
  CREATE TYPE public.cents AS (v int);
  CREATE FUNCTION public.cents_plus(public.cents, public.cents) RETURNS public.cents LANGUAGE plpgsql AS $$
    BEGIN PERFORM set_config('role', 'other', false); RETURN $1; END $$;
  CREATE OPERATOR public.+ (LEFTARG = public.cents, RIGHTARG = public.cents, FUNCTION = public.cents_plus);
  CREATE TABLE public.t_cents (c public.cents); INSERT INTO public.t_cents VALUES (ROW(1));
  GRANT ALL ON public.t_cents TO PUBLIC;
  CREATE TYPE public.castme AS (v int);
  CREATE FUNCTION public.castme_text(public.castme) RETURNS text LANGUAGE plpgsql AS $$
    BEGIN PERFORM set_config('search_path', 'evil', false); RETURN 'x'; END $$;
  CREATE CAST (public.castme AS text) WITH FUNCTION public.castme_text(public.castme) AS IMPLICIT;
  CREATE TABLE public.t_cast (c public.castme); INSERT INTO public.t_cast VALUES (ROW(1));
  GRANT ALL ON public.t_cast TO PUBLIC;
  CREATE FUNCTION public.dom_role(int) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN PERFORM set_config('role', 'other', false); RETURN true; END $$;
  CREATE DOMAIN public.d_role AS int CHECK (public.dom_role(VALUE));
  CREATE TABLE public.t_domain (x public.d_role); GRANT ALL ON public.t_domain TO PUBLIC;
  CREATE TABLE public.t_attr (x int); INSERT INTO public.t_attr VALUES (1); GRANT ALL ON public.t_attr TO PUBLIC;
  CREATE FUNCTION public.attr_path(public.t_attr) RETURNS text LANGUAGE plpgsql AS $$
    BEGIN PERFORM set_config('search_path', 'evil', false); RETURN 'x'; END $$;
  CREATE FOREIGN DATA WRAPPER no_wrapper; CREATE SERVER nowhere FOREIGN DATA WRAPPER no_wrapper;
  CREATE FOREIGN TABLE public.t_foreign (x int) SERVER nowhere;
  CREATE TABLE public.t_builtin_default (x int, y text DEFAULT set_config('role', 'other', false));
  GRANT ALL ON public.t_builtin_default TO PUBLIC;
  CREATE DOMAIN public.d_builtin AS int CHECK (set_config('search_path', 'evil', false) IS NOT NULL);
  CREATE TABLE public.t_builtin_domain (x public.d_builtin); GRANT ALL ON public.t_builtin_domain TO PUBLIC;
  CREATE TABLE public.t_lock_check (x int CHECK (pg_advisory_lock(4242)::text = ''));
  GRANT ALL ON public.t_lock_check TO PUBLIC;
  CREATE TABLE public.marker (x int);
`;

/** Database "shadow": its default search_path (ALTER DATABASE) puts evil before pg_catalog. */
const SHADOW_SETUP = `
  CREATE SCHEMA evil; GRANT USAGE ON SCHEMA evil TO PUBLIC;
  CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT set_config('role', 'other', false) $$;
  ALTER DATABASE shadow SET search_path = evil, pg_catalog;
  CREATE TABLE public.marker (x int);
`;

interface Vector {
  name: string;
  /** What A runs, statement by statement. */
  steps: string[];
  /** A query A runs afterwards whose single column `ok` says A still sees its own state. */
  own: string;
  /**
   * What SHOW CLIENTS says once A's connection is needed by B: why A is pinned, or null when A's
   * state needs no pin (settings replayed by the proxy, LISTEN served by its fan-out).
   */
  pin: RegExp | null;
  /** Possible on a hot standby (temporary tables and LISTEN are not). */
  onReplica: boolean;
  /** The database it runs in (default app). */
  db?: 'blind' | 'shadow';
}

const PATH_EVIL = "SELECT current_setting('search_path') = 'evil' AS ok";
const ROLE_OTHER = "SELECT current_user = 'other' AS ok";
const HOLDS_LOCK =
  "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS ok";
const HAS_TEMP = 'SELECT (SELECT x FROM leaked) = 42 AS ok';
const LISTENS = "SELECT 'leakchan' IN (SELECT pg_listening_channels()) AS ok";

/** Pinned by the session-state check (state hidden from the statement classifier). */
const CHECKED = /^session state left by /;

const VECTORS: Vector[] = [
  {
    name: 'SQL PREPARE of set_config(…, false), then EXECUTE',
    steps: ["PREPARE p1 AS SELECT set_config('search_path', 'evil', false)", 'EXECUTE p1'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: 'SQL PREPARE of pg_advisory_lock, then EXECUTE',
    steps: ['PREPARE p2 AS SELECT pg_advisory_lock(4242)', 'EXECUTE p2'],
    own: HOLDS_LOCK,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: 'COMMIT AND CHAIN, then ROLLBACK',
    steps: ['BEGIN', 'SET search_path = evil', 'COMMIT AND CHAIN', 'ROLLBACK'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: "DO with EXECUTE 'SET …'",
    steps: ["DO $$ BEGIN EXECUTE 'SET search_path = evil'; END $$"],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: 'a function calling set_config',
    steps: ['SELECT public.f_path()'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: "a function calling set_config('role')",
    steps: ['SELECT public.f_role()'],
    own: ROLE_OTHER,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: 'a function creating a temp table',
    steps: ['SELECT public.f_temp()'],
    own: HAS_TEMP,
    pin: CHECKED,
    onReplica: false,
  },
  {
    name: 'a function running LISTEN',
    steps: ['SELECT public.f_listen()'],
    own: LISTENS,
    pin: CHECKED,
    onReplica: false,
  },
  {
    name: 'a function taking an advisory lock',
    steps: ['SELECT public.f_lock()'],
    own: HOLDS_LOCK,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: 'a built-in name shadowed through search_path (evil, pg_catalog)',
    steps: ['SET search_path = evil, pg_catalog', "SELECT lower('X')"],
    own: ROLE_OTHER,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: 'a view calling set_config',
    steps: ['SELECT * FROM public.v_path'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: 'a trigger creating a temp table',
    steps: ['INSERT INTO t_trigger VALUES (1)'],
    own: HAS_TEMP,
    pin: CHECKED,
    onReplica: false,
  },
  {
    name: 'a rule calling set_config',
    steps: ['INSERT INTO t_rule VALUES (1)'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: false,
  },
  {
    name: 'a row-level security policy calling set_config',
    steps: ['SELECT * FROM t_policy'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
  },
  {
    name: "a column default calling set_config('role')",
    steps: ['INSERT INTO t_default (x) VALUES (1)'],
    own: ROLE_OTHER,
    pin: CHECKED,
    onReplica: false,
  },
  {
    name: 'an event trigger calling set_config',
    steps: ['DROP SEQUENCE IF EXISTS s_event', 'CREATE SEQUENCE s_event'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: false,
  },
  {
    name: 'a user-defined operator calling set_config',
    steps: ["SELECT 'a' === 'b'"],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
    db: 'blind',
  },
  {
    name: 'an overload of + for a user type, on a column',
    steps: ['SELECT c + c FROM t_cents'],
    own: ROLE_OTHER,
    pin: CHECKED,
    onReplica: true,
    db: 'blind',
  },
  {
    name: 'an implicit user cast of a column',
    steps: ['SELECT upper(c) FROM t_cast'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
    db: 'blind',
  },
  {
    name: 'an explicit user cast',
    steps: ['SELECT (ROW(2)::castme)::text'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
    db: 'blind',
  },
  {
    name: "a domain check calling set_config('role'), on insert into a column of the domain",
    steps: ['INSERT INTO t_domain VALUES (1)'],
    own: ROLE_OTHER,
    pin: CHECKED,
    onReplica: false,
    db: 'blind',
  },
  {
    name: "a domain check calling set_config('role'), on a cast to the domain",
    steps: ['SELECT 1::d_role'],
    own: ROLE_OTHER,
    pin: CHECKED,
    onReplica: true,
    db: 'blind',
  },
  {
    name: "a column default calling the built-in set_config('role')",
    steps: ['INSERT INTO t_builtin_default (x) VALUES (1)'],
    own: ROLE_OTHER,
    pin: CHECKED,
    onReplica: false,
    db: 'blind',
  },
  {
    name: 'a domain check calling the built-in set_config, on insert into a column of the domain',
    steps: ['INSERT INTO t_builtin_domain VALUES (1)'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: false,
    db: 'blind',
  },
  {
    name: 'a check constraint taking a session advisory lock',
    steps: ['INSERT INTO t_lock_check VALUES (1)'],
    own: HOLDS_LOCK,
    pin: CHECKED,
    onReplica: false,
    db: 'blind',
  },
  {
    name: 'attribute notation t.f calling f(t)',
    steps: ['SELECT t.attr_path FROM t_attr t'],
    own: PATH_EVIL,
    pin: CHECKED,
    onReplica: true,
    db: 'blind',
  },
  {
    name: 'a built-in name shadowed through ALTER DATABASE … SET search_path (evil, pg_catalog)',
    steps: ["SELECT lower('X')"],
    own: ROLE_OTHER,
    pin: CHECKED,
    onReplica: true,
    db: 'shadow',
  },
  // Catalogue case 44: the same state set directly.
  { name: 'LISTEN', steps: ['LISTEN leakchan'], own: 'SELECT true AS ok', pin: null, onReplica: false },
  { name: 'SET ROLE', steps: ['SET ROLE other'], own: ROLE_OTHER, pin: /^SET ROLE$/, onReplica: true },
  { name: 'SET search_path', steps: ['SET search_path = evil'], own: PATH_EVIL, pin: null, onReplica: true },
  {
    name: 'pg_advisory_lock()',
    steps: ['SELECT pg_advisory_lock(4242)'],
    own: HOLDS_LOCK,
    pin: /advisory lock/,
    onReplica: true,
  },
];

/** B's view of the session it got. */
const CLEAN_STATE = `SELECT pg_backend_pid() AS pid, current_user AS cu, session_user AS su,
  current_setting('search_path') AS sp,
  (SELECT count(*)::int FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temps,
  (SELECT count(*)::int FROM pg_listening_channels()) AS listens,
  (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks,
  pg_is_in_recovery() AS standby`;

describe('no session state crosses clients in transaction pooling', () => {
  let fx: ProxyFixture;
  let proxy: ProxyServer;
  let port: number;
  let replicaPort: number;

  before(async () => {
    fx = await startProxyFixture({ default_pool_size: 1 }, {}, 1);
    await fx.proxy.stop();
    const d = await fx.direct();
    await d.query(SETUP);
    await d.query('CREATE DATABASE blind');
    await d.query('CREATE DATABASE shadow');
    await d.end();
    for (const [database, sql] of [
      ['blind', BLIND_SETUP],
      ['shadow', SHADOW_SETUP],
    ] as const) {
      const c = await fx.direct({ database });
      await c.query(sql);
      await c.end();
    }
    replicaPort = fx.tc.cluster.nodes()[1]!.port;
    port = await findFreePortBlock(1);
    const replicas = [{ host: '127.0.0.1', port: replicaPort }];
    const yaml = JSON.stringify({
      proxy: {
        listen: '127.0.0.1',
        port,
        default_pool_size: 1,
        admin_users: ['postgres'],
        server_check_delay: 0,
        databases: {
          app: { host: '127.0.0.1', port: fx.serverPort, replicas },
          forced: {
            host: '127.0.0.1',
            port: fx.serverPort,
            dbname: 'app',
            user: 'app',
            password: fx.appPassword,
            replicas,
          },
          ...Object.fromEntries(
            ['blind', 'shadow'].flatMap((db) => [
              [db, { host: '127.0.0.1', port: fx.serverPort, replicas }],
              [
                `${db}_forced`,
                {
                  host: '127.0.0.1',
                  port: fx.serverPort,
                  dbname: db,
                  user: 'app',
                  password: fx.appPassword,
                  replicas,
                },
              ],
            ]),
          ),
        },
      },
    });
    const cfg = parseConfig(yaml, '/state-leak.yaml').config.proxy;
    proxy = new ProxyServer({
      config: cfg,
      resolve: databasesResolver(cfg),
      inlineUsers: new Map([
        ['app', fx.appPassword],
        ['postgres', fx.superPassword],
      ]),
    });
    await proxy.start();
    await until(
      'the replica has the test objects and is in the read set',
      async () => {
        let ok = true;
        for (const database of ['app', 'blind', 'shadow']) {
          const r = await directTo(replicaPort, fx.superPassword, database).catch(() => null);
          const has = await r?.query("SELECT to_regclass('public.marker') IS NOT NULL AS ok");
          await r?.end();
          ok &&= has?.rows[0].ok === true;
        }
        const c = await connect('app', 'app');
        await c.query('SELECT 1');
        await c.end();
        const a = await connect('postgres', 'pgscale');
        const n = await a.query<{ role: string; in_read_set: string }>('SHOW NODES');
        await a.end();
        return ok && n.rows.some((x) => x.role === 'replica' && x.in_read_set === 't');
      },
      30_000,
    );
  });

  after(async () => {
    await proxy?.stop();
    await fx?.close();
  });

  function connect(user: 'app' | 'postgres', database: string, name = 'test'): Promise<pg.Client> {
    return (async () => {
      const c = new pg.Client({
        host: '127.0.0.1',
        port,
        user,
        password: user === 'app' ? fx.appPassword : fx.superPassword,
        database,
        application_name: name,
      });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    })();
  }

  const setups = [
    { label: 'same user', database: (db = 'app') => db, a: 'app', b: 'app', serverUser: 'app' },
    {
      label: 'two proxy users, forced server user',
      database: (db?: string) => (db ? `${db}_forced` : 'forced'),
      a: 'postgres',
      b: 'app',
      serverUser: 'app',
    },
  ] as const;

  for (const where of ['primary', 'replica'] as const) {
    for (const setup of setups) {
      describe(`${where}, ${setup.label}`, () => {
        for (const v of VECTORS) {
          if (where === 'replica' && !v.onReplica) continue;
          test(v.name, async () => {
            const direct = await fx.direct();
            const a = await connect(setup.a, setup.database(v.db), 'client-a');
            const b = await connect(setup.b, setup.database(v.db), 'client-b');
            // Judged by the loaded registry, not by its fail-safe answer while loading.
            await until(
              'the registry is loaded',
              () => Promise.resolve(proxy.hiddenCode.get(setup.database(v.db))?.current === true),
              20_000,
            );
            try {
              // Plain reads would go to the replica by themselves: each case says where it runs.
              await a.query(`SET pgscale.target = ${where}`);
              await b.query(`SET pgscale.target = ${where}`);
              const aPid = (await a.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
              for (const s of v.steps) await a.query(s);
              // A keeps its session: its state is there.
              assert.equal((await a.query<{ ok: boolean }>(v.own)).rows[0]!.ok, true, 'A lost its own state');
              const notified: string[] = [];
              b.on('notification', (n) => notified.push(n.channel));
              // B asks for the only server connection while A is still there, idle.
              let bDone = false;
              const bState = b.query(CLEAN_STATE).finally(() => (bDone = true));
              bState.catch(() => undefined);
              if (v.pin) {
                // A's state is found and A keeps the connection (pinned: session semantics).
                assert.match(await until('A is pinned', () => pinReasonOf('client-a'), 20_000), v.pin);
                assert.equal((await a.query<{ ok: boolean }>(v.own)).rows[0]!.ok, true, 'A lost its state');
              } else {
                // Nothing to pin for (the proxy replays or fans it out), though the proxy may pin
                // anyway (a LISTEN that reaches the server while its connection is still attached).
                await until(
                  'B served or A pinned',
                  async () => bDone || (await pinReasonOf('client-a')) !== null,
                  20_000,
                );
              }
              await a.end();
              const r = (await bState).rows[0];
              assert.equal(r.pid, aPid, 'B must get the server connection A used (pool size 1)');
              assert.equal(r.standby, where === 'replica');
              assert.deepEqual(
                { cu: r.cu, su: r.su, sp: r.sp, temps: r.temps, listens: r.listens, locks: r.locks },
                {
                  cu: setup.serverUser,
                  su: setup.serverUser,
                  sp: v.db === 'shadow' ? 'evil, pg_catalog' : '"$user", public',
                  temps: 0,
                  listens: 0,
                  locks: 0,
                },
              );
              // No NOTIFY reaches B, and the lock is free for everyone else.
              if (where === 'primary') {
                await b.query('BEGIN');
                await direct.query('NOTIFY leakchan');
                await b.query('SELECT pg_sleep(0.1)');
                await b.query('COMMIT');
                await b.query('SELECT 1');
                assert.deepEqual(notified, []);
                const free = await direct.query<{ ok: boolean }>(
                  'SELECT pg_try_advisory_xact_lock(4242) AS ok',
                );
                assert.equal(free.rows[0]!.ok, true);
              }
            } finally {
              await a.end().catch(() => undefined);
              await b.end();
              await direct.end();
            }
          });
        }
      });
    }
  }

  /** SHOW CLIENTS' pin reason of the client with this application_name, or null. */
  async function pinReasonOf(name: string): Promise<string | null> {
    const admin = await connect('postgres', 'pgscale');
    const r = await admin.query<{ application_name: string; pinned: string | null }>('SHOW CLIENTS');
    await admin.end();
    return r.rows.find((x) => x.application_name === name)?.pinned ?? null;
  }

  test('plain statements cost no check; a user function is checked only when another client needs the connection', async () => {
    const checks = () => [...proxy.pools.values()].reduce((n, p) => n + p.stats.stateChecks, 0);
    const a = await connect('app', 'app', 'client-a');
    const b = await connect('app', 'app', 'client-b');
    await a.query('SET pgscale.target = primary');
    await b.query('SET pgscale.target = primary');
    // The registry of relations with hidden code is loaded (before that, naming a table is checked).
    await until(
      'the registry is loaded',
      () => Promise.resolve(proxy.hiddenCode.get('app')?.current === true),
      20_000,
    );
    const before = checks();
    await a.query('SELECT count(*) FROM marker WHERE x = $1', [1]);
    await a.query('INSERT INTO marker (x) VALUES (0)');
    await a.query('INSERT INTO marker (x) VALUES ($1)', [0]);
    await a.query('DELETE FROM marker WHERE x = 0');
    await a.query("INSERT INTO marker (x) SELECT 1 WHERE lower('A') = 'b'");
    await a.query('UPDATE marker SET x = x + 1 WHERE x < 0');
    await a.query('BEGIN');
    await a.query('SELECT now(), coalesce(max(x), 0) FROM marker');
    await a.query('COMMIT');
    await b.query('SELECT 1');
    assert.equal(checks(), before, 'plain statements ran the state check');
    // A user function that leaves nothing: A keeps the connection unchecked while alone…
    for (let i = 0; i < 5; i++) await a.query('SELECT public.f_clean()');
    assert.equal(checks(), before, 'checked although nobody else needed the connection');
    // …and B's need makes the proxy check it once and hand it over (A is not pinned).
    await b.query('SELECT 1');
    assert.equal(checks(), before + 1);
    assert.equal(await pinReasonOf('client-a'), null);
    // A function that leaves state: A is pinned when B needs the connection, and SHOW CLIENTS says why.
    await a.query('SELECT public.f_path()');
    const bWaits = b.query('SELECT 1');
    bWaits.catch(() => undefined);
    const reason = await until('A is pinned', () => pinReasonOf('client-a'), 20_000);
    assert.match(reason, /^session state left by function public\.f_path\(\): setting search_path$/);
    assert.equal(checks(), before + 2);
    await a.end();
    await bWaits;
    await b.end();
  });

  test('a view made on the server directly (not through the proxy) is found by the periodic reload', async () => {
    const registry = proxy.hiddenCode.get('app')!;
    await until('the registry is loaded', () => Promise.resolve(registry.current), 20_000);
    assert.equal(registry.riskOfText('SELECT * FROM v_late'), null);
    const d = await fx.direct();
    await d.query(
      `CREATE VIEW public.v_late AS SELECT public.f_role() AS x; GRANT SELECT ON public.v_late TO PUBLIC`,
    );
    await d.end();
    await until(
      'the reload sees v_late',
      () => Promise.resolve(registry.riskOfText('SELECT * FROM v_late') !== null),
      30_000,
    );
    assert.match(registry.riskOfText('SELECT * FROM v_late') ?? '', /^relation v_late \(view\)$/);
    const a = await connect('app', 'app', 'client-a');
    const b = await connect('app', 'app', 'client-b');
    try {
      await a.query('SET pgscale.target = primary');
      await b.query('SET pgscale.target = primary');
      await a.query('SELECT * FROM v_late');
      const bState = b.query(CLEAN_STATE);
      bState.catch(() => undefined);
      assert.match(await until('A is pinned', () => pinReasonOf('client-a'), 20_000), CHECKED);
      await a.end();
      assert.equal((await bState).rows[0].cu, 'app');
    } finally {
      await a.end().catch(() => undefined);
      await b.end();
    }
  });

  /** The loaded registry of a proxy database (logging in once makes it). */
  async function registryOf(database: string) {
    const c = await connect('app', database);
    await c.query('SELECT 1');
    await c.end();
    await until(
      `the registry of ${database} is loaded`,
      () => Promise.resolve(proxy.hiddenCode.get(database)?.current === true),
      20_000,
    );
    return proxy.hiddenCode.get(database)!;
  }

  test('the registry finds operators, casts, domains, attribute notation, foreign tables, a default search_path', async () => {
    const blind = await registryOf('blind');
    const cases: [string, RegExp | null][] = [
      ["SELECT 'a' === 'b'", /^operator ===$/],
      ['SELECT c + c FROM t_cents', /^operator \+$/],
      ['SELECT upper(c) FROM t_cast', /^relation t_cast \(a column of a type with hidden code\)$/],
      ['SELECT (ROW(2)::castme)::text', /^type castme \(a type with a user cast\)$/],
      ['INSERT INTO t_domain VALUES (1)', /^relation t_domain \(a column of a type with hidden code\)$/],
      ['SELECT 1::d_role', /^type d_role \(a domain whose check calls a function\)$/],
      ['SELECT t.attr_path FROM t_attr t', /^function attr_path\(\) by attribute notation$/],
      ['SELECT * FROM t_foreign', /^relation t_foreign \(foreign table\)$/],
      ['INSERT INTO t_builtin_default (x) VALUES (1)', /^relation t_builtin_default \(an expression calling/],
      [
        'INSERT INTO t_builtin_domain VALUES (1)',
        /^relation t_builtin_domain \(a column of a type with hidden code\)$/,
      ],
      ['SELECT 1::d_builtin', /^type d_builtin \(a domain whose check or default calls a function\)$/],
      // Plain statements stay free: no lexer pass finds anything.
      ['SELECT x FROM marker WHERE x = 1', null],
      ['SELECT x FROM t_attr t WHERE t.x = 1', null],
    ];
    for (const [sql, why] of cases) {
      const got = blind.riskOfText(sql);
      if (why === null) assert.equal(got, null, sql);
      else assert.match(got ?? '', why, sql);
    }
    assert.equal(blind.defaultPathShadows, false);
    assert.equal((await registryOf('shadow')).defaultPathShadows, true);
    assert.equal((await registryOf('app')).defaultPathShadows, false);
  });

  test('DDL through the proxy: the registry reloads after it, and is not trusted inside its transaction', async () => {
    const d = await fx.direct();
    // A policy calling a function, on a table without row-level security yet (so not listed).
    await d.query(`CREATE TABLE public.t_late (x int); INSERT INTO public.t_late VALUES (1);
      ALTER TABLE public.t_late OWNER TO app;
      CREATE POLICY p_late ON public.t_late USING (public.f_path() IS NOT NULL)`);
    await d.end();
    const registry = proxy.hiddenCode.get('app')!;
    const a = await connect('app', 'app', 'client-a');
    const b = await connect('app', 'app', 'client-b');
    try {
      await a.query('SET pgscale.target = primary');
      await b.query('SET pgscale.target = primary');
      await a.query('CREATE VIEW public.v_own AS SELECT public.f_clean() AS x');
      // Never current without the new view: stale from the DDL's end until reloaded.
      assert.ok(!registry.current || registry.riskOfText('SELECT * FROM v_own') !== null);
      await until('the registry reloaded', () => Promise.resolve(registry.current), 20_000);
      assert.match(registry.riskOfText('SELECT * FROM v_own') ?? '', /^relation v_own \(view\)$/);
      await b.query('SELECT 1'); // A's connection is checked (the CREATE called a function) and handed over
      await until('A released', async () => (await pinReasonOf('client-a')) === null, 20_000);
      // No call in either text: only the DDL of the same transaction makes the SELECT suspect.
      await a.query('BEGIN');
      await a.query('ALTER TABLE t_late ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY');
      await a.query('SELECT * FROM t_late');
      await a.query('COMMIT');
      const bState = b.query(CLEAN_STATE);
      bState.catch(() => undefined);
      assert.match(await until('A is pinned', () => pinReasonOf('client-a'), 20_000), CHECKED);
      await a.end();
      assert.equal((await bState).rows[0].sp, '"$user", public');
    } finally {
      await a.end().catch(() => undefined);
      await b.end();
    }
  });

  test('a failed BEGIN; DISCARD ALL leaves prepared statements usable, for this and another client', async () => {
    const q = { name: 'same_stmt', text: 'SELECT $1::int + 1 AS n', values: [1] };
    const a = await connect('app', 'app');
    assert.equal((await a.query(q)).rows[0].n, 2);
    await assert.rejects(a.query('BEGIN; DISCARD ALL'), (e: Error & { code?: string }) => e.code === '25001');
    await a.query('ROLLBACK');
    assert.equal((await a.query(q)).rows[0].n, 2);
    await a.end();
    const b = await connect('app', 'app');
    assert.equal((await b.query(q)).rows[0].n, 2);
    assert.equal((await b.query({ ...q, name: 'other_name' })).rows[0].n, 2);
    await b.end();
  });

  test('auth_query runs with search_path pg_catalog on its own connection: a fake pg_shadow is ignored', async () => {
    const d = await fx.direct();
    await d.query(`CREATE ROLE carol LOGIN PASSWORD 'carol-real-1';
      CREATE SCHEMA trap; CREATE TABLE trap.pg_shadow (usename name, passwd text);
      INSERT INTO trap.pg_shadow VALUES ('carol', 'attacker-pw');
      CREATE VIEW public.v_trap AS SELECT set_config('search_path', 'trap, pg_catalog', false) AS x;
      GRANT SELECT ON public.v_trap TO PUBLIC`);
    await d.end();
    const ap = await findFreePortBlock(1);
    // Clients of "app" all run as the server user postgres, which is also auth_user: before the
    // fix, auth_query borrowed a connection from that very pool.
    const yaml = JSON.stringify({
      proxy: {
        listen: '127.0.0.1',
        port: ap,
        default_pool_size: 1,
        auth_user: 'postgres',
        // The pool's server user is the superuser (the point of the test): allowed explicitly.
        allow_superuser: true,
        auth_query: 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1',
        databases: {
          app: { host: '127.0.0.1', port: fx.serverPort, user: 'postgres', password: fx.superPassword },
        },
      },
    });
    const cfg = parseConfig(yaml, '/auth-query.yaml').config.proxy;
    const p2 = new ProxyServer({
      config: cfg,
      resolve: databasesResolver(cfg),
      inlineUsers: new Map([
        ['app', fx.appPassword],
        ['postgres', fx.superPassword],
      ]),
    });
    await p2.start();
    try {
      const login = (user: string, password: string) => {
        const c = new pg.Client({ host: '127.0.0.1', port: ap, user, password, database: 'app' });
        c.on('error', () => undefined);
        return c.connect().then(() => c);
      };
      // The attacker leaves search_path = trap, pg_catalog on the pooled connection through a
      // view (a path the state check does not see; auth_query must not depend on it).
      const evil = await login('app', fx.appPassword);
      await evil.query('SELECT * FROM v_trap');
      await evil.end();
      await assert.rejects(
        login('carol', 'attacker-pw'),
        (e: Error & { code?: string }) => e.code === '28P01',
      );
      const carol = await login('carol', 'carol-real-1');
      assert.equal((await carol.query('SELECT 1 AS one')).rows[0].one, 1);
      await carol.end();
    } finally {
      await p2.stop();
    }
  });
});

function directTo(p: number, password: string, database = 'app'): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: p, user: 'postgres', password, database });
  c.on('error', () => undefined);
  return c.connect().then(() => c);
}

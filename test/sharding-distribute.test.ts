/**
 * create_distributed_table, create_reference_table and undistribute_table executed on real
 * groups (three groups, no replicas, once per available PostgreSQL build): rows end on exactly
 * the group and partition PostgreSQL's own hash chooses, nothing changes anywhere when the
 * catalog refuses or validation fails (with Citus's SQLSTATEs), transactions left prepared are
 * settled by recoverPrepared(), bigserial and identity values stay unique across groups.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { binarySets, makeCluster, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';
import {
  createDistributedTable,
  createReferenceTable,
  decideFromCatalog,
  pgGroupSession,
  recoverPrepared,
  undistributeTable,
} from '../src/sharding/distribute.js';
import type { DistributeProgress, ExecutorOptions, GroupSession } from '../src/sharding/distribute.js';
import { DistributeError } from '../src/sharding/table-ddl.js';

const GROUPS = ['0', '1', '2'];

for (const bins of binarySets()) {
  describe(`distributing tables over three groups, PostgreSQL ${bins.version} (${bins.source})`, () => {
    let tc: TestCluster;
    let clients: pg.Client[] = [];
    let sessions: GroupSession[] = [];

    before(async () => {
      tc = await makeCluster(bins, { groups: 3, replicas: 0, extra: withoutHa });
      await tc.cluster.up();
      for (const [g] of GROUPS.entries()) {
        const t = tc.cluster.target(tc.cluster.primaryOf(g)!, tc.cluster.config.app.database);
        const c = new pg.Client({ ...t, application_name: 'distribute-test' });
        c.on('error', () => undefined);
        await c.connect();
        clients.push(c);
      }
      sessions = clients.map((c, i) => pgGroupSession(GROUPS[i]!, c));
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      clients = [];
      await tc?.cleanup();
    });

    const q = async (g: number, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> =>
      (await clients[g]!.query<Record<string, unknown>>(sql, params)).rows;
    const one = async (g: number, sql: string, params: unknown[] = []) =>
      (await q(g, sql, params))[0] as Record<string, unknown>;
    /** Partitions of `table` on group g with their bounds. */
    const partitions = async (g: number, table: string) =>
      (
        await q(
          g,
          `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass($1) ORDER BY c.relname`,
          [table],
        )
      ).map((r) => `${String(r.relname)} ${String(r.bound)}`);
    const prepared = async () => {
      const out: string[] = [];
      for (const g of GROUPS.keys()) {
        for (const r of await q(g, 'SELECT gid FROM pg_prepared_xacts')) out.push(`${g}:${String(r.gid)}`);
      }
      return out;
    };
    const exists = async (g: number, table: string) =>
      (await one(g, 'SELECT to_regclass($1) AS r', [table])).r !== null;
    const opts = (extra: Partial<ExecutorOptions> = {}): ExecutorOptions => ({
      sessions,
      commitCatalog: () => Promise.resolve(true),
      ...extra,
    });
    /** Round robin, as Citus places shards on its workers. */
    const roundRobin = (shardCount: number, firstShardId: number) => ({
      shardCount,
      firstShardId,
      placement: Array.from({ length: shardCount }, (_, r) => GROUPS[r % GROUPS.length]!),
    });
    const fingerprint = async (g: number, table: string, key: string) =>
      String((await one(g, `SELECT md5(string_agg(t::text, '|' ORDER BY ${key})) AS h FROM ${table} t`)).h);

    test("the Citus guide's users table with 1,000 rows: each group holds exactly its shards' rows", async () => {
      await q(0, 'CREATE TABLE users (user_id bigint, name text, email text, created_at timestamp)');
      await q(
        0,
        `INSERT INTO users SELECT i, 'user ' || i, 'u' || i || '@example.com', timestamp '2024-01-01' + i * interval '1 minute'
           FROM generate_series(1, 1000) i`,
      );
      await q(0, 'CREATE INDEX users_email_idx ON users (email)');
      const beforeRows = (await q(0, 'SELECT t::text AS r FROM users t')).map((r) => String(r.r)).sort();
      // PostgreSQL's own hash partitioning decides where each id belongs: a probe table with the
      // same key type and modulus answers satisfies_hash_partition for every remainder.
      await q(0, 'CREATE TABLE probe (k bigint) PARTITION BY HASH (k)');
      const expected = new Map<number, string[]>();
      for (const r of await q(
        0,
        `SELECT rem, array_agg(user_id ORDER BY user_id)::text[] AS ids FROM users, generate_series(0, 7) rem
          WHERE satisfies_hash_partition('probe'::regclass, 8, rem, user_id) GROUP BY rem`,
      )) {
        expected.set(Number(r.rem), r.ids as string[]);
      }
      await q(0, 'DROP TABLE probe');

      const progress: DistributeProgress[] = [];
      const placement = roundRobin(8, 102008);
      const result = await createDistributedTable(
        'users',
        'user_id',
        placement,
        opts({ onProgress: (p) => progress.push(p) }),
      );
      assert.equal(result.type, 'int8');
      assert.match(result.gid, /^pgscale:distribute:[^:]+:public\.users$/);
      assert.deepEqual(result.pendingGroups, []);
      assert.deepEqual(await prepared(), []);

      let total = 0;
      for (const [g, group] of GROUPS.entries()) {
        const owned = placement.placement.flatMap((pg, r) => (pg === group ? [r] : []));
        assert.deepEqual(
          await partitions(g, 'users'),
          owned.map((r) => `users_${102008 + r} FOR VALUES WITH (modulus 8, remainder ${r})`),
          `group ${group}'s partitions`,
        );
        for (const r of owned) {
          const rows = await q(
            g,
            `SELECT user_id::text AS id FROM ONLY users_${102008 + r} ORDER BY user_id`,
          );
          assert.deepEqual(
            rows.map((x) => String(x.id)),
            expected.get(r) ?? [],
            `shard ${r} on group ${group}`,
          );
        }
        const n = Number((await one(g, 'SELECT count(*) AS n FROM users')).n);
        assert.equal(result.rowsByGroup[group], n, `rowsByGroup of group ${group}`);
        const last = progress.filter((p) => p.group === group).at(-1);
        assert.equal(last?.rows, n);
        assert.equal(last?.done, true);
        total += n;
        // The index came along, on the parent and so on every shard.
        assert.ok(await exists(g, 'users_email_idx'), `users_email_idx on group ${group}`);
      }
      assert.equal(total, 1000);
      // The same rows as before, whatever group they now live on.
      const after = (await Promise.all(GROUPS.map(async (_, g) => q(g, 'SELECT t::text AS r FROM users t'))))
        .flat()
        .map((r) => String(r.r))
        .sort();
      assert.deepEqual(after, beforeRows);
      // A misrouted row is refused by PostgreSQL itself.
      const misrouted = await clients[1]!
        .query('INSERT INTO users VALUES ($1)', [expected.get(0)![0]])
        .catch((e: unknown) => e);
      assert.equal((misrouted as { code?: string }).code, '23514');
    });

    test('undistribute_table brings every row back to group 0', async () => {
      const result = await undistributeTable('users', 'distributed', opts());
      assert.equal(result.rowsByGroup['0'], 1000);
      assert.equal(Number((await one(0, 'SELECT count(*) AS n FROM users')).n), 1000);
      assert.equal((await one(0, "SELECT relkind FROM pg_class WHERE oid = 'users'::regclass")).relkind, 'r');
      assert.deepEqual(await partitions(0, 'users'), []);
      assert.ok(await exists(0, 'users_email_idx'));
      for (const g of [1, 2]) assert.equal(await exists(g, 'users'), false);
      assert.deepEqual(await prepared(), []);
    });

    test('when the catalog refuses, every group is unchanged and nothing stays prepared', async () => {
      const before = await fingerprint(0, 'users', 'user_id');
      let told: unknown = null;
      const err = await createDistributedTable(
        'users',
        'user_id',
        roundRobin(8, 102100),
        opts({
          commitCatalog: async (op) => {
            told = op;
            // Every group has prepared by now.
            assert.equal((await prepared()).length, 3);
            return false;
          },
        }),
      ).catch((e: unknown) => e);
      assert.ok(err instanceof DistributeError);
      assert.equal(err.sqlstate, '40001');
      assert.deepEqual((told as { type: string }).type, 'int8');
      assert.deepEqual(await prepared(), []);
      assert.equal((await one(0, "SELECT relkind FROM pg_class WHERE oid = 'users'::regclass")).relkind, 'r');
      assert.equal(await fingerprint(0, 'users', 'user_id'), before);
      assert.ok(await exists(0, 'users_email_idx'));
      for (const g of [1, 2]) assert.equal(await exists(g, 'users'), false);
      // The sessions are idle again and usable.
      for (const g of GROUPS.keys()) assert.equal((await one(g, 'SELECT 1 AS x')).x, 1);
    });

    test('recoverPrepared settles what a failed catalog commit left prepared', async () => {
      const before = await fingerprint(0, 'users', 'user_id');
      const boom = () => Promise.reject(new Error('state store unreachable'));
      const err = await createDistributedTable(
        'users',
        'user_id',
        roundRobin(8, 102200),
        opts({ commitCatalog: boom }),
      ).catch((e: unknown) => e);
      assert.ok(err instanceof DistributeError);
      const left = await prepared();
      assert.equal(left.length, 3);
      const gid = left[0]!.split(':').slice(1).join(':');
      // The catalog does not have the table: roll back everywhere.
      const rolled = await recoverPrepared(sessions, (g) => decideFromCatalog(g, () => false));
      assert.deepEqual(
        rolled.map((r) => `${r.group} ${r.action}`),
        ['0 rolled back', '1 rolled back', '2 rolled back'],
      );
      assert.ok(rolled.every((r) => r.gid === gid));
      assert.deepEqual(await prepared(), []);
      assert.equal(await fingerprint(0, 'users', 'user_id'), before);

      // Again, and this time the catalog had committed: commit everywhere.
      await createDistributedTable(
        'users',
        'user_id',
        roundRobin(8, 102300),
        opts({ commitCatalog: boom }),
      ).catch(() => undefined);
      const unknownLeft = await recoverPrepared(sessions, () => 'unknown');
      assert.ok(unknownLeft.every((r) => r.action === 'left'));
      const done = await recoverPrepared(sessions, (g) =>
        decideFromCatalog(g, (key) => key === 'public.users'),
      );
      assert.equal(done.filter((r) => r.action === 'committed').length, 3);
      assert.deepEqual(await prepared(), []);
      let total = 0;
      for (const g of GROUPS.keys()) {
        assert.equal((await partitions(g, 'users')).length, g === 0 ? 3 : g === 1 ? 3 : 2);
        total += Number((await one(g, 'SELECT count(*) AS n FROM users')).n);
      }
      assert.equal(total, 1000);
      await undistributeTable('users', 'distributed', opts());
      assert.equal(await fingerprint(0, 'users', 'user_id'), before);
    });

    test('each refusal has its SQLSTATE and changes nothing', async () => {
      await q(
        0,
        `CREATE TABLE v_ts (id bigint, at timestamptz, code text, n int);
         CREATE TABLE v_uniq (id bigint, email text UNIQUE);
         CREATE TABLE v_nulls (id bigint); INSERT INTO v_nulls VALUES (1), (NULL);
         CREATE TABLE v_part (id bigint) PARTITION BY HASH (id);
         CREATE TABLE v_parent (id bigint); CREATE TABLE v_child () INHERITS (v_parent);
         CREATE TABLE v_local (id bigint PRIMARY KEY);
         CREATE TABLE v_fk (id bigint REFERENCES v_local (id));
         CREATE TABLE v_int_serial (id serial, k bigint)`,
      );
      const cases: [string, string, string, RegExp][] = [
        ['no_such_table', 'id', '42P01', /relation "no_such_table" does not exist/],
        ['v_ts', 'nope', '42703', /column "nope" of relation "v_ts" does not exist/],
        ['v_ts', 'at', '42883', /could not identify a hash function for type timestamp with time zone/],
        ['v_uniq', 'id', '0A000', /cannot create constraint on "v_uniq"/],
        ['v_nulls', 'id', '23502', /the partition column of table public\.v_nulls cannot be NULL/],
        ['v_part', 'id', '0A000', /partitioned table/],
        ['v_parent', 'id', '0A000', /inherits or is inherited/],
        ['v_child', 'id', '0A000', /inherits or is inherited/],
        ['v_fk', 'id', '0A000', /cannot create foreign key constraint/],
        ['v_local', 'id', '0A000', /cannot create foreign key constraint/],
        ['v_int_serial', 'k', '0A000', /integer sequence/],
      ];
      const icu = await q(
        0,
        "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
      ).then(
        () => true,
        () => false,
      );
      if (icu) {
        await q(0, 'CREATE TABLE v_ci (name text COLLATE ci)');
        cases.push(['v_ci', 'name', '0A000', /non deterministic collation/]);
      }
      for (const [table, column, code, message] of cases) {
        const e = await createDistributedTable(table, column, roundRobin(4, 103000), opts()).catch(
          (x: unknown) => x,
        );
        assert.ok(e instanceof DistributeError, `${table}.${column}: ${String(e)}`);
        assert.equal(e.sqlstate, code, `${table}.${column}: ${e.message}`);
        assert.match(e.message, message);
      }
      assert.deepEqual(await prepared(), []);
      for (const g of [1, 2]) assert.equal(await exists(g, 'v_ts'), false);
      assert.equal(
        (await one(0, "SELECT relkind FROM pg_class WHERE oid = 'v_nulls'::regclass")).relkind,
        'r',
      );
      const refRefused = await createReferenceTable('v_fk', opts()).catch((x: unknown) => x);
      assert.equal((refRefused as DistributeError).sqlstate, '0A000');
    });

    test('bigserial and identity values stay unique across groups (disjoint ranges per group)', async () => {
      await q(
        0,
        `CREATE TABLE orders (id bigint GENERATED BY DEFAULT AS IDENTITY, n bigserial, customer bigint NOT NULL,
                              total numeric(10,2) CHECK (total >= 0), PRIMARY KEY (customer, id));
         INSERT INTO orders (customer, total) SELECT i % 50, i FROM generate_series(1, 200) i`,
      );
      await createDistributedTable('orders', 'customer', roundRobin(4, 104000), opts());
      const ids: bigint[] = [];
      for (const [g, group] of GROUPS.entries()) {
        const rem = roundRobin(4, 104000).placement.indexOf(group);
        const row = await one(
          g,
          `INSERT INTO orders (customer, total)
             SELECT c, 1 FROM generate_series(1000, 2000) c
              WHERE satisfies_hash_partition('orders'::regclass, 4, $1, c::int8) LIMIT 1
           RETURNING id::text, n::text`,
          [rem],
        );
        const base = BigInt(g) << 48n;
        const id = BigInt(String(row.id));
        const n = BigInt(String(row.n));
        if (g === 0) {
          assert.equal(id, 201n, 'group 0 continues after the existing rows');
          assert.equal(n, 201n);
        } else {
          assert.equal(id, base + 1n, `identity on group ${group}`);
          assert.equal(n, base + 1n, `bigserial on group ${group}`);
        }
        ids.push(id);
      }
      assert.equal(new Set(ids).size, 3);
      const check = await clients[1]!
        .query('INSERT INTO orders (customer, total) VALUES (1, -1)')
        .catch((e: unknown) => e);
      assert.match(String((check as { code?: string }).code), /^23/);
      await undistributeTable('orders', 'distributed', opts());
      assert.equal(Number((await one(0, 'SELECT count(*) AS n FROM orders')).n), 203);
      // After the way back, values continue above every group's.
      const next = await one(
        0,
        'INSERT INTO orders (customer, total) VALUES (7, 1) RETURNING id::text, n::text',
      );
      assert.equal(BigInt(String(next.id)), (2n << 48n) + 2n);
      assert.equal(BigInt(String(next.n)), (2n << 48n) + 2n);
    });

    test('a foreign key between colocated tables on the distribution column stays, on every group', async () => {
      await q(
        0,
        `CREATE TABLE accounts (id bigint PRIMARY KEY, name text);
         INSERT INTO accounts SELECT i, 'a' || i FROM generate_series(1, 100) i`,
      );
      const placement = roundRobin(6, 105000);
      await createDistributedTable('accounts', 'id', placement, opts());
      // Created once accounts is distributed, empty, as Citus advises.
      await q(
        0,
        'CREATE TABLE payments (account_id bigint NOT NULL REFERENCES accounts (id), n int, PRIMARY KEY (account_id, n))',
      );
      const fkRefused = await createDistributedTable(
        'payments',
        'account_id',
        { ...placement, firstShardId: 105100 },
        opts(),
      ).catch((e: unknown) => e);
      assert.equal((fkRefused as DistributeError).sqlstate, '0A000');
      // The catalog says accounts is colocated with it: the foreign key stays.
      await createDistributedTable(
        'payments',
        'account_id',
        { ...placement, firstShardId: 105100 },
        opts({ validate: { foreignKeyOk: (fk) => fk.references?.name === 'accounts' } }),
      );
      let total = 0;
      for (const g of GROUPS.keys()) {
        const fks = await q(
          g,
          "SELECT conname FROM pg_constraint WHERE conrelid = 'payments'::regclass AND contype = 'f' AND conparentid = 0",
        );
        assert.equal(fks.length, 1, `group ${g}`);
        // Colocated: every account of this group has its payments' shard here too.
        const n = (await clients[g]!.query('INSERT INTO payments SELECT id, 1 FROM accounts')).rowCount ?? 0;
        assert.ok(n > 0);
        total += n;
        const orphan = await clients[g]!.query(
          `INSERT INTO payments SELECT c, 1 FROM generate_series(1000, 2000) c
            WHERE EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                          WHERE i.inhparent = 'payments'::regclass
                            AND satisfies_hash_partition('payments'::regclass, 6, substring(pg_get_expr(p.relpartbound, p.oid) from 'remainder (\\d+)')::int, c::int8))
            LIMIT 1`,
        ).catch((e: unknown) => e);
        assert.equal((orphan as { code?: string }).code, '23503', `group ${g}`);
      }
      assert.equal(total, 100);
    });

    test('COPY streams with back-pressure: a slow reader, an abandoned COPY, a large copy to every group', async () => {
      await q(
        0,
        'CREATE TABLE big (id bigint PRIMARY KEY, pad text); INSERT INTO big SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 40000) i',
      );
      const size = Number(
        (await one(0, 'SELECT sum(length(id::text) + length(pad) + 2)::int8 AS n FROM big')).n,
      );
      // A reader slower than the server: the socket pauses, nothing is lost.
      let bytes = 0;
      for await (const chunk of sessions[0]!.copyOut('COPY big TO STDOUT')) {
        bytes += chunk.length;
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(bytes, size);
      // A reader that stops after the first chunk: the session still serves the next statement.
      for await (const chunk of sessions[0]!.copyOut('COPY big TO STDOUT')) {
        assert.ok(chunk.length > 0);
        break;
      }
      assert.equal((await one(0, 'SELECT 1 AS x')).x, 1);
      // A source that fails ends the COPY FROM with CopyFail: nothing arrives, the session lives on.
      await q(1, 'CREATE TABLE sink (id bigint, pad text)');
      async function* failing() {
        yield Buffer.from('1\ta\n');
        await new Promise((r) => setImmediate(r));
        throw new Error('source broke');
      }
      await assert.rejects(sessions[1]!.copyIn('COPY sink FROM STDIN', failing()), /source broke/);
      assert.equal((await one(1, 'SELECT count(*)::int AS n FROM sink')).n, 0);
      // Data the server refuses fails the COPY with the server's error, and the session lives on.
      const bad = await sessions[1]!
        .copyIn('COPY sink FROM STDIN', sessions[0]!.copyOut('COPY (SELECT pad, id FROM big) TO STDOUT'))
        .catch((e: unknown) => e);
      assert.equal((bad as { code?: string }).code, '22P02');
      assert.equal((await one(0, 'SELECT 1 AS x')).x, 1);
      assert.equal((await one(1, 'SELECT count(*)::int AS n FROM sink')).n, 0);
      // A COPY that fails before reading (no such table) abandons its source: no session stalls.
      const missing = await sessions[1]!
        .copyIn('COPY no_such_sink FROM STDIN', sessions[0]!.copyOut('COPY big TO STDOUT'))
        .catch((e: unknown) => e);
      assert.equal((missing as { code?: string }).code, '42P01');
      assert.equal((await one(0, 'SELECT 1 AS x')).x, 1);
      await q(1, 'DROP TABLE sink');
      const progress: DistributeProgress[] = [];
      const result = await createReferenceTable('big', opts({ onProgress: (p) => progress.push(p) }));
      assert.deepEqual(result.rowsByGroup, { '0': 40000, '1': 40000, '2': 40000 });
      assert.ok(progress.filter((p) => p.group === '1' && !p.done).length > 1, 'progress while streaming');
      for (const g of [1, 2]) assert.equal(Number((await one(g, 'SELECT count(*) AS n FROM big')).n), 40000);
      await undistributeTable('big', 'reference', opts());
      await q(0, 'DROP TABLE big');
    });

    test('create_reference_table copies every row to every group, and undistribute drops the copies', async () => {
      await q(
        0,
        `CREATE TABLE countries (code char(2) PRIMARY KEY, name text NOT NULL, id bigserial);
         INSERT INTO countries (code, name) SELECT chr(65 + i / 26) || chr(65 + i % 26), 'country ' || i FROM generate_series(0, 299) i`,
      );
      const before = await fingerprint(0, 'countries', 'code');
      const result = await createReferenceTable('countries', opts());
      assert.deepEqual(result.rowsByGroup, { '0': 300, '1': 300, '2': 300 });
      for (const g of GROUPS.keys()) {
        assert.equal(await fingerprint(g, 'countries', 'code'), before, `group ${g}`);
        // The same next sequence value everywhere.
        assert.equal((await one(g, "SELECT nextval('countries_id_seq')::text AS v")).v, '301');
      }
      assert.deepEqual(await prepared(), []);
      await undistributeTable('countries', 'reference', opts());
      assert.equal(await fingerprint(0, 'countries', 'code'), before);
      for (const g of [1, 2]) assert.equal(await exists(g, 'countries'), false);
    });
  });
}

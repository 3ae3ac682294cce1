/**
 * Transactions on several groups through `pgscale up` with two groups: a transaction block whose
 * statements touch the shards of both groups runs on both, and its COMMIT is atomic — two-phase
 * commit when both wrote (PREPARE on each, the decision recorded in the state store, COMMIT
 * PREPARED), a plain COMMIT when one did. Covered: commit and rollback; an error on one group
 * fails the whole transaction (25P02 after it, wherever the next statement goes; COMMIT answers
 * ROLLBACK); a deferred constraint failing at PREPARE rolls every group back with its error;
 * savepoints made before and after the move, ROLLBACK TO and RELEASE on every part; the extended
 * protocol (node-postgres with parameters, postgres.js's sql.begin); read-only transactions on
 * both groups; a read across groups after a write in the transaction is refused (it would not
 * see the write); a deadlock across groups ends with 55P03 (lock_timeout) instead of hanging;
 * and a bank-transfer workload under concurrency keeps the total of balances and every
 * acknowledged transfer. No prepared transaction is left behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import postgres from 'postgres';
import { fileURLToPath } from 'node:url';
import { binarySets } from './harness.js';
import { expectSuccess, findClientTools, required, run, runJavaDriver } from './drivers/util.js';
import { placement, upSharded } from './sharding-support.js';
import { RawClient, fe } from './raw-client.js';
import type { ShardedCluster } from './sharding-support.js';

const bins = binarySets()[0]!;
const javaSource = fileURLToPath(new URL('./drivers/ShardTx.java', import.meta.url));
const ACCOUNTS = 40;
const INITIAL = 1000;

const code = (c: string) => (e: { code?: string }) => {
  assert.equal(e.code, c, JSON.stringify(e));
  return true;
};

describe('transactions on several groups (pgscale up, two groups)', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];
  /** Accounts on group 0 and on group 1 (by where PostgreSQL stored them). */
  const on: [number[], number[]] = [[], []];

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 0 });
    app = await sc.connectApp();
    for (let g = 0; g < 2; g++) direct.push(await sc.connectGroup(g));
    await app.query(
      'CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))',
    );
    await app.query(
      'CREATE TABLE transfers (id bigint, seq bigint, amount bigint, UNIQUE (id, seq) DEFERRABLE INITIALLY DEFERRED)',
    );
    await app.query(`INSERT INTO accounts SELECT g, ${INITIAL} FROM generate_series(1, ${ACCOUNTS}) g`);
    await app.query("SELECT create_distributed_table('accounts', 'id')");
    await app.query("SELECT create_distributed_table('transfers', 'id', colocate_with => 'accounts')");
    const where = await placement(direct, 'accounts', 'id');
    for (const [k, p] of where) on[p.group as 0 | 1].push(Number(k));
    assert.ok(
      on[0].length > 2 && on[1].length > 2,
      `accounts on both groups: ${on[0].length}/${on[1].length}`,
    );
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  const balance = async (id: number) =>
    Number((await app.query('SELECT balance FROM accounts WHERE id = $1', [id])).rows[0].balance);
  const total = async () => {
    let sum = 0;
    for (const d of direct)
      sum += Number((await d.query('SELECT coalesce(sum(balance), 0) AS s FROM accounts')).rows[0].s);
    return sum;
  };
  const prepared = async () => {
    let n = 0;
    for (const d of direct)
      n += (await d.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_xacts')).rows[0]!.n;
    return n;
  };

  test('a transaction writing on both groups commits on both', async () => {
    const [a, b] = [on[0][0]!, on[1][0]!];
    await app.query('BEGIN');
    await app.query('UPDATE accounts SET balance = balance - 10 WHERE id = $1', [a]);
    await app.query('UPDATE accounts SET balance = balance + 10 WHERE id = $1', [b]);
    // Each group sees its own part inside the transaction.
    assert.equal(
      Number((await app.query(`SELECT balance FROM accounts WHERE id = ${a}`)).rows[0].balance),
      INITIAL - 10,
    );
    const r = await app.query('COMMIT');
    assert.equal(r.command, 'COMMIT');
    assert.equal(await balance(a), INITIAL - 10);
    assert.equal(await balance(b), INITIAL + 10);
    assert.equal(await total(), ACCOUNTS * INITIAL);
    assert.equal(await prepared(), 0);
  });

  test('ROLLBACK undoes both groups', async () => {
    const [a, b] = [on[0][1]!, on[1][1]!];
    await app.query('BEGIN');
    await app.query(`UPDATE accounts SET balance = 1 WHERE id = ${a}`);
    await app.query(`UPDATE accounts SET balance = 2 WHERE id = ${b}`);
    await app.query('ROLLBACK');
    assert.equal(await balance(a), INITIAL);
    assert.equal(await balance(b), INITIAL);
  });

  test('an error on one group fails the whole transaction: 25P02 anywhere after it, COMMIT answers ROLLBACK', async () => {
    const [a, b] = [on[0][2]!, on[1][2]!];
    await app.query('BEGIN');
    await app.query(`UPDATE accounts SET balance = balance - 5 WHERE id = ${a}`);
    await assert.rejects(app.query(`UPDATE accounts SET balance = -1 WHERE id = ${b}`), code('23514'));
    await assert.rejects(app.query(`UPDATE accounts SET balance = 0 WHERE id = ${a}`), code('25P02'));
    await assert.rejects(app.query(`SELECT * FROM accounts WHERE id = ${b}`), code('25P02'));
    const r = await app.query('COMMIT');
    assert.equal(r.command, 'ROLLBACK');
    assert.equal(await balance(a), INITIAL);
    assert.equal(await balance(b), INITIAL);
    assert.equal(await prepared(), 0);
  });

  test('a deferred constraint that fails at PREPARE rolls every group back, with its error', async () => {
    const [a, b] = [on[0][3]!, on[1][3]!];
    await app.query(`INSERT INTO transfers VALUES (${b}, 1, 0)`);
    await app.query('BEGIN');
    await app.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${a}`);
    await app.query(`INSERT INTO transfers VALUES (${b}, 1, 7)`); // duplicate, checked at commit
    await assert.rejects(app.query('COMMIT'), code('23505'));
    assert.equal(await balance(a), INITIAL);
    assert.equal(
      Number((await app.query(`SELECT count(*) FROM transfers WHERE id = ${b}`)).rows[0].count),
      1,
    );
    assert.equal(await prepared(), 0);
    // The session goes on.
    assert.equal((await app.query('SELECT 1 AS one')).rows[0].one, 1);
  });

  test("a deferred constraint that fails at group 0's COMMIT (the part that records the decision) rolls every group back", async () => {
    assert.ok(on[0].length > 14 && on[1].length > 14, 'enough accounts on each group');
    const [a, b] = [on[0][14]!, on[1][14]!];
    await app.query(`INSERT INTO transfers VALUES (${a}, 1, 0)`);
    // Several times: the first commits on several groups may take the plain two-phase path while
    // the proxy learns what it needs for the other (group 0's part carrying the decision).
    for (let i = 0; i < 3; i++) {
      await app.query('BEGIN');
      await app.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${b}`);
      await app.query(`INSERT INTO transfers VALUES (${a}, 1, 7)`); // duplicate on group 0
      await assert.rejects(app.query('COMMIT'), code('23505'));
      assert.equal(await balance(b), INITIAL);
      assert.equal(await prepared(), 0);
    }
    // A transaction that commits on both after it, and the session goes on.
    await app.query('BEGIN');
    await app.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${b}`);
    await app.query(`UPDATE accounts SET balance = balance - 1 WHERE id = ${a}`);
    await app.query(`INSERT INTO transfers VALUES (${a}, 2, 7)`);
    assert.equal((await app.query('COMMIT')).command, 'COMMIT');
    assert.equal(await balance(b), INITIAL + 1);
    assert.equal(await balance(a), INITIAL - 1);
    // Group 0's part carried the decision (record_commit marks its records): the last commits
    // on several groups are all decided so.
    const by = await direct[0]!.query<{ by: string | null }>(
      `SELECT value::json->>'by' AS by FROM pgscale_tx.decisions ORDER BY (value::json->>'at')::bigint DESC LIMIT 1`,
    );
    assert.equal(by.rows[0]?.by, 'group 0', "the decision was not written by group 0's part");
    assert.equal(await prepared(), 0);
  });

  test("the decisions of transactions on several groups are out of the clients' reach: no read, no forged record (42501)", async () => {
    await assert.rejects(app.query('SELECT * FROM pgscale_tx.decisions'), code('42501'));
    await assert.rejects(app.query('SELECT * FROM pgscale_tx.secret'), code('42501'));
    await assert.rejects(
      app.query('INSERT INTO pgscale_tx.decisions VALUES ($1, $2)', ['k', 'v']),
      code('42501'),
    );
    // record_commit is callable, but only with the proof the proxy alone can compute.
    await assert.rejects(
      app.query("SELECT pgscale_tx.record_commit('0123456789abcdef01234567', 'forged', ARRAY['0','1'])"),
      code('42501'),
    );
    const g0 = direct[0]!;
    const n = await g0.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pgscale_tx.decisions WHERE key LIKE '%0123456789abcdef01234567'",
    );
    assert.equal(n.rows[0]!.n, 0);
  });

  test('savepoints: ROLLBACK TO and RELEASE act on every group, made before or after the move', async () => {
    const [a, b, c] = [on[0][4]!, on[1][4]!, on[1][5]!];
    await app.query('BEGIN');
    await app.query('SAVEPOINT s0');
    await app.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${a}`);
    await app.query('SAVEPOINT s1');
    await app.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${b}`); // moves to group 1
    await app.query('ROLLBACK TO SAVEPOINT s1');
    await app.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${c}`);
    await app.query('RELEASE SAVEPOINT s1');
    await app.query(`UPDATE accounts SET balance = balance + 100 WHERE id = ${a}`);
    await app.query('SAVEPOINT s2');
    await app.query(`UPDATE accounts SET balance = balance + 100 WHERE id = ${c}`);
    await assert.rejects(app.query(`UPDATE accounts SET balance = -5 WHERE id = ${a}`), code('23514'));
    await app.query('ROLLBACK TO s2');
    await app.query('COMMIT');
    assert.equal(await balance(a), INITIAL + 101);
    assert.equal(await balance(b), INITIAL);
    assert.equal(await balance(c), INITIAL + 1);
    // A savepoint made before anything ran, rolled back to after both groups wrote: nothing.
    await app.query('BEGIN');
    await app.query('SAVEPOINT first');
    await app.query(`UPDATE accounts SET balance = 0 WHERE id = ${a}`);
    await app.query(`UPDATE accounts SET balance = 0 WHERE id = ${b}`);
    await app.query('ROLLBACK TO first');
    await app.query('COMMIT');
    assert.equal(await balance(a), INITIAL + 101);
    assert.equal(await balance(b), INITIAL);
  });

  test('read-only transactions on both groups, and a read across groups refused after a write in the transaction', async () => {
    const [a, b] = [on[0][6]!, on[1][6]!];
    await app.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const x = Number((await app.query(`SELECT balance FROM accounts WHERE id = ${a}`)).rows[0].balance);
    const y = Number((await app.query(`SELECT balance FROM accounts WHERE id = ${b}`)).rows[0].balance);
    assert.equal(
      (await app.query('SHOW transaction_isolation')).rows[0].transaction_isolation,
      'repeatable read',
    );
    assert.equal((await app.query('COMMIT')).command, 'COMMIT');
    assert.equal(x + y, 2 * INITIAL);
    await app.query('BEGIN');
    assert.equal(Number((await app.query('SELECT count(*) FROM accounts')).rows[0].count), ACCOUNTS);
    await app.query(`UPDATE accounts SET balance = balance WHERE id = ${b}`);
    await assert.rejects(app.query('SELECT sum(balance) FROM accounts'), code('0A000'));
    await app.query('ROLLBACK');
  });

  test('the extended protocol: node-postgres with parameters, postgres.js sql.begin', async () => {
    const [a, b] = [on[0][7]!, on[1][7]!];
    await app.query('BEGIN');
    await app.query('UPDATE accounts SET balance = balance - $2 WHERE id = $1', [a, 3]);
    await app.query('UPDATE accounts SET balance = balance + $2 WHERE id = $1', [b, 3]);
    await app.query({ text: 'COMMIT', values: [] });
    assert.equal(await balance(a), INITIAL - 3);
    assert.equal(await balance(b), INITIAL + 3);
    const sql = postgres({ ...sc.app, username: sc.app.user, max: 1, onnotice: () => undefined });
    try {
      for (let i = 0; i < 3; i++) {
        await sql.begin(async (tx) => {
          await tx`UPDATE accounts SET balance = balance + 3 WHERE id = ${a}`;
          await tx`UPDATE accounts SET balance = balance - 3 WHERE id = ${b}`;
        });
      }
      assert.equal(await balance(a), INITIAL + 6);
      assert.equal(await balance(b), INITIAL - 6);
      await assert.rejects(
        sql.begin(async (tx) => {
          await tx`UPDATE accounts SET balance = balance + 1 WHERE id = ${a}`;
          await tx`UPDATE accounts SET balance = -1 WHERE id = ${b}`;
        }),
        code('23514'),
      );
      assert.equal(await balance(a), INITIAL + 6);
    } finally {
      await sql.end();
    }
    assert.equal(await prepared(), 0);
  });

  test('SETs of the transaction hold on every group it moves to; SET TRANSACTION cannot move (0A000)', async () => {
    const [a, b] = [on[0][9]!, on[1][9]!];
    const tag = (k: number) =>
      `SELECT current_setting('pgscale_test.tag', true) AS t FROM accounts WHERE id = ${k}`;
    await app.query('BEGIN');
    await app.query(`UPDATE accounts SET balance = balance WHERE id = ${a}`);
    await app.query("SET pgscale_test.tag = 'in-tx'");
    assert.equal((await app.query(tag(b))).rows[0].t, 'in-tx');
    await app.query("SET pgscale_test.tag = 'again'");
    assert.equal((await app.query(tag(a))).rows[0].t, 'again');
    await app.query('COMMIT');
    assert.equal((await app.query(tag(b))).rows[0].t, 'again');
    await app.query('RESET pgscale_test.tag');
    await app.query('BEGIN');
    await app.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE');
    await app.query(`SELECT 1 FROM accounts WHERE id = ${a}`);
    await assert.rejects(app.query(tag(b)), code('0A000'));
    await app.query('ROLLBACK');
  });

  test('transaction control the proxy cannot split is refused (0A000) and fails the transaction; nothing is committed', async () => {
    const [a, b] = [on[0][13]!, on[1][13]!];
    const refused = [
      `UPDATE accounts SET balance = 0 WHERE id = ${b}; COMMIT`,
      'COMMIT AND CHAIN',
      "PREPARE TRANSACTION 'mine'",
      'SAVEPOINT x; SELECT 1',
    ];
    for (const sql of refused) {
      await app.query('BEGIN');
      await app.query(`UPDATE accounts SET balance = 0 WHERE id = ${a}`);
      await app.query(`UPDATE accounts SET balance = 0 WHERE id = ${b}`);
      await assert.rejects(app.query(sql), code('0A000'), sql);
      await assert.rejects(app.query('SELECT 1'), code('25P02'), sql);
      assert.equal((await app.query('COMMIT')).command, 'ROLLBACK', sql);
      assert.equal(await balance(a), INITIAL, sql);
      assert.equal(await balance(b), INITIAL, sql);
    }
    // A savepoint name that needs quoting, and one that does not exist.
    await app.query('BEGIN');
    await app.query('SAVEPOINT "odd ""name"""');
    await app.query(`UPDATE accounts SET balance = 0 WHERE id = ${a}`);
    await app.query(`UPDATE accounts SET balance = 0 WHERE id = ${b}`);
    await app.query('ROLLBACK TO SAVEPOINT "odd ""name"""');
    assert.equal(await balance(a), INITIAL);
    await assert.rejects(app.query('ROLLBACK TO SAVEPOINT nowhere'), code('3B001'));
    // ROLLBACK TO recovers the transaction on every group, as on one PostgreSQL.
    await app.query('ROLLBACK TO SAVEPOINT "odd ""name"""');
    await app.query(`UPDATE accounts SET balance = balance - 1 WHERE id = ${a}`);
    await app.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${b}`);
    assert.equal((await app.query('COMMIT')).command, 'COMMIT');
    assert.equal(await balance(a), INITIAL - 1);
    assert.equal(await balance(b), INITIAL + 1);
    assert.equal(await prepared(), 0);
  });

  test('a client that leaves in the middle leaves no lock and nothing prepared', async () => {
    const [a, b] = [on[0][10]!, on[1][10]!];
    const c = await sc.connectApp();
    await c.query('BEGIN');
    await c.query(`UPDATE accounts SET balance = 0 WHERE id = ${a}`);
    await c.query(`UPDATE accounts SET balance = 0 WHERE id = ${b}`);
    // Gone without a word (the socket closed).
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await app.query("SET lock_timeout = '20s'");
    await app.query('BEGIN');
    await app.query(`UPDATE accounts SET balance = balance WHERE id = ${a}`);
    await app.query(`UPDATE accounts SET balance = balance WHERE id = ${b}`);
    await app.query('COMMIT');
    await app.query('RESET lock_timeout');
    assert.equal(await balance(a), INITIAL);
    assert.equal(await balance(b), INITIAL);
    assert.equal(await prepared(), 0);
  });

  test('pgjdbc (autocommit off, server-prepared statements, savepoints) and psycopg2', async () => {
    const [a, b] = [on[0][11]!, on[1][11]!];
    const tools = findClientTools();
    const jdbc = await runJavaDriver(tools, javaSource, 'ShardTx', sc.app, {
      DRV_A: String(a),
      DRV_B: String(b),
      DRV_N: '8',
    });
    assert.match(jdbc.stdout, new RegExp(`ok ${INITIAL - 8} ${INITIAL + 8}`));
    assert.equal(await balance(a), INITIAL - 8);
    assert.equal(await balance(b), INITIAL + 8);
    const py = `
import os, psycopg2
c = psycopg2.connect(host=os.environ['PGHOST'], port=os.environ['PGPORT'], user=os.environ['PGUSER'], password=os.environ['PGPASSWORD'], dbname=os.environ['PGDATABASE'])
cur = c.cursor()
for i in range(5):
    cur.execute('UPDATE accounts SET balance = balance + %s WHERE id = %s', (2, ${a}))
    cur.execute('UPDATE accounts SET balance = balance - %s WHERE id = %s', (2, ${b}))
    c.commit()
cur.execute('UPDATE accounts SET balance = 0 WHERE id = %s', (${a},))
cur.execute('UPDATE accounts SET balance = 0 WHERE id = %s', (${b},))
c.rollback()
print('ok')
`;
    const r = await run(required(tools.python, 'python3', 'install python3'), ['-c', py], {
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
    expectSuccess(r, 'psycopg2');
    assert.equal(await balance(a), INITIAL + 2);
    assert.equal(await balance(b), INITIAL - 2);
    assert.equal(await prepared(), 0);
  });

  test('a statement on every group behind an unsynced statement of the same pipeline ends the connection (0A000), never hangs', async () => {
    const a = on[0][12]!;
    const c = await RawClient.connect(sc.app.port, sc.app.host);
    try {
      await c.loginScram({ user: sc.app.user, database: sc.app.database }, sc.app.password);
      c.send(
        fe(
          {
            name: 'Parse',
            statement: '',
            query: `SELECT balance FROM accounts WHERE id = ${a}`,
            paramTypes: [],
          },
          { name: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
          { name: 'Execute', portal: '', maxRows: 0 },
          {
            name: 'Parse',
            statement: '',
            query: 'UPDATE accounts SET balance = balance WHERE balance < 0',
            paramTypes: [],
          },
          { name: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
          { name: 'Execute', portal: '', maxRows: 0 },
          { name: 'Sync' },
        ),
      );
      await c.expectError('0A000', { timeoutMs: 30_000 });
    } finally {
      c.destroy();
    }
    assert.equal(await balance(a), INITIAL);
    // COMMIT of a transaction on several groups in the same pipeline as its last statement.
    const b = on[1][12]!;
    const d = await RawClient.connect(sc.app.port, sc.app.host);
    try {
      await d.loginScram({ user: sc.app.user, database: sc.app.database }, sc.app.password);
      d.send(fe({ name: 'Query', query: 'BEGIN' }));
      await d.until('Z', 30_000);
      d.send(fe({ name: 'Query', query: `UPDATE accounts SET balance = balance + 1 WHERE id = ${a}` }));
      await d.until('Z', 30_000);
      const step = (query: string) => [
        { name: 'Parse' as const, statement: '', query, paramTypes: [] },
        { name: 'Bind' as const, portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
        { name: 'Execute' as const, portal: '', maxRows: 0 },
      ];
      d.send(
        fe(...step(`UPDATE accounts SET balance = balance + 1 WHERE id = ${b}`), ...step('COMMIT'), {
          name: 'Sync',
        }),
      );
      const replies = await d.until('Z', 30_000);
      assert.ok(
        replies.some((m) => m.type === 'C' && m.payload.toString('utf8').startsWith('COMMIT')),
        replies.map((m) => m.type).join(''),
      );
    } finally {
      d.destroy();
    }
    assert.equal(await balance(a), INITIAL + 1);
    assert.equal(await balance(b), INITIAL + 1);
    assert.equal(await prepared(), 0);
  });

  test('a deadlock across groups ends with 55P03 (lock_timeout) on one transaction, not a hang', async () => {
    const [a, b] = [on[0][8]!, on[1][8]!];
    const c1 = await sc.connectApp();
    const c2 = await sc.connectApp();
    try {
      await c1.query('BEGIN');
      await c2.query('BEGIN');
      await c1.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${a}`);
      await c2.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${b}`);
      const r1 = c1.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${b}`).then(
        () => 'ok',
        (e: { code?: string }) => e.code ?? 'error',
      );
      const r2 = c2.query(`UPDATE accounts SET balance = balance + 1 WHERE id = ${a}`).then(
        () => 'ok',
        (e: { code?: string }) => e.code ?? 'error',
      );
      const first = await Promise.race([r1, r2]);
      assert.equal(first, '55P03');
      // The failed one rolls back; the other then goes through, unless its own wait timed out
      // at the same moment (both waits began together).
      const oneFailed = (await Promise.race([r1, Promise.resolve('pending')])) === '55P03';
      await (oneFailed ? c1 : c2).query('ROLLBACK');
      const other = await (oneFailed ? r2 : r1);
      assert.ok(other === 'ok' || other === '55P03', other);
      await (oneFailed ? c2 : c1).query(other === 'ok' ? 'COMMIT' : 'ROLLBACK');
    } finally {
      await c1.end().catch(() => undefined);
      await c2.end().catch(() => undefined);
    }
    assert.equal(await prepared(), 0);
  });

  test('bank transfers under concurrency: every acknowledged transfer is there, the total never changes', async () => {
    const before = new Map<number, number>();
    for (const d of direct)
      for (const r of (await d.query<{ id: string; balance: string }>('SELECT id, balance FROM accounts'))
        .rows)
        before.set(Number(r.id), Number(r.balance));
    const expected = new Map(before);
    const workers = 6;
    const each = 25;
    let acked = 0;
    let failed = 0;
    const ids = [...before.keys()].sort((x, y) => x - y);
    const sum0 = [...before.values()].reduce((x, y) => x + y, 0);
    // A reader of the total through the proxy meanwhile: there is no global snapshot, so a read
    // between one group's COMMIT PREPARED and the other's may see a transfer half done (counted).
    let running = true;
    const samples = { n: 0, off: 0 };
    const reader = (async () => {
      const c = await sc.connectApp();
      try {
        while (running) {
          const v = Number((await c.query('SELECT sum(balance) AS s FROM accounts')).rows[0].s);
          samples.n++;
          if (v !== sum0) samples.off++;
        }
      } finally {
        await c.end().catch(() => undefined);
      }
    })();
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        const c = await sc.connectApp();
        try {
          for (let i = 0; i < each; i++) {
            // From an account of one group to one of the other (locks taken in id order: no deadlock).
            const from = on[i % 2]![(w * 7 + i) % on[i % 2]!.length]!;
            const to = on[(i + 1) % 2]![(w * 3 + i * 5) % on[(i + 1) % 2]!.length]!;
            const amount = 1 + ((w + i) % 9);
            const [lo, hi] = from < to ? [from, to] : [to, from];
            try {
              await c.query('BEGIN');
              await c.query('SELECT id FROM accounts WHERE id = $1 FOR UPDATE', [lo]);
              await c.query('SELECT id FROM accounts WHERE id = $1 FOR UPDATE', [hi]);
              await c.query('UPDATE accounts SET balance = balance - $2 WHERE id = $1', [from, amount]);
              await c.query('UPDATE accounts SET balance = balance + $2 WHERE id = $1', [to, amount]);
              await c.query('INSERT INTO transfers VALUES ($1, $2, $3)', [
                from,
                1_000_000 + w * 1000 + i,
                -amount,
              ]);
              await c.query('COMMIT');
              acked++;
              expected.set(from, expected.get(from)! - amount);
              expected.set(to, expected.get(to)! + amount);
            } catch {
              failed++;
              await c.query('ROLLBACK').catch(() => undefined);
            }
          }
        } finally {
          await c.end().catch(() => undefined);
        }
      }),
    );
    running = false;
    await reader;
    console.log(
      `# bank: ${acked} transfers acknowledged, ${failed} failed; ${samples.off} of ${samples.n} reads of the total during them saw a transfer half committed`,
    );
    assert.ok(samples.n > 0);
    assert.ok(acked >= (workers * each) / 2, `most transfers commit (${acked})`);
    const after = new Map<number, number>();
    for (const d of direct)
      for (const r of (await d.query<{ id: string; balance: string }>('SELECT id, balance FROM accounts'))
        .rows)
        after.set(Number(r.id), Number(r.balance));
    for (const id of ids) assert.equal(after.get(id), expected.get(id), `account ${id}`);
    assert.equal(await total(), sum0);
    const history = Number(
      (await app.query('SELECT count(*) FROM transfers WHERE seq >= 1000000')).rows[0].count,
    );
    assert.equal(history, acked);
    assert.equal(await prepared(), 0);
  });
});

/**
 * Shard moves while the application writes (issue #17): drain a group and rebalance back under a
 * write load through the proxy (node-postgres extended protocol, postgres.js) that records every
 * acknowledged write; afterwards no acknowledged write is lost or duplicated, every row is on the
 * group the catalog says, no client saw an error, and nothing of the moves is left behind. Also a
 * cancelled move, one move by shard id, and the refusals (DDL during a move, bad requests).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { binarySets, cli } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { checkAfterMoves, makeTables, progressed, startWriteLoad } from './sharding-move-support.js';
import { controllerCall } from '../src/cli/controller-api.js';

const bins = binarySets()[0]!;

describe('shard moves under a write load (two groups)', () => {
  let sc: ShardedCluster;

  before(async () => {
    sc = await upSharded(bins, {
      groups: 2,
      replicas: 1,
    });
    await makeTables(sc, 8, 4000);
  });

  after(async () => {
    if (process.env.PGSCALE_MOVE_DEBUG) {
      const { readFileSync } = await import('node:fs');
      const log = readFileSync(`${sc.tc.cluster.dataDir}/logs/controller.log`, 'utf8');
      console.log(
        log
          .split('\n')
          .filter((l) => /shard move|sharding:/.test(l))
          .join('\n'),
      );
    }
    await sc?.down();
  });

  const run = (args: string[]) => cli([...args, '-c', sc.tc.file], sc.tc.env);

  test('drain group 1, then rebalance: no acknowledged write lost, no client error', async () => {
    const load = await startWriteLoad(sc);
    try {
      await progressed(load, 50);
      const drain = await run(['drain-group', '1']);
      assert.equal(drain.code, 0, drain.stdout + drain.stderr);
      assert.match(drain.stdout, /drain job \w+: done; 4 of 4 moves done/);
      const status = await run(['status', '--json']).catch(() => null);
      void status;
      const back = await run(['rebalance']);
      assert.equal(back.code, 0, back.stdout + back.stderr);
      assert.match(back.stdout, /rebalance job \w+: done; 4 of 4 moves done/);
      const before = load.done();
      await progressed(load, before + 30);
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.errors, []);
    await checkAfterMoves(sc, load, 2);
    const hist = await run(['rebalance', '--status']);
    assert.equal(hist.code, 0, hist.stderr);
    assert.match(hist.stdout, /rebalance +done/);
    assert.match(hist.stdout, /drain 1 +done/);
  });

  test('a move by shard id; a cancelled move leaves the shard where it was', async () => {
    const app = await sc.connectApp();
    try {
      const r = await app.query<{ shardid: string; nodeport: number }>(
        "SELECT shardid::text, nodeport FROM citus_shards WHERE table_name = 'users'::regclass ORDER BY shardid LIMIT 1",
      );
      const shard = r.rows[0]!.shardid;
      const onPort = r.rows[0]!.nodeport;
      const to = onPort === sc.portOf(0) ? '1' : '0';
      const moved = await run(['move-shard', shard, '--to', to]);
      assert.equal(moved.code, 0, moved.stdout + moved.stderr);
      const after1 = await app.query(`SELECT nodeport FROM citus_shards WHERE shardid = ${shard}`);
      assert.equal(after1.rows[0].nodeport, sc.portOf(Number(to)));
      // Cancelled while copying: back where it was, nothing left.
      const back = onPort === sc.portOf(0) ? '0' : '1';
      const started = await run(['move-shard', shard, '--to', back, '--no-wait']);
      assert.equal(started.code, 0, started.stderr);
      const cancel = await run(['rebalance', '--cancel']);
      assert.equal(cancel.code, 0, cancel.stderr);
      for (;;) {
        const st = await run(['rebalance', '--status', '--json']);
        if (JSON.parse(st.stdout).current === null) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const after2 = await app.query<{ nodeport: number }>(
        `SELECT nodeport FROM citus_shards WHERE shardid = ${shard}`,
      );
      // Cancelled before its cutover (it stays), or done already (it moved): never anywhere else.
      assert.ok([sc.portOf(0), sc.portOf(1)].includes(after2.rows[0]!.nodeport));
      const count = await app.query('SELECT count(*)::int AS n FROM users');
      assert.ok(count.rows[0].n >= 4000);
    } finally {
      await app.end();
    }
    await checkAfterMoves(
      sc,
      { acked: new Map(), errors: [], done: () => 0, stop: () => Promise.resolve() },
      2,
    );
  });

  test("Citus's calls through the proxy: citus_move_shard_placement, citus_rebalance_start/wait, citus_drain_node", async () => {
    const app = await sc.connectApp();
    try {
      const shards = async () =>
        (
          await app.query<{ id: string; name: string; port: number }>(
            "SELECT shardid::text AS id, nodename AS name, nodeport AS port FROM citus_shards WHERE table_name = 'users'::regclass ORDER BY shardid",
          )
        ).rows;
      const [first] = await shards();
      const other = (await shards()).find((s) => s.port !== first!.port)!;
      await app.query('SELECT citus_move_shard_placement($1, $2, $3, $4, $5)', [
        first!.id,
        first!.name,
        first!.port,
        other.name,
        other.port,
      ]);
      assert.equal((await shards())[0]!.port, other.port);
      // The wrong source: Citus's own refusal, nothing moves.
      await assert.rejects(
        app.query('SELECT citus_move_shard_placement($1, $2, $3, $4, $5)', [
          first!.id,
          first!.name,
          first!.port,
          other.name,
          other.port,
        ]),
        /is not on/,
      );
      const job = await app.query<{ citus_rebalance_start: string }>('SELECT citus_rebalance_start()');
      assert.match(job.rows[0]!.citus_rebalance_start, /^\d+$/);
      await app.query('SELECT citus_rebalance_wait()');
      const counts = new Map<number, number>();
      for (const s of await shards()) counts.set(s.port, (counts.get(s.port) ?? 0) + 1);
      assert.deepEqual([...counts.values()].sort(), [4, 4]);
      await app.query('SELECT citus_drain_node($1, $2)', [other.name, other.port]);
      assert.ok((await shards()).every((s) => s.port !== other.port));
      const started = await app.query<{ id: string }>(
        "SELECT citus_rebalance_start(rebalance_strategy => 'by_shard_count') AS id",
      );
      await app.query('SELECT citus_rebalance_wait()');
      const st = await app.query<{ job_id: string; state: string; job_type: string; done: string }>(
        "SELECT job_id::text, state, job_type, details->>'done' AS done FROM citus_rebalance_status()",
      );
      assert.deepEqual(st.rows, [
        { job_id: started.rows[0]!.id, state: 'finished', job_type: 'rebalance', done: '4' },
      ]);
      await assert.rejects(
        app.query("SELECT citus_rebalance_start('nope')"),
        /no rebalance strategy named nope/,
      );
    } finally {
      await app.end();
    }
  });

  test("reads right after a move never go to a target replica that has not replayed the shard's arrival", async () => {
    const app = await sc.connectApp();
    const shards = async () =>
      (
        await app.query<{ id: string; port: number }>(
          "SELECT shardid::text AS id, nodeport AS port FROM citus_shards WHERE table_name = 'users'::regclass ORDER BY shardid",
        )
      ).rows;
    // Group 1's standby stops replaying: without the floor it would stay in the read set and
    // answer the moved shard's reads with no rows (seen before the fix: [] for every key).
    const standby = sc.tc.cluster.nodes().find((n) => n.group === 1 && n.port !== sc.portOf(1))!;
    const sb = await sc.connectGroup(1, standby.port);
    try {
      await sb.query('SELECT pg_wal_replay_pause()');
      const onZero = (await shards()).find((s) => s.port === sc.portOf(0))!;
      const r = Number(onZero.id) - 102008;
      // The users in that shard, read on group 0's primary before the move.
      const g0 = await sc.connectGroup(0);
      const ids = (
        await g0.query<{ id: string }>(
          `SELECT user_id::text AS id FROM users_${onZero.id} ORDER BY 1 LIMIT 50`,
        )
      ).rows.map((x) => Number(x.id));
      await g0.end();
      assert.ok(ids.length > 0, `shard ${onZero.id} (remainder ${r}) has rows`);
      const moved = await run(['move-shard', onZero.id, '--to', '1']);
      assert.equal(moved.code, 0, moved.stdout + moved.stderr);
      // A new client (no writes of its own): plain reads by key, through the proxy, at once.
      const reader = await sc.connectApp();
      try {
        for (const id of ids.slice(0, 20)) {
          const got = await reader.query('SELECT user_id FROM users WHERE user_id = $1', [id]);
          assert.equal(got.rows.length, 1, `user ${id} not found right after its shard moved`);
        }
      } finally {
        await reader.end();
      }
    } finally {
      await sb.query('SELECT pg_wal_replay_resume()').catch(() => undefined);
      await sb.end();
      await app.end();
    }
  });

  test('an emptied partition left "pending detach" on the target by an interrupted DETACH CONCURRENTLY does not stop a move back', async () => {
    const app = await sc.connectApp();
    const g0 = await sc.connectGroup(0);
    const reader = await sc.connectGroup(0);
    const detacher = await sc.connectGroup(0);
    try {
      const onZero = (
        await app.query<{ id: string }>(
          `SELECT shardid::text AS id FROM citus_shards WHERE table_name = 'users'::regclass AND nodeport = ${sc.portOf(0)} ORDER BY shardid LIMIT 1`,
        )
      ).rows[0]!.id;
      const before = (await app.query('SELECT count(*)::int AS n FROM users')).rows[0].n;
      const moved = await run(['move-shard', onZero, '--to', '1']);
      assert.equal(moved.code, 0, moved.stdout + moved.stderr);
      // What an interrupted cleanup leaves on group 0: the emptied partition, its detach half done
      // (the first transaction committed, the second cancelled while it waited for a reader).
      const r = Number(onZero) - 102008;
      await g0.query(
        `CREATE TABLE users_${onZero} PARTITION OF users FOR VALUES WITH (MODULUS 8, REMAINDER ${r})`,
      );
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM users');
      const pid = (await detacher.query('SELECT pg_backend_pid() AS p')).rows[0].p;
      const detach = detacher.query(`ALTER TABLE users DETACH PARTITION users_${onZero} CONCURRENTLY`).then(
        () => null,
        (e: Error) => e,
      );
      for (let i = 0; ; i++) {
        const p = await g0.query(
          `SELECT 1 FROM pg_inherits WHERE inhrelid = 'users_${onZero}'::regclass AND inhdetachpending`,
        );
        if (p.rows.length > 0) break;
        assert.ok(i < 200, 'the detach never reached its second step');
        await new Promise((res) => setTimeout(res, 50));
      }
      await g0.query('SELECT pg_cancel_backend($1)', [pid]);
      assert.match(String(await detach), /canceling statement/);
      await reader.query('COMMIT');
      const back = await run(['move-shard', onZero, '--to', '0']);
      assert.equal(back.code, 0, back.stdout + back.stderr);
      const where = await app.query(`SELECT nodeport FROM citus_shards WHERE shardid = ${onZero}`);
      assert.equal(where.rows[0].nodeport, sc.portOf(0));
      assert.equal((await app.query('SELECT count(*)::int AS n FROM users')).rows[0].n, before);
    } finally {
      await reader.query('ROLLBACK').catch(() => undefined);
      await Promise.all([app, g0, reader, detacher].map((c) => c.end().catch(() => undefined)));
    }
    await checkAfterMoves(
      sc,
      { acked: new Map(), errors: [], done: () => 0, stop: () => Promise.resolve() },
      2,
    );
  });

  test("a source's emptied shard table left detached (its drop failed) is dropped by the next job; one with rows is kept", async () => {
    const app = await sc.connectApp();
    const g0 = await sc.connectGroup(0);
    try {
      // Two shards of events on group 1: on group 0, tables by their names, not partitions —
      // what a full CI run left after a move 0 → 1 whose drop of the emptied source failed.
      const onOne = (
        await app.query<{ id: string }>(
          `SELECT shardid::text AS id FROM citus_shards WHERE table_name = 'events'::regclass AND nodeport = ${sc.portOf(1)} ORDER BY shardid LIMIT 2`,
        )
      ).rows.map((r) => r.id);
      assert.equal(onOne.length, 2, 'group 1 holds two shards of events');
      const [empty, full] = onOne as [string, string];
      await g0.query(`CREATE TABLE events_${empty} (LIKE events)`);
      await g0.query(`CREATE TABLE events_${full} (LIKE events)`);
      await g0.query(`INSERT INTO events_${full} (user_id, n) VALUES (424242, 1)`);
      const users = (
        await app.query<{ id: string }>(
          `SELECT shardid::text AS id FROM citus_shards WHERE table_name = 'users'::regclass AND nodeport = ${sc.portOf(0)} ORDER BY shardid LIMIT 1`,
        )
      ).rows[0]!.id;
      const moved = await run(['move-shard', users, '--to', '1']);
      assert.equal(moved.code, 0, moved.stdout + moved.stderr);
      const left = await g0.query<{ n: string }>(
        `SELECT relname AS n FROM pg_class WHERE relname IN ('events_${empty}', 'events_${full}') ORDER BY 1`,
      );
      assert.deepEqual(
        left.rows.map((r) => r.n),
        [`events_${full}`],
        'the empty one dropped at the end of the job, the one with a row kept',
      );
      await g0.query(`DROP TABLE events_${full}`);
      const back = await run(['move-shard', users, '--to', '0']);
      assert.equal(back.code, 0, back.stdout + back.stderr);
    } finally {
      await Promise.all([app, g0].map((c) => c.end().catch(() => undefined)));
    }
    await checkAfterMoves(
      sc,
      { acked: new Map(), errors: [], done: () => 0, stop: () => Promise.resolve() },
      2,
    );
  });

  test('refusals: DDL during a move, unknown shard or group, a second job', async () => {
    const bad = await run(['move-shard', '999', '--to', '1']);
    assert.notEqual(bad.code, 0, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /there is no shard 999/);
    const app = await sc.connectApp();
    try {
      const r = await app.query<{ shardid: string; nodeport: number }>(
        "SELECT shardid::text, nodeport FROM citus_shards WHERE table_name = 'users'::regclass ORDER BY shardid LIMIT 1",
      );
      const shard = r.rows[0]!.shardid;
      const noGroup = await run(['move-shard', shard, '--to', '7']);
      assert.match(noGroup.stderr, /there is no group 7/);
      const to = r.rows[0]!.nodeport === sc.portOf(0) ? '1' : '0';
      // Straight to the controller's API: the CLI's start-up could outlast a small move.
      const started = await controllerCall(sc.tc.cluster, 'POST', '/sharding/move', {
        shard_id: Number(shard),
        to,
      });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      const second = await controllerCall(sc.tc.cluster, 'POST', '/sharding/rebalance', {});
      assert.equal(second.status, 409);
      assert.match(String(second.body.error), /is running/);
      await assert.rejects(
        app.query('ALTER TABLE users ADD COLUMN extra int'),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, '55006');
          assert.match(e.message, /shards are being moved/);
          return true;
        },
      );
      for (;;) {
        const st = await run(['rebalance', '--status', '--json']);
        if (JSON.parse(st.stdout).current === null) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      await app.query('ALTER TABLE users ADD COLUMN extra int');
    } finally {
      await app.end();
    }
  });
});

/**
 * The guide's "add new shards to handle growing data volumes", as issue #17 asks: under a write
 * load through the proxy that records every acknowledged write, a third group is added to a
 * two-group cluster and the shards rebalanced; then that group is drained and removed, still
 * under load. Afterwards: no acknowledged write lost or duplicated, every row on the group the
 * catalog says, no client error, nothing of the moves left behind, and the reference tables and
 * sequences on the new group.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { binarySets, cli } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { checkAfterMoves, makeTables, progressed, startWriteLoad } from './sharding-move-support.js';

const bins = binarySets()[0]!;

describe('adding a group under a write load', () => {
  let sc: ShardedCluster;

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 1 });
    await makeTables(sc, 6, 3000);
    const c = await sc.connectApp();
    try {
      await c.query('CREATE TABLE orders (id bigserial, user_id bigint NOT NULL, total numeric)');
      await c.query(`SELECT create_distributed_table('orders', 'user_id', colocate_with => 'users')`);
    } finally {
      await c.end();
    }
  });

  after(async () => {
    await sc?.down();
  });

  const run = (args: string[]) => cli([...args, '-c', sc.tc.file], sc.tc.env);

  test('add-group and rebalance, then drain-group and remove-group, while writing', async () => {
    const load = await startWriteLoad(sc, 2);
    try {
      await progressed(load, 50);
      const added = await run(['add-group', '--standbys', '0']);
      assert.equal(added.code, 0, added.stdout + added.stderr);
      sc.tc.cluster.reloadMembers();
      const rebalanced = await run(['rebalance']);
      assert.equal(rebalanced.code, 0, rebalanced.stdout + rebalanced.stderr);
      assert.match(rebalanced.stdout, /rebalance job \w+: done; (\d+) of \1 moves done/);
      const mid = load.done();
      await progressed(load, mid + 30);
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.errors, []);
    await checkAfterMoves(sc, load, 3);
    const g2 = await sc.connectGroup(2);
    try {
      // users' 6 shards over 3 groups: 2 each.
      const parts = await g2.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'users'::regclass",
      );
      assert.equal(parts.rows[0]!.n, 2);
      assert.equal((await g2.query<{ n: number }>('SELECT count(*)::int AS n FROM countries')).rows[0]!.n, 2);
    } finally {
      await g2.end();
    }
    // A serial of a distributed table hands out group 2's own range there.
    const app = await sc.connectApp();
    try {
      const onTwo = await app.query<{ shardid: string; nodeport: number }>(
        "SELECT shardid::text, nodeport FROM citus_shards WHERE table_name = 'users'::regclass",
      );
      const port2 = sc.portOf(2);
      assert.ok(onTwo.rows.some((r) => r.nodeport === port2));
      const ids: bigint[] = [];
      for (let u = 1; u <= 60; u++) {
        const r = await app.query<{ id: string }>(
          'INSERT INTO orders (user_id, total) VALUES ($1, 1) RETURNING id',
          [u],
        );
        ids.push(BigInt(r.rows[0]!.id));
      }
      assert.equal(new Set(ids).size, ids.length, 'order ids unique across groups');
      assert.ok(
        ids.some((i) => i >> 48n === 2n),
        'some order ids from group 2’s range',
      );
    } finally {
      await app.end();
    }

    const load2 = await startWriteLoad(sc, 2, 10_000_000);
    try {
      await progressed(load2, 30);
      const drained = await run(['drain-group', '2']);
      assert.equal(drained.code, 0, drained.stdout + drained.stderr);
      const removed = await run(['remove-group', '2']);
      assert.equal(removed.code, 0, removed.stdout + removed.stderr);
      sc.tc.cluster.reloadMembers();
    } finally {
      await load2.stop();
    }
    assert.deepEqual(load2.errors, []);
    await checkAfterMoves(sc, load2, 2);
  });
});

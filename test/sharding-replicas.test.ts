/**
 * Reads of a distributed table pinned to a group other than group 0 are served by that group's
 * standbys, with read-your-writes by that group's own WAL positions: two groups with a standby
 * each inside `pgscale up`, a key on group 1 read through the proxy until its standby answers,
 * then write-then-read cycles on it that never read an older value.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { binarySets, until } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import type { TestCluster } from './harness.js';

const bins = binarySets()[0]!;

describe('sharding with standbys: reads of another group go to its standbys', () => {
  let tc: TestCluster;
  let app: pg.Client;

  let sc: ShardedCluster;

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 1 });
    tc = sc.tc;
    app = await sc.connectApp();
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    await sc?.down();
  });

  test('a key on group 1 is read from group 1’s standby, never older than the client’s own write', async () => {
    await app.query('CREATE TABLE users (user_id bigint PRIMARY KEY, name text)');
    await app.query("INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 200) g");
    await app.query("SELECT create_distributed_table('users', 'user_id', shard_count => 8)");
    const nodes = tc.cluster.nodes().filter((n) => n.group === 1);
    const ports = new Set(nodes.map((n) => n.port));
    // A key group 1 holds: its primary or standby answers a point read of it.
    let key = 0;
    for (let k = 1; k <= 200 && key === 0; k++) {
      const r = await app.query<{ p: number }>(
        'SELECT inet_server_port() AS p FROM users WHERE user_id = $1',
        [k],
      );
      if (ports.has(r.rows[0]!.p)) key = k;
    }
    assert.ok(key > 0, 'a key on group 1');
    const primary = nodes.find((n) => n.index === 0)!.port;
    const standby = nodes.find((n) => n.index === 1)!.port;
    await until(
      'a read of the key served by group 1’s standby',
      async () =>
        (
          await app.query<{ p: number }>('SELECT inet_server_port() AS p FROM users WHERE user_id = $1', [
            key,
          ])
        ).rows[0]!.p === standby,
      30_000,
    );
    let onStandby = 0;
    for (let i = 0; i < 300; i++) {
      await app.query('UPDATE users SET name = $2 WHERE user_id = $1', [key, `v${i}`]);
      const r = await app.query<{ name: string; p: number }>(
        'SELECT name, inet_server_port() AS p FROM users WHERE user_id = $1',
        [key],
      );
      assert.equal(
        r.rows[0]!.name,
        `v${i}`,
        `read-your-writes on group 1 (cycle ${i}, port ${r.rows[0]!.p})`,
      );
      assert.ok(r.rows[0]!.p === standby || r.rows[0]!.p === primary);
      if (r.rows[0]!.p === standby) onStandby++;
    }
    assert.ok(onStandby > 0, 'some reads after writes were served by the standby once it had replayed them');
  });
});

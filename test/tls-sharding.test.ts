/**
 * cluster.tls with two groups (`pgscale up`): the connections between groups use verified TLS
 * too — the global tables' foreign servers (postgres_fdw from group 0 to the other groups) and a
 * shard move's subscription (its connection string says verify-full, so the move only
 * completes when the source's certificate verifies).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { binarySets, cli } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';

const bins = binarySets()[0]!;

describe('cluster.tls across groups (pgscale up, two groups)', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 0, tls: true });
    app = await sc.connectApp();
    for (let g = 0; g < 2; g++) direct.push(await sc.connectGroup(g));
    await app.query('CREATE TABLE users (user_id bigint PRIMARY KEY, score int)');
    await app.query('INSERT INTO users SELECT g, g % 17 FROM generate_series(1, 200) g');
    await app.query("SELECT create_distributed_table('users', 'user_id')");
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  test('a read over the global tables reaches group 1 through a verified TLS foreign server', async () => {
    const r = await app.query<{ user_id: string; r: string }>(
      'SELECT user_id::text, rank() OVER (ORDER BY score DESC, user_id) AS r FROM users ORDER BY r LIMIT 3',
    );
    assert.deepEqual(
      r.rows.map((x) => x.user_id),
      ['16', '33', '50'],
    );
    const servers = await direct[0]!.query<{ opts: string[] }>(
      "SELECT srvoptions AS opts FROM pg_foreign_server WHERE srvname LIKE 'pgscale%'",
    );
    assert.ok(servers.rows.length > 0);
    for (const s of servers.rows) assert.ok(s.opts.includes('sslmode=verify-full'), s.opts.join(' '));
    const fdw = await direct[1]!.query<{ ssl: boolean }>(
      `SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
        WHERE a.application_name = 'pgscale global'`,
    );
    assert.ok(fdw.rows.length > 0, 'group 0 reads group 1 through its foreign server');
    assert.ok(fdw.rows.every((x) => x.ssl));
  });

  test('a shard move streams over verified TLS and completes', async () => {
    const r = await app.query<{ shardid: string; nodeport: number }>(
      "SELECT shardid::text, nodeport FROM citus_shards WHERE table_name = 'users'::regclass ORDER BY shardid LIMIT 1",
    );
    const shard = r.rows[0]!.shardid;
    const to = r.rows[0]!.nodeport === sc.portOf(0) ? '1' : '0';
    const moved = await cli(['move-shard', shard, '--to', to, '-c', sc.tc.file], sc.tc.env);
    assert.equal(moved.code, 0, moved.stdout + moved.stderr);
    const after1 = await app.query<{ nodeport: number }>(
      `SELECT nodeport FROM citus_shards WHERE shardid = ${shard}`,
    );
    assert.equal(after1.rows[0]!.nodeport, sc.portOf(Number(to)));
    assert.equal((await app.query<{ n: string }>('SELECT count(*) AS n FROM users')).rows[0]!.n, '200');
  });
});

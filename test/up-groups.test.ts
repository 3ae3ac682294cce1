/**
 * Two replication groups under one `pgscale up`, from a file that still says `shards:` (written
 * before shards were renamed groups): it comes up with a warning naming the new key, the proxy
 * sends each database to its home group's primary, a switchover of group 1 moves group 1's pools
 * and leaves group 0's alone, and status and metrics say `group`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { binarySets, cli, makeCluster, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';

const bins = binarySets()[0]!;

describe('two groups inside pgscale up', () => {
  let tc: TestCluster;
  before(async () => {
    tc = await makeCluster(bins, {
      groups: 2,
      replicas: 1,
      // The old key, and the second group as the home of the database "orders".
      extra: (yaml) =>
        yaml
          .replace(/^groups:$/m, 'shards:')
          .replace(
            /^( {2}- )nodes:\n((?: {6}.*\n)+)( {2}- )nodes:/m,
            '$1nodes:\n$2$3databases: [orders]\n    nodes:',
          ),
    });
  });
  after(async () => {
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  const primaryOf = (group: number) =>
    until(
      `a primary of group ${group} in /ha`,
      async () => {
        const r = await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}/ha`);
        const body = (await r.json()) as { groups: { group: number; leader: string | null }[] };
        return body.groups[group]?.leader ?? null;
      },
      60_000,
    );
  const portOf = (name: string) => tc.cluster.nodes().find((n) => n.name === name)!.port;

  function client(database: string): pg.Client {
    return new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'app',
      password: readSecrets(tc.cluster.dataDir)!.app,
      database,
    });
  }

  /** The port of the server a primary transaction of `c` (a client of the proxy) reaches. */
  async function portVia(c: pg.Client, database: string): Promise<number> {
    const r = await c.query<{ port: number; rec: boolean }>(
      "/* pgscale:primary */ SELECT current_setting('port')::int AS port, pg_is_in_recovery() AS rec",
    );
    assert.equal(r.rows[0]!.rec, false, `${database}: reached a standby`);
    return r.rows[0]!.port;
  }

  /** The same, through a new connection. */
  async function serverPort(database: string): Promise<number> {
    const c = client(database);
    await c.connect();
    try {
      return await portVia(c, database);
    } finally {
      await c.end();
    }
  }

  test('a file with the old key shards: comes up, with a warning naming groups:', async () => {
    assert.equal(tc.cluster.config.groups.length, 2);
    assert.deepEqual(tc.cluster.config.groups[1]!.databases, ['orders']);
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    assert.match(
      up.stderr,
      /warning: .*pgscale\.yaml: shards: is the old name of groups: rename it to groups:/,
    );
  });

  test("each database goes to its home group's primary", async () => {
    const g0 = await primaryOf(0);
    const g1 = await primaryOf(1);
    assert.match(g0, /^s0n/);
    assert.match(g1, /^s1n/);
    // "orders" lives in group 1: the operator creates it there (up makes app.database in each group).
    const su = new pg.Client({
      host: '127.0.0.1',
      port: portOf(g1),
      user: tc.cluster.config.postgres.superuser,
      password: readSecrets(tc.cluster.dataDir)!.superuser,
      database: 'postgres',
    });
    await su.connect();
    await su.query('CREATE DATABASE orders OWNER app');
    await su.end();
    assert.equal(await serverPort('app'), portOf(g0));
    assert.equal(await serverPort('orders'), portOf(g1));
  });

  test("a switchover of group 1 (asked with the old --shard) moves group 1's pools only", async () => {
    const g0 = await primaryOf(0);
    const old = await primaryOf(1);
    const to = tc.cluster.nodes().find((n) => n.group === 1 && n.name !== old)!.name;
    // Clients connected before the switchover keep their pools: those pools must follow.
    const app = client('app');
    let orders = client('orders');
    app.on('error', () => undefined);
    orders.on('error', () => undefined);
    await app.connect();
    await orders.connect();
    try {
      assert.equal(await portVia(orders, 'orders'), portOf(old));
      const r = await cli(['switchover', '-c', tc.file, '--shard', '1', '--to', to], tc.env);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stderr, /warning: --shard is the old name of --group: use --group/);
      await until(
        'the orders pool on the new primary of group 1',
        async () => {
          try {
            return (await portVia(orders, 'orders')) === portOf(to);
          } catch (e) {
            // A statement running on the old primary when it stops is lost (57P01 ends that
            // client, as on a direct connection): the application reconnects, to the same pool.
            await orders.end().catch(() => undefined);
            orders = client('orders');
            orders.on('error', () => undefined);
            await orders.connect();
            throw e;
          }
        },
        60_000,
      );
      assert.equal(await portVia(app, 'app'), portOf(g0));
      assert.equal(await serverPort('app'), portOf(g0));
      assert.equal(await serverPort('orders'), portOf(to));
      assert.equal(await primaryOf(0), g0);
    } finally {
      await app.end().catch(() => undefined);
      await orders.end().catch(() => undefined);
    }
  });

  test('after a reload (RELOAD, SIGHUP, add-replica) each database still goes to its home group', async () => {
    const g0 = await primaryOf(0);
    const g1 = await primaryOf(1);
    const admin = new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: tc.cluster.config.postgres.superuser,
      password: readSecrets(tc.cluster.dataDir)!.superuser,
      database: 'pgscale',
    });
    await admin.connect();
    try {
      await admin.query('RELOAD');
    } finally {
      await admin.end();
    }
    // Where the reloaded resolver sends a new login of "orders" (group 0 has no such database).
    const orders = await serverPort('orders').catch((e: Error) => e.message);
    assert.equal(orders, portOf(g1));
    assert.equal(await serverPort('app'), portOf(g0));
  });

  test('status and metrics say group (status --json also shard, for one release)', async () => {
    const s = await cli(['status', '-c', tc.file], tc.env);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^GROUP\s+NODE\s+ROLE/m);
    const j = await cli(['status', '-c', tc.file, '--json'], tc.env);
    const nodes = (JSON.parse(j.stdout) as { nodes: { name: string; group: number; shard: number }[] }).nodes;
    assert.deepEqual(
      nodes.map((n) => [n.name, n.group, n.shard]),
      tc.cluster.nodes().map((n) => [n.name, n.group, n.group]),
    );
    const m = await (await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}/metrics`)).text();
    assert.match(m, /^pgscale_node_up\{node="s1n0",group="1"\} 1$/m);
    assert.match(m, /^pgscale_ha_epoch\{group="1"\} \d+$/m);
    assert.doesNotMatch(m, /shard="/);
  });
});

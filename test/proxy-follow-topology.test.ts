/**
 * Pools that follow the cluster's topology (`pgscale up`) and their read routers: a replica
 * published while a pool's first login is still under way (waiting for its first server
 * connection: PAUSE, or a failover hold) ends up in that pool's read set. The login resolved its
 * target before it waited; a router made from that target afterwards would miss the replica for
 * good, since the topology event that announced it found no router to update (a full run saw a
 * replica added by `add-replica` never in the read set: test/operator.test.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { binarySets, makeCluster, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { proxyConfig } from './proxy-harness.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { topologyResolver } from '../src/proxy/resolver.js';
import { TopologyView } from '../src/topology/topology.js';
import type { Endpoint, Topology } from '../src/topology/topology.js';

describe('read routers of pools that follow the topology', () => {
  let tc: TestCluster;
  let secrets: { app: string; superuser: string };
  let n: Endpoint[];
  before(async () => {
    tc = await makeCluster(binarySets()[0]!, { replicas: 2 });
    await tc.cluster.up();
    secrets = readSecrets(tc.cluster.dataDir)!;
    n = tc.cluster.nodes().map((x) => ({ name: x.name, host: '127.0.0.1', port: x.port }));
  });
  after(async () => {
    await tc?.cleanup();
  });

  /** A proxy routing database app by `view`, following it as ProxyService does. */
  async function followingProxy(view: TopologyView) {
    const port = await findFreePortBlock(1);
    const proxy = new ProxyServer({
      // Its databases table is not used: the resolver is the topology's, as under `pgscale up`.
      config: proxyConfig(n[0]!.port, port),
      resolve: topologyResolver(view, ['app']),
      inlineUsers: new Map([
        ['app', secrets.app],
        ['postgres', secrets.superuser],
      ]),
      loginBackoff: false,
    });
    await proxy.start();
    const unsubscribe = view.subscribe((t) =>
      t.groups.forEach((g, group) => proxy.followGroup(group, g.primary, g.replicas, 30_000)),
    );
    const client = (database: string, user: string, password: string) => {
      const c = new pg.Client({ host: '127.0.0.1', port, user, password, database });
      c.on('error', () => undefined);
      return c;
    };
    /** SHOW NODES on the admin console: the replicas of database app, by port. */
    const readSet = async () => {
      const a = client('pgscale', 'postgres', secrets.superuser);
      await a.connect();
      try {
        const r = await a.query<{ database: string; role: string; addr: string }>('SHOW NODES');
        return {
          rows: r.rows,
          replicas: r.rows
            .filter((x) => x.database === 'app' && x.role !== 'primary')
            .map((x) => Number(x.addr.split(':').pop()))
            .sort((a, b) => a - b),
        };
      } finally {
        await a.end();
      }
    };
    /** The first login of app/app, started now; it waits for its first server connection. */
    const startLogin = async () => {
      const c = client('app', 'app', secrets.app);
      const connected = c.connect();
      connected.catch(() => undefined);
      await until(
        "the app login waiting for its pool's first server connection",
        () => Promise.resolve([...proxy.pools.values()].some((p) => p.database === 'app' && p.waiting > 0)),
        30_000,
      );
      return { c, connected };
    };
    return {
      proxy,
      readSet,
      startLogin,
      async close() {
        unsubscribe();
        await proxy.stop();
      },
    };
  }

  const topology = (primary: Endpoint | null, replicas: Endpoint[]): Topology => ({
    epoch: 1,
    groups: [{ primary, replicas }],
  });

  test('a replica published while the first login waits (PAUSE) is in the read set', async () => {
    const view = new TopologyView(topology(n[0]!, [n[1]!]));
    const fx = await followingProxy(view);
    try {
      fx.proxy.pauseAll();
      const { c, connected } = await fx.startLogin();
      // What add-replica makes the controller publish, while this login has not finished.
      view.publish(topology(n[0]!, [n[1]!, n[2]!]));
      fx.proxy.resumeAll();
      await connected;
      await c.query('SELECT 1');
      await c.end();
      const s = await fx.readSet();
      assert.deepEqual(s.replicas, [n[1]!.port, n[2]!.port], `SHOW NODES: ${JSON.stringify(s.rows)}`);
    } finally {
      await fx.close();
    }
  });

  test('a replica published with the new primary, while the first login waits out a failover hold, is in the read set', async () => {
    const view = new TopologyView(topology(n[0]!, [n[1]!]));
    const fx = await followingProxy(view);
    try {
      // A failover under way: no primary; logins go on against the last one and are held.
      view.publish({ epoch: 2, groups: [{ primary: null, replicas: [n[1]!] }] });
      const { c, connected } = await fx.startLogin();
      view.publish({ epoch: 3, groups: [{ primary: n[0]!, replicas: [n[1]!, n[2]!] }] });
      await connected;
      await c.query('SELECT 1');
      await c.end();
      const s = await fx.readSet();
      assert.deepEqual(s.replicas, [n[1]!.port, n[2]!.port], `SHOW NODES: ${JSON.stringify(s.rows)}`);
    } finally {
      await fx.close();
    }
  });
});

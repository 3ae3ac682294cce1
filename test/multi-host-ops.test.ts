/**
 * Changing a cluster of several hosts while it runs (issue #18), with cluster.tls on: two
 * database hosts with an agent and a node each, a third host whose agent runs with `--spare`
 * (no node yet), one stateless proxy, a 3-member etcd (multi-host-support.ts). From the root
 * namespace (a machine that only reaches etcd) `pgscale add-replica --host` puts a standby on the
 * third host: its agent clones it over the network, it streams over TLS, the proxy reads from it,
 * a switchover to it works; `add-group --hosts` makes a group across two hosts, `remove-replica`
 * takes its standby out again (a node of the file and a primary refused). A host without an
 * agent is refused before anything is recorded. Every connection between hosts is checked to be
 * TLS (pg_stat_ssl) — the TLS variant of the multi-host test. Skipped, saying why, without root,
 * `ip netns`, iptables or etcd.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { etcdSkipReason } from './etcd-harness.js';
import { MultiHostCluster, PORT } from './multi-host-support.js';
import { netnsSkipReason } from './netns-hosts.js';
import type { Host } from './netns-hosts.js';

const skip = netnsSkipReason() || etcdSkipReason();

describe(
  'several hosts: add-replica --host and add-group --hosts through the agents, with TLS',
  { skip, timeout: 900_000 },
  () => {
    const m = new MultiHostCluster({ db: 2, spare: 1, proxies: 1, tls: true });
    let spare: Host;
    let proxy: Host;
    before(async () => {
      await m.start();
      spare = m.spareHosts[0]!;
      proxy = m.proxyHosts[0]!;
    });
    after(() => m.stop());

    /** The superuser on host h, port `port` (TLS, verified against the cluster CA). */
    const connectAt = async (h: Host, port: number): Promise<pg.Client> => {
      const c = new pg.Client({
        host: h.addr,
        port,
        user: 'postgres',
        password: m.password,
        database: 'postgres',
        connectionTimeoutMillis: 2000,
        ssl: { ca: readFileSync(join(m.dataDir(m.dbHosts[0]!), 'ca', 'ca.crt')) },
      });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    };
    const rows = async <T extends pg.QueryResultRow>(
      h: Host,
      port: number,
      sql: string,
      params: unknown[] = [],
    ) => {
      const c = await connectAt(h, port);
      try {
        return (await c.query<T>(sql, params)).rows;
      } finally {
        await c.end();
      }
    };
    /** Each walsender on host h's node: its standby's name, state, and whether it uses TLS. */
    const walsenders = (h: Host, port = PORT) =>
      rows<{ name: string; state: string; ssl: boolean }>(
        h,
        port,
        'SELECT r.application_name AS name, r.state, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) ORDER BY 1',
      );
    const recorded = async () => (await m.storeStatus()).nodes.map((n) => n.name).sort();

    test('a host without an agent is refused, and nothing is recorded', async () => {
      const before = await recorded();
      assert.deepEqual(before, m.dbHosts.map((h) => m.nodeName(h)).sort());
      const nowhere = `${m.net.net}.250`;
      const r = await m.cli(['add-replica', '--host', nowhere]);
      assert.notEqual(r.code, 0);
      assert.match(r.out, new RegExp(`no agent runs on host ${nowhere.replace(/\./g, '\\.')} \\(agents: `));
      assert.match(r.out, /--spare/);
      const g = await m.cli(['add-group', '--hosts', `${m.dbHosts[0]!.addr},${nowhere}`]);
      assert.notEqual(g.code, 0);
      assert.match(g.out, /no agent runs on host /);
      const bad = await m.cli(['add-replica', '--host', spare.addr, '--group', '3']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.out, /--group/);
      const taken = await m.cli(['add-replica', '--host', spare.addr, '--name', m.nodeName(m.dbHosts[0]!)]);
      assert.notEqual(taken.code, 0);
      assert.match(taken.out, new RegExp(`"${m.nodeName(m.dbHosts[0]!)}" is already the name of`));
      assert.deepEqual(await recorded(), before, 'no node was recorded');
    });

    test("add-replica --host: the spare host's agent clones a standby, it streams over TLS and the proxy reads from it", async () => {
      const p = await m.primary();
      const name = m.nodeName(spare);
      const r = await m.cli(['add-replica', '--host', spare.addr, '--name', name]);
      assert.equal(r.code, 0, r.out);
      assert.match(
        r.out,
        new RegExp(`added ${name} to group 0 on host ${spare.addr.replace(/\./g, '\\.')}, port ${PORT}`),
      );
      assert.match(r.out, /in the read set of the proxies/);
      m.dbHosts.push(spare);
      // Streaming from the primary, its slot there, every walsender over TLS.
      const ws = await walsenders(p);
      assert.ok(
        ws.some((w) => w.name === name && w.state === 'streaming'),
        JSON.stringify(ws),
      );
      assert.ok(
        ws.every((w) => w.ssl),
        `every replication connection uses TLS: ${JSON.stringify(ws)}`,
      );
      const slots = await rows<{ slot_name: string }>(p, PORT, 'SELECT slot_name FROM pg_replication_slots');
      assert.ok(
        slots.some((s) => s.slot_name.includes(name)),
        JSON.stringify(slots),
      );
      const [conninfo] = await rows<{ primary_conninfo: string }>(spare, PORT, 'SHOW primary_conninfo');
      assert.match(conninfo!.primary_conninfo, /sslmode=verify-full/);
      // Reads through the proxy reach it (a replica's read set has both standbys).
      const c = await m.viaProxy(proxy);
      const seen = new Set<string>();
      try {
        await c.query('SET pgscale.target = replica');
        for (let i = 0; i < 200 && !seen.has(spare.addr); i++)
          seen.add((await c.query<{ a: string }>('SELECT host(inet_server_addr()) AS a')).rows[0]!.a);
      } finally {
        await c.end();
      }
      assert.ok(seen.has(spare.addr), `reads served by ${[...seen].join(', ')}`);
      // The proxy's connections to the nodes use TLS too (verify-full against the cluster CA).
      const fromProxy = await rows<{ ssl: boolean }>(
        spare,
        PORT,
        'SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.client_addr = $1::inet',
        [proxy.addr],
      );
      assert.ok(fromProxy.length > 0 && fromProxy.every((x) => x.ssl), JSON.stringify(fromProxy));
      const st = await m.storeStatus();
      assert.equal(st.nodes.find((n) => n.name === name)?.role, 'replica');
    });

    test('a switchover to the added node through the CLI', async () => {
      const old = await m.primary();
      await m.allStreaming(old);
      const to = m.nodeName(spare);
      const r = await m.cli(['switchover', '--to', to]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, new RegExp(`promoted\\s+${to}`));
      assert.equal(await m.primary(), spare);
      await m.waitFor('the former primary back as a standby', async () =>
        (await m.roles()).get(old) === 'standby' ? true : null,
      );
      await m.allStreaming(spare);
      assert.ok((await walsenders(spare)).every((w) => w.ssl));
      // Writes through the proxy reach the new primary.
      const c = await m.viaProxy(proxy);
      try {
        const r2 = await c.query<{ a: string }>(
          'INSERT INTO acked (id) VALUES (100000) RETURNING host(inet_server_addr()) AS a',
        );
        assert.equal(r2.rows[0]!.a, spare.addr);
      } finally {
        await c.end();
      }
    });

    test('add-group --hosts: a new group with its primary on one host and a standby on another, streaming over TLS', async () => {
      const [h1, h2] = m.dbHosts;
      const r = await m.cli(['add-group', '--hosts', `${h1!.addr},${h2!.addr}`]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /added group 1: s1n0 on [\d.]+:\d+, s1n1 on [\d.]+:\d+/);
      const port = Number(/s1n0 on [\d.]+:(\d+)/.exec(r.out)![1]);
      assert.equal(port, PORT + 1, 'the next port free on those hosts');
      const ws = await walsenders(h1!, port);
      assert.deepEqual(ws, [{ name: 's1n1', state: 'streaming', ssl: true }]);
      const st = await m.storeStatus();
      assert.equal(st.groups[1]?.leader, 's1n0');
    });

    test('remove-replica of a node added through etcd: out of the topology, stopped, its slot dropped; a node of the file and a primary are refused', async () => {
      const [h1, h2] = m.dbHosts;
      const port = PORT + 1;
      const file = await m.cli(['remove-replica', m.nodeName(h1!)]);
      assert.notEqual(file.code, 0);
      assert.match(file.out, /is declared in .*pgscale\.yaml: take it out of that file on every host/);
      const primary = await m.cli(['remove-replica', 's1n0']);
      assert.notEqual(primary.code, 0);
      assert.match(primary.out, /s1n0 is the primary of group 1; switch over/);
      const r = await m.cli(['remove-replica', 's1n1']);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /removed s1n1 from group 1/);
      assert.deepEqual(await walsenders(h1!, port), []);
      const slots = await rows<{ slot_name: string }>(
        h1!,
        port,
        'SELECT slot_name FROM pg_replication_slots',
      );
      assert.deepEqual(slots, [], 'its slot dropped on the primary');
      await assert.rejects(connectAt(h2!, port), 'it no longer runs');
      assert.equal(
        (await m.storeStatus()).nodes.some((n) => n.name === 's1n1'),
        false,
      );
    });
  },
);

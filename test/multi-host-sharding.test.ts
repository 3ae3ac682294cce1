/**
 * Sharding served by the stateless proxies over several hosts (issue #18; src/cli/sharding-proxies.ts):
 * three network-namespace database hosts with two groups (multi-host-support.ts, `groups: 2`) and
 * two `pgscale proxy --cluster` on hosts of their own. A table distributed through proxy A (the one
 * holding the cluster-wide duties) is
 * routed by key through proxy B (the rows checked on each group's primary directly), read across
 * groups through B (the global tables the duty-holding proxy built and published), written on both
 * groups in one transaction (two-phase commit). Shard moves through B are refused, naming A. The proxy
 * holding the cluster-wide duties dies: the other takes them over — it settles a transaction left
 * prepared and rebuilds the global tables after DDL. Skipped, saying why, without root,
 * `ip netns`, iptables or etcd.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { etcdSkipReason } from './etcd-harness.js';
import { MultiHostCluster } from './multi-host-support.js';
import { netnsSkipReason } from './netns-hosts.js';
import type { Host } from './netns-hosts.js';

const skip = netnsSkipReason() || etcdSkipReason();

describe(
  'sharding through the stateless proxies of a cluster over several hosts',
  { skip, timeout: 600_000 },
  () => {
    const m = new MultiHostCluster({ groups: 2 });
    let a: Host;
    let b: Host;
    const proxyLog = (h: Host) => readFileSync(join(m.net.dir, `proxy-${h.index}.log`), 'utf8');
    const DUTY = /runs the cluster-wide sharding duties/;

    /** The superuser on group g's first (primary) node. */
    const onGroup = (g: number): Promise<pg.Client> => {
      const [h, port] = m.groupNodes(g)[0]!;
      return m.connect(h, 2000, port);
    };
    /** The ids of `items` each group's primary holds. */
    const idsByGroup = async (): Promise<number[][]> =>
      Promise.all(
        [0, 1].map(async (g) => {
          const c = await onGroup(g);
          try {
            return (await c.query<{ id: number }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id);
          } finally {
            await c.end();
          }
        }),
      );
    const prepared = async (g: number): Promise<string[]> => {
      const c = await onGroup(g);
      try {
        return (await c.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts')).rows.map((r) => r.gid);
      } finally {
        await c.end();
      }
    };

    before(async () => {
      await m.start();
      // A: the proxy that took the duties (the first to look), B: the other.
      a = await m.waitFor('a proxy holding the duties', () =>
        Promise.resolve(m.proxyHosts.find((h) => DUTY.test(proxyLog(h))) ?? null),
      );
      b = m.proxyHosts.find((h) => h !== a)!;
    });
    after(() => m.stop());

    test('a table distributed through proxy A: proxy B routes by key to the right group, reads across groups, writes on both in one transaction', async () => {
      assert.doesNotMatch(proxyLog(b), DUTY);
      const ca = await m.viaProxy(a);
      try {
        await ca.query('CREATE TABLE items (id int PRIMARY KEY, v text)');
        await ca.query("SELECT create_distributed_table('items', 'id')");
      } finally {
        await ca.end();
      }
      const cb = await m.viaProxy(b);
      try {
        // B sees A's catalog change (watched in etcd): its inserts go to the groups by key.
        for (let id = 1; id <= 40; id++) await cb.query('INSERT INTO items VALUES ($1, $2)', [id, `v${id}`]);
        const [g0, g1] = await idsByGroup();
        assert.ok(g0!.length > 0 && g1!.length > 0, `rows on both groups: ${g0!.length} and ${g1!.length}`);
        assert.deepEqual(
          [...g0!, ...g1!].sort((x, y) => x - y),
          [...Array(40).keys()].map((i) => i + 1),
        );
        // Reads by key through either proxy find each row (routed to the group that holds it).
        const ca2 = await m.viaProxy(a);
        try {
          for (const id of [g0![0]!, g1![0]!])
            for (const c of [cb, ca2]) {
              const r = await c.query<{ v: string }>('SELECT v FROM items WHERE id = $1', [id]);
              assert.deepEqual(r.rows, [{ v: `v${id}` }]);
            }
        } finally {
          await ca2.end();
        }
        // Across groups: an aggregate, and a join off the distribution column (the global tables).
        const all = await cb.query<{ n: number; s: number }>(
          'SELECT count(*)::int AS n, sum(id)::int AS s FROM items',
        );
        assert.deepEqual(all.rows, [{ n: 40, s: 820 }]);
        const join2 = await cb.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM items x JOIN items y ON y.id = x.id + 1',
        );
        assert.deepEqual(join2.rows, [{ n: 39 }]);
        // DDL through B, which does not build the global tables: it asks the holder to, and waits.
        await cb.query("ALTER TABLE items ADD COLUMN note text DEFAULT 'n'");
        const join3 = await cb.query<{ n: number }>(
          "SELECT count(y.note)::int AS n FROM items x JOIN items y ON y.id = x.id + 1 WHERE y.note = 'n'",
        );
        assert.deepEqual(join3.rows, [{ n: 39 }]);
        // One transaction on both groups: committed with two-phase commit, all or nothing.
        await cb.query('BEGIN');
        for (let id = 101; id <= 120; id++) await cb.query('INSERT INTO items VALUES ($1, $2)', [id, 'tx']);
        await cb.query('COMMIT');
        await cb.query('BEGIN');
        for (let id = 201; id <= 220; id++)
          await cb.query('INSERT INTO items VALUES ($1, $2)', [id, 'rolled back']);
        await cb.query('ROLLBACK');
        const [h0, h1] = await idsByGroup();
        const tx = (ids: number[]) => ids.filter((id) => id > 100);
        assert.ok(tx(h0!).length > 0 && tx(h1!).length > 0, 'the transaction wrote on both groups');
        assert.deepEqual(
          [...tx(h0!), ...tx(h1!)].sort((x, y) => x - y),
          [...Array(20).keys()].map((i) => i + 101),
        );
        assert.deepEqual([...(await prepared(0)), ...(await prepared(1))], [], 'nothing left prepared');
        // Shard moves run in the proxy holding the duties (A): B says so (multi-host-moves.test.ts moves).
        await assert.rejects(
          cb.query('SELECT citus_rebalance_start()'),
          (e: Error & { code?: string }) =>
            e.code === '0A000' && /holding the cluster-wide sharding duties/.test(e.message),
        );
      } finally {
        await cb.end();
      }
    });

    test('the proxy holding the duties dies: the other takes them over — a transaction left prepared is settled, the global tables follow DDL', async () => {
      // A transaction prepared on group 1 as a proxy leaves it when it dies between PREPARE and the
      // decision: no decision record, so recovery rolls it back.
      const c1 = await onGroup(1);
      try {
        const [, g1] = await idsByGroup();
        await c1.query('BEGIN');
        await c1.query("UPDATE items SET v = 'in doubt' WHERE id = $1", [g1![0]!]);
        await c1.query("PREPARE TRANSACTION 'pgscale:tx:deadbeef01:1'");
      } finally {
        await c1.end();
      }
      await a.kill();
      await m.waitFor('proxy B taking the duties', () =>
        Promise.resolve(DUTY.test(proxyLog(b)) ? true : null),
      );
      await m.waitFor('the prepared transaction settled', async () =>
        (await prepared(1)).length === 0 ? true : null,
      );
      const cb = await m.viaProxy(b);
      try {
        const r = await cb.query<{ n: number }>("SELECT count(*)::int AS n FROM items WHERE v = 'in doubt'");
        assert.deepEqual(r.rows, [{ n: 0 }], 'rolled back (no decision was recorded)');
        // DDL through B, now the holder: the global tables are rebuilt with the new column.
        await cb.query('ALTER TABLE items ADD COLUMN w int DEFAULT 7');
        const j = await cb.query<{ n: number; w: number }>(
          'SELECT count(*)::int AS n, sum(y.w)::int AS w FROM items x JOIN items y ON y.id = x.id + 1',
        );
        assert.deepEqual(j.rows, [{ n: 58, w: 58 * 7 }]);
      } finally {
        await cb.end();
      }
    });
  },
);

/**
 * A shard move through the stateless proxies over several hosts (issue #18;
 * src/cli/sharding-holds.ts): three network-namespace database hosts with two groups whose
 * primaries are on different hosts (multi-host-support.ts, `groups: 2`) and two
 * `pgscale proxy --cluster` on hosts of their own. While one writer per proxy inserts rows and
 * records those acknowledged, a shard moves from group 0 to group 1 through the proxy holding the
 * cluster-wide duties (A) — its cutover held at both proxies. Afterwards: no acknowledged write
 * lost or duplicated (a statement through B reaching the old shard after the cutover would have
 * left its row there), every row of the shard on group 1 and none on group 0, the source's shard
 * table gone, and reads through both proxies see every row. DDL through B while the job runs is
 * refused. Reads through B right after a move see the moved rows with the target's replica
 * paused (the read floor B learns from A's release). The proxy holding the duties dies mid-cutover: the other held the shard until its lease
 * ended, takes the duties and finishes the move. With cluster.tls on (the subscriptions and the
 * foreign servers read the CA and the passfile from the target's own host). Skipped, saying why,
 * without root, `ip netns`, iptables or etcd.
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

interface Load {
  readonly acked: number[];
  readonly errors: string[];
  stop(): Promise<void>;
}

describe(
  'a shard move through the stateless proxies of a cluster over several hosts',
  { skip, timeout: 900_000 },
  () => {
    // Every cutover stops 1.5 s with the source's shard locked (sharding/shard-move.ts's fault
    // point): the other proxy's statements for it wait meanwhile, and the last test kills A there.
    const m = new MultiHostCluster({
      groups: 2,
      tls: true,
      proxyEnv: { PGSCALE_FAULT_MOVE: 'locked:1500' },
    });
    let a: Host;
    let b: Host;
    const proxyLog = (h: Host) => readFileSync(join(m.net.dir, `proxy-${h.index}.log`), 'utf8');
    const DUTY = /runs the cluster-wide sharding duties/;
    let nextId = 1;

    const onGroup = (g: number): Promise<pg.Client> => {
      const [h, port] = m.groupNodes(g)[0]!;
      return m.connect(h, 2000, port);
    };
    const rowsOn = async (g: number, sql: string): Promise<number[]> => {
      const c = await onGroup(g);
      try {
        return (await c.query<{ id: number }>(sql)).rows.map((r) => r.id);
      } finally {
        await c.end();
      }
    };

    /** Inserts ids one by one through proxy h, recording those acknowledged. */
    const writer = (h: Host): Load => {
      const acked: number[] = [];
      const errors: string[] = [];
      let stop = false;
      const done = (async () => {
        let c: pg.Client | null = null;
        while (!stop) {
          try {
            c ??= await m.viaProxy(h);
            const id = nextId++;
            await c.query('INSERT INTO items (id, via) VALUES ($1, $2)', [id, h.addr]);
            acked.push(id);
          } catch (e) {
            errors.push((e as Error).message);
            await c?.end().catch(() => undefined);
            c = null;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        await c?.end().catch(() => undefined);
      })();
      return {
        acked,
        errors,
        stop: async () => {
          stop = true;
          await done;
        },
      };
    };

    /**
     * After a job under `loads`: no client error; every acknowledged id exactly once over both
     * groups' primaries; each group holds exactly the shard tables the catalog places there (a
     * statement that reached a shard's old place after its cutover would have left a row there,
     * lost or doubled); reads through each proxy, across groups and by key, see every row. The
     * clients are closed afterwards, whatever the outcome.
     */
    const checkAfter = async (loads: Load[], clients: pg.Client[], failing: Load[] = []): Promise<void> => {
      try {
        await check(loads, clients, failing);
      } finally {
        for (const c of clients) await c.end();
      }
    };
    const check = async (loads: Load[], clients: pg.Client[], failing: Load[]): Promise<void> => {
      assert.deepEqual(
        loads.filter((l) => !failing.includes(l)).flatMap((l) => l.errors),
        [],
        'no client saw an error',
      );
      const acked = loads.flatMap((l) => l.acked).sort((x, y) => x - y);
      assert.ok(acked.length > 0);
      const all = [
        ...(await rowsOn(0, 'SELECT id FROM items')),
        ...(await rowsOn(1, 'SELECT id FROM items')),
      ];
      assert.equal(new Set(all).size, all.length, 'no row on both groups');
      const have = new Set(all);
      assert.deepEqual(
        acked.filter((id) => !have.has(id)),
        [],
        'no acknowledged write lost',
      );
      const placed = await clients[0]!.query<{ id: string; port: number }>(
        "SELECT shardid::text AS id, nodeport AS port FROM citus_shards WHERE table_name = 'items'::regclass ORDER BY shardid",
      );
      for (const g of [0, 1]) {
        const port = m.groupNodes(g)[0]![1];
        const c = await onGroup(g);
        try {
          const r = await c.query<{ relname: string }>(
            "SELECT c.relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = 'public.items'::regclass ORDER BY 1",
          );
          assert.deepEqual(
            r.rows.map((x) => x.relname),
            placed.rows.filter((x) => x.port === port).map((x) => `items_${x.id}`),
            `group ${g} holds the shards the catalog places there`,
          );
        } finally {
          await c.end();
        }
      }
      for (const c of clients) {
        const r = await c.query<{ id: number }>('SELECT id FROM items ORDER BY id');
        const seen = new Set(r.rows.map((x) => x.id));
        assert.deepEqual(
          acked.filter((id) => !seen.has(id)),
          [],
          'a read across groups through each proxy sees every row',
        );
        for (const id of acked.slice(-20)) {
          const one = await c.query<{ id: number }>('SELECT id FROM items WHERE id = $1', [id]);
          assert.deepEqual(one.rows, [{ id }], `row ${id} read by key`);
        }
      }
    };

    before(async () => {
      await m.start();
      a = await m.waitFor('a proxy holding the duties', () =>
        Promise.resolve(m.proxyHosts.find((h) => DUTY.test(proxyLog(h))) ?? null),
      );
      b = m.proxyHosts.find((h) => h !== a)!;
      const ca = await m.viaProxy(a);
      try {
        await ca.query('CREATE TABLE items (id int PRIMARY KEY, via text)');
        await ca.query("SELECT create_distributed_table('items', 'id', shard_count := 4)");
      } finally {
        await ca.end();
      }
    });
    after(() => m.stop());

    test('a shard moves from group 0 to group 1 while both proxies write: nothing lost, nothing on the old shard', async () => {
      const [h0, port0] = m.groupNodes(0)[0]!;
      const [h1, port1] = m.groupNodes(1)[0]!;
      const ca = await m.viaProxy(a);
      const cb = await m.viaProxy(b);
      const loads = [writer(a), writer(b)];
      let shard = '';
      try {
        const shards = await ca.query<{ id: string; port: number }>(
          "SELECT shardid::text AS id, nodeport AS port FROM citus_shards WHERE table_name = 'items'::regclass ORDER BY shardid",
        );
        shard = shards.rows.find((r) => r.port === port0)?.id ?? '';
        assert.ok(shard !== '', `a shard of items on group 0: ${JSON.stringify(shards.rows)}`);
        await m.waitFor('writes through both proxies', () =>
          Promise.resolve(loads.every((l) => l.acked.length >= 30) ? true : null),
        );
        // The move runs in A (B refuses it, naming A); DDL through B waits for its end, refused.
        await assert.rejects(
          cb.query(
            `SELECT citus_move_shard_placement(${shard}, '${h0.addr}', ${port0}, '${h1.addr}', ${port1})`,
          ),
          /holding the cluster-wide sharding duties/,
        );
        const moved = ca.query(
          `SELECT citus_move_shard_placement(${shard}, '${h0.addr}', ${port0}, '${h1.addr}', ${port1})`,
        );
        await m.waitFor('B to know of the job', async () => {
          try {
            await cb.query('ALTER TABLE items ADD COLUMN x int');
            await cb.query('ALTER TABLE items DROP COLUMN x');
            return null;
          } catch (e) {
            return /shards are being moved/.test((e as Error).message) ? true : null;
          }
        });
        await moved;
        const at = await m.waitFor('writes after the move', () =>
          Promise.resolve(loads.map((l) => l.acked.length)),
        );
        await m.waitFor('more writes through both proxies', () =>
          Promise.resolve(loads.every((l, i) => l.acked.length >= at[i]! + 20) ? true : null),
        );
        const after = await ca.query<{ port: number }>(
          `SELECT nodeport AS port FROM citus_shards WHERE shardid = ${shard}`,
        );
        assert.deepEqual(after.rows, [{ port: port1 }], 'the catalog places the shard on group 1');
        // B held the shard for A's cutover (A locks the source only once B acknowledged that).
        assert.match(proxyLog(b), /holds shards .* for proxy \d+'s cutover/);
        await m.waitFor('B to release the hold', () =>
          Promise.resolve(/hold \S+ released \(cutover over\)/.test(proxyLog(b)) ? true : null),
        );
      } finally {
        for (const l of loads) await l.stop();
      }
      await checkAfter(loads, [ca, cb]);
    });

    test('group 1 drained, then a rebalance, through A while both proxies write: nothing lost, every row where the catalog says', async () => {
      const [h1, port1] = m.groupNodes(1)[0]!;
      const ca = await m.viaProxy(a);
      const cb = await m.viaProxy(b);
      const loads = [writer(a), writer(b)];
      try {
        await m.waitFor('writes through both proxies', () =>
          Promise.resolve(loads.every((l) => l.acked.length >= 30) ? true : null),
        );
        await ca.query(`SELECT citus_drain_node('${h1.addr}', ${port1})`);
        const drained = await ca.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM citus_shards WHERE table_name = 'items'::regclass AND nodeport = ${port1}`,
        );
        assert.deepEqual(drained.rows, [{ n: 0 }], 'no shard left on group 1');
        await ca.query('SELECT citus_rebalance_start()');
        await ca.query('SELECT citus_rebalance_wait()');
        const spread = await ca.query<{ port: number; n: number }>(
          "SELECT nodeport AS port, count(*)::int AS n FROM citus_shards WHERE table_name = 'items'::regclass GROUP BY 1 ORDER BY 1",
        );
        assert.deepEqual(
          spread.rows.map((r) => r.n),
          [2, 2],
          'two shards on each group again',
        );
        const at = loads.map((l) => l.acked.length);
        await m.waitFor('more writes through both proxies', () =>
          Promise.resolve(loads.every((l, i) => l.acked.length >= at[i]! + 20) ? true : null),
        );
      } finally {
        for (const l of loads) await l.stop();
      }
      await checkAfter(loads, [ca, cb]);
    });

    test("reads through B right after a move never go to a target replica that has not replayed the shard's arrival", async () => {
      const [h0, port0] = m.groupNodes(0)[0]!;
      const [h1, port1] = m.groupNodes(1)[0]!;
      const [hs, portS] = m.groupNodes(1)[1]!;
      const ca = await m.viaProxy(a);
      // Group 1's standby stops replaying: without the floor B learns from A's release, it would
      // answer the moved shard's reads with no rows.
      const sb = await m.connect(hs, 2000, portS);
      try {
        await sb.query('SELECT pg_wal_replay_pause()');
        const shards = await ca.query<{ id: string; port: number }>(
          "SELECT shardid::text AS id, nodeport AS port FROM citus_shards WHERE table_name = 'items'::regclass ORDER BY shardid",
        );
        const shard = shards.rows.find((r) => r.port === port0)!.id;
        const ids = await rowsOn(0, `SELECT id FROM items_${shard} ORDER BY id LIMIT 20`);
        assert.ok(ids.length > 0, `shard ${shard} has rows`);
        await ca.query(
          `SELECT citus_move_shard_placement(${shard}, '${h0.addr}', ${port0}, '${h1.addr}', ${port1})`,
        );
        // A new client of B (no writes of its own): plain reads by key, at once.
        const reader = await m.viaProxy(b);
        try {
          for (const id of ids) {
            const got = await reader.query('SELECT id FROM items WHERE id = $1', [id]);
            assert.equal(got.rows.length, 1, `row ${id} not found through B right after its shard moved`);
          }
        } finally {
          await reader.end();
        }
      } finally {
        await sb.query('SELECT pg_wal_replay_resume()').catch(() => undefined);
        await sb.end();
        await ca.end();
      }
    });

    test("A dies in a cutover with the shard locked: B held it until A's lease ended, takes the duties, finishes the move; nothing lost", async () => {
      const [h0, port0] = m.groupNodes(0)[0]!;
      const [h1, port1] = m.groupNodes(1)[0]!;
      const cb = await m.viaProxy(b);
      const loads = [writer(a), writer(b)];
      let shard = '';
      try {
        const shards = await cb.query<{ id: string; port: number }>(
          "SELECT shardid::text AS id, nodeport AS port FROM citus_shards WHERE table_name = 'items'::regclass ORDER BY shardid",
        );
        shard = shards.rows.find((r) => r.port === port0)?.id ?? '';
        assert.ok(shard !== '');
        await m.waitFor('writes through both proxies', () =>
          Promise.resolve(loads.every((l) => l.acked.length >= 30) ? true : null),
        );
        const faults = (proxyLog(a).match(/pgscale fault point: move locked/g) ?? []).length;
        const ca = await m.viaProxy(a);
        void ca
          .query(
            `SELECT citus_move_shard_placement(${shard}, '${h0.addr}', ${port0}, '${h1.addr}', ${port1})`,
          )
          .catch(() => undefined);
        await m.waitFor('A at its cutover, the shard locked', () =>
          Promise.resolve(
            (proxyLog(a).match(/pgscale fault point: move locked/g) ?? []).length > faults ? true : null,
          ),
        );
        await a.kill();
        await m.waitFor('B taking the duties', () =>
          Promise.resolve(/proxy \d+: runs the cluster-wide sharding duties/.test(proxyLog(b)) ? true : null),
        );
        // B resumes the interrupted job (the move is done again, by B, its hold its own).
        await m.waitFor(
          'the shard on group 1',
          async () => {
            const r = await cb.query<{ port: number }>(
              `SELECT nodeport AS port FROM citus_shards WHERE shardid = ${shard}`,
            );
            return r.rows[0]?.port === port1 ? true : null;
          },
          180_000,
        );
        const at = loads[1]!.acked.length;
        await m.waitFor('more writes through B', () =>
          Promise.resolve(loads[1]!.acked.length >= at + 20 ? true : null),
        );
      } finally {
        for (const l of loads) await l.stop();
      }
      // A's writer lost its proxy (its errors are expected); B's saw none.
      await checkAfter(loads, [cb], [loads[0]!]);
    });
  },
);

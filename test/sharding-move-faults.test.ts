/**
 * Shard moves interrupted by crashes (issue #17), with real processes: two groups, each a
 * primary and a standby, HA on. The controller runs with a fault point (PGSCALE_FAULT_MOVE,
 * src/sharding/shard-move.ts) that stops a move there, and then:
 *
 * - kill -9 of the controller (and so of the proxy) with both groups' parts prepared, before the
 *   catalog's switch: at restart, recovery rolls both back, and the interrupted job resumes;
 * - kill -9 of the controller after the switch, before the commits: recovery commits both; the
 *   shard is on its new group;
 * - kill -9 of the source's primary during the copy: the move fails and is cleaned up on the
 *   promoted standby; the same move then succeeds;
 * - kill -9 of the source's primary with the shard locked at cutover, and of the target's
 *   primary during the copy: the same.
 *
 * Each time: every row once, on the group the catalog says; nothing of the move left behind
 * (subscriptions, publications, slots, prepared transactions, stray tables).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { binarySets, until } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { checkAfterMoves, makeTables } from './sharding-move-support.js';
import type { WriteLoad } from './sharding-move-support.js';
import { controllerCall } from '../src/cli/controller-api.js';
import { runningPid } from '../src/cluster/instance.js';
import {
  faultHits,
  faultReached,
  killController,
  primaries,
  restartController,
} from './controller-faults.js';

const bins = binarySets()[0]!;
const ROWS = 3000;

describe('shard moves interrupted by crashes', () => {
  let sc: ShardedCluster;
  const none: WriteLoad = { acked: new Map(), errors: [], done: () => 0, stop: () => Promise.resolve() };

  before(async () => {
    sc = await upSharded(bins, {
      groups: 2,
      replicas: 1,
      extra: (y) => y.replace('unreachable_timeout: 3', 'unreachable_timeout: 2'),
    });
    await makeTables(sc, 4, ROWS);
  });
  after(async () => {
    await sc?.down();
  });

  /** Shard id → the port of the primary holding it, as citus_shards says. */
  async function placed(): Promise<Map<number, number>> {
    const app = await sc.connectApp();
    try {
      const r = await app.query<{ id: string; port: number }>(
        "SELECT shardid::text AS id, nodeport AS port FROM citus_shards WHERE table_name = 'users'::regclass",
      );
      return new Map(r.rows.map((x) => [Number(x.id), x.port]));
    } finally {
      await app.end();
    }
  }

  /** The group whose current primary listens on `port`. */
  const groupOfPort = (port: number) => sc.tc.cluster.nodes().find((n) => n.port === port)!.group;

  /** Starts moving the first shard of users to the other group; its id and both groups. */
  async function startMove(): Promise<{ id: number; from: number; to: number }> {
    const [id, port] = [...(await placed()).entries()].sort((a, b) => a[0] - b[0])[0]!;
    const from = groupOfPort(port);
    const to = 1 - from;
    const r = await controllerCall(sc.tc.cluster, 'POST', '/sharding/move', { shard_id: id, to: String(to) });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return { id, from, to };
  }

  /** No job runs any more (the controller answers). */
  const jobEnded = () =>
    until(
      'the move job to end',
      async () => {
        const r = await controllerCall(sc.tc.cluster, 'GET', '/sharding/moves').catch(() => null);
        return r !== null && r.body.current === null;
      },
      120_000,
    );

  /** No prepared transaction on the primaries, then the full check. */
  async function settledAndChecked(): Promise<void> {
    await until(
      'no prepared transaction left',
      async () => {
        const ps = await primaries(sc, [0, 1]);
        try {
          let n = 0;
          for (const c of ps)
            n += (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_xacts')).rows[0]!
              .n;
          return n === 0;
        } finally {
          for (const c of ps) await c.end().catch(() => undefined);
        }
      },
      90_000,
    );
    await checkAfterMoves(sc, none, 2, await primaryPorts());
    const app = await sc.connectApp();
    try {
      assert.equal((await app.query<{ n: number }>('SELECT count(*)::int AS n FROM users')).rows[0]!.n, ROWS);
    } finally {
      await app.end();
    }
  }

  async function primaryPorts(): Promise<number[]> {
    const ps = await primaries(sc, [0, 1]);
    try {
      return await Promise.all(
        ps.map(async (c) => Number((await c.query('SELECT inet_server_port() AS p')).rows[0].p)),
      );
    } finally {
      for (const c of ps) await c.end().catch(() => undefined);
    }
  }

  async function killPrimary(group: number): Promise<void> {
    const port = (await primaryPorts())[group]!;
    const node = sc.tc.cluster.nodes().find((n) => n.port === port)!;
    const pid = runningPid(sc.tc.cluster.paths(node.name).pgdata);
    assert.ok(pid, `${node.name} runs`);
    process.kill(pid, 'SIGKILL');
  }

  test('kill -9 of the controller with both parts prepared: rolled back, then the move resumes', async () => {
    await restartController(sc, { PGSCALE_FAULT_MOVE: 'prepared:120000' });
    const hits = faultHits(sc, 'move prepared');
    const m = await startMove();
    await faultReached(sc, 'move prepared', hits);
    await killController(sc);
    // Still prepared on both groups: the shard is on its source, locked there until recovery.
    await restartController(sc, null, 'gone');
    await until(
      'the interrupted job resumed',
      async () => {
        const r = await controllerCall(sc.tc.cluster, 'GET', '/sharding/moves').catch(() => null);
        const h = (r?.body.history ?? []) as { state: string; resumes?: string; error?: string }[];
        return (
          h.some((j) => j.resumes !== undefined && j.state === 'done') &&
          h.some((j) => /interrupted/.test(j.error ?? ''))
        );
      },
      120_000,
    );
    await jobEnded();
    await settledAndChecked();
    assert.equal(groupOfPort((await placed()).get(m.id)!), m.to);
  });

  test('kill -9 of the controller after the switch: committed, the shard moved', async () => {
    await restartController(sc, { PGSCALE_FAULT_MOVE: 'switched:120000' });
    const hits = faultHits(sc, 'move switched');
    const m = await startMove();
    await faultReached(sc, 'move switched', hits);
    await killController(sc);
    await restartController(sc, null, 'gone');
    await jobEnded();
    await settledAndChecked();
    assert.equal(groupOfPort((await placed()).get(m.id)!), m.to);
  });

  for (const [who, point] of [
    ['source', 'copy'],
    ['source', 'locked'],
    ['target', 'copy'],
  ] as const)
    test(`kill -9 of the ${who}'s primary (${point}): the move fails, is cleaned up, and succeeds again`, async () => {
      await restartController(sc, { PGSCALE_FAULT_MOVE: `${point}:8000` });
      const hits = faultHits(sc, `move ${point}`);
      const m = await startMove();
      await faultReached(sc, `move ${point}`, hits);
      await killPrimary(who === 'source' ? m.from : m.to);
      await jobEnded();
      const r = await controllerCall(sc.tc.cluster, 'GET', '/sharding/moves');
      const last = (r.body.history as { state: string }[])[0]!;
      assert.equal(last.state, 'failed', JSON.stringify(last));
      // The shard stayed; once the group has its new primary, the same move works.
      await primaries(sc, [0, 1]).then((ps) => Promise.all(ps.map((c) => c.end())));
      await restartController(sc, null);
      const again = await controllerCall(sc.tc.cluster, 'POST', '/sharding/move', {
        shard_id: m.id,
        to: String(m.to),
      });
      assert.equal(again.status, 202, JSON.stringify(again.body));
      await jobEnded();
      const r2 = await controllerCall(sc.tc.cluster, 'GET', '/sharding/moves');
      assert.equal(
        (r2.body.history as { state: string }[])[0]!.state,
        'done',
        JSON.stringify(r2.body.history),
      );
      await settledAndChecked();
      assert.equal(groupOfPort((await placed()).get(m.id)!), m.to);
    });
});

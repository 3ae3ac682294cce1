/**
 * Transactions on several groups under faults, with real processes: two groups, each a primary
 * and a synchronous standby, HA on. The controller is started with a fault point
 * (PGSCALE_FAULT_2PC, src/proxy/session/multi-group.ts) that stops two-phase commit after its
 * PREPAREs or after its decision record, and then:
 *
 * - kill -9 of the controller (so of the proxy) after PREPARE, before the decision: at restart
 *   recovery finds no record and rolls both groups back;
 * - kill -9 of the controller after the decision: recovery commits both groups;
 * - kill -9 of group 1's primary after the decision: the client is told COMMIT, group 1 fails
 *   over, and recovery commits the transaction on its new primary (the PREPARE reached the
 *   synchronous standby).
 *
 * Each time the transaction is all or nothing on the groups, and no prepared transaction is left
 * (so none holds its locks).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { binarySets, until } from './harness.js';
import { placement, upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { runningPid } from '../src/cluster/instance.js';
import {
  faultHits,
  faultReached,
  killController as killIt,
  primaries,
  restartController,
} from './controller-faults.js';

const bins = binarySets()[0]!;

describe('transactions on several groups: in-doubt recovery after crashes', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  const on: [number[], number[]] = [[], []];

  before(async () => {
    sc = await upSharded(bins, {
      groups: 2,
      replicas: 1,
      extra: (y) =>
        y
          .replace('unreachable_timeout: 3', 'unreachable_timeout: 2')
          .replace('synchronous: off', 'synchronous: on'),
    });
    app = await sc.connectApp();
    await app.query('CREATE TABLE kv (k bigint PRIMARY KEY, v text)');
    await app.query('INSERT INTO kv SELECT g, $1 FROM generate_series(1, 40) g', ['start']);
    await app.query("SELECT create_distributed_table('kv', 'k')");
    const d = [await sc.connectGroup(0), await sc.connectGroup(1)];
    for (const [k, p] of await placement(d, 'kv', 'k')) on[p.group as 0 | 1].push(Number(k));
    for (const c of d) await c.end();
    await app.end();
  });
  after(async () => {
    await sc?.down();
  });

  const restart = (fault: string | null, how: 'down' | 'gone' = 'down') =>
    restartController(sc, fault === null ? null : { PGSCALE_FAULT_2PC: fault }, how);
  const killController = () => killIt(sc);

  /** Waits until no group holds a prepared transaction; the values of `a` and `b` then. */
  async function settled(a: number, b: number): Promise<[string, string]> {
    return until(
      'no prepared transaction left, on the primaries',
      async () => {
        const ps = await primaries(sc, [0, 1]);
        try {
          let n = 0;
          for (const c of ps)
            n += (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_xacts')).rows[0]!
              .n;
          if (n > 0) return null;
          const va = (await ps[0]!.query('SELECT v FROM kv WHERE k = $1', [a])).rows[0].v as string;
          const vb = (await ps[1]!.query('SELECT v FROM kv WHERE k = $1', [b])).rows[0].v as string;
          return [va, vb] as [string, string];
        } finally {
          for (const c of ps) await c.end().catch(() => undefined);
        }
      },
      90_000,
    );
  }

  /** Starts a transaction writing `value` on both groups; its COMMIT's outcome (never rejects). */
  async function transaction(
    a: number,
    b: number,
    value: string,
  ): Promise<{ c: pg.Client; commit: Promise<string> }> {
    const c = await sc.connectApp();
    await c.query('BEGIN');
    await c.query('UPDATE kv SET v = $2 WHERE k = $1', [a, value]);
    await c.query('UPDATE kv SET v = $2 WHERE k = $1', [b, value]);
    const commit = c.query('COMMIT').then(
      (r) => r.command ?? 'ok',
      (e: { code?: string; message: string }) => `error ${e.code ?? ''} ${e.message}`,
    );
    return { c, commit };
  }

  const hits = (point: string) => faultHits(sc, point);
  const reached = (point: string, before: number) => faultReached(sc, point, before);

  test('kill -9 of the controller after PREPARE, before the decision: both groups roll back', async () => {
    await restart('after-prepare:120000');
    const [a, b] = [on[0][0]!, on[1][0]!];
    const before = hits('after-prepare');
    const { c, commit } = await transaction(a, b, 'lost');
    await reached('after-prepare', before);
    await killController();
    console.log(`# the client saw: ${await commit}`);
    await c.end().catch(() => undefined);
    await restart(null, 'gone');
    assert.deepEqual(await settled(a, b), ['start', 'start']);
  });

  test('kill -9 of the controller after the decision: both groups commit', async () => {
    await restart('after-decide:120000');
    const [a, b] = [on[0][1]!, on[1][1]!];
    const before = hits('after-decide');
    const { c, commit } = await transaction(a, b, 'decided');
    await reached('after-decide', before);
    await killController();
    console.log(`# the client saw: ${await commit}`);
    await c.end().catch(() => undefined);
    await restart(null, 'gone');
    assert.deepEqual(await settled(a, b), ['decided', 'decided']);
  });

  test('kill -9 of a group primary after the decision: COMMIT, and the new primary gets it from recovery', async () => {
    await restart('after-decide:8000');
    const [a, b] = [on[0][2]!, on[1][2]!];
    const before = hits('after-decide');
    const { c, commit } = await transaction(a, b, 'failover');
    await reached('after-decide', before);
    // The group's primary: the node not in recovery.
    const ps = await primaries(sc, [0, 1]);
    const port1 = Number((await ps[1]!.query('SELECT inet_server_port() AS p')).rows[0].p);
    for (const p of ps) await p.end();
    const primary1 = sc.tc.cluster.nodes().find((n) => n.group === 1 && n.port === port1)!;
    const pid = runningPid(sc.tc.cluster.paths(primary1.name).pgdata);
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    assert.equal(await commit, 'COMMIT');
    await c.end().catch(() => undefined);
    assert.deepEqual(await settled(a, b), ['failover', 'failover']);
  });
});

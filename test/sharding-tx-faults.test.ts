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
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { binarySets, cli, until } from './harness.js';
import { placement, upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { runningPid } from '../src/cluster/instance.js';

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

  const controllerPid = () =>
    (JSON.parse(readFileSync(`${sc.tc.cluster.dataDir}/controller.json`, 'utf8')) as { pid: number }).pid;
  const log = () => readFileSync(`${sc.tc.cluster.dataDir}/logs/controller.log`, 'utf8');

  /** `pgscale down`, then up with `fault` set (or none). */
  async function restart(fault: string | null, how: 'down' | 'gone' = 'down'): Promise<void> {
    if (how === 'down') {
      const down = await cli(['down', '-c', sc.tc.file], sc.tc.env);
      assert.equal(down.code, 0, down.stderr + down.stdout);
    }
    const up = await cli(
      ['up', '-c', sc.tc.file, '--detach'],
      fault === null ? sc.tc.env : { ...sc.tc.env, PGSCALE_FAULT_2PC: fault },
    );
    assert.equal(up.code, 0, up.stderr + up.stdout);
  }

  async function killController(): Promise<void> {
    const pid = controllerPid();
    process.kill(pid, 'SIGKILL');
    await until('the controller gone', () => {
      try {
        process.kill(pid, 0);
        return Promise.resolve(readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'));
      } catch {
        return Promise.resolve(true);
      }
    });
  }

  /** The primaries' clients, wherever the primaries are now. */
  async function primaries(): Promise<pg.Client[]> {
    const out: pg.Client[] = [];
    for (const g of [0, 1]) {
      const c = await until(
        `group ${g}'s primary`,
        async () => {
          for (const n of sc.tc.cluster.nodes().filter((x) => x.group === g)) {
            const c = await sc.connectGroup(g, n.port).catch(() => null);
            if (c === null) continue;
            const r = await c.query('SELECT pg_is_in_recovery() AS r').catch(() => null);
            if (r !== null && r.rows[0].r === false) return c;
            await c.end().catch(() => undefined);
          }
          return null;
        },
        90_000,
      );
      out.push(c);
    }
    return out;
  }

  /** Waits until no group holds a prepared transaction; the values of `a` and `b` then. */
  async function settled(a: number, b: number): Promise<[string, string]> {
    return until(
      'no prepared transaction left, on the primaries',
      async () => {
        const ps = await primaries();
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

  /** How often the log says a commit stopped at `point` (the log is kept across restarts). */
  const hits = (point: string) => log().split(`pgscale fault point: ${point}`).length - 1;
  /** This test's commit stopped at `point`: the log says so once more than `before`. */
  const reached = (point: string, before: number) =>
    until(`the fault point ${point}`, () => Promise.resolve(hits(point) > before), 60_000);

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
    const ps = await primaries();
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

/**
 * Fault helpers of the tests that crash a sharded cluster's parts (sharding-tx-faults,
 * sharding-move-faults): restart the controller with a fault point set in its environment
 * (PGSCALE_FAULT_2PC, PGSCALE_FAULT_MOVE), wait for a fault point in its log, kill -9 it, and
 * find each group's primary wherever failover put it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { cli, until } from './harness.js';
import type { ShardedCluster } from './sharding-support.js';

export function controllerPid(sc: ShardedCluster): number {
  return (JSON.parse(readFileSync(`${sc.tc.cluster.dataDir}/controller.json`, 'utf8')) as { pid: number })
    .pid;
}

export const controllerLog = (sc: ShardedCluster) =>
  readFileSync(`${sc.tc.cluster.dataDir}/logs/controller.log`, 'utf8');

/** `pgscale down` (or nothing, when the controller is `gone`), then up with `env` added. */
export async function restartController(
  sc: ShardedCluster,
  env: Record<string, string> | null,
  how: 'down' | 'gone' = 'down',
): Promise<void> {
  if (how === 'down') {
    const down = await cli(['down', '-c', sc.tc.file], sc.tc.env);
    assert.equal(down.code, 0, down.stderr + down.stdout);
  }
  const up = await cli(
    ['up', '-c', sc.tc.file, '--detach'],
    env === null ? sc.tc.env : { ...sc.tc.env, ...env },
  );
  assert.equal(up.code, 0, up.stderr + up.stdout);
}

/** kill -9 of the controller; resolves once it is gone. */
export async function killController(sc: ShardedCluster): Promise<void> {
  const pid = controllerPid(sc);
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

/** How often the log says a fault point `point` was reached (the log is kept across restarts). */
export const faultHits = (sc: ShardedCluster, point: string) =>
  controllerLog(sc).split(`pgscale fault point: ${point}`).length - 1;

/** The fault point was reached once more than `before`. */
export const faultReached = (sc: ShardedCluster, point: string, before: number) =>
  until(`the fault point ${point}`, () => Promise.resolve(faultHits(sc, point) > before), 60_000);

/** A superuser client on each group's current primary (the node not in recovery). */
export async function primaries(sc: ShardedCluster, groups: readonly number[]): Promise<pg.Client[]> {
  const out: pg.Client[] = [];
  for (const g of groups) {
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

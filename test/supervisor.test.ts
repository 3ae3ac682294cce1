/**
 * The supervisor against real PostgreSQL (1 primary + 1 standby, no controller): a stop pgscale
 * asks for itself is recorded as 'stopped' the moment it ends, not at the supervisor's next pass,
 * which may come after the node runs again (a switchover restarts the old primary within a
 * second; the HA test read the supervisor's events and found none). A kill -9 is still an exit,
 * seen by the next pass.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runningPid } from '../src/cluster/instance.js';
import { Supervisor } from '../src/controller/supervisor.js';
import { createLogger } from '../src/obs/logger.js';
import { createRegistry } from '../src/obs/metrics.js';
import { binarySets, makeCluster, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';

const bins = binarySets()[0]!;

describe('supervisor', () => {
  let tc: TestCluster | undefined;
  let sup: Supervisor | undefined;
  before(async () => {
    tc = await makeCluster(bins, { replicas: 1, extra: withoutHa });
    await tc.cluster.up();
    // An hour between passes: only what is recorded at once shows before the test calls check().
    sup = new Supervisor(tc.cluster, createLogger({ level: 'silent' }), createRegistry(), 3_600_000);
    await sup.start();
  });
  after(async () => {
    await sup?.stop();
    await tc?.cleanup();
  });

  test("pgscale's own stop is recorded as 'stopped' when it ends, without waiting for a pass", async () => {
    const cluster = tc!.cluster;
    const standby = cluster.nodes().find((n) => n.name !== cluster.primaryOf(0)!.name)!;
    const pid = runningPid(cluster.paths(standby.name).pgdata)!;
    assert.ok(pid);
    await cluster.stopNode(standby, 'fast');
    const mine = () => sup!.events().filter((e) => e.node === standby.name);
    assert.deepEqual(
      mine().map((e) => [e.event, e.pid]),
      [['stopped', pid]],
      'recorded as the stop returned',
    );
    // Started again before any pass: the pass records it running, and the stop only once.
    await cluster.startStandby(standby, cluster.primaryOf(0)!);
    const again = runningPid(cluster.paths(standby.name).pgdata)!;
    sup!.check();
    assert.deepEqual(
      mine().map((e) => [e.event, e.pid]),
      [
        ['stopped', pid],
        ['running', again],
      ],
    );
    // A kill -9 is no stop of ours: the pass finds it, as an exit.
    process.kill(again, 'SIGKILL');
    const deadline = Date.now() + 30_000;
    while (runningPid(cluster.paths(standby.name).pgdata) !== null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(mine().length, 2, 'nothing recorded before a pass');
    sup!.check();
    assert.deepEqual(mine().at(-1)?.event, 'exited');
  });
});

/**
 * Starting a node against real PostgreSQL (1 primary + 1 standby, no controller), with pg_ctl
 * wrapped to make the one race of the HA "killed standby" flake happen every time: the server is
 * killed with -9 after pg_ctl saw it ready and before the start returned. That start worked (the
 * node is a healthy standby that died afterwards); calling it failed made HA mark the standby
 * for a rewind or re-clone it, and its restart never reached the history. A server that stops by
 * itself right after starting (it removes postmaster.pid) is still a failed start.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../src/cluster/cluster.js';
import { runningPid } from '../src/cluster/instance.js';
import { binarySets, makeCluster, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';

const bins = binarySets()[0]!;

/** A pg_ctl that runs the real one, then does `after` to the server it started. */
function wrapper(dir: string, name: string, after: string): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    `#!/bin/sh
"${bins.pgCtl}" "$@"
rc=$?
if [ "$1" = start ] && [ $rc = 0 ]; then
  pgdata="$3"
  ${after}
fi
exit $rc
`,
  );
  chmodSync(file, 0o755);
  return file;
}

describe('node start', () => {
  let tc: TestCluster | undefined;
  before(async () => {
    tc = await makeCluster(bins, { replicas: 1, extra: withoutHa });
    await tc.cluster.up();
  });
  after(async () => {
    await tc?.cleanup();
  });

  const nodes = () => {
    const cluster = tc!.cluster;
    const primary = cluster.primaryOf(0)!;
    return { cluster, primary, standby: cluster.nodes().find((n) => n.name !== primary.name)! };
  };

  test('a standby killed with -9 right after pg_ctl saw it ready was started: no error', async () => {
    const { cluster, primary, standby } = nodes();
    await cluster.stopNode(standby);
    const killing = wrapper(
      tc!.dir,
      'pg_ctl-kill',
      `pid=$(head -1 "$pgdata/postmaster.pid"); kill -9 "$pid"
  i=0; while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' /proc/$pid/status; do sleep 0.05; i=$((i+1)); done`,
    );
    const c = new Cluster(cluster.loaded, undefined, { ...bins, pgCtl: killing });
    await c.startStandby(standby, primary);
    assert.equal(runningPid(cluster.paths(standby.name).pgdata), null, 'killed as planned');
    assert.equal(cluster.needsRejoin(standby), false);
    // A plain start brings it back.
    await cluster.startStandby(standby, primary);
    assert.ok(runningPid(cluster.paths(standby.name).pgdata));
  });

  test('a standby that stops by itself right after starting is a failed start', async () => {
    const { cluster, primary, standby } = nodes();
    await cluster.stopNode(standby);
    const stopping = wrapper(tc!.dir, 'pg_ctl-stop', `"${bins.pgCtl}" stop -D "$pgdata" -m fast -w -s`);
    const c = new Cluster(cluster.loaded, undefined, { ...bins, pgCtl: stopping });
    await assert.rejects(c.startStandby(standby, primary), /exited right after starting/);
    await cluster.startStandby(standby, primary);
    assert.ok(runningPid(cluster.paths(standby.name).pgdata));
  });
});

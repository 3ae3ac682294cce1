/**
 * add-group and remove-group: a group added while `pgscale up` runs (high availability on) is
 * provisioned with the cluster's roles and passwords, streams to its standby, and is taken in by
 * the controller without a restart (a leader in HA, the proxy's topology, health endpoints);
 * removing it takes it out of all of them, stops its nodes and deletes its directories. Group 0,
 * a group that is not the last and a group holding shards are refused. Without a running
 * controller add-group only provisions, and the next `up` starts the group (and the sharding
 * catalog takes it in, so a new distributed table places shards there).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, cli, makeCluster, tempDir, until, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { pidAlive, runningPid } from '../src/cluster/instance.js';
import { loadConfig } from '../src/config/load.js';
import type { NodeRef } from '../src/config/load.js';
import { INIT_DEFAULTS, renderConfig } from '../src/config/template.js';
import { Cluster } from '../src/cluster/cluster.js';

const bins = binarySets()[0]!;

interface Services {
  services: { name: string; reloads?: boolean; status: Record<string, unknown> | null }[];
}

async function services(tc: TestCluster): Promise<Services['services']> {
  const r = await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}/services`);
  return ((await r.json()) as Services).services;
}

/** The nodes of `group` as pgscale.yaml says now. */
function groupNodes(tc: TestCluster, group: number): NodeRef[] {
  return new Cluster(loadConfig(tc.file), undefined, bins).nodes().filter((n) => n.group === group);
}

async function statusJson(tc: TestCluster) {
  const st = await cli(['status', '-c', tc.file, '--json'], tc.env);
  assert.equal(st.code, 0, st.stderr + st.stdout);
  return (
    JSON.parse(st.stdout) as {
      nodes: { name: string; group: number; role: string | null; streaming?: boolean }[];
    }
  ).nodes;
}

describe('add-group and remove-group while pgscale up runs', () => {
  let tc: TestCluster;
  before(async () => {
    tc = await makeCluster(bins, { replicas: 1 });
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
  });
  after(async () => {
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  test('add-group provisions group 1 and the running controller takes it in', async () => {
    const add = await cli(['add-group', '-c', tc.file], tc.env);
    assert.equal(add.code, 0, add.stderr + add.stdout);
    assert.match(add.stdout, /added group 1: s1n0 \(primary, port \d+\), s1n1 \(standby, port \d+\)/);
    assert.match(add.stdout, /the controller supervises group 1/);
    const [s1n0, s1n1] = groupNodes(tc, 1);
    assert.equal(s1n0?.name, 's1n0');
    assert.equal(s1n1?.name, 's1n1');

    const nodes = await statusJson(tc);
    assert.equal(nodes.find((n) => n.name === 's1n0')?.role, 'primary');
    const standby = nodes.find((n) => n.name === 's1n1');
    assert.equal(standby?.role, 'replica');
    assert.equal(standby?.streaming, true);

    // HA has a leader for it, the proxy routes by it, its health endpoints answer.
    const list = await services(tc);
    const ha = list.find((s) => s.name === 'ha')!.status as {
      groups: { group: number; leader: string | null }[];
    };
    assert.equal(ha.groups.find((g) => g.group === 1)?.leader, 's1n0');
    const proxy = list.find((s) => s.name === 'proxy')!.status as {
      topology: { primaries: (string | null)[]; replicas: string[][] };
    };
    assert.equal(proxy.topology.primaries[1], 's1n0');
    assert.deepEqual(proxy.topology.replicas[1], ['s1n1']);
    const health = await fetch(`http://127.0.0.1:${s1n0.apiPort}/primary`);
    assert.equal(health.status, 200);
    // The sharding catalog's groups take it in when the sharding service follows a reload.
    const sharding = list.find((s) => s.name === 'sharding');
    if (sharding?.reloads) assert.ok((sharding.status as { groups: string[] }).groups.includes('1'));

    // The application's role and database are there, with the cluster's password; logical WAL.
    const c = new pg.Client({
      host: '127.0.0.1',
      port: s1n0.port,
      user: 'app',
      password: readSecrets(tc.cluster.dataDir)!.app,
      database: 'app',
    });
    await c.connect();
    try {
      const r = await c.query<{ wal_level: string }>('SHOW wal_level');
      assert.equal(r.rows[0]!.wal_level, 'logical');
    } finally {
      await c.end();
    }
  });

  test('remove-group refuses group 0, a group that does not exist and one that is not the last', async () => {
    const zero = await cli(['remove-group', '-c', tc.file, '0'], tc.env);
    assert.equal(zero.code, 2, zero.stderr);
    assert.match(zero.stderr, /group 0 cannot be removed/);
    const none = await cli(['remove-group', '-c', tc.file, '7'], tc.env);
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /there is no group 7/);
    // A middle group, in a file of three groups (refused before anything is looked at).
    const dir = tempDir();
    try {
      const file = join(dir, 'pgscale.yaml');
      writeFileSync(
        file,
        renderConfig({ ...INIT_DEFAULTS, groups: 3, replicas: 0, dataDir: join(dir, 'data') }),
      );
      const middle = await cli(['remove-group', '-c', file, '1'], tc.env);
      assert.equal(middle.code, 2, middle.stderr);
      assert.match(middle.stderr, /only the last group \(2\) can be removed/);
    } finally {
      const { rmSync } = await import('node:fs');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('remove-group takes the last group out of everything and deletes it', async () => {
    const nodes = groupNodes(tc, 1);
    const pids = nodes.map((n) => runningPid(tc.cluster.paths(n.name).pgdata));
    assert.ok(pids.every((p) => p !== null));
    const r = await cli(['remove-group', '-c', tc.file, '1'], tc.env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /the controller no longer supervises group 1/);
    assert.equal(loadConfig(tc.file).config.groups.length, 1);
    assert.doesNotMatch(readFileSync(tc.file, 'utf8'), /s1n0/);
    // (A zombie, where nothing reaps orphans, counts as gone.)
    for (const pid of pids) assert.equal(pidAlive(pid), false, `postmaster ${pid} still runs`);
    for (const n of nodes) assert.equal(existsSync(tc.cluster.paths(n.name).pgdata), false);
    assert.equal(existsSync(tc.cluster.archiveDir(1)), false);
    const list = await services(tc);
    const ha = list.find((s) => s.name === 'ha')!.status as { groups: unknown[] };
    assert.equal(ha.groups.length, 1);
    const agents = list.find((s) => s.name === 'agents')!.status as { nodes: { name: string }[] };
    assert.deepEqual(
      agents.nodes.map((n) => n.name),
      ['s0n0', 's0n1'],
    );
    // Group 0 goes on serving through the proxy.
    const c = new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'app',
      password: readSecrets(tc.cluster.dataDir)!.app,
      database: 'app',
    });
    await c.connect();
    await c.query('SELECT 1');
    await c.end();
  });

  test('a failed provisioning takes the group out of the file again and deletes what it made', async () => {
    // A setting PostgreSQL refuses: the new primary cannot start (the running nodes never read it).
    const good = readFileSync(tc.file, 'utf8');
    const bad = good.replace('  parameters: {}', '  parameters: { no_such_setting: 1 }');
    assert.notEqual(bad, good);
    writeFileSync(tc.file, bad);
    try {
      const r = await cli(['add-group', '-c', tc.file], tc.env);
      assert.equal(r.code, 1, r.stderr + r.stdout);
      assert.match(r.stdout, /provisioning group 1 failed; removing it again/);
      assert.equal(readFileSync(tc.file, 'utf8'), bad);
      assert.equal(existsSync(tc.cluster.paths('s1n0').pgdata), false);
      assert.equal(existsSync(tc.cluster.archiveDir(1)), false);
    } finally {
      writeFileSync(tc.file, good);
    }
  });
});

describe('add-group without a running controller, then up; live without high availability', () => {
  let tc: TestCluster;
  before(async () => {
    tc = await makeCluster(bins, { replicas: 0, extra: withoutHa });
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    const down = await cli(['down', '-c', tc.file], tc.env);
    assert.equal(down.code, 0, down.stderr + down.stdout);
  });
  after(async () => {
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  test('add-group provisions and leaves the group stopped; up starts it and shards go there', async () => {
    const add = await cli(['add-group', '-c', tc.file, '--standbys', '1'], tc.env);
    assert.equal(add.code, 0, add.stderr + add.stdout);
    assert.match(add.stdout, /no controller runs/);
    const nodes = groupNodes(tc, 1);
    assert.deepEqual(
      nodes.map((n) => n.name),
      ['s1n0', 's1n1'],
    );
    for (const n of nodes) assert.equal(runningPid(tc.cluster.paths(n.name).pgdata), null);

    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    const st = await statusJson(tc);
    assert.equal(st.find((n) => n.name === 's1n0')?.role, 'primary');
    assert.equal(st.find((n) => n.name === 's1n1')?.role, 'replica');

    // A distributed table places shards on group 1 (the catalog took it in at up): remove-group
    // refuses it.
    const app = await until(
      'the proxy to accept app',
      async () => {
        const c = new pg.Client({
          host: '127.0.0.1',
          port: tc.cluster.config.proxy.port,
          user: 'app',
          password: readSecrets(tc.cluster.dataDir)!.app,
          database: 'app',
        });
        c.on('error', () => undefined);
        try {
          await c.connect();
          return c;
        } catch {
          await c.end().catch(() => undefined);
          return null;
        }
      },
      60_000,
    );
    try {
      await app.query('CREATE TABLE items (id bigint PRIMARY KEY, v text)');
      await app.query("SELECT create_distributed_table('items', 'id')");
    } finally {
      await app.end();
    }
    const r = await cli(['remove-group', '-c', tc.file, '1'], tc.env);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(
      r.stderr,
      /group 1 holds \d+ shards of distributed tables; drain it first: pgscale drain-group 1/,
    );
    assert.equal(loadConfig(tc.file).config.groups.length, 2);
  });

  test('without high availability the proxy follows a group added and removed live', async () => {
    // Group 2's default api port is group 0's node port in this tight layout: another is chosen.
    const add = await cli(['add-group', '-c', tc.file, '--standbys', '0'], tc.env);
    assert.equal(add.code, 0, add.stderr + add.stdout);
    assert.match(add.stdout, /the controller supervises group 2/);
    assert.match(readFileSync(tc.file, 'utf8'), /name: s2n0\n\s+host: \S+\n\s+port: \d+\n\s+api_port: \d+/);
    const topology = async () =>
      (
        (await services(tc)).find((s) => s.name === 'proxy')!.status as {
          topology: { primaries: (string | null)[] };
        }
      ).topology.primaries;
    assert.deepEqual(await topology(), ['s0n0', 's1n0', 's2n0']);
    const [s2n0] = groupNodes(tc, 2);
    assert.equal((await fetch(`http://127.0.0.1:${s2n0!.apiPort}/primary`)).status, 200);

    const r = await cli(['remove-group', '-c', tc.file, '2'], tc.env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await topology(), ['s0n0', 's1n0']);
    assert.equal(existsSync(tc.cluster.paths('s2n0').pgdata), false);
  });
});

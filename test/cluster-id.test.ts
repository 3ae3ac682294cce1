/**
 * Two clusters on one etcd (issue #11): every cluster has its own cluster.id and keeps its keys
 * under it, so two clusters that share a name do not touch each other (a switchover in one used
 * to fail the other over); a second cluster given the same id is refused before anything starts,
 * naming the cluster that holds the keys; `destroy` removes the cluster's keys and only those.
 * Against a real etcd (test/etcd-harness.ts); skipped, saying why, without an etcd binary.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { clusterId, loadConfig } from '../src/config/load.js';
import { EtcdProcess, etcdSkipReason } from './etcd-harness.js';
import { binarySets, cli, makeCluster, until } from './harness.js';
import type { TestCluster } from './harness.js';

const bins = binarySets()[0]!;
const skip = etcdSkipReason();

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

describe('clusters sharing one etcd', { skip }, () => {
  let etcd: EtcdProcess;
  let a: TestCluster;
  let b: TestCluster;
  const cleanups: (() => Promise<void>)[] = [];

  /** Every key under /pgscale/<id>/ with its value. */
  async function keys(tc: TestCluster): Promise<Map<string, string>> {
    const prefix = `/pgscale/${clusterId(loadConfig(tc.file).config)}/`;
    const end = Buffer.from(prefix);
    end[end.length - 1]! += 1;
    const r = (await etcd.call('/v3/kv/range', { key: b64(prefix), range_end: end.toString('base64') })) as {
      kvs?: { key: string; value: string }[];
    };
    return new Map((r.kvs ?? []).map((kv) => [unb64(kv.key).slice(prefix.length), unb64(kv.value)]));
  }
  const leader = async (tc: TestCluster) => {
    const v = (await keys(tc)).get('shards/0/leader');
    return v ? (JSON.parse(v) as { node: string; epoch: number }) : null;
  };
  const onEtcd = (t: string) =>
    t
      .replace('store: embedded', `store: etcd\n  etcd:\n    endpoints: [${etcd.url}]`)
      .replace('ttl: 10', 'ttl: 4');

  before(async () => {
    etcd = await EtcdProcess.start();
    cleanups.push(() => etcd.cleanup());
    // The same name, as every `pgscale init` used to give.
    a = await makeCluster(bins, { replicas: 1, extra: onEtcd });
    cleanups.push(() => a.cleanup());
    b = await makeCluster(bins, { replicas: 1, extra: onEtcd });
    cleanups.push(() => b.cleanup());
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  test('init gives each cluster its own id', () => {
    const ia = loadConfig(a.file).config.cluster;
    const ib = loadConfig(b.file).config.cluster;
    assert.equal(ia.name, ib.name);
    assert.ok(ia.id && ib.id && ia.id !== ib.id, `${ia.id} vs ${ib.id}`);
  });

  test('two clusters with the same name run side by side; a switchover in one leaves the other alone', async () => {
    for (const tc of [a, b]) {
      const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
      assert.equal(r.code, 0, r.stderr + r.stdout);
    }
    const la = await until('a leader for A', () => leader(a), 30_000);
    const lb = await until('a leader for B', () => leader(b), 30_000);
    assert.equal(la.node, 's0n0');
    assert.equal(lb.node, 's0n0');
    const sw = await cli(['switchover', '-c', a.file], a.env);
    assert.equal(sw.code, 0, sw.stderr + sw.stdout);
    await until('A led by s0n1', async () => (await leader(a))?.node === 's0n1', 60_000);
    // B: same leader, same epoch, no HA event at all besides taking the lease at start.
    const after = await leader(b);
    assert.deepEqual(after, lb);
    const events = [...(await keys(b))].filter(([k]) => k.startsWith('history/')).map(([, v]) => v);
    assert.ok(
      events.every((e) => (JSON.parse(e) as { event: string }).event === 'leader_acquired'),
      events.join('\n'),
    );
    const st = await cli(['status', '-c', b.file, '--json'], b.env);
    const nodes = (JSON.parse(st.stdout) as { nodes: { name: string; role: string; state: string }[] }).nodes;
    assert.deepEqual(
      nodes.map((n) => [n.name, n.role, n.state]),
      [
        ['s0n0', 'primary', 'running'],
        ['s0n1', 'replica', 'running'],
      ],
    );
  });

  test('a cluster given the id of a running one is refused at up, naming it; nothing is created', async () => {
    const c = await makeCluster(bins, { replicas: 1, extra: onEtcd });
    cleanups.push(() => c.cleanup());
    const file = c.file;
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace(/^ {2}id: \S+/m, `  id: ${loadConfig(a.file).config.cluster.id}`),
    );
    const before = await keys(a);
    const r = await cli(['up', '-c', file, '--detach'], a.env);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /already belong to cluster "pgscale" \(data directory /);
    assert.ok(r.stderr.includes(a.cluster.dataDir), r.stderr);
    assert.match(r.stderr, /Give this cluster its own cluster\.id/);
    assert.equal(existsSync(loadConfig(file).dataDir), false);
    assert.deepEqual((await keys(a)).get('cluster'), before.get('cluster'));
  });

  test('destroy removes the keys of its cluster, and only those', async () => {
    assert.ok((await keys(a)).size > 0);
    const r = await cli(['destroy', '--yes', '-c', a.file], a.env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /removed \d+ keys under \/pgscale\/pgscale-[0-9a-f]{8}\/ from etcd/);
    assert.equal((await keys(a)).size, 0);
    assert.ok((await keys(b)).has('cluster'));
    assert.equal((await leader(b))?.node, 's0n0');
  });
});

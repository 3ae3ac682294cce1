import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { NodeStatus } from '../cluster/status.js';
import { registerProxyMetrics } from '../cli/proxy-metrics.js';
import { registerHaMetrics } from '../ha/ha-metrics.js';
import type { HaMetricsSnapshot } from '../ha/ha-metrics.js';
import { ClusterMetrics } from './cluster-metrics.js';

function node(name: string, role: 'primary' | 'replica', over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    name,
    group: 0,
    role,
    state: 'running',
    host: 'localhost',
    port: 5433,
    pid: 42,
    timeline: 1,
    lsn: '0/3000060',
    receiveLsn: role === 'replica' ? '0/3000060' : null,
    lagBytes: 0,
    lagSeconds: role === 'replica' ? 0 : null,
    streaming: role === 'replica',
    upstream: role === 'replica' ? 's0n0' : null,
    slot: null,
    syncState: null,
    archive: null,
    pendingRestart: [],
    error: null,
    ...over,
  };
}

/** `# TYPE name kind` lines of an exposition. */
function types(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** The series (name and labels, without values) of an exposition, for the given prefix. */
function series(text: string, prefix: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(0, l.lastIndexOf(' ')))
    .sort();
}

test('every *_total metric is a counter, and every counter ends in _total', async () => {
  const registry = new Registry();
  new ClusterMetrics(registry);
  registerProxyMetrics(registry, () => null);
  registerHaMetrics(registry, () => null);
  const t = types(await registry.metrics());
  assert.ok(t.size >= 20, `${t.size} metrics`);
  for (const [name, kind] of t) {
    assert.ok(name.startsWith('pgscale_'), name);
    if (name.endsWith('_total')) assert.equal(kind, 'counter', `${name} is a ${kind}`);
    if (kind === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} ends in _total`);
  }
  for (const name of [
    'pgscale_proxy_transactions_total',
    'pgscale_proxy_queries_total',
    'pgscale_proxy_received_bytes_total',
    'pgscale_proxy_sent_bytes_total',
    'pgscale_proxy_node_reads_total',
    'pgscale_proxy_query_duration_seconds_total',
    'pgscale_ha_failovers_total',
    'pgscale_ha_switchovers_total',
  ]) {
    assert.equal(t.get(name), 'counter', name);
  }
  for (const name of [
    'pgscale_node_up',
    'pgscale_node_is_primary',
    'pgscale_node_is_replica',
    'pgscale_ha_leader',
    'pgscale_ha_paused',
    'pgscale_ha_epoch',
    'pgscale_ha_last_failover_timestamp_seconds',
  ]) {
    assert.equal(t.get(name), 'gauge', name);
  }
});

test('a switchover changes values, never the set of node series (the role is not a label)', async () => {
  const registry = new Registry();
  const m = new ClusterMetrics(registry);
  m.update([node('s0n0', 'primary'), node('s0n1', 'replica')]);
  const before = await registry.metrics();
  m.update([node('s0n0', 'replica', { timeline: 2 }), node('s0n1', 'primary', { timeline: 2 })]);
  const after = await registry.metrics();
  assert.deepEqual(series(after, 'pgscale_'), series(before, 'pgscale_'));
  assert.doesNotMatch(after, /role=/);
  assert.match(before, /^pgscale_node_is_primary\{node="s0n0",group="0"\} 1$/m);
  assert.match(after, /^pgscale_node_is_primary\{node="s0n0",group="0"\} 0$/m);
  assert.match(after, /^pgscale_node_is_replica\{node="s0n0",group="0"\} 1$/m);
  assert.match(after, /^pgscale_node_is_primary\{node="s0n1",group="0"\} 1$/m);
  assert.match(after, /^pgscale_replica_streaming\{node="s0n1",group="0"\} 0$/m);
  assert.match(after, /^pgscale_node_timeline\{node="s0n1",group="0"\} 2$/m);
  // A stopped node keeps its series, at 0.
  m.update([node('s0n0', 'replica', { state: 'stopped' }), node('s0n1', 'primary')]);
  const stopped = await registry.metrics();
  assert.match(stopped, /^pgscale_node_up\{node="s0n0",group="0"\} 0$/m);
  assert.match(stopped, /^pgscale_node_is_replica\{node="s0n0",group="0"\} 0$/m);
});

test('HA metrics: the leader as a 0/1 value per node, epoch, paused, counters, last failover time', async () => {
  const registry = new Registry();
  let snap: HaMetricsSnapshot = {
    paused: false,
    storeReachable: true,
    cycles: 10,
    groups: [
      {
        group: 0,
        nodes: ['s0n0', 's0n1'],
        leader: 's0n0',
        epoch: 1,
        failovers: 0,
        switchovers: 0,
        lastFailoverAt: null,
      },
    ],
  };
  registerHaMetrics(registry, () => snap);
  const before = await registry.metrics();
  assert.match(before, /^pgscale_ha_leader\{group="0",node="s0n0"\} 1$/m);
  assert.match(before, /^pgscale_ha_leader\{group="0",node="s0n1"\} 0$/m);
  assert.match(before, /^pgscale_ha_paused 0$/m);
  assert.match(before, /^pgscale_ha_failovers_total\{group="0"\} 0$/m);
  assert.doesNotMatch(before, /^pgscale_ha_last_failover_timestamp_seconds\{/m);
  snap = {
    ...snap,
    paused: true,
    groups: [
      {
        ...snap.groups[0]!,
        leader: 's0n1',
        epoch: 3,
        failovers: 1,
        switchovers: 1,
        lastFailoverAt: 1_700_000_000_500,
      },
    ],
  };
  const after = await registry.metrics();
  assert.deepEqual(series(after, 'pgscale_ha_leader'), series(before, 'pgscale_ha_leader'));
  assert.match(after, /^pgscale_ha_leader\{group="0",node="s0n1"\} 1$/m);
  assert.match(after, /^pgscale_ha_epoch\{group="0"\} 3$/m);
  assert.match(after, /^pgscale_ha_paused 1$/m);
  assert.match(after, /^pgscale_ha_failovers_total\{group="0"\} 1$/m);
  assert.match(after, /^pgscale_ha_switchovers_total\{group="0"\} 1$/m);
  assert.match(after, /^pgscale_ha_last_failover_timestamp_seconds\{group="0"\} 1700000000\.5$/m);
});

test('archive failures of a running node are gauges: counts, last failure time, failing now', async () => {
  const registry = new Registry();
  const m = new ClusterMetrics(registry);
  const archive = {
    archivedCount: 5,
    lastArchivedWal: '000000010000000000000004',
    lastArchivedAt: '2026-12-07T14:00:00.000Z',
    failedCount: 3,
    lastFailedWal: '000000010000000000000005',
    lastFailedAt: '2026-12-07T14:01:00.000Z',
  };
  m.update([node('s0n0', 'primary', { archive }), node('s0n1', 'replica')]);
  const text = await registry.metrics();
  assert.match(text, /^pgscale_archive_failed_count\{node="s0n0",group="0"\} 3$/m);
  assert.match(text, /^pgscale_archive_archived_count\{node="s0n0",group="0"\} 5$/m);
  assert.match(text, /^pgscale_archive_failing\{node="s0n0",group="0"\} 1$/m);
  assert.match(text, /^pgscale_archive_last_failed_time_seconds\{node="s0n0",group="0"\} 1796652060$/m);
  assert.doesNotMatch(text, /pgscale_archive_failed_count\{node="s0n1"/);
  m.update([
    node('s0n0', 'primary', { archive: { ...archive, lastArchivedAt: '2026-12-07T14:02:00.000Z' } }),
  ]);
  assert.match(await registry.metrics(), /^pgscale_archive_failing\{node="s0n0",group="0"\} 0$/m);
});

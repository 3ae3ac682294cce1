import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeStatus } from '../cluster/status.js';
import { checkCode, endpointOf, parseLag, serverVersionNum, statusDocument } from './health-checks.js';
import type { Endpoint } from './health-checks.js';

function node(over: Partial<NodeStatus>): NodeStatus {
  return {
    name: 's0n1',
    group: 0,
    role: 'replica',
    state: 'running',
    host: 'localhost',
    port: 5433,
    pid: 42,
    timeline: 1,
    lsn: '0/3000060',
    receiveLsn: '0/3000060',
    lagBytes: 0,
    lagSeconds: 0,
    streaming: true,
    upstream: 's0n0',
    slot: null,
    syncState: 'async',
    archive: null,
    pendingRestart: [],
    error: null,
    ...over,
  };
}

const primary = node({ name: 's0n0', role: 'primary', streaming: false, upstream: null, syncState: null });
const replica = node({});
const lagging = node({ lagBytes: 20 * 1024 * 1024 });
const notStreaming = node({ streaming: false });
const stopped = node({ state: 'stopped', streaming: false, lagBytes: null });
const stoppedPrimary = node({ name: 's0n0', role: 'primary', state: 'stopped', streaming: false });
const unreachable = node({ state: 'unreachable', streaming: false });
const syncReplica = node({ syncState: 'sync' });
const unknownLag = node({ lagBytes: null });

const code = (e: Endpoint, s: NodeStatus | null, maxLagBytes: number | null = null) =>
  checkCode(e, s, { maxLagBytes });

test('paths map to endpoints as in Patroni; / is the primary check', () => {
  for (const p of ['/', '/primary', '/master', '/leader', '/read-write', '/primary/'])
    assert.equal(endpointOf(p), 'primary', p);
  assert.equal(endpointOf('/replica'), 'replica');
  assert.equal(endpointOf('/read-only'), 'read-only');
  assert.equal(endpointOf('/health'), 'health');
  assert.equal(endpointOf('/liveness'), 'liveness');
  assert.equal(endpointOf('/patroni'), 'patroni');
  assert.equal(endpointOf('/synchronous'), 'sync');
  assert.equal(endpointOf('/async'), 'async');
  assert.equal(endpointOf('/nope'), null);
});

test('/primary: 200 only on a running primary', () => {
  assert.equal(code('primary', primary), 200);
  for (const s of [replica, stoppedPrimary, unreachable, null]) assert.equal(code('primary', s), 503);
});

test('/replica: 200 on a running, streaming replica within the lag limit', () => {
  assert.equal(code('replica', replica), 200);
  assert.equal(code('replica', lagging), 200, 'no limit given');
  assert.equal(code('replica', lagging, 16 * 1024 * 1024), 503);
  assert.equal(code('replica', lagging, 20 * 1024 * 1024), 200, 'the limit is inclusive');
  assert.equal(code('replica', replica, 0), 200, 'lag=0 passes a caught-up replica');
  assert.equal(code('replica', node({ lagBytes: 1 }), 0), 503);
  assert.equal(code('replica', unknownLag, 0), 200, 'unmeasurable lag is not lagging');
  for (const s of [primary, notStreaming, stopped, unreachable, null]) assert.equal(code('replica', s), 503);
});

test('/read-only: the primary or a healthy replica', () => {
  assert.equal(code('read-only', primary), 200);
  assert.equal(code('read-only', replica), 200);
  assert.equal(code('read-only', primary, 0), 200, 'the lag limit does not apply to the primary');
  assert.equal(code('read-only', lagging, 1024), 503);
  for (const s of [notStreaming, stopped, stoppedPrimary, null]) assert.equal(code('read-only', s), 503);
});

test('/sync and /async split the healthy replicas by sync_state', () => {
  assert.equal(code('sync', syncReplica), 200);
  assert.equal(code('sync', node({ syncState: 'quorum' })), 200);
  assert.equal(code('sync', replica), 503);
  assert.equal(code('async', replica), 200);
  assert.equal(code('async', syncReplica), 503);
  assert.equal(code('async', primary), 503);
});

test('/health: PostgreSQL runs; /liveness and /patroni: always 200', () => {
  assert.equal(code('health', primary), 200);
  assert.equal(code('health', notStreaming), 200);
  for (const s of [stopped, unreachable, null]) assert.equal(code('health', s), 503);
  for (const s of [primary, stopped, null]) {
    assert.equal(code('liveness', s), 200);
    assert.equal(code('patroni', s), 200);
  }
});

test('parseLag accepts bytes and Patroni / PostgreSQL size units', () => {
  assert.equal(parseLag('0'), 0);
  assert.equal(parseLag('1048576'), 1048576);
  assert.equal(parseLag('1024kB'), 1048576);
  assert.equal(parseLag('10MB'), 10 * 1024 * 1024);
  assert.equal(parseLag('16mb'), 16 * 1024 * 1024);
  assert.equal(parseLag('1GB'), 1024 ** 3);
  assert.equal(parseLag('1TB'), 1024 ** 4);
  assert.equal(parseLag('512B'), 512);
  for (const bad of ['', 'x', '-1', '1.5MB', '10 PB', '1e6']) assert.equal(parseLag(bad), null, bad);
});

test('serverVersionNum is server_version_num', () => {
  assert.equal(serverVersionNum('15.8'), 150008);
  assert.equal(serverVersionNum('18.0'), 180000);
  assert.equal(serverVersionNum('garbage'), null);
});

test('the status document has Patroni’s fields', () => {
  const ctx = { cluster: 'c1', node: 's0n0', serverVersion: 150008, readAt: '2026-01-01T00:00:00.000Z' };
  const p = statusDocument(primary, ctx);
  assert.equal(p.state, 'running');
  assert.equal(p.role, 'primary');
  assert.equal(p.server_version, 150008);
  assert.deepEqual(p.xlog, { location: 0x3000060 });
  assert.equal(p.timeline, 1);
  assert.deepEqual(p.patroni, { scope: 'c1', name: 's0n0' });
  const r = statusDocument(node({ receiveLsn: '1/0' }), ctx);
  assert.equal(r.role, 'replica');
  assert.deepEqual(r.xlog, { received_location: 2 ** 32, replayed_location: 0x3000060 });
  const s = statusDocument(stopped, ctx);
  assert.equal(s.state, 'stopped');
  assert.equal(s.role, undefined);
  assert.equal(statusDocument(null, ctx).state, 'unknown');
});

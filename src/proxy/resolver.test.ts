import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TopologyView } from '../topology/topology.js';
import { parseConfig } from '../config/load.js';
import { databasesResolver, topologyResolver } from './resolver.js';

const view = () => {
  const v = new TopologyView();
  v.publish({
    epoch: 1,
    groups: [{ primary: { name: 's0n0', host: '127.0.0.1', port: 5432 }, replicas: [] }],
  });
  return v;
};

test('inside pgscale up only the served databases resolve; postgres and template1 do not', () => {
  const r = topologyResolver(view(), ['app']);
  assert.equal(r('app')?.dbname, 'app');
  assert.equal(r('app')?.onDemand, undefined);
  for (const db of ['postgres', 'template1', 'nosuch']) assert.equal(r(db), null, db);
  const more = topologyResolver(view(), ['app', 'postgres']);
  assert.equal(more('postgres')?.dbname, 'postgres');
  assert.equal(more('template1'), null);
});

test('"*" serves every database, each on demand (its pools freed when unused)', () => {
  const r = topologyResolver(view(), ['app', '*']);
  assert.equal(r('app')?.onDemand, undefined);
  assert.equal(r('anything')?.onDemand, true);
  assert.equal(r('anything')?.followsTopology, true);
});

test('the standalone "*" entry resolves names on demand, named entries not', () => {
  const cfg = parseConfig(
    JSON.stringify({ proxy: { databases: { app: { host: 'h' }, '*': { host: 'h' } } } }),
    '/x.yaml',
  ).config.proxy;
  const r = databasesResolver(cfg);
  assert.equal(r('app')?.onDemand, undefined);
  assert.equal(r('other')?.onDemand, true);
  assert.equal(r('other')?.dbname, 'other');
});

test("a database resolves to its home group's primary and replicas; the target names the group", () => {
  const v = new TopologyView();
  const ep = (name: string, port: number) => ({ name, host: '127.0.0.1', port });
  v.publish({
    epoch: 1,
    groups: [
      { primary: ep('s0n0', 5432), replicas: [ep('s0n1', 5433)] },
      { primary: ep('s1n0', 5442), replicas: [ep('s1n1', 5443)] },
    ],
  });
  const r = topologyResolver(v, ['app', 'orders'], undefined, (db) => (db === 'orders' ? 1 : 0));
  assert.deepEqual(
    [r('app')?.port, r('app')?.group, r('app')?.replicas?.map((x) => x.name)],
    [5432, 0, ['s0n1']],
  );
  assert.deepEqual(
    [r('orders')?.port, r('orders')?.group, r('orders')?.replicas?.map((x) => x.name)],
    [5442, 1, ['s1n1']],
  );
  // Group 1 without a primary (failover): its last one, never group 0's.
  v.publish({
    epoch: 2,
    groups: [
      { primary: ep('s0n0', 5432), replicas: [ep('s0n1', 5433)] },
      { primary: null, replicas: [ep('s1n1', 5443)] },
    ],
  });
  assert.equal(r('orders')?.port, 5442);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeRef } from '../config/load.js';
import type { KeyValue } from '../ha/store.js';
import { proxiesLine, storeStatus } from './store-status.js';

const kv = (key: string, value: unknown): KeyValue => ({
  key,
  value: typeof value === 'string' ? value : JSON.stringify(value),
  revision: 1,
  lease: null,
});
const node = (name: string, host: string): NodeRef => ({ name, host, port: 5432, group: 0 }) as NodeRef;
const facts = (f: Partial<Record<string, unknown>>) => ({
  provisioned: true,
  standbyDir: true,
  needsRejoin: false,
  running: true,
  upstream: { host: 'h1', port: 5432 },
  ...f,
});

test('storeStatus: leader, replicas with their upstream, a host with no agent, a fenced node', () => {
  const s = storeStatus(
    { cluster: 'c', store: 'etcd x' },
    [node('n1', 'h1'), node('n2', 'h2'), node('n3', 'h3'), node('n4', 'h4')],
    {
      agents: [
        kv('agents/h1', { host: 'h1', pid: 11, started_at: 't1', version: 'dev' }),
        kv('agents/h2', { host: 'h2', pid: 22, started_at: 't2', version: 'dev' }),
        kv('agents/h4', { host: 'h4', pid: 44, started_at: 't4', version: 'dev' }),
      ],
      members: [
        kv('members/n1', facts({ standbyDir: false, upstream: null })),
        kv('members/n2', facts({})),
        kv('members/n4', facts({ needsRejoin: true, running: false })),
      ],
      decider: kv('decider', { host: 'h2' }),
      paused: kv('paused', 'true'),
      leaders: [kv('shards/0/leader', { node: 'n1', epoch: 3 })],
      epochs: [kv('shards/0/epoch', { node: 'n1', epoch: 3 })],
      proxies: [],
    },
  );
  assert.equal(s.decider, 'h2');
  assert.equal(s.paused, true);
  assert.deepEqual(s.groups, [{ group: 0, leader: 'n1', epoch: 3 }]);
  assert.deepEqual(
    s.agents.map((a) => [a.host, a.pid]),
    [
      ['h1', 11],
      ['h2', 22],
      ['h4', 44],
    ],
  );
  assert.deepEqual(
    s.nodes.map((n) => [n.name, n.role, n.state, n.agent, n.upstream]),
    [
      ['n1', 'primary', 'running', true, null],
      ['n2', 'replica', 'running', true, 'n1'],
      ['n3', null, 'no report', false, null],
      ['n4', 'replica', 'fenced', true, 'n1'],
    ],
  );
});

test('storeStatus: a group with no leader keeps its last epoch; nothing reported is unknown', () => {
  const s = storeStatus({ cluster: 'c', store: 'etcd x' }, [node('n1', 'h1')], {
    agents: [],
    members: [kv('members/n1', '{not json')],
    decider: null,
    paused: null,
    leaders: [null],
    epochs: [kv('shards/0/epoch', { node: 'n1', epoch: 5 })],
    proxies: [],
  });
  assert.deepEqual(s.groups, [{ group: 0, leader: null, epoch: 5 }]);
  assert.equal(s.decider, null);
  assert.equal(s.paused, false);
  assert.equal(s.nodes[0]!.state, 'no report');
});

test('storeStatus: the proxies by number; a proxy with workers is one entry with its workers', () => {
  const s = storeStatus({ cluster: 'c', store: 'etcd x' }, [node('n1', 'h1')], {
    agents: [],
    members: [],
    decider: null,
    paused: null,
    leaders: [null],
    epochs: [null],
    proxies: [
      kv('proxies/3', { host: '10.0.0.6', port: 6432, pid: 902, worker: 2, primary: 900 }),
      kv('proxies/1', { host: '10.0.0.5', port: 6432, pid: 812 }),
      kv('proxies/2', { host: '10.0.0.6', port: 6432, pid: 901, worker: 1, primary: 900 }),
      kv('proxies/4', '{not json'),
    ],
  });
  assert.deepEqual(
    s.proxies.map((p) => [p.proxy, p.pid, p.worker, p.primary]),
    [
      [1, 812, null, null],
      [2, 901, 1, 900],
      [3, 902, 2, 900],
    ],
  );
  assert.equal(
    proxiesLine(s.proxies),
    '10.0.0.5:6432 (proxy 1, pid 812), 10.0.0.6:6432 (2 workers of pid 900: worker 1 proxy 2, worker 2 proxy 3)',
  );
  assert.equal(proxiesLine([]), 'none');
});

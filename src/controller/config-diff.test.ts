import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../config/load.js';
import { describeChange, diffConfig } from './config-diff.js';

const base = `cluster: { name: demo }
postgres:
  parameters: { work_mem: 4MB }
groups:
  - nodes:
      - { name: a, port: 5000 }
      - { name: b, port: 5001 }
`;
const cfg = (text: string) => parseConfig(text, '/x/pgscale.yaml').config;
const diff = (next: string) => diffConfig(cfg(base), cfg(next));

test('the same file changes nothing', () => {
  assert.deepEqual(diff(base), []);
});

test('a PostgreSQL parameter is a postgres change with its values', () => {
  const d = diff(base.replace('work_mem: 4MB', 'work_mem: 8MB, shared_buffers: 256MB'));
  assert.deepEqual(d, [
    { key: 'postgres.parameters.shared_buffers', kind: 'postgres', to: '256MB' },
    { key: 'postgres.parameters.work_mem', kind: 'postgres', from: '4MB', to: '8MB' },
  ]);
  assert.equal(describeChange(d[1]!), 'postgres.parameters.work_mem: "4MB" → "8MB"');
});

test('replication and max_prepared_transactions are rendered into the nodes', () => {
  const d = diff(base + 'replication: { wal_keep_size: 512MB }\n');
  assert.deepEqual(
    d.map((c) => [c.key, c.kind]),
    [['replication.wal_keep_size', 'postgres']],
  );
});

test('proxy and ha settings go to their services', () => {
  const d = diff(base + 'proxy: { default_pool_size: 7 }\nha: { loop_wait: 2 }\n');
  assert.deepEqual(
    d.map((c) => [c.key, c.kind]),
    [
      ['ha.loop_wait', 'ha'],
      ['proxy.default_pool_size', 'proxy'],
    ],
  );
});

test('names, directories and addresses are refused with what to do instead', () => {
  const d = diff(base.replace('name: demo', 'name: other, data_dir: ./elsewhere'));
  assert.deepEqual(
    d.map((c) => [c.key, c.kind]),
    [
      ['cluster.data_dir', 'refused'],
      ['cluster.name', 'refused'],
    ],
  );
  assert.match(d[0]!.reason!, /pgscale down/);
  assert.match(diff(base + 'http: { port: 9000 }\n')[0]!.reason!, /HTTP API/);
});

test('nodes and groups are refused naming their commands', () => {
  const added = diff(
    base.replace(
      '      - { name: b, port: 5001 }\n',
      '      - { name: b, port: 5001 }\n      - { name: c, port: 5002 }\n',
    ),
  );
  assert.equal(added.length, 1);
  assert.equal(added[0]!.kind, 'refused');
  assert.match(added[0]!.reason!, /pgscale add-replica --group 0/);
  const removed = diff(base.replace('      - { name: b, port: 5001 }\n', ''));
  assert.match(removed[0]!.reason!, /pgscale remove-replica b/);
  const group = diff(base + '  - nodes:\n      - { name: x, port: 5010 }\n');
  assert.match(group[0]!.reason!, /pgscale add-group/);
  const port = diff(base.replace('port: 5001', 'port: 5009'));
  assert.deepEqual(
    port.map((c) => [c.key, c.kind, c.from, c.to]),
    [['groups[0].nodes[b].port', 'refused', 5001, 5009]],
  );
});

test('a key no service reloads waits for the next start', () => {
  const d = diff(base + 'log: { keep_files: 9 }\n');
  assert.deepEqual(
    d.map((c) => [c.key, c.kind]),
    [['log.keep_files', 'next_start']],
  );
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allNodes, parseConfig } from '../config/load.js';
import { mergeStoredNodes } from './store-nodes.js';
import type { StoredNode } from './store-nodes.js';

const file = parseConfig(
  `cluster: { name: t }
ha: { store: etcd, etcd: { endpoints: ['http://127.0.0.1:2379'] } }
groups:
  - nodes:
      - { name: a, host: 10.0.0.1, port: 5432 }
      - { name: b, host: 10.0.0.2, port: 5432 }
`,
  '/tmp/t.yaml',
);
const rec = (group: number, name: string, host: string, port: number, position = 0): StoredNode => ({
  group,
  node: { name, host, port, priority: 100, nofailover: false },
  added_at: '2026-12-07T00:00:00.000Z',
  position,
});

test('recorded nodes join their group, a group one past the last is new', () => {
  const m = mergeStoredNodes(file, [rec(0, 'c', '10.0.0.3', 5432), rec(1, 'd', '10.0.0.1', 5433)]);
  assert.deepEqual(
    allNodes(m.config).map((n) => [n.group, n.name, n.host]),
    [
      [0, 'a', '10.0.0.1'],
      [0, 'b', '10.0.0.2'],
      [0, 'c', '10.0.0.3'],
      [1, 'd', '10.0.0.1'],
    ],
  );
  assert.equal(m.config.cluster.name, 't', 'every other setting stays');
});

test("a node the file names too is the file's; nothing recorded is the file as it is", () => {
  assert.equal(mergeStoredNodes(file, [rec(0, 'b', '10.0.0.9', 6000)]), file);
  assert.equal(mergeStoredNodes(file, []), file);
});

test('a clash or a group beyond the next is named', () => {
  assert.throws(
    () => mergeStoredNodes(file, [rec(0, 'c', '10.0.0.1', 5432)]),
    /port 5432 is already used by groups\[0\]\.nodes\[0\]/,
  );
  assert.throws(() => mergeStoredNodes(file, [rec(2, 'c', '10.0.0.3', 5432)]), /node c: there is no group 2/);
});

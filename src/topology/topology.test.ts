import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TopologyView } from './topology.js';

const node = (name: string, port: number) => ({ name, host: '127.0.0.1', port });

test('lastPrimary keeps the last published primary while a group has none', () => {
  const view = new TopologyView({ epoch: 1, groups: [{ primary: node('a', 1), replicas: [node('b', 2)] }] });
  assert.equal(view.lastPrimary(0)?.name, 'a');
  view.publish({ epoch: 1, groups: [{ primary: null, replicas: [node('b', 2)] }] });
  assert.equal(view.lastPrimary(0)?.name, 'a');
  view.publish({ epoch: 2, groups: [{ primary: node('b', 2), replicas: [] }] });
  view.publish({ epoch: 2, groups: [{ primary: null, replicas: [] }] });
  assert.equal(view.lastPrimary(0)?.name, 'b', 'the newer primary, not the first one seen');
  assert.equal(view.lastPrimary(1), null, 'a group never published has none');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withShardAliases } from './json-aliases.js';

test('objects with group also carry the deprecated shard; arrays of groups are repeated as shards', () => {
  const body = {
    groups: [{ group: 0, leader: 'g0' }],
    nodes: [{ name: 's1n0', group: 1 }],
    health: { group: null },
  };
  assert.deepEqual(withShardAliases(body), {
    groups: [{ group: 0, shard: 0, leader: 'g0' }],
    shards: [{ group: 0, shard: 0, leader: 'g0' }],
    nodes: [{ name: 's1n0', group: 1, shard: 1 }],
    health: { group: null, shard: null },
  });
});

test('a config-like groups list (no group key in its items) is left as it is', () => {
  const body = { groups: [{ nodes: [] }], name: 'x' };
  assert.deepEqual(withShardAliases(body), body);
  assert.equal(withShardAliases('text'), 'text');
});

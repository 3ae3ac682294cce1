import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './load.js';
import { INIT_DEFAULTS, addNodeToText, removeNodeFromText, renderConfig } from './template.js';

test('init renders groups × (1 + replicas) nodes on consecutive ports', () => {
  const text = renderConfig({ ...INIT_DEFAULTS, groups: 3, replicas: 1, portBase: 40000 });
  const { config } = parseConfig(text, '/x/p.yaml');
  assert.equal(config.groups.length, 3);
  assert.deepEqual(
    config.groups.map((s) => s.nodes.map((n) => `${n.name}:${n.port}`)),
    [
      ['s0n0:40000', 's0n1:40001'],
      ['s1n0:40002', 's1n1:40003'],
      ['s2n0:40004', 's2n1:40005'],
    ],
  );
});

test('adding and removing a node keeps the comments and the other nodes', () => {
  const text = renderConfig(INIT_DEFAULTS);
  const added = addNodeToText(text, 0, { name: 's0n3', host: 'localhost', port: 54323 });
  assert.match(added, /# initial primary/);
  assert.match(added, /# Safe WAL archive/);
  const cfg = parseConfig(added, '/x/p.yaml').config;
  assert.deepEqual(
    cfg.groups[0]!.nodes.map((n) => n.name),
    ['s0n0', 's0n1', 's0n2', 's0n3'],
  );
  const removed = removeNodeFromText(added, 's0n1');
  assert.deepEqual(
    parseConfig(removed, '/x/p.yaml').config.groups[0]!.nodes.map((n) => n.name),
    ['s0n0', 's0n2', 's0n3'],
  );
  assert.match(removed, /# initial primary/);
  assert.throws(() => removeNodeFromText(text, 'nope'), /no node named "nope"/);
  assert.throws(
    () => addNodeToText(text, 5, { name: 'x', host: 'localhost', port: 1 }),
    /groups\[5\]\.nodes not found/,
  );
});

test('add-replica and remove-replica edit a file that still says shards: under that key', () => {
  const text = renderConfig(INIT_DEFAULTS).replace(/^groups:$/m, 'shards:');
  const added = addNodeToText(text, 0, { name: 's0n3', host: 'localhost', port: 54323 });
  assert.match(added, /^shards:$/m);
  assert.doesNotMatch(added, /^groups:/m);
  assert.deepEqual(
    parseConfig(added, '/x.yaml').config.groups[0]!.nodes.map((n) => n.name),
    ['s0n0', 's0n1', 's0n2', 's0n3'],
  );
  const removed = removeNodeFromText(added, 's0n1');
  assert.deepEqual(
    parseConfig(removed, '/x.yaml').config.groups[0]!.nodes.map((n) => n.name),
    ['s0n0', 's0n2', 's0n3'],
  );
});

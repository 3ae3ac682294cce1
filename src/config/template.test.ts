import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './load.js';
import {
  INIT_DEFAULTS,
  addGroupToText,
  addNodeToText,
  removeLastGroupFromText,
  removeNodeFromText,
  renderConfig,
} from './template.js';

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

test('adding a group appends it with its nodes; only the last group can be taken out again', () => {
  const text = renderConfig({ ...INIT_DEFAULTS, replicas: 1 });
  const added = addGroupToText(text, [
    { name: 's1n0', host: 'localhost', port: 54330 },
    { name: 's1n1', host: 'localhost', port: 54331 },
  ]);
  assert.match(added, /# initial primary/);
  assert.match(added, /# Safe WAL archive/);
  const cfg = parseConfig(added, '/x/p.yaml').config;
  assert.deepEqual(
    cfg.groups.map((g) => g.nodes.map((n) => `${n.name}:${n.port}`)),
    [
      ['s0n0:54320', 's0n1:54321'],
      ['s1n0:54330', 's1n1:54331'],
    ],
  );
  assert.throws(() => removeLastGroupFromText(added, 0), /group 0 is not the last/);
  const removed = removeLastGroupFromText(added, 1);
  assert.equal(parseConfig(removed, '/x/p.yaml').config.groups.length, 1);
  assert.match(removed, /# initial primary/);
  // A file that still says shards: keeps that key.
  const old = addGroupToText(text.replace(/^groups:$/m, 'shards:'), [
    { name: 's1n0', host: 'localhost', port: 1 },
  ]);
  assert.match(old, /^shards:$/m);
  assert.equal(parseConfig(old, '/x.yaml').config.groups.length, 2);
});

test('init with pgBackRest installed turns backups on with a schedule; without, the file says nothing of them', () => {
  const on = parseConfig(renderConfig({ ...INIT_DEFAULTS, backup: true }), '/x/p.yaml').config.backup;
  assert.equal(on.enabled, true);
  assert.equal(on.retention_full, 2);
  assert.ok(on.schedule.full !== null && on.schedule.diff !== null, JSON.stringify(on.schedule));
  const text = renderConfig({ ...INIT_DEFAULTS, backup: false });
  assert.ok(!/^backup:/m.test(text));
  assert.equal(parseConfig(text, '/x/p.yaml').config.backup.enabled, false);
});

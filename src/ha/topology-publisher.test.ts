import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster } from '../cluster/cluster.js';
import type { NodeRef } from '../config/load.js';
import { TopologyView } from '../topology/topology.js';
import type { ProbeResult } from './probe.js';
import { TopologyPublisher } from './topology-publisher.js';

const node = (group: number, index: number): NodeRef =>
  ({
    name: `s${group}n${index}`,
    host: 'localhost',
    port: 5000 + 10 * group + index,
    group,
    index,
  }) as NodeRef;

test('each group carries its own epoch, moved only by a change of its own primary', () => {
  const nodes = [node(0, 0), node(0, 1), node(1, 0), node(1, 1)];
  const leaders = ['s0n0', 's1n0'];
  const primaries = new Set(leaders);
  // Only what the publisher reads of a cluster: its nodes, and who streams from whom.
  const cluster = {
    nodes: () => nodes,
    needsRejoin: () => false,
    upstreamOf: (n: NodeRef) => nodes.find((x) => x.group === n.group && x.name === leaders[n.group]),
  } as unknown as Cluster;
  const probe = (name: string): ProbeResult =>
    ({ ok: true, inRecovery: !primaries.has(name), streaming: !primaries.has(name) }) as ProbeResult;
  const view = new TopologyView();
  const p = new TopologyPublisher(view, cluster, {
    groupCount: 2,
    leaderOf: (g) => leaders[g] ?? null,
    lastProbe: probe,
    requestPending: () => false,
  });
  p.publish();
  const epochs = () => view.current().groups.map((g) => [g.primary?.name ?? null, g.epoch]);
  assert.deepEqual(epochs(), [
    ['s0n0', 1],
    ['s1n0', 1],
  ]);
  // Group 1 switches over: its epoch moves, group 0's does not; the topology's own epoch moves.
  const before = view.current().epoch;
  leaders[1] = 's1n1';
  primaries.delete('s1n0');
  primaries.add('s1n1');
  p.publishNow(1, nodes[3]!);
  assert.deepEqual(epochs(), [
    ['s0n0', 1],
    ['s1n1', 2],
  ]);
  assert.equal(view.current().epoch, before + 1);
  // A hold of group 0 (no primary published) moves group 0's epoch only.
  p.hold(0);
  assert.deepEqual(epochs(), [
    [null, 2],
    ['s1n1', 2],
  ]);
});

test('a group added at the end is published; a removed one is forgotten and starts afresh if added again', () => {
  const nodes = [node(0, 0), node(1, 0)];
  const cluster = {
    nodes: () => nodes,
    needsRejoin: () => false,
    upstreamOf: () => undefined,
  } as unknown as Cluster;
  let count = 1;
  const view = new TopologyView();
  const p = new TopologyPublisher(view, cluster, {
    get groupCount() {
      return count;
    },
    leaderOf: (g) => `s${g}n0`,
    lastProbe: () => ({ ok: true, inRecovery: false, streaming: false }) as ProbeResult,
    requestPending: () => false,
  });
  const epochs = () => view.current().groups.map((g) => [g.primary?.name ?? null, g.epoch]);
  p.publish();
  assert.deepEqual(epochs(), [['s0n0', 1]]);
  count = 2; // add-group
  p.publish();
  assert.deepEqual(epochs(), [
    ['s0n0', 1],
    ['s1n0', 1],
  ]);
  p.hold(1);
  count = 1; // remove-group: its hold and epoch go with it
  p.publish();
  assert.deepEqual(epochs(), [['s0n0', 1]]);
  count = 2;
  p.publish();
  assert.deepEqual(epochs(), [
    ['s0n0', 1],
    ['s1n0', 1],
  ]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeStatus } from '../cluster/status.js';
import { dashboardState } from './dashboard-state.js';
import type { DashboardInputs } from './dashboard-state.js';

const node = (name: string, group: number, role: 'primary' | 'replica', extra = {}): NodeStatus => ({
  name,
  group,
  role,
  state: 'running',
  host: 'h',
  port: 1,
  pid: 1,
  timeline: 1,
  lsn: '0/1',
  receiveLsn: null,
  lagBytes: null,
  lagSeconds: null,
  streaming: role === 'replica',
  upstream: null,
  slot: null,
  syncState: null,
  archive: null,
  error: null,
  pendingRestart: [],
  ...extra,
});

const inputs = (over: Partial<DashboardInputs>): DashboardInputs => ({
  cluster: 'c',
  controller: { state: 'running', pid: 1, started_at: null },
  nodes: [],
  services: [],
  ha: null,
  history: null,
  map: null,
  moves: null,
  clients: null,
  ...over,
});

test('without HA the leader is the node running as primary; ha, pools, shards are null', () => {
  const s = dashboardState(inputs({ nodes: [node('a', 0, 'replica'), node('b', 0, 'primary')] }));
  assert.deepEqual(
    s.groups.map((g) => [g.leader, g.epoch]),
    [['b', null]],
  );
  assert.equal(s.ha, null);
  assert.equal(s.pools, null);
  assert.equal(s.shards, null);
  assert.deepEqual(s.history, []);
});

test('a pending restart in the node status is shown, as a flag or a list of settings', () => {
  const s = dashboardState(
    inputs({
      nodes: [
        node('a', 0, 'primary', { pending_restart: ['shared_buffers'] }),
        node('b', 0, 'replica', { pendingRestart: true }),
        node('c', 0, 'replica', { pending_restart: [] }),
      ],
    }),
  );
  assert.deepEqual(
    s.groups[0]!.nodes.map((n) => n.pending_restart),
    [true, true, false],
  );
});

test('the running job and its moves; history newest first, older `shard` read as the group', () => {
  const s = dashboardState(
    inputs({
      moves: {
        current: {
          id: 'j1',
          kind: 'rebalance',
          state: 'running',
          started_at: 't',
          moves: [
            {
              shard_id: 102010,
              table: 'orders',
              from: '0',
              to: '1',
              state: 'running',
              step: 'copy',
              colocation: 1,
              shard: 2,
            },
          ],
        },
      },
      history: {
        events: [
          { at: '1', shard: 1, event: 'promoted' },
          { at: '2', group: 0, event: 'switchover_done', node: 'x' },
        ],
      },
    }),
  );
  assert.equal(s.moves?.moves[0]?.step, 'copy');
  assert.equal(s.moves?.moves[0]?.copied_bytes, null);
  assert.deepEqual(
    s.history.map((e) => [e.at, e.group, e.event]),
    [
      ['2', 0, 'switchover_done'],
      ['1', 1, 'promoted'],
    ],
  );
});

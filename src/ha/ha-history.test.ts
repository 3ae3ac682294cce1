import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from './embedded-store.js';
import { HaHistory, fromStored, lastFailovers } from './ha-history.js';
import type { StateStore } from './store.js';

test('events deferred while the store is away are written in order, with their own time', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-history-'));
  let store: StateStore | null = await EmbeddedStore.open(join(dir, 'store.json'));
  const real = store;
  try {
    const h = new HaHistory(() => {
      if (!store) throw new Error('store unreachable');
      return store;
    });
    await h.record({ group: 0, event: 'leader_acquired', node: 's0n0', epoch: 1 });
    store = null;
    h.defer({ group: 0, event: 'primary_stopped', node: 's0n0', detail: 'no lease' });
    h.defer({ group: 1, event: 'primary_stopped', node: 's1n0' });
    await assert.rejects(h.flush());
    const deferredAt = new Date().toISOString();
    store = real;
    await new Promise((r) => setTimeout(r, 5));
    await h.flush();
    const events = await h.list();
    assert.deepEqual(
      events.map((e) => [e.event, e.node]),
      [
        ['leader_acquired', 's0n0'],
        ['primary_stopped', 's0n0'],
        ['primary_stopped', 's1n0'],
      ],
    );
    assert.ok(events[1]!.at <= deferredAt, 'the time it happened, not the time it was written');
    await h.flush();
    assert.equal((await h.list()).length, 3, 'written once');
  } finally {
    await real.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the last failover of each group is a promotion after failover_detected, not a switchover', () => {
  const at = (s: number) => new Date(1_700_000_000_000 + s * 1000).toISOString();
  const last = lastFailovers(
    [
      { at: at(1), group: 0, event: 'failover_detected' },
      { at: at(2), group: 0, event: 'promoted', node: 's0n1' },
      { at: at(3), group: 0, event: 'switchover_started' },
      { at: at(4), group: 0, event: 'promoted', node: 's0n0' },
      { at: at(5), group: 1, event: 'switchover_started' },
      { at: at(6), group: 1, event: 'promoted', node: 's1n1' },
      { at: at(7), group: -1, event: 'ha_paused' },
    ],
    3,
  );
  assert.deepEqual(last, [1_700_000_002_000, null, null]);
});

test('events an older pgscale stored with shard (before groups) read back with group', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-history-'));
  const store = await EmbeddedStore.open(join(dir, 'store.json'));
  try {
    const at = '2026-11-27T15:46:34.788Z';
    await store.put(
      'history/000000000000001-000000',
      JSON.stringify({ at, shard: 1, event: 'promoted', node: 's1n1' }),
    );
    const h = new HaHistory(() => store);
    await h.record({ group: 0, event: 'leader_acquired', node: 's0n0', epoch: 1 });
    const events = await h.list();
    assert.deepEqual(events[0], { at, group: 1, event: 'promoted', node: 's1n1' });
    assert.equal(events[1]!.group, 0);
    assert.equal('shard' in events[0], false);
    assert.deepEqual(fromStored({ at, event: 'ha_paused', group: -1 }), {
      at,
      group: -1,
      event: 'ha_paused',
    });
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

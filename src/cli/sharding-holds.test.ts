/**
 * ShardHoldSync over a real (embedded) store: a cutover's hold reaches another proxy, which holds
 * the shard and acknowledges; the fence waits for that proxy's statements let through, and fails
 * when one does not acknowledge (until it has been unlisted for the window); the release lets the
 * other proxy's statements go after it read the catalog again, with the shard's arrival; a proxy
 * that cannot see its registration holds everything; a job's note reaches every proxy.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EmbeddedStore, embeddedStorePath } from '../ha/embedded-store.js';
import type { StateStore } from '../ha/store.js';
import { createLogger } from '../obs/logger.js';
import { ShardHolds } from '../proxy/shard-hold.js';
import type { HeldLeg } from '../proxy/shard-hold.js';
import { HOLD_KEYS, ShardHoldSync } from './sharding-holds.js';

const root = mkdtempSync(join(tmpdir(), 'pgscale-shardholds-'));
after(() => rmSync(root, { recursive: true, force: true }));
const log = createLogger({ level: 'silent' });
const TTL = 2000;
const SPEC = { colocation: 1, shards: [102008], group: '0', to: '1' };

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A registered proxy n (its `proxies/<n>` key under a lease kept alive) with its sync. */
async function proxy(store: StateStore, id: number, others: () => number[]) {
  const lease = await store.grantLease(TTL);
  await store.put(`proxies/${id}`, '{}', { lease });
  const keep = setInterval(() => void store.keepAlive(lease), 300);
  const holds = new ShardHolds();
  const calls: string[] = [];
  const sync = new ShardHoldSync({
    store,
    id,
    lease: () => lease,
    others,
    holds,
    ttlMs: TTL,
    log,
    reloadCatalog: () => {
      calls.push('reload');
      return Promise.resolve();
    },
    readFloor: (g, lsn) => calls.push(`floor ${g} ${lsn}`),
    idle: () => Promise.resolve(),
  });
  await sync.start();
  return {
    holds,
    sync,
    calls,
    lease,
    stop: () => {
      clearInterval(keep);
      sync.stop();
    },
  };
}

test('the hold reaches the other proxy; the fence waits for its statements; the release follows the catalog', async () => {
  const store = await EmbeddedStore.open(embeddedStorePath(join(root, 'a')));
  const a = await proxy(store, 1, () => [2]);
  const b = await proxy(store, 2, () => [1]);
  try {
    // A statement of B's in flight on the source when the hold begins.
    const leg: HeldLeg & { idle: boolean } = { idle: false, group: '0' };
    b.holds.inFlight = () => [leg];
    const h = a.sync.hold(SPEC);
    assert.ok(a.holds.active, 'the duty holder holds the shard itself');
    await until('B to hold the shard', () => b.holds.active);
    const held = b.holds.forRoute({ kind: 'one', group: '0', shards: [102008] } as never);
    assert.ok(held !== null, "B holds the shard's statements");
    assert.equal(b.holds.forRoute({ kind: 'one', group: '0', shards: [102009] } as never), null);
    // B's statement is not answered: B acknowledges late, the fence fails (the cutover retries).
    assert.equal(await h.fence(300), false);
    a.sync.release(h);
    await until('B to let go', () => !b.holds.active);
    // Again, the statement answered: every proxy is fenced.
    leg.idle = true;
    const h2 = a.sync.hold(SPEC);
    assert.equal(await h2.fence(2000), true);
    assert.ok(b.holds.active, 'B still holds until the release');
    a.sync.noteArrival('1', '0/3000060');
    b.calls.length = 0;
    a.sync.release(h2);
    await until('B to let go', () => !b.holds.active);
    assert.deepEqual(b.calls, ['reload', 'floor 1 0/3000060'], 'the catalog read again, then the read floor');
    for (let i = 0; i < 100 && (await store.list(HOLD_KEYS.hold)).length > 0; i++) await sleep(50);
    assert.deepEqual(await store.list(HOLD_KEYS.hold), [], 'the hold record is deleted after the release');
  } finally {
    a.stop();
    b.stop();
    await store.close();
  }
});

test('a listed proxy that does not acknowledge fails the fence; once unlisted for the window it is not waited for', async () => {
  const store = await EmbeddedStore.open(embeddedStorePath(join(root, 'b')));
  let others = [2];
  const a = await proxy(store, 1, () => others);
  try {
    const h = a.sync.hold(SPEC);
    assert.equal(await h.fence(300), false, 'proxy 2 never acknowledged');
    a.sync.release(h);
    others = [];
    // TTL/2 + 2 s after it was last listed, proxy 2 routes nothing (it holds everything itself).
    await sleep(TTL / 2 + 2000 + 1200);
    const h2 = a.sync.hold(SPEC);
    assert.equal(await h2.fence(300), true);
    a.sync.release(h2);
  } finally {
    a.stop();
    await store.close();
  }
});

test('a proxy that cannot see its registration holds every sharded statement until it can', async () => {
  const store = await EmbeddedStore.open(embeddedStorePath(join(root, 'c')));
  const b = await proxy(store, 2, () => []);
  try {
    assert.equal(b.holds.active, false);
    await store.revokeLease(b.lease);
    await until('B to hold everything', () => b.holds.anyOn('3') !== null, TTL * 3);
    assert.ok(b.holds.forRoute({ kind: 'one', group: '1', shards: [7] } as never) !== null);
    await store.put('proxies/2', '{}');
    await until('B to go on', () => !b.holds.active, TTL * 3);
  } finally {
    b.stop();
    await store.close();
  }
});

test("a job's note reaches every proxy, which acknowledges; its end too", async () => {
  const store = await EmbeddedStore.open(embeddedStorePath(join(root, 'd')));
  const a = await proxy(store, 1, () => [2]);
  const b = await proxy(store, 2, () => [1]);
  try {
    await a.sync.jobStarted('7', 'rebalance');
    assert.deepEqual(b.sync.remoteJob, { id: '7', kind: 'rebalance', by: 1 });
    assert.equal(a.sync.remoteJob, null, "the job is the duty holder's own");
    assert.equal((await store.get(`${HOLD_KEYS.jobSeen}2`))?.value, '7');
    await a.sync.jobEnded();
    await until('B to see the end', () => b.sync.remoteJob === null);
  } finally {
    a.stop();
    b.stop();
    await store.close();
  }
});

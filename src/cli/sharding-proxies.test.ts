/**
 * ShardingProxies over a real (embedded) store: one proxy at a time holds the cluster-wide
 * duties, another takes them when the holder's lease ends; the holder's record of the global
 * tables reaches the others, and a rebuild request is answered by a record written after it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EmbeddedStore, embeddedStorePath } from '../ha/embedded-store.js';
import { createLogger } from '../obs/logger.js';
import type { GlobalRecord } from './sharding-proxies.js';
import { ShardingProxies } from './sharding-proxies.js';

const root = mkdtempSync(join(tmpdir(), 'pgscale-shardproxies-'));
after(() => rmSync(root, { recursive: true, force: true }));
const log = createLogger({ level: 'silent' });
const TTL = 2000;

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('one proxy holds the duties; another takes them when its lease ends; records and rebuilds reach every proxy', async () => {
  const store = await EmbeddedStore.open(embeddedStorePath(join(root, 'a')));
  const leaseA = await store.grantLease(TTL);
  const leaseB = await store.grantLease(TTL);
  const keepA = setInterval(() => void store.keepAlive(leaseA), 300);
  const keepB = setInterval(() => void store.keepAlive(leaseB), 300);
  const a = new ShardingProxies(store, { id: 1, lease: () => leaseA, others: () => [2] }, log, TTL);
  const b = new ShardingProxies(store, { id: 2, lease: () => leaseB, others: () => [1] }, log, TTL);
  const gained: string[] = [];
  const seenB: GlobalRecord[] = [];
  let version = 1;
  try {
    await a.start({
      gained: () => gained.push('a'),
      // The holder answers a rebuild request with a new record.
      rebuild: () => void a.publish({ version, tables: ['public.t'] }),
      published: () => undefined,
    });
    await b.start({
      gained: () => gained.push('b'),
      rebuild: () => void b.publish({ version, tables: ['public.t'] }),
      published: (r) => seenB.push(r),
    });
    assert.equal(a.duty, true);
    assert.equal(b.duty, false);
    assert.deepEqual(gained, ['a']);
    // Only the holder publishes.
    await b.publish({ version: 9, tables: [] });
    await a.publish({ version: 1, tables: [] });
    assert.deepEqual(await b.follow(1, false), { version: 1, tables: [] });
    await until('the record at b', () => seenB.length > 0);
    assert.deepEqual(seenB, [{ version: 1, tables: [] }]);
    // DDL that kept the catalog: b asks, a rebuilds, b gets the record written after its request.
    assert.deepEqual(await b.follow(1, true), { version: 1, tables: ['public.t'] });
    // A catalog change: b's caller is answered once a routes with the new version.
    a.seen(1);
    let acked = false;
    const waiting = b.othersHave(2).then(() => (acked = true));
    await sleep(200);
    assert.equal(acked, false, 'answered before the other proxy had the version');
    a.seen(2);
    await waiting;
    // The holder's lease ends (its proxy died): b takes over within the TTL.
    clearInterval(keepA);
    await store.revokeLease(leaseA);
    await until('b holding the duties', () => b.duty);
    await until('a no longer holding them', () => !a.duty);
    assert.deepEqual(gained, ['a', 'b']);
    version = 2;
    await b.publish({ version: 2, tables: null });
    assert.deepEqual(await a.follow(2, false), { version: 2, tables: null });
  } finally {
    clearInterval(keepA);
    clearInterval(keepB);
    await a.stop();
    await b.stop();
    await store.close();
  }
  // Stopped: nothing is waited for any more.
  assert.equal(await b.follow(5, false), null);
});

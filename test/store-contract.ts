/**
 * The StateStore contract as one suite, run against every implementation (embedded in
 * src/ha/embedded-store.test.ts, etcd in test/etcd-store.test.ts). Each case opens a fresh,
 * empty store and checks an outcome a wrong implementation would get wrong: a stale
 * compare-and-set that wrote anyway, a list that leaks a neighbouring prefix, a lease that never
 * expires or is not extended, a watch that reorders, misses or outlives its unsubscribe.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCodes } from '../src/errors.js';
import { StoreError } from '../src/ha/store.js';
import type { StateStore, WatchEvent } from '../src/ha/store.js';

export interface StoreContractSubject {
  /** Opens a new, empty store (a new directory, a new key prefix); the suite closes it. */
  open(): Promise<StateStore>;
  /** TTL for the lease cases: short, but one the store honours (etcd counts whole seconds). */
  readonly leaseTtlMs: number;
  /** Why the suite cannot run here (the implementation's server is missing), or false. */
  readonly skip?: string | false;
}

/** Polls `fn` until it returns true; fails naming `what` after `timeoutMs`. */
export async function eventually(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export function storeContract(name: string, subject: StoreContractSubject): void {
  const ttl = subject.leaseTtlMs;
  /** Long enough for any implementation to expire a lease of `ttl` (etcd checks every 500 ms). */
  const expiryWait = 2 * ttl + 3000;

  const withStore = (fn: (s: StateStore) => Promise<void>) => async () => {
    const store = await subject.open();
    try {
      await fn(store);
    } finally {
      await store.close();
    }
  };

  const collect = (store: StateStore, prefix: string) => {
    const events: WatchEvent[] = [];
    const stop = store.watch(prefix, (e) => events.push(e));
    return { events, stop };
  };

  describe(`StateStore contract: ${name}`, { skip: subject.skip ?? false }, () => {
    test(
      'get, put and overwrite; every change gets a higher revision',
      withStore(async (s) => {
        assert.equal(await s.get('a'), null);
        const r1 = await s.put('a', 'one');
        assert.ok(r1 > 0);
        assert.deepEqual(await s.get('a'), { key: 'a', value: 'one', revision: r1, lease: null });
        const r2 = await s.put('a', 'two');
        assert.ok(r2 > r1, `revision ${r2} after ${r1}`);
        const r3 = await s.put('b', 'x');
        assert.ok(r3 > r2);
        assert.equal((await s.get('a'))?.revision, r2, 'a key keeps the revision of its own last change');
        const r4 = await s.compareAndSet('b', r3, 'y');
        assert.ok(r4 !== null && r4 > r3);
        const lease = await s.grantLease(30_000);
        const r5 = await s.put('c', 'z', { lease });
        assert.ok(r5 > r4);
        await s.revokeLease(lease);
        const r6 = await s.put('d', 'w');
        assert.ok(r6 > r5 + 1, `revision ${r6} after ${r5}: the revoke that deleted c takes one too`);
      }),
    );

    test(
      'values and keys round-trip exactly: empty, unicode, slashes, spaces',
      withStore(async (s) => {
        const cases: [string, string][] = [
          ['empty', ''],
          ['shard/0/leader', 'node s0n1 ✓ — ü'],
          ['sp ace/ключ/鍵', '{"json":true}\n'],
        ];
        for (const [k, v] of cases) await s.put(k, v);
        for (const [k, v] of cases) assert.equal((await s.get(k))?.value, v, `value of ${k}`);
      }),
    );

    test(
      'compareAndSet with 0 creates an absent key once; a second create fails and writes nothing',
      withStore(async (s) => {
        const r1 = await s.compareAndSet('leader', 0, 'n1');
        assert.ok(r1 !== null && r1 > 0);
        assert.equal(await s.compareAndSet('leader', 0, 'n2'), null);
        assert.deepEqual(await s.get('leader'), { key: 'leader', value: 'n1', revision: r1, lease: null });
      }),
    );

    test(
      'compareAndSet with a stale revision returns null and writes nothing; with the current one it writes',
      withStore(async (s) => {
        const r1 = await s.put('k', 'v1');
        const r2 = await s.put('k', 'v2');
        assert.equal(await s.compareAndSet('k', r1, 'stale'), null);
        assert.deepEqual(await s.get('k'), { key: 'k', value: 'v2', revision: r2, lease: null });
        assert.equal(
          await s.compareAndSet('absent', r2, 'x'),
          null,
          'a revision never matches an absent key',
        );
        assert.equal(await s.get('absent'), null);
        const r3 = await s.compareAndSet('k', r2, 'v3');
        assert.ok(r3 !== null && r3 > r2);
        assert.deepEqual(await s.get('k'), { key: 'k', value: 'v3', revision: r3, lease: null });
      }),
    );

    test(
      'compareAndDelete deletes only at the current revision',
      withStore(async (s) => {
        const r1 = await s.put('k', 'v1');
        const r2 = await s.put('k', 'v2');
        assert.equal(await s.compareAndDelete('k', r1), false);
        assert.equal((await s.get('k'))?.value, 'v2', 'a stale delete deletes nothing');
        assert.equal(await s.compareAndDelete('k', 0), false, 'revision 0 never deletes an existing key');
        assert.equal(await s.compareAndDelete('k', r2), true);
        assert.equal(await s.get('k'), null);
        assert.equal(await s.compareAndDelete('k', r2), false, 'an absent key is not deleted again');
        assert.equal(await s.compareAndDelete('never', 0), false);
        const r3 = await s.put('k', 'again');
        assert.ok(r3 > r2, 'a deletion takes a revision; the key comes back with a higher one');
      }),
    );

    test(
      'list returns exactly the keys under a prefix, sorted by key',
      withStore(async (s) => {
        for (const k of ['nodes/c', 'nodes/a', 'nodes', 'nodesX', 'nodes/b/2', 'nodes/b', 'other/a', 'node'])
          await s.put(k, `v-${k}`);
        const listed = await s.list('nodes/');
        assert.deepEqual(
          listed.map((kv) => kv.key),
          ['nodes/a', 'nodes/b', 'nodes/b/2', 'nodes/c'],
        );
        assert.deepEqual(
          listed.map((kv) => kv.value),
          ['v-nodes/a', 'v-nodes/b', 'v-nodes/b/2', 'v-nodes/c'],
        );
        for (const kv of listed) assert.equal((await s.get(kv.key))?.revision, kv.revision);
        assert.deepEqual(
          (await s.list('nodes')).map((kv) => kv.key),
          ['nodes', 'nodes/a', 'nodes/b', 'nodes/b/2', 'nodes/c', 'nodesX'],
        );
        assert.deepEqual(await s.list('none/'), []);
        assert.equal((await s.list('')).length, 8);
      }),
    );

    test(
      'a key carries its lease; a later put without the lease detaches it',
      withStore(async (s) => {
        const lease = await s.grantLease(30_000);
        await s.put('held', 'x', { lease });
        await s.put('moved', 'x', { lease });
        assert.equal((await s.get('held'))?.lease, lease);
        await s.put('moved', 'y');
        assert.equal((await s.get('moved'))?.lease, null);
        await s.revokeLease(lease);
        assert.equal(await s.get('held'), null);
        assert.equal((await s.get('moved'))?.value, 'y', 'a detached key outlives the lease');
      }),
    );

    test(
      'an expired lease deletes its keys (only those) and the watch sees the deletes',
      withStore(async (s) => {
        const { events, stop } = collect(s, 'lease/');
        try {
          // Started before the grant: the lease's clock starts inside grantLease, and on a loaded
          // machine the await can return well after that (once 108 ms), so a start taken after
          // it made a lease that kept its TTL look early.
          const start = performance.now();
          const lease = await s.grantLease(ttl);
          await s.put('lease/a', '1', { lease });
          await s.compareAndSet('lease/b', 0, '2', { lease });
          await s.put('lease/plain', '3');
          assert.equal((await s.get('lease/a'))?.value, '1');
          await eventually(
            'the leased keys to expire',
            async () => (await s.get('lease/a')) === null,
            expiryWait,
          );
          const elapsed = performance.now() - start;
          assert.ok(elapsed >= ttl - 1, `expired after ${elapsed} ms, TTL ${ttl} ms`);
          assert.equal(await s.get('lease/b'), null);
          assert.equal((await s.get('lease/plain'))?.value, '3');
          assert.equal(await s.keepAlive(lease), false, 'an expired lease cannot be kept alive');
          await eventually('two delete events', () => events.filter((e) => e.type === 'delete').length === 2);
          const deletes = events.filter((e) => e.type === 'delete');
          assert.deepEqual(
            deletes.map((e) => [e.key, e.value]),
            [
              ['lease/a', null],
              ['lease/b', null],
            ],
          );
          const lastPut = Math.max(...events.filter((e) => e.type === 'put').map((e) => e.revision));
          assert.ok(deletes.every((e) => e.revision > lastPut));
          await assert.rejects(
            s.put('lease/c', 'x', { lease }),
            (e: unknown) => e instanceof StoreError && e.code === ErrorCodes.STORE_LEASE_NOT_FOUND,
          );
          assert.equal(await s.get('lease/c'), null, 'nothing is written with an ended lease');
        } finally {
          stop();
        }
      }),
    );

    test(
      'keepAlive extends a lease past its TTL',
      withStore(async (s) => {
        const lease = await s.grantLease(ttl);
        await s.put('kept', 'x', { lease });
        const start = Date.now();
        // Keep it alive for twice its TTL (plus etcd's 500 ms expiry check), renewing at 40 %.
        while (Date.now() - start < 2 * ttl + 500) {
          await sleep(ttl * 0.4);
          assert.equal(await s.keepAlive(lease), true);
          assert.equal((await s.get('kept'))?.value, 'x', `kept alive ${Date.now() - start} ms`);
        }
        await s.revokeLease(lease);
      }),
    );

    test(
      'revokeLease deletes the keys at once; unknown or ended leases are no error',
      withStore(async (s) => {
        const { events, stop } = collect(s, '');
        try {
          const lease = await s.grantLease(30_000);
          const r = await s.put('r/a', '1', { lease });
          await s.revokeLease(lease);
          assert.equal(await s.get('r/a'), null);
          assert.equal(await s.keepAlive(lease), false);
          await s.revokeLease(lease);
          await s.revokeLease('123456789');
          assert.equal(await s.keepAlive('123456789'), false);
          await assert.rejects(
            s.compareAndSet('r/b', 0, 'x', { lease }),
            (e: unknown) => e instanceof StoreError && e.code === ErrorCodes.STORE_LEASE_NOT_FOUND,
          );
          assert.equal(await s.get('r/b'), null);
          await eventually('the delete event', () => events.some((e) => e.type === 'delete'));
          const del = events.find((e) => e.type === 'delete')!;
          assert.deepEqual(del, { type: 'delete', key: 'r/a', value: null, revision: del.revision });
          assert.ok(del.revision > r);
        } finally {
          stop();
        }
      }),
    );

    test(
      'watch delivers the changes under its prefix in revision order, and nothing after unsubscribe',
      withStore(async (s) => {
        await s.put('w/before', 'old');
        const w = collect(s, 'w/');
        const other = collect(s, 'x/');
        const r1 = await s.put('w/a', '1');
        const r2 = await s.put('x/a', 'elsewhere');
        const r3 = await s.put('w/b', '2');
        const r4 = await s.compareAndSet('w/a', r1, '3');
        assert.ok(await s.compareAndDelete('w/b', r3));
        const r6 = await s.put('w/c', '4');
        await eventually('5 events', () => w.events.length >= 5);
        assert.deepEqual(
          w.events.map((e) => [e.type, e.key, e.value]),
          [
            ['put', 'w/a', '1'],
            ['put', 'w/b', '2'],
            ['put', 'w/a', '3'],
            ['delete', 'w/b', null],
            ['put', 'w/c', '4'],
          ],
        );
        const revs = w.events.map((e) => e.revision);
        assert.deepEqual([revs[0], revs[1], revs[2], revs[4]], [r1, r3, r4, r6]);
        assert.ok(revs[3]! > r4! && revs[3]! < r6);
        await eventually('the other watch', () => other.events.length === 1);
        assert.deepEqual(other.events, [{ type: 'put', key: 'x/a', value: 'elsewhere', revision: r2 }]);

        w.stop();
        await s.put('w/after', 'x');
        await s.put('x/b', 'y');
        await eventually('the other watch to see x/b', () => other.events.length === 2);
        await sleep(200);
        assert.equal(w.events.length, 5, 'no event after unsubscribe');
        other.stop();
      }),
    );

    test(
      'operations after close reject with a StoreError',
      withStore(async (s) => {
        await s.put('k', 'v');
        await s.close();
        for (const op of [() => s.get('k'), () => s.put('k', 'w'), () => s.list(''), () => s.grantLease(ttl)])
          await assert.rejects(op(), (e: unknown) => e instanceof StoreError);
      }),
    );
  });
}

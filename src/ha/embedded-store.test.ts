/**
 * The embedded store: the shared StateStore contract in a temporary directory, then what only a
 * file-backed store has to get right: a change is on disk when its operation resolves, a reopened
 * store has the same keys and revisions, a lease survives a restart with its full TTL, and a
 * corrupt file is an error naming it rather than an empty store.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCodes } from '../errors.js';
import { storeContract } from '../../test/store-contract.js';
import { EmbeddedStore, embeddedStorePath } from './embedded-store.js';
import { StoreError } from './store.js';

const root = mkdtempSync(join(tmpdir(), 'pgscale-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshFile = () => embeddedStorePath(join(root, `data-${n++}`));

// The TTL leaves keepAlive's renewals (every 40 %) 600 ms of slack on a loaded machine.
storeContract('embedded', { open: () => EmbeddedStore.open(freshFile()), leaseTtlMs: 1000 });

describe('embedded store durability', () => {
  test('a change is on disk when its operation resolves, also for concurrent changes', async () => {
    const file = freshFile();
    const s = await EmbeddedStore.open(file);
    try {
      assert.equal(existsSync(file), false, 'nothing is written before the first change');
      const onDisk = (key: string) => readFileSync(file, 'utf8').includes(`"key":"${key}"`);
      const puts = Array.from({ length: 40 }, (_, i) =>
        s.put(`k${i}`, `v${i}`).then((rev) => {
          assert.ok(onDisk(`k${i}`), `k${i} (revision ${rev}) was on disk when its put resolved`);
          return rev;
        }),
      );
      const revs = await Promise.all(puts);
      assert.deepEqual(
        revs,
        revs.map((_, i) => revs[0]! + i),
        'concurrent puts take consecutive revisions in call order',
      );
      assert.deepEqual(
        readdirSync(join(file, '..')).sort(),
        ['store.json'],
        'no temporary file is left behind',
      );
    } finally {
      await s.close();
    }
  });

  test('a reopened store has the same keys, revisions and leases, and continues the revisions', async () => {
    const file = freshFile();
    const s1 = await EmbeddedStore.open(file);
    const lease = await s1.grantLease(60_000);
    await s1.put('group/0/leader', 's0n0', { lease });
    await s1.put('__proto__', 'not special');
    const r = await s1.put('group/0/epoch', '7');
    assert.equal(await s1.compareAndDelete('group/0/epoch', r - 1), false);
    const before = await s1.list('');
    await s1.close();
    await assert.rejects(s1.get('group/0/epoch'), (e: unknown) => e instanceof StoreError);

    const s2 = await EmbeddedStore.open(file);
    try {
      assert.deepEqual(await s2.list(''), before);
      assert.equal((await s2.get('__proto__'))?.value, 'not special');
      assert.equal((await s2.get('group/0/leader'))?.lease, lease);
      assert.equal(await s2.keepAlive(lease), true, 'the lease id read from the key still works');
      assert.ok((await s2.put('x', 'y')) > r, 'revisions continue after the reopen');
      const lease2 = await s2.grantLease(60_000);
      assert.notEqual(lease2, lease, 'lease ids are not reused');
      await s2.revokeLease(lease);
      assert.equal(await s2.get('group/0/leader'), null);
    } finally {
      await s2.close();
    }
  });

  test('a lease gets its full TTL again when the store is reopened', async (t) => {
    const file = freshFile();
    const ttl = 2000;
    const s1 = await EmbeddedStore.open(file);
    const granted = performance.now();
    const lease = await s1.grantLease(ttl);
    await s1.put('leader', 'me', { lease });
    await sleep(1500);
    await s1.close();
    // Taken before the reopen: the lease's new deadline is at least `ttl` after this.
    const reopening = performance.now();
    const s2 = await EmbeddedStore.open(file);
    try {
      const expired = new Promise<number>((resolve) => {
        const stop = s2.watch('leader', (e) => {
          if (e.type === 'delete') {
            stop();
            resolve(performance.now());
          }
        });
      });
      // Past the deadline the lease had before the restart.
      await sleep(Math.max(0, granted + ttl + 300 - performance.now()));
      const sinceReopen = performance.now() - reopening;
      if (sinceReopen < ttl)
        assert.equal((await s2.get('leader'))?.value, 'me', 'alive past its old deadline');
      else t.diagnostic(`machine too slow to check the old deadline (${Math.round(sinceReopen)} ms)`);
      const elapsed = (await expired) - reopening;
      assert.ok(elapsed >= ttl, `expired ${Math.round(elapsed)} ms after the reopen, TTL ${ttl} ms`);
      assert.equal(await s2.get('leader'), null);
    } finally {
      await s2.close();
    }
    const s3 = await EmbeddedStore.open(file);
    try {
      assert.equal(await s3.get('leader'), null, 'the expiry was written to disk');
      assert.equal(await s3.keepAlive(lease), false);
    } finally {
      await s3.close();
    }
  });

  test('a corrupt or unreadable file is an error naming the file, not an empty store', async () => {
    const cases: [string, (file: string) => void][] = [
      ['not JSON', (f) => writeFileSync(f, '{"format": "pgscale-state-store", "vers')],
      ['wrong shape', (f) => writeFileSync(f, JSON.stringify({ format: 'pgscale-state-store', version: 1 }))],
      [
        'dangling lease',
        (f) =>
          writeFileSync(
            f,
            JSON.stringify({
              format: 'pgscale-state-store',
              version: 1,
              revision: 3,
              next_lease: 2,
              leases: [],
              keys: [{ key: 'k', value: 'v', revision: 3, lease: '1' }],
            }),
          ),
      ],
      ['a directory', (f) => mkdirSync(f)],
    ];
    for (const [what, make] of cases) {
      const file = freshFile();
      mkdirSync(join(file, '..'), { recursive: true });
      make(file);
      await assert.rejects(
        EmbeddedStore.open(file),
        (e: unknown) =>
          e instanceof StoreError && e.code === ErrorCodes.STORE_UNAVAILABLE && e.message.includes(file),
        what,
      );
    }
  });
});

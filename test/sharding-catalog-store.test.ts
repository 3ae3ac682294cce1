/**
 * The sharding catalog in a real state store (src/sharding/catalog-store.ts): one suite run
 * against the embedded store (a temporary directory) and against a real etcd
 * (test/etcd-harness.ts; skipped, saying why, without an etcd binary). Several CatalogStore
 * holders on one store stand for several proxies and controllers: concurrent changes must all
 * land (compare-and-set, no lost update), every holder must move to each new version, a proxy
 * waiting for a version gets it or a timeout (never an older one), and a garbage value is
 * reported, never routed with nor overwritten.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, PgscaleError } from '../src/errors.js';
import { EmbeddedStore, embeddedStorePath } from '../src/ha/embedded-store.js';
import { EtcdStore, etcdPrefix } from '../src/ha/etcd-store.js';
import type { StateStore } from '../src/ha/store.js';
import { CATALOG_KEY, CatalogStore } from '../src/sharding/catalog-store.js';
import type { CatalogBackend } from '../src/sharding/catalog-store.js';
import {
  CatalogFormatError,
  distribute,
  encode,
  isCatalogError,
  lookup,
  reference,
} from '../src/sharding/catalog.js';
import type { Catalog } from '../src/sharding/types.js';
import { EtcdProcess, etcdSkipReason } from './etcd-harness.js';
import { eventually } from './store-contract.js';

const GROUPS = ['0', '1', '2'];

/** A backend that counts the compare-and-sets that lost, to prove the test made conflicts. */
function counting(store: StateStore): CatalogBackend & { lost: number } {
  const b = {
    lost: 0,
    get: (key: string) => store.get(key),
    compareAndSet: async (key: string, expected: number, value: string) => {
      const rev = await store.compareAndSet(key, expected, value);
      if (rev === null) b.lost++;
      return rev;
    },
    watch: store.watch.bind(store),
  };
  return b;
}

const distributeTable = (name: string) => (c: Catalog) => {
  const r = distribute(c, { rel: { schema: 'public', name }, column: 'id', type: 'int8', shardCount: 4 });
  return isCatalogError(r) ? r : r.catalog;
};

function catalogStoreSuite(name: string, open: () => Promise<StateStore>, skip: string | false): void {
  describe(`catalog store on the ${name} store`, { skip }, () => {
    let store: StateStore;
    const holders: CatalogStore[] = [];
    const holder = async (backend: CatalogBackend = store) => {
      const h = new CatalogStore(backend, { groups: GROUPS });
      holders.push(h);
      await h.load();
      return h;
    };

    before(async () => {
      store = await open();
    });
    after(async () => {
      for (const h of holders) h.close();
      await store.close();
    });

    test('nothing stored: an empty catalog at version 0; the first change stores version 1', async () => {
      await store.compareAndDelete(CATALOG_KEY, (await store.get(CATALOG_KEY))?.revision ?? 0);
      const a = await holder();
      assert.equal(a.current.version, 0);
      assert.deepEqual(a.current.groups, GROUPS);
      const c = await a.update(distributeTable('first'));
      assert.ok(!isCatalogError(c));
      assert.equal(c.version, 1);
      assert.equal(a.current, c);
      const kv = await store.get(CATALOG_KEY);
      assert.equal(kv?.value, encode(c));
      const b = await holder();
      assert.equal(b.current.version, 1);
      assert.ok(lookup(b.current).tableByKey('public.first'));
    });

    test('two holders updating at once: every change lands, one version each', async () => {
      const ba = counting(store);
      const bb = counting(store);
      const a = await holder(ba);
      const b = await holder(bb);
      const start = a.current.version;
      const names = Array.from({ length: 8 }, (_, i) => `t${i}`);
      const results = await Promise.all(
        names.map((n, i) => (i % 2 === 0 ? a : b).update(distributeTable(`${name}_${n}`))),
      );
      for (const r of results) assert.ok(!isCatalogError(r));
      assert.ok(ba.lost + bb.lost > 0, 'the updates conflicted at least once');
      const versions = results.map((r) => (r as Catalog).version).sort((x, y) => x - y);
      assert.deepEqual(
        versions,
        names.map((_, i) => start + i + 1),
        'one new version per change, none shared',
      );
      const final = await holder();
      for (const n of names)
        assert.ok(lookup(final.current).tableByKey(`public.${name}_${n}`), `${n} was kept`);
      const ids = [...final.current.tables.values()].map((t) => t.firstShardId);
      assert.equal(new Set(ids).size, ids.length, 'no two tables share shard ids');
      await eventually('both holders reach the last version', () =>
        [a, b].every((h) => h.current.version === start + names.length),
      );
    });

    test('the same change from two holders at once: applied once, the other gets the rule error', async () => {
      const a = await holder();
      const b = await holder();
      const [x, y] = await Promise.all([
        a.update(distributeTable('once')),
        b.update(distributeTable('once')),
      ]);
      const errors = [x, y].filter(isCatalogError);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.sqlstate, '42P16');
      assert.equal(errors[0]!.message, 'table "once" is already distributed');
    });

    test('watchers see each new version; waitForVersion resolves with it or times out', async () => {
      const a = await holder();
      const b = await holder();
      const seen: number[] = [];
      b.onChange((c) => seen.push(c.version));
      const target = a.current.version + 1;
      const waiting = b.waitForVersion(target, 30_000);
      const c = await a.update((cat) => {
        const r = reference(cat, { schema: 'public', name: `ref_${target}` });
        return isCatalogError(r) ? r : r.catalog;
      });
      assert.ok(!isCatalogError(c));
      const got = await waiting;
      assert.ok(got.version >= target);
      assert.ok(lookup(got).tableByKey(`public.ref_${target}`));
      assert.ok(seen.includes(target), `onChange saw ${seen.join(',')}`);
      assert.equal(await b.waitForVersion(1, 10), b.current, 'an older version resolves at once');
      await assert.rejects(b.waitForVersion(target + 100, 200), (e: unknown) => {
        assert.ok(e instanceof PgscaleError && e.code === ErrorCodes.TIMEOUT, String(e));
        assert.match(e.message, new RegExp(`did not reach version ${target + 100} within 200 ms`));
        return true;
      });
    });

    test('a change refused by its rule writes nothing', async () => {
      const a = await holder();
      const before = await store.get(CATALOG_KEY);
      const r = await a.update((c) => {
        const x = distribute(c, {
          rel: { schema: 'public', name: 'bad' },
          column: 'id',
          type: 'int8',
          shardCount: 0,
        });
        return isCatalogError(x) ? x : x.catalog;
      });
      assert.ok(isCatalogError(r));
      assert.equal((await store.get(CATALOG_KEY))?.revision, before?.revision);
      assert.equal(await a.update((c) => c), a.current, 'no change, no write');
      // A catalog no holder could read (a bug in a rule) is refused before it is written.
      await assert.rejects(
        a.update((c) => ({ ...c, groups: [] })),
        (e: unknown) => e instanceof CatalogFormatError && /not in groups/.test(e.message),
      );
      assert.equal((await store.get(CATALOG_KEY))?.revision, before?.revision);
    });

    test('a deleted key is reported; the next change continues the versions', async () => {
      const a = await holder();
      const had = a.current.version;
      assert.ok(had > 0);
      const errors: Error[] = [];
      a.onError((e) => errors.push(e));
      assert.ok(await store.compareAndDelete(CATALOG_KEY, (await store.get(CATALOG_KEY))!.revision));
      await eventually('the watcher reports the deletion', () => errors.length > 0, 30_000);
      assert.match(errors[0]!.message, new RegExp(`catalog key catalog was deleted; keeping version ${had}`));
      assert.equal(a.current.version, had);
      const c = await a.update(distributeTable('after_delete'));
      assert.ok(!isCatalogError(c));
      assert.equal(c.version, had + 1, 'versions never go back, so no waiter is fooled');
      assert.deepEqual([...c.tables.keys()], ['public.after_delete']);
      assert.equal(a.current, c);
    });

    test('a garbage value is reported, not routed with, not overwritten', async () => {
      const a = await holder();
      const good = a.current;
      const errors: Error[] = [];
      a.onError((e) => errors.push(e));
      await store.put(CATALOG_KEY, '{"format":1,"version":"lots"}');
      await eventually('the watcher reports the garbage', () => errors.length > 0, 30_000);
      assert.ok(errors[0] instanceof CatalogFormatError);
      assert.match(errors[0].message, /version is not an integer.*store key catalog/);
      assert.equal(a.current, good, 'the last good catalog stays current');
      await assert.rejects(a.update(distributeTable('after_garbage')), CatalogFormatError);
      assert.equal((await store.get(CATALOG_KEY))?.value, '{"format":1,"version":"lots"}', 'not overwritten');
      const fresh = new CatalogStore(store, { groups: GROUPS });
      holders.push(fresh);
      await assert.rejects(fresh.load(), CatalogFormatError);
      // Repaired by an operator (here: the last good catalog written back, one version on).
      await store.put(CATALOG_KEY, encode({ ...good, version: good.version + 1 }));
      await eventually(
        'the holder moves to the repaired catalog',
        () => a.current.version === good.version + 1,
        30_000,
      );
      assert.equal(((await a.update(distributeTable('after_repair'))) as Catalog).version, good.version + 2);
    });
  });
}

const root = mkdtempSync(join(tmpdir(), 'pgscale-catalog-store-'));
const etcdSkip = etcdSkipReason();
let etcd: EtcdProcess | undefined;
before(async () => {
  if (!etcdSkip) etcd = await EtcdProcess.start();
});
after(async () => {
  await etcd?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

catalogStoreSuite('embedded', () => EmbeddedStore.open(embeddedStorePath(join(root, 'data'))), false);
catalogStoreSuite(
  'etcd',
  () => EtcdStore.open({ endpoints: [etcd!.url], prefix: etcdPrefix(`catalog-test-${process.pid}`) }),
  etcdSkip,
);

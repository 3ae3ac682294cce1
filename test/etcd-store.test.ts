/**
 * The etcd store against a real etcd process (test/etcd-harness.ts): the shared StateStore
 * contract, one key prefix per case, then what only a networked store faces: dead endpoints,
 * authentication, a hung member (SIGSTOP) and a killed and restarted one. Every failure must be
 * a STORE_UNAVAILABLE within the operation timeout, never a hang; a watch must resume after the
 * restart without losing or repeating a change. Skipped, saying why, without an etcd binary.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { ErrorCodes } from '../src/errors.js';
import { EtcdStore, etcdPrefix } from '../src/ha/etcd-store.js';
import type { EtcdStoreOptions } from '../src/ha/etcd-store.js';
import { StoreError } from '../src/ha/store.js';
import type { StateStore, WatchEvent } from '../src/ha/store.js';
import { EtcdProcess, etcdSkipReason } from './etcd-harness.js';
import { eventually, storeContract } from './store-contract.js';

const skip = etcdSkipReason();
let etcd: EtcdProcess;
let n = 0;
const prefix = () => etcdPrefix(`test-${process.pid}-${n++}`);

before(async () => {
  if (!skip) etcd = await EtcdProcess.start();
});
after(async () => {
  await etcd?.cleanup();
});

const open = (opts: Partial<EtcdStoreOptions> = {}) =>
  EtcdStore.open({ endpoints: [etcd.url], prefix: prefix(), ...opts });

storeContract('etcd', { open: () => open(), leaseTtlMs: 1000, skip });

const unavailable = (what: string) => (e: unknown) => {
  assert.ok(e instanceof StoreError, `${what}: ${String(e)}`);
  assert.equal(e.code, ErrorCodes.STORE_UNAVAILABLE, e.message);
  return true;
};

/** Runs `op`, expecting a STORE_UNAVAILABLE within `timeoutMs` (plus scheduling slack). */
async function failsWithin(timeoutMs: number, what: string, op: () => Promise<unknown>): Promise<StoreError> {
  const t0 = performance.now();
  let err: unknown = null;
  await assert.rejects(
    op().catch((e: unknown) => {
      err = e;
      throw e;
    }),
    unavailable(what),
  );
  const elapsed = performance.now() - t0;
  // The slack is for a loaded machine's timers; a hang would take far longer.
  assert.ok(elapsed < timeoutMs + 1000, `${what} took ${Math.round(elapsed)} ms, timeout ${timeoutMs} ms`);
  return err as StoreError;
}

async function withStore(store: StateStore, fn: (s: StateStore) => Promise<void>): Promise<void> {
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

describe('etcd store against a real etcd', { skip }, () => {
  test('keys live under the cluster prefix; clusters sharing an etcd do not see each other', async () => {
    const p1 = prefix();
    const a = await EtcdStore.open({ endpoints: [etcd.url], prefix: p1 });
    const b = await open();
    try {
      await a.put('leader', 'a');
      await b.put('leader', 'b');
      await b.put('other', 'b');
      assert.deepEqual(
        (await a.list('')).map((kv) => [kv.key, kv.value]),
        [['leader', 'a']],
      );
      const raw = (await etcd.call('/v3/kv/range', {
        key: Buffer.from(`${p1}leader`).toString('base64'),
      })) as {
        kvs?: { value: string }[];
      };
      assert.equal(Buffer.from(raw.kvs?.[0]?.value ?? '', 'base64').toString(), 'a');
      assert.equal(a.describe, `etcd ${etcd.url} (prefix ${p1})`);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a dead endpoint is passed over; with only dead ones every operation fails naming them', async () => {
    const deadPort = await findFreePortBlock(1);
    const dead = `http://127.0.0.1:${deadPort}`;
    await withStore(await open({ endpoints: [dead, etcd.url] }), async (s) => {
      const r = await s.put('k', 'v');
      assert.equal((await s.get('k'))?.revision, r);
      assert.equal(await s.compareAndSet('k', r, 'w'), r + 1, 'a txn moves on after a refused connection');
    });
    await assert.rejects(open({ endpoints: [dead] }), (e: unknown) => {
      unavailable('open')(e);
      assert.match((e as Error).message, new RegExp(`${dead}: ECONNREFUSED`));
      return true;
    });
  });

  test('a member that stops answering costs one operation its timeout; the next starts past it', async () => {
    // A forwarder to etcd that goes silent, as a member cut off the network does: requests hang
    // instead of being refused. Before, every operation started there and spent its deadline.
    const sockets = new Set<Socket>();
    let silent = false;
    const forwarder = createServer((client) => {
      sockets.add(client);
      if (silent) return;
      const upstream = connect(Number(new URL(etcd.url).port), '127.0.0.1');
      sockets.add(upstream);
      for (const sock of [client, upstream]) sock.on('error', () => undefined);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.1', resolve));
    const cutOff = `http://127.0.0.1:${(forwarder.address() as AddressInfo).port}`;
    try {
      await withStore(await open({ endpoints: [cutOff, etcd.url], timeoutMs: 400 }), async (s) => {
        const r = await s.put('k', 'v');
        silent = true;
        for (const sock of sockets) sock.unpipe().pause();
        await failsWithin(400, 'get at the silent member', () => s.get('k'));
        assert.equal((await s.get('k'))?.revision, r, 'the next operation starts at the live member');
        assert.ok((await s.compareAndSet('k', r, 'w')) !== null);
      });
    } finally {
      for (const sock of sockets) sock.destroy();
      await new Promise((resolve) => forwarder.close(resolve));
    }
  });

  test('options are checked: credentials in a URL, no endpoint, half a login', async () => {
    const bad: Partial<EtcdStoreOptions>[] = [
      { endpoints: ['http://root:secret@127.0.0.1:2379'] },
      { endpoints: [] },
      { endpoints: ['ftp://127.0.0.1'] },
      { username: 'root' },
      { timeoutMs: 0 },
    ];
    for (const opts of bad) {
      await assert.rejects(open(opts), (e: unknown) => {
        assert.ok(e instanceof StoreError && e.code === ErrorCodes.CONFIG_INVALID, String(e));
        assert.doesNotMatch(e.message, /secret/);
        return true;
      });
    }
  });

  test('a hung etcd (SIGSTOP): every operation rejects within the timeout, then works again', async () => {
    const timeoutMs = 400;
    await withStore(await open({ timeoutMs }), async (s) => {
      const r = await s.put('k', 'v');
      const lease = await s.grantLease(5000);
      await etcd.pause();
      try {
        const e = await failsWithin(timeoutMs, 'get', () => s.get('k'));
        assert.match(e.message, new RegExp(`${etcd.url}: no answer within ${timeoutMs} ms`));
        await failsWithin(timeoutMs, 'put', () => s.put('k', 'w'));
        await failsWithin(timeoutMs, 'compareAndSet', () => s.compareAndSet('k', r, 'w'));
        await failsWithin(timeoutMs, 'list', () => s.list(''));
        await failsWithin(timeoutMs, 'keepAlive', () => s.keepAlive(lease));
        await failsWithin(timeoutMs, 'grantLease', () => s.grantLease(5000));
      } finally {
        etcd.resume();
      }
      await eventually('etcd to answer again', () =>
        s.get('k').then(
          (kv) => kv !== null,
          () => false,
        ),
      );
    });
  });

  test('etcd killed and restarted: operations fail fast, then work again; a watch resumes exactly', async () => {
    const timeoutMs = 500;
    await withStore(await open({ timeoutMs }), async (s) => {
      const events: WatchEvent[] = [];
      const stop = s.watch('w/', (e) => events.push(e));
      try {
        await s.put('w/1', 'before');
        await eventually('the first event', () => events.length === 1);
        await etcd.stop('SIGKILL');
        const e = await failsWithin(timeoutMs, 'get', () => s.get('w/1'));
        assert.match(e.message, new RegExp(`${etcd.url}: ECONNREFUSED`));
        await failsWithin(timeoutMs, 'put', () => s.put('w/x', 'x'));
        await failsWithin(timeoutMs, 'revokeLease', () => s.revokeLease('1'));
        await etcd.start();
        assert.equal((await s.get('w/1'))?.value, 'before', 'the data survived the restart');
        const r2 = await s.put('w/2', 'after');
        await s.compareAndDelete('w/1', (await s.get('w/1'))!.revision);
        await eventually('the watch to resume', () => events.length >= 3, 10_000);
        assert.deepEqual(
          events.map((ev) => [ev.type, ev.key, ev.value]),
          [
            ['put', 'w/1', 'before'],
            ['put', 'w/2', 'after'],
            ['delete', 'w/1', null],
          ],
        );
        assert.equal(events[1]!.revision, r2);
      } finally {
        stop();
      }
    });
  });

  test('authentication: a user and password give a token per endpoint, renewed after a restart', async () => {
    const password = 'pw-that-must-not-leak';
    await etcd.call('/v3/auth/user/add', { name: 'root', password });
    await etcd.call('/v3/auth/user/grant', { user: 'root', role: 'root' });
    await etcd.call('/v3/auth/enable', {});
    try {
      // Authenticating is a bcrypt comparison in etcd: up to a second on a busy machine.
      const timeoutMs = 5000;
      await assert.rejects(open(), unavailable('open without credentials'));
      await assert.rejects(open({ username: 'root', password: 'wrong', timeoutMs }), (e: unknown) => {
        unavailable('open with a wrong password')(e);
        assert.match((e as Error).message, /authentication failed/);
        return true;
      });
      await withStore(await open({ username: 'root', password, timeoutMs }), async (s) => {
        assert.doesNotMatch(s.describe, new RegExp(password));
        const events: WatchEvent[] = [];
        const stop = s.watch('', (e) => events.push(e));
        try {
          await s.put('a', '1');
          const lease = await s.grantLease(5000);
          assert.equal(await s.keepAlive(lease), true);
          await eventually('the first event', () => events.length === 1);
          // A restarted member has forgotten its simple tokens.
          await etcd.stop('SIGKILL');
          await etcd.start();
          // keepalive is a streaming method: its refusal of the old token comes in the body.
          assert.equal(await s.keepAlive(lease), true, 'the lease survived the restart');
          assert.equal((await s.get('a'))?.value, '1');
          await s.put('b', '2');
          await eventually('the watch to resume with a new token', () => events.length === 2, 10_000);
          assert.deepEqual(
            events.map((e) => e.key),
            ['a', 'b'],
          );
        } finally {
          stop();
        }
      });
    } finally {
      const { token } = (await etcd.call('/v3/auth/authenticate', { name: 'root', password })) as {
        token: string;
      };
      await etcd.call('/v3/auth/disable', {}, token);
    }
  });
});

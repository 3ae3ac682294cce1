/**
 * The etcd store over a real 3-member etcd on three network-namespace hosts (netns-hosts.ts),
 * driven from the test process in the root namespace with every member's endpoint: the store
 * works; keeps working when a member's whole host dies or is cut off (it moves to another
 * endpoint within a bounded number of attempts); while quorum is lost every operation fails with
 * STORE_UNAVAILABLE within its timeout, and writes made once no member has a leader are never
 * applied; service returns after healing; a lease whose keepalives reach only an isolated member
 * (follower or leader) expires for the majority. A todo case shows the watch's known gap with a
 * cut-off member. Members' own views are read from inside their namespaces. Skipped, saying why,
 * without root, `ip netns`, iptables or etcd. PostgreSQL in a namespace: netns-hosts.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../src/errors.js';
import { EtcdStore, etcdPrefix } from '../src/ha/etcd-store.js';
import { StoreError } from '../src/ha/store.js';
import { etcdSkipReason } from './etcd-harness.js';
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT, startEtcd } from './netns-etcd-cluster.js';
import type { EtcdCluster, EtcdMember } from './netns-etcd-cluster.js';
import { NetHosts, netnsSkipReason } from './netns-hosts.js';
import type { Host } from './netns-hosts.js';
import { eventually } from './store-contract.js';

const skip = netnsSkipReason() || etcdSkipReason();
/** The store's operation timeout: its default. */
const TIMEOUT_MS = 1000;
/** Attempts an operation may need while the store moves past a dead or cut endpoint. */
const MAX_ATTEMPTS = 3;

let net: NetHosts;
let etcd: EtcdCluster;
let n = 0;

before(async () => {
  if (skip) return;
  net = await NetHosts.create({ hosts: 3, prefix: 'pgte' });
  etcd = await startEtcd(net, net.hosts);
});
after(async () => {
  await net?.destroy();
});

const open = (endpoints = etcd.endpoints) =>
  EtcdStore.open({ endpoints, prefix: etcdPrefix(`netns-${n++}`), timeoutMs: TIMEOUT_MS });

const isUnavailable = (e: unknown) => e instanceof StoreError && e.code === ErrorCodes.STORE_UNAVAILABLE;

/** Runs `op` until it succeeds; returns its result and how many attempts it took (≤ `max`). */
async function attempts<T>(what: string, op: () => Promise<T>, max = MAX_ATTEMPTS): Promise<[T, number]> {
  const errors: string[] = [];
  for (let i = 1; i <= max; i++) {
    try {
      return [await op(), i];
    } catch (e) {
      if (!isUnavailable(e)) throw e;
      errors.push((e as Error).message);
    }
  }
  assert.fail(`${what} failed ${max} times:\n${errors.join('\n')}`);
}

/** Expects STORE_UNAVAILABLE within the timeout (the slack is for a loaded machine's timers). */
async function unavailableWithin(what: string, op: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  await assert.rejects(op(), (e: unknown) => {
    assert.ok(isUnavailable(e), `${what}: ${String(e)}`);
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(ms < TIMEOUT_MS + 1000, `${what} took ${Math.round(ms)} ms, timeout ${TIMEOUT_MS} ms`);
}

const lastPrefix = () => etcdPrefix(`netns-${n - 1}`);
const members = () => etcd.members as [EtcdMember, EtcdMember, EtcdMember];

/** Each member's view of the raft leader: its member id, or null when it knows none. */
function leaders(): Promise<{ self: string; leader: string | null }[]> {
  return Promise.all(
    etcd.members.map(async (m) => {
      const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, {
        method: 'POST',
        body: '{}',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      const st = (await res.json()) as { header?: { member_id?: string }; leader?: string };
      return { self: st.header?.member_id ?? '', leader: st.leader && st.leader !== '0' ? st.leader : null };
    }),
  );
}

/** The member that is raft leader now. */
async function leaderOf(): Promise<EtcdMember> {
  const views = await leaders();
  const at = views.findIndex((v) => v.leader !== null && v.leader === v.self);
  if (at < 0) assert.fail('no etcd member says it is the leader');
  return etcd.members[at]!;
}

/** Heals every host, restarts stopped members and waits until all three are healthy. */
async function restore(): Promise<void> {
  for (const h of net.hosts) {
    h.heal();
    h.unblock();
  }
  for (const m of etcd.members) if (!m.running) await m.start();
  await etcd.waitHealthy(etcd.members);
  // etcd 3.4 may leave a linearizable read that queued during a partition hanging once; the next
  // test starts when every member answers one in time.
  for (const m of etcd.members) {
    await eventually(`${m.name} to answer reads`, () =>
      fetch(`${m.clientUrl}/v3/kv/range`, {
        method: 'POST',
        body: JSON.stringify({ key: 'AA==' }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      }).then(
        (r) => r.ok,
        () => false,
      ),
    );
  }
}

/** A key's value read by a host from its own member (serializable: answers without quorum too). */
async function readOn(host: Host, prefix: string, key: string): Promise<string | null> {
  const body = JSON.stringify({ key: Buffer.from(prefix + key).toString('base64'), serializable: true });
  const code = `const r = await fetch(${JSON.stringify(`http://${host.addr}:${ETCD_CLIENT_PORT}/v3/kv/range`)}, { method: 'POST', body: ${JSON.stringify(body)} }); process.stdout.write(await r.text());`;
  const r = await host.run(process.execPath, ['--input-type=module', '-e', code]);
  const kv = (JSON.parse(r.stdout) as { kvs?: { value?: string }[] }).kvs?.[0];
  return kv ? Buffer.from(kv.value ?? '', 'base64').toString() : null;
}

describe('etcd store over three namespace hosts', { skip }, () => {
  test('compare-and-set and leases work against the 3-member cluster', async () => {
    const s = await open();
    try {
      const r1 = await s.compareAndSet('leader', 0, 'a');
      assert.ok(r1 !== null);
      assert.equal(await s.compareAndSet('leader', 0, 'b'), null, 'a second create loses');
      const r2 = await s.compareAndSet('leader', r1, 'c');
      assert.ok(r2 !== null && r2 > r1);
      const lease = await s.grantLease(2000);
      await s.put('member', 'x', { lease });
      assert.equal(await s.keepAlive(lease), true);
      assert.equal((await s.get('member'))?.lease, lease);
      await s.revokeLease(lease);
      assert.equal(await s.get('member'), null, 'revoking the lease removed its key');
    } finally {
      await s.close();
    }
  });

  for (const fault of ['killed', 'cut off'] as const) {
    test(`the raft leader's whole host ${fault}: after the election every operation succeeds on another member`, async (t) => {
      // The worst member to lose, first in the store's list: the cluster must elect a new leader.
      const first = await leaderOf();
      const s = await open([first, ...etcd.members.filter((m) => m !== first)].map((m) => m.clientUrl));
      try {
        let rev = await s.put('k', 'v0');
        if (fault === 'killed') await first.host.kill();
        else first.host.cut();
        const used: number[] = [];
        for (let i = 1; i <= 5; i++) {
          // The first one may wait out the election (500 ms to 1 s) in attempts of TIMEOUT_MS.
          const [r, tries] = await attempts(
            `compareAndSet ${i}`,
            () => s.compareAndSet('k', rev, `v${i}`),
            5,
          );
          assert.ok(r !== null, `compareAndSet ${i} lost its comparison`);
          rev = r;
          used.push(tries);
          const [kv, readTries] = await attempts(`get ${i}`, () => s.get('k'));
          assert.equal(kv?.value, `v${i}`);
          used.push(readTries);
        }
        // Once moved on, the store stays on a live member: only the first operation may retry.
        t.diagnostic(`attempts per operation: ${used.join(',')}`);
        assert.deepEqual(
          used.slice(1),
          Array<number>(used.length - 1).fill(1),
          `attempts: ${used.join(',')}`,
        );
      } finally {
        await s.close();
        await restore();
      }
    });
  }

  test('quorum lost (members cut off from each other): writes are refused within the timeout, none is ever applied', async () => {
    const s = await open();
    const prefix = lastPrefix();
    const [m1, m2, m3] = members();
    try {
      const rev = await s.put('k', 'before');
      // Raft traffic (peer port) blocked between every pair; the test process still reaches all three.
      m1.host.block(m2.host, [ETCD_PEER_PORT]);
      m1.host.block(m3.host, [ETCD_PEER_PORT]);
      m2.host.block(m3.host, [ETCD_PEER_PORT]);
      // A leader takes writes into its log until CheckQuorum makes it step down (one election
      // timeout), and such a write can be committed after healing (the old leader's log is the
      // longest): any timed-out write "may have been applied". Once no member has a leader,
      // proposals are dropped, and none may ever appear.
      await eventually(
        'every member to be without a leader',
        async () => (await leaders()).every((v) => v.leader === null),
        10_000,
      );
      await unavailableWithin('put', () => s.put('k', 'lost-put'));
      await unavailableWithin('compareAndSet', () => s.compareAndSet('k', rev, 'lost-cas'));
      await unavailableWithin('grantLease', () => s.grantLease(2000));
      await unavailableWithin('get', () => s.get('k'));
      for (const h of net.hosts) h.unblock();
      await etcd.waitHealthy(etcd.members);
      // A read that queued on a member during the partition may still time out once.
      const [kv] = await attempts('get after healing', () => s.get('k'));
      assert.equal(kv?.value, 'before', 'no write of the quorum-less time was applied');
      for (const m of etcd.members) assert.equal(await readOn(m.host, prefix, 'k'), 'before', m.name);
      assert.ok((await s.compareAndSet('k', rev, 'after')) !== null, 'writes work again');
    } finally {
      await s.close();
      await restore();
    }
  });

  test("quorum lost (two members' hosts cut off the network): operations fail within the timeout; healing restores", async () => {
    const s = await open();
    const [, m2, m3] = members();
    try {
      await s.put('k', 'before');
      m2.host.cut();
      m3.host.cut();
      await eventually(
        'member 1 to lose its leader',
        async () => !(await etcd.members[0]!.healthy(300)),
        10_000,
      );
      // A write sent over a connection to a cut member stays in its TCP send queue after the
      // timeout and can be delivered and applied after healing: its outcome is unknown, as the
      // store documents for every STORE_UNAVAILABLE, so this case checks only the failures.
      await unavailableWithin('put', () => s.put('k', 'unknown'));
      await unavailableWithin('get', () => s.get('k'));
      await unavailableWithin('keepAlive', () => s.keepAlive('1'));
      m2.host.heal();
      m3.host.heal();
      const [kv] = await attempts('get after healing', () => s.get('k'), 20);
      assert.ok(kv?.value === 'before' || kv?.value === 'unknown', String(kv?.value));
      assert.ok((await s.put('k', 'after')) > 0);
    } finally {
      await s.close();
      await restore();
    }
  });

  for (const role of ['follower', 'leader'] as const) {
    test(`a lease kept alive only through an isolated ${role} expires for the majority`, async (t) => {
      const leader = await leaderOf();
      const isolated = role === 'leader' ? leader : etcd.members.find((m) => m !== leader)!;
      const others = etcd.members.filter((m) => m !== isolated);
      // The store starts at the isolated member, as a client near it would.
      const s = await open([isolated, ...others].map((m) => m.clientUrl));
      const prefix = lastPrefix();
      try {
        const lease = await s.grantLease(1000);
        await s.put('leader', 'me', { lease });
        // The test process reaches the isolated member only, which reaches no other member.
        for (const o of others) {
          o.host.block(net.bridgeAddr, [ETCD_CLIENT_PORT]);
          isolated.host.block(o.host);
        }
        const t0 = performance.now();
        const kept: number[] = [];
        await eventually(
          'the majority to expire the lease',
          async () => {
            if (await s.keepAlive(lease).catch(() => false)) kept.push(Math.round(performance.now() - t0));
            return (await readOn(others[0]!.host, prefix, 'leader')) === null;
          },
          15_000,
        );
        t.diagnostic(
          `${role}: keepalives answered ${JSON.stringify(kept)} ms after isolation; expired for the majority by ${Math.round(performance.now() - t0)} ms`,
        );
        // A follower forwards keepalives to the leader it cannot reach. etcd 3.4's leader renews
        // leases locally, without quorum, until CheckQuorum makes it step down.
        if (role === 'follower') assert.deepEqual(kept, [], 'no keepalive succeeded without quorum');
        assert.equal(await readOn(others[1]!.host, prefix, 'leader'), null);
        await eventually('the isolated member to stop renewing', () =>
          s.keepAlive(lease).then(
            () => false,
            () => true,
          ),
        );
        for (const h of net.hosts) h.unblock();
        await etcd.waitHealthy(etcd.members);
        const [alive] = await attempts('keepAlive after healing', () => s.keepAlive(lease));
        assert.equal(alive, false, 'the lease has ended');
        assert.equal((await attempts('get after healing', () => s.get('leader')))[0], null);
      } finally {
        await s.close();
        await restore();
      }
    });
  }

  // Known gap (docs/ha-store.md: "a watch connection that hangs without closing is not detected"):
  // the watch stays on the cut member and delivers nothing until the network heals. A proxy that
  // follows the topology through a watch would miss a failover for as long as the cut lasts.
  test(
    'a watch whose member is cut off moves to another member and delivers the changes',
    { todo: 'etcd-watch.ts does not notice a watch connection that hangs' },
    async () => {
      const watcher = await open();
      const writer = await EtcdStore.open({
        endpoints: [...etcd.endpoints].reverse(),
        prefix: lastPrefix(),
        timeoutMs: TIMEOUT_MS,
      });
      const events: string[] = [];
      const stop = watcher.watch('', (e) => events.push(`${e.key}=${e.value}`));
      try {
        await writer.put('a', '1');
        await eventually('the first event', () => events.length === 1);
        // The watcher's store answered through member 1: its watch stream is there.
        etcd.members[0]!.host.cut();
        await attempts('put after the cut', () => writer.put('b', '2'), 10);
        await eventually('the change made during the cut', () => events.includes('b=2'), 5000);
      } finally {
        stop();
        await watcher.close();
        await writer.close();
        await restore();
      }
    },
  );
});

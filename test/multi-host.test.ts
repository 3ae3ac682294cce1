/**
 * Several hosts (issue #18): three network-namespace hosts (netns-hosts.ts), each with an etcd
 * member, a `pgscale agent` and one node of a group in synchronous mode, and two stateless proxies
 * (multi-host-support.ts). A writer in the root namespace records every acknowledged insert. The
 * primary's whole host dies: a standby takes over, no acknowledged insert is lost, and the host
 * comes back as a standby. The primary's host is cut off from etcd while clients still reach it:
 * its agent stops it before the session ends, another is promoted, and at no sample are two nodes
 * writable. The primary's agent alone dies: nothing is promoted. Skipped, saying why, without
 * root, `ip netns`, iptables or etcd.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import type pg from 'pg';
import { encodeCancelRequest } from '../src/protocol/startup-messages.js';
import { etcdSkipReason } from './etcd-harness.js';
import { MultiHostCluster, PROXY_PORT, TTL_S } from './multi-host-support.js';
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT } from './netns-etcd-cluster.js';
import { netnsSkipReason } from './netns-hosts.js';
import type { Host } from './netns-hosts.js';

const skip = netnsSkipReason() || etcdSkipReason();

describe('several hosts: an agent per host around a 3-member etcd', { skip, timeout: 600_000 }, () => {
  const m = new MultiHostCluster();
  const nodeName = (h: Host) => m.nodeName(h);
  const dataDir = (h: Host) => m.dataDir(h);
  const startAgent = (h: Host) => m.startAgent(h);
  const startProxy = (h: Host) => m.startProxy(h);
  const connect = (h: Host) => m.connect(h);
  const roles = () => m.roles();
  const waitFor = <T>(what: string, f: () => Promise<T | null>) => m.waitFor(what, f);
  const primary = () => m.primary();
  const allStreaming = (p: Host) => m.allStreaming(p);
  const viaProxy = (h: Host) => m.viaProxy(h);
  const writer = () => m.writer();
  const cli = (args: string[]) => m.cli(args);
  const storeStatus = (extra: string[] = []) => m.storeStatus(extra);

  before(() => m.start());
  after(() => m.stop());

  test("the primary's whole host dies: a standby takes over, no acknowledged insert is lost, the host comes back as a standby", async () => {
    const old = await primary();
    const w = writer();
    await waitFor('some writes', () => Promise.resolve(w.acked.length >= 50 ? true : null));
    const t0 = Date.now();
    await old.kill();
    const seen = w.acked.length;
    const p = await waitFor('a new primary taking writes', async () =>
      w.acked.length > seen + 20 ? await primary() : null,
    );
    const rto = Date.now() - t0;
    await w.stop();
    assert.notEqual(p, old);
    const ids = await m.ackedIds(p);
    const lost = w.acked.filter((id) => !ids.has(id));
    assert.deepEqual(
      lost,
      [],
      `acknowledged inserts lost (synchronous mode): ${lost.length} of ${w.acked.length}; ${nodeName(p)} holds ${ids.size} rows; RTO ${rto} ms`,
    );
    console.log(`# whole-host kill of the primary: writes again after ${rto} ms (ttl ${TTL_S} s)`);
    // The host comes back: its etcd member, its agent; the former primary rejoins as a standby.
    await m.etcd.member(old).start();
    startAgent(old);
    await waitFor('the former primary back as a standby', async () =>
      (await roles()).get(old) === 'standby' ? true : null,
    );
    await allStreaming(p);
  });

  test("the primary's host cut off from etcd, still reachable by clients: it stops before another is promoted; never two writable nodes", async () => {
    const old = await primary();
    let sampling = true;
    const twoWritable: string[] = [];
    const sampler = (async () => {
      while (sampling) {
        const r = await roles();
        const writable = [...r].filter(([, v]) => v === 'primary').map(([h]) => nodeName(h));
        if (writable.length > 1) twoWritable.push(writable.join(' and '));
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    try {
      // Its etcd member loses its peers, and its agent every other member: no quorum for it.
      for (const h of m.dbHosts) if (h !== old) old.block(h, [ETCD_CLIENT_PORT, ETCD_PEER_PORT]);
      const p = await waitFor('another primary', async () => {
        const r = await roles();
        const others = [...r].filter(([h, v]) => h !== old && v === 'primary');
        return others.length === 1 ? others[0]![0] : null;
      });
      assert.notEqual(p, old);
      assert.notEqual((await roles()).get(old), 'primary', 'the cut-off primary still takes writes');
    } finally {
      sampling = false;
      await sampler;
      old.unblock();
    }
    assert.deepEqual(twoWritable, [], 'two nodes were writable at once');
    await waitFor('the former primary back as a standby', async () =>
      (await roles()).get(old) === 'standby' ? true : null,
    );
  });

  test('a proxy killed while clients write: they go on through the other one, and it comes back', async () => {
    const w = writer();
    try {
      await waitFor('writes through both proxies', () => Promise.resolve(w.acked.length >= 20 ? true : null));
      const [a] = m.proxyHosts;
      await a!.kill();
      const n = w.acked.length;
      await waitFor('writes going on', () => Promise.resolve(w.acked.length >= n + 50 ? true : null));
      startProxy(a!);
      await waitFor(`the proxy on ${a!.addr} back`, async () => {
        const c = await viaProxy(a!);
        await c.end();
        return true;
      });
    } finally {
      await w.stop();
    }
    const p = await primary();
    const ids = await m.ackedIds(p);
    assert.deepEqual(
      w.acked.filter((id) => !ids.has(id)),
      [],
      'acknowledged inserts lost',
    );
  });

  test('a cancel request that reaches the other proxy cancels the query (the proxies find each other in etcd)', async () => {
    const [a, b] = m.proxyHosts as [Host, Host];
    const c = await viaProxy(a);
    let c2: pg.Client | null = null;
    try {
      const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
      const running = c.query('SELECT pg_sleep(60)').then(
        () => null,
        (e: Error & { code?: string }) => e,
      );
      // Sent once the query runs on the server (a cancel before it would cancel nothing, as in
      // PostgreSQL itself).
      const p = await primary();
      await waitFor('the query running', async () => {
        const su = await connect(p);
        try {
          const r = await su.query(
            "SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'",
          );
          return r.rows.length > 0 ? true : null;
        } finally {
          await su.end();
        }
      });
      const key = Buffer.alloc(4);
      key.writeInt32BE(secretKey);
      await new Promise<void>((resolve, reject) => {
        const s = tcpConnect({ host: b.addr, port: PROXY_PORT }, () =>
          s.end(encodeCancelRequest({ processId: processID, secretKey: key })),
        );
        s.on('error', reject);
        s.on('close', () => resolve());
      });
      const err = await running;
      assert.equal(err?.code, '57014', `the query was not cancelled: ${String(err)}`);
      // A forged key sent to the other proxy cancels nothing (another client of its own).
      c2 = await viaProxy(a);
      const k2 = c2 as unknown as { processID: number; secretKey: number };
      const slow = c2.query('SELECT pg_sleep(1.5) AS done');
      const forged = Buffer.alloc(4);
      forged.writeInt32BE(k2.secretKey ^ 0x7f);
      await new Promise<void>((resolve) => {
        const s = tcpConnect({ host: b.addr, port: PROXY_PORT }, () =>
          s.end(encodeCancelRequest({ processId: k2.processID, secretKey: forged })),
        );
        s.on('error', () => resolve());
        s.on('close', () => resolve());
      });
      assert.equal((await slow).rows.length, 1);
    } finally {
      await c.end().catch(() => undefined);
      await c2?.end().catch(() => undefined);
    }
  });

  test("the primary's agent killed, its PostgreSQL still serving: no failover (that would make two primaries); the agent back, writes go on", async () => {
    let old = await primary();
    await allStreaming(old);
    // The primary on a host other than the decider's (whose agent stays).
    const { decider } = await storeStatus();
    if (decider === old.addr) {
      const to = m.dbHosts.find((h) => h !== old && h.addr !== decider)!;
      const r = await cli(['switchover', '--to', nodeName(to)]);
      assert.equal(r.code, 0, r.out);
      old = await primary();
      assert.equal(old, to);
      await allStreaming(old);
    }
    const agent = m.agents.get(old)!;
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGKILL');
    await exited;
    // Its session ends a TTL later; the decider then probes the primary directly and finds it
    // still accepting writes: it refuses to promote.
    await waitFor('the refusal in the history', async () => {
      const r = await cli(['history', '--json']);
      const events = JSON.parse(r.stdout) as { event: string; detail?: string }[];
      return events.some((e) => e.event === 'refused' && /still accepts writes/.test(e.detail ?? ''))
        ? true
        : null;
    });
    await new Promise((r) => setTimeout(r, 2000));
    const during = await roles();
    assert.deepEqual(
      m.dbHosts.map((h) => during.get(h)),
      m.dbHosts.map((h) => (h === old ? 'primary' : 'standby')),
      'a standby was promoted while the old primary still took writes',
    );
    startAgent(old);
    const w = writer();
    try {
      await waitFor('writes through the proxies again', () =>
        Promise.resolve(w.acked.length >= 20 ? true : null),
      );
    } finally {
      await w.stop();
    }
    assert.equal(await primary(), old, 'the primary did not change');
    await allStreaming(old);
  });

  test("a standby's host cut off the network: writes go on (synchronous, ANY 1), and it comes back streaming", async () => {
    const p = await primary();
    const standby = m.dbHosts.find((h) => h !== p)!;
    const w = writer();
    try {
      await waitFor('writes', () => Promise.resolve(w.acked.length >= 20 ? true : null));
      standby.cut();
      const n = w.acked.length;
      await waitFor('writes going on without it', () =>
        Promise.resolve(w.acked.length >= n + 50 ? true : null),
      );
      assert.equal(await primary(), p, 'the primary did not change');
      standby.heal();
      await allStreaming(p);
    } finally {
      standby.heal();
      await w.stop();
    }
  });

  test('etcd quorum lost: every primary stops within the TTL, nothing is promoted; back when quorum returns, nothing lost', async () => {
    const old = await primary();
    const w = writer();
    await waitFor('writes', () => Promise.resolve(w.acked.length >= 20 ? true : null));
    const t0 = Date.now();
    // Each database host reaches only its own etcd member: no member has a majority.
    for (const a of m.dbHosts)
      for (const b of m.dbHosts) if (a.index < b.index) a.block(b, [ETCD_CLIENT_PORT, ETCD_PEER_PORT]);
    let promoted: string[] = [];
    try {
      await waitFor('no writable node', async () =>
        [...(await roles()).values()].includes('primary') ? null : true,
      );
      const stoppedAfter = Date.now() - t0;
      assert.ok(
        stoppedAfter < (TTL_S + 5) * 1000,
        `the primary still took writes ${stoppedAfter} ms into the outage`,
      );
      // Nothing is promoted while the outage lasts (two TTLs watched).
      const until = Date.now() + 2 * TTL_S * 1000;
      while (Date.now() < until) {
        const r = await roles();
        promoted = [...r].filter(([, v]) => v === 'primary').map(([h]) => nodeName(h));
        if (promoted.length > 0) break;
        await new Promise((res) => setTimeout(res, 200));
      }
    } finally {
      for (const h of m.dbHosts) h.unblock();
    }
    assert.deepEqual(promoted, [], 'a node was writable without etcd quorum');
    const back = await primary();
    await w.stop();
    assert.equal(back, old, 'the same primary comes back (nothing to fail over to: it only stopped)');
    const ids = await m.ackedIds(back);
    assert.deepEqual(
      w.acked.filter((id) => !ids.has(id)),
      [],
      'acknowledged inserts lost',
    );
    await allStreaming(back);
  });

  test('the CLI from a machine that only reaches etcd: status shows the agents, the decider, the leader and the standbys streaming', async () => {
    const p = await primary();
    await allStreaming(p);
    const s = await waitFor('every agent and node reported', async () => {
      const st = await storeStatus(['--data-dir', dataDir(m.dbHosts[0]!)]);
      return st.agents.length === 3 && st.nodes.every((n) => n.state === 'running') ? st : null;
    });
    assert.deepEqual(s.agents.map((a) => a.host).sort(), m.dbHosts.map((h) => h.addr).sort());
    assert.ok(s.decider !== null && m.dbHosts.some((h) => h.addr === s.decider), `decider ${s.decider}`);
    assert.equal(s.groups[0]!.leader, nodeName(p));
    assert.equal(s.probed, true, 'lag asked of the primary with the secrets of --data-dir');
    assert.deepEqual(
      s.nodes.filter((n) => n.role === 'replica').map((n) => [n.name, n.streaming]),
      m.dbHosts.filter((h) => h !== p).map((h) => [nodeName(h), true]),
    );
    const text = await cli(['status']);
    assert.equal(text.code, 0, text.out);
    assert.match(text.out, new RegExp(`group 0: leader ${nodeName(p)}, epoch \\d+`));
    assert.match(text.out, /^decider: agent of /m);
    assert.match(text.out, /lag: not shown \(no secrets\.json/);
  });

  test('switchover to a named node through the CLI: the decider takes the request and that node is the primary', async () => {
    const old = await primary();
    await allStreaming(old);
    // A node on a host that is not the decider's: the pause test below kills this primary's host
    // and needs the decider to live on, seeing the pause while it runs.
    const { decider } = await storeStatus();
    const to = m.dbHosts.find((h) => h !== old && h.addr !== decider)!;
    const r = await cli(['switchover', '--to', nodeName(to)]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /taken by the decider/);
    assert.match(r.out, new RegExp(`promoted\\s+${nodeName(to)}`));
    assert.equal(await primary(), to);
    assert.equal((await storeStatus()).groups[0]!.leader, nodeName(to));
    await waitFor('the former primary back as a standby', async () =>
      (await roles()).get(old) === 'standby' ? true : null,
    );
    await allStreaming(to);
    const bad = await cli(['switchover', '--to', 'nope']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.out, /--to nope: no such node in group 0/);
  });

  test("pause-ha, then the primary's whole host dies: no failover while paused; resume-ha: a standby takes over", async () => {
    const old = await primary();
    await allStreaming(old);
    assert.notEqual((await storeStatus()).decider, old.addr, "the decider is not on the primary's host");
    const paused = await cli(['pause-ha']);
    assert.equal(paused.code, 0, paused.out);
    await old.kill();
    // Its agent's session ends a TTL later; unpaused, a standby would be promoted at once then.
    await waitFor("the dead host's agent gone from the store", async () => {
      const st = await storeStatus();
      return st.agents.length === 2 && st.decider !== null && st.paused ? true : null;
    });
    await new Promise((r) => setTimeout(r, TTL_S * 1000));
    const during = await roles();
    assert.deepEqual(
      m.dbHosts.filter((h) => h !== old).map((h) => during.get(h)),
      ['standby', 'standby'],
      'a standby was promoted while failover was paused',
    );
    const resumed = await cli(['resume-ha']);
    assert.equal(resumed.code, 0, resumed.out);
    const p = await primary();
    assert.notEqual(p, old);
    await m.etcd.member(old).start();
    startAgent(old);
    await waitFor('the former primary back as a standby', async () =>
      (await roles()).get(old) === 'standby' ? true : null,
    );
    await allStreaming(p);
  });

  test('history through the store lists the switchover, the pause, the resume and the failover', async () => {
    const r = await cli(['history', '--json']);
    assert.equal(r.code, 0, r.out);
    const events = (JSON.parse(r.stdout) as { event: string }[]).map((e) => e.event);
    for (const e of ['switchover_started', 'switchover_done', 'ha_paused', 'ha_resumed', 'failover_detected'])
      assert.ok(events.includes(e), `${e} missing from ${events.join(', ')}`);
    assert.ok(
      events.lastIndexOf('ha_resumed') < events.lastIndexOf('failover_detected'),
      'the failover came after the resume',
    );
  });
});

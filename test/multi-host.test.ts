/**
 * Several hosts (issue #18): three network-namespace hosts (netns-hosts.ts), each with an etcd
 * member, a `pgscale agent` and one node of a group in synchronous mode. A writer in the root
 * namespace records every acknowledged insert. The primary's whole host dies: a standby takes
 * over, no acknowledged insert is lost, and the host comes back as a standby. The primary's host
 * is cut off from etcd while clients still reach it: its agent stops it before the session ends,
 * another is promoted, and at no sample are two nodes writable. Skipped, saying why, without
 * root, `ip netns`, iptables or etcd.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { encodeCancelRequest } from '../src/protocol/startup-messages.js';
import { etcdSkipReason } from './etcd-harness.js';
import { binarySets, repoRoot } from './harness.js';
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT, startEtcd } from './netns-etcd-cluster.js';
import type { EtcdCluster } from './netns-etcd-cluster.js';
import { NetHosts, netnsSkipReason } from './netns-hosts.js';
import type { Host } from './netns-hosts.js';

const skip = netnsSkipReason() || etcdSkipReason();
const PORT = 5432;
const TTL_S = 6;
const PROXY_PORT = 6432;

describe('several hosts: an agent per host around a 3-member etcd', { skip, timeout: 600_000 }, () => {
  let net: NetHosts;
  let etcd: EtcdCluster;
  let file: string;
  let password = '';
  let appPassword = '';
  let dbHosts: Host[] = [];
  let proxyHosts: Host[] = [];
  /** Ids are never reused across writers (one table for every test). */
  let nextId = 1;
  const agents = new Map<Host, ChildProcess>();
  const bins = binarySets()[0]!;
  const nodeName = (h: Host) => `n${h.index}`;
  const dataDir = (h: Host) => join(net.dir, `data-${h.index}`);

  const startAgent = (h: Host) => {
    const child = h.spawn(
      process.execPath,
      [join(repoRoot, 'bin/pgscale.js'), 'agent', '-c', file, '--host', h.addr, '--data-dir', dataDir(h)],
      {
        env: { PGSCALE_PG_BIN: bins.dir },
        logFile: join(net.dir, `agent-${h.index}.log`),
      },
    );
    agents.set(h, child);
  };

  const connect = async (h: Host, timeoutMs = 1000): Promise<pg.Client> => {
    const c = new pg.Client({
      host: h.addr,
      port: PORT,
      user: 'postgres',
      password,
      database: 'app',
      connectionTimeoutMillis: timeoutMs,
      statement_timeout: 2000,
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };

  /** What each node says it is right now: 'primary', 'standby', or null (does not answer). */
  const roles = async (): Promise<Map<Host, 'primary' | 'standby' | null>> => {
    const out = new Map<Host, 'primary' | 'standby' | null>();
    await Promise.all(
      dbHosts.map(async (h) => {
        let c: pg.Client | null = null;
        try {
          c = await connect(h, 500);
          const r = await c.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec');
          out.set(h, r.rows[0]!.rec ? 'standby' : 'primary');
        } catch {
          out.set(h, null);
        } finally {
          await c?.end().catch(() => undefined);
        }
      }),
    );
    return out;
  };

  const waitFor = async <T>(what: string, f: () => Promise<T | null>, ms = 120_000): Promise<T> => {
    const until = Date.now() + ms;
    for (;;) {
      const v = await f().catch(() => null);
      if (v !== null) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}; logs in ${net.dir}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const primary = () =>
    waitFor('a primary', async () => {
      const r = await roles();
      const p = [...r].filter(([, v]) => v === 'primary').map(([h]) => h);
      return p.length === 1 ? p[0]! : null;
    });

  /** Every node but `except` answers as a standby streaming from the primary. */
  const allStreaming = (p: Host) =>
    waitFor('every standby streaming', async () => {
      const c = await connect(p);
      try {
        const r = await c.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name ~ '^n[0-9]+$'",
        );
        return r.rows[0]!.n === dbHosts.length - 1 ? true : null;
      } finally {
        await c.end();
      }
    });

  /** The application through a stateless proxy (`pgscale proxy --cluster`) on host `h`. */
  const viaProxy = async (h: Host): Promise<pg.Client> => {
    const c = new pg.Client({
      host: h.addr,
      port: PROXY_PORT,
      user: 'app',
      password: appPassword,
      database: 'app',
      connectionTimeoutMillis: 2000,
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };

  /**
   * Inserts ids one by one through the proxies (the first that answers; the next after an error)
   * and records those acknowledged; `proxyOf` says which proxy acknowledged each.
   */
  const writer = () => {
    const acked: number[] = [];
    const errors: string[] = [];
    const viaHost = new Map<number, Host>();
    let stop = false;
    let turn = 0;
    const done = (async () => {
      let c: pg.Client | null = null;
      let h: Host | null = null;
      while (!stop) {
        try {
          if (!c) {
            h = proxyHosts[turn++ % proxyHosts.length]!;
            c = await viaProxy(h);
          }
          const id = nextId++;
          await c.query('INSERT INTO acked (id) VALUES ($1)', [id]);
          acked.push(id);
          viaHost.set(id, h!);
        } catch (e) {
          errors.push((e as Error).message);
          await c?.end().catch(() => undefined);
          c = null;
          await new Promise((res) => setTimeout(res, 50));
        }
      }
      await c?.end().catch(() => undefined);
    })();
    return {
      acked,
      errors,
      viaHost,
      stop: async () => {
        stop = true;
        await done;
      },
    };
  };

  const startProxy = (h: Host) => {
    const child = h.spawn(
      process.execPath,
      [join(repoRoot, 'bin/pgscale.js'), 'proxy', '-c', file, '--cluster', '--data-dir', dataDir(h)],
      { env: { PGSCALE_PG_BIN: bins.dir }, logFile: join(net.dir, `proxy-${h.index}.log`) },
    );
    agents.set(h, child);
  };

  before(async () => {
    net = await NetHosts.create({ hosts: 5, prefix: 'pgmh' });
    dbHosts = net.hosts.slice(0, 3);
    proxyHosts = net.hosts.slice(3);
    etcd = await startEtcd(net, dbHosts);
    file = join(net.dir, 'pgscale.yaml');
    const nodes = dbHosts
      .map((h) => `      - { name: ${nodeName(h)}, host: ${h.addr}, port: ${PORT} }`)
      .join('\n');
    writeFileSync(
      file,
      `cluster:
  name: multi
  id: multi-${process.pid}
  data_dir: ./data
postgres:
  client_networks: [${net.net}.0/24]
replication:
  networks: [${net.net}.0/24]
  synchronous: 'on'
ha:
  store: etcd
  etcd:
    endpoints: [${etcd.endpoints.join(', ')}]
  ttl: ${TTL_S}
proxy:
  enabled: false
  listen: 0.0.0.0
  port: ${PROXY_PORT}
groups:
  - nodes:
${nodes}
`,
    );
    for (const h of net.hosts) mkdirSync(dataDir(h), { mode: 0o755 });
    // The first host creates the cluster's passwords; the others get a copy, as an operator does.
    const [h1, ...rest] = dbHosts;
    startAgent(h1!);
    const secrets = join(dataDir(h1!), 'secrets.json');
    await waitFor('the first host to create the cluster', () =>
      Promise.resolve(existsSync(secrets) ? true : null),
    );
    password = (JSON.parse(readFileSync(secrets, 'utf8')) as { superuser: string }).superuser;
    appPassword = (JSON.parse(readFileSync(secrets, 'utf8')) as { app: string }).app;
    for (const h of rest) {
      copyFileSync(secrets, join(dataDir(h), 'secrets.json'));
      startAgent(h);
    }
    const p = await primary();
    assert.equal(p, h1, 'the group starts on its first node');
    await allStreaming(p);
    const c = await connect(p);
    await c.query('CREATE TABLE acked (id int PRIMARY KEY)');
    await c.query('GRANT ALL ON acked TO app');
    await c.end();
    // Two stateless proxies on hosts of their own, with a copy of the secrets.
    for (const h of proxyHosts) {
      copyFileSync(secrets, join(dataDir(h), 'secrets.json'));
      startProxy(h);
    }
    for (const h of proxyHosts)
      await waitFor(`the proxy on ${h.addr}`, async () => {
        const pc = await viaProxy(h);
        await pc.query('SELECT 1');
        await pc.end();
        return true;
      });
  });

  after(async () => {
    // The agents stop their nodes; what has not stopped within a minute goes with the hosts.
    for (const a of agents.values()) a.kill('SIGTERM');
    await Promise.race([
      Promise.all(
        [...agents.values()].map((a) =>
          a.exitCode !== null ? Promise.resolve() : new Promise((r) => a.once('exit', r)),
        ),
      ),
      new Promise((r) => setTimeout(r, 60_000)),
    ]);
    if (process.env.PGSCALE_KEEP_LOGS) {
      const { cpSync } = await import('node:fs');
      try {
        cpSync(net.dir, process.env.PGSCALE_KEEP_LOGS, {
          recursive: true,
          filter: (f) => !f.includes('/data-') && !f.includes('etcd'),
        });
      } catch (e) {
        console.log('copy failed', e);
      }
    }
    await net?.destroy();
  });

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
    const c = await connect(p);
    const ids = new Set((await c.query<{ id: number }>('SELECT id FROM acked')).rows.map((r) => r.id));
    await c.end();
    const lost = w.acked.filter((id) => !ids.has(id));
    assert.deepEqual(
      lost,
      [],
      `acknowledged inserts lost (synchronous mode): ${lost.length} of ${w.acked.length}; ${nodeName(p)} holds ${ids.size} rows; RTO ${rto} ms`,
    );
    console.log(`# whole-host kill of the primary: writes again after ${rto} ms (ttl ${TTL_S} s)`);
    // The host comes back: its etcd member, its agent; the former primary rejoins as a standby.
    await etcd.member(old).start();
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
      for (const h of dbHosts) if (h !== old) old.block(h, [ETCD_CLIENT_PORT, ETCD_PEER_PORT]);
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
      const [a] = proxyHosts;
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
    const c = await connect(p);
    const ids = new Set((await c.query<{ id: number }>('SELECT id FROM acked')).rows.map((r) => r.id));
    await c.end();
    assert.deepEqual(
      w.acked.filter((id) => !ids.has(id)),
      [],
      'acknowledged inserts lost',
    );
  });

  test('a cancel request that reaches the other proxy cancels the query (the proxies find each other in etcd)', async () => {
    const [a, b] = proxyHosts as [Host, Host];
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

  test("a standby's host cut off the network: writes go on (synchronous, ANY 1), and it comes back streaming", async () => {
    const p = await primary();
    const standby = dbHosts.find((h) => h !== p)!;
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
    for (const a of dbHosts)
      for (const b of dbHosts) if (a.index < b.index) a.block(b, [ETCD_CLIENT_PORT, ETCD_PEER_PORT]);
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
      for (const h of dbHosts) h.unblock();
    }
    assert.deepEqual(promoted, [], 'a node was writable without etcd quorum');
    const back = await primary();
    await w.stop();
    assert.equal(back, old, 'the same primary comes back (nothing to fail over to: it only stopped)');
    const c = await connect(back);
    const ids = new Set((await c.query<{ id: number }>('SELECT id FROM acked')).rows.map((r) => r.id));
    await c.end();
    assert.deepEqual(
      w.acked.filter((id) => !ids.has(id)),
      [],
      'acknowledged inserts lost',
    );
    await allStreaming(back);
  });

  /**
   * The CLI as an operator runs it from a machine that only reaches etcd: the root namespace,
   * with the config file and no data directory (cluster.data_dir does not exist there).
   */
  const cli = (args: string[]) =>
    new Promise<{ code: number; out: string; stdout: string }>((resolve) => {
      assert.equal(existsSync(join(net.dir, 'data')), false, 'the CLI runs with no data directory');
      execFile(
        process.execPath,
        [join(repoRoot, 'bin/pgscale.js'), ...args, '-c', file],
        { env: { ...process.env, PGSCALE_PG_BIN: bins.dir }, timeout: 240_000 },
        (err, stdout, stderr) =>
          resolve({
            code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
            out: stdout + stderr,
            stdout,
          }),
      );
    });

  interface StoreStatusJson {
    agents: { host: string; pid: number }[];
    decider: string | null;
    paused: boolean;
    probed: true | string;
    groups: { group: number; leader: string | null; epoch: number | null }[];
    nodes: { name: string; role: string | null; state: string; streaming: boolean | null }[];
  }

  const storeStatus = async (extra: string[] = []): Promise<StoreStatusJson> => {
    const r = await cli(['status', '--json', ...extra]);
    // stdout only: stderr carries the config's warnings (TLS is off across hosts here).
    return JSON.parse(r.stdout) as StoreStatusJson;
  };

  test('the CLI from a machine that only reaches etcd: status shows the agents, the decider, the leader and the standbys streaming', async () => {
    const p = await primary();
    await allStreaming(p);
    const s = await waitFor('every agent and node reported', async () => {
      const st = await storeStatus(['--data-dir', dataDir(dbHosts[0]!)]);
      return st.agents.length === 3 && st.nodes.every((n) => n.state === 'running') ? st : null;
    });
    assert.deepEqual(s.agents.map((a) => a.host).sort(), dbHosts.map((h) => h.addr).sort());
    assert.ok(s.decider !== null && dbHosts.some((h) => h.addr === s.decider), `decider ${s.decider}`);
    assert.equal(s.groups[0]!.leader, nodeName(p));
    assert.equal(s.probed, true, 'lag asked of the primary with the secrets of --data-dir');
    assert.deepEqual(
      s.nodes.filter((n) => n.role === 'replica').map((n) => [n.name, n.streaming]),
      dbHosts.filter((h) => h !== p).map((h) => [nodeName(h), true]),
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
    const to = dbHosts.find((h) => h !== old && h.addr !== decider)!;
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
      dbHosts.filter((h) => h !== old).map((h) => during.get(h)),
      ['standby', 'standby'],
      'a standby was promoted while failover was paused',
    );
    const resumed = await cli(['resume-ha']);
    assert.equal(resumed.code, 0, resumed.out);
    const p = await primary();
    assert.notEqual(p, old);
    await etcd.member(old).start();
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

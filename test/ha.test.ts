/**
 * High availability under faults, with real processes: a write load through the proxy records
 * every acknowledged commit by id, a sampler counts writable nodes every 100 ms, and after each
 * fault the promises are checked — at most one writable node at every sample, no acknowledged
 * commit lost (synchronous mode), errors only for transactions that were running on the failed
 * primary, the cluster healthy again with the old primary back as a standby. The time without
 * writes is printed (timing goals live in bench/failover.ts, not in asserts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import pg from 'pg';
import { runningPid } from '../src/cluster/instance.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { showNodes } from '../src/demo/proxy-nodes.js';
import { binarySets, cli, makeCluster, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { EtcdProcess, etcdSkipReason } from './etcd-harness.js';
import { WritableSampler, WriteLoad, stopAllLoads } from './ha-load.js';
import type { LoadResult } from './ha-load.js';

const bins = binarySets()[0]!;

interface HaStatus {
  groups: { leader: string | null; epoch: number }[];
}

async function api<T>(tc: TestCluster, path: string): Promise<T> {
  const r = await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}${path}`);
  return (await r.json()) as T;
}

const leaderOf = async (tc: TestCluster) => {
  const s = (await api<HaStatus>(tc, '/ha')).groups[0]!;
  return { leader: s.leader, epoch: s.epoch };
};

async function events(tc: TestCluster): Promise<{ event: string; node?: string; detail?: string }[]> {
  return (await api<{ events: { event: string; node?: string; detail?: string }[] }>(tc, '/ha/history'))
    .events;
}

async function metrics(tc: TestCluster): Promise<string> {
  return (await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}/metrics`)).text();
}

/** The value of one series (name with its labels, as exposed), NaN when absent. */
function value(text: string, seriesName: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${seriesName} `));
  return line ? Number(line.slice(seriesName.length + 1)) : NaN;
}

/** Names and labels of the per-node and HA series: what a switchover must not change. */
function nodeSeries(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => /^pgscale_(node_|replica|replication|ha_leader|ha_epoch)/.test(l))
    .map((l) => l.slice(0, l.lastIndexOf(' ')))
    .sort();
}

function pidOf(tc: TestCluster, node: string): number {
  const pid = runningPid(tc.cluster.paths(node).pgdata);
  assert.ok(pid, `${node} runs`);
  return pid;
}

/** The postmaster and every process it forked. */
function tree(pid: number): number[] {
  const out = [pid];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

async function streamingReplica(tc: TestCluster, node: string): Promise<boolean> {
  const st = await tc.cluster.status();
  const s = st.find((x) => x.name === node);
  return s?.role === 'replica' && s.state === 'running' && s.streaming;
}

/** Ids present on the group's primary now. */
async function storedIds(tc: TestCluster, leader: string): Promise<Set<number>> {
  const n = tc.cluster.nodes().find((x) => x.name === leader)!;
  const c = new pg.Client({ ...tc.cluster.target(n, tc.cluster.config.app.database) });
  await c.connect();
  try {
    const r = await c.query<{ id: number }>('SELECT id FROM acks');
    return new Set(r.rows.map((x) => x.id));
  } finally {
    await c.end();
  }
}

function iptablesSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root for iptables';
  return spawnSync('iptables', ['-L', '-n'], { stdio: 'ignore' }).status === 0
    ? false
    : 'iptables is not available (Debian package iptables)';
}

function iptables(op: '-A' | '-D', rule: string[]): void {
  const r = spawnSync('iptables', [op, ...rule], { encoding: 'utf8' });
  if (r.status !== 0 && op === '-A') throw new Error(`iptables ${op} ${rule.join(' ')}: ${r.stderr}`);
}

function lost(r: LoadResult, stored: Set<number>): number[] {
  return [...r.acked].filter((id) => !stored.has(id));
}

function report(what: string, r: LoadResult, lostIds: number[]): void {
  console.log(
    `# ${what}: ${r.acked.size} acknowledged of ${r.attempts}, errors ${JSON.stringify(Object.fromEntries(r.errors))}, ` +
      `lost ${lostIds.length}, longest time without a write ${Math.round(r.longestGapMs)} ms`,
  );
}

async function setUp(
  synchronous: boolean,
  etcd: string | null = null,
): Promise<{ tc: TestCluster; url: string; sampler: () => WritableSampler }> {
  const tc = await makeCluster(bins, {
    replicas: 2,
    extra: (t) => {
      let y = t
        .replace('unreachable_timeout: 3', 'unreachable_timeout: 2')
        .replace('synchronous: off', `synchronous: ${synchronous ? 'on' : 'off'}`);
      if (etcd) {
        y = y
          .replace('store: embedded', `store: etcd\n  etcd:\n    endpoints: [${etcd}]`)
          .replace('ttl: 10', 'ttl: 4');
      }
      return y;
    },
  });
  let url: string;
  try {
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    url = (await cli(['url', '-c', tc.file], tc.env)).stdout.trim();
    await WriteLoad.prepare(url);
  } catch (e) {
    await tearDown(tc);
    throw e;
  }
  const sampler = () =>
    new WritableSampler(tc.cluster.nodes().map((n) => ({ name: n.name, target: tc.cluster.target(n) })));
  return { tc, url, sampler };
}

/**
 * After a suite, whatever failed in it: the loads and samplers a failed test left running are
 * stopped (their clients would keep this process alive for ever), then the controller and the
 * nodes, then the directory goes.
 */
async function tearDown(tc: TestCluster | undefined): Promise<void> {
  await stopAllLoads();
  if (!tc) return;
  await cli(['down', '-c', tc.file], tc.env).catch(() => undefined);
  await tc.cleanup();
}

/** kill -9 of the primary's postmaster under load; returns the load's result and the new leader. */
async function killPrimaryUnderLoad(
  tc: TestCluster,
  url: string,
  sampler: WritableSampler,
): Promise<{ r: LoadResult; old: string; leader: string; lostIds: number[] }> {
  const before = await leaderOf(tc);
  const old = before.leader!;
  const load = new WriteLoad(url, 4);
  load.start();
  sampler.start();
  await until('writes before the fault', () => Promise.resolve(load.count > 100), 30_000);
  process.kill(pidOf(tc, old), 'SIGKILL');
  const after = await until(
    'a new leader',
    async () => {
      const l = await leaderOf(tc);
      return l.leader !== old && l.leader !== null ? l : null;
    },
    30_000,
  );
  const mark = load.count;
  await until('writes on the new primary', () => Promise.resolve(load.count > mark + 100), 30_000);
  const r = await load.stop();
  await sampler.stop();
  assert.ok(after.epoch > before.epoch, 'the epoch increased');
  const lostIds = lost(r, await storedIds(tc, after.leader!));
  return { r, old, leader: after.leader!, lostIds };
}

/** `pgscale switchover` under a write load; returns the load's result, the old and new leader. */
async function switchoverUnderLoad(
  tc: TestCluster,
  url: string,
  what: string,
  explicitTx = false,
): Promise<{ r: LoadResult; old: string; leader: string; lostIds: number[] }> {
  const { leader: old } = await leaderOf(tc);
  const load = new WriteLoad(url, 4, explicitTx);
  load.start();
  await until('writes before', () => Promise.resolve(load.count > 50), 30_000);
  const sw = await cli(['switchover', '-c', tc.file], tc.env);
  assert.equal(sw.code, 0, sw.stdout + sw.stderr);
  const mark = load.count;
  await until('writes after', () => Promise.resolve(load.count > mark + 50), 30_000);
  const r = await load.stop();
  const { leader } = await leaderOf(tc);
  assert.notEqual(leader, old);
  const lostIds = lost(r, await storedIds(tc, leader!));
  report(what, r, lostIds);
  return { r, old: old!, leader: leader!, lostIds };
}

/** Errors a client may see: only for the statement that was running on the killed primary. */
function assertOnlyInFlightErrors(r: LoadResult, clients: number): void {
  const total = [...r.errors.values()].reduce((a, b) => a + b, 0);
  assert.ok(
    total <= clients,
    `at most one error per client (the statement in flight): ${JSON.stringify([...r.errors])}`,
  );
  for (const code of r.errors.keys()) {
    assert.ok(
      ['57P01', '08006', '08003', 'ECONNRESET'].includes(code) ||
        /Connection terminated|connection erro/.test(code),
      `unexpected error kind ${code}`,
    );
  }
}

describe('high availability, asynchronous replication (embedded store)', () => {
  let tc: TestCluster;
  let url: string;
  let sampler: () => WritableSampler;
  before(async () => {
    ({ tc, url, sampler } = await setUp(false));
  });
  after(() => tearDown(tc));

  test('bad requests to HA change nothing: no token, a wrong token, bad JSON, an unknown node, a usage error', async () => {
    const before = await leaderOf(tc);
    const base = `http://127.0.0.1:${tc.cluster.config.http.port}`;
    const token = readFileSync(`${tc.cluster.dataDir}/api-token`, 'utf8').trim();
    const post = (path: string, body: string, auth?: string) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        body,
        headers: auth ? { authorization: `Bearer ${auth}` } : {},
      });
    assert.equal((await post('/ha/switchover', '{}')).status, 401);
    assert.equal((await post('/ha/failover', '{}', 'x'.repeat(token.length))).status, 401);
    assert.equal((await post('/ha/pause', '{}', token.slice(1))).status, 401);
    const notJson = await post('/ha/switchover', '{nope', token);
    assert.equal(notJson.status, 400);
    assert.match(((await notJson.json()) as { error: string }).error, /not JSON/);
    const unknown = await post('/ha/switchover', JSON.stringify({ to: 'nosuch' }), token);
    assert.equal(unknown.status, 400);
    assert.match(((await unknown.json()) as { error: string }).error, /nosuch is not a node of group 0/);
    assert.equal((await post('/ha/switchover', JSON.stringify({ group: 'x' }), token)).status, 400);
    // A non-ASCII token of the token's length (its UTF-8 bytes read as Latin-1): 401, not 500.
    assert.equal((await post('/ha/pause', '{}', 'é'.repeat(token.length))).status, 401);
    // Malformed bodies: 400 naming the field, and no switchover or failover runs.
    const historyBefore = (await events(tc)).length;
    for (const [path, body, field] of [
      ['/ha/failover', { group: '0x0' }, /^group: /],
      ['/ha/failover', { to: 5 }, /^to: /],
      ['/ha/switchover', { to: ['s0n1'] }, /^to: /],
      ['/ha/failover', { group: 0.5 }, /^group: /],
      ['/ha/failover', { group: 7 }, /^group: there is no group 7/],
      ['/ha/switchover', { group: 0, node: 's0n1' }, /^unknown key "node"/],
      ['/ha/failover', [0], /^the request body: /],
      ['/ha/pause', { paused: true }, /^unknown key "paused"/],
    ] as const) {
      const r = await post(path, JSON.stringify(body), token);
      const text = await r.text();
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${text}`);
      assert.match((JSON.parse(text) as { error: string }).error, field, `${path} ${JSON.stringify(body)}`);
    }
    assert.deepEqual(await leaderOf(tc), before, 'no failover or switchover ran');
    assert.equal((await events(tc)).length, historyBefore, 'nothing recorded');
    assert.equal((await post('/ha/nothing', '{}', token)).status, 404);
    assert.equal((await post('/ha/switchover', 'x'.repeat(100_000), token)).status, 413);
    const r = await cli(['switchover', '-c', tc.file, '--to', 'nosuch'], tc.env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--to nosuch: no such node in group 0/);
    assert.deepEqual(await leaderOf(tc), before, 'nothing changed');
    assert.equal((await api<{ paused: boolean }>(tc, '/ha')).paused, false);
  });

  test('kill -9 of the primary during writes: a standby takes over, the old primary rejoins with pg_rewind', async () => {
    const s = sampler();
    const { r, old, leader, lostIds } = await killPrimaryUnderLoad(tc, url, s);
    report('async kill -9', r, lostIds);
    assert.ok(s.samples > 10);
    assert.equal(s.maxWritable, 1, 'never two writable nodes');
    assertOnlyInFlightErrors(r, 4);
    assert.notEqual(leader, old);
    await until(`${old} back as a streaming standby`, () => streamingReplica(tc, old), 90_000);
    // 'rejoined' is recorded once the start has returned (pg_ctl polls every 100 ms), which may be
    // just after the node streams.
    const ev = await until('the rejoin in the history', async () => {
      const list = (await events(tc)).map((e) => e.event);
      return list.includes('rejoined') ? list : null;
    });
    for (const e of ['failover_detected', 'fenced', 'promoted', 'proxy_switched', 'rejoined']) {
      assert.ok(ev.includes(e), `history has ${e}: ${ev.join(', ')}`);
    }
    const m = await metrics(tc);
    assert.match(m, /^# TYPE pgscale_ha_failovers_total counter$/m);
    assert.ok(value(m, 'pgscale_ha_failovers_total{group="0"}') >= 1);
    const at = value(m, 'pgscale_ha_last_failover_timestamp_seconds{group="0"}');
    assert.ok(Math.abs(at - Date.now() / 1000) < 600, `last failover at ${at}`);
    assert.equal(value(m, `pgscale_ha_leader{group="0",node="${leader}"}`), 1);
  });

  test('switchover under load: no client error, no lost commit, the old primary follows', async () => {
    const before = await metrics(tc);
    const { r, old, lostIds } = await switchoverUnderLoad(tc, url, 'switchover');
    assert.deepEqual(Object.fromEntries(r.errors), {}, 'clients between transactions see no error');
    assert.deepEqual(lostIds, []);
    await until(`${old} follows the new primary`, () => streamingReplica(tc, old), 60_000);
    // Metrics: the switchover counted, the same series as before (the role is a value, not a
    // label), and the planned stop of the old primary is no node exit.
    const after = await metrics(tc);
    assert.equal(
      value(after, `pgscale_ha_switchovers_total{group="0"}`),
      value(before, `pgscale_ha_switchovers_total{group="0"}`) + 1,
    );
    assert.deepEqual(nodeSeries(after), nodeSeries(before));
    assert.equal(value(after, `pgscale_ha_leader{group="0",node="${old}"}`), 0);
    assert.equal(value(after, `pgscale_node_is_replica{node="${old}",group="0"}`), 1);
    const exits = (t: string) =>
      t
        .split('\n')
        .filter((l) => l.startsWith('pgscale_node_exits_total'))
        .join();
    assert.equal(exits(after), exits(before), 'the switchover is no node exit');
    // The supervisor saw the old primary's postmaster go (or be replaced) and knows pgscale did it.
    const services = (
      await api<{ services: { name: string; status: { events: { node: string; event: string }[] } }[] }>(
        tc,
        '/services',
      )
    ).services;
    const sup = services.find((x) => x.name === 'supervisor')!.status.events.filter((e) => e.node === old);
    assert.ok(
      sup.some((e) => e.event === 'stopped') && !sup.some((e) => e.event === 'exited'),
      `supervisor events of ${old}: ${JSON.stringify(sup)}`,
    );
    const log = readFileSync(`${tc.cluster.dataDir}/logs/controller.log`, 'utf8');
    assert.doesNotMatch(log, /no automatic recovery yet/);
  });

  test('SIGSTOP of the primary beyond unreachable_timeout, then SIGCONT: it never accepts a write again', async () => {
    const { leader: old } = await leaderOf(tc);
    const oldNode = tc.cluster.nodes().find((n) => n.name === old)!;
    const s = sampler();
    s.start();
    const pids = tree(pidOf(tc, old!));
    for (const p of pids) process.kill(p, 'SIGSTOP');
    try {
      await until(
        'a new leader',
        async () => {
          const l = await leaderOf(tc);
          return l.leader !== old ? l : null;
        },
        30_000,
      );
    } finally {
      for (const p of pids) {
        try {
          process.kill(p, 'SIGCONT');
        } catch {
          // fenced (killed) already
        }
      }
    }
    // The old primary refuses writes from now on: dead, then back only as a standby.
    for (let i = 0; i < 20; i++) {
      const c = new pg.Client({ ...tc.cluster.target(oldNode), connectionTimeoutMillis: 1000 });
      c.on('error', () => undefined);
      const wrote = await c
        .connect()
        .then(() => c.query('CREATE TABLE IF NOT EXISTS sigstop_probe (x int)'))
        .then(
          () => true,
          () => false,
        );
      await c.end().catch(() => undefined);
      assert.equal(wrote, false, 'the old primary accepted a write after SIGCONT');
      await new Promise((r) => setTimeout(r, 100));
    }
    await until(`${old!} back as a streaming standby`, () => streamingReplica(tc, old!), 90_000);
    await s.stop();
    assert.equal(s.maxWritable, 1, 'never two writable nodes');
  });

  test(
    'network cut of the primary (iptables drops every packet to and from its port), then healed',
    { skip: iptablesSkip() },
    async () => {
      const { leader: old } = await leaderOf(tc);
      const port = String(tc.cluster.nodes().find((n) => n.name === old)!.port);
      const rules = [
        ['INPUT', '-i', 'lo', '-p', 'tcp', '--dport', port, '-j', 'DROP'],
        ['INPUT', '-i', 'lo', '-p', 'tcp', '--sport', port, '-j', 'DROP'],
      ];
      const s = sampler();
      const load = new WriteLoad(url, 4);
      load.start();
      await until('writes before the cut', () => Promise.resolve(load.count > 100), 30_000);
      s.start();
      for (const r of rules) iptables('-A', r);
      let leader: string | null = null;
      try {
        ({ leader } = await until(
          'a new leader',
          async () => {
            const l = await leaderOf(tc);
            return l.leader !== old ? l : null;
          },
          30_000,
        ));
      } finally {
        for (const r of rules) iptables('-D', r);
      }
      const mark = load.count;
      await until('writes on the new primary', () => Promise.resolve(load.count > mark + 100), 60_000);
      const r = await load.stop();
      await s.stop();
      report('network cut', r, lost(r, await storedIds(tc, leader!)));
      assert.equal(s.maxWritable, 1, 'never two writable nodes');
      const total = [...r.errors.values()].reduce((a, b) => a + b, 0);
      assert.ok(total <= 4, `at most one error per client: ${JSON.stringify([...r.errors])}`);
      await until(`${old!} back as a streaming standby`, () => streamingReplica(tc, old!), 90_000);
    },
  );

  test('a killed standby is restarted and no failover happens', async () => {
    const before = await leaderOf(tc);
    const standby = tc.cluster.nodes().find((n) => n.name !== before.leader)!.name;
    process.kill(pidOf(tc, standby), 'SIGKILL');
    await until(`${standby} restarted and streaming`, () => streamingReplica(tc, standby), 60_000);
    const now = await leaderOf(tc);
    assert.deepEqual(now, before);
    // The event is recorded once the start has returned, which may be just after it streams.
    await until('the restart in the history', async () =>
      (await events(tc)).some((e) => e.event === 'standby_restarted' && e.node === standby),
    );
  });

  test('a killed standby whose processes outlive its postmaster is restarted, not re-cloned, and the restart is in history', async () => {
    // Under load the children of a killed postmaster can take seconds to notice its death, and
    // hold its shared memory meanwhile: a SIGSTOPped checkpointer stands for such a slow child.
    const before = await leaderOf(tc);
    const standby = tc.cluster.nodes().find((n) => n.name !== before.leader)!.name;
    const pm = pidOf(tc, standby);
    const checkpointer = tree(pm).find((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('checkpointer');
      } catch {
        return false;
      }
    });
    assert.ok(checkpointer, 'found the checkpointer');
    const seen = (await events(tc)).length;
    process.kill(checkpointer, 'SIGSTOP');
    process.kill(pm, 'SIGKILL');
    // Longer than the 3 s after which a stopped standby is restarted.
    const cont = setTimeout(() => {
      try {
        process.kill(checkpointer, 'SIGCONT');
      } catch {
        // gone already
      }
    }, 6000);
    try {
      await until(`${standby} restarted and streaming`, () => streamingReplica(tc, standby), 60_000);
      const restarted = await until(
        'the restart in the history',
        async () => {
          const ev = (await events(tc)).slice(seen);
          return ev.some((e) => e.event === 'standby_restarted' && e.node === standby) ? ev : null;
        },
        30_000,
      );
      const kinds = restarted.map((e) => e.event);
      assert.ok(!kinds.includes('start_standby_failed'), `no failed start: ${kinds.join(', ')}`);
      assert.ok(!kinds.includes('rejoined'), `not rewound or re-cloned: ${kinds.join(', ')}`);
    } finally {
      clearTimeout(cont);
      try {
        process.kill(checkpointer, 'SIGCONT');
      } catch {
        // gone
      }
    }
    assert.deepEqual(await leaderOf(tc), before, 'no failover');
  });

  test('kill -9 of the controller while the primary lives: no failover, the next up changes nothing', async () => {
    const before = await leaderOf(tc);
    const primaryPid = pidOf(tc, before.leader!);
    const failoversBefore = (await events(tc)).filter((e) => e.event === 'failover_detected').length;
    const info = JSON.parse(readFileSync(`${tc.cluster.dataDir}/controller.json`, 'utf8')) as { pid: number };
    process.kill(info.pid, 'SIGKILL');
    await until('the controller gone', () => {
      try {
        process.kill(info.pid, 0);
        return Promise.resolve(readFileSync(`/proc/${info.pid}/stat`, 'utf8').includes(') Z'));
      } catch {
        return Promise.resolve(true);
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(runningPid(tc.cluster.paths(before.leader!).pgdata), primaryPid, 'the primary still runs');
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    const now = await leaderOf(tc);
    assert.deepEqual(now, before, 'same leader, same epoch');
    assert.equal(runningPid(tc.cluster.paths(before.leader!).pgdata), primaryPid);
    const failoversAfter = (await events(tc)).filter((e) => e.event === 'failover_detected').length;
    assert.equal(failoversAfter, failoversBefore);
  });
});

describe('high availability, synchronous replication (embedded store)', () => {
  let tc: TestCluster;
  let url: string;
  let sampler: () => WritableSampler;
  before(async () => {
    ({ tc, url, sampler } = await setUp(true));
  });
  after(() => tearDown(tc));

  test('kill -9 of the primary during writes loses no acknowledged commit', async () => {
    const s = sampler();
    const { r, old, lostIds } = await killPrimaryUnderLoad(tc, url, s);
    report('sync kill -9', r, lostIds);
    assert.deepEqual(lostIds, [], 'no acknowledged commit lost');
    assert.equal(s.maxWritable, 1);
    assertOnlyInFlightErrors(r, 4);
    await until(`${old} back as a streaming standby`, () => streamingReplica(tc, old), 90_000);
  });

  test('the proxy never cancels a COMMIT waiting for a synchronous standby', async () => {
    const { leader } = await leaderOf(tc);
    const standbys = tc.cluster.nodes().filter((n) => n.name !== leader);
    for (const n of standbys) await until(`${n.name} streaming`, () => streamingReplica(tc, n.name), 90_000);
    assert.equal((await cli(['pause-ha', '-c', tc.file], tc.env)).code, 0);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      for (const n of standbys) await tc.cluster.stopNode(n, 'fast');
      await c.query('BEGIN');
      await c.query('INSERT INTO acks (id) VALUES ($1)', [2_000_000_000]);
      let settled = false;
      const commit = c.query('COMMIT').finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(settled, false, 'COMMIT waits for a synchronous standby');
      // The client's cancel key is the proxy's; a cancel now would end the wait with a WARNING and
      // report success for a commit no standby has.
      const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
      const buf = Buffer.alloc(16);
      buf.writeInt32BE(16, 0);
      buf.writeInt32BE(80877102, 4);
      buf.writeInt32BE(processID, 8);
      buf.writeInt32BE(secretKey, 12);
      const sock = connect({ host: '127.0.0.1', port: tc.cluster.config.proxy.port });
      await new Promise<void>((r) => sock.once('connect', () => r()));
      sock.end(buf);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(settled, false, 'the cancel did not end the COMMIT');
      // A standby back: the commit is replicated and acknowledged.
      await tc.cluster.startStandby(
        standbys[0]!,
        tc.cluster.nodes().find((n) => n.name === leader)!,
      );
      await commit;
    } finally {
      await c.end().catch(() => undefined);
      assert.equal((await cli(['resume-ha', '-c', tc.file], tc.env)).code, 0);
    }
    for (const n of standbys) await until(`${n.name} streaming`, () => streamingReplica(tc, n.name), 60_000);
  });

  test('kill -9 of one synchronous standby under load: writes go on through the other, no failover; it leaves the read set and returns', async () => {
    const before = await leaderOf(tc);
    const standbys = tc.cluster.nodes().filter((n) => n.name !== before.leader);
    for (const n of standbys) await until(`${n.name} streaming`, () => streamingReplica(tc, n.name), 90_000);
    const victim = standbys[0]!;
    const admin = {
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'postgres',
      password: readSecrets(tc.cluster.dataDir)!.superuser,
    };
    const inReadSet = async () =>
      (await showNodes(admin)).find((x) => x.addr.endsWith(`:${victim.port}`))?.inReadSet ?? null;
    const load = new WriteLoad(url, 4);
    load.start();
    await until('writes before the fault', () => Promise.resolve(load.count > 100), 30_000);
    await until(`${victim.name} in the read set`, async () => (await inReadSet()) === true, 30_000);
    process.kill(pidOf(tc, victim.name), 'SIGKILL');
    // Out of the read set before the controller restarts it (start_standby waits 3 s). Out means
    // either of two things, whichever comes first: the proxy's own monitor (every 20 ms) marks it
    // not usable, or the controller (every loop_wait, 250 ms) publishes a topology without it and
    // the row goes. The first state may last less than one poll of SHOW NODES under load.
    await until(`${victim.name} out of the read set`, async () => (await inReadSet()) !== true, 10_000);
    const mark = load.count;
    await until('writes after the fault', () => Promise.resolve(load.count > mark + 100), 30_000);
    await until(`${victim.name} restarted and streaming`, () => streamingReplica(tc, victim.name), 60_000);
    await until(`${victim.name} back in the read set`, async () => (await inReadSet()) === true, 30_000);
    const r = await load.stop();
    const lostIds = lost(r, await storedIds(tc, before.leader!));
    report('sync standby kill -9', r, lostIds);
    assert.deepEqual(lostIds, []);
    assert.equal(r.errors.size, 0, `no client error: ${JSON.stringify([...r.errors])}`);
    assert.deepEqual(await leaderOf(tc), before, 'no failover: same leader, same epoch');
  });

  test('switchover under load in synchronous mode: nothing lost, no error', async () => {
    const { r, lostIds } = await switchoverUnderLoad(
      tc,
      url,
      'sync switchover (explicit transactions)',
      true,
    );
    assert.deepEqual(lostIds, []);
    // Explicit transactions open on the old primary when it stops may fail; none other may.
    const total = [...r.errors.values()].reduce((a, b) => a + b, 0);
    assert.ok(total <= 4, JSON.stringify([...r.errors]));
  });
});

describe('high availability with etcd as the store', { skip: etcdSkipReason() }, () => {
  let etcd: EtcdProcess;
  let tc: TestCluster;
  let url: string;
  let sampler: () => WritableSampler;
  before(async () => {
    etcd = await EtcdProcess.start();
    ({ tc, url, sampler } = await setUp(false, etcd.url));
  });
  after(async () => {
    try {
      await tearDown(tc);
    } finally {
      await (etcd as EtcdProcess | undefined)?.cleanup();
    }
  });

  test('kill -9 of the primary during writes: failover through etcd, then rejoin', async () => {
    const s = sampler();
    const { r, old, lostIds } = await killPrimaryUnderLoad(tc, url, s);
    report('etcd kill -9', r, lostIds);
    assert.equal(s.maxWritable, 1);
    assertOnlyInFlightErrors(r, 4);
    await until(`${old} back as a streaming standby`, () => streamingReplica(tc, old), 90_000);
  });

  test('switchover under load through etcd: no client error, nothing lost', async () => {
    const { r, lostIds } = await switchoverUnderLoad(tc, url, 'etcd switchover');
    assert.deepEqual(Object.fromEntries(r.errors), {});
    assert.deepEqual(lostIds, []);
  });

  test('etcd unavailable: nothing is promoted, the primary stops taking writes within the TTL, and all recovers', async () => {
    const { leader: old } = await leaderOf(tc);
    const s = sampler();
    s.start();
    await etcd.stop();
    try {
      // ttl 4 s: the primary is stopped once the lease cannot have been renewed for that long.
      await until(
        'the primary stopped for want of a lease',
        () => Promise.resolve(runningPid(tc.cluster.paths(old!).pgdata) === null),
        30_000,
      );
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(s.maxWritable, 1, 'no standby was promoted without the store');
      const ev = readFileSync(`${tc.cluster.dataDir}/logs/controller.log`, 'utf8');
      assert.match(ev, /no lease for 4 s \(state store unreachable\); stopping primary/);
    } finally {
      await etcd.start();
    }
    await until(
      'a healthy leader again',
      async () => {
        const l = await leaderOf(tc);
        return l.leader !== null && runningPid(tc.cluster.paths(l.leader).pgdata) !== null ? l : null;
      },
      60_000,
    );
    const load = new WriteLoad(url, 2);
    load.start();
    try {
      await until('writes work again', () => Promise.resolve(load.count > 20), 60_000);
    } catch (e) {
      const r = await load.stop();
      const log = readFileSync(`${tc.cluster.dataDir}/logs/controller.log`, 'utf8').trim().split('\n');
      throw new Error(
        `${(e as Error).message}; load errors ${JSON.stringify([...r.errors])}; controller log:\n${log.slice(-40).join('\n')}`,
      );
    }
    await load.stop();
    await s.stop();
    assert.equal(s.maxWritable, 1);
    // The stop happened while the store was away: it is recorded once the store answers again.
    const stopped = await until('the stop in the history', async () =>
      (await events(tc)).find((e) => e.event === 'primary_stopped' && e.node === old),
    );
    assert.match(stopped.detail ?? '', /no lease for 4 s \(state store unreachable\); stopped/);
  });
});

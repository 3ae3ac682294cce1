/**
 * The dashboard's endpoints on a real HTTP server, with the node status and the services'
 * answers made up (no PostgreSQL needed for what is tested here: the page, the state, the
 * stream's updates and that a page going away leaves no listener behind).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { Script } from 'node:vm';
import type { Cluster } from '../cluster/cluster.js';
import type { NodeStatus } from '../cluster/status.js';
import { createLogger } from '../obs/logger.js';
import { createRegistry } from '../obs/metrics.js';
import { HttpApi } from './http-api.js';
import type { DashboardAnswer } from './dashboard-feed.js';
import { DASHBOARD_SCRIPT } from './dashboard-script.js';

const node = (name: string, group: number, role: 'primary' | 'replica'): NodeStatus => ({
  name,
  group,
  role,
  state: 'running',
  host: '127.0.0.1',
  port: 5432 + group * 10,
  pid: 1,
  timeline: 1,
  lsn: '0/3000060',
  receiveLsn: null,
  lagBytes: role === 'replica' ? 0 : null,
  lagSeconds: role === 'replica' ? 0 : null,
  streaming: role === 'replica',
  upstream: null,
  slot: null,
  syncState: null,
  archive: null,
  error: null,
  pendingRestart: [],
});

let leader = 's0n0';
const nodes = () => [
  node('s0n0', 0, leader === 's0n0' ? 'primary' : 'replica'),
  node('s0n1', 0, leader === 's0n1' ? 'primary' : 'replica'),
  node('s1n0', 1, 'primary'),
];
const cluster = { config: { cluster: { name: 'dash' } }, status: () => Promise.resolve(nodes()) };
const api = new HttpApi({
  host: '127.0.0.1',
  port: 0,
  cluster: cluster as unknown as Cluster,
  registry: createRegistry(),
  logger: createLogger({ level: 'silent' }),
  state: () => 'running',
  controller: () => null,
  services: () => [
    {
      name: 'proxy',
      state: 'running',
      reloads: true,
      status: { running: true, listening: true, listen: '127.0.0.1:6432', password: 'hunter2', pools: [] },
    },
  ],
  actions: (method, path) => {
    if (path === '/ha')
      return Promise.resolve({
        status: 200,
        body: { paused: false, groups: [{ group: 0, leader, epoch: leader === 's0n0' ? 1 : 2 }] },
      });
    if (path === '/sharding/moves') return Promise.reject(new Error('the state store does not answer'));
    if (path === '/ha/history')
      return Promise.resolve({
        status: 200,
        body: { events: [{ at: '2026-12-07T10:00:00Z', group: 0, event: 'promoted', node: 's0n0' }] },
      });
    return Promise.resolve(null);
  },
  token: () => 'token',
});
let base = '';

before(async () => {
  base = `http://127.0.0.1:${(await api.start()).port}`;
});
after(() => api.stop());

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('GET /dashboard: one self-contained read-only page, its CSP allowing nothing from elsewhere', async () => {
  const r = await fetch(`${base}/dashboard`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'none'.*connect-src 'self'/);
  const html = await r.text();
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'no resource from another origin');
  assert.doesNotMatch(html, /<button|<form/, 'no control that changes anything');
  assert.match(html, /Read-only/);
  // The script is a string: compile it here, so a syntax error fails this test, not the browser.
  assert.doesNotThrow(() => new Script(DASHBOARD_SCRIPT));
  const root = await fetch(`${base}/`, { redirect: 'manual' });
  assert.equal(root.status, 302);
  assert.equal(root.headers.get('location'), '/dashboard');
  assert.equal((await fetch(`${base}/dashboard`, { method: 'POST' })).status, 405);
});

test('GET /dashboard/state: every group and node, the leader from HA, no secret', async () => {
  const r = await fetch(`${base}/dashboard/state`);
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.doesNotMatch(text, /hunter2/);
  const s = JSON.parse(text) as DashboardAnswer;
  assert.equal(s.cluster, 'dash');
  assert.equal(s.read_only, true);
  assert.deepEqual(
    s.groups.map((g) => [g.group, g.leader, g.nodes.map((n) => `${n.name}:${n.role}`)]),
    [
      [0, 's0n0', ['s0n0:primary', 's0n1:replica']],
      [1, 's1n0', ['s1n0:primary']],
    ],
  );
  assert.equal(s.pools?.listen, '127.0.0.1:6432');
  assert.deepEqual(
    s.history.map((e) => e.event),
    ['promoted'],
  );
  assert.equal(s.shards, null, 'no sharding service: no map');
  assert.equal(s.moves, null, 'a source that fails is left out, the rest is shown');
  assert.ok(Array.isArray(s.samples));
});

/** Reads SSE events from a response until `stop` says enough. */
function readEvents(res: IncomingMessage, onEvent: (name: string, data: string) => void): void {
  let buf = '';
  res.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const name = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (name && data) onEvent(name, data);
    }
  });
}

test('GET /dashboard/events: the state first, a change pushed, the listener gone with its page', async () => {
  const states: DashboardAnswer[] = [];
  const req = get(`${base}/dashboard/events`);
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    req.on('response', resolve);
    req.on('error', reject);
  });
  assert.equal(res.statusCode, 200);
  assert.match(res.headers['content-type'] ?? '', /^text\/event-stream/);
  readEvents(res, (name, data) => {
    if (name === 'state') states.push(JSON.parse(data) as DashboardAnswer);
  });
  await until('the first state', () => states.length > 0);
  assert.ok(states[0]!.samples, 'the first state carries the samples');
  assert.equal(api.dashboard.listenerCount, 1);
  leader = 's0n1';
  await until('the switchover pushed', () => states.some((s) => s.groups[0]?.leader === 's0n1'));
  const last = states.at(-1)!;
  assert.equal(last.groups[0]!.nodes.find((n) => n.name === 's0n1')?.role, 'primary');
  req.destroy();
  await until('the listener dropped', () => api.dashboard.listenerCount === 0);
});

test('many pages that come and go leave no listener; stop() ends the streams', async () => {
  const reqs = Array.from({ length: 20 }, () => get(`${base}/dashboard/events`));
  const responses = await Promise.all(
    reqs.map((r) => new Promise<IncomingMessage>((resolve) => r.on('response', resolve))),
  );
  await until('20 listeners', () => api.dashboard.listenerCount === 20);
  for (const r of reqs.slice(0, 15)) r.destroy();
  await until('5 listeners', () => api.dashboard.listenerCount === 5);
  const ended = responses.slice(15).map((r) => new Promise<void>((resolve) => r.on('close', resolve)));
  for (const r of responses.slice(15)) r.resume();
  await api.stop();
  await Promise.all(ended);
  assert.equal(api.dashboard.listenerCount, 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Request } from './decide.js';
import type { HaControl, RequestOutcome } from './ha-routes.js';
import { handleHaRoute, parseLimit } from './ha-routes.js';

/** A control that records what the routes asked of it. */
function control(): HaControl & { calls: string[] } {
  const calls: string[] = [];
  let paused = false;
  return {
    calls,
    status: () => ({ paused }),
    get isPaused() {
      return paused;
    },
    history: (limit) => (calls.push(`history ${limit}`), Promise.resolve([])),
    request: (group: number, r: Request): Promise<RequestOutcome> => {
      calls.push(`${r.kind} ${group} ${r.to ?? '-'}`);
      return Promise.resolve({ ok: true, events: [] });
    },
    setPaused: (p) => {
      calls.push(p ? 'pause' : 'resume');
      paused = p;
      return Promise.resolve();
    },
    groupCount: 2,
    nodesOf: (group) => (group === 0 ? ['s0n0', 's0n1'] : ['s1n0', 's1n1']),
  };
}

const post = (ha: HaControl, path: string, body: unknown) =>
  handleHaRoute(ha, 'POST', path, body, new URLSearchParams());

test('malformed switchover/failover bodies get 400 naming the field, and nothing is requested', async () => {
  const cases: [unknown, RegExp][] = [
    [{ group: '0x0' }, /^group: must be a non-negative integer \(a JSON number, not a string\)/],
    [{ group: '0' }, /^group: /],
    [{ group: 0.5 }, /^group: /],
    [{ group: -1 }, /^group: /],
    [{ group: null }, /^group: /],
    [{ group: true }, /^group: /],
    [{ group: 2 }, /^group: there is no group 2 \(the cluster has 2\)/],
    [{ to: 5 }, /^to: must be a non-empty string naming a node/],
    [{ to: ['s0n1'] }, /^to: /],
    [{ to: null }, /^to: /],
    [{ to: '' }, /^to: /],
    [{ to: 's1n1' }, /^to: s1n1 is not a node of group 0/],
    [{ to: 'nosuch', group: 1 }, /^to: nosuch is not a node of group 1/],
    [{ node: 's0n1' }, /^unknown key "node" in the request body; it accepts group, to/],
    [{ group: 0, To: 's0n1' }, /^unknown key "To"/],
    [{ shard: '0' }, /^shard: must be a non-negative integer/],
    [{ shard: 2 }, /^group: there is no group 2/],
    [{ group: 0, shard: 0 }, /^shard: is the old name of group, and group is given too; give only group/],
    [[], /^the request body: /],
    ['s0n1', /^the request body: /],
    [7, /^the request body: /],
  ];
  for (const path of ['/ha/switchover', '/ha/failover']) {
    for (const [body, message] of cases) {
      const ha = control();
      const r = await post(ha, path, body);
      assert.equal(r?.status, 400, `${path} ${JSON.stringify(body)}`);
      assert.match((r.body as { error: string }).error, message, `${path} ${JSON.stringify(body)}`);
      assert.deepEqual(ha.calls, [], `${path} ${JSON.stringify(body)}: nothing requested`);
    }
  }
});

test('well-formed switchover/failover bodies reach the service', async () => {
  const ha = control();
  assert.equal((await post(ha, '/ha/switchover', null))?.status, 200);
  assert.equal((await post(ha, '/ha/switchover', {}))?.status, 200);
  assert.equal((await post(ha, '/ha/failover', { group: 1, to: 's1n1' }))?.status, 200);
  assert.equal((await post(ha, '/ha/switchover', { to: 's0n1' }))?.status, 200);
  assert.deepEqual(ha.calls, ['switchover 0 -', 'switchover 0 -', 'failover 1 s1n1', 'switchover 0 s0n1']);
});

test('the old body field shard (before groups) is still taken for group', async () => {
  const ha = control();
  assert.equal((await post(ha, '/ha/failover', { shard: 1, to: 's1n1' }))?.status, 200);
  assert.deepEqual(ha.calls, ['failover 1 s1n1']);
});

test('pause and resume take no parameters', async () => {
  const ha = control();
  for (const body of [{ paused: true }, { group: 0 }, [], 'x']) {
    const r = await post(ha, '/ha/pause', body);
    assert.equal(r?.status, 400, JSON.stringify(body));
  }
  assert.deepEqual(ha.calls, []);
  assert.equal((await post(ha, '/ha/pause', null))?.status, 200);
  assert.equal((await post(ha, '/ha/resume', {}))?.status, 200);
  assert.deepEqual(ha.calls, ['pause', 'resume']);
});

test('GET /ha/history validates limit', async () => {
  const ha = control();
  const get = (q: string) => handleHaRoute(ha, 'GET', '/ha/history', null, new URLSearchParams(q));
  for (const q of ['limit=0', 'limit=-1', 'limit=1e3', 'limit=0x10', 'limit=abc', 'limit=', 'limit=100001']) {
    const r = await get(q);
    assert.equal(r?.status, 400, q);
    assert.match((r.body as { error: string }).error, /^limit: /);
  }
  assert.equal((await get('limit=20'))?.status, 200);
  assert.equal((await get(''))?.status, 200);
  assert.deepEqual(ha.calls, ['history 20', 'history 500']);
  assert.equal(parseLimit('100000'), 100_000);
});

test('unknown paths under /ha are 404; others are not ours', async () => {
  const ha = control();
  assert.equal((await post(ha, '/ha/nothing', {}))?.status, 404);
  assert.equal(await post(ha, '/status', {}), null);
});

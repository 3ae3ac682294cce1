import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../obs/logger.js';
import { AGENT_KEYS } from './agent-rpc.js';
import type { Request } from './decide.js';
import { EmbeddedStore } from './embedded-store.js';
import { HaHistory } from './ha-history.js';
import type { RequestOutcome } from './ha-routes.js';
import { HA_KEYS } from './leader-lease.js';
import type { KeyValue, StateStore } from './store.js';
import {
  REQUEST_KEYS,
  RequestDesk,
  parseStoreRequest,
  requestState,
  setPausedInStore,
  submitRequest,
} from './store-requests.js';
import type { RequestTarget } from './store-requests.js';

const log = createLogger({ level: 'silent' });
const nodesOf = (g: number) => (g === 0 ? ['n1', 'n2', 'n3'] : ['m1', 'm2']);
let dir: string;
let store: StateStore;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgscale-requests-'));
  store = await EmbeddedStore.open(join(dir, 'store.json'));
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** An HA service stand-in that records what it was asked and answers as told. */
function target(answer: (group: number, r: Request) => Promise<RequestOutcome>) {
  const asked: [number, Request][] = [];
  const t: RequestTarget = {
    groupCount: 2,
    nodesOf,
    request: (group, r) => {
      asked.push([group, r]);
      return answer(group, r);
    },
  };
  return { t, asked };
}

const kv = (key: string, value: string): KeyValue => ({ key, value, revision: 1, lease: null });

test('parseStoreRequest: a well-formed request, and each malformed field named', () => {
  const ok = parseStoreRequest(
    JSON.stringify({ group: 1, kind: 'failover', to: 'm2', at: 'now', lease: '7' }),
    2,
    nodesOf,
  );
  assert.deepEqual(ok, { request: { group: 1, kind: 'failover', to: 'm2', at: 'now', lease: '7' } });
  const untargeted = parseStoreRequest(
    JSON.stringify({ group: 0, kind: 'switchover', to: null, at: 'now', lease: '7', claimed_by: 'h1' }),
    2,
    nodesOf,
  );
  assert.deepEqual(untargeted, {
    request: { group: 0, kind: 'switchover', to: null, at: 'now', lease: '7', claimed_by: 'h1' },
  });
  const bad = (v: unknown) => {
    const r = parseStoreRequest(typeof v === 'string' ? v : JSON.stringify(v), 2, nodesOf);
    assert.ok('error' in r, `accepted ${JSON.stringify(v)}`);
    return r.error;
  };
  assert.match(bad('{'), /not JSON/);
  assert.match(bad([1]), /kind/);
  assert.match(bad({ group: 0, kind: 'restart', at: 'now', lease: '7' }), /kind: "restart"/);
  assert.match(bad({ group: 0, kind: 'failover', at: 'now' }), /lease/);
  assert.match(bad({ group: 2, kind: 'failover', at: 'now', lease: '7' }), /no group 2/);
  assert.match(bad({ group: '0', kind: 'failover', at: 'now', lease: '7' }), /group/);
  assert.match(
    bad({ group: 0, kind: 'failover', to: 'm1', at: 'now', lease: '7' }),
    /m1 is not a node of group 0/,
  );
});

test('requestState: an outcome wins; a request is waiting or claimed; neither is lost', () => {
  const outcome: RequestOutcome = { ok: true, events: [] };
  assert.deepEqual(requestState(null, kv('o', JSON.stringify(outcome))), {
    state: 'done',
    outcome,
    by: null,
  });
  assert.deepEqual(requestState(kv('r', '{}'), kv('o', JSON.stringify({ ...outcome, by: 'h3' }))), {
    state: 'done',
    outcome,
    by: 'h3',
  });
  assert.deepEqual(requestState(kv('r', '{"kind":"failover"}'), null), { state: 'waiting' });
  assert.deepEqual(requestState(kv('r', '{"claimed_by":"h2"}'), null), { state: 'claimed', by: 'h2' });
  assert.deepEqual(requestState(null, null), { state: 'lost' });
});

test('a request is taken by the decider, carried out once, answered, and leaves no key behind', async () => {
  const lease = await store.grantLease(10_000);
  const { t, asked } = target(() =>
    Promise.resolve({ ok: true, events: [{ at: 'x', group: 0, event: 'promoted', node: 'n2' }] }),
  );
  const desk = new RequestDesk(
    () => store,
    t,
    'h1',
    () => lease,
    log,
    20,
  ).start();
  let claimedBy: string | null = null;
  try {
    const r = await submitRequest(
      store,
      { group: 0, kind: 'switchover', to: 'n2' },
      { claimTimeoutMs: 5000, pollMs: 10, onClaimed: (h) => (claimedBy = h) },
    );
    assert.deepEqual(r, { ok: true, events: [{ at: 'x', group: 0, event: 'promoted', node: 'n2' }] });
  } finally {
    desk.stop();
    await desk.idle();
  }
  assert.deepEqual(asked, [[0, { kind: 'switchover', to: 'n2' }]]);
  assert.equal(claimedBy, 'h1');
  assert.deepEqual(await store.list(REQUEST_KEYS.requests), []);
  assert.deepEqual(await store.list('outcomes/'), []);
  await store.revokeLease(lease);
});

test('a request already taken by another decider is not run again', async () => {
  const lease = await store.grantLease(10_000);
  const key = REQUEST_KEYS.request('taken');
  await store.put(
    key,
    JSON.stringify({ group: 0, kind: 'failover', to: null, at: 'now', lease, claimed_by: 'h0' }),
  );
  const { t, asked } = target(() => Promise.resolve({ ok: true, events: [] }));
  const desk = new RequestDesk(
    () => store,
    t,
    'h1',
    () => lease,
    log,
  );
  await desk.poll();
  await desk.poll();
  assert.deepEqual(asked, []);
  assert.equal((await store.get(key))?.value.includes('"claimed_by":"h0"'), true);
  const cur = await store.get(key);
  await store.compareAndDelete(key, cur!.revision);
  await store.revokeLease(lease);
});

test('a malformed request is answered with what is wrong, and nothing is run', async () => {
  const asker = await store.grantLease(10_000);
  const lease = await store.grantLease(10_000);
  await store.put(
    REQUEST_KEYS.request('bad'),
    JSON.stringify({ group: 0, kind: 'failover', to: 'zz', at: 'now', lease: asker }),
    { lease: asker },
  );
  const { t, asked } = target(() => Promise.resolve({ ok: true, events: [] }));
  const desk = new RequestDesk(
    () => store,
    t,
    'h1',
    () => lease,
    log,
  );
  await desk.poll();
  for (let i = 0; i < 100 && (await store.get(REQUEST_KEYS.outcome('bad'))) === null; i++)
    await new Promise((r) => setTimeout(r, 10));
  const outcome = JSON.parse((await store.get(REQUEST_KEYS.outcome('bad')))!.value) as RequestOutcome;
  assert.equal(outcome.ok, false);
  assert.match(!outcome.ok ? outcome.reason : '', /bad request: to: zz is not a node of group 0/);
  assert.deepEqual(asked, []);
  await store.revokeLease(asker);
  await store.revokeLease(lease);
  assert.deepEqual(await store.list(REQUEST_KEYS.requests), []);
});

test('nobody takes the request: it is withdrawn, and the message says what is missing', async () => {
  const r1 = await submitRequest(
    store,
    { group: 0, kind: 'failover', to: null },
    { claimTimeoutMs: 100, pollMs: 10 },
  );
  assert.equal(r1.ok, false);
  assert.match(!r1.ok ? r1.reason : '', /no decider took the request.*is `pgscale agent` running/);
  const lease = await store.grantLease(10_000);
  await store.put(AGENT_KEYS.decider, JSON.stringify({ host: '10.0.0.9' }), { lease });
  const r2 = await submitRequest(
    store,
    { group: 0, kind: 'failover', to: null },
    { claimTimeoutMs: 100, pollMs: 10 },
  );
  assert.match(!r2.ok ? r2.reason : '', /the decider is the agent of 10\.0\.0\.9, and it did not take/);
  await store.revokeLease(lease);
  assert.deepEqual(await store.list(REQUEST_KEYS.requests), [], 'withdrawn');
});

test('the decider that took the request stops before answering: the asker is told, not left waiting', async () => {
  const lease = await store.grantLease(10_000);
  const { t } = target(() => new Promise<RequestOutcome>(() => undefined));
  const desk = new RequestDesk(
    () => store,
    t,
    'h1',
    () => lease,
    log,
    20,
  ).start();
  try {
    const r = await submitRequest(
      store,
      { group: 1, kind: 'switchover', to: null },
      {
        claimTimeoutMs: 5000,
        pollMs: 10,
        onClaimed: () => void store.revokeLease(lease),
      },
    );
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.reason : '', /stopped before answering/);
  } finally {
    desk.stop();
    await desk.idle();
  }
});

test('pause and resume through the store: the paused key, and the events in the history', async () => {
  await setPausedInStore(store, true);
  assert.equal((await store.get(HA_KEYS.paused))?.value, 'true');
  await setPausedInStore(store, false);
  assert.equal(await store.get(HA_KEYS.paused), null);
  const events = await new HaHistory(() => store).list();
  assert.deepEqual(
    events.slice(-2).map((e) => [e.group, e.event]),
    [
      [-1, 'ha_paused'],
      [-1, 'ha_resumed'],
    ],
  );
});

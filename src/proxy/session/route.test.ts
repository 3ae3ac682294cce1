import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageFacts, SessionView } from './route.js';
import { attachRole, needsSwitch, planRoute, readPosition, topologyOf } from './route.js';

const msg = (type: string, over: Partial<MessageFacts> = {}): MessageFacts => ({
  type,
  cls: 'neutral',
  proxySetting: false,
  listen: false,
  closesNamedStatement: false,
  parseKnown: false,
  ...over,
});

const view = (over: Partial<SessionView> = {}): SessionView => ({
  attached: null,
  txStatus: 'I',
  idle: true,
  pinned: false,
  fanOut: true,
  utf8: true,
  readScaling: true,
  consistency: 'read-your-writes',
  ...over,
});

const topo = topologyOf('g0');

describe('planRoute: answered by the proxy', () => {
  test("the proxy's own settings, attached or not, in a transaction or not", () => {
    for (const attached of [null, 'primary', 'replica'] as const)
      for (const txStatus of ['I', 'T', 'E'] as const)
        assert.deepEqual(planRoute(msg('Q', { proxySetting: true }), view({ attached, txStatus }), topo), {
          kind: 'local',
          answer: 'proxy-setting',
        });
  });

  test('LISTEN by the fan-out: only idle, outside a transaction, in UTF8, with a fan-out', () => {
    const listen = msg('Q', { listen: true, cls: 'write' });
    assert.deepEqual(planRoute(listen, view(), topo), { kind: 'local', answer: 'listen' });
    assert.equal(planRoute(listen, view({ txStatus: 'T' }), topo).kind, 'group');
    assert.equal(planRoute(listen, view({ utf8: false }), topo).kind, 'group');
    assert.equal(planRoute(listen, view({ fanOut: false }), topo).kind, 'group');
    assert.equal(planRoute(listen, view({ attached: 'primary' }), topo).kind, 'group');
  });

  test('Close of a named statement forgets the name; a portal close or the unnamed one goes to a server', () => {
    assert.deepEqual(planRoute(msg('C', { closesNamedStatement: true }), view(), topo), {
      kind: 'local',
      answer: 'close-statement',
    });
    assert.equal(planRoute(msg('C'), view(), topo).kind, 'group');
    // Attached: the leg answers it in order with the server's replies.
    assert.equal(
      planRoute(msg('C', { closesNamedStatement: true }), view({ attached: 'primary' }), topo).kind,
      'group',
    );
  });

  test('Parse of a statement the pool knows, only unpinned and outside a transaction', () => {
    const p = msg('P', { parseKnown: true, cls: 'read' });
    assert.deepEqual(planRoute(p, view(), topo), { kind: 'local', answer: 'parse-known' });
    assert.equal(planRoute(p, view({ pinned: true }), topo).kind, 'group');
    assert.equal(planRoute(p, view({ txStatus: 'T' }), topo).kind, 'group');
    assert.equal(planRoute(msg('P', { cls: 'read' }), view(), topo).kind, 'group');
  });

  test('Flush with nothing attached is dropped; Sync with nothing running is answered', () => {
    assert.deepEqual(planRoute(msg('H'), view(), topo), { kind: 'local', answer: 'flush' });
    assert.deepEqual(planRoute(msg('S'), view(), topo), { kind: 'local', answer: 'idle-sync' });
    assert.equal(planRoute(msg('S'), view({ txStatus: 'T' }), topo).kind, 'group');
    assert.equal(planRoute(msg('S'), view({ idle: false }), topo).kind, 'group');
    assert.equal(planRoute(msg('H'), view({ attached: 'replica' }), topo).kind, 'group');
  });
});

describe('planRoute: to a group', () => {
  test('a write goes to the primary, a read to a replica, the rest anywhere', () => {
    assert.deepEqual(planRoute(msg('Q', { cls: 'write' }), view(), topo), {
      kind: 'group',
      group: 'g0',
      role: 'primary',
    });
    assert.deepEqual(planRoute(msg('Q', { cls: 'read' }), view(), topo), {
      kind: 'group',
      group: 'g0',
      role: 'replica',
    });
    assert.deepEqual(planRoute(msg('E'), view({ attached: 'primary' }), topo), {
      kind: 'group',
      group: 'g0',
      role: 'any',
    });
  });

  test('a read is any server without read scaling, or at consistency primary', () => {
    assert.equal(planRoute(msg('Q', { cls: 'read' }), view({ readScaling: false }), topo).kind, 'group');
    for (const v of [view({ readScaling: false }), view({ consistency: 'primary' })]) {
      const r = planRoute(msg('Q', { cls: 'read' }), v, topo);
      assert.ok(r.kind === 'group' && r.role === 'any', JSON.stringify(r));
    }
  });

  test('the same route value for the same group and role (no allocation per message)', () => {
    assert.equal(
      planRoute(msg('Q', { cls: 'write' }), view(), topo),
      planRoute(msg('P', { cls: 'write' }), view(), topo),
    );
    const other = planRoute(msg('Q', { cls: 'write' }), view(), topologyOf('g1'));
    assert.ok(other.kind === 'group' && other.group === 'g1');
  });

  test('a write while a replica is attached needs a switch; on the primary it does not', () => {
    const w = planRoute(msg('Q', { cls: 'write' }), view({ attached: 'replica' }), topo);
    assert.equal(needsSwitch(w, view({ attached: 'replica' })), true);
    assert.equal(needsSwitch(w, view({ attached: 'primary' })), false);
    const r = planRoute(msg('Q', { cls: 'read' }), view({ attached: 'replica' }), topo);
    assert.equal(needsSwitch(r, view({ attached: 'replica' })), false);
    const n = planRoute(msg('S'), view({ attached: 'replica' }), topo);
    assert.equal(needsSwitch(n, view({ attached: 'replica' })), false);
  });
});

describe('attachRole', () => {
  const q = (cls: MessageFacts['cls']) => msg('Q', { cls });

  test('a replica only for reads (and neutral messages) with at least one read', () => {
    assert.equal(attachRole([q('read')], view()), 'replica');
    assert.equal(attachRole([q('read'), msg('S'), q('neutral')], view()), 'replica');
    assert.equal(attachRole([q('read'), q('write')], view()), 'primary');
    assert.equal(attachRole([q('neutral'), msg('S')], view()), 'primary');
    assert.equal(attachRole([], view()), 'primary');
  });

  test('the primary without read scaling or at consistency primary', () => {
    assert.equal(attachRole([q('read')], view({ readScaling: false })), 'primary');
    assert.equal(attachRole([q('read')], view({ consistency: 'primary' })), 'primary');
    for (const c of ['eventual', 'read-your-writes', 'causal', 'linearizable'] as const)
      assert.equal(attachRole([q('read')], view({ consistency: c })), 'replica', c);
  });
});

describe('readPosition', () => {
  test("eventual needs nothing; read-your-writes the client's commit; causal and linearizable the later of both", () => {
    assert.equal(readPosition('eventual', 10n, 20n), null);
    assert.equal(readPosition('read-your-writes', 10n, 20n), 10n);
    assert.equal(readPosition('read-your-writes', null, 20n), null);
    assert.equal(readPosition('causal', 10n, 20n), 20n);
    assert.equal(readPosition('causal', 30n, 20n), 30n);
    assert.equal(readPosition('causal', null, null), null);
    assert.equal(readPosition('linearizable', null, 7n), 7n);
    assert.equal(readPosition('linearizable', 9n, null), 9n);
  });
});

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MemberView, GroupSnapshot } from './decide.js';
import { STANDBY_RESTART_GRACE_MS, decide, decideAround } from './decide.js';

const primary = (name: string, over: Partial<MemberView> = {}): MemberView => ({
  name,
  priority: 100,
  nofailover: false,
  reported: true,
  provisioned: true,
  standbyDir: false,
  needsRejoin: false,
  running: true,
  reachable: true,
  inRecovery: false,
  currentLsn: 1000n,
  receiveLsn: null,
  replayLsn: null,
  streaming: false,
  upstream: null,
  downForMs: 0,
  unreachableForMs: 0,
  notStreamingForMs: 0,
  busy: false,
  ...over,
});

const standby = (name: string, lsn: bigint, over: Partial<MemberView> = {}): MemberView =>
  primary(name, {
    standbyDir: true,
    inRecovery: true,
    currentLsn: null,
    receiveLsn: lsn,
    replayLsn: lsn,
    streaming: true,
    upstream: 'a',
    ...over,
  });

const dead = (m: MemberView, downForMs = 5000): MemberView => ({
  ...m,
  running: false,
  reachable: false,
  inRecovery: null,
  downForMs,
});

function snap(
  members: MemberView[],
  over: Partial<GroupSnapshot> = {},
  sync: number | null = null,
): GroupSnapshot {
  return {
    group: 0,
    leader: { node: 'a', epoch: 3 },
    lastEpoch: 3,
    lastPrimaryLsn: 1000n,
    paused: false,
    request: null,
    members,
    settings: {
      primaryDownGraceMs: 1000,
      unreachableTimeoutMs: 3000,
      maximumLagOnFailover: 100,
      rejoin: true,
      syncQuorum: sync,
      notStreamingRejoinMs: 15_000,
    },
    ...over,
  };
}

describe('decide', () => {
  test('a healthy group needs nothing', () => {
    assert.equal(decide(snap([primary('a'), standby('b', 1000n), standby('c', 990n)])).kind, 'none');
  });

  test('without a leader key the running primary takes it; nothing is promoted', () => {
    const a = decide(snap([primary('a'), standby('b', 1000n)], { leader: null }));
    assert.deepEqual([a.kind, 'node' in a ? a.node : null], ['acquire', 'a']);
    const b = decide(snap([dead(primary('a')), standby('b', 1000n)], { leader: null, paused: true }));
    assert.equal(b.kind, 'none');
  });

  test('a dead primary is replaced after the grace, by the most advanced standby', () => {
    const early = decide(snap([dead(primary('a'), 500), standby('b', 1000n), standby('c', 999n)]));
    assert.equal(early.kind, 'none');
    const a = decide(snap([dead(primary('a')), standby('b', 990n), standby('c', 999n)]));
    assert.equal(a.kind, 'failover');
    assert.equal(a.kind === 'failover' && a.to, 'c');
  });

  test('a primary restarted in place by the operator (busy) is waited for, not replaced', () => {
    const a = decide(snap([dead(primary('a', { busy: true })), standby('b', 1000n)]));
    assert.equal(a.kind, 'none');
  });

  test('equal positions: priority, then name; nofailover is never promoted', () => {
    const a = decide(snap([dead(primary('a')), standby('b', 999n), standby('c', 999n, { priority: 200 })]));
    assert.equal(a.kind === 'failover' && a.to, 'c');
    const b = decide(
      snap([dead(primary('a')), standby('b', 999n), standby('c', 1000n, { nofailover: true })]),
    );
    assert.equal(b.kind === 'failover' && b.to, 'b');
  });

  test('an unreachable primary is replaced only after unreachable_timeout', () => {
    const frozen = (ms: number) => primary('a', { reachable: false, inRecovery: null, unreachableForMs: ms });
    assert.equal(decide(snap([frozen(2000), standby('b', 1000n)])).kind, 'none');
    assert.equal(decide(snap([frozen(3000), standby('b', 1000n)])).kind, 'failover');
  });

  test('asynchronous mode: a standby lagging beyond maximum_lag_on_failover is not promoted', () => {
    const a = decide(snap([dead(primary('a')), standby('b', 800n)]));
    assert.equal(a.kind, 'refuse');
    assert.match(a.kind === 'refuse' ? a.reason : '', /maximum_lag_on_failover/);
  });

  test('synchronous mode: enough standbys must answer to be sure to hold every acknowledged commit', () => {
    // ANY 1 of 2: an acknowledged commit may be on either, so both must be seen.
    const one = decide(snap([dead(primary('a')), standby('b', 1000n), dead(standby('c', 0n))], {}, 1));
    assert.equal(one.kind, 'refuse');
    assert.match(one.kind === 'refuse' ? one.reason : '', /synchronous mode: only 1 of 2/);
    const both = decide(snap([dead(primary('a')), standby('b', 900n), standby('c', 1000n)], {}, 1));
    assert.equal(both.kind === 'failover' && both.to, 'c');
    // ANY 2 of 2: every commit is on both; one is enough to look at. Lag limits do not apply.
    const q2 = decide(snap([dead(primary('a')), standby('b', 10n), dead(standby('c', 0n))], {}, 2));
    assert.equal(q2.kind === 'failover' && q2.to, 'b');
  });

  test('synchronous mode: only the most advanced standby may be chosen, even by request', () => {
    const a = decide(
      snap(
        [primary('a'), standby('b', 900n), standby('c', 1000n)],
        { request: { kind: 'switchover', to: 'b' } },
        1,
      ),
    );
    assert.equal(a.kind, 'refuse');
  });

  test('a second writable node is fenced at once, whoever it is', () => {
    const a = decide(snap([primary('a'), primary('b', { standbyDir: false })]));
    assert.deepEqual([a.kind, 'node' in a ? a.node : null], ['fence', 'b']);
  });

  test('paused: an unhealthy leader is left alone, a stopped standby too; an intruder is still fenced', () => {
    assert.equal(decide(snap([dead(primary('a')), standby('b', 1000n)], { paused: true })).kind, 'none');
    const stopped = dead(standby('b', 0n), STANDBY_RESTART_GRACE_MS * 2);
    assert.equal(decide(snap([primary('a'), stopped], { paused: true })).kind, 'none');
    assert.equal(decide(snap([primary('a'), primary('b')], { paused: true })).kind, 'fence');
    const manual = decide(
      snap([dead(primary('a')), standby('b', 1000n)], {
        paused: true,
        request: { kind: 'failover', to: null },
      }),
    );
    assert.equal(manual.kind, 'failover', 'pgscale failover works while paused');
  });

  test('a fenced former primary rejoins; a stopped standby restarts after a grace; a stray one is re-pointed', () => {
    const rejoin = decide(snap([primary('a'), dead(standby('b', 0n, { needsRejoin: true }))]));
    assert.deepEqual([rejoin.kind, 'node' in rejoin ? rejoin.node : null], ['rejoin', 'b']);
    const soon = decide(snap([primary('a'), dead(standby('b', 0n), STANDBY_RESTART_GRACE_MS - 1)]));
    assert.equal(soon.kind, 'none');
    const later = decide(snap([primary('a'), dead(standby('b', 0n), STANDBY_RESTART_GRACE_MS)]));
    assert.equal(later.kind, 'start_standby');
    const stray = decide(snap([primary('a'), standby('b', 1000n, { upstream: 'c' })]));
    assert.equal(stray.kind, 'repoint');
  });

  test('switchover to a named standby; to an unknown one is refused', () => {
    const a = decide(
      snap([primary('a'), standby('b', 1000n), standby('c', 1000n)], {
        request: { kind: 'switchover', to: 'b' },
      }),
    );
    assert.deepEqual(a.kind === 'switchover' && [a.from, a.to], ['a', 'b']);
    const b = decide(
      snap([primary('a'), standby('b', 1000n)], { request: { kind: 'switchover', to: 'zz' } }),
    );
    assert.equal(b.kind, 'refuse');
  });
});

describe('decideAround (failure back-off)', () => {
  const key = (a: { kind: string; node?: string } | null) => (a ? `${a.kind}:${a.node ?? ''}` : null);
  const b = dead(standby('b', 1000n, { needsRejoin: true }));
  const c = dead(standby('c', 1000n), STANDBY_RESTART_GRACE_MS + 1000);

  test("a member whose action waits out its back-off does not hold up another member's restart", () => {
    const s = snap([primary('a'), b, c]);
    assert.equal(key(decide(s)), 'rejoin:b', 'b comes first');
    const a = decideAround(s, (x) => key(x) === 'rejoin:b');
    assert.equal(key(a as never), 'start_standby:c');
  });

  test("with nothing else to do the healthy leader's 'none' comes back (its lease is renewed)", () => {
    const a = decideAround(snap([primary('a'), b]), (x) => key(x) === 'rejoin:b');
    assert.equal(a?.kind, 'none');
  });

  test('a waiting group-wide action (a failover) means nothing this cycle', () => {
    const s = snap([dead(primary('a')), standby('b', 1000n)]);
    assert.equal(decide(s).kind, 'failover');
    assert.equal(
      decideAround(s, (x) => x.kind === 'failover'),
      null,
    );
  });

  test('nothing waiting: the same as decide()', () => {
    const s = snap([primary('a'), b, c]);
    assert.deepEqual(
      decideAround(s, () => false),
      decide(s),
    );
  });
});

describe('decide with several hosts (members whose host is gone)', () => {
  /** What the decider sees of a member whose agent's session ended: nothing but its name. */
  const gone = (m: MemberView, downForMs = 5000): MemberView => ({
    ...dead(m, downForMs),
    reported: false,
    provisioned: false,
    standbyDir: false,
    answersAsPrimary: false,
  });

  test("no leader key and the last leader's host gone: the freshest standby takes over", () => {
    const a = decide(
      snap([gone(primary('a')), standby('b', 990n), standby('c', 1000n)], { leader: null, lastLeader: 'a' }),
    );
    assert.equal(a.kind, 'failover');
    assert.deepEqual([(a as { from: string }).from, (a as { to: string }).to], ['a', 'c']);
  });

  test('no leader key but the last leader still reports (stopped): it is started, nothing promoted', () => {
    const a = decide(snap([dead(primary('a')), standby('b', 1000n)], { leader: null, lastLeader: 'a' }));
    assert.equal(a.kind, 'start_primary');
  });

  test('a primary that no longer reports is checked directly before anyone is promoted', () => {
    const unchecked = { ...gone(primary('a'), 200), answersAsPrimary: null };
    const a = decide(snap([unchecked, standby('b', 1000n)], { leader: null, lastLeader: 'a' }));
    assert.equal(a.kind, 'none');
    assert.match((a as { reason: string }).reason, /checking it directly/);
  });

  test('a primary whose agent is gone but which still accepts writes is not replaced (two primaries)', () => {
    const alive = { ...gone(primary('a')), answersAsPrimary: true };
    const a = decide(snap([alive, standby('b', 1000n)], { leader: null, lastLeader: 'a' }));
    assert.equal(a.kind, 'refuse');
    assert.match((a as { reason: string }).reason, /still accepts writes/);
  });

  test('a decider whose own session is young waits hostGoneGraceMs (after an etcd outage)', () => {
    const s = snap([gone(primary('a'), 3000), standby('b', 1000n)], { leader: null, lastLeader: 'a' });
    const young = { ...s, settings: { ...s.settings, hostGoneGraceMs: 6000 } };
    assert.equal(decide(young).kind, 'none');
    assert.equal(decide(s).kind, 'failover');
  });

  test('a leader its agent stopped while etcd was away, still holding the key: started again, no failover', () => {
    const a = decide(snap([{ ...dead(primary('a')), selfStopped: true }, standby('b', 1000n)]));
    assert.equal(a.kind, 'start_primary');
    // Crashed rather than stopped by its agent: failover as before.
    assert.equal(decide(snap([dead(primary('a')), standby('b', 1000n)])).kind, 'failover');
  });

  test('the leader (its key held) no longer reports: replaced only once a direct probe finds it not accepting writes', () => {
    const withKey = { leader: { node: 'a', epoch: 3 } };
    const unchecked = decide(
      snap([{ ...gone(primary('a')), answersAsPrimary: null }, standby('b', 1000n)], withKey),
    );
    assert.equal(unchecked.kind, 'none');
    const writable = decide(
      snap([{ ...gone(primary('a')), answersAsPrimary: true }, standby('b', 1000n)], withKey),
    );
    assert.equal(writable.kind, 'refuse');
    assert.match((writable as { reason: string }).reason, /still accepts writes/);
    // Not even on request: the fence would reach no agent.
    const asked = decide(
      snap([{ ...gone(primary('a')), answersAsPrimary: true }, standby('b', 1000n)], {
        ...withKey,
        request: { kind: 'failover', to: null },
      }),
    );
    assert.equal(asked.kind, 'refuse');
    const dead = decide(snap([gone(primary('a')), standby('b', 1000n)], withKey));
    assert.equal(dead.kind, 'failover');
    assert.match((dead as { reason: string }).reason, /no longer reports/);
  });

  test('paused: a gone host is not replaced', () => {
    const a = decide(
      snap([gone(primary('a')), standby('b', 1000n)], { leader: null, lastLeader: 'a', paused: true }),
    );
    assert.equal(a.kind, 'none');
  });

  test('synchronous mode: a standby whose host is gone may hold the only copy of a commit', () => {
    // ANY 1 of (b, c): c's host is gone, so b alone cannot prove it has every acknowledged commit.
    const a = decide(
      snap(
        [gone(primary('a')), standby('b', 1000n), gone(standby('c', 1000n))],
        { leader: null, lastLeader: 'a' },
        1,
      ),
    );
    assert.equal(a.kind, 'refuse');
    assert.match((a as { reason: string }).reason, /only 1 of 2 standbys answer/);
  });
});

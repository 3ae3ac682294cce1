/**
 * The decision of one cycle of the HA loop, as a pure function of an immutable snapshot (the
 * store's view of a group plus what each node reported), in the manner of Patroni: at most one
 * action per group per cycle, with the reason that the loop logs in one line. Nothing here does
 * I/O or reads a clock: durations arrive in the snapshot, measured on the monotonic clock.
 */
import { lsnDiff } from '../protocol/lsn.js';

export interface MemberView {
  readonly name: string;
  readonly priority: number;
  readonly nofailover: boolean;
  /**
   * Its host tells us its facts (always on one host). False with several hosts when the host's
   * agent is gone — dead or cut off from the store — and its session has ended: its primary, if
   * it was one, stopped itself before that, so it counts as fenced.
   */
  readonly reported: boolean;
  /**
   * Several hosts, a member that does not report: what a direct probe of its PostgreSQL (from the
   * decider, over the network) found since it stopped reporting — true: it answers as a writable
   * primary (its agent is gone, not its host: nothing stopped it); false: it does not answer, or
   * not as a primary (dead host, cut link, stopped by its agent's guard); null or absent: not
   * known yet. Always absent on one host.
   */
  readonly answersAsPrimary?: boolean | null;
  /** A data directory exists. */
  readonly provisioned: boolean;
  /** The data directory holds standby.signal. */
  readonly standbyDir: boolean;
  /** Fenced as a former primary: must rejoin (pg_rewind or clone) before it may run. */
  readonly needsRejoin: boolean;
  /** Its postmaster is alive. */
  readonly running: boolean;
  /** Stopped by its agent while etcd could not vouch for it (several hosts), not crashed. */
  readonly selfStopped?: boolean;
  /** The last probe answered. */
  readonly reachable: boolean;
  readonly inRecovery: boolean | null;
  readonly currentLsn: bigint | null;
  readonly receiveLsn: bigint | null;
  readonly replayLsn: bigint | null;
  readonly streaming: boolean;
  /** The node its primary_conninfo names (standbys), or null. */
  readonly upstream: string | null;
  /** How long its postmaster has been gone (0 while it runs). */
  readonly downForMs: number;
  /** How long it has been running without answering (0 while it answers). */
  readonly unreachableForMs: number;
  /** How long it has been a running standby of the leader without streaming. */
  readonly notStreamingForMs: number;
  /** A long action (rejoin, restart) on it is still running in the background. */
  readonly busy: boolean;
}

export interface Leader {
  readonly node: string;
  readonly epoch: number;
}

export type Request =
  | { readonly kind: 'switchover'; readonly to: string | null }
  | { readonly kind: 'failover'; readonly to: string | null };

export interface DecideSettings {
  readonly primaryDownGraceMs: number;
  readonly unreachableTimeoutMs: number;
  readonly maximumLagOnFailover: number;
  readonly rejoin: boolean;
  /** Synchronous replication: ANY k of the standbys; null when off. */
  readonly syncQuorum: number | null;
  /** A standby of the leader that does not stream this long is rewound. */
  readonly notStreamingRejoinMs: number;
  /**
   * Several hosts: how long a host must have been gone (unreported) before its primary is
   * replaced, beyond primaryDownGraceMs. A decider whose own session is younger than a TTL (after
   * an etcd outage every agent opens a new session) waits a TTL, so that the primary's agent has
   * reported again before anyone decides its host is gone.
   */
  readonly hostGoneGraceMs?: number;
}

export interface GroupSnapshot {
  readonly group: number;
  readonly leader: Leader | null;
  /** The highest epoch ever published for the group. */
  readonly lastEpoch: number;
  /** The node that epoch was given to (the last leader), if known. */
  readonly lastLeader?: string | null;
  /** The last WAL position the leader reported while healthy. */
  readonly lastPrimaryLsn: bigint | null;
  readonly paused: boolean;
  readonly request: Request | null;
  readonly members: readonly MemberView[];
  readonly settings: DecideSettings;
}

export type Action =
  | { kind: 'none'; reason: string }
  | { kind: 'acquire'; node: string; reason: string }
  | { kind: 'start_primary'; node: string; reason: string }
  | { kind: 'failover'; from: string | null; to: string; reason: string }
  | { kind: 'switchover'; from: string; to: string; reason: string }
  | { kind: 'fence'; node: string; reason: string }
  | { kind: 'repoint'; node: string; reason: string }
  | { kind: 'rejoin'; node: string; reason: string }
  | { kind: 'start_standby'; node: string; reason: string }
  | { kind: 'refuse'; reason: string };

/** A stopped standby is restarted after this long. */
export const STANDBY_RESTART_GRACE_MS = 3000;

export function healthyPrimary(m: MemberView): boolean {
  return m.running && m.reachable && m.inRecovery === false;
}

function healthyStandby(m: MemberView): boolean {
  return m.running && m.reachable && m.inRecovery === true && !m.needsRejoin;
}

/** Received position of a standby (what promotion would replay), else its replay position. */
function position(m: MemberView): bigint {
  return m.receiveLsn ?? m.replayLsn ?? -1n;
}

/**
 * The standby to promote, or the reason there is none. `exclude` is the failed or departing
 * primary. With synchronous replication (ANY k of N standbys) every acknowledged commit is on at
 * least k standbys, so at least N - k + 1 of them must be seen to be sure the most advanced has
 * them all; otherwise promoting could lose an acknowledged commit, and we refuse.
 */
export function pickCandidate(
  s: GroupSnapshot,
  exclude: string | null,
  wanted: string | null,
): { node: string } | { refuse: string } {
  // A member whose host is gone counts as a standby that does not answer: in synchronous mode
  // it may hold commits nobody else has.
  const standbys = s.members.filter(
    (m) => m.name !== exclude && (m.provisioned || !m.reported) && !m.needsRejoin,
  );
  const healthy = standbys.filter(healthyStandby);
  const k = s.settings.syncQuorum;
  if (k !== null) {
    const need = Math.max(1, standbys.length - k + 1);
    if (healthy.length < need) {
      return {
        refuse:
          `synchronous mode: only ${healthy.length} of ${standbys.length} standbys answer and ${need} are needed ` +
          'to be sure no acknowledged commit is lost',
      };
    }
  }
  const best = healthy.reduce<bigint>((a, m) => (position(m) > a ? position(m) : a), -1n);
  const eligible = healthy.filter((m) => {
    if (m.nofailover) return false;
    if (k !== null) return position(m) === best; // nothing acknowledged may be missing
    if (
      s.lastPrimaryLsn !== null &&
      lsnDiff(s.lastPrimaryLsn, position(m)) > BigInt(s.settings.maximumLagOnFailover)
    ) {
      return false;
    }
    return true;
  });
  if (wanted !== null) {
    const w = standbys.find((m) => m.name === wanted);
    if (!w) return { refuse: `${wanted} is not a standby of group ${s.group}` };
    if (!eligible.includes(w)) {
      return {
        refuse: `${wanted} cannot be promoted (${
          w.nofailover
            ? 'nofailover is set'
            : !healthyStandby(w)
              ? 'it is not a healthy standby'
              : k !== null
                ? 'it is behind another standby; an acknowledged commit could be lost'
                : 'it lags more than maximum_lag_on_failover'
        })`,
      };
    }
    return { node: w.name };
  }
  if (eligible.length === 0) {
    return {
      refuse:
        healthy.length === 0
          ? 'no healthy standby to promote'
          : 'no standby is eligible (nofailover, or lagging more than maximum_lag_on_failover)',
    };
  }
  const sorted = [...eligible].sort((a, b) => {
    const d = position(b) - position(a);
    if (d !== 0n) return d > 0n ? 1 : -1;
    if (a.priority !== b.priority) return b.priority - a.priority;
    return a.name < b.name ? -1 : 1;
  });
  return { node: sorted[0]!.name };
}

export function decide(s: GroupSnapshot): Action {
  const members = new Map(s.members.map((m) => [m.name, m]));
  const writable = s.members.filter(healthyPrimary);

  // No leader: whoever runs as the primary takes the lease (a fresh start, a restarted controller
  // or a lease that ended while the store was away). Nothing is promoted without a leader key.
  if (!s.leader) {
    if (writable.length === 1) {
      return {
        kind: 'acquire',
        node: writable[0]!.name,
        reason: 'no leader key; the running primary takes it',
      };
    }
    if (writable.length > 1) {
      const keep = writable.find((m) => !m.standbyDir) ?? writable[0]!;
      const other = writable.find((m) => m !== keep)!;
      return {
        kind: 'fence',
        node: other.name,
        reason: `two writable nodes without a leader; keeping ${keep.name}`,
      };
    }
    // Several hosts: the last leader's host is gone, and its leader key went with its agent's
    // session. That agent stopped the primary before its session ended: a standby takes over —
    // once a direct probe has found the old primary not answering as one. Only its agent may be
    // gone (killed, out of memory) with its PostgreSQL still serving writes, which nothing has
    // stopped: promoting then would make two primaries, so the decider refuses until the agent
    // is back (or the server stops). After an etcd outage every agent opens a new session, and
    // the primary's may report a moment after the decider's first cycle: a young decider waits
    // hostGoneGraceMs.
    const last = s.lastLeader ? members.get(s.lastLeader) : undefined;
    if (last && !last.reported && !s.paused && last.downForMs >= (s.settings.hostGoneGraceMs ?? 0)) {
      if (last.answersAsPrimary === true) {
        return {
          kind: 'refuse',
          reason: `primary ${last.name} no longer reports (its agent is gone) but still accepts writes: no failover, which would make two primaries; start its agent again, or stop that server`,
        };
      }
      if (last.answersAsPrimary !== false) {
        return { kind: 'none', reason: `primary ${last.name} no longer reports: checking it directly` };
      }
      const c = pickCandidate(s, last.name, null);
      if ('refuse' in c)
        return { kind: 'refuse', reason: `the host of primary ${last.name} is gone but ${c.refuse}` };
      return {
        kind: 'failover',
        from: last.name,
        to: c.node,
        reason: `the host of primary ${last.name} is gone (its agent's session ended)`,
      };
    }
    const stoppedPrimary = s.members.find(
      (m) => m.provisioned && !m.standbyDir && !m.needsRejoin && !m.running,
    );
    if (stoppedPrimary && !s.paused) {
      return { kind: 'start_primary', node: stoppedPrimary.name, reason: 'no leader and no running primary' };
    }
    return { kind: 'none', reason: 'no leader and no primary running yet' };
  }

  const leader = members.get(s.leader.node);
  // A second writable node is fenced whatever else happens: at most one node accepts writes.
  const intruder = writable.find((m) => m.name !== s.leader!.node);
  if (intruder) {
    return { kind: 'fence', node: intruder.name, reason: `writable but the leader is ${s.leader.node}` };
  }

  if (leader && healthyPrimary(leader)) {
    if (s.request?.kind === 'switchover' || s.request?.kind === 'failover') {
      const c = pickCandidate(s, leader.name, s.request.to);
      if ('refuse' in c) return { kind: 'refuse', reason: `${s.request.kind} refused: ${c.refuse}` };
      return s.request.kind === 'switchover'
        ? { kind: 'switchover', from: leader.name, to: c.node, reason: 'requested' }
        : { kind: 'failover', from: leader.name, to: c.node, reason: 'requested' };
    }
    // Paused (maintenance): nothing is restarted, rewound or re-pointed behind the operator's back.
    if (s.paused) return { kind: 'none', reason: 'HA is paused' };
    return maintain(s, leader);
  }

  // Several hosts: the leader no longer reports (its agent's session ended). Its postmaster is
  // not known to be gone: a direct probe says whether it still accepts writes — then nobody may
  // be promoted (two primaries), even on request — or not yet.
  if (leader && !leader.reported && leader.answersAsPrimary !== false) {
    return leader.answersAsPrimary === true
      ? {
          kind: 'refuse',
          reason: `primary ${leader.name} no longer reports (its agent is gone) but still accepts writes: no failover, which would make two primaries; start its agent again, or stop that server`,
        }
      : { kind: 'none', reason: `primary ${leader.name} no longer reports: checking it directly` };
  }

  // The leader is not a healthy primary.
  const why = !leader
    ? 'the leader is not a member'
    : !leader.reported
      ? `its host no longer reports and it does not answer as a primary`
      : !leader.running
        ? // Busy: restarted in place by the operator (`pgscale restart`, no standby to hand over to).
          !leader.busy && leader.downForMs >= s.settings.primaryDownGraceMs
          ? `its postmaster has been gone for ${(leader.downForMs / 1000).toFixed(1)} s`
          : null
        : leader.unreachableForMs >= s.settings.unreachableTimeoutMs
          ? `it has not answered for ${(leader.unreachableForMs / 1000).toFixed(1)} s`
          : leader.reachable && leader.inRecovery === true
            ? 'it runs as a standby'
            : null;
  // Several hosts: stopped by its own agent while etcd was unreachable, and still the leader (the
  // key held through the outage: nobody was promoted). Starting it again loses nothing.
  if (
    leader &&
    !leader.running &&
    leader.selfStopped === true &&
    leader.provisioned &&
    !leader.standbyDir &&
    !leader.needsRejoin &&
    !s.paused &&
    !s.request
  ) {
    return {
      kind: 'start_primary',
      node: leader.name,
      reason: 'stopped by its agent while etcd was unreachable; still the leader',
    };
  }
  if (s.request?.kind === 'failover') {
    const c = pickCandidate(s, s.leader.node, s.request.to);
    if ('refuse' in c) return { kind: 'refuse', reason: `failover refused: ${c.refuse}` };
    return { kind: 'failover', from: s.leader.node, to: c.node, reason: 'requested' };
  }
  if (s.paused) return { kind: 'none', reason: `leader ${s.leader.node} is unhealthy but HA is paused` };
  if (why === null) return { kind: 'none', reason: `leader ${s.leader.node} unhealthy, waiting` };
  const c = pickCandidate(s, s.leader.node, null);
  if ('refuse' in c)
    return { kind: 'refuse', reason: `primary ${s.leader.node} failed (${why}) but ${c.refuse}` };
  return {
    kind: 'failover',
    from: s.leader.node,
    to: c.node,
    reason: `primary ${s.leader.node} failed: ${why}`,
  };
}

/** With a healthy leader: bring every other node back into line, one step per cycle. */
function maintain(s: GroupSnapshot, leader: MemberView): Action {
  for (const m of s.members) {
    if (m.name === leader.name || !m.provisioned || m.busy) continue;
    if (!m.running) {
      if (m.needsRejoin || !m.standbyDir) {
        if (!s.settings.rejoin) continue;
        return { kind: 'rejoin', node: m.name, reason: `former primary rejoins ${leader.name}` };
      }
      // Not at once: a standby being removed (remove-replica) or restarted by hand is left alone.
      if (m.downForMs < Math.max(s.settings.primaryDownGraceMs, STANDBY_RESTART_GRACE_MS)) continue;
      return {
        kind: 'start_standby',
        node: m.name,
        reason: `standby stopped; restarting it under ${leader.name}`,
      };
    }
    if (!m.reachable) continue;
    if (m.upstream !== leader.name) {
      return {
        kind: 'repoint',
        node: m.name,
        reason: `follows ${m.upstream ?? 'nobody'}, not ${leader.name}`,
      };
    }
    if (m.notStreamingForMs >= s.settings.notStreamingRejoinMs && s.settings.rejoin) {
      return {
        kind: 'rejoin',
        node: m.name,
        reason: `not streaming from ${leader.name} for ${(m.notStreamingForMs / 1000).toFixed(0)} s (diverged?)`,
      };
    }
  }
  return { kind: 'none', reason: 'healthy' };
}

/** Actions on one member that a group with a healthy leader takes (see maintain()). */
const MEMBER_ACTIONS = new Set<Action['kind']>(['start_standby', 'rejoin', 'repoint']);

/**
 * decide(), where `waiting(action)` says that an action is waiting out its failure back-off. One
 * member's action (start_standby, rejoin, repoint) that waits sets only that member aside:
 * decide() runs again as if it were busy, so the other members are still looked after (a killed
 * standby is restarted) and a healthy leader's lease is still renewed ('none'). Null when the
 * group's own action waits (a failover, say): nothing to do this cycle.
 */
export function decideAround(s: GroupSnapshot, waiting: (a: Action) => boolean): Action | null {
  let snap = s;
  for (;;) {
    const action = decide(snap);
    if (!waiting(action)) return action;
    if (!('node' in action) || !MEMBER_ACTIONS.has(action.kind)) return null;
    const aside = action.node;
    snap = { ...snap, members: snap.members.map((m) => (m.name === aside ? { ...m, busy: true } : m)) };
  }
}

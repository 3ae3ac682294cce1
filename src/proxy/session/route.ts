/**
 * Where a client message goes, decided once, as a value: answered by the proxy itself, or sent to
 * a server of a group in a role (the primary, a replica, or whichever the transaction holds). Pure:
 * what the message is (MessageFacts, from its text's analysis) and what the session holds
 * (SessionView) in, a Route out; the session carries it out (session.ts). Read consistency is a
 * second pure step: the WAL position a replica must have replayed to serve a read (readPosition).
 *
 * Later (sharding), a Route may name several groups and how to merge their replies.
 */
import type { TransactionStatus } from '../../protocol/backend-messages.js';
import type { Consistency } from '../read-router.js';
import { laterLsn } from '../commit-horizon.js';

/**
 * Where a message may run: on a replica (a read), only on the primary (a write), or either. A
 * `primary-read` is a read the client sends to the primary (a `pgscale:primary` hint, or
 * `pgscale.target = primary`): it attaches the primary as a write does, but it writes nothing, so
 * no commit position is learnt after it (a round trip, and a second transaction on the primary,
 * per read) and it is no writing part of a transaction over several groups.
 */
export type MessageClass = 'read' | 'write' | 'neutral' | 'primary-read';

/** Only the primary may serve it. */
export const onPrimary = (cls: MessageClass): boolean => cls === 'write' || cls === 'primary-read';

/** What the proxy answers without a server. */
export type LocalAnswer =
  /** SET/RESET of the proxy's own settings (pgscale.target, pgscale.consistency). */
  | 'proxy-setting'
  /** LISTEN/UNLISTEN alone in a Query: served by the fan-out connection. */
  | 'listen'
  /** Close of a named statement: the client's name goes away (servers share statements by text). */
  | 'close-statement'
  /** Flush with nothing in flight. */
  | 'flush'
  /** Parse of a statement the pool's connections already hold: ParseComplete now, prepared at Bind. */
  | 'parse-known'
  /** Sync with nothing running: ReadyForQuery. */
  | 'idle-sync';

export interface MessageFacts {
  /** The frontend message type ('Q', 'P', 'B', …). */
  readonly type: string;
  readonly cls: MessageClass;
  /** A Query whose only statement sets or resets one of the proxy's own settings. */
  readonly proxySetting: boolean;
  /** A Query whose only statement is LISTEN or UNLISTEN. */
  readonly listen: boolean;
  /** A Close of a named statement. */
  readonly closesNamedStatement: boolean;
  /** A Parse of a named statement whose server-side name the pool already knows. */
  readonly parseKnown: boolean;
}

export interface SessionView {
  /** The role of the server the session holds now, or null. */
  readonly attached: 'primary' | 'replica' | null;
  readonly txStatus: TransactionStatus;
  /** No reply is due from the attached server. */
  readonly idle: boolean;
  readonly pinned: boolean;
  /** The LISTEN fan-out serves this session (transaction pooling). */
  readonly fanOut: boolean;
  /** The client's encoding is UTF8 (the fan-out connection's). */
  readonly utf8: boolean;
  /** Reads may go to replicas (a read router, not pinned). */
  readonly readScaling: boolean;
  readonly consistency: Consistency;
}

export interface Topology {
  /** The replication group the session's database lives in. */
  readonly group: string;
  /** Its routes by role, made once (a route per message would allocate). */
  readonly routes: { readonly primary: Route; readonly replica: Route; readonly any: Route };
}

/** Topologies by group name, shared by every session (no object per message or per client). */
const topologies = new Map<string, Topology>();

export function topologyOf(group: string): Topology {
  let t = topologies.get(group);
  if (t === undefined) {
    t = {
      group,
      routes: {
        primary: { kind: 'group', group, role: 'primary' },
        replica: { kind: 'group', group, role: 'replica' },
        any: { kind: 'group', group, role: 'any' },
      },
    };
    if (topologies.size < 1024) topologies.set(group, t);
  }
  return t;
}

export type Route =
  | { readonly kind: 'local'; readonly answer: LocalAnswer }
  | { readonly kind: 'group'; readonly group: string; readonly role: 'primary' | 'replica' | 'any' };

const LOCAL: { readonly [K in LocalAnswer]: Route } = {
  'proxy-setting': { kind: 'local', answer: 'proxy-setting' },
  listen: { kind: 'local', answer: 'listen' },
  'close-statement': { kind: 'local', answer: 'close-statement' },
  flush: { kind: 'local', answer: 'flush' },
  'parse-known': { kind: 'local', answer: 'parse-known' },
  'idle-sync': { kind: 'local', answer: 'idle-sync' },
};

/** Where one message goes, given what the session holds now. */
export function planRoute(m: MessageFacts, view: SessionView, topology: Topology): Route {
  if (m.proxySetting) return LOCAL['proxy-setting'];
  if (view.attached === null) {
    const local = localAnswer(m, view);
    if (local !== null) return LOCAL[local];
  }
  return topology.routes[roleOf(m, view)];
}

function localAnswer(m: MessageFacts, view: SessionView): LocalAnswer | null {
  switch (m.type) {
    case 'C':
      return m.closesNamedStatement ? 'close-statement' : null;
    case 'Q':
      return m.listen && view.fanOut && view.txStatus === 'I' && view.utf8 ? 'listen' : null;
    case 'H':
      return 'flush';
    case 'P':
      return m.parseKnown && !view.pinned && view.txStatus === 'I' ? 'parse-known' : null;
    case 'S':
      return view.txStatus === 'I' && view.idle ? 'idle-sync' : null;
    default:
      return null;
  }
}

function roleOf(m: MessageFacts, view: SessionView): 'primary' | 'replica' | 'any' {
  if (onPrimary(m.cls)) return 'primary';
  if (m.cls === 'read' && view.readScaling && view.consistency !== 'primary') return 'replica';
  return 'any';
}

/**
 * The role of the server to attach for the messages queued: a replica only if they are all reads
 * or neutral, with at least one read; else the primary.
 */
export function attachRole(queued: readonly MessageFacts[], view: SessionView): 'primary' | 'replica' {
  if (!view.readScaling || view.consistency === 'primary') return 'primary';
  let reads = 0;
  for (const m of queued) {
    if (onPrimary(m.cls)) return 'primary';
    if (m.cls === 'read') reads++;
  }
  return reads > 0 ? 'replica' : 'primary';
}

/** A route the attached server cannot serve: a write while a replica is attached. */
export function needsSwitch(route: Route, view: SessionView): boolean {
  return route.kind === 'group' && route.role === 'primary' && view.attached === 'replica';
}

/**
 * The WAL position a replica must have replayed to serve a read at `consistency`: none (eventual),
 * the client's own last commit (read-your-writes), or also a later position the proxy knows:
 * `knownLsn` is the commit horizon's (causal: every commit the proxy has seen acknowledged) or the
 * primary's current position, which the session asks for first (linearizable).
 */
export function readPosition(
  consistency: Consistency,
  wroteLsn: bigint | null,
  knownLsn: bigint | null,
): bigint | null {
  if (consistency === 'eventual') return null;
  if (consistency === 'causal' || consistency === 'linearizable') return laterLsn(wroteLsn, knownLsn);
  return wroteLsn;
}

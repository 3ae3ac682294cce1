/**
 * What the HA service remembers about each group between cycles (the leader key as last read, the
 * highest epoch seen, the last primary position, failure back-offs, counters for metrics), and the
 * small helpers its modules share. The decision itself never reads this: decide() gets a snapshot.
 */
import { performance } from 'node:perf_hooks';
import { PgscaleError } from '../errors.js';
import type { Leader } from './decide.js';
import type { KeyValue } from './store.js';

export class HaError extends PgscaleError {}

export interface GroupState {
  leaderKv: KeyValue | null;
  leader: Leader | null;
  lastEpoch: number;
  /** The node the highest epoch was given to (the store's epoch record). */
  lastLeader: string | null;
  lastPrimaryLsn: bigint | null;
  lastRefusal: string | null;
  lastNone: string | null;
  /** Done by this controller since it started (metrics). */
  failovers: number;
  switchovers: number;
  /** Unix ms of the last failover's promotion (read back from the history at start). */
  lastFailoverAt: number | null;
  /**
   * Actions that failed (by kind:node), how often in a row, and when each may run again: one per
   * action, so that two failing actions do not take turns at being news every cycle.
   */
  failures: Map<string, { message: string; count: number; retryAt: number }>;
}

export function newGroupState(): GroupState {
  return {
    leaderKv: null,
    leader: null,
    lastEpoch: 0,
    lastLeader: null,
    lastPrimaryLsn: null,
    lastRefusal: null,
    lastNone: null,
    failovers: 0,
    switchovers: 0,
    lastFailoverAt: null,
    failures: new Map(),
  };
}

/** The group's leader key is ours now (won by compare-and-set): remember it until the next read. */
export function wonLeadership(st: GroupState, leader: Leader): void {
  st.leader = leader;
  st.leaderKv = null;
  st.lastEpoch = leader.epoch;
  st.lastLeader = leader.node;
}

/** Milliseconds since `t0` (performance.now()), rounded. */
export function ms(t0: number): number {
  return Math.round(performance.now() - t0);
}

export function sleep(msec: number): Promise<void> {
  return new Promise((r) => setTimeout(r, msec));
}

export function sameHost(a: string, b: string): boolean {
  const local = (h: string) => h === 'localhost' || h === '127.0.0.1' || h === '::1';
  return a === b || (local(a) && local(b));
}

/**
 * A transaction on several groups (sharding), as the server side holds it: besides the current
 * leg, the legs that keep their group's part of the transaction (parked), each with its server
 * until the transaction ends (shard-tx.ts moves the transaction between them; multi-group.ts
 * ends it). Made by ServerHolder on first use; a session that never leaves one group has none.
 */
import { buildErrorResponse } from '../../protocol/error-response.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { Pool } from '../backend/pool.js';
import type { ServerConn } from '../backend/server-conn.js';
import type { OwnQueryResult } from './pending.js';
import type { ServerLeg } from './server-leg.js';

/** What the parts need of the holder: whose pool a leg's server is, and letting go of a leg. */
export interface PartsHost {
  poolOf(leg: ServerLeg): Pool;
  unbind(leg: ServerLeg, s: ServerConn): void;
}

/** What an own query in flight on a lost server gets (multi-group.ts answers the client). */
export const LOST_RESULT: OwnQueryResult = {
  rows: [],
  error: buildErrorResponse('ERROR', SqlState.CONNECTION_FAILURE, 'server connection lost'),
  status: 'I',
};

export class GroupParts {
  private readonly parked = new Map<string, ServerLeg>();

  constructor(private readonly host: PartsHost) {}

  /** Parts are held on other groups than the current leg's. */
  get any(): boolean {
    return this.parked.size > 0;
  }

  /** The parked legs that still have a server. */
  legs(): ServerLeg[] {
    const out: ServerLeg[] = [];
    for (const l of this.parked.values()) if (l.server) out.push(l);
    return out;
  }

  park(leg: ServerLeg): void {
    this.parked.set(leg.group, leg);
  }

  /** The parked leg of `group`, no longer parked; undefined when there is none. */
  take(group: string): ServerLeg | undefined {
    const leg = this.parked.get(group);
    if (leg !== undefined) this.parked.delete(group);
    return leg;
  }

  /** `leg` lost its server. */
  forget(leg: ServerLeg): void {
    if (this.parked.get(leg.group) === leg) this.parked.delete(leg.group);
  }

  /** Every parked server back to its pool (in a transaction still: the pool rolls it back). */
  releaseAll(): void {
    for (const l of [...this.parked.values()]) this.release(l);
    this.parked.clear();
  }

  /** A parked leg's server back to its pool; dropped when replies were still due from it. */
  release(leg: ServerLeg): void {
    const s = leg.server;
    this.parked.delete(leg.group);
    if (!s) return;
    const pool = this.host.poolOf(leg);
    const busy = !leg.idle;
    if (busy) {
      leg.abandonCaptures();
      leg.clear();
    }
    this.host.unbind(leg, s);
    if (busy) s.destroy();
    pool.release(s);
  }
}

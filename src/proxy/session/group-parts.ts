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

/** What the parts need of the server holder. */
export interface PartsHost {
  /** The leg the client's messages go to now. */
  readonly leg: ServerLeg | null;
  poolOf(leg: ServerLeg): Pool;
  unbind(leg: ServerLeg, s: ServerConn): void;
  /** The current leg steps aside (null) or `leg`, parked before, becomes current again. */
  park(): void;
  resumeLeg(leg: ServerLeg): void;
  /** The current leg's server back to its pool. */
  releaseServer(): void;
  endClient(fatal: Buffer): void;
}

/** What an own query in flight on a lost server gets (multi-group.ts answers the client). */
export const LOST_RESULT: OwnQueryResult = {
  rows: [],
  error: buildErrorResponse('ERROR', SqlState.CONNECTION_FAILURE, 'server connection lost'),
  status: 'I',
};

export class GroupParts {
  private readonly parked = new Map<string, ServerLeg>();
  /** The proxy is ending the transaction (multi-group.ts): no leg is released meanwhile. */
  ending = false;

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

  /** Every leg holding a part of the transaction: the current one first. */
  txLegs(): ServerLeg[] {
    const cur = this.host.leg;
    return cur?.server ? [cur, ...this.legs()] : this.legs();
  }

  /** The current leg (idle, in a transaction) keeps its part and steps aside for another group's. */
  park(): void {
    const leg = this.host.leg!;
    this.parked.set(leg.group, leg);
    this.host.park();
  }

  /** The leg of `group` parked earlier becomes the current one: true; false when there is none. */
  unpark(group: string): boolean {
    const leg = this.parked.get(group);
    if (leg === undefined) return false;
    this.parked.delete(group);
    this.host.resumeLeg(leg);
    return true;
  }

  /** The transaction ended (every leg idle, outside a transaction): every server goes back. */
  endedAll(): void {
    this.ending = false;
    this.releaseAll();
    this.host.releaseServer();
  }

  /**
   * The transaction ended on one group by the client's own statement (which shard-tx.ts lets
   * through only alone, so this is a net): the other parts are rolled back and the client is
   * told, since its transaction did not end as one.
   */
  endedOnOneGroup(leg: ServerLeg): void {
    this.releaseAll();
    this.host.endClient(
      buildErrorResponse(
        'FATAL',
        SqlState.TRANSACTION_ROLLBACK,
        `a transaction on several groups ended on group ${leg.group} alone: its parts on the other groups were rolled back`,
      ),
    );
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

/**
 * The legs of one client's transactions, by group: one leg per group the client has used, kept
 * for reuse across transactions. Until sharding there is one group, so the first leg is a field
 * and a map exists only once a second group is used (no map, no hashing per transaction).
 */
import type { ServerConn } from '../backend/server-conn.js';
import type { ServerLeg } from './server-leg.js';

export class LegSet {
  private first: ServerLeg | null = null;
  private firstGroup = '';
  private others: Map<string, ServerLeg> | null = null;

  /** The leg to `group`, made by `maker` on first use (an object, not a closure per call). */
  legFor(group: string, maker: { makeLeg(): ServerLeg }): ServerLeg {
    const first = this.first;
    if (first !== null && this.firstGroup === group) return first;
    if (first === null) {
      this.firstGroup = group;
      return (this.first = maker.makeLeg());
    }
    const legs = (this.others ??= new Map<string, ServerLeg>());
    let leg = legs.get(group);
    if (leg === undefined) legs.set(group, (leg = maker.makeLeg()));
    return leg;
  }

  /** The server connections running work now, one per busy leg. */
  busyServers(): ServerConn[] {
    const out: ServerConn[] = [];
    const add = (leg: ServerLeg) => {
      if (leg.server && !leg.idle) out.push(leg.server);
    };
    if (this.first !== null) add(this.first);
    if (this.others !== null) for (const leg of this.others.values()) add(leg);
    return out;
  }
}

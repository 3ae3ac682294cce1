/**
 * The HA history in the state store: one key per event under `history/`, named by the time it
 * was written and a sequence number so that keys sort in order, trimmed to the newest
 * HISTORY_LIMIT. Events that happen while the store cannot be reached (the primary stopped for
 * want of a lease) are kept in memory with their own time and written, in order, once it answers
 * again: the history is where an operator looks for what happened, so nothing is left out of it.
 */
import type { HaEvent } from './ha-routes.js';
import { HISTORY_LIMIT } from './ha-routes.js';
import type { StateStore } from './store.js';

const PREFIX = 'history/';

/** An event as stored: one written before replication shards were renamed groups has `shard`. */
type StoredEvent = Omit<HaEvent, 'group'> & { group?: number; shard?: number };

/** The event under today's names (an older pgscale's events say `shard` for the group). */
export function fromStored(e: StoredEvent): HaEvent {
  const { at, shard, group, ...rest } = e;
  return { at, group: group ?? shard ?? -1, ...rest };
}

export class HaHistory {
  private seq = 0;
  /** Events not written yet (the store was unreachable), oldest first. */
  private readonly unrecorded: HaEvent[] = [];

  constructor(private readonly store: () => StateStore) {}

  /** Writes an event now (`at` defaults to now); rejects when the store does not answer. */
  async record(e: Omit<HaEvent, 'at'>, at = new Date().toISOString()): Promise<HaEvent> {
    const ev: HaEvent = { at, ...e };
    const key = `${PREFIX}${Date.now().toString().padStart(15, '0')}-${String(this.seq++).padStart(6, '0')}`;
    await this.store().put(key, JSON.stringify(ev));
    this.seq %= 1_000_000;
    if (this.seq % 50 === 0) void this.trim();
    return ev;
  }

  /** Keeps an event that cannot be written now (the store is unreachable) for flush(). */
  defer(e: Omit<HaEvent, 'at'>): void {
    this.unrecorded.push({ at: new Date().toISOString(), ...e });
  }

  /** Writes the deferred events, in order; stops at the first failure (retried next time). */
  async flush(): Promise<void> {
    while (this.unrecorded.length > 0) {
      const { at, ...e } = this.unrecorded[0]!;
      await this.record(e, at);
      this.unrecorded.shift();
    }
  }

  async list(limit = HISTORY_LIMIT): Promise<HaEvent[]> {
    const kvs = await this.store().list(PREFIX);
    return kvs.slice(-limit).map((kv) => fromStored(JSON.parse(kv.value) as StoredEvent));
  }

  private async trim(): Promise<void> {
    try {
      const all = await this.store().list(PREFIX);
      for (const kv of all.slice(0, Math.max(0, all.length - HISTORY_LIMIT))) {
        await this.store().compareAndDelete(kv.key, kv.revision);
      }
    } catch {
      // next time
    }
  }
}

/** Unix ms of each group's last failover: a promotion that followed failover_detected. */
export function lastFailovers(events: readonly HaEvent[], groups: number): (number | null)[] {
  const out: (number | null)[] = Array.from({ length: groups }, () => null);
  const inFailover = new Set<number>();
  for (const e of events) {
    if (e.group < 0 || e.group >= groups) continue;
    if (e.event === 'failover_detected') inFailover.add(e.group);
    else if (e.event === 'switchover_started') inFailover.delete(e.group);
    else if (e.event === 'promoted' && inFailover.has(e.group)) {
      out[e.group] = Date.parse(e.at);
      inFailover.delete(e.group);
    }
  }
  return out;
}

/**
 * The leader key of each group in the state store, and this controller's lease. Which node is a
 * group's primary is decided here and nowhere else: `shards/<n>/leader` names the node and its
 * epoch, bound to our lease (it vanishes when the lease ends: TTL on the store's monotonic clock),
 * and `shards/<n>/epoch` remembers the highest epoch ever given, so that a new leader always gets
 * a higher one. take() is the one compare-and-set that changes the leader: acquiring a group with
 * no leader, failover and switchover all go through it, and nothing is promoted unless it won.
 * The keys keep the `shards/` prefix they had before replication shards were renamed groups:
 * a cluster started by an older pgscale comes up on its own keys, with no migration.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../obs/logger.js';
import type { Leader } from './decide.js';
import { ErrorCodes } from '../errors.js';
import { StoreError } from './store.js';
import type { KeyValue, LeaseId, StateStore } from './store.js';

export const HA_KEYS = {
  leader: (s: number) => `shards/${s}/leader`,
  epoch: (s: number) => `shards/${s}/epoch`,
  paused: 'paused',
};

/** The store's `shards/<n>/epoch` record: the last epoch given and to which node. */
export interface EpochRecord {
  epoch: number;
  node: string;
}

export class LeaderLease {
  private lease: LeaseId | null = null;
  private lastRenew = 0;

  /** `session`: the lease leader keys go under (an agent's session); default: one of our own. */
  constructor(
    private readonly store: () => StateStore,
    private readonly ttlMs: number,
    private readonly log: Logger,
    private readonly session?: () => LeaseId | null,
  ) {}

  /** The group's leader key (with its revision and lease) and the epoch record, as stored now. */
  async read(group: number): Promise<{ leaderKv: KeyValue | null; epoch: EpochRecord | null }> {
    const [leaderKv, epochKv] = await Promise.all([
      this.store().get(HA_KEYS.leader(group)),
      this.store().get(HA_KEYS.epoch(group)),
    ]);
    return { leaderKv, epoch: epochKv ? (JSON.parse(epochKv.value) as EpochRecord) : null };
  }

  async readEpoch(group: number): Promise<EpochRecord | null> {
    const kv = await this.store().get(HA_KEYS.epoch(group));
    return kv ? (JSON.parse(kv.value) as EpochRecord) : null;
  }

  /**
   * Makes `leader` the group's leader if the key is still at `revision` (0: absent), under our
   * lease, then records its epoch. False: someone changed the key meanwhile; nothing was written.
   */
  async take(group: number, leader: Leader, revision: number): Promise<boolean> {
    const lease = await this.ourLease();
    const value = JSON.stringify({ node: leader.node, epoch: leader.epoch } satisfies Leader);
    const rev = await this.store().compareAndSet(HA_KEYS.leader(group), revision, value, { lease });
    if (rev === null) return false;
    await this.store().put(HA_KEYS.epoch(group), JSON.stringify({ epoch: leader.epoch, node: leader.node }));
    return true;
  }

  /** Keeps the leader key's lease alive (at most every TTL/4) while its node is healthy. */
  async renew(group: number, kv: KeyValue | null): Promise<void> {
    if (!kv?.lease) return;
    if (performance.now() - this.lastRenew < this.ttlMs / 4) return;
    const alive = await this.store().keepAlive(kv.lease);
    this.lastRenew = performance.now();
    if (!alive) this.log.warn({ group }, `group ${group}: the leader lease had ended; it is taken again`);
  }

  /** Our lease (granted on first use, again when it ended). */
  private async ourLease(): Promise<LeaseId> {
    if (this.session) {
      const lease = this.session();
      if (lease === null) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, 'no agent session');
      return lease;
    }
    if (this.lease && (await this.store().keepAlive(this.lease))) return this.lease;
    this.lease = await this.store().grantLease(this.ttlMs);
    this.lastRenew = performance.now();
    return this.lease;
  }
}

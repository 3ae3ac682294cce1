/**
 * The topology in the state store (several hosts): the decider writes what its decide loop
 * publishes to the `topology` key; every stateless `pgscale proxy` follows that key into its own
 * TopologyView. The key has no lease: when the decider dies, proxies keep routing by the last
 * topology (right until something else fails) and the next decider writes a new one.
 *
 * A follower watches the key and also reads it every `pollMs`: a watch on an etcd member cut off
 * from the others delivers nothing until the network heals, and a proxy must not miss a failover
 * for that. Epochs are the follower's own (one more at every change of a group's primary), so a
 * new decider starting its counters afresh never makes them go back.
 */
import type { Logger } from '../obs/logger.js';
import { errorMessage } from '../errors.js';
import type { Endpoint, GroupTopology, Topology, TopologyView } from '../topology/topology.js';
import type { StateStore } from './store.js';

export const TOPOLOGY_KEY = 'topology';

/** Writes each topology the view publishes; a write that failed is tried again by flush(). */
export class TopologyWriter {
  private pending: string | null = null;
  private writing: Promise<void> | null = null;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: () => StateStore | null,
    view: TopologyView,
    private readonly log: Logger,
  ) {
    this.unsubscribe = view.subscribe((t) => {
      this.pending = JSON.stringify({ groups: t.groups.map(stripEpoch) });
      void this.flush();
    });
  }

  /** Writes the latest topology not yet written (one write at a time). */
  flush(): Promise<void> {
    this.writing ??= (async () => {
      while (this.pending !== null) {
        const store = this.store();
        if (!store) return;
        const value = this.pending;
        try {
          await store.put(TOPOLOGY_KEY, value);
          if (this.pending === value) this.pending = null;
        } catch (e) {
          this.log.warn(
            `the topology could not be written to the state store (tried again): ${errorMessage(e)}`,
          );
          return;
        }
      }
    })().finally(() => (this.writing = null));
    return this.writing;
  }

  close(): void {
    this.unsubscribe();
  }
}

function stripEpoch(g: GroupTopology): { primary: Endpoint | null; replicas: readonly Endpoint[] } {
  return { primary: g.primary, replicas: g.replicas };
}

/** Follows the `topology` key into `view` (watch + poll). */
export class TopologyFollower {
  private stopWatch: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private last = '';
  private epoch = 0;
  private readonly groupEpochs: number[] = [];

  constructor(
    private readonly store: StateStore,
    private readonly view: TopologyView,
    private readonly log: Logger,
    private readonly pollMs = 1000,
  ) {}

  /** Starts following; true when a topology was there to read. */
  async start(): Promise<boolean> {
    this.stopWatch = this.store.watch(TOPOLOGY_KEY, (e) => {
      if (e.key === TOPOLOGY_KEY && e.value !== null) this.apply(e.value);
    });
    const found = await this.read();
    const tick = () => {
      this.timer = setTimeout(() => {
        void this.read().finally(() => {
          if (this.timer) tick();
        });
      }, this.pollMs);
    };
    tick();
    return found;
  }

  private async read(): Promise<boolean> {
    try {
      const kv = await this.store.get(TOPOLOGY_KEY);
      if (kv) this.apply(kv.value);
      return kv !== null;
    } catch {
      return false; // the next read tries again
    }
  }

  private apply(value: string): void {
    if (value === this.last) return;
    let next: { groups: { primary: Endpoint | null; replicas: Endpoint[] }[] };
    try {
      next = JSON.parse(value) as typeof next;
      if (!Array.isArray(next.groups)) throw new Error('no groups');
    } catch (e) {
      this.log.warn(`the topology in the state store is unreadable: ${errorMessage(e)}`);
      return;
    }
    this.last = value;
    const prev = this.view.current();
    let changed = false;
    const groups: GroupTopology[] = next.groups.map((g, i) => {
      const before = prev.groups[i]?.primary?.name ?? null;
      if ((g.primary?.name ?? null) !== before || this.groupEpochs[i] === undefined) {
        this.groupEpochs[i] = (this.groupEpochs[i] ?? 0) + 1;
        changed = true;
      }
      return { primary: g.primary, replicas: g.replicas, epoch: this.groupEpochs[i] };
    });
    if (changed || groups.length !== prev.groups.length) this.epoch++;
    const t: Topology = { epoch: this.epoch, groups };
    this.view.publish(t);
  }

  stop(): void {
    this.stopWatch?.();
    this.stopWatch = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

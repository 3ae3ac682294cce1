/**
 * The Topology: which server is the primary (and which are replicas) of each shard, with the
 * epoch of the current primary. It is the only thing the proxy knows about high availability:
 * the HA layer (or, before it exists, the cluster's own view of its data directories) publishes a
 * new value, and the proxy routes by it. A TopologyView holds the current value and tells
 * subscribers when it changes.
 */

export interface Endpoint {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

export interface ShardTopology {
  readonly primary: Endpoint | null;
  readonly replicas: readonly Endpoint[];
}

export interface Topology {
  /** Increases at every change of primary. */
  readonly epoch: number;
  readonly shards: readonly ShardTopology[];
}

export const EMPTY_TOPOLOGY: Topology = Object.freeze({ epoch: 0, shards: [] });

type Listener = (t: Topology, previous: Topology) => void;

export class TopologyView {
  private value: Topology;
  private readonly listeners = new Set<Listener>();
  /** The last primary published for each shard, kept while a failover leaves the shard without one. */
  private readonly lastPrimaries: (Endpoint | null)[] = [];

  constructor(initial: Topology = EMPTY_TOPOLOGY) {
    this.value = initial;
    this.remember(initial);
  }

  /** The shard's primary now, or the last one published while it has none (a failover is running). */
  lastPrimary(shard: number): Endpoint | null {
    return this.value.shards[shard]?.primary ?? this.lastPrimaries[shard] ?? null;
  }

  private remember(t: Topology): void {
    t.shards.forEach((s, i) => {
      if (s.primary) this.lastPrimaries[i] = s.primary;
    });
  }

  current(): Topology {
    return this.value;
  }

  publish(next: Topology): void {
    const previous = this.value;
    this.value = next;
    this.remember(next);
    for (const l of this.listeners) l(next, previous);
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

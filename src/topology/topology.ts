/**
 * The Topology: which server is the primary (and which are replicas) of each group, with the
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

export interface GroupTopology {
  readonly primary: Endpoint | null;
  readonly replicas: readonly Endpoint[];
  /** Increases at every change of this group's primary (HA publishes it; absent otherwise). */
  readonly epoch?: number;
}

export interface Topology {
  /** Increases at every change of primary. */
  readonly epoch: number;
  readonly groups: readonly GroupTopology[];
}

export const EMPTY_TOPOLOGY: Topology = Object.freeze({ epoch: 0, groups: [] });

type Listener = (t: Topology, previous: Topology) => void;

export class TopologyView {
  private value: Topology;
  private readonly listeners = new Set<Listener>();
  /** The last primary published for each group, kept while a failover leaves the group without one. */
  private readonly lastPrimaries: (Endpoint | null)[] = [];

  constructor(initial: Topology = EMPTY_TOPOLOGY) {
    this.value = initial;
    this.remember(initial);
  }

  /** The group's primary now, or the last one published while it has none (a failover is running). */
  lastPrimary(group: number): Endpoint | null {
    return this.value.groups[group]?.primary ?? this.lastPrimaries[group] ?? null;
  }

  private remember(t: Topology): void {
    t.groups.forEach((s, i) => {
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

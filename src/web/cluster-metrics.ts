/**
 * The cluster's gauges, read at scrape time from the same node status `pgscale status` shows:
 * whether each node is up (with its role), and each replica's lag and streaming state. Nodes that
 * leave the config stop being reported (the gauges are reset at each collection).
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { NodeStatus } from '../cluster/status.js';

export class ClusterMetrics {
  private readonly up: Gauge<'node' | 'shard' | 'role'>;
  private readonly lagBytes: Gauge<'node' | 'shard'>;
  private readonly lagSeconds: Gauge<'node' | 'shard'>;
  private readonly streaming: Gauge<'node' | 'shard'>;
  private readonly errors: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.up = new Gauge({
      name: 'pgscale_node_up',
      help: 'Whether the node answers SQL (1) or not (0); role is primary, replica or none (not provisioned).',
      labelNames: ['node', 'shard', 'role'],
      registers,
    });
    this.lagBytes = new Gauge({
      name: 'pgscale_replication_lag_bytes',
      help: "Bytes of WAL the node has not replayed yet, against its shard primary's current position (0 on a primary).",
      labelNames: ['node', 'shard'],
      registers,
    });
    this.lagSeconds = new Gauge({
      name: 'pgscale_replication_lag_seconds',
      help: 'Replica replay lag in seconds (pg_stat_replication.replay_lag on the primary).',
      labelNames: ['node', 'shard'],
      registers,
    });
    this.streaming = new Gauge({
      name: 'pgscale_replica_streaming',
      help: "Whether the replica's WAL receiver is streaming (1) or not (0).",
      labelNames: ['node', 'shard'],
      registers,
    });
    this.errors = new Counter({
      name: 'pgscale_status_collect_errors_total',
      help: 'Scrapes for which the node status could not be read.',
      registers,
    });
  }

  update(nodes: readonly NodeStatus[]): void {
    this.clear();
    for (const n of nodes) {
      const l = { node: n.name, shard: String(n.shard) };
      this.up.set({ ...l, role: n.role ?? 'none' }, n.state === 'running' ? 1 : 0);
      if (n.lagBytes !== null) this.lagBytes.set(l, n.lagBytes);
      if (n.lagSeconds !== null) this.lagSeconds.set(l, n.lagSeconds);
      if (n.role === 'replica') this.streaming.set(l, n.streaming ? 1 : 0);
    }
  }

  /** The status could not be read: report nothing rather than stale values. */
  failed(): void {
    this.clear();
    this.errors.inc();
  }

  private clear(): void {
    this.up.reset();
    this.lagBytes.reset();
    this.lagSeconds.reset();
    this.streaming.reset();
  }
}

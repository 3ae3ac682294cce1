/**
 * The cluster's gauges, read at scrape time from the same node status `pgscale status` shows:
 * whether each node is up, its role, timeline, lag and streaming state. Every series is labelled
 * by `{node, group}` only: the role is a 0/1 value (pgscale_node_is_primary / _is_replica, as
 * Patroni's patroni_primary / patroni_replica), never a label, so a switchover changes values
 * and creates no series. Nodes that leave the config stop being reported (the gauges are reset at
 * each collection).
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { ArchiveStatus, NodeStatus } from '../cluster/status.js';

type NodeLabels = 'node' | 'group';

export class ClusterMetrics {
  private readonly up: Gauge<NodeLabels>;
  private readonly isPrimary: Gauge<NodeLabels>;
  private readonly isReplica: Gauge<NodeLabels>;
  private readonly timeline: Gauge<NodeLabels>;
  private readonly lagBytes: Gauge<NodeLabels>;
  private readonly lagSeconds: Gauge<NodeLabels>;
  private readonly streaming: Gauge<NodeLabels>;
  private readonly archived: Gauge<NodeLabels>;
  private readonly archiveFailed: Gauge<NodeLabels>;
  private readonly archiveFailedAt: Gauge<NodeLabels>;
  private readonly archiveFailing: Gauge<NodeLabels>;
  private readonly errors: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    const gauge = (name: string, help: string) =>
      new Gauge({ name, help, labelNames: ['node', 'group'], registers });
    this.up = gauge('pgscale_node_up', 'Whether the node answers SQL (1) or not (0).');
    this.isPrimary = gauge(
      'pgscale_node_is_primary',
      "Whether the node runs as a primary (1) or not (0), as Patroni's patroni_primary.",
    );
    this.isReplica = gauge(
      'pgscale_node_is_replica',
      "Whether the node runs as a standby (1) or not (0), as Patroni's patroni_replica.",
    );
    this.timeline = gauge('pgscale_node_timeline', 'The timeline the node is on (running nodes).');
    this.lagBytes = gauge(
      'pgscale_replication_lag_bytes',
      "Bytes of WAL the node has not replayed yet, against its group primary's current position (0 on a primary).",
    );
    this.lagSeconds = gauge(
      'pgscale_replication_lag_seconds',
      'Replica replay lag in seconds (pg_stat_replication.replay_lag on the primary; 0 on a primary or an idle standby).',
    );
    this.streaming = gauge(
      'pgscale_replica_streaming',
      "Whether the node's WAL receiver is streaming (1) or not (0); 0 on a primary.",
    );
    this.archived = gauge(
      'pgscale_archive_archived_count',
      'WAL files archived since the statistics were reset (pg_stat_archiver.archived_count; running nodes).',
    );
    this.archiveFailed = gauge(
      'pgscale_archive_failed_count',
      'Failed attempts to archive a WAL file (pg_stat_archiver.failed_count; running nodes).',
    );
    this.archiveFailedAt = gauge(
      'pgscale_archive_last_failed_time_seconds',
      'When archiving last failed, in Unix seconds (pg_stat_archiver.last_failed_time; nodes where it failed).',
    );
    this.archiveFailing = gauge(
      'pgscale_archive_failing',
      'Whether the last archiving attempt failed (1: the last failure is newer than the last success) or not (0).',
    );
    this.errors = new Counter({
      name: 'pgscale_status_collect_errors_total',
      help: 'Scrapes for which the node status could not be read.',
      registers,
    });
  }

  update(nodes: readonly NodeStatus[]): void {
    this.clear();
    for (const n of nodes) {
      const l = { node: n.name, group: String(n.group) };
      const running = n.state === 'running';
      this.up.set(l, running ? 1 : 0);
      this.isPrimary.set(l, running && n.role === 'primary' ? 1 : 0);
      this.isReplica.set(l, running && n.role === 'replica' ? 1 : 0);
      this.streaming.set(l, running && n.role === 'replica' && n.streaming ? 1 : 0);
      if (running && n.timeline !== null) this.timeline.set(l, n.timeline);
      if (n.lagBytes !== null) this.lagBytes.set(l, n.lagBytes);
      // replay_lag is NULL on a primary and on an idle standby: nothing to replay is no lag.
      if (n.lagSeconds !== null || running) this.lagSeconds.set(l, n.lagSeconds ?? 0);
      if (running && n.archive) this.setArchive(l, n.archive);
    }
  }

  private setArchive(l: Record<NodeLabels, string>, a: ArchiveStatus): void {
    this.archived.set(l, a.archivedCount);
    this.archiveFailed.set(l, a.failedCount);
    if (a.lastFailedAt) this.archiveFailedAt.set(l, Date.parse(a.lastFailedAt) / 1000);
    this.archiveFailing.set(l, archiveFailing(a) ? 1 : 0);
  }

  /** The status could not be read: report nothing rather than stale values. */
  failed(): void {
    this.clear();
    this.errors.inc();
  }

  private clear(): void {
    for (const g of [
      this.up,
      this.isPrimary,
      this.isReplica,
      this.timeline,
      this.lagBytes,
      this.lagSeconds,
      this.streaming,
      this.archived,
      this.archiveFailed,
      this.archiveFailedAt,
      this.archiveFailing,
    ]) {
      g.reset();
    }
  }
}

/** Whether archiving fails now: its last failure is newer than its last success. */
export function archiveFailing(a: ArchiveStatus): boolean {
  if (a.lastFailedAt === null) return false;
  return a.lastArchivedAt === null || Date.parse(a.lastFailedAt) > Date.parse(a.lastArchivedAt);
}

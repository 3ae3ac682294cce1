/**
 * Watches the local PostgreSQL nodes once a second (on the monotonic clock) and notices a
 * postmaster that died: one warning line per change naming the node, a counter, and an entry in
 * the recent events that GET /services shows. It does not restart or promote anything: deciding
 * that is high availability's job (src/ha), and a restart loop without fencing would do harm.
 * A stop pgscale asked for itself (switchover, fence, rejoin, down) is logged as such and is not
 * an exit, and is recorded the moment the stop ends (Cluster.onPlannedStop), not at the next
 * pass: a switchover starts the old primary again well within a second. A node that runs again
 * (restarted by HA, or by hand) is noticed too.
 */
import { Counter } from 'prom-client';
import type { Cluster } from '../cluster/cluster.js';
import { runningPid } from '../cluster/instance.js';
import type { NodeRef } from '../config/load.js';
import type { Logger } from '../obs/logger.js';
import { childLogger } from '../obs/logger.js';
import type { Registry } from '../obs/metrics.js';
import { pidAlive } from './controller-file.js';
import type { Service } from './service.js';
import type { Ticker } from './ticker.js';
import { every } from './ticker.js';

export interface NodeEvent {
  at: string;
  node: string;
  group: number;
  event: 'exited' | 'stopped' | 'running';
  pid: number | null;
}

const MAX_EVENTS = 100;

export class Supervisor implements Service {
  readonly name = 'supervisor';
  private ticker: Ticker | null = null;
  private readonly pids = new Map<string, number | null>();
  private readonly recent: NodeEvent[] = [];
  private readonly exits: Counter<'node' | 'group'>;
  private readonly log: Logger;
  private lastCheck: string | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly cluster: Cluster,
    logger: Logger,
    registry: Registry,
    private readonly intervalMs = 1000,
  ) {
    this.log = childLogger(logger, { component: 'supervisor' });
    this.exits = new Counter({
      name: 'pgscale_node_exits_total',
      help: 'Times the controller found a node whose postmaster had stopped without being asked to.',
      labelNames: ['node', 'group'],
      registers: [registry],
    });
  }

  start(): Promise<void> {
    const nodes = this.cluster.nodes();
    for (const n of nodes) this.pids.set(n.name, this.alivePid(n));
    this.unsubscribe = this.cluster.onPlannedStop((name, pid) => this.plannedStop(name, pid));
    this.log.info(
      { nodes: nodes.map((n) => n.name), interval_ms: this.intervalMs },
      `supervising ${nodes.length} node(s)`,
    );
    this.ticker = every(
      this.intervalMs,
      () => this.check(),
      (e) => this.log.error({ err: e }, 'supervision check failed'),
    );
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.ticker?.stop();
    this.ticker = null;
  }

  events(): readonly NodeEvent[] {
    return this.recent;
  }

  status(): unknown {
    return {
      interval_ms: this.intervalMs,
      last_check: this.lastCheck,
      nodes: this.cluster.nodes().map((n) => ({
        name: n.name,
        group: n.group,
        pid: this.pids.get(n.name) ?? null,
        running: (this.pids.get(n.name) ?? null) !== null,
      })),
      events: this.recent.slice(-20),
    };
  }

  /** One pass: compares each node's postmaster with what the previous pass saw. */
  check(): void {
    for (const n of this.cluster.nodes()) {
      const before = this.pids.get(n.name) ?? null;
      const now = this.alivePid(n);
      this.pids.set(n.name, now);
      if (before !== null && now !== before) this.gone(n, before);
      if (now !== null && before !== now) {
        this.record({ node: n.name, group: n.group, event: 'running', pid: now });
        this.log
          .child({ node: n.name, group: n.group })
          .info({ event: 'node_running', pid: now }, `node ${n.name} is running (postmaster pid ${now})`);
      }
    }
    this.lastCheck = new Date().toISOString();
  }

  /** pgscale's own stop ended postmaster `pid` of node `name`: recorded now, once. */
  private plannedStop(name: string, pid: number): void {
    // Not the pid we last saw running: the pass that notices it deals with it.
    if (this.pids.get(name) !== pid) return;
    const n = this.cluster.nodes().find((x) => x.name === name);
    if (!n) return;
    this.pids.set(name, null);
    this.gone(n, pid);
  }

  /** The postmaster `pid` of node `n` is gone (or was replaced by another between two passes). */
  private gone(n: NodeRef, pid: number): void {
    const log = this.log.child({ node: n.name, group: n.group });
    if (this.cluster.stoppedOnPurpose(n.name, pid)) {
      this.record({ node: n.name, group: n.group, event: 'stopped', pid });
      log.info(
        { event: 'node_stopped', pid },
        `node ${n.name} (postmaster pid ${pid}) was stopped by pgscale (switchover, fence, rejoin or down)`,
      );
      return;
    }
    this.exits.inc({ node: n.name, group: String(n.group) });
    this.record({ node: n.name, group: n.group, event: 'exited', pid });
    const next = this.cluster.config.ha.enabled
      ? 'high availability restarts it, or fails over if it was the primary'
      : 'not restarting it (high availability is disabled: ha.enabled)';
    log.warn(
      { event: 'node_exited', pid, log: this.cluster.paths(n.name).log },
      `node ${n.name} (group ${n.group}, postmaster pid ${pid}) is no longer running; ${next}`,
    );
  }

  private alivePid(n: NodeRef): number | null {
    const pid = runningPid(this.cluster.paths(n.name).pgdata);
    return pid !== null && pidAlive(pid) ? pid : null;
  }

  private record(e: Omit<NodeEvent, 'at'>): void {
    this.recent.push({ at: new Date().toISOString(), ...e });
    if (this.recent.length > MAX_EVENTS) this.recent.splice(0, this.recent.length - MAX_EVENTS);
  }
}

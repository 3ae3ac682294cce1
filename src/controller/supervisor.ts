/**
 * Watches the local PostgreSQL nodes once a second (on the monotonic clock) and notices a
 * postmaster that died: one warning line per change naming the node, a counter, and an entry in
 * the recent events that GET /services shows. It does not restart or promote anything: deciding
 * that is high availability's job (a later module), and a restart loop without fencing would do
 * harm. A node that runs again (started by hand) is noticed too.
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
  shard: number;
  event: 'exited' | 'running';
  pid: number | null;
}

const MAX_EVENTS = 100;

export class Supervisor implements Service {
  readonly name = 'supervisor';
  private ticker: Ticker | null = null;
  private readonly pids = new Map<string, number | null>();
  private readonly recent: NodeEvent[] = [];
  private readonly exits: Counter<'node' | 'shard'>;
  private readonly log: Logger;
  private lastCheck: string | null = null;

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
      labelNames: ['node', 'shard'],
      registers: [registry],
    });
  }

  start(): Promise<void> {
    const nodes = this.cluster.nodes();
    for (const n of nodes) this.pids.set(n.name, this.alivePid(n));
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
        shard: n.shard,
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
      const log = this.log.child({ node: n.name, shard: n.shard });
      const logFile = this.cluster.paths(n.name).log;
      if (before !== null && now === null) {
        this.exits.inc({ node: n.name, shard: String(n.shard) });
        this.record({ node: n.name, shard: n.shard, event: 'exited', pid: before });
        log.warn(
          { event: 'node_exited', pid: before, log: logFile },
          `node ${n.name} (shard ${n.shard}, postmaster pid ${before}) is no longer running; ` +
            'not restarting it (no automatic recovery yet)',
        );
      } else if (now !== null && before !== now) {
        this.record({ node: n.name, shard: n.shard, event: 'running', pid: now });
        log.info({ event: 'node_running', pid: now }, `node ${n.name} is running (postmaster pid ${now})`);
      }
    }
    this.lastCheck = new Date().toISOString();
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

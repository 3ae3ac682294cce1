/**
 * The `agents` service: one health-endpoint server per local node (src/web/node-agent.ts), each
 * on the node's api_port, all answering from one status snapshot of the cluster. The snapshot is
 * read with cluster.status() once a second on the monotonic clock, and again on demand when a
 * check arrives and the snapshot is older than 200 ms (concurrent checks share one read), so a
 * load balancer sees a promotion or a stopped primary within about its own check interval.
 * A snapshot that could not be refreshed for 5 s counts as unknown: every check but /liveness
 * and /patroni then answers 503, rather than vouching for a primary we can no longer see.
 */
import { performance } from 'node:perf_hooks';
import type { Cluster } from '../cluster/cluster.js';
import type { NodeStatus } from '../cluster/status.js';
import type { LoadedConfig, NodeRef } from '../config/load.js';
import { allNodes } from '../config/load.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { serverVersionNum } from '../web/health-checks.js';
import { NodeAgent, checkAgentPort } from '../web/node-agent.js';
import type { NodeSnapshot } from '../web/node-agent.js';
import type { Service } from './service.js';
import { every } from './ticker.js';
import type { Ticker } from './ticker.js';

export interface NodeAgentsOptions {
  /** Period of the background status read (default 1000 ms). */
  intervalMs?: number;
  /** A check refreshes a snapshot older than this (default 200 ms). */
  freshMs?: number;
  /** A snapshot older than this is unknown (default 5000 ms). */
  staleMs?: number;
  /** How long a check waits for a refresh before answering from what it has (default 2000 ms). */
  waitMs?: number;
}

interface Snapshot {
  statuses: Map<string, NodeStatus>;
  /** performance.now() when the read started. */
  at: number;
  iso: string;
}

/** Fails naming the api_port (and how to change it) of the first node whose port is taken. */
export async function checkAgentPorts(loaded: LoadedConfig): Promise<void> {
  for (const n of allNodes(loaded.config)) await checkAgentPort(loaded.config.http.listen, n, loaded.file);
}

export class NodeAgentsService implements Service {
  readonly name = 'agents';
  private readonly agents: NodeAgent[];
  private readonly nodes: NodeRef[];
  private snapshot: Snapshot | null = null;
  private reading: Promise<void> | null = null;
  private ticker: Ticker | null = null;
  private failures = 0;
  private lastError: string | null = null;
  private readonly intervalMs: number;
  private readonly freshMs: number;
  private readonly staleMs: number;
  private readonly waitMs: number;

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly cluster: Cluster,
    private readonly log: Logger,
    opts: NodeAgentsOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.freshMs = opts.freshMs ?? 200;
    this.staleMs = opts.staleMs ?? 5000;
    this.waitMs = opts.waitMs ?? 2000;
    this.nodes = cluster.nodes();
    this.agents = this.nodes.map((node) => this.agentFor(node));
  }

  private agentFor(node: NodeRef): NodeAgent {
    return new NodeAgent({
      node,
      host: this.loaded.config.http.listen,
      cluster: this.loaded.config.cluster.name,
      serverVersion: serverVersionNum(this.cluster.bins.version),
      current: () => this.current(node.name),
      logger: this.log.child({ node: node.name, group: node.group }),
      configFile: this.loaded.file,
    });
  }

  /**
   * Follows the cluster's node list (add-replica, remove-replica while the controller runs): a
   * new node gets its health endpoints at once, a removed one loses them. Nothing needs a restart.
   */
  async reload(): Promise<string[]> {
    const key = (n: NodeRef) => `${n.name}:${n.apiPort}`;
    const wanted = this.cluster.nodes();
    const keep = new Set(wanted.map(key));
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      if (keep.has(key(this.nodes[i]!))) continue;
      await this.agents[i]!.stop();
      this.log.info({ node: this.nodes[i]!.name }, `health endpoints of ${this.nodes[i]!.name} closed`);
      this.nodes.splice(i, 1);
      this.agents.splice(i, 1);
    }
    const have = new Set(this.nodes.map(key));
    for (const n of wanted) {
      if (have.has(key(n))) continue;
      const agent = this.agentFor(n);
      await agent.start();
      this.nodes.push(n);
      this.agents.push(agent);
      this.log.info({ node: n.name }, `health endpoints of ${n.name} listening on :${n.apiPort}`);
    }
    return [];
  }

  async preflight(): Promise<void> {
    await checkAgentPorts(this.loaded);
  }

  async start(): Promise<void> {
    await this.refresh();
    for (const a of this.agents) await a.start();
    this.ticker = every(
      this.intervalMs,
      () => this.refresh(),
      (e) => this.log.error({ err: e }, `status read failed: ${errorMessage(e)}`),
    );
    const host = this.loaded.config.http.listen;
    this.log.info(
      { host, ports: Object.fromEntries(this.nodes.map((n) => [n.name, n.apiPort])) },
      `health endpoints listening on ${host}: ${this.nodes.map((n) => `${n.name} :${n.apiPort}`).join(', ')}`,
    );
  }

  async stop(): Promise<void> {
    await this.ticker?.stop();
    this.ticker = null;
    await Promise.all(this.agents.map((a) => a.stop()));
    await this.reading?.catch(() => undefined);
  }

  status(): unknown {
    return {
      listen: this.loaded.config.http.listen,
      interval_ms: this.intervalMs,
      status_read_at: this.snapshot?.iso ?? null,
      failed_reads: this.failures,
      last_error: this.lastError,
      nodes: this.nodes.map((n) => ({ name: n.name, group: n.group, api_port: n.apiPort })),
    };
  }

  /** Reads the cluster's status; concurrent callers share one read. Never rejects. */
  private refresh(): Promise<void> {
    this.reading ??= (async () => {
      const at = performance.now();
      const iso = new Date().toISOString();
      try {
        const list = await this.cluster.status();
        this.snapshot = { statuses: new Map(list.map((s) => [s.name, s])), at, iso };
        if (this.failures > 0) this.log.info(`status read works again after ${this.failures} failures`);
        this.failures = 0;
        this.lastError = null;
      } catch (e) {
        this.failures++;
        this.lastError = errorMessage(e);
        // Once per streak, not once a second.
        if (this.failures === 1) this.log.warn({ err: e }, `cannot read the node status: ${errorMessage(e)}`);
      }
    })().finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  private async current(node: string): Promise<NodeSnapshot> {
    const age = () => (this.snapshot ? performance.now() - this.snapshot.at : Infinity);
    if (age() > this.freshMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.refresh(),
        new Promise((r) => {
          timer = setTimeout(r, this.waitMs);
        }),
      ]);
      clearTimeout(timer);
    }
    const snap = this.snapshot;
    if (!snap || age() > this.staleMs) return { status: null, readAt: snap?.iso ?? null };
    return { status: snap.statuses.get(node) ?? null, readAt: snap.iso };
  }
}

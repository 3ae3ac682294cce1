/**
 * The proxy as a controller service inside `pgscale up`: one endpoint on proxy.port in front of
 * shard 0's primary (sharding will route by shard later). It knows the cluster's own roles (the
 * application role and the superuser, whose passwords pgscale generated), makes the superuser an
 * admin of the console, follows the topology the cluster publishes, and exports its gauges to the
 * controller's /metrics.
 */
import { Gauge } from 'prom-client';
import { portInUse } from '../cluster/ports.js';
import { ErrorCodes, PgscaleError } from '../errors.js';
import type { Registry } from 'prom-client';
import type { Cluster } from '../cluster/cluster.js';
import type { LoadedConfig } from '../config/load.js';
import { loadConfig } from '../config/load.js';
import { AdminSession } from '../proxy/admin.js';
import type { ProxyConfig } from '../config/schema.js';
import type { Service } from '../controller/service.js';
import type { Logger } from '../obs/logger.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import { databasesResolver, topologyResolver } from '../proxy/resolver.js';
import { Session } from '../proxy/session.js';
import type { Topology } from '../topology/topology.js';
import { TopologyView } from '../topology/topology.js';

/** The cluster's current topology as its data directories describe it (HA will publish its own). */
export function clusterTopology(cluster: Cluster, epoch: number): Topology {
  return {
    epoch,
    shards: cluster.config.shards.map((_, shard) => {
      const primary = cluster.primaryOf(shard);
      return {
        primary: primary ? { name: primary.name, host: primary.host, port: primary.port } : null,
        replicas: cluster
          .nodes()
          .filter((n) => n.shard === shard && n.name !== primary?.name)
          .map((n) => ({ name: n.name, host: n.host, port: n.port })),
      };
    }),
  };
}

export function proxyConfigFor(loaded: LoadedConfig): ProxyConfig {
  const c = loaded.config;
  const admins = c.proxy.admin_users.includes(c.postgres.superuser)
    ? c.proxy.admin_users
    : [...c.proxy.admin_users, c.postgres.superuser];
  return { ...c.proxy, admin_users: admins };
}

/** Fails naming proxy.port when something else listens there; nothing is started. */
export async function checkProxyPort(loaded: LoadedConfig): Promise<void> {
  const { enabled, listen, port } = loaded.config.proxy;
  if (enabled && (await portInUse(port, listen))) {
    throw new PgscaleError(
      ErrorCodes.PORT_IN_USE,
      `port ${port} of the proxy (proxy.port, on ${listen}) is already in use by another process; ` +
        `stop it or choose another proxy.port in ${loaded.file}`,
    );
  }
}

export class ProxyService implements Service {
  readonly name = 'proxy';
  private proxy: ProxyServer | null = null;
  private unsubscribe: (() => void) | null = null;
  readonly view: TopologyView;

  /**
   * `view`: the topology high availability publishes; without one (HA disabled) the proxy
   * publishes the data directories' view once at start.
   */
  constructor(
    private readonly loaded: LoadedConfig,
    private readonly cluster: Cluster,
    private readonly logger: Logger,
    registry: Registry,
    view?: TopologyView,
  ) {
    this.view = view ?? new TopologyView();
    this.ownsTopology = view === undefined;
    this.registerMetrics(registry);
  }

  private readonly ownsTopology: boolean;

  async preflight(): Promise<void> {
    await checkProxyPort(this.loaded);
  }

  async start(): Promise<void> {
    // Services start after the cluster is up, so the data directories now say who is primary.
    if (this.ownsTopology) this.view.publish(clusterTopology(this.cluster, this.view.current().epoch + 1));
    const secrets = this.cluster.secrets();
    const cfg = proxyConfigFor(this.loaded);
    const inline = new Map([
      [this.loaded.config.app.user, secrets.app],
      [this.loaded.config.postgres.superuser, secrets.superuser],
    ]);
    const explicit = Object.keys(cfg.databases).length > 0 ? databasesResolver(cfg) : undefined;
    this.proxy = new ProxyServer({
      config: cfg,
      resolve: topologyResolver(this.view, explicit),
      inlineUsers: inline,
      log: (line) => this.logger.info(line),
    });
    AdminSession.hooks = { reload: () => this.reload() };
    const holdMs = this.loaded.config.ha.proxy_hold_timeout * 1000;
    if (!this.ownsTopology) this.proxy.holdOnUnreachableMs = holdMs;
    const a = await this.proxy.start();
    this.unsubscribe = this.view.subscribe((t, prev) => {
      const s = t.shards[0];
      const p = prev.shards[0];
      if (!s) return;
      const same =
        s.primary?.name === p?.primary?.name &&
        JSON.stringify(s.replicas.map((r) => r.name)) ===
          JSON.stringify(p?.replicas.map((r) => r.name) ?? []);
      if (same) return;
      this.logger.info(
        { epoch: t.epoch, primary: s.primary?.name ?? null, replicas: s.replicas.map((r) => r.name) },
        s.primary ? `routing writes to ${s.primary.name}` : 'no primary: holding new transactions',
      );
      this.proxy?.followTopology(s.primary, s.replicas, holdMs);
    });
    this.logger.info({ host: a.host, port: a.port }, 'proxy ready');
  }

  /** Re-reads pgscale.yaml's proxy section (SIGHUP, or RELOAD on the admin console). */
  reload(): Promise<string[]> {
    const p = this.proxy;
    if (!p) return Promise.resolve([]);
    const next = loadConfig(this.loaded.file);
    const cfg = proxyConfigFor(next);
    const explicit = Object.keys(cfg.databases).length > 0 ? databasesResolver(cfg) : undefined;
    return Promise.resolve(p.reload(cfg, topologyResolver(this.view, explicit)));
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    const p = this.proxy;
    this.proxy = null;
    if (p) await p.stop();
  }

  status(): unknown {
    const p = this.proxy;
    if (!p) return { running: false };
    const t = this.view.current();
    return {
      running: true,
      listen: `${p.settings.listen}:${p.settings.port}`,
      pool_mode: p.settings.pool_mode,
      clients: p.clients.size,
      pools: [...p.pools.values()].map((pool) => ({
        database: pool.database,
        user: pool.target.user,
        server: `${pool.target.host}:${pool.target.port}`,
        active: pool.active.size,
        idle: pool.idle.length,
        waiting: pool.waiting,
      })),
      topology: { epoch: t.epoch, primaries: t.shards.map((s) => s.primary?.name ?? null) },
    };
  }

  private registerMetrics(registry: Registry): void {
    // prom-client calls collect() with the metric as `this`; the service is reached through this.
    const service = {
      get proxy() {
        return current();
      },
    };
    const current = () => this.proxy;
    new Gauge({
      name: 'pgscale_proxy_clients',
      help: 'Client connections to the proxy, by state.',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        this.reset();
        const p = service.proxy;
        if (!p) return;
        const counts: Record<string, number> = { login: 0, active: 0, idle: 0, waiting: 0, admin: 0 };
        for (const c of p.clients) {
          const s = c.session;
          const state = c.phase !== 'ready' ? 'login' : s instanceof Session ? s.state : 'admin';
          counts[state] = (counts[state] ?? 0) + 1;
        }
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'pgscale_proxy_server_connections',
      help: 'Server connections held by the proxy pools, by database, user and state.',
      labelNames: ['database', 'user', 'state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of service.proxy?.pools.values() ?? []) {
          const l = { database: pool.database, user: pool.target.user };
          this.set({ ...l, state: 'active' }, pool.active.size);
          this.set({ ...l, state: 'idle' }, pool.idle.length);
          this.set({ ...l, state: 'tested' }, pool.tested.size);
        }
      },
    });
    new Gauge({
      name: 'pgscale_proxy_clients_waiting',
      help: 'Clients queued for a server connection, by database and user.',
      labelNames: ['database', 'user'],
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of service.proxy?.pools.values() ?? [])
          this.set({ database: pool.database, user: pool.target.user }, pool.waiting);
      },
    });
    new Gauge({
      name: 'pgscale_proxy_node_in_read_set',
      help: 'Whether a replica is in the read set (1) or not (0), by database and node.',
      labelNames: ['database', 'user', 'node'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, r] of service.proxy?.routers ?? []) {
          const usable = new Set(r.usable());
          for (const x of r.replicas)
            this.set(
              { database: pool.database, user: pool.target.user, node: x.name },
              usable.has(x) ? 1 : 0,
            );
        }
      },
    });
    new Gauge({
      name: 'pgscale_proxy_node_lag_bytes',
      help: "A replica's replay lag behind the primary's WAL position, in bytes, as the proxy last saw it.",
      labelNames: ['database', 'user', 'node'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, r] of service.proxy?.routers ?? []) {
          const p = r.primary.monitor?.lsn ?? null;
          for (const x of r.replicas) {
            if (p !== null && x.monitor.lsn !== null)
              this.set(
                { database: pool.database, user: pool.target.user, node: x.name },
                Number(p - x.monitor.lsn),
              );
          }
        }
      },
    });
    new Gauge({
      name: 'pgscale_proxy_node_reads_total',
      help: 'Read transactions the proxy sent to each replica.',
      labelNames: ['database', 'user', 'node'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, r] of service.proxy?.routers ?? []) {
          for (const x of r.replicas)
            this.set({ database: pool.database, user: pool.target.user, node: x.name }, x.readsServed);
        }
      },
    });
    for (const [name, key, help] of [
      ['pgscale_proxy_transactions_total', 'xacts', 'Transactions run through the proxy.'],
      ['pgscale_proxy_queries_total', 'queries', 'Queries run through the proxy.'],
      ['pgscale_proxy_received_bytes_total', 'bytesReceived', 'Bytes sent by clients to servers.'],
      ['pgscale_proxy_sent_bytes_total', 'bytesSent', 'Bytes sent by servers to clients.'],
    ] as const) {
      new Gauge({
        name,
        help,
        labelNames: ['database', 'user'],
        registers: [registry],
        collect() {
          this.reset();
          for (const pool of service.proxy?.pools.values() ?? [])
            this.set({ database: pool.database, user: pool.target.user }, pool.stats[key]);
        },
      });
    }
  }
}

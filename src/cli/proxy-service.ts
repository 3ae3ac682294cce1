/**
 * The proxy as a controller service inside `pgscale up`: one endpoint on proxy.port in front of
 * shard 0's primary (sharding will route by shard later). It knows the cluster's own roles (the
 * application role and the superuser, whose passwords pgscale generated), serves the application
 * database (and the ones proxy.exposed_databases adds), follows the topology the cluster
 * publishes, and exports its gauges to the controller's /metrics. It owns its proxy: SHUTDOWN on
 * the admin console is refused, and a listener that stops for any other reason is noticed,
 * logged and started again.
 */
import { portInUse } from '../cluster/ports.js';
import { ErrorCodes, PgscaleError } from '../errors.js';
import type { Registry } from 'prom-client';
import type { Cluster } from '../cluster/cluster.js';
import type { LoadedConfig } from '../config/load.js';
import { loadConfig } from '../config/load.js';
import type { ProxyConfig } from '../config/schema.js';
import type { Service } from '../controller/service.js';
import type { Logger } from '../obs/logger.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import { databasesResolver, topologyResolver } from '../proxy/resolver.js';
import type { Topology } from '../topology/topology.js';
import { TopologyView } from '../topology/topology.js';
import { registerProxyMetrics } from './proxy-metrics.js';

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

/**
 * The proxy section as the proxy takes it. Nobody is an admin of the console unless listed in
 * proxy.admin_users (`pgscale init` lists the superuser there, visibly); being the cluster's
 * superuser grants nothing on its own.
 */
export function proxyConfigFor(loaded: LoadedConfig): ProxyConfig {
  return loaded.config.proxy;
}

/** The cluster's databases the proxy serves: the application's and those the config adds. */
export function servedDatabases(loaded: LoadedConfig): string[] {
  const c = loaded.config;
  return [c.app.database, ...c.proxy.exposed_databases];
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
    registerProxyMetrics(registry, () => this.proxy);
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
      resolve: topologyResolver(this.view, servedDatabases(this.loaded), explicit),
      inlineUsers: inline,
      log: (line) => this.logger.info(line),
    });
    this.proxy.adminHooks = { reload: () => this.reload() };
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
    return Promise.resolve(p.reload(cfg, topologyResolver(this.view, servedDatabases(next), explicit)));
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
}
